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
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from pipeline.artifacts import (AUDIT, COMPRESSION, DEPLOYMENT, EXPLANATIONS, GATE, INCOMPLETE_PREFIX, MANIFEST, METRICS,
                                MITIGATION, MODEL_CARD_MARKDOWN, sha256_file)

OK = "ok"
UNFINISHED = "unfinished"
CORRUPT = "corrupt"
MISSING = "missing"

# Files that make a folder look like a run even when its manifest is gone.
_RUN_MARKERS = (METRICS, AUDIT, GATE, EXPLANATIONS, COMPRESSION, MITIGATION, MODEL_CARD_MARKDOWN)
# Metrics where a smaller value is better (everything else: larger is better).
_LOWER_IS_BETTER = {"brier", "expected_calibration_error", "loss", "mae", "rmse", "mse", "log_loss"}
FLOAT_MODEL = "keras_float"


@dataclass(frozen=True)
class RunEntry:
    """One run folder as listed and verified. `key` (the folder relative to the reports
    folder, e.g. ``fraud/20261121-061653-seed0-39d029``) is unique; `path` is absolute."""

    key: str
    path: str
    domain: str
    run_id: str
    status: str
    problems: tuple[str, ...] = ()
    manifest: dict = field(default_factory=dict)
    gate: dict = field(default_factory=dict)
    # Files in the run folder that the manifest does not list (the folder was added to after
    # the run finished). Never read or offered; shown as a warning beside the run.
    unlisted: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def reason(self) -> str | None:
        """The first problem, or None for a good run."""
        return self.problems[0] if self.problems else None

    @property
    def artifacts(self) -> dict[str, dict]:
        """Relative path -> the manifest's record (role, bytes, sha256, ...)."""
        return {record["path"]: record for record in self.manifest.get("artifacts", [])
                if isinstance(record, dict) and isinstance(record.get("path"), str)}

    # ---- what the runs table shows ----------------------------------------------------------
    @property
    def created(self) -> str:
        return str(self.manifest.get("created_utc") or "")

    @property
    def data_source(self) -> str:
        data = self.manifest.get("data") or {}
        if data.get("kind") == "generated" or (data and not data.get("path")):
            return "embedded default data (generated)"
        return str(data.get("path") or data.get("description") or "")

    @property
    def gate_passed(self) -> bool | None:
        passed = self.gate.get("passed", (self.manifest.get("gate") or {}).get("passed"))
        return None if passed is None else passed is True  # a string such as "false" is not a pass

    @property
    def gate_verdict(self) -> str:
        """PASSED, FAILED, INCONCLUSIVE (counted as ...), or n/a without a gate."""
        from pipeline.stages.gate import verdict_label

        record = self.gate if self.gate else (self.manifest.get("gate") or {})
        return "n/a" if not record else verdict_label(record, gate=True)

    @property
    def gate_reasons(self) -> list[str]:
        """Why the gate failed: the explanation of each failed check (names if no gate.json)."""
        checks = self.gate.get("checks")
        if isinstance(checks, list):
            return [str(check.get("explanation") or check.get("name")) for check in checks
                    if isinstance(check, dict) and not check.get("passed", True)]
        return [str(name) for name in (self.manifest.get("gate") or {}).get("failed_checks", [])]

    @property
    def ship_variant(self) -> str | None:
        return self.gate.get("ship_variant") or self.manifest.get("ship_variant")

    @property
    def headline_metric(self) -> str | None:
        return self.manifest.get("headline_metric")

    @property
    def headline_value(self) -> float | None:
        """The headline metric of the shipped variant, as the manifest records it."""
        for variant in self.manifest.get("variants") or []:
            if isinstance(variant, dict) and variant.get("name") == self.ship_variant:
                value = variant.get(self.headline_metric or "")
                return float(value) if isinstance(value, (int, float)) else None
        return None

    @property
    def label(self) -> str:
        """Short text for a select box: domain · run id · gate."""
        if not self.ok:
            return f"{self.key} ({self.status})"
        verdict = {True: "gate passed", False: "gate failed", None: "no gate"}[self.gate_passed]
        quick = " · quick" if (self.manifest.get("config") or {}).get("quick") else ""
        extra = f" · {len(self.unlisted)} unlisted file(s)" if self.unlisted else ""
        return f"{self.domain} · {self.run_id}{quick} · {verdict}{extra}"

    @property
    def unlisted_warning(self) -> str | None:
        """What to tell a reader about files the manifest does not list, or None."""
        if not self.unlisted:
            return None
        shown = ", ".join(self.unlisted[:5]) + (f" and {len(self.unlisted) - 5} more" if len(self.unlisted) > 5 else "")
        return (f"the run folder holds {len(self.unlisted)} file(s) that its manifest does not list ({shown}): "
                "they were added after the run finished, are not part of the verified run, and are never read "
                "or offered here; remove them, or find out who added them")


def picker_labels(entries: Iterable[RunEntry]) -> dict[str, str]:
    """key -> label for a select box, unique: copies of one run (same domain, run id and verdict)
    are told apart by their folder in the reports folder."""
    labels = {entry.key: entry.label for entry in entries}
    counts = Counter(labels.values())
    return {key: (f"{label} · folder {key}" if counts[label] > 1 else label) for key, label in labels.items()}


class RunReadError(RuntimeError):
    """A verified run could not be read (it changed or vanished after it was listed)."""


# ---- listing ---------------------------------------------------------------------------------


def find_run_folders(reports_dir: str | os.PathLike, *, max_depth: int = 4) -> list[tuple[str, Path]]:
    """(key, absolute path) of every run folder under `reports_dir`, finished or not.

    A run folder holds `manifest.json` or other run files, or is named `.incomplete-*`.
    The usual layout is `<reports>/<domain>/<run-id>/`; deeper layouts (e.g. a folder of
    reports folders) are found up to `max_depth` levels down. Links are not followed, so
    nothing outside the reports folder is ever read. Missing folder -> [].
    """
    root = Path(reports_dir).resolve()
    found: list[tuple[str, Path]] = []

    def walk(folder: Path, depth: int) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            path = Path(entry.path)
            if entry.name.startswith(INCOMPLETE_PREFIX) or _looks_like_run(path):
                found.append((path.relative_to(root).as_posix(), path))
            elif not entry.name.startswith(".") and depth < max_depth:
                walk(path, depth + 1)

    if root.is_dir():
        walk(root, 1)
    return found


def _looks_like_run(path: Path) -> bool:
    return any((path / name).is_file() for name in (MANIFEST, *_RUN_MARKERS))


def run_signature(path: str | os.PathLike) -> str:
    """A cheap fingerprint of a run folder's files (name, size, mtime): changes when any file does.

    The dashboard keys its cache of `verify_run` on it, so a file that changes, vanishes or
    appears after a run was verified is verified again on the next page load. A short
    digest rather than the list itself, so that the cache key is cheap to hash.
    """
    root = os.fspath(path)
    digest = hashlib.blake2b(digest_size=16)
    stack = [root]
    entries: list[tuple[str, int, int]] = []
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as found:
                for entry in found:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                        continue
                    try:
                        stat = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    entries.append((entry.path[len(root):], stat.st_size, stat.st_mtime_ns))
        except OSError:
            return "unreadable"
    for name, size, mtime in sorted(entries):
        digest.update(f"{name}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def list_runs(reports_dir: str | os.PathLike) -> list[RunEntry]:
    """Every run under `reports_dir`, verified; good runs newest first, then the others."""
    entries = [verify_run(path, key=key) for key, path in find_run_folders(reports_dir)]
    return sort_runs(entries)


def sort_runs(entries: Iterable[RunEntry]) -> list[RunEntry]:
    entries = list(entries)
    good = sorted((e for e in entries if e.ok), key=lambda e: (e.created, e.run_id), reverse=True)
    bad = sorted((e for e in entries if not e.ok), key=lambda e: e.key)
    return good + bad


# ---- verifying -------------------------------------------------------------------------------


def verify_run(path: str | os.PathLike, *, key: str | None = None) -> RunEntry:
    """Check one run folder against its manifest; never raises for a bad run."""
    folder = Path(path)
    key = key or folder.name
    domain = folder.parent.name
    if not folder.is_dir():
        return RunEntry(key=key, path=str(folder), domain=domain, run_id=folder.name, status=MISSING,
                        problems=("the run folder is gone (deleted or moved after it was listed)",))
    if folder.name.startswith(INCOMPLETE_PREFIX):
        return RunEntry(key=key, path=str(folder), domain=domain, run_id=folder.name[len(INCOMPLETE_PREFIX):],
                        status=UNFINISHED,
                        problems=(f"unfinished: the folder still has the {INCOMPLETE_PREFIX} prefix, so the run was "
                                  "interrupted or is still running (a finished run is renamed only once its "
                                  "manifest is written)",))

    def corrupt(*problems: str, manifest: dict | None = None) -> RunEntry:
        manifest = manifest or {}
        return RunEntry(key=key, path=str(folder), domain=str(manifest.get("domain") or domain),
                        run_id=str(manifest.get("run_id") or folder.name), status=CORRUPT, problems=problems,
                        manifest=manifest)

    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return corrupt(f"{MANIFEST} is missing: the folder holds run files but no manifest listing them")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        return corrupt(f"{MANIFEST} cannot be read: {error}")
    except json.JSONDecodeError as error:
        return corrupt(f"{MANIFEST} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), list):
        return corrupt(f"{MANIFEST} is not an EdgeAudit run manifest: it has no 'artifacts' list",
                       manifest=manifest if isinstance(manifest, dict) else None)

    problems: list[str] = []
    if manifest.get("status", "complete") != "complete":
        problems.append(f"{MANIFEST} says the run's status is {manifest.get('status')!r}, not 'complete'")
    parsed: dict[str, Any] = {}
    listed = set()
    for record in manifest["artifacts"]:
        relative = record.get("path") if isinstance(record, dict) else None
        if not isinstance(relative, str):
            problems.append(f"{MANIFEST} lists an artifact without a path: {str(record)[:80]}")
            continue
        listed.add(relative)
        problem = _check_artifact(folder, record)
        if problem:
            problems.append(problem)
            continue
        if relative.endswith(".json"):
            try:
                parsed[relative] = json.loads((folder / relative).read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                where = f" ({error.msg} at line {error.lineno}, column {error.colno})" \
                    if isinstance(error, json.JSONDecodeError) else ""
                problems.append(f"{relative} is not valid JSON{where}")
    for required in (METRICS, GATE):
        if required not in listed:
            problems.append(f"{MANIFEST} does not list {required}, which every finished run has")
    if problems:
        return corrupt(*problems, manifest=manifest)
    gate = parsed.get(GATE) if isinstance(parsed.get(GATE), dict) else {}
    return RunEntry(key=key, path=str(folder), domain=str(manifest.get("domain") or domain),
                    run_id=str(manifest.get("run_id") or folder.name), status=OK, manifest=manifest, gate=gate,
                    unlisted=_unlisted_files(folder, listed))


def _unlisted_files(folder: Path, listed: set[str]) -> tuple[str, ...]:
    """Relative paths of the files (and links) in `folder` that are neither listed nor the manifest."""
    found = []
    for root, folders, files in os.walk(folder):  # links to folders are listed, never followed
        here = Path(root)
        names = files + [name for name in folders if (here / name).is_symlink()]
        for name in names:
            relative = (here / name).relative_to(folder).as_posix()
            if relative != MANIFEST and relative not in listed:
                found.append(relative)
    return tuple(sorted(found))


def _safe_relative(relative: str) -> bool:
    pure = PurePosixPath(relative)
    return bool(relative) and "\\" not in relative and not pure.is_absolute() and ".." not in pure.parts \
        and pure.parts[0] not in ("", ".")


def _check_artifact(folder: Path, record: dict) -> str | None:
    """The problem with one listed artifact, or None."""
    relative = record["path"]
    if not _safe_relative(relative):
        return f"{MANIFEST} lists {relative!r}, a path outside the run folder"
    path = folder / relative
    if path.is_symlink():
        return f"{relative} is a link, not a file written by the run"
    if not path.is_file():
        return f"{relative} is listed in the manifest but missing"
    try:
        if not path.resolve().is_relative_to(folder.resolve()):
            return f"{relative} resolves outside the run folder"
        size = path.stat().st_size
        if isinstance(record.get("bytes"), int) and size != record["bytes"]:
            return (f"{relative} has {size:,} bytes, the manifest lists {record['bytes']:,}: "
                    "changed after the run finished")
        if record.get("sha256") and sha256_file(path) != record["sha256"]:
            return f"{relative}: SHA-256 does not match the manifest: changed after the run finished"
    except OSError as error:
        return f"{relative} cannot be read: {error.strerror or error}"
    if not record.get("sha256"):
        return f"{MANIFEST} lists {relative} without a SHA-256"
    return None


# ---- reading a verified run --------------------------------------------------------------------


def read_bytes(entry: RunEntry, relative: str, *, check: bool = True) -> bytes:
    """The bytes of an artifact the manifest lists; with `check`, verified against its SHA-256."""
    if not entry.ok:
        raise RunReadError(f"{entry.key} is {entry.status}: {entry.reason}")
    record = entry.artifacts.get(relative)
    if record is None or not _safe_relative(relative):
        raise RunReadError(f"{entry.key}: {relative!r} is not an artifact of this run")
    try:
        data = (Path(entry.path) / relative).read_bytes()
    except OSError as error:
        raise RunReadError(f"{entry.key}: {relative} cannot be read ({error.strerror or error}); "
                           "it changed after the run was listed") from error
    if check and hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise RunReadError(f"{entry.key}: {relative}: SHA-256 does not match the manifest "
                           "(changed after the run was listed)")
    return data


def read_json(entry: RunEntry, relative: str) -> Any:
    """A JSON artifact of a verified run, or None when the run does not list it."""
    if relative not in entry.artifacts:
        return None
    data = read_bytes(entry, relative)
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunReadError(f"{entry.key}: {relative} is not valid JSON") from error


def artifacts_with_role(entry: RunEntry, role: str) -> list[str]:
    return sorted(path for path, record in entry.artifacts.items() if record.get("role") == role)


def plots(entry: RunEntry) -> list[str]:
    return [path for path in artifacts_with_role(entry, "plot") if path.endswith(".png")]


def analyses(entry: RunEntry) -> list[str]:
    return [path for path in entry.artifacts if path.startswith("analyses/") and path.endswith(".json")]


def model_files(entry: RunEntry) -> list[dict]:
    """[{variant, tflite, companions: [preprocessing / vocabulary files]}] for every .tflite."""
    companions_by_variant = {}
    for variant in entry.manifest.get("variants") or []:
        if isinstance(variant, dict) and variant.get("name"):
            files = [variant.get(k) for k in ("preprocessing", "vocabulary", "tokenizer")]
            companions_by_variant[variant["name"]] = [f for f in files if isinstance(f, str)]
    shared = [path for path, record in entry.artifacts.items()
              if record.get("role") in ("preprocessing", "vocabulary", "tokenizer")]
    models = []
    for path in artifacts_with_role(entry, "tflite"):
        variant = entry.artifacts[path].get("variant") or PurePosixPath(path).stem
        companions = [f for f in companions_by_variant.get(variant, []) if f in entry.artifacts] or sorted(shared)
        models.append({"variant": variant, "tflite": path, "companions": companions,
                       "shipped": variant == entry.ship_variant})
    return models


def variant_bundle(entry: RunEntry, variant: str) -> bytes:
    """A zip of one variant's `.tflite`, its preprocessing / vocabulary files, its C source where it has
    one, and a README.txt saying how a device runs it: the threshold, the tensors, the arena."""
    for model in model_files(entry):
        if model["variant"] == variant:
            sources = [path for path in sorted(entry.artifacts) if path.startswith(f"device/{variant}_model_data.")]
            prefix = f"{entry.run_id}-{variant}"
            return _zip(entry, [model["tflite"], *model["companions"], *sources], prefix=prefix,
                        extra={f"{prefix}/README.txt": variant_readme(entry, variant)})
    raise RunReadError(f"{entry.key}: no .tflite for variant {variant!r}")


def variant_readme(entry: RunEntry, variant: str) -> str:
    """What an embedded engineer needs to run one variant, from the run's metrics and deployment."""
    metrics = read_json(entry, METRICS) if METRICS in entry.artifacts else {}
    deployment = read_json(entry, DEPLOYMENT) if DEPLOYMENT in entry.artifacts else {}
    evaluation = ((metrics or {}).get("variants") or {}).get(variant) or {}
    threshold = (evaluation.get("quality") or {}).get("threshold")
    interface = evaluation.get("interface") or {}
    micro = (((deployment or {}).get("variants") or {}).get(variant) or {}).get("microcontroller") or {}
    lines = [f"{variant} model of EdgeAudit run {entry.run_id} ({entry.domain})", "",
             f"Decision: flag a case when the model's output reaches {threshold:.4f} (chosen on the validation "
             "split for this variant; every variant has its own)." if threshold is not None else
             "Decision threshold: not recorded in metrics.json.",
             f"Input: shape {interface.get('input_shape')}, {interface.get('input_dtype')}; apply "
             f"models/preprocessing.json to every raw example first. Output: the probability of class 1."]
    if micro.get("supported"):
        lines += [f"TensorFlow Lite Micro: runs in a tensor arena of {micro['arena_bytes']:,} bytes (the smallest it "
                  f"allocated in, measured); register the operators {', '.join(micro.get('operators') or [])}."]
    elif micro:
        lines += [f"TensorFlow Lite Micro: does not run ({micro.get('first_unsupported')}); use LiteRT."]
    decision = (deployment or {}).get("decision") or {}
    if decision.get("ship_variant") == variant:
        lines += ["", f"This is the variant the run ships: {decision.get('explanation')}."]
        snippet = ((deployment or {}).get("device") or {}).get("python_snippet")
        if snippet:
            lines += ["", "Run it on one raw example (from the run folder, with EdgeAudit installed):", "", snippet]
    return "\n".join(lines) + "\n"


def run_zip(entry: RunEntry) -> bytes:
    """The whole run (manifest and every listed artifact, each verified) as a zip."""
    return _zip(entry, sorted(entry.artifacts), prefix=entry.run_id, with_manifest=True)


def _zip(entry: RunEntry, paths: list[str], *, prefix: str, with_manifest: bool = False,
         extra: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if with_manifest:
            archive.writestr(f"{prefix}/{MANIFEST}", (Path(entry.path) / MANIFEST).read_bytes())
        for relative in paths:
            archive.writestr(f"{prefix}/{relative}", read_bytes(entry, relative))
        for name, text in (extra or {}).items():
            archive.writestr(name, text)
    return buffer.getvalue()


# ---- tables the pages and the static report share --------------------------------------------


def higher_is_better(metric: str | None) -> bool:
    return (metric or "") not in _LOWER_IS_BETTER


def pareto_flags(points: list[tuple[float, ...]], larger_is_better: tuple[bool, ...]) -> list[bool]:
    """For each point, whether no other point is at least as good on every axis and better on one."""
    def at_least(a: float, b: float, larger: bool) -> bool:
        return a >= b if larger else a <= b

    flags = []
    for i, point in enumerate(points):
        dominated = any(
            all(at_least(other[k], point[k], larger_is_better[k]) for k in range(len(point)))
            and any(other[k] != point[k] for k in range(len(point)))
            for j, other in enumerate(points) if j != i)
        flags.append(not dominated)
    return flags


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def tradeoff_rows(manifest: dict, metrics: dict | None, compression: dict | None = None,
                  gate: dict | None = None) -> list[dict]:
    """One row per variant: quality, decision threshold, size, latency, sparsity, agreement, shipped, Pareto.

    `pareto_size` is the front of (smaller file, better headline metric); `pareto_all` the
    front of (smaller file, lower latency, better headline metric). Variants that failed
    to build are listed with their reason and no numbers. Unknown keys are ignored.
    """
    metrics = metrics or {}
    headline = metrics.get("headline_metric") or manifest.get("headline_metric") or "pr_auc"
    ship = (gate or {}).get("ship_variant") or manifest.get("ship_variant")
    rows = []
    for name, result in (metrics.get("variants") or {}).items():
        if not isinstance(result, dict):
            continue
        rows.append({
            "variant": name, "status": "ok", "reason": None, "shipped": name == ship,
            "headline": _number(_get(result, "quality", headline)),
            "threshold": _number(_get(result, "quality", "threshold")),
            "bytes": _number(_get(result, "size", "bytes")), "gzip_bytes": _number(_get(result, "size", "gzip_bytes")),
            "ratio_to_float32": _number(_get(result, "size", "ratio_to_float32")),
            "sparsity": _number(_get(result, "sparsity", "sparsity")),
            "latency_ms": _number(_get(result, "latency", "median_ms")),
            "identical_decisions": _number(_get(result, "agreement", "identical_decisions")),
            "changed_decisions": _number(_get(result, "agreement", "changed_decisions")),
            "max_score_difference": _number(_get(result, "agreement", "max_score_difference")),
        })
    known = {row["variant"] for row in rows}
    failed = {}
    for name, result in (compression or {}).items():
        if isinstance(result, dict) and result.get("status") not in (None, "ok") and name not in known:
            failed[name] = result.get("reason") or result.get("status")
    for variant in manifest.get("variants") or []:
        if isinstance(variant, dict) and variant.get("status") not in (None, "ok") and variant.get("name") not in known:
            failed.setdefault(variant["name"], variant.get("reason") or variant.get("status"))
    larger = higher_is_better(headline)
    measured = [row for row in rows if row["headline"] is not None and row["bytes"] is not None]
    for row, flag in zip(measured, pareto_flags([(r["bytes"], r["headline"]) for r in measured], (False, larger))):
        row["pareto_size"] = flag
    timed = [row for row in measured if row["latency_ms"] is not None]
    for row, flag in zip(timed, pareto_flags([(r["bytes"], r["latency_ms"], r["headline"]) for r in timed],
                                             (False, False, larger))):
        row["pareto_all"] = flag
    for row in rows:
        row.setdefault("pareto_size", False)
        row.setdefault("pareto_all", False)
    for name, reason in failed.items():
        rows.append({"variant": name, "status": "failed", "reason": str(reason), "shipped": name == ship,
                     "pareto_size": False, "pareto_all": False})
    return rows


def label_heights(xs: list[float], ys: list[float], *, plot_height_px: float, y_span: float | None = None,
                  line_px: float = 13.0, near_x: float = 0.12, lift_px: float = 8.0) -> list[float]:
    """Where to print each point's name on a scatter, in the y axis's units, so that no two names overlap.

    Names are printed to the right of their points. Points whose x lie within `near_x` of the x
    span of each other form one column of names; in a column, from the top down, each name goes
    `lift_px` above its point unless that is less than `line_px` below the name above it, in
    which case it goes exactly that far below. `plot_height_px` is the height `y_span` (by default
    the span of `ys`; larger when the axis shows more, such as a reference line) is drawn on.
    Returns one y per point, in the input's order."""
    if not ys:
        return []
    span_x = (max(xs) - min(xs)) or 1.0
    span_y = y_span or (max(ys) - min(ys)) or 1.0
    per_px = span_y / max(plot_height_px, 1.0)
    columns: list[list[int]] = []
    for index in sorted(range(len(xs)), key=lambda i: xs[i]):
        if columns and abs(xs[index] - xs[columns[-1][0]]) < near_x * span_x:
            columns[-1].append(index)
        else:
            columns.append([index])
    heights = [0.0] * len(ys)
    for column in columns:
        previous = None
        for index in sorted(column, key=lambda i: -ys[i]):
            wanted = ys[index] + lift_px * per_px
            if previous is not None:
                wanted = min(wanted, previous - line_px * per_px)
            heights[index] = previous = wanted
    return heights


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b.c": leaf} of a nested dict (lists kept as leaves), for config comparisons."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def config_differences(a: dict, b: dict) -> list[dict]:
    """[{setting, a, b}] for every configuration value that differs between two manifests."""
    first, second = flatten(a.get("config") or {}), flatten(b.get("config") or {})
    differences = []
    for key in sorted(set(first) | set(second)):
        if first.get(key) != second.get(key):
            differences.append({"setting": key, "a": first.get(key), "b": second.get(key)})
    return differences


def format_value(value: Any, digits: int = 4) -> str:
    """A value for a table cell: n/a, yes/no, 1,234 or 0.1234."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
