"""Reading finished runs back: list the run folders under a reports folder, verify each
against its manifest, and read the verified artifacts. Used by the dashboard (`apps/`) and
by `edgeaudit report`; pure functions over the file system, no Streamlit, no TensorFlow.

A run is listed with one of four statuses:

* ``ok``          the manifest parses, every artifact it lists is there, inside the run
                  folder, with the listed size and SHA-256, and every JSON artifact parses;
* ``unfinished``  a ``.incomplete-<run-id>`` staging folder: interrupted, or still running;
* ``corrupt``     anything else wrong (no or bad manifest, a listed file gone, changed or
                  unreadable, bad JSON), with every problem found, the first as the reason;
* ``missing``     the folder was there when listed and is gone now.

Only ``ok`` runs are read. The dashboard never builds a path from what a user typed: a run
is picked from `list_runs`' entries (its `path` comes from walking the reports folder), and
an artifact is read only if the manifest lists it (`read_bytes` refuses anything else).

Where each part lives (one module per idea):

* ``entries.py``: `RunEntry`, the statuses, `picker_labels`, `RunReadError`;
* ``verify.py``: finding run folders, verifying each against its manifest, listing them;
* ``read.py``: reading a verified run's listed artifacts (bytes, JSON, plots, models);
* ``bundles.py``: the zips to download (one variant with its README, or the whole run);
* ``rows.py``: the tables pages share (trade-off rows, Pareto flags, label heights,
  configuration differences, cell formatting).
"""

from __future__ import annotations

# Re-exported: every name the dashboard, the static report and the tests use from pipeline.reports_index.
from pipeline.reports_index.bundles import run_zip, variant_bundle, variant_readme
from pipeline.reports_index.entries import (CORRUPT, FLOAT_MODEL, MISSING, OK, UNFINISHED, RunEntry, RunReadError,
                                            picker_labels)
from pipeline.reports_index.read import analyses, artifacts_with_role, model_files, plots, read_bytes, read_json
from pipeline.reports_index.rows import (config_differences, flatten, format_value, higher_is_better, label_heights,
                                         pareto_flags, tradeoff_rows)
from pipeline.reports_index.verify import find_run_folders, list_runs, run_signature, sort_runs, verify_run
