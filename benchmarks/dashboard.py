"""Dashboard page timings (a benchmark, not a test): how long each page takes to open over a
reports folder of 100 runs, the first time (caches cold: every run verified, SHA-256 of
every file) and once cached (the target: under 2 s).

    python -m benchmarks.dashboard                       # 100 fixture runs, AppTest + browser
    python -m benchmarks.dashboard --from-run reports/fraud/<run-id>   # 100 copies of a real run
    python -m benchmarks.dashboard --no-browser          # AppTest timings only
    python -m benchmarks.dashboard --screenshot docs/dashboard.png --screenshot-reports reports

Two measurements:
* AppTest: the page script run in-process by Streamlit's test runner (server-side time).
* Browser (needs Debian's chromium + chromium-driver): `edgeaudit dashboard` on localhost,
  headless Chromium clicks the page's link; timed until the page's content is drawn and
  Streamlit is idle (what a person waits for).
Results go to benchmarks/results/dashboard.json. The machine may be shared: read the
numbers as an order of magnitude.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures import browser  # noqa: E402
from tests.fixtures import runs as fixtures  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
APP = ROOT / "apps" / "dashboard.py"
TARGET_SECONDS = 2.0
# (sidebar label, page file, a text the page shows once drawn)
PAGES = [
    ("Runs", "views/runs.py", "Finished runs"),
    ("Compare runs", "views/compare.py", "Settings that differ"),
    ("Edge trade-offs", "views/tradeoffs.py", "Every variant, run in LiteRT"),
    ("Fairness", "views/fairness.py", "What compression did to each group"),
    ("Explanations", "views/explanations.py", "Local explanations, float and shipped model side by side"),
    ("Model card & downloads", "views/model_card.py", "Edge models"),
]
MODALITIES = [("fraud", "tabular", "pr_auc"), ("sentiment", "text", "roc_auc"), ("imaging", "image", "roc_auc"),
              ("maintenance", "window", "pr_auc")]


def build_reports(folder: Path, runs: int, from_run: Path | None) -> dict:
    """`runs` finished runs under `folder` (fixtures of four modalities, or copies of a real run)."""
    for number in range(runs):
        stamp = _dt.datetime(2026, 1, 1) + _dt.timedelta(hours=number)
        run_id = f"{stamp:%Y%m%d-%H%M%S}-seed{number}-{number:06x}"
        if from_run:
            manifest = json.loads((from_run / "manifest.json").read_text())
            target = folder / manifest["domain"] / run_id
            shutil.copytree(from_run, target)
            manifest.update(run_id=run_id, created_utc=f"{stamp:%Y-%m-%dT%H:%M:%S}+00:00", seed=number)
            (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
        else:
            domain, modality, headline = MODALITIES[number % len(MODALITIES)]
            fixtures.write_run(folder, domain=domain, modality=modality, headline_metric=headline, run_id=run_id,
                               created_utc=f"{stamp:%Y-%m-%dT%H:%M:%S}+00:00", seed=number,
                               gate_passed=number % 3 != 0, quality_shift=(number % 7) / 1000)
    files = [path for path in folder.rglob("*") if path.is_file()]
    return {"runs": runs, "source": str(from_run) if from_run else "fixture runs (tests/fixtures/runs.py)",
            "files": len(files), "megabytes": round(sum(p.stat().st_size for p in files) / 1e6, 1)}


def apptest_timings(reports: Path, warm_repeats: int) -> dict:
    import logging

    import altair  # noqa: F401  (imports out of the timings)
    import pandas  # noqa: F401
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["EDGEAUDIT_REPORTS"] = str(reports)
    for name in ("streamlit", "streamlit.runtime.caching.cache_data_api"):
        logging.getLogger(name).setLevel(logging.ERROR)  # "No runtime found": expected under AppTest
    timings = {}
    for label, page, _ in PAGES:
        st.cache_data.clear()  # cold: every run listed and verified again, every file read again
        st.cache_resource.clear()
        at = AppTest.from_file(str(APP), default_timeout=600)
        if page != "views/runs.py":
            at.run()  # AppTest learns the pages from a first run
            st.cache_data.clear()
            st.cache_resource.clear()
            first = _timed(lambda: at.switch_page(page).run())
        else:
            first = _timed(at.run)
        warm = [_timed(at.run) for _ in range(warm_repeats)]
        if at.exception:
            raise SystemExit(f"{page}: {[e.value for e in at.exception]}")
        timings[label] = {"first_open_seconds": round(first, 3),
                          "cached_median_seconds": round(statistics.median(warm), 3),
                          "cached_max_seconds": round(max(warm), 3)}
        print(f"  AppTest {label:24s} first {first:6.2f} s   cached median {statistics.median(warm):.3f} s", flush=True)
    return timings


def browser_timings(reports: Path, rounds: int, log: Path) -> dict:
    timings: dict[str, dict] = {label: {"visits": []} for label, _, _ in PAGES}
    with browser.running_dashboard(reports, log) as url:
        driver = browser.new_driver()
        try:
            started = time.perf_counter()
            driver.get(url)
            browser.wait_for_text(driver, "Finished runs", timeout=300)
            browser.wait_until_idle(driver, timeout=300)
            first_load = time.perf_counter() - started
            print(f"  browser first load (verifies every run) {first_load:.2f} s", flush=True)
            for round_number in range(rounds + 1):
                order = PAGES[1:] + PAGES[:1]
                for label, _, expect in order:
                    seconds = browser.open_page(driver, label, expect=expect, timeout=300)
                    timings[label]["visits"].append(round(seconds, 3))
                    if browser.exceptions_shown(driver):
                        raise SystemExit(f"{label}: {browser.exceptions_shown(driver)}")
        finally:
            driver.quit()
    for label, values in timings.items():
        visits = values["visits"]
        values.update(first_visit_seconds=visits[0], cached_median_seconds=round(statistics.median(visits[1:]), 3),
                      cached_max_seconds=max(visits[1:]))
        print(f"  browser {label:24s} first {visits[0]:6.2f} s   cached median {values['cached_median_seconds']:.3f} s",
              flush=True)
    return {"first_load_seconds": round(first_load, 3), "pages": timings}


def take_screenshot(reports: Path, target: Path, page: str, run_text: str | None, log: Path) -> Path:
    """A screenshot of one page over `reports` (for the README)."""
    with browser.running_dashboard(reports, log) as url:
        driver = browser.new_driver(width=1400, height=1000)
        try:
            driver.get(url)
            browser.wait_for_text(driver, "Finished runs")
            expect = dict((label, text) for label, _, text in PAGES)[page]
            browser.open_page(driver, page, expect=expect)
            if run_text:
                browser.choose(driver, "run_picker", run_text)
                browser.wait_for_text(driver, run_text)
                browser.wait_until_idle(driver)
            time.sleep(1.0)  # charts finish their transitions
            return browser.screenshot(driver, target, max_height=1300)
        finally:
            driver.quit()


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="runs in the reports folder")
    parser.add_argument("--from-run", type=Path, help="copy this real run folder instead of writing fixtures")
    parser.add_argument("--no-browser", action="store_true", help="AppTest timings only")
    parser.add_argument("--rounds", type=int, default=3, help="cached browser visits of each page")
    parser.add_argument("--screenshot", type=Path, help="also save a screenshot (e.g. docs/dashboard.png) and stop")
    parser.add_argument("--screenshot-reports", type=Path, help="reports folder for the screenshot "
                        "(default: the benchmark's fixture runs)")
    parser.add_argument("--screenshot-page", default="Edge trade-offs", choices=[label for label, _, _ in PAGES])
    parser.add_argument("--screenshot-run", help="text of the run to pick in the sidebar (e.g. a run id)")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="edgeaudit-dashboard-bench-") as scratch:
        scratch = Path(scratch)
        if arguments.screenshot:
            reports = arguments.screenshot_reports
            if reports is None:
                reports = scratch / "reports"
                build_reports(reports, 8, arguments.from_run)
            reason = browser.missing_reason()
            if reason:
                raise SystemExit(f"no screenshot: {reason}")
            path = take_screenshot(reports.resolve(), arguments.screenshot, arguments.screenshot_page,
                                   arguments.screenshot_run, scratch / "dashboard.log")
            print(f"Screenshot: {path}")
            return

        reports = scratch / "reports"
        started = time.perf_counter()
        folder = build_reports(reports, arguments.runs, arguments.from_run.resolve() if arguments.from_run else None)
        print(f"{folder['runs']} runs, {folder['files']} files, {folder['megabytes']} MB in "
              f"{time.perf_counter() - started:.1f} s ({folder['source']})", flush=True)
        result = {
            "case": "dashboard",
            "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                        "note": "shared machine: other work may run at the same time"},
            "reports": folder,
            "target_cached_seconds": TARGET_SECONDS,
            "apptest": apptest_timings(reports, warm_repeats=5),
        }
        reason = browser.missing_reason()
        if arguments.no_browser or reason:
            result["browser"] = {"skipped": "--no-browser" if arguments.no_browser else reason}
        else:
            result["browser"] = browser_timings(reports, arguments.rounds, scratch / "dashboard.log")
        cached = [page["cached_median_seconds"] for page in result["apptest"].values()]
        if "pages" in result["browser"]:
            cached += [page["cached_median_seconds"] for page in result["browser"]["pages"].values()]
        result["target_met"] = max(cached) < TARGET_SECONDS
        RESULTS.mkdir(parents=True, exist_ok=True)
        target = RESULTS / "dashboard.json"
        target.write_text(json.dumps(result, indent=2) + "\n")
        print(f"slowest cached page {max(cached):.3f} s (target < {TARGET_SECONDS} s): "
              f"{'met' if result['target_met'] else 'NOT met'}; written to {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
