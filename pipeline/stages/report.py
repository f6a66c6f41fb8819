"""Report: the model card (Markdown and HTML) and the edge trade-off plots.

The card follows the sections of "Model Cards for Model Reporting" (Mitchell et al.,
2019): model details, intended use, factors, metrics, evaluation data, training data,
quantitative analyses, ethical considerations, caveats and recommendations; plus what
this tool adds: the edge variants, what compression did to each group, and the gate.
Every number in it is read from the run's measured results. The card is built as a list
of blocks and rendered twice, so the Markdown and the HTML always say the same thing.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from pipeline.artifacts import plot_path
from pipeline.config import FLOAT_MODEL, THRESHOLD_RULES
from pipeline.stages.gate import mitigation_made_worse, verdict_label, verdict_of
from pipeline.stages.deploy import decision_rows

# ---- blocks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Contents:
    """Links to the card's sections (its level-2 headings)."""
    titles: list[str]


def anchor(title: str) -> str:
    """The id of a card heading: "card-" and the title's letters and digits, lowercased, joined by '-'."""
    import re

    return "card-" + "-".join(re.findall(r"[a-z0-9]+", title.lower()))


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


@dataclass(frozen=True)
class Image:
    path: str
    alt: str


@dataclass(frozen=True)
class ModelCard:
    markdown: str
    html: str


def render_markdown(blocks: list) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Contents):
            out.append("Contents: " + " · ".join(f"[{title}](#{_github_anchor(title)})" for title in block.titles))
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            cells = lambda row: "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |"  # noqa: E731
            out.append("\n".join([cells(block.headers), "|" + "---|" * len(block.headers),
                                  *[cells(row) for row in block.rows]]))
        elif isinstance(block, Image):
            out.append(f"![{block.alt}]({block.path})")
        elif isinstance(block, Code):
            out.append(f"```{block.language}\n{block.text}\n```")
    return "\n\n".join(out) + "\n"


_STYLE = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}h1{border-bottom:2px solid #333}
h2{border-bottom:1px solid #ccc;margin-top:2em}code{background:#f5f5f5;padding:0 .2em}
pre{background:#f5f5f5;padding:.6em;overflow-x:auto}"""


def render_html(blocks: list, title: str) -> str:
    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
           f"<style>{_STYLE}</style></head><body>"]
    for block in blocks:
        if isinstance(block, Heading):
            identifier = f' id="{anchor(block.text)}"' if block.level == 2 else ""
            out.append(f"<h{block.level}{identifier}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Contents):
            out.append("<p>Contents: " + " · ".join(f'<a href="#{anchor(title)}">{html.escape(title)}</a>'
                                                    for title in block.titles) + "</p>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline(h)}</th>" for h in block.headers)
            body = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>"
                           for row in block.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Image):
            out.append(f"<img src=\"{html.escape(block.path)}\" alt=\"{html.escape(block.alt)}\">")
        elif isinstance(block, Code):
            out.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _github_anchor(title: str) -> str:
    """The anchor GitHub and most Markdown viewers give a heading."""
    import re

    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _inline(text: str) -> str:
    """Escape, then render the two inline Markdown forms the card uses: **bold** and `code`."""
    escaped = html.escape(text)
    parts = escaped.split("**")
    escaped = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
    parts = escaped.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


# ---- formatting --------------------------------------------------------------------------


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def _interval_text(interval, digits: int = 4) -> str:
    if not interval or interval[0] is None or interval[1] is None:
        return ""
    return f"[{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def _interval_methods_text(audit: dict) -> str:
    """How the intervals were made, for runs whose audit records it (runs before issue 15 do not)."""
    if "intervals" not in audit.get("settings", {}):
        return ""
    return ("A group's rate has the bootstrap percentile interval widened, where a small group needs it, to "
            "Wilson's score interval; a gap between groups (equalized odds, demographic parity) has the "
            "percentile interval shifted by the bootstrap's bias, since the gap's own bootstrap runs high; a "
            "group's change under compression has the larger of the paired bootstrap's error and Agresti-Min's. "
            "Their coverage on simulated data is measured in BENCHMARKS.md (interval-coverage).")


def _gate_rule_text(gate: dict) -> str:
    """How the fairness checks were judged and how an inconclusive one counted, in words."""
    counts = gate.get("inconclusive_counts_as", "fail")
    minimum = gate.get("min_positives_per_group")
    text = ("Equalized odds is judged on its 95 % interval: pass when the whole interval is within the limit, "
            "fail when it is beyond, inconclusive when it straddles the limit"
            + (f" or a group has fewer than {minimum} positives (or negatives)" if minimum else "") + ". ")
    text += (f"An inconclusive check counts as a {'pass' if counts == 'pass' else 'failure'} in this run "
             f"(`--inconclusive {counts}`).")
    if verdict_of(gate) == "inconclusive":
        text = ("**The verdict is inconclusive: this test split cannot tell whether the limit holds.** "
                "Each inconclusive check above says how many more examples would settle it. " + text)
    return text


def _estimate(estimate: dict | None, digits: int = 3) -> str:
    """`0.812 [0.770, 0.851]` from {"value", "interval"}."""
    if not estimate or estimate.get("value") is None:
        return "n/a"
    interval = estimate.get("interval")
    text = f"{estimate['value']:.{digits}f}"
    if interval and interval[0] is not None and interval[1] is not None:
        text += f" [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"
    return text


def _kilobytes(count: int | None) -> str:
    return "n/a" if count is None else f"{count / 1024:.1f} KB"


# ---- the card ----------------------------------------------------------------------------


def _resampling_text(audit: dict) -> str:
    """How the audit's bootstrap drew its resamples, for the Metrics section."""
    units = audit["settings"].get("units")
    if not units:
        return ", rows drawn independently"
    return (f", drawing whole units ({_number(units)} in the test split) so that the correlated rows of one unit "
            "count as one piece of evidence")


def _threshold_rule_text(manifest: dict) -> str:
    """What the run's threshold rule maximises, in words (runs older than the option used F1)."""
    rule = (manifest.get("config") or {}).get("threshold_rule") or "f1"
    return f"{THRESHOLD_RULES.get(rule, rule)} (`--threshold-rule {rule}`)"


def model_card(*, manifest: dict, metrics: dict, compression: dict, audit: dict, mitigation: dict,
               explanation: dict, gate: dict, training: dict, plots: list[str],
               analyses: dict | None = None, deployment: dict | None = None) -> ModelCard:
    blocks: list = []
    data = manifest["data"]
    headline = manifest["headline_metric"]
    ship = manifest["ship_variant"]
    variants = metrics["variants"]
    float_quality = metrics["keras_float"]["quality"]
    title = f"Model card: {manifest['domain_title']} ({manifest['run_id']})"
    blocks.append(Heading(1, title))
    verdict = verdict_label(gate, gate=True)
    blocks.append(Paragraph(f"**Gate {verdict}** for the shipped variant `{ship}`. "
                            f"Generated by EdgeAudit {manifest.get('edgeaudit_version') or ''} from measured "
                            f"results of this run; every figure below is computed on the held-out test split "
                            f"({_number(data['splits']['test'])} rows) unless stated otherwise."))

    blocks += [Heading(2, "Model details"), Bullets([
        f"Domain: {manifest['domain_title']} (`{manifest['domain']}`), modality {manifest['modality']}.",
        f"Architecture: Functional Keras model with {_number(training['parameters'])} parameters, trained in "
        f"Keras {manifest['packages'].get('keras')} ({manifest['runtime']['backend']} backend) on "
        f"{manifest['runtime']['device']}, {_optimizer_text(training, manifest['runtime'])}{training['epochs_run']} "
        f"epochs (best epoch {training['best_epoch']}, early stopping on validation PR-AUC), "
        f"{training['seconds']:.1f} s.",
        f"Output: probability of `{data['positive_class']}` (label `{data['label']}` = 1); a case is flagged when "
        f"the probability reaches the variant's own threshold, chosen on the validation split to "
        f"{_threshold_rule_text(manifest)}.",
        "Class weights (rare positives): " + ", ".join(f"class {label} × {weight:.2f}" for label, weight in
                                                      training["class_weights"].items()) + ".",
        f"Edge variant shipped: `{ship}` — `models/{ship}.tflite` with `models/preprocessing.json`.",
        f"Seed {manifest['seed']}; data fingerprint `{data['fingerprint'][:16]}…`; run id `{manifest['run_id']}`."
        + _reproduction_text(manifest['runtime']),
    ])]

    blocks += [Heading(2, "Intended use"), Bullets([
        "Intended: ranking and flagging cases for review by a person, on devices, where the population "
        "resembles the training data.",
        "Not intended: automated decisions about people without human review; populations or groups "
        "absent from the training data; use after the data drifts without a new audit.",
    ])]

    blocks += [Heading(2, "Factors"), Paragraph(
        "Groups audited: " + ", ".join(f"`{c}`" for c in data["sensitive_columns"])
        + (f", and their intersection `{audit['settings'].get('intersection')}`"
           if audit.get("settings", {}).get("intersection") else "")
        + ". Continuous attributes are banded. Sensitive attributes are used for the audit only, not as model "
          "inputs.")]

    blocks += [Heading(2, "Metrics"), Bullets([
        f"Headline: **{headline}** (the gate's quality measure). Also ROC-AUC, recall at 1 % false-positive "
        f"rate, Brier score, expected calibration error, sensitivity and specificity at the threshold.",
        f"By group: selection rate, TPR, FPR, precision, ROC-AUC with bootstrap 95 % intervals "
        f"({audit['settings']['bootstrap_samples']} resamples, stratified by group{_resampling_text(audit)}); "
        f"demographic parity and "
        f"equalized odds differences. " + _interval_methods_text(audit),
        "Edge: raw and gzip size of the `.tflite` file, weight sparsity measured in the file, median "
        "single-example latency in the LiteRT interpreter (1 thread), agreement of decisions with the float model.",
    ])]

    source = f" (`{data['path']}`)" if data.get("path") else ""
    blocks += [Heading(2, "Evaluation data"), Paragraph(
        f"Source: {data['description']}{source}. Test split: {_number(data['splits']['test'])} rows, "
        f"{_number(data['positives']['test'])} positive. Validation split "
        f"({_number(data['splits']['validation'])} rows) chose thresholds and the mitigation.")]
    blocks += [Heading(2, "Training data"), Paragraph(
        f"Same source, stratified split: {_number(data['splits']['train'])} training rows "
        f"({_number(data['positives']['train'])} positive), {data['model_inputs']} model inputs after "
        f"preprocessing fitted on the training split only.")]
    if data.get("notes"):
        blocks += [Paragraph("Decisions the loader took:"), Bullets(list(data["notes"]))]

    blocks += [Heading(2, "Quantitative analyses"), Heading(3, "Every variant, run in LiteRT")]
    rows = [[f"`{FLOAT_MODEL}` (Keras)", _number(float_quality.get(headline)), _number(float_quality["roc_auc"]),
             _number(float_quality["recall_at_1pct_fpr"]), _number(float_quality["brier"]), "—", "—", "—",
             f"{metrics['keras_float']['latency']['median_ms']:.3f} ms", "1.0000"]]
    for name, result in compression.items():
        if name not in variants:
            rows.append([f"`{name}`", f"{result['status']}: {result['reason']}", *["—"] * 8])
            continue
        evaluation = variants[name]
        quality = evaluation["quality"]
        rows.append([
            f"`{name}`" + (" (shipped)" if name == ship else ""), _number(quality.get(headline)),
            _number(quality["roc_auc"]), _number(quality["recall_at_1pct_fpr"]), _number(quality["brier"]),
            _kilobytes(evaluation["size"]["bytes"]), _kilobytes(evaluation["size"]["gzip_bytes"]),
            _number(evaluation["sparsity"]["sparsity"], 2), f"{evaluation['latency']['median_ms']:.3f} ms",
            _number(evaluation["agreement"]["identical_decisions"]),
        ])
    blocks.append(Table([ "model", headline, "ROC-AUC", "recall@1%FPR", "Brier", "size", "gzip", "sparsity",
                          "latency (median)", "same decisions"], rows))
    for plot in ("tradeoff", "latency"):
        if f"plots/{plot}.png" in plots:
            blocks.append(Image(f"plots/{plot}.png", f"{plot} of every variant"))
    fine_tuned = _fine_tuning_lines(compression)
    if fine_tuned:
        blocks += [Paragraph("How the fine-tuned variants were trained (each keeps its best validation epoch):"),
                   Bullets(fine_tuned)]

    blocks += _group_results(audit, ship, plots)
    blocks += _compression_effect(audit, ship, plots)
    blocks += _mitigation(mitigation, plots)
    blocks += _explanations(explanation, plots)
    for name, analysis in (analyses or {}).items():
        blocks.append(Heading(3, analysis.get("title", name)))
        if analysis.get("summary"):
            blocks.append(Paragraph(analysis["summary"]))
        table = analysis.get("table")
        if table:
            blocks.append(Table(list(table["headers"]), [[_cell(c) for c in row] for row in table["rows"]]))

    blocks += [Heading(2, "Gate"), Table(["check", "value", "95 % interval", "limit", "result"], [
        [check["name"], _number(check["value"]), _interval_text(check.get("interval")), _number(check["limit"]),
         (lambda label: label if label == "pass" else f"**{label}**")(verdict_label(check))]
        for check in gate["checks"]]), Bullets([check["explanation"] for check in gate["checks"]]),
        Paragraph(_gate_rule_text(gate))]
    if deployment:
        blocks += _deployment(deployment, manifest)

    blocks += [Heading(2, "Ethical considerations"), Bullets([
        "Group differences in the metrics above are measured on the test split; intervals are bootstrap "
        "intervals and wide intervals mean too little data to conclude.",
        "The audit covers only the groups listed under Factors; groups not recorded in the data cannot be audited.",
        "Compression can change who is flagged even when overall quality holds: read the compression table "
        "before shipping a variant.",
    ])]
    caveats = [
        "Thresholds are chosen on the validation split per variant; a device must use the threshold of the file it runs.",
        "Latency is measured on this machine's CPU with one thread; a device will differ.",
    ]
    failed = [name for name, result in compression.items() if result["status"] != "ok"]
    if failed:
        caveats.append("Variants not built: " + "; ".join(f"`{n}` ({compression[n]['reason']})" for n in failed) + ".")
    if data["kind"] == "generated":
        caveats.append("The data are synthetic: the figures show the pipeline working, not a real population.")
    blocks += [Heading(2, "Caveats and recommendations"), Bullets(caveats)]
    sections = [block.text for block in blocks if isinstance(block, Heading) and block.level == 2]
    blocks.insert(2, Contents(sections))  # after the title and the verdict
    return ModelCard(markdown=render_markdown(blocks), html=render_html(blocks, title))


def _deployment(deployment: dict, manifest: dict) -> list:
    """Which variant ships and why; every variant on every target; what a device needs."""
    decision = deployment["decision"]
    headline = manifest["headline_metric"]
    ship = decision["ship_variant"]
    named = decision["named_targets"]
    threshold = decision.get("threshold")
    blocks: list = [Heading(2, "Deployment"), Paragraph(
        f"**`{ship}` ships**: {decision['explanation']}. "
        + ("Targets named for this run: " + ", ".join(f"`{t}`" for t in named) + ". " if named else
           "No target was named (`--target`), so any variant LiteRT runs could ship; the table still shows every "
           "built-in target. ")
        + f"Order of preference: {decision['order_rule']}. Every gate check of every candidate was measured on "
          f"the validation split; the test split only reports and gates the choice."
        + (f" A device must flag a case when the output reaches **{threshold:.4f}**, the threshold of "
           f"`{ship}` (chosen on validation)." if threshold is not None else ""))]
    targets = [t["name"] for t in deployment["targets"]]
    rows = [[f"`{row['variant']}`" + (" (ships)" if row["ships"] else ""), _kilobytes(row["flash_bytes"]),
             _kilobytes(row["arena_bytes"]) if row["runs_on_microcontroller"] else "does not run",
             _number(row["agreement_with_litert"]) if row["runs_on_microcontroller"] else "—",
             _number(row["micro_quality"].get(headline)) if row["runs_on_microcontroller"] else "—",
             *[("fits" if row["targets"][t]["fits"] else "**no**") for t in targets],
             row["validation_verdict"] if row["validation_verdict"] == "pass" else f"**{row['validation_verdict']}**",
             row["why_not_chosen"] or "chosen"] for row in decision_rows(deployment)]
    blocks += [Heading(3, "Every variant on every target"),
               Table(["variant", "flash", "arena (tflite-micro)", "same decisions as LiteRT", f"{headline} on tflite-micro",
                      *[f"{t}{' (named)' if t in named else ''}" for t in targets], "validation checks",
                      "why not chosen"], rows)]
    unsupported = [f"`{v}`: {e['microcontroller']['first_unsupported']}" for v, e in deployment["variants"].items()
                   if e.get("microcontroller") and not e["microcontroller"]["supported"]]
    if unsupported:
        blocks += [Paragraph("Rejected by the microcontroller runtime (its own words, first operator it refused):"),
                   Bullets(unsupported)]
    disagreeing = [(v, e["microcontroller"]["agreement_with_litert"]) for v, e in deployment["variants"].items()
                   if (e.get("microcontroller") or {}).get("agreement_with_litert")
                   and e["microcontroller"]["agreement_with_litert"]["changed_decisions"]]
    if disagreeing:
        audited = [v for v, e in deployment["variants"].items() if e.get("audited_runtime") == "tflite-micro"]
        blocks.append(Paragraph(
            "The two runtimes disagree on some test decisions: " + "; ".join(
                f"`{v}` {a['changed_decisions']} of {_number(a['rows'])}" for v, a in disagreeing) + ". "
            + ("The choice (on validation), the audit and the gate above judge the microcontroller runtime's "
               "decisions for " + ", ".join(f"`{v}`" for v in audited) + ", as a named microcontroller target "
               "runs them."
               if audited else "No microcontroller target was named, so the audit judges LiteRT's decisions.")))
    device = deployment.get("device") or {}
    if device.get("input"):
        tensor = device["input"]
        quantization = tensor.get("quantization")
        blocks += [Heading(3, f"What a device needs to run `{ship}`"), Bullets([
            f"Model: `{device['tflite']}` ({_kilobytes(device['flash_bytes'])} of flash)"
            + (", also as C source for a firmware build: " + ", ".join(f"`{p}`" for p in device["sources"])
               if device.get("sources") else "") + ".",
            f"Input tensor: shape {tensor['shape']}, {tensor['dtype']}"
            + (f", quantized with scale {quantization['scales'][0]:g} and zero point {quantization['zero_points'][0]}"
               if quantization else
               ", not quantized: the model quantizes its input inside (a QUANTIZE operator), so it takes and "
               "returns float32, and an int8-only accelerator cannot run it as is" if "QUANTIZE" in device["operators"]
               else ", not quantized") + ".",
            f"Output: {device['output']['shape']} {device['output']['dtype']}, the probability of class 1.",
            f"Preprocessing: apply `{device['preprocessing']}` to every raw example before the model, exactly as "
            f"`edgeaudit`'s domain `encode` does (the snippet below); the device must reproduce it.",
            "Operators to register (`tflite::MicroMutableOpResolver`): "
            + ", ".join(f"`{o}`" for o in device["operators"]) + ".",
            f"Tensor arena: {_number(device['arena_bytes'])} bytes, the smallest it allocated in "
            f"(measured in TensorFlow Lite Micro); flash: {_number(device['flash_bytes'])} bytes of model.",
        ])]
    with_sources = [v for v, e in deployment["variants"].items() if e.get("device_files")]
    if with_sources:
        blocks.append(Paragraph(
            "C source and header (`device/<variant>_model_data.{h,cc}`: the model as a 16-byte-aligned array, the "
            "arena size as a constant) are written for every variant that fits at least one microcontroller target "
            "above: " + ", ".join(f"`{v}`" for v in with_sources) + "."))
    elif device:
        blocks += [Heading(3, f"What a device needs to run `{ship}`"), Paragraph(
            f"`{ship}` does not run in the microcontroller runtime; it runs in LiteRT (Linux, phones) with "
            f"`{device['preprocessing']}` applied first.")]
    if device.get("python_snippet"):
        blocks += [Paragraph("Run the shipped model on one raw example, from the run folder:"),
                   Code(device["python_snippet"], "python")]
    return blocks


def _group_results(audit: dict, ship: str, plots: list[str]) -> list:
    blocks: list = [Heading(3, "Results by group (shipped variant and float model)")]
    by_group = audit.get("by_group", {})
    for column in audit["settings"]["columns"]:
        rows = []
        for model in (FLOAT_MODEL, ship):
            cells = by_group.get(model, {}).get(column, {}).get("groups", {})
            for group, cell in cells.items():
                if not cell.get("measurable"):
                    rows.append([f"`{model}`", group, _number(cell.get("count")), "not measurable: "
                                 + str(cell.get("reason")), "", "", ""])
                    continue
                values = cell["metrics"]
                rows.append([f"`{model}`", group, _number(values.get("count", {}).get("value")
                                                          if isinstance(values.get("count"), dict)
                                                          else cell.get("count")),
                             _estimate(values.get("selection_rate")), _estimate(values.get("tpr")),
                             _estimate(values.get("fpr")), _estimate(values.get("roc_auc"))])
        blocks += [Heading(4, f"By {column}"),
                   Table(["model", "group", "rows", "selection rate", "TPR", "FPR", "ROC-AUC"], rows)]
        disparity = audit.get("disparities", {}).get(ship, {}).get(column)
        if disparity:
            blocks.append(Paragraph(
                f"`{ship}`: equalized odds difference {_estimate(disparity.get('equalized_odds_difference'))}, "
                f"demographic parity difference {_estimate(disparity.get('demographic_parity_difference'))}."))
        plot = plot_path(f"fairness_tpr_fpr_{column}")
        if plot in plots:
            blocks.append(Image(plot, f"TPR and FPR by {column}"))
    return blocks


def _reproduction_text(runtime: dict) -> str:
    """What a rerun needs to give the same numbers and bytes (pipeline/runtime.py)."""
    if not runtime.get("intra_op_threads"):
        return ""
    cpu = (runtime.get("cpu") or {}).get("model")
    return (f" TensorFlow ran {runtime['intra_op_threads']} intra-op and {runtime['inter_op_threads']} inter-op "
            f"threads, op determinism {'on' if runtime.get('deterministic_ops') else 'off'}"
            + (f", on {cpu}" if cpu else "") + ": the same seed, thread counts, kind of CPU and packages give "
            "these figures and `.tflite` bytes again" + ("" if runtime.get("deterministic_ops") else
                                                          " (without op determinism, not guaranteed)") + ".")


def _optimizer_text(training: dict, runtime: dict) -> str:
    """"Adadelta at learning rate 1 over batches of 50, " (empty for runs that did not record it)."""
    optimizer = training.get("optimizer")
    if not optimizer:
        return ""
    batches = f" over batches of {runtime['batch_size']}" if runtime.get("batch_size") else ""
    return f"{optimizer['name'].capitalize()} at learning rate {optimizer['learning_rate']:g}{batches}, "


def _fine_tuning_lines(compression: dict) -> list[str]:
    """One line per fine-tuned variant: learning rate (and how it was chosen), epochs, kept epoch."""
    lines = []
    for name, result in compression.items():
        details = result.get("details") or {}
        tuning = details.get("fine_tuning")
        if result["status"] != "ok" or not tuning:
            continue
        line = (f"`{name}`: {tuning['epochs']} epochs at learning rate {tuning['learning_rate']:g}, "
                f"kept epoch {tuning['kept_epoch']}")
        candidates = (details.get("learning_rate_search") or {}).get("candidates")
        if candidates:
            line += " (learning rate chosen on validation PR-AUC: " + ", ".join(
                f"{rate} → {value['validation_pr_auc']:.4f}" for rate, value in candidates.items()) + ")"
        if "target_sparsity" in details:
            line += f"; pruned to {details['target_sparsity']:.0%} sparsity"
        if "pruning" in details:
            line += "; starts from the pruned model of `pruned_int8`"
        lines.append(line + ".")
    return lines


def _compression_effect(audit: dict, ship: str, plots: list[str]) -> list:
    blocks: list = [Heading(3, "What compression did to each group"), Paragraph(
        "Change of each variant against the float model, per group, with paired-bootstrap 95 % intervals. "
        "**Flagged** cells are those whose interval excludes zero.")]
    rows = []
    for variant, columns in audit.get("compression", {}).items():
        for column, content in columns.items():
            for group, cell in content.get("groups", {}).items():
                if not cell.get("measurable", True):
                    continue
                changes = cell.get("changes", cell)
                flagged = [m for m in ("tpr", "fpr", "roc_auc") if (changes.get(m) or {}).get("flagged")]
                if variant == ship or flagged:
                    rows.append([f"`{variant}`", column, group,
                                 *[_change(changes.get(m)) for m in ("tpr", "fpr", "roc_auc")],
                                 ", ".join(flagged) or "—"])
    blocks.append(Table(["variant", "column", "group", "Δ TPR", "Δ FPR", "Δ ROC-AUC", "flagged"], rows)
                  if rows else Paragraph("No group measurable."))
    widening = audit.get("summary", {}).get(ship, {}).get("max_gap_widening")
    blocks.append(Paragraph(f"Largest widening of a TPR/FPR gap between groups by `{ship}`: {_number(widening)}."))
    for plot in plots:
        if plot.startswith("plots/compression_heatmap"):
            blocks.append(Image(plot, "change against float, per variant and group"))
    return blocks


def _cell(value: Any) -> str:
    return _number(value) if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        else str(value)


def _change(cell: dict | None) -> str:
    if not cell or cell.get("change") is None:
        return "n/a"
    interval = cell.get("interval") or [None, None]
    text = f"{cell['change']:+.3f}"
    if interval[0] is not None:
        text += f" [{interval[0]:+.3f}, {interval[1]:+.3f}]"
    return ("**" + text + "**") if cell.get("flagged") else text


def _mitigation(mitigation: dict, plots: list[str]) -> list:
    blocks: list = [Heading(3, "Mitigation (float model, Fairlearn ThresholdOptimizer)")]
    if mitigation.get("status") == "failed":
        return blocks + [Paragraph(f"Mitigation could not run: {mitigation.get('reason')}")]
    before, after = mitigation.get("before", {}), mitigation.get("after", {})
    rows = []
    for key in ("accuracy", "balanced_accuracy", "selection_rate", "tpr", "fpr"):
        if key in before or key in after:
            rows.append([key, _number(_value(before.get(key))), _number(_value(after.get(key)))])
    for column, values in (before.get("disparities") or {}).items():
        after_values = (after.get("disparities") or {}).get(column, {})
        for key in ("demographic_parity_difference", "equalized_odds_difference"):
            rows.append([f"{key} by {column}", _number(_value(values.get(key))), _number(_value(after_values.get(key)))])
    blocks.append(Paragraph(f"Constraint: {mitigation.get('constraint')}, fitted on the validation split by "
                            f"`{mitigation.get('sensitive_column', mitigation.get('sensitive_feature'))}`, "
                            f"measured on the test split."))
    blocks.append(Table(["measure", "before", "after"], rows))
    worse = mitigation_made_worse(mitigation)
    notes = list(mitigation.get("notes") or [])
    if worse:
        notes.append("Mitigation made equalized odds worse on the test split by " + ", ".join(f"`{c}`" for c in worse)
                     + ": thresholds fitted on the validation split did not carry over; do not apply them as they are.")
    if notes:
        blocks.append(Bullets(notes))
    if "plots/mitigation.png" in plots:
        blocks.append(Image("plots/mitigation.png", "mitigation before and after"))
    return blocks


def _value(value):
    return value.get("value") if isinstance(value, dict) else value


def explanation_method_text(settings: dict) -> str:
    """What the SHAP values are: exact, or sampled with their measured error (the card's wording)."""
    method, description = settings.get("method"), settings.get("method_description")
    target = str(settings.get("additivity_target", "f(x) - mean f(background)")).split(", both")[0]
    if method == "exact":
        return (f"Method: {description}. These are exact Shapley values of that game (no sampling), and their "
                f"additivity is exact: per row they sum to {target}.")
    if method == "permutation":
        text = (f"Method: {description}. These are ESTIMATES of the Shapley values, not exact ones: exact values "
                f"would need all 2^{settings.get('columns')} coalitions, over the budget "
                f"({settings.get('exact_rule', 'see explanations.json')}). Their additivity is exact nonetheless: "
                f"per row they sum to {target}.")
        error = settings.get("sampling_error")
        if error:
            text += (f" Measured sampling error on {error['rows']} explained rows per model, against "
                     f"{error['reference']}: largest |error| {_number(error.get('max_abs_error_vs_exact'), 4)}, "
                     f"mean |error| {_number(error.get('mean_abs_error_vs_exact'), 5)}, where the mean |SHAP value| "
                     f"is {_number(error.get('mean_abs_value'), 4)} (probability units; worst model).")
            if error.get("reference_mean_abs_error") is not None:
                text += (f" The reference's own sampling error is about "
                         f"{_number(error['reference_mean_abs_error'], 5)} (mean) and at most "
                         f"{_number(error.get('reference_max_abs_error'), 4)}.")
        else:
            text += " Their sampling error was not measured for this run."
        return text
    if method == "partition":
        return f"Method: {description}. Additivity is exact: per text the token values sum to {target}."
    return "Method: see explanations.json (this explanation does not name its method)."


def _explanations(explanation: dict, plots: list[str]) -> list:
    blocks: list = [Heading(3, "Explanations (SHAP)"), Paragraph(
        f"Explainer: {explanation['explainer']}, the same for every model so that the float model and the "
        f"shipped `.tflite` can be compared; {_number(explanation['settings']['explained_rows'])} test rows "
        f"explained."), Paragraph(explanation_method_text(explanation["settings"]))]
    rows = []
    for name, result in explanation["models"].items():
        top = list(result["global_importance"].items())[:5]
        rows.append([f"`{name}`", ", ".join(f"{column} ({value:.3f})" for column, value in top),
                     f"{result['additivity']['max_abs_error']:.1e}", f"{result['seconds_per_100_rows']:.1f} s"])
    blocks.append(Table(["model", "top columns (mean |SHAP|)", "max additivity error", "seconds / 100 rows"], rows))
    for name, agreement in explanation.get("agreement", {}).items():
        blocks.append(Paragraph(
            f"`{name}` vs float: Spearman rank correlation of global importance "
            f"{_number(agreement.get('spearman_rank_correlation_of_global_importance'), 3)}, "
            f"{agreement.get('top5_overlap')} of the top 5 columns shared."))
    for plot in plots:
        if plot.startswith("plots/shap_global") or plot.startswith("plots/shap_local"):
            blocks.append(Image(plot, plot.removeprefix("plots/").removesuffix(".png").replace("_", " ")))
    return blocks


# ---- plots -------------------------------------------------------------------------------


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated (smaller x and larger y are better)."""
    front = []
    for i, (x, y) in enumerate(points):
        if not any((ox <= x and oy >= y) and (ox < x or oy > y) for j, (ox, oy) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def evaluation_figures(metrics: dict, *, ship_variant: str) -> dict[str, Figure]:
    headline = metrics["headline_metric"]
    names = [n for n, e in metrics["variants"].items() if e["quality"].get(headline) is not None]
    figures: dict[str, Figure] = {}
    if not names:
        return figures
    sizes = [metrics["variants"][n]["size"]["gzip_bytes"] / 1024 for n in names]
    quality = [metrics["variants"][n]["quality"][headline] for n in names]
    latency = [metrics["variants"][n]["latency"]["median_ms"] for n in names]

    figure = Figure(figsize=(7.5, 4.5))
    axes = figure.add_subplot()
    scatter = axes.scatter(sizes, quality, c=latency, cmap="viridis", s=70, zorder=3)
    front = pareto_front(list(zip(sizes, quality)))
    axes.plot([sizes[i] for i in front], [quality[i] for i in front], "--", color="grey", zorder=2,
              label="Pareto front (smaller and better)")
    for name, x, y in zip(names, sizes, quality):
        axes.annotate(name + (" (shipped)" if name == ship_variant else ""), (x, y), textcoords="offset points",
                      xytext=(5, 4), fontsize=8, fontweight="bold" if name == ship_variant else "normal")
    float_value = metrics["keras_float"]["quality"].get(headline)
    if float_value is not None:
        axes.axhline(float_value, color="tab:red", linewidth=0.8, label=f"Keras float {headline}")
    axes.set_xlabel("gzip size of the .tflite (KB)")
    axes.set_ylabel(f"test {headline}")
    axes.set_title("Edge trade-off: quality vs size (colour: median latency, ms)")
    figure.colorbar(scatter, ax=axes, label="median latency (ms)")
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figures["tradeoff"] = figure

    figure = Figure(figsize=(7.5, 3.8))
    axes = figure.add_subplot()
    labels = ["keras_float", *names]
    values = [metrics["keras_float"]["latency"]["median_ms"], *latency]
    bars = axes.barh(labels, values, color=["tab:grey"] + ["tab:blue"] * len(names))
    axes.bar_label(bars, fmt="%.3f ms", fontsize=8, padding=2)
    axes.set_xscale("log")
    axes.set_xlabel("median single-example latency (ms, log scale)")
    axes.set_title("Latency: LiteRT interpreter (1 thread) vs a Keras call")
    axes.invert_yaxis()
    figure.tight_layout()
    figures["latency"] = figure
    return figures
