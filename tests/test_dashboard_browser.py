"""End to end, in a real browser: `edgeaudit dashboard` on a free localhost port, headless
Chromium (Debian's chromium + chromium-driver, via Selenium) clicks through every page,
checks what is shown, picks a run, downloads the static report, and saves screenshots.

Skipped, with the reason, where Chromium is not installed; `.ci/run` installs it."""

import os
from pathlib import Path

import pytest

from tests.fixtures import browser
from tests.fixtures import runs as fixtures

_missing = browser.missing_reason()
pytestmark = pytest.mark.skipif(_missing is not None, reason=_missing or "")

# (sidebar label, a text that only that page shows once drawn, more texts it must show)
PAGES = [
    ("Runs", "Unfinished or corrupt runs", [
        "Finished runs", "Why gates failed", "int8: equalized odds difference by Age is 0.357 (limit 0.3)",
        "5 run(s) cannot be shown. The other runs are not affected.",
        "audit.json is not valid JSON", "models/int8.tflite is listed in the manifest but missing",
        "gate.json: SHA-256 does not match the manifest", "manifest.json is not valid JSON",
        "unfinished: the folder still has the .incomplete- prefix"]),
    ("Compare runs", "Settings that differ", ["Run A", "Run B", "Gate checks", "Variants"]),
    ("Edge trade-offs", "Every variant, run in LiteRT", [
        "the variant chosen to ship", "Variant qat_int8 was not built: converter crashed (exit 139)",
        "(no other variant is smaller or faster with an equal or better", "Latency (LiteRT, 1 thread)",
        "Where quantization error comes from", "How pruning was spread over the layers"]),
    ("Fairness", "What compression did to each group", [
        "Metrics by Sex", "Disparities", "Mitigation: before and after", "as error bars", "Which decisions flipped",
        "Flip ledger (flips.csv)", "closest to the float model's threshold first"]),
    ("Explanations", "Local explanations, float and shipped model side by side", [
        "Global importance (mean |SHAP|)", "keras_float (reference)", "int8 (shipped)",
        "Does the shipped model decide for the same reasons in every group?"]),
    ("Model card & downloads", "Edge models", [
        "Report (HTML, self-contained)", "Whole run (zip)", "int8.tflite", "Model card: Fixture"]),
]


_EMPTY_FRAMES = """
import altair as alt, pandas as pd, streamlit as st
rows = pd.DataFrame({"variant": ["a", "b", "c"], "value": [1.0, 2.0, 3.0]})
st.subheader("drawn")
st.altair_chart(alt.Chart(rows).mark_bar().encode(x="value:Q", y="variant:N").properties(height=alt.Step(28)))
st.subheader("bands collapsed")
st.altair_chart(alt.Chart(rows).mark_bar().encode(x="value:Q", y="variant:N").properties(height=alt.Step(0)))
st.subheader("marks outside the scale")
st.altair_chart(alt.Chart(rows).mark_bar(clip=True).encode(
    x=alt.X("value:Q", scale=alt.Scale(domain=[10, 20])), y="variant:N").properties(height=120))
"""


def test_the_mark_check_tells_a_drawn_chart_from_an_empty_frame(tmp_path):
    """Height alone passes all three of these charts; the mark check passes only the first."""
    script = tmp_path / "frames.py"
    script.write_text(_EMPTY_FRAMES)
    with browser.running_dashboard(None, tmp_path / "frames.log", script=script) as url:
        driver = browser.new_driver(tmp_path)
        try:
            driver.get(url)
            browser.wait_for_text(driver, "marks outside the scale")
            browser.wait_until_idle(driver)
            assert all(height > 0 for _, height in browser.chart_heights(driver))
            drawn = dict(browser.chart_marks(driver))
        finally:
            driver.quit()
    assert drawn == {"drawn": 3, "bands collapsed": 0, "marks outside the scale": 0}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The dashboard over the standard fixture reports, and one headless Chromium on it."""
    root = tmp_path_factory.mktemp("browser")
    reports = root / "reports"
    fixtures.write_standard_reports(reports)
    downloads = root / "downloads"
    downloads.mkdir()
    log = root / "dashboard.log"
    with browser.running_dashboard(reports, log) as url:
        driver = browser.new_driver(downloads)
        try:
            yield {"url": url, "driver": driver, "log": log, "downloads": downloads,
                   "screenshots": Path(os.environ.get("EDGEAUDIT_SCREENSHOTS") or root / "screenshots")}
        finally:
            driver.quit()


def test_the_command_prints_the_address(session):
    log = session["log"].read_text()
    assert f"Open {session['url']}" in log and "10 run folder(s)" in log


def test_click_through_every_page(session):
    driver, url = session["driver"], session["url"]
    driver.get(url)
    browser.wait_for_text(driver, PAGES[0][1])
    for label, marker, texts in PAGES:
        browser.open_page(driver, label, expect=marker)
        browser.wait_for_text(driver, *texts)
        assert browser.exceptions_shown(driver) == [], label
        shot = browser.screenshot(driver, session["screenshots"] / f"{label.split()[0].lower()}.png")
        assert shot.stat().st_size > 10_000
    print(f"screenshots in {session['screenshots']}")


def test_every_chart_of_every_domain_is_drawn_the_console_is_clean_and_nothing_is_fetched_from_outside(session):
    """What a person sees: each chart has a height, for every domain's run, on every page with charts."""
    driver, url = session["driver"], session["url"]
    driver.get(url)
    browser.wait_for_text(driver, PAGES[0][1])
    browser.console_errors(driver)  # start from an empty console
    drawn = {}
    for label, marker, _ in PAGES[2:5]:  # Edge trade-offs, Fairness, Explanations: the pages with charts
        browser.open_page(driver, label, expect=marker)
        for domain in ("fraud", "sentiment", "imaging", "maintenance"):
            browser.choose(driver, "run_picker", domain)
            browser.wait_until_idle(driver)
            heights = browser.chart_heights(driver)
            assert heights, (label, domain)
            assert all(height > 0 for _, height in heights), (label, domain, heights)
            marks = browser.chart_marks(driver)  # and marks inside it, not an empty frame
            assert all(drawn > 0 for _, drawn in marks), (label, domain, marks)
            assert browser.console_errors(driver) == [], (label, domain)
            drawn[(label, domain)] = len(heights)
    assert browser.outside_requests(driver, url) == []
    # The signature chart: what compression did to each group, drawn on the Fairness page.
    browser.open_page(driver, "Fairness", expect="What compression did to each group")
    browser.wait_until_idle(driver)
    assert any("compression" in heading.lower() and height > 100 for heading, height in browser.chart_heights(driver))


def test_pick_a_run_in_the_sidebar_and_keep_it_across_pages(session):
    driver = session["driver"]
    driver.get(session["url"])
    browser.wait_for_text(driver, PAGES[0][1])
    browser.open_page(driver, "Explanations", expect="Local explanations")
    browser.choose(driver, "run_picker", "sentiment")
    browser.wait_for_text(driver, "Tokens that push the score", "battery", "Red raises the score")
    assert "<b>again</b>" in browser.page_text(driver)  # text from the data is shown, never run as HTML
    browser.wait_until_idle(driver)
    browser.screenshot(driver, session["screenshots"] / "explanations-text.png")
    browser.open_page(driver, "Edge trade-offs", expect="Every variant, run in LiteRT")
    browser.wait_for_text(driver, "sentiment · run 20261121-080000-seed0-cccccc", "roc_auc against size and latency")
    browser.open_page(driver, "Fairness", expect="What compression did to each group")
    browser.choose(driver, "fairness_column", "Age")
    browser.wait_for_text(driver, "Metrics by Age", "8 rows, fewer than min_group_size=20")
    assert browser.exceptions_shown(driver) == []


def test_download_the_static_report(session):
    driver, downloads = session["driver"], session["downloads"]
    driver.get(session["url"])
    browser.wait_for_text(driver, PAGES[0][1])
    browser.open_page(driver, "Model card & downloads", expect="Report (HTML, self-contained)")
    browser.click_button(driver, "download_report")
    report = browser.wait_for_download(downloads, "*.html")
    page = report.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "EdgeAudit report" in page and "data:image/png;base64," in page
