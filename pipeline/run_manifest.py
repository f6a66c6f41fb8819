"""A run's manifest.json (what ran, on what, with which packages, and what it found), less the
artifact list that pipeline.artifacts.RunFolder adds when it finishes the run."""

from __future__ import annotations

import dataclasses
import platform
import resource
import sys
from importlib import metadata

import numpy as np

from pipeline import artifacts

PACKAGES = ("tensorflow", "tf-keras", "keras", "tensorflow-model-optimization", "ai-edge-litert", "shap",
            "fairlearn", "scikit-learn", "numpy", "pandas", "streamlit", "matplotlib")


def manifest(config, domain, data, runtime, variants, evaluations, gate, *, run_id: str, ship_variant: str,
              distributed: dict | None = None) -> dict:
    entries = []
    for name, result in variants.items():
        entry = {"name": name, "status": result.status, "reason": result.reason}
        if name in evaluations:
            evaluation = evaluations[name]
            entry.update({
                "tflite": artifacts.model_path(name), "preprocessing": artifacts.PREPROCESSING,
                "metrics": f"{artifacts.METRICS}#/variants/{name}",
                "threshold": evaluation["quality"]["threshold"],
                domain.headline_metric: evaluation["quality"][domain.headline_metric],
                "bytes": evaluation["size"]["bytes"], "gzip_bytes": evaluation["size"]["gzip_bytes"],
                "shipped": name == ship_variant,
            })
        entries.append(entry)
    source = dataclasses.asdict(data.source)
    return {
        "format": "edgeaudit.run.v1",
        "run_id": run_id,
        "domain": domain.name,
        "edgeaudit_version": version("edgeaudit"),
        "status": "complete",
        "domain_title": domain.title,
        "modality": domain.modality_of(data),
        "headline_metric": domain.headline_metric,
        "config": config.to_json(),
        "seed": config.seed,
        "runtime": runtime.to_json(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: version(name) for name in PACKAGES},
        "data": {
            **source,
            "label": data.label_name, "positive_class": data.positive_class,
            "sensitive_columns": list(data.sensitive_columns),
            "splits": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test)},
            "positives": {"train": int(data.train.labels.sum()), "validation": int(data.validation.labels.sum()),
                          "test": int(data.test.labels.sum())},
            "model_inputs": len(data.feature_names),
            # Sensitive attributes the model's input holds (AI4I's product `Type`, identity terms in a
            # text); the model card says so.
            "sensitive_inputs": domain.sensitive_inputs(data),
            # Independent units in the test split (machines, customers, patients), None where every
            # row is its own: the audit's bootstrap draws whole units.
            "test_units": None if data.test.clusters is None else int(len(np.unique(data.test.clusters))),
        },
        "ship_variant": ship_variant,
        "ship_rule": "chosen on the validation split (deployment.json)" if config.ship_variant == "auto"
                     else "named with --ship",
        "targets": list(config.targets),
        "deployment": artifacts.DEPLOYMENT,
        "distributed": distributed,
        "gate": {"verdict": gate["verdict"], "passed": gate["passed"],
                 "inconclusive_counts_as": gate["inconclusive_counts_as"],
                 "failed_checks": [c["name"] for c in gate["checks"] if not c["passed"]]},
        "variants": entries,
    }


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def peak_memory_mb() -> float:
    """Peak resident memory of this process and its (finished) children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)
