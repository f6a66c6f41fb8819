"""Downloads of a verified run: one variant's bundle (its files and a README for a device), or the whole run.

Every file put in a zip is read through `read_bytes`, so it is verified against the manifest.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from pipeline.artifacts import DEPLOYMENT, MANIFEST, METRICS, device_source_path
from pipeline.reports_index.entries import RunEntry, RunReadError
from pipeline.reports_index.read import model_files, read_bytes, read_json


def variant_bundle(entry: RunEntry, variant: str) -> bytes:
    """A zip of one variant's `.tflite`, its preprocessing / vocabulary files, its C source where it has
    one, and a README.txt saying how a device runs it: the threshold, the tensors, the arena."""
    for model in model_files(entry):
        if model["variant"] == variant:
            sources = [path for path in (device_source_path(variant, "cc"), device_source_path(variant, "h"))
                       if path in entry.artifacts]
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
    """A zip of listed artifacts (each verified) under `prefix/`, with the manifest and extra text files if asked."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        if with_manifest:
            archive.writestr(f"{prefix}/{MANIFEST}", (Path(entry.path) / MANIFEST).read_bytes())
        for relative in paths:
            archive.writestr(f"{prefix}/{relative}", read_bytes(entry, relative))
        for name, text in (extra or {}).items():
            archive.writestr(name, text)
    return buffer.getvalue()
