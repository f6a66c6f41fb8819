"""The static report of a tampered run, opened from disk in a real browser (headless Chromium).

The run's model card and gate.json carry payloads that would mark the page (window.pwned,
document.title, data-pwned on the body) or call a local server if they ever ran. The report
must show its card and plots and nothing else: no marker, no request, no Content-Security-Policy
violation and no error in the console. Then the same report with the payloads pasted in raw,
as if the sanitiser had missed them all, shows that the page's CSP alone stops them: nothing
runs, nothing is fetched, and every console error is a CSP report of something it blocked.

Skipped, with the reason, where Chromium is not installed; `.ci/run` installs it."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import threading
from pathlib import Path

import pytest

from pipeline import static_report
from tests.fixtures import browser
from tests.fixtures import runs as fixtures

_missing = browser.missing_reason()
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")

# Runs before the page's own content (DevTools scripts are not subject to the page's CSP):
# records every CSP violation and every uncaught error the page reports.
_WATCH = """window.__violations = []; window.__errors = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(
    {directive: e.effectiveDirective, blocked: e.blockedURI, sample: e.sample}));
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);"""

MARKERS = """return {title: document.title, pwned: window.pwned === undefined ? null : String(window.pwned),
                 dataset: document.body.dataset.pwned === undefined ? null : document.body.dataset.pwned}"""


def _card_payloads(server: str) -> str:
    """Markup a tampered model card carries; every piece would set a marker or call `server`."""
    return "\n".join([
        "<script>document.title='PWNED'</script>",
        "<scr<script></script>ipt>window.pwned='split script'</script>",
        "<svg onload=\"window.pwned='svg'\"></svg>",
        "<img src=x onerror=\"document.body.dataset.pwned='img onerror'\">",
        "<iframe srcdoc=\"<script>parent.window.pwned='srcdoc'</script>\"></iframe>",
        "<noscript><p title=\"</noscript><img src=x onerror=window.pwned='noscript'>\"></noscript>",
        f"<img src=\"{server}/beacon.png\">",
        f"<style>@import url({server}/import.css)</style>",
        f"<link rel=\"stylesheet\" href=\"{server}/link.css\">",
        f"<object data=\"{server}/object\"></object>",
        f"<meta http-equiv=\"refresh\" content=\"0;url={server}/refresh\">",
        f"<form action=\"{server}/form\"><button class=\"payload\">Send</button></form>",
        "<p><a class=\"payload\" href=\"javascript:window.pwned='link'\">click me</a> "
        "<a class=\"payload\" href=\"JaVaScRiPt:document.title='PWNED'\">click me too</a></p>",
        # last: left open, the sanitiser drops everything after it
        "<math><mtext><table><mglyph><style><img src=x onerror=\"window.pwned='math'\">",
    ])


def _raw_payloads(server: str) -> str:
    """The same kinds of markup pasted into the report unsanitised (a sanitiser bypass)."""
    return "\n".join([
        "<script>window.pwned='raw script'</script>",
        "<img src=x onerror=\"window.pwned='raw onerror'\">",
        f"<img src=\"{server}/raw-beacon.png\">",
        f"<link rel=\"stylesheet\" href=\"{server}/raw-link.css\">",
        f"<style>body{{background:url({server}/raw-background.png)}}</style>",
        f"<iframe src=\"{server}/raw-frame\"></iframe>",
        f"<form action=\"{server}/raw-form\"><button id=\"raw-submit\">Send</button></form>",
        "<a id=\"raw-link\" href=\"javascript:window.pwned='raw link'\">raw link</a>",
    ])


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        type(self).requests.append(self.path)
        self.send_response(204)
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _recording_server():
    """A localhost server that records every request; yields (its URL, the list of paths asked for)."""
    handler = type("Recorder", (_Recorder,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", browser.free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()


def _driver_with_console():
    """Headless Chromium as browser.new_driver starts it, plus the console log (goog:loggingPrefs)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser.browser_binaries()
    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--disable-extensions", "--no-first-run", "--disable-background-networking",
                     "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download a driver
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(browser.WAIT_SECONDS)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _WATCH})
    return driver


def _wait(driver, seconds: float):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds, poll_frequency=0.05)


def _open(driver, page: Path) -> None:
    driver.get(page.as_uri())
    _wait(driver, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _errors(driver) -> list[str]:
    """The console's errors and warnings since the last call."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


def _tampered_run(tmp_path: Path, server: str) -> Path:
    card = fixtures.run_contents()[1]["model_card.html"][0].decode("utf-8")
    card = card.replace("</body>", _card_payloads(server) + "\n</body>")
    gate = {"passed": False, "ship_variant": "int8", "checks": [
        {"name": "drop", "value": "<img src=x onerror=\"window.pwned='gate value'\">",
         "limit": f"<img src=\"{server}/gate-limit.png\">", "passed": False, "explanation": "tampered"}]}
    return fixtures.write_run(tmp_path / "reports", extra_files={
        "model_card.html": (card.encode("utf-8"), "model_card"),
        "gate.json": (json.dumps(gate).encode("utf-8"), "gate")})


def test_a_tampered_report_shows_the_card_and_runs_nothing(tmp_path):
    from selenium.webdriver.common.by import By

    with _recording_server() as (server, requests):
        folder = _tampered_run(tmp_path, server)
        report = static_report.write_report(folder, tmp_path / "report.html")
        driver = _driver_with_console()
        try:
            # 1. the report as written: the sanitised card, the plots, no payload anywhere
            _open(driver, report)
            assert driver.execute_script(MARKERS) == {"title": driver.title, "pwned": None, "dataset": None}
            assert driver.title.startswith("EdgeAudit report: Fixture fraud")
            links = driver.find_elements(By.XPATH, "//section[@class='card']//a[starts-with(., 'click me')]")
            assert len(links) == 2  # still there, as text: what a reader would click
            for link in links:
                link.click()
            assert driver.execute_script(MARKERS) == {"title": driver.title, "pwned": None, "dataset": None}
            assert driver.current_url == report.as_uri()
            assert driver.execute_script("return window.__violations") == []
            assert driver.execute_script("return window.__errors") == []
            # A clean report logs nothing: a CSP report here would mean the sanitiser let
            # something through (the CSP caught it, but the sanitiser must not rely on that).
            assert _errors(driver) == []
            heading = driver.find_element(By.CSS_SELECTOR, "section.card h1")
            assert heading.text.startswith("Model card: Fixture fraud") and heading.is_displayed()
            assert heading.size["height"] > 0
            assert "<img src=x onerror=" in browser.page_text(driver)  # the gate's string, shown as text
            widths = driver.execute_script("return [...document.images].map(i => i.complete && i.naturalWidth)")
            assert len(widths) == len(list((folder / "plots").iterdir())) and all(w > 0 for w in widths), widths

            # 2. the same report with the payloads pasted in raw: the CSP alone must stop them
            raw = tmp_path / "raw.html"
            raw.write_text(report.read_text(encoding="utf-8").replace(
                "<body>", "<body>" + _raw_payloads(server), 1), encoding="utf-8")
            _open(driver, raw)
            driver.find_element(By.ID, "raw-link").click()
            driver.find_element(By.ID, "raw-submit").click()
            _wait(driver, 5).until(
                lambda d: {"script-src-elem", "script-src-attr", "img-src", "style-src-elem", "frame-src",
                           "form-action"} <= {v["directive"] for v in d.execute_script("return window.__violations")})
            assert driver.execute_script(MARKERS) == {"title": driver.title, "pwned": None, "dataset": None}
            assert driver.current_url == raw.as_uri()  # the form did not navigate away
            errors = _errors(driver)
            # Each blocked thing is reported on the console, as it should be; nothing else is.
            assert errors and all("Content Security Policy" in message for message in errors), errors
        finally:
            driver.quit()
        assert requests == []  # nothing called out, from either page
