"""One run folder as listed and verified (`RunEntry`), its statuses, and the labels a picker shows.

What the runs table and the select boxes read of a run comes from its manifest and gate.json,
through the properties here; nothing in this module touches the file system.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

OK = "ok"
UNFINISHED = "unfinished"
CORRUPT = "corrupt"
MISSING = "missing"
# The float model's name, as runs record it.
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
