"""The static report: one self-contained HTML file per run, for people who will never run Streamlit.

Everything is inside the file: the model card with its plots embedded as `data:` URIs,
a summary (gate, edge trade-offs with the Pareto front, the integrity check) and the
list of every artifact with its SHA-256. No server, no scripts, no external request.

The report is the file that gets mailed around, and a run folder can be edited and re-hashed
by anybody (the manifest's SHA-256 prove the files were not changed by accident, not that a
person did not change them). So nothing from the run is trusted as markup: every value read
from its JSON files is escaped, and the model card's HTML goes through an allow-list
sanitiser (nh3, the Python binding of Ammonia) that keeps headings, paragraphs, lists,
tables, code and links; an image stays only where it names one of the run's plots, which is
then embedded. As a second line, the page carries a Content-Security-Policy that forbids
every script and every fetch, so markup that slipped through could neither run nor call out.

Where it is written: NOT inside the run folder. A finished run folder is exactly what its
manifest lists; adding `report.html` to it would make it a folder the manifest does not
describe. `edgeaudit report RUN_DIR` writes `<RUN_DIR>.html` beside the folder (or the
path given with `--output`), and the dashboard builds the same HTML in memory for its
download button. The report is rebuilt from the verified artifacts each time, so it
never goes stale.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import nh3

from pipeline.artifacts import GATE, METRICS, COMPRESSION, MODEL_CARD_HTML, MODEL_CARD_MARKDOWN
from pipeline.errors import InputError
from pipeline.reports_index import RunEntry, format_value, plots, read_bytes, read_json, tradeoff_rows, verify_run
from pipeline.stages.gate import verdict_label

_STYLE = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}h1{border-bottom:2px solid #333}
h2{border-bottom:1px solid #ccc;margin-top:2em}code{background:#f5f5f5;padding:0 .2em}
.verdict{padding:.6em 1em;border-radius:6px;font-weight:600;margin:1em 0}
.passed{background:#e6f4ea;border:1px solid #34a853}.failed{background:#fce8e6;border:1px solid #d93025}
.note{color:#555;font-size:.9em}figure{margin:1em 0}figcaption{color:#555;font-size:.85em}
td.num{text-align:right;font-variant-numeric:tabular-nums}.card{border-top:3px double #999;margin-top:2em}"""


# The allow-list for the model card: what pipeline/stages/report.py writes into model_card.html
# (h1-h4, p, ul/li, table/thead/tbody/tr/th/td, strong, code, img with src and alt), plus the
# plain text formatting a hand-edited card may use. No class, id or style attribute: a card
# must not borrow the report's own look (a green "Gate PASSED" box) or restyle the page.
CARD_TAGS = frozenset({
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "blockquote", "pre", "code", "kbd", "samp",
    "strong", "em", "b", "i", "sub", "sup", "ul", "ol", "li", "dl", "dt", "dd",
    "table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td", "a", "img", "figure", "figcaption",
})
CARD_ATTRIBUTES = {"a": frozenset({"href", "title"}), "img": frozenset({"src", "alt", "title"}),
                   "h2": frozenset({"id"}),  # the card's contents links to its sections
                   "th": frozenset({"colspan", "rowspan", "scope"}), "td": frozenset({"colspan", "rowspan"}),
                   "ol": frozenset({"start"})}
LINK_SCHEMES = frozenset({"http", "https", "mailto"})  # and #fragment links; no data:, no relative file paths
# Removed with everything inside them (any other tag outside CARD_TAGS loses the tag, keeps its text):
# code, style, embedded documents and foreign content, whose text would otherwise show as garbage.
CARD_CONTENT_REMOVED = frozenset({
    "script", "style", "noscript", "template", "iframe", "frame", "frameset", "noframes", "object", "embed",
    "applet", "svg", "math", "title", "textarea", "select", "xmp", "noembed",
})

# Meta tags cannot carry frame-ancestors, report-uri or sandbox; every directive here works in
# one. default-src 'none' covers scripts, fonts, frames, objects, media, fetch/XHR and
# prefetches; images may only be the embedded data: URIs; the only style is the report's own
# <style> block (by its hash, so style="" attributes and injected <style> do not apply).
# base-uri and form-action do not fall back to default-src, so they are listed.
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode("utf-8")).digest()).decode("ascii")
CONTENT_SECURITY_POLICY = (f"default-src 'none'; img-src data:; style-src 'sha256-{_STYLE_HASH}'; "
                           "base-uri 'none'; form-action 'none'")


def _escape(value) -> str:
    return html.escape("" if value is None else str(value))


def _cell(value, digits: int = 4) -> str:
    """A value from the run's JSON for a table cell, escaped (format_value returns strings as they are)."""
    return _escape(format_value(value, digits))


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _table(headers: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(
        f"<td class=\"num\">{cell}</td>" if i in numeric else f"<td>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _allowed_link(value: str) -> bool:
    """An href the card may keep: http(s), mailto or a #fragment of this page."""
    value = value.strip()
    if value.startswith("#"):
        return True
    try:
        return urlsplit(value).scheme.lower() in LINK_SCHEMES  # urlsplit drops tabs and newlines, as browsers do
    except ValueError:
        return False


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Ammonia has already dropped hrefs with other schemes; this also drops relative links
    (`//host/x`, `other.html`), which in a report opened from disk point at the reader's files."""
    if attribute == "href" and not _allowed_link(value):
        return None
    return value


_CLEANER = nh3.Cleaner(tags=CARD_TAGS, clean_content_tags=CARD_CONTENT_REMOVED, attributes=CARD_ATTRIBUTES,
                       attribute_filter=_filter_attribute, url_schemes=LINK_SCHEMES, strip_comments=True,
                       link_rel="noopener noreferrer")


def sanitize_card(page: str) -> str:
    """The model card's HTML reduced to the allow-list (the whole page may be given: its head,
    title and style are dropped). Image sources are left as they are for `_inline_images`."""
    return _CLEANER.clean(page)


class _ImageTags(HTMLParser):
    """Every <img> start tag of a sanitised fragment: (line, column, tag text, attributes)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, int, str, dict]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "img":
            self.found.append((*self.getpos(), self.get_starttag_text(), dict(attrs)))


def _inline_images(fragment: str, images: dict[str, str]) -> tuple[str, set[str]]:
    """Replace each <img> of a sanitised fragment: one that names a plot of the run becomes that
    plot as a data: URI, any other becomes a note. Returns the HTML and the plots used."""
    parser = _ImageTags()
    parser.feed(fragment)
    parser.close()
    line_starts = [0] + [i + 1 for i, character in enumerate(fragment) if character == "\n"]
    out, used, position = [], set(), 0
    for line, column, tag_text, attributes in parser.found:
        start = line_starts[line - 1] + column
        if not fragment.startswith(tag_text, start):
            raise RuntimeError(f"the sanitised model card could not be re-read at line {line}, column {column}; "
                               "please report this with the run's model_card.html")
        source = attributes.get("src") or ""
        if source in images:
            used.add(source)
            extra = "".join(f' {name}="{_escape(attributes[name])}"' for name in ("alt", "title")
                            if attributes.get(name) is not None)
            replacement = f'<img src="{images[source]}"{extra}>'
        else:
            name = _escape(source) if source else "without an allowed source"
            replacement = f"<span class=\"note\">[image {name} is not an artifact of this run]</span>"
        out += [fragment[position:start], replacement]
        position = start + len(tag_text)
    out.append(fragment[position:])
    return "".join(out), used


def _card_body(entry: RunEntry, images: dict[str, str]) -> tuple[str, set[str]]:
    """The model card, sanitised, with its images inlined; and the plots it shows."""
    if MODEL_CARD_HTML in entry.artifacts:
        page = read_bytes(entry, MODEL_CARD_HTML).decode("utf-8", errors="replace")
        return _inline_images(sanitize_card(page), images)
    if MODEL_CARD_MARKDOWN in entry.artifacts:
        text = read_bytes(entry, MODEL_CARD_MARKDOWN).decode("utf-8", errors="replace")
        return "<pre>" + _escape(text) + "</pre>", set()
    return "<p class=\"note\">This run has no model card.</p>", set()


_CARD_SECTION = re.compile(r'<h2 id="(card-[a-z0-9-]+)">(.*?)</h2>', re.DOTALL)


def _contents(card: str, *, with_plots: bool) -> str:
    """The report's table of contents: its own sections, and each section of the model card
    (the card's h2 carry `card-<slug>` ids, the only id the sanitiser keeps)."""
    links = [("gate", "Gate"), ("tradeoffs", "Edge trade-offs"), ("card", "Model card")]
    sections = [(anchor, re.sub(r"<[^>]+>", "", title)) for anchor, title in _CARD_SECTION.findall(card)]
    items = [f'<li><a href="#{anchor}">{_escape(html.unescape(title))}</a>' for anchor, title in links]
    if sections:
        items[-1] += "<ul>" + "".join(f'<li><a href="#{anchor}">{_escape(html.unescape(title))}</a></li>'
                                      for anchor, title in sections) + "</ul>"
    items = [item + "</li>" for item in items]
    if with_plots:
        items.append('<li><a href="#plots">More plots from this run</a></li>')
    items.append('<li><a href="#artifacts">Artifacts</a></li>')
    return '<nav aria-label="Contents"><strong>Contents</strong><ul>' + "".join(items) + "</ul></nav>"


def _facts(entry: RunEntry) -> str:
    """The table of what the run is: domain, run, data, shipped variant, integrity."""
    manifest = entry.manifest
    facts = [("Domain", f"{_escape(manifest.get('domain_title') or '')} (<code>{_escape(entry.domain)}</code>), "
                        f"modality {_escape(manifest.get('modality'))}"),
             ("Run", f"<code>{_escape(entry.run_id)}</code>, created {_escape(manifest.get('created_utc'))}, "
                     f"EdgeAudit {_escape(manifest.get('edgeaudit_version'))}"),
             ("Data", _escape(entry.data_source)),
             ("Shipped variant", f"<code>{_escape(entry.ship_variant)}</code>"),
             ("Integrity", f"all {len(entry.artifacts)} artifacts listed in the manifest were found with their "
                           "recorded SHA-256 when this report was written"
                           + (f"; <strong>warning</strong>: {_escape(entry.unlisted_warning)}"
                              if entry.unlisted_warning else ""))]
    return _table(["", ""], [[f"<strong>{k}</strong>", v] for k, v in facts])


def _gate_section(gate: dict) -> str:
    """The gate's verdict box and its checks."""
    out = []
    passed = gate.get("passed") is True  # only a real true passes: a tampered "false" string does not
    verdict = verdict_label(gate, gate=True)
    out.append(f"<div class=\"verdict {'passed' if passed else 'failed'}\" id=\"gate\">Gate {_escape(verdict)} for "
               f"<code>{_escape(gate.get('ship_variant'))}</code></div>")
    checks = [c for c in gate.get("checks") or [] if isinstance(c, dict)]
    if checks:
        out.append(_table(["check", "value", "limit", "result", "explanation"], [
            [_escape(c.get("name")), _cell(c.get("value")), _cell(c.get("limit")),
             (lambda label: label if label == "pass" else f"<strong>{_escape(label)}</strong>")(verdict_label(c)),
             _escape(c.get("explanation"))] for c in checks],
            numeric={1, 2}))
    return "\n".join(out)


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
           f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_SECURITY_POLICY}\">"
           f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           f"<title>{_escape(title)}</title><style>{_STYLE}</style></head><body>",
           f"<h1>{_escape(title)}</h1>"]
    out.append(_facts(entry))
    card, shown = _card_body(entry, images)
    others = [path for path in images if path not in shown]
    out.append(_contents(card, with_plots=bool(others)))

    out.append(_gate_section(gate))

    out.append("<h2 id=\"tradeoffs\">Edge trade-offs</h2>")
    rows = tradeoff_rows(manifest, metrics, compression, gate)
    table_rows = []
    for row in rows:
        name = f"<code>{_escape(row['variant'])}</code>" + (" (shipped)" if row["shipped"] else "")
        if row["status"] != "ok":
            table_rows.append([name, f"not built: {_escape(row['reason'])}", *[""] * 8])
            continue
        table_rows.append([
            name, _cell(row["headline"]), _cell(row["threshold"]),
            "n/a" if row["bytes"] is None else f"{row['bytes'] / 1024:.1f} KB",
            "n/a" if row["gzip_bytes"] is None else f"{row['gzip_bytes'] / 1024:.1f} KB",
            _cell(row["sparsity"], 2), "n/a" if row["latency_ms"] is None else f"{row['latency_ms'] * 1000:.1f} µs",
            _cell(row["identical_decisions"]), "yes" if row["pareto_size"] else "",
            "yes" if row["pareto_all"] else ""])
    out.append(_table(["variant", _escape(headline), "decision threshold", "size", "gzip", "sparsity", "latency (median, 1 thread, host CPU)",
                       "same decisions as float", "Pareto: size vs quality", "Pareto: size, latency, quality"],
                      table_rows, numeric={1, 2, 3, 4, 5, 6, 7}))
    out.append("<p class=\"note\">Decision threshold: a device flags a case when the model's output reaches it; "
               "each variant has its own, chosen on the validation split. Pareto: no other variant is at least as "
               f"small (and as fast) with an equal or better {_escape(headline)}.</p>")

    out.append("<section class=\"card\" id=\"card\">" + card + "</section>")

    if others:
        out.append("<h2 id=\"plots\">More plots from this run</h2>")
        for path in others:
            caption = Path(path).stem.replace("_", " ")
            out.append(f"<figure><img src=\"{images[path]}\" alt=\"{_escape(caption)}\">"
                       f"<figcaption>{_escape(path)}</figcaption></figure>")

    out.append("<h2 id=\"artifacts\">Artifacts</h2><p class=\"note\">Every file of the run folder, as the manifest lists it; "
               "the <code>.tflite</code> files and the whole run are in the run folder.</p>")
    out.append(_table(["path", "role", "bytes", "SHA-256"], [
        [f"<code>{_escape(path)}</code>", _escape(record.get("role")), _cell(record.get("bytes")),
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
