"""Finding run folders under a reports folder and verifying each against its manifest.

A run is ``ok`` when its manifest parses, every artifact it lists is there, inside the run
folder, with the listed size and SHA-256, and every JSON artifact parses; ``unfinished`` for a
``.incomplete-<run-id>`` staging folder; ``missing`` when the folder is gone; ``corrupt``
otherwise, with every problem found. Links are never followed, so nothing outside the reports
folder is read.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from pipeline.artifacts import (AUDIT, COMPRESSION, EXPLANATIONS, GATE, INCOMPLETE_PREFIX, MANIFEST, METRICS,
                                MITIGATION, MODEL_CARD_MARKDOWN, sha256_file)
from pipeline.reports_index.entries import CORRUPT, MISSING, OK, UNFINISHED, RunEntry

# Files that make a folder look like a run even when its manifest is gone.
_RUN_MARKERS = (METRICS, AUDIT, GATE, EXPLANATIONS, COMPRESSION, MITIGATION, MODEL_CARD_MARKDOWN)


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
    """Whether a folder holds a manifest or another file only a run writes."""
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
    """Good runs newest first, then the others by their key."""
    entries = list(entries)
    good = sorted((e for e in entries if e.ok), key=lambda e: (e.created, e.run_id), reverse=True)
    bad = sorted((e for e in entries if not e.ok), key=lambda e: e.key)
    return good + bad


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
    manifest, problem = _read_manifest(folder)
    if problem:
        return _corrupt(key, folder, domain, (problem,), manifest)
    problems, parsed, listed = _check_listed_artifacts(folder, manifest)
    if problems:
        return _corrupt(key, folder, domain, tuple(problems), manifest)
    gate = parsed.get(GATE) if isinstance(parsed.get(GATE), dict) else {}
    return RunEntry(key=key, path=str(folder), domain=str(manifest.get("domain") or domain),
                    run_id=str(manifest.get("run_id") or folder.name), status=OK, manifest=manifest, gate=gate,
                    unlisted=_unlisted_files(folder, listed))


def _corrupt(key: str, folder: Path, domain: str, problems: tuple[str, ...], manifest: dict | None) -> RunEntry:
    """A corrupt run's entry: named by its manifest where that much could be read, else by its folder."""
    manifest = manifest or {}
    return RunEntry(key=key, path=str(folder), domain=str(manifest.get("domain") or domain),
                    run_id=str(manifest.get("run_id") or folder.name), status=CORRUPT, problems=problems,
                    manifest=manifest)


def _read_manifest(folder: Path) -> tuple[dict | None, str | None]:
    """(the manifest, None), or (the manifest where it parsed into a dict, else None; what is wrong with it)."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return None, f"{MANIFEST} is missing: the folder holds run files but no manifest listing them"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        return None, f"{MANIFEST} cannot be read: {error}"
    except json.JSONDecodeError as error:
        return None, f"{MANIFEST} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("artifacts"), list):
        return (manifest if isinstance(manifest, dict) else None,
                f"{MANIFEST} is not an EdgeAudit run manifest: it has no 'artifacts' list")
    return manifest, None


def _check_listed_artifacts(folder: Path, manifest: dict) -> tuple[list[str], dict[str, Any], set[str]]:
    """Every problem with the run's status and listed artifacts, the parsed JSON artifacts, and the listed paths."""
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
    return problems, parsed, listed


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
    """Whether a listed path stays inside the run folder: relative, POSIX, no `..`, no leading `.`."""
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
