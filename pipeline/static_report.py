"""The static report: one self-contained HTML file per run, for people who will never run Streamlit.

Everything is inside the file: the model card with its plots embedded as `data:` URIs,
a summary (gate, edge trade-offs with the Pareto front, the integrity check) and the
list of every artifact with its SHA-256. No server, no scripts, no external request.

Where it is written: NOT inside the run folder. A finished run folder is exactly what its
manifest lists; adding `report.html` to it would make it a folder the manifest does not
describe. `edgeaudit report RUN_DIR` writes `<RUN_DIR>.html` beside the folder (or the
path given with `--output`), and the dashboard builds the same HTML in memory for its
download button. The report is rebuilt from the verified artifacts each time, so it
never goes stale.
"""

from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

from pipeline.artifacts import GATE, METRICS, COMPRESSION, MODEL_CARD_HTML, MODEL_CARD_MARKDOWN
from pipeline.errors import InputError
from pipeline.reports_index import RunEntry, format_value, plots, read_bytes, read_json, tradeoff_rows, verify_run

_STYLE = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}h1{border-bottom:2px solid #333}
h2{border-bottom:1px solid #ccc;margin-top:2em}code{background:#f5f5f5;padding:0 .2em}
.verdict{padding:.6em 1em;border-radius:6px;font-weight:600;margin:1em 0}
.passed{background:#e6f4ea;border:1px solid #34a853}.failed{background:#fce8e6;border:1px solid #d93025}
.note{color:#555;font-size:.9em}figure{margin:1em 0}figcaption{color:#555;font-size:.85em}
td.num{text-align:right;font-variant-numeric:tabular-nums}.card{border-top:3px double #999;margin-top:2em}"""

_IMG = re.compile(r'<img\s+src="([^"]*)"([^>]*)>')


def _escape(value) -> str:
    return html.escape("" if value is None else str(value))


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _table(headers: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f"<td class=\"num\">{cell}</td>" if i in numeric else f"<td>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card_body(entry: RunEntry, images: dict[str, str]) -> str:
    """The model card's HTML body with every image inlined (an unknown image becomes a note)."""
    if MODEL_CARD_HTML in entry.artifacts:
        page = read_bytes(entry, MODEL_CARD_HTML).decode("utf-8")
        match = re.search(r"<body[^>]*>(.*)</body>", page, flags=re.S | re.I)
        body = match.group(1) if match else page
        body = re.sub(r"<script.*?</script>", "", body, flags=re.S | re.I)

        def inline(found: re.Match) -> str:
            source = html.unescape(found.group(1))
            if source in images:
                return f'<img src="{images[source]}"{found.group(2)}>'
            return f"<p class=\"note\">[image {_escape(source)} is not an artifact of this run]</p>"

        return _IMG.sub(inline, body)
    if MODEL_CARD_MARKDOWN in entry.artifacts:
        return "<pre>" + _escape(read_bytes(entry, MODEL_CARD_MARKDOWN).decode("utf-8")) + "</pre>"
    return "<p class=\"note\">This run has no model card.</p>"


def render(entry: RunEntry) -> str:
    """The self-contained HTML report of one verified run."""
    if not entry.ok:
        raise InputError(f"run {entry.key} is {entry.status}: {entry.reason}",
                         fix="report only on a finished, intact run; re-run it, or restore the changed file "
                             "from a copy that matches the manifest")
    manifest = entry.manifest
    images = {path: _data_uri(read_bytes(entry, path)) for path in plots(entry)}
    metrics = read_json(entry, METRICS) or {}
    gate = read_json(entry, GATE) or {}
    compression = read_json(entry, COMPRESSION) or {}
    headline = metrics.get("headline_metric") or manifest.get("headline_metric") or "quality"
    title = f"EdgeAudit report: {manifest.get('domain_title') or entry.domain} ({entry.run_id})"

    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           f"<title>{_escape(title)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{_escape(title)}</h1>"]
    facts = [("Domain", f"{_escape(manifest.get('domain_title') or '')} (<code>{_escape(entry.domain)}</code>), "
                        f"modality {_escape(manifest.get('modality'))}"),
             ("Run", f"<code>{_escape(entry.run_id)}</code>, created {_escape(manifest.get('created_utc'))}, "
                     f"EdgeAudit {_escape(manifest.get('edgeaudit_version'))}"),
             ("Data", _escape(entry.data_source)),
             ("Shipped variant", f"<code>{_escape(entry.ship_variant)}</code>"),
             ("Integrity", f"all {len(entry.artifacts)} artifacts listed in the manifest were found with their "
                           "recorded SHA-256 when this report was written")]
    out.append(_table(["", ""], [[f"<strong>{k}</strong>", v] for k, v in facts]))

    passed = gate.get("passed")
    verdict = "PASSED" if passed else "FAILED"
    out.append(f"<div class=\"verdict {'passed' if passed else 'failed'}\">Gate {verdict} for "
               f"<code>{_escape(gate.get('ship_variant'))}</code></div>")
    checks = [c for c in gate.get("checks") or [] if isinstance(c, dict)]
    if checks:
        out.append(_table(["check", "value", "limit", "result", "explanation"], [
            [_escape(c.get("name")), format_value(c.get("value")), format_value(c.get("limit")),
             "pass" if c.get("passed") else "<strong>FAIL</strong>", _escape(c.get("explanation"))] for c in checks],
            numeric={1, 2}))

    out.append("<h2>Edge trade-offs</h2>")
    rows = tradeoff_rows(manifest, metrics, compression, gate)
    table_rows = []
    for row in rows:
        name = f"<code>{_escape(row['variant'])}</code>" + (" (shipped)" if row["shipped"] else "")
        if row["status"] != "ok":
            table_rows.append([name, f"not built: {_escape(row['reason'])}", *[""] * 7])
            continue
        table_rows.append([
            name, format_value(row["headline"]),
            "n/a" if row["bytes"] is None else f"{row['bytes'] / 1024:.1f} KB",
            "n/a" if row["gzip_bytes"] is None else f"{row['gzip_bytes'] / 1024:.1f} KB",
            format_value(row["sparsity"], 2), "n/a" if row["latency_ms"] is None else f"{row['latency_ms']:.4f} ms",
            format_value(row["identical_decisions"]), "yes" if row["pareto_size"] else "",
            "yes" if row["pareto_all"] else ""])
    out.append(_table(["variant", _escape(headline), "size", "gzip", "sparsity", "latency (median)",
                       "same decisions as float", "Pareto: size vs quality", "Pareto: size, latency, quality"],
                      table_rows, numeric={1, 2, 3, 4, 5, 6}))
    out.append("<p class=\"note\">Pareto: no other variant is at least as small (and as fast) with an equal or "
               f"better {_escape(headline)}.</p>")

    out.append("<section class=\"card\">" + _card_body(entry, images) + "</section>")

    card_text = ""
    if MODEL_CARD_HTML in entry.artifacts:
        card_text = read_bytes(entry, MODEL_CARD_HTML).decode("utf-8", errors="replace")
    elif MODEL_CARD_MARKDOWN in entry.artifacts:
        card_text = read_bytes(entry, MODEL_CARD_MARKDOWN).decode("utf-8", errors="replace")
    others = [path for path in images if path not in card_text]
    if others:
        out.append("<h2>More plots from this run</h2>")
        for path in others:
            caption = Path(path).stem.replace("_", " ")
            out.append(f"<figure><img src=\"{images[path]}\" alt=\"{_escape(caption)}\">"
                       f"<figcaption>{_escape(path)}</figcaption></figure>")

    out.append("<h2>Artifacts</h2><p class=\"note\">Every file of the run folder, as the manifest lists it; "
               "the <code>.tflite</code> files and the whole run are in the run folder.</p>")
    out.append(_table(["path", "role", "bytes", "SHA-256"], [
        [f"<code>{_escape(path)}</code>", _escape(record.get("role")), format_value(record.get("bytes")),
         f"<code>{_escape(record.get('sha256'))}</code>"] for path, record in sorted(entry.artifacts.items())],
        numeric={2}))
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def default_output(run_dir: str | os.PathLike) -> Path:
    """`<RUN_DIR>.html`, beside the run folder (never inside it)."""
    folder = Path(run_dir).resolve()
    return folder.with_name(folder.name + ".html")


def write_report(run_dir: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Verify the run at `run_dir`, render its report, write it atomically; returns the path."""
    folder = Path(run_dir)
    if not folder.is_dir():
        raise InputError(f"{run_dir} is not a folder", fix="pass a run folder such as reports/fraud/<run-id>")
    entry = verify_run(folder.resolve(), key=str(run_dir))
    if entry.status == "corrupt" and "manifest.json is missing" in (entry.reason or ""):
        raise InputError(f"{run_dir} is not a finished run folder: it has no manifest.json",
                         fix="pass a run folder such as reports/fraud/<run-id> (it holds manifest.json)")
    target = Path(output).resolve() if output else default_output(folder)
    if target == folder.resolve() or target.is_relative_to(folder.resolve()):
        raise InputError(f"--output {output} is inside the run folder",
                         fix="write the report outside the run folder (a finished run holds exactly what its "
                             "manifest lists); leave --output out to write it beside the folder")
    page = render(entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp")
    staging.write_text(page, encoding="utf-8")
    os.replace(staging, target)
    return target
