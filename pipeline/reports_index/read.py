"""Reading the artifacts of a verified run: only files its manifest lists, each checked against its SHA-256.

The dashboard never builds a path from what a user typed: `read_bytes` refuses anything the
manifest does not list, or any path that leaves the run folder.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.artifacts import ANALYSES_FOLDER
from pipeline.reports_index.entries import RunEntry, RunReadError
from pipeline.reports_index.verify import _safe_relative


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
    """The listed artifacts the manifest gives this role (e.g. "plot", "tflite"), sorted."""
    return sorted(path for path, record in entry.artifacts.items() if record.get("role") == role)


def plots(entry: RunEntry) -> list[str]:
    """The run's PNG figures."""
    return [path for path in artifacts_with_role(entry, "plot") if path.endswith(".png")]


def analyses(entry: RunEntry) -> list[str]:
    """The run's domain analyses (analyses/*.json)."""
    return [path for path in entry.artifacts if path.startswith(ANALYSES_FOLDER) and path.endswith(".json")]


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
