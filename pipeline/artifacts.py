"""The run folder: the one module that owns every path a run writes or reads.

A run is written into a hidden staging folder `<out>/<domain>/.incomplete-<run-id>/` and
renamed to `<out>/<domain>/<run-id>/` only once `manifest.json` is written, so a folder
without the `.incomplete-` prefix is always a finished run, and an interrupted run never
looks finished. The manifest lists every artifact with its role, size and SHA-256.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError

MANIFEST = "manifest.json"
PREPROCESSING = "models/preprocessing.json"
METRICS = "metrics.json"
TRAINING = "training.json"
COMPRESSION = "compression.json"
AUDIT = "audit.json"
MITIGATION = "mitigation.json"
EXPLANATIONS = "explanations.json"
GATE = "gate.json"
DEPLOYMENT = "deployment.json"
PREDICTIONS = "predictions.csv"
FLIPS = "flips.csv"
LAYERS = "layers.json"
FLIP_RATES = "flips.json"
DEVICE_EXAMPLE = "device/example_input.json"
MODEL_CARD_MARKDOWN = "model_card.md"
MODEL_CARD_HTML = "model_card.html"
INCOMPLETE_PREFIX = ".incomplete-"


def model_path(variant: str) -> str:
    return f"models/{variant}.tflite"


def device_source_path(variant: str, extension: str) -> str:
    """C source ("cc") or header ("h") holding a variant's model bytes, for a firmware build."""
    return f"device/{variant}_model_data.{extension}"


PLOTS_FOLDER = "plots/"
ANALYSES_FOLDER = "analyses/"


def analysis_path(name: str) -> str:
    return f"{ANALYSES_FOLDER}{safe_name(name)}.json"


def safe_name(name: str) -> str:
    """A file-name-safe form of a column or figure name ("Sex × Age" -> "Sex_Age")."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "unnamed"


def plot_path(name: str) -> str:
    return f"{PLOTS_FOLDER}{safe_name(name)}.png"


def is_plot(path: str, name_prefix: str = "") -> bool:
    """Whether a run-relative path is one of the run's plots (whose name starts with name_prefix)."""
    return path.startswith(PLOTS_FOLDER + name_prefix) and path.endswith(".png")


def plot_name(path: str) -> str:
    """"plots/shap_global_int8.png" -> "shap_global_int8"."""
    return path.removeprefix(PLOTS_FOLDER).removesuffix(".png")


INPUTS_FOLDER = "inputs"


def input_table_path(output_dir: str | os.PathLike, table_bytes: bytes) -> Path:
    """Where a table given in Python (a pandas DataFrame, pipeline.api.run_domain) is kept as CSV so
    that its runs name a file that stays: `<out>/inputs/<first 16 hex of its SHA-256>.csv`. The same
    table always gets the same name, so a re-run adds nothing."""
    return Path(output_dir) / INPUTS_FOLDER / f"{sha256_bytes(table_bytes)[:16]}.csv"


def write_once(path: Path, data: bytes) -> Path:
    """Write `data` to `path` atomically unless the file is already there with these bytes."""
    if path.is_file() and path.read_bytes() == data:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    staging.write_bytes(data)
    os.replace(staging, path)
    return path


def new_run_id(seed: int) -> str:
    """Sortable and unique: UTC time, seed, random suffix."""
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{now}-seed{seed}-{secrets.token_hex(3)}"


def check_output_dir(output_dir: str | os.PathLike, *, option: str = "--out") -> Path:
    """Check, before any work, that runs can be written under `output_dir`; returns its absolute path.

    Refuses (InputError naming the path and the fix) a path that is a file, a path with a file
    among its parents, and a folder that cannot be written. Writability is tested for real:
    a temporary folder is made and removed in the deepest folder that exists (a permission
    bit alone says nothing for root, a read-only file system or an ACL). Nothing is left behind.
    """
    given = str(output_dir)
    path = Path(output_dir).expanduser().absolute()
    fix = (f"pass {option} a folder you can write to (it is created if missing), "
           f"e.g. {option} reports")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is a file" if existing == path else f"has a file, {existing}, where a folder is needed"
        raise InputError(f"{option} {given} {where}", fix=fix)
    try:
        probe = tempfile.mkdtemp(prefix=".edgeaudit-write-test-", dir=existing)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise InputError(f"{option} {given} cannot be written: {reason} in {existing}", fix=fix) from None
    os.rmdir(probe)
    return path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def to_jsonable(value: Any) -> Any:
    """numpy scalars/arrays -> Python; NaN/inf -> None; tuples -> lists; keys -> str."""
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, allow_nan=False, ensure_ascii=False) + "\n"


def json_round_trip(value: Any) -> Any:
    """The value as it reads back from its JSON file (tuples become lists, numpy becomes Python)."""
    return json.loads(dumps(value))


class RunFolder:
    """Writes one run. Use `finish()` to publish it, `discard()` to remove a failed one."""

    def __init__(self, output_dir: str | os.PathLike, domain: str, run_id: str):
        self.domain = domain
        self.run_id = run_id
        self.final_path = Path(output_dir) / domain / run_id
        self.staging_path = Path(output_dir) / domain / f"{INCOMPLETE_PREFIX}{run_id}"
        self.artifacts: dict[str, dict] = {}
        # The folders this run creates above its own (the domain's folder, the reports folder and
        # any missing above it), deepest first: a discarded run removes them again if left empty.
        self._created_parents = []
        parent = self.staging_path.parent
        while not parent.exists() and parent != parent.parent:
            self._created_parents.append(parent)
            parent = parent.parent
        self.staging_path.mkdir(parents=True, exist_ok=False)

    # ---- writing ---------------------------------------------------------------------
    def _target(self, relative: str) -> Path:
        target = self.staging_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def write_bytes(self, relative: str, data: bytes, *, role: str, **extra: Any) -> Path:
        target = self._target(relative)
        target.write_bytes(data)
        self.artifacts[relative] = {"path": relative, "role": role, "bytes": len(data),
                                    "sha256": sha256_bytes(data), **extra}
        return target

    def write_text(self, relative: str, text: str, *, role: str, **extra: Any) -> Path:
        return self.write_bytes(relative, text.encode("utf-8"), role=role, **extra)

    def write_json(self, relative: str, value: Any, *, role: str, **extra: Any) -> Path:
        return self.write_text(relative, dumps(value), role=role, **extra)

    def write_figure(self, name: str, figure, *, role: str = "plot") -> str:
        """Save a matplotlib Figure as PNG; returns its relative path."""
        relative = plot_path(name)
        target = self._target(relative)
        figure.savefig(target, dpi=110, bbox_inches="tight")
        data = target.read_bytes()
        self.artifacts[relative] = {"path": relative, "role": role, "bytes": len(data),
                                    "sha256": sha256_bytes(data)}
        return relative

    # ---- reading back what was written (what ships is what gets evaluated) -------------
    def read_bytes(self, relative: str) -> bytes:
        return (self.staging_path / relative).read_bytes()

    def read_json(self, relative: str) -> Any:
        return json.loads((self.staging_path / relative).read_text(encoding="utf-8"))

    # ---- publishing ------------------------------------------------------------------
    def finish(self, manifest: dict) -> Path:
        """Write the manifest (listing every artifact) and move the run into place."""
        manifest = {**manifest, "run_id": self.run_id, "domain": self.domain,
                    "artifacts": sorted(self.artifacts.values(), key=lambda item: item["path"])}
        (self.staging_path / MANIFEST).write_text(dumps(manifest), encoding="utf-8")
        os.replace(self.staging_path, self.final_path)
        return self.final_path

    def discard(self) -> None:
        """Remove the unfinished run, and the folders it created above it if they are now empty."""
        shutil.rmtree(self.staging_path, ignore_errors=True)
        for folder in self._created_parents:  # deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty (another run is there), or already gone
                pass
