"""Runs: every run under the reports folder, with its gate verdict and why; broken runs with their reason."""

import pandas as pd
import streamlit as st

from common import guard, no_runs_message, reports_dir, runs
from pipeline import reports_index as index

st.title("Runs")
st.caption(f"Reports folder: `{reports_dir()}`")

entries = runs()
good = [entry for entry in entries if entry.ok]
broken = [entry for entry in entries if not entry.ok]

if not entries:
    no_runs_message()
    st.stop()

columns = st.columns(4)
columns[0].metric("Finished runs", len(good))
columns[1].metric("Gate passed", sum(entry.gate_passed is True for entry in good))
columns[2].metric("Gate failed", sum(entry.gate_passed is False for entry in good))
columns[3].metric("Unfinished or corrupt", len(broken))

def _widening(entry) -> str:
    """Did compression hurt a group? The gate's widening check, in a word and its value."""
    for check in (entry.gate or {}).get("checks") or []:
        if isinstance(check, dict) and check.get("name") == "group gap widening by compression":
            value = check.get("value")
            shown = f" ({value:+.3f})" if isinstance(value, (int, float)) else ""
            return ("no" if check.get("passed") else "YES") + shown
    return "not measured"


if good:
    domains = sorted({entry.domain for entry in good})
    chosen = st.multiselect("Domains", domains, default=domains, key="runs_domains",
                            help="Show the runs of these domains only.")
    shown = [entry for entry in good if entry.domain in chosen]
    with guard("The runs table"):
        table = pd.DataFrame([{
            "domain": entry.domain,
            "run": entry.run_id + (" (quick)" if (entry.manifest.get("config") or {}).get("quick") else ""),
            "created (UTC)": entry.created.replace("T", " ").replace("+00:00", ""),
            "data source": entry.data_source,
            "gate": entry.gate_verdict,
            "why": "; ".join(entry.gate_reasons) if entry.gate_passed is False else "",
            "shipped": entry.ship_variant,
            "compression widened a gap?": _widening(entry),
            "headline": (f"{entry.headline_metric} {entry.headline_value:.4f}"
                         if entry.headline_value is not None else ""),
            "seed": entry.manifest.get("seed"),
            "folder": entry.key,
            "unlisted files": len(entry.unlisted),
        } for entry in shown])
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            # The key columns stay in view while a wide table scrolls sideways.
            "domain": st.column_config.TextColumn("domain", pinned=True),
            "run": st.column_config.TextColumn("run", pinned=True),
            "gate": st.column_config.TextColumn("gate", pinned=True),
            "why": st.column_config.TextColumn("why (failed checks)", width="large"),
            "folder": st.column_config.TextColumn("folder (in the reports folder)"),
        })
        st.caption(f"{len(shown)} of {len(good)} finished runs. Pick a run in the sidebar of the other pages.")
        added_to = [entry for entry in shown if entry.unlisted]
        if added_to:
            st.subheader("Files the manifest does not list")
            for entry in added_to:
                st.warning(f"**{entry.key}**: {entry.unlisted_warning}.")
        failed = [entry for entry in shown if entry.gate_passed is False]
        if failed:
            st.subheader("Why gates failed")
            labels = index.picker_labels(shown)  # copies of one run told apart by their folder
            for entry in failed:
                st.markdown(f"- **{labels[entry.key]}** (`{entry.ship_variant}`): "
                            + "; ".join(entry.gate_reasons))

if broken:
    st.subheader("Unfinished or corrupt runs")
    damaged = [entry for entry in broken if entry.status != index.UNFINISHED]
    if damaged:
        st.error(f"{len(broken)} run(s) cannot be shown. The other runs are not affected.")
    else:  # only runs in progress (or interrupted): nothing is wrong with what is here
        st.info(f"{len(broken)} run(s) cannot be shown yet: still running, or interrupted before they finished. "
                "The other runs are not affected.")
    st.table(pd.DataFrame([{"folder": entry.key, "status": entry.status, "reason": entry.reason}
                           for entry in broken]))
    for entry in broken:
        if len(entry.problems) > 1:
            with st.expander(f"{entry.key}: all {len(entry.problems)} problems"):
                st.markdown("\n".join(f"- {problem}" for problem in entry.problems))
