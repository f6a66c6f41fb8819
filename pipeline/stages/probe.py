"""Moved to `pipeline.explainers.probes`; this name keeps the old import path working."""

from pipeline.explainers.probes import (
    MIN_EFFECT, REFERENCE_GROUP, TEMPLATES, Probe, default_probe, probe_figures, read_probe_file, run_probe,
)

__all__ = [
    "MIN_EFFECT", "REFERENCE_GROUP", "TEMPLATES", "Probe", "default_probe", "probe_figures", "read_probe_file",
    "run_probe",
]
