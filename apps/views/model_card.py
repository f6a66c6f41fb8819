"""Model card and downloads: the card rendered, each .tflite with its preprocessing or
vocabulary file, the card, the self-contained HTML report, and the whole run as a zip."""

import re

import streamlit as st

from common import guard, load_bytes, pick_run, show_plot
from pipeline import artifacts
from pipeline import reports_index as index
from pipeline import static_report

entry = pick_run("Model card & downloads")
if entry is None:
    st.stop()

_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")

with guard("Downloads"):
    st.subheader("Downloads")
    left, middle, right = st.columns(3)
    left.download_button("Report (HTML, self-contained)",
                         data=lambda: static_report.render(index.verify_run(entry.path, key=entry.key)),
                         file_name=f"{entry.domain}-{entry.run_id}.html", mime="text/html", on_click="ignore",
                         icon=":material/download:", key="download_report",
                         help="One HTML file with every plot embedded: opens in any browser, no server needed.")
    middle.download_button("Whole run (zip)", data=lambda: index.run_zip(entry),
                           file_name=f"{entry.domain}-{entry.run_id}.zip", mime="application/zip",
                           on_click="ignore", icon=":material/folder_zip:", key="download_zip",
                           help="The manifest and every artifact it lists, each checked against its SHA-256.")
    if artifacts.MODEL_CARD_MARKDOWN in entry.artifacts:
        right.download_button("Model card (Markdown)", data=load_bytes(entry, artifacts.MODEL_CARD_MARKDOWN),
                              file_name=f"model_card-{entry.run_id}.md", mime="text/markdown", on_click="ignore",
                              icon=":material/description:", key="download_card")

    models = index.model_files(entry)
    if models:
        st.markdown("**Edge models**: each `.tflite` with the preprocessing or vocabulary file a device needs.")
        for model in models:
            cells = st.columns([2, 2, 3])
            cells[0].markdown(f"`{model['variant']}`" + (" — **shipped**" if model["shipped"] else "")
                              + f"  \n{entry.artifacts[model['tflite']].get('bytes', 0) / 1024:.1f} KB")
            cells[1].download_button(f"{model['variant']}.tflite", data=load_bytes(entry, model["tflite"]),
                                     file_name=f"{model['variant']}.tflite", mime="application/octet-stream",
                                     on_click="ignore", key=f"download_tflite_{model['variant']}")
            companions = ", ".join(path.rsplit("/", 1)[-1] for path in model["companions"]) or "no companion file"
            cells[2].download_button(f"{model['variant']} + {companions} (zip)",
                                     data=(lambda variant=model["variant"]: index.variant_bundle(entry, variant)),
                                     file_name=f"{entry.run_id}-{model['variant']}.zip", mime="application/zip",
                                     on_click="ignore", key=f"download_bundle_{model['variant']}")
    else:
        st.caption("This run has no .tflite files.")

with guard("The model card"):
    st.subheader("Model card")
    if artifacts.MODEL_CARD_MARKDOWN not in entry.artifacts:
        st.info("This run has no model card (model_card.md is not in its manifest).")
    else:
        card = load_bytes(entry, artifacts.MODEL_CARD_MARKDOWN).decode("utf-8")
        card = re.sub(r"^(#{1,5}) ", r"#\1 ", card, flags=re.M)  # one level down: the page has its own title
        with st.container(border=True):
            position = 0
            for match in _IMAGE.finditer(card):
                text = card[position:match.start()].strip()
                if text:
                    st.markdown(text)
                alt, target = match.group(1), match.group(2)
                if not show_plot(entry, target, caption=alt):
                    st.caption(f"[{alt}: {target} is not an artifact of this run]")
                position = match.end()
            rest = card[position:].strip()
            if rest:
                st.markdown(rest)
