"""The static report: one self-contained HTML file, written beside the run (never inside it),
only for intact runs, with every plot embedded and every run-supplied text escaped; the model
card's HTML is sanitised to an allow-list and the page forbids scripts and fetches (CSP)."""

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from pipeline import reports_index as index
from pipeline import static_report
from pipeline.cli import main
from pipeline.errors import EXIT_BAD_INPUT, InputError
from tests.fixtures import runs as fixtures


# ---- reading a page the way a browser would: every start tag, and the text ------------------------

# Tags that must never reach the report's body: code, embedded documents, foreign content, forms,
# and the head-only tags that redirect the page or change its base and styles.
FORBIDDEN_TAGS = {"script", "noscript", "template", "iframe", "frame", "frameset", "object", "embed", "applet",
                  "svg", "math", "form", "input", "button", "select", "textarea", "meta", "link", "base", "style"}
URL_ATTRIBUTES = {"href", "src", "srcset", "action", "formaction", "data", "poster", "background", "ping",
                  "xlink:href", "srcdoc"}


class _Page(HTMLParser):
    """Every start tag of a page as (tag, attributes, inside <body>), the body's text, the <style> text."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.style, self.in_body, self.open = [], [], [], False, None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.in_body = self.in_body or tag == "body"
        self.tags.append((tag, dict(attrs), self.in_body))
        self.open = tag

    def handle_endtag(self, tag):
        self.open = None

    def handle_data(self, data):
        if self.open == "style":
            self.style.append(data)
        elif self.in_body:
            self.text.append(data)


def _plot_bytes(folder) -> set[bytes]:
    return {path.read_bytes() for path in (folder / "plots").iterdir()}


def _content_security_policy(page: str) -> dict[str, list[str]]:
    """The directives of the page's CSP meta tag ({} when it has none)."""
    for tag, attributes, in_body in _Page(page).tags:
        if tag == "meta" and not in_body and (attributes.get("http-equiv") or "").lower() == "content-security-policy":
            return {name: values for name, *values in
                    (part.split() for part in attributes.get("content", "").split(";") if part.strip())}
    return {}


def _violations(page: str, plots: set[bytes]) -> list[str]:
    """Everything in a rendered report that could run, fetch, navigate or restyle; [] when safe."""
    found = []
    if not _content_security_policy(page):
        found.append("no Content-Security-Policy meta tag in the head")
    for tag, attributes, in_body in _Page(page).tags:
        if in_body and tag in FORBIDDEN_TAGS:
            found.append(f"<{tag} {attributes}> in the body")
        if tag == "meta" and (attributes.get("http-equiv") or "").lower() not in ("", "content-security-policy"):
            found.append(f"<meta http-equiv={attributes['http-equiv']!r}>")
        for name, value in attributes.items():
            value = (value or "").strip()
            if name.startswith("on"):
                found.append(f"<{tag} {name}=...>: an event handler")
            elif name == "style":
                found.append(f"<{tag} style={value!r}>")
            elif name == "href" and tag == "a":
                if not (value.startswith("#") or urlsplit(value).scheme.lower() in ("http", "https", "mailto")):
                    found.append(f"<a href={value!r}>: not http, https, mailto or #fragment")
            elif name == "src" and tag == "img":
                if not value.startswith("data:image/png;base64,"):
                    found.append(f"<img src={value[:60]!r}>: not an embedded plot")
                elif base64.b64decode(value.split(",", 1)[1]) not in plots:
                    found.append("<img src=data:...>: an embedded image that is not a plot of the run")
            elif name in URL_ATTRIBUTES:
                found.append(f"<{tag} {name}={value[:60]!r}>")
        if tag == "img" and not attributes.get("src"):
            found.append(f"<img {attributes}> without a source")
    return found


def _with_card(tmp_path, body: str):
    """A finished run whose model_card.html is the fixture card with `body` added at the end of its
    body (the manifest lists the edited card with its size and SHA-256, as a re-hashed run would)."""
    card = fixtures.run_contents()[1]["model_card.html"][0].decode("utf-8")
    card = card.replace("</body>", body + "\n</body>")
    return fixtures.write_run(tmp_path, extra_files={"model_card.html": (card.encode("utf-8"), "model_card")})


# (id, markup added to the card, text that must not be shown either)
PAYLOADS = [
    ("svg onload", '<svg onload="alert(1)"><text>svg text</text></svg>', "svg text"),
    ("javascript link", '<a href="javascript:alert(1)">x</a>', None),
    ("javascript link, mixed case", '<a href="JaVaScRiPt:alert(1)">x</a>', None),
    ("javascript link, tab and entity", '<a href=" java&#09;script&#58;alert(1)">x</a>', None),
    ("protocol-relative link", '<a href="//example.com/x">x</a>', None),
    ("data: link", '<a href="data:text/html,&lt;script&gt;alert(1)&lt;/script&gt;">x</a>', None),
    ("iframe srcdoc", '<iframe srcdoc="<script>alert(1)</script>">iframe fallback</iframe>', "iframe fallback"),
    ("script split by a script", "<scr<script></script>ipt>alert(1)</script>", None),
    ("img onerror", "<img src=x onerror=alert(1)>", None),
    ("img beacon", '<img src="http://example.com/beacon.png">', None),
    ("img beacon, alt first", "<img alt=beacon src='http://example.com/beacon.png'>", None),
    ("img data: not a plot", '<img src="data:image/png;base64,iVBORw0KGgo=">', None),
    ("style @import", "<style>@import url(http://example.com/x.css)</style>", "@import"),
    ("style attribute", '<p style="background:url(http://example.com/x.png)">styled</p>', None),
    ("meta refresh", '<meta http-equiv="refresh" content="0;url=http://example.com">', None),
    ("object data", '<object data="http://example.com/x.swf">object fallback</object>', "object fallback"),
    ("embed", '<embed src="http://example.com/x.swf">', None),
    ("form", '<form action="http://example.com/steal"><input name="q"><button formaction="http://example.com">'
             "Send</button></form>", None),
    ("link stylesheet", '<link rel="stylesheet" href="http://example.com/x.css">', None),
    ("base", '<base href="http://example.com/">', None),
    ("math mutation", "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>", None),
    ("noscript mutation", '<noscript><p title="</noscript><img src=x onerror=alert(1)>">', None),
]


@pytest.mark.parametrize("markup, hidden", [p[1:] for p in PAYLOADS], ids=[p[0] for p in PAYLOADS])
def test_a_tampered_model_card_cannot_inject_markup(tmp_path, markup, hidden):
    folder = _with_card(tmp_path, markup)
    page = static_report.render(index.verify_run(folder))
    assert _violations(page, _plot_bytes(folder)) == []
    text = "".join(_Page(page).text)
    assert "Model card: Fixture fraud" in text  # the rest of the card is still there
    if hidden:
        assert hidden not in text  # the content of script, style, iframe... is removed, not shown as text


def test_values_from_the_run_json_are_escaped(tmp_path):
    """format_value returns a string as it is: a string where the gate has a number must show as text."""
    gate = {"passed": False, "ship_variant": "int8", "checks": [
        {"name": "drop", "value": "<img src=x onerror=alert(1)>", "limit": '<a href="javascript:alert(1)">1</a>',
         "passed": False, "explanation": "<svg onload=alert(1)>"}]}
    folder = fixtures.write_run(tmp_path, extra_files={
        "gate.json": (json.dumps(gate).encode("utf-8"), "gate")})
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest.update(domain_title="<b onmouseover=alert(1)>fraud</b>", modality="<script>alert(1)</script>")
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    page = static_report.render(index.verify_run(folder))
    assert _violations(page, _plot_bytes(folder)) == []
    text = "".join(_Page(page).text)
    for value in ["<img src=x onerror=alert(1)>", '<a href="javascript:alert(1)">1</a>', "<svg onload=alert(1)>",
                  "<b onmouseover=alert(1)>fraud</b>", "<script>alert(1)</script>"]:
        assert value in text  # shown, as text


def test_the_report_forbids_scripts_and_fetches(tmp_path):
    folder = fixtures.write_run(tmp_path)
    page = static_report.render(index.verify_run(folder))
    policy = _content_security_policy(page)
    assert policy.get("default-src") == ["'none'"], policy  # scripts, frames, objects, fonts, fetches
    assert policy.get("img-src") == ["data:"] and policy.get("base-uri") == ["'none'"]
    assert policy.get("form-action") == ["'none'"] and "script-src" not in policy  # falls back to 'none'
    parsed = _Page(page)
    style = "".join(parsed.style)
    digest = base64.b64encode(hashlib.sha256(style.encode("utf-8")).digest()).decode("ascii")
    assert policy.get("style-src") == [f"'sha256-{digest}'"]  # the report's own <style>, nothing else
    head = [tag for tag, attributes, in_body in parsed.tags if not in_body]
    # the policy is in force before anything it governs: right after the charset
    assert head[:4] == ["html", "head", "meta", "meta"] and head.index("style") > 3
    assert page.index("Content-Security-Policy") < page.index("<style>")


def test_sanitising_keeps_what_a_model_card_shows(tmp_path):
    card = ("<h3>Sub-section</h3><ol><li>first</li><li><em>second</em></li></ol><pre><code>x = 1</code></pre>"
            "<table><thead><tr><th>variant</th><th>size</th></tr></thead>"
            "<tbody><tr><td><code>int8</code></td><td>77.4 KB</td></tr></tbody></table>"
            '<p><a href="https://example.org/docs">docs</a>, <a href="mailto:audit@example.org">mail</a>, '
            '<a href="#gate">gate</a></p>'
            "<figure><img alt=\"latency of every variant\" src='plots/latency.png'>"
            "<figcaption>Latency</figcaption></figure>")
    folder = _with_card(tmp_path, card)
    page = static_report.render(index.verify_run(folder))
    assert _violations(page, _plot_bytes(folder)) == []
    section = page[page.index('<section class="card" id="card">'):page.index("</section>")]
    tags = [tag for tag, _, _ in _Page(section).tags]
    for tag in ["h1", "h2", "h3", "p", "strong", "code", "ol", "li", "em", "pre", "table", "thead", "tbody",
                "th", "td", "a", "figure", "img", "figcaption"]:
        assert tag in tags, tag
    assert "<th>pr_auc</th>" in section and "<td>0.8060</td>" in section and "77.4 KB" in section
    links = [a.get("href") for tag, a, _ in _Page(section).tags if tag == "a"]
    assert links == ["https://example.org/docs", "mailto:audit@example.org", "#gate"]
    # both card images are the run's own plots, embedded, with their alt text
    card_images = {a["alt"]: base64.b64decode(a["src"].split(",", 1)[1])
                   for tag, a, _ in _Page(section).tags if tag == "img"}
    assert card_images == {"tradeoff of every variant": (folder / "plots" / "tradeoff.png").read_bytes(),
                           "latency of every variant": (folder / "plots" / "latency.png").read_bytes()}


def test_every_plot_is_in_the_report_once_whatever_the_card_mentions(tmp_path):
    """A plot the card only names (in a comment, a script, plain text) is not shown by the card."""
    folder = _with_card(tmp_path, "<!-- plots/latency.png --><p>see plots/mitigation.png</p>"
                                  "<script>'plots/shap_global.png'</script>")
    page = static_report.render(index.verify_run(folder))
    embedded = [base64.b64decode(a["src"].split(",", 1)[1]) for tag, a, _ in _Page(page).tags if tag == "img"]
    assert sorted(embedded) == sorted(_plot_bytes(folder))


def _tree(folder):
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_report_is_written_beside_the_run_and_leaves_the_run_untouched(tmp_path, capsys):
    folder = fixtures.write_run(tmp_path, gate_passed=False)
    before = _tree(folder)
    assert main(["report", str(folder)]) == 0
    target = folder.with_name(folder.name + ".html")
    assert target.is_file() and f"Report: {target}" in capsys.readouterr().out
    assert _tree(folder) == before
    assert index.verify_run(folder).ok  # the run folder is still exactly what its manifest lists


def test_report_is_self_contained(tmp_path):
    folder = fixtures.write_run(tmp_path, gate_passed=False)
    page = static_report.write_report(folder, tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    sources = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    links = [source for source in sources if source.startswith("#")]  # the contents: links within the page
    assert {"#gate", "#tradeoffs", "#card", "#artifacts"} <= set(links)
    assert all(f'id="{link[1:]}"' in page for link in links), links
    sources = [source for source in sources if not source.startswith("#")]
    assert sources and all(source.startswith("data:image/png;base64,") for source in sources), sources
    # the card's plot is the run's own PNG, byte for byte
    embedded = {base64.b64decode(source.split(",", 1)[1]) for source in sources}
    assert (folder / "plots" / "tradeoff.png").read_bytes() in embedded
    assert len(embedded) == len([p for p in (folder / "plots").iterdir()])  # every plot, card or not


def test_report_says_what_an_auditor_needs(tmp_path):
    folder = fixtures.write_run(tmp_path, gate_passed=False)
    page = static_report.render(index.verify_run(folder))
    assert "Gate FAILED" in page and "int8: equalized odds difference by Age is 0.357 (limit 0.3)" in page
    assert "<code>int8</code> (shipped)" in page and "not built: converter crashed (exit 139)" in page
    assert "Pareto" in page and "Model card: Fixture fraud" in page
    manifest = json.loads((folder / "manifest.json").read_text())
    for record in manifest["artifacts"]:
        assert record["sha256"] in page


def test_text_from_the_run_is_escaped(tmp_path):
    folder = fixtures.write_run(tmp_path, data_path="<script>alert(1)</script>.csv")
    page = static_report.render(index.verify_run(folder))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;.csv" in page


@pytest.mark.parametrize("damage, expected", [
    (lambda f: fixtures.tamper(f, "gate.json"), "is corrupt: gate.json: SHA-256 does not match"),
    (lambda f: fixtures.remove_file(f, "plots/tradeoff.png"),
     "plots/tradeoff.png is listed in the manifest but missing"),
    (lambda f: fixtures.break_json(f, "metrics.json"), "metrics.json is not valid JSON"),
])
def test_a_broken_run_gets_no_report(tmp_path, capsys, damage, expected):
    folder = fixtures.write_run(tmp_path)
    damage(folder)
    assert main(["report", str(folder)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert expected in err and "How to fix" in err and "Traceback" not in err
    assert not folder.with_name(folder.name + ".html").exists()


def test_an_unfinished_run_gets_no_report(tmp_path):
    folder = fixtures.make_unfinished(fixtures.write_run(tmp_path))
    with pytest.raises(InputError, match="is unfinished"):
        static_report.write_report(folder)


def test_the_report_is_never_written_inside_the_run(tmp_path):
    folder = fixtures.write_run(tmp_path)
    with pytest.raises(InputError, match="inside the run folder"):
        static_report.write_report(folder, folder / "report.html")
    with pytest.raises(InputError, match="inside the run folder"):
        static_report.write_report(folder, folder / "plots" / "report.html")
    assert index.verify_run(folder).ok


def test_not_a_run_folder(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == EXIT_BAD_INPUT
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == EXIT_BAD_INPUT
    assert "has no manifest.json" in capsys.readouterr().err
