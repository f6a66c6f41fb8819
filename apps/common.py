"""What every page of the dashboard shares: the reports folder, the cached run listing,
the run picker, cached readers, and a guard that turns an unexpected shape into a warning.

The reports folder comes from the environment (`EDGEAUDIT_REPORTS`, set by
`edgeaudit dashboard --reports DIR`), never from a page: no page takes a path from the
user. Runs are picked from the listing by key; artifacts are read only if the run's
manifest lists them (`pipeline.reports_index.read_bytes`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamlit as st

from pipeline import artifacts
from pipeline import reports_index as index
from pipeline.reports_index import RunEntry
from pipeline.reports_index import format_value as fmt

REPORTS_ENV = "EDGEAUDIT_REPORTS"
_PICKED = "edgeaudit_run"          # the picked run's key, kept across pages
_PICKER = "run_picker"             # the sidebar select box
_DOMAIN_PICKER = "run_domain"


def reports_dir() -> Path:
    return Path(os.environ.get(REPORTS_ENV) or "reports").resolve()


# ---- listing and reading, cached ----------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=5000)
def _verified(path: str, key: str, signature: str) -> RunEntry:
    """Verifying a run (SHA-256 of every file) is the expensive part: once per folder state."""
    return index.verify_run(path, key=key)


def runs() -> list[RunEntry]:
    """Every run under the reports folder, verified; re-verified when a run's files change."""
    folders = index.find_run_folders(reports_dir())
    return index.sort_runs(_verified(str(path), key, index.run_signature(path)) for key, path in folders)


def good_runs() -> list[RunEntry]:
    return [entry for entry in runs() if entry.ok]


@st.cache_data(show_spinner=False, max_entries=2000)
def _json(_entry: RunEntry, key: str, relative: str, sha256: str) -> Any:
    return index.read_json(_entry, relative)


def load_json(entry: RunEntry, relative: str) -> Any:
    """A JSON artifact of a run (None when the run does not list it); cached by content hash."""
    record = entry.artifacts.get(relative)
    if record is None:
        return None
    return _json(entry, entry.key, relative, record.get("sha256", ""))


@st.cache_resource(show_spinner=False, max_entries=500)
def _blob(_entry: RunEntry, key: str, relative: str, sha256: str) -> bytes:
    return index.read_bytes(_entry, relative)


def load_bytes(entry: RunEntry, relative: str) -> bytes:
    """Bytes of an artifact (plots, .tflite models): shared, read-only, cached by content hash."""
    record = entry.artifacts[relative]
    return _blob(entry, entry.key, relative, record.get("sha256", ""))


# ---- picking a run ------------------------------------------------------------------------------


def pick_run(title: str) -> RunEntry | None:
    """The page title, the sidebar run picker (kept across pages) and the picked run.

    `?run=<key>` in the address preselects a run if the key is in the listing.
    """
    st.title(title)
    listing = runs()
    entries = [entry for entry in listing if entry.ok]
    if not entries:
        no_runs_message()
        return None
    domains = sorted({entry.domain for entry in entries})
    domain = st.sidebar.selectbox("Domain", ["all domains", *domains], key=_DOMAIN_PICKER)
    shown = [e for e in entries if domain == "all domains" or e.domain == domain] or entries
    by_key = {entry.key: entry for entry in shown}
    labels = index.picker_labels(shown)
    requested = st.query_params.get("run")
    for candidate in (st.session_state.get(_PICKER), st.session_state.get(_PICKED), requested, shown[0].key):
        if candidate in by_key:
            st.session_state[_PICKER] = candidate
            break
    choice = st.sidebar.selectbox("Run", list(by_key), format_func=labels.__getitem__, key=_PICKER,
                                  help="Finished, verified runs only; broken runs are listed on the Runs page.")
    st.session_state[_PICKED] = choice
    entry = by_key[choice]
    broken = len(listing) - len(entries)
    if broken:
        st.sidebar.caption(f"{broken} run(s) not shown: unfinished or corrupt (see Runs).")
    st.caption(f"`{entry.domain}` · run `{entry.run_id}` · folder `{entry.key}` · created {entry.created or 'n/a'} · "
               f"{entry.manifest.get('domain_title') or ''}")
    if entry.unlisted_warning:
        st.warning(entry.unlisted_warning[:1].upper() + entry.unlisted_warning[1:] + ".")
    return entry


def no_runs_message() -> None:
    folder = reports_dir()
    if not folder.is_dir():
        st.warning(f"There is no reports folder at `{folder}`. Write a run with `edgeaudit run fraud --out {folder}` "
                   "or start the dashboard with `edgeaudit dashboard --reports DIR`.")
    elif runs():
        st.warning(f"No finished, intact run under `{folder}`: every run found is unfinished or corrupt "
                   "(see the Runs page for the reasons).")
    else:
        st.info(f"No runs yet under `{folder}`. Write one with `edgeaudit run fraud --out {folder}`.")


# ---- display helpers ----------------------------------------------------------------------------


@contextmanager
def guard(what: str):
    """Show `what` if its data has the shape we know; otherwise a warning, and the page goes on."""
    try:
        yield
    except index.RunReadError as error:
        st.error(f"{what}: {error}")
    except Exception as error:  # an unknown key or shape from a newer or other domain
        st.warning(f"{what} could not be shown for this run ({type(error).__name__}: {error}).")


_DISPLAY_WIDTH = 1400  # Streamlit scales wider images down on every page load: do it once


@st.cache_resource(show_spinner=False, max_entries=500)
def _display_png(_entry: RunEntry, key: str, relative: str, sha256: str) -> bytes:
    """A plot no wider than the page, scaled once and kept (Streamlit would scale it on every load)."""
    import io

    from PIL import Image

    data = index.read_bytes(_entry, relative)
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "PNG" and image.width <= _DISPLAY_WIDTH:
            return data
        height = round(image.height * _DISPLAY_WIDTH / image.width) if image.width > _DISPLAY_WIDTH else image.height
        scaled = image.convert("RGBA").resize((min(image.width, _DISPLAY_WIDTH), height), Image.BILINEAR)
        out = io.BytesIO()
        scaled.save(out, format="PNG")
        return out.getvalue()


def show_plot(entry: RunEntry, relative: str, caption: str | None = None) -> bool:
    """The run's own PNG, if the manifest lists it; returns whether it was shown."""
    if relative not in entry.artifacts:
        return False
    st.image(_display_png(entry, entry.key, relative, entry.artifacts[relative].get("sha256", "")),
             caption=caption or relative)
    return True


def plots_matching(entry: RunEntry, prefix: str) -> list[str]:
    return [path for path in index.plots(entry) if path.startswith(artifacts.PLOTS_FOLDER + prefix)]


def estimate(cell: Any, digits: int = 3) -> str:
    """`0.812 [0.770, 0.851]` from {"value", "interval"}, or the plain number."""
    if isinstance(cell, dict):
        value, interval = cell.get("value"), cell.get("interval") or []
        if value is None:
            return "n/a"
        text = f"{value:.{digits}f}"
        if len(interval) == 2 and None not in interval:
            text += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
        return text
    return fmt(cell, digits)


def value_of(cell: Any) -> float | None:
    value = cell.get("value") if isinstance(cell, dict) else cell
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def interval_of(cell: Any) -> tuple[float | None, float | None]:
    interval = cell.get("interval") if isinstance(cell, dict) else None
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        return tuple(float(v) if isinstance(v, (int, float)) else None for v in interval)  # type: ignore[return-value]
    return None, None


def contents(sections: list[tuple[str, str]]) -> None:
    """A line of links to the page's sections: (title, anchor) pairs, each anchor given to its st.subheader."""
    st.markdown("On this page: " + " · ".join(f"[{title}](#{anchor})" for title, anchor in sections))
