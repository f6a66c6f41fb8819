"""The model card's "Quantitative analyses" section: every variant in LiteRT, results by group, what
compression did to each group, the mitigation, the explanations and the domain's own analyses.
"""

from __future__ import annotations

from pipeline.artifacts import is_plot, plot_path
from pipeline.config import FLOAT_MODEL
from pipeline.stages.gate import mitigation_made_worse
from pipeline.stages.report.card import Bullets, Heading, Image, Paragraph, Table
from pipeline.stages.report.explanations import _explanations
from pipeline.stages.report.formatting import _cell, _change, _estimate, _kilobytes, _number, _value


def _quantitative_analyses(*, manifest: dict, metrics: dict, compression: dict, audit: dict, mitigation: dict,
                           explanation: dict, plots: list[str], analyses: dict | None) -> list:
    """The whole section, its parts in the card's order."""
    ship = manifest["ship_variant"]
    blocks: list = [Heading(2, "Quantitative analyses")]
    blocks += _every_variant(manifest["headline_metric"], ship, metrics, compression, plots)
    blocks += _group_results(audit, ship, plots)
    blocks += _compression_effect(audit, ship, plots)
    blocks += _mitigation(mitigation, plots)
    blocks += _explanations(explanation, plots)
    blocks += _extra_analyses(analyses)
    return blocks


def _every_variant(headline: str, ship: str, metrics: dict, compression: dict, plots: list[str]) -> list:
    """One row per model (the Keras float model, then every variant, built or not), the trade-off plots,
    and how the fine-tuned variants were trained."""
    variants = metrics["variants"]
    float_quality = metrics["keras_float"]["quality"]
    blocks: list = [Heading(3, "Every variant, run in LiteRT")]
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
    for name, baseline in ((metrics.get("baselines") or {}).get("models") or {}).items():
        quality = baseline["quality"]
        rows.append([f"{name.replace('_', ' ')} (baseline, not shipped)", _number(quality.get(headline)),
                     _number(quality.get("roc_auc")), _number(quality.get("recall_at_1pct_fpr")),
                     _number(quality.get("brier")), "—", "—", "—", "—", "—"])
    blocks.append(Table([ "model", headline, "ROC-AUC", "recall@1%FPR", "Brier", "size", "gzip", "sparsity",
                          "latency (median)", "same decisions"], rows))
    if metrics.get("baselines"):
        blocks.append(Paragraph("Baselines: " + metrics["baselines"]["sentence"] + " They are fitted on the same "
                                "training rows and encoding, with thresholds chosen on validation."))
    for plot in ("tradeoff", "latency"):
        if plot_path(plot) in plots:
            blocks.append(Image(plot_path(plot), f"{plot} of every variant"))
    fine_tuned = _fine_tuning_lines(compression)
    if fine_tuned:
        blocks += [Paragraph("How the fine-tuned variants were trained (each keeps its best validation epoch):"),
                   Bullets(fine_tuned)]
    return blocks


def _extra_analyses(analyses: dict | None) -> list:
    """The domain's own analyses (e.g. a shortcut probe): title, summary and table of each."""
    blocks: list = []
    for name, analysis in (analyses or {}).items():
        blocks.append(Heading(3, analysis.get("title", name)))
        if analysis.get("summary"):
            blocks.append(Paragraph(analysis["summary"]))
        table = analysis.get("table")
        if table:
            blocks.append(Table(list(table["headers"]), [[_cell(c) for c in row] for row in table["rows"]]))
    return blocks


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


def _group_results(audit: dict, ship: str, plots: list[str]) -> list:
    """Per sensitive column, every group's rates with intervals for the float model and the shipped variant."""
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


def _compression_effect(audit: dict, ship: str, plots: list[str]) -> list:
    """Changes against the float model: every group for the shipped variant, flagged groups for the others."""
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
        if is_plot(plot, "compression_heatmap"):
            blocks.append(Image(plot, "change against float, per variant and group"))
    return blocks


def _mitigation(mitigation: dict, plots: list[str]) -> list:
    """ThresholdOptimizer on the float model: the measures before and after, and whether it made things worse."""
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
    if plot_path("mitigation") in plots:
        blocks.append(Image(plot_path("mitigation"), "mitigation before and after"))
    return blocks
