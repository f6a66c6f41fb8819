"""The model card's "Quantitative analyses" section: every variant in LiteRT, results by group, what
compression did to each group, the mitigation, the explanations and the domain's own analyses.
"""

from __future__ import annotations

from pipeline.artifacts import is_plot, plot_path
from pipeline.config import FLOAT_MODEL
from pipeline.stages.gate import mitigation_made_worse
from pipeline.stages.group_harm import describe
from pipeline.stages.report.card import Bullets, Heading, Image, Paragraph, Table
from pipeline.stages.report.explanations import _explanations
from pipeline.stages.report.formatting import _cell, _change, _estimate, _kilobytes, _number, _value


def _quantitative_analyses(*, manifest: dict, metrics: dict, compression: dict, audit: dict, mitigation: dict,
                           explanation: dict, plots: list[str], analyses: dict | None, flips: dict | None = None,
                           layers: dict | None = None, deployment: dict | None = None) -> list:
    """The whole section, its parts in the card's order."""
    ship = manifest["ship_variant"]
    blocks: list = [Heading(2, "Quantitative analyses")]
    blocks += _every_variant(manifest["headline_metric"], ship, metrics, compression, plots)
    blocks += _layer_errors(layers, ship, plots)
    blocks += _calibration_sets(compression.get("int8"))
    blocks += _selective_int8(compression.get("selective_int8"), deployment)
    blocks += _group_results(audit, ship, plots)
    blocks += _compression_effect(audit, ship, plots)
    blocks += _flipped_decisions(flips, ship, plots)
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
    blocks += _pruning_allocation(compression.get("pruned_int8"), plots)
    return blocks


def _pruning_allocation(result: dict | None, plots: list[str]) -> list:
    """How pruned_int8's target sparsity was spread over its layers: the sensitivity scan's choice per layer."""
    details = (result or {}).get("details") or {}
    allocation = details.get("sparsity_allocation")
    if (result or {}).get("status") != "ok" or not allocation:
        return []
    if allocation["method"] != "sensitivity":
        return [Paragraph(f"Pruning: every layer to {allocation['target']:.0%} sparsity ({allocation['because']}).")]
    after = details.get("layer_sparsity_after_fine_tuning") or {}
    rows = [[f"`{name}`", f"{allocation['weights'][name]:,}", f"{level:.0%}",
             _number(allocation["scan"][name][f"{allocation['scored_at'][name]:g}"], 4),
             _number(allocation["drops"][name], 4),
             "—" if after.get(name) is None else f"{after[name]:.0%}"]
            for name, level in allocation["sparsity"].items()]
    blocks: list = [Heading(3, "How pruning was spread over the layers"), Paragraph(
        f"A sensitivity scan on {allocation['rows']:,} validation rows pruned each layer alone, by magnitude and "
        f"without fine-tuning, to each level and scored the model ({allocation['metric'].replace('_', '-').upper()}"
        f", {_number(allocation['dense_score'], 4)} unpruned). Each layer got the highest level it tolerates, "
        f"with the layers that miss weights most stepped back down and the largest giving back what the levels "
        f"overshoot, so that {allocation['overall']:.1%} of the pruned weights are zero against a target of "
        f"{allocation['target']:.0%}. `pqat_int8` starts from the same pruned model."),
        Table(["layer", "weights", "sparsity given", "score pruned alone (at the level scanned)", "drop",
               "sparsity after fine-tuning"],
              rows)]
    if plot_path("pruning_sensitivity") in plots:
        blocks.append(Image(plot_path("pruning_sensitivity"), "pruning sensitivity per layer"))
    return blocks


def _layer_errors(layers: dict | None, ship: str, plots: list[str]) -> list:
    """Where in the model quantization errs: the shipped variant's layers (else int8's), from layers.json."""
    from pipeline.stages.layer_errors import WARNING_LEVEL

    if not layers:
        return []
    shown = ship if "layers" in (layers.get(ship) or {}) else "int8" if "layers" in (layers.get("int8") or {}) else None
    blocks: list = [Heading(3, "Where quantization error comes from"), Paragraph(
        "TensorFlow's quantization debugger, on validation rows: the error each layer adds given int8 inputs, "
        f"as RMSE in units of its output's quantization step (rounding alone gives about 0.29; over "
        f"{WARNING_LEVEL} is marked ⚠, the debugger guide's level). Every full-integer variant's table is in "
        "`layers.json`.")]
    if shown is not None:
        rows = [[f"`{row['keras_layer'] or row['tensor_name']}`", row["op"], _number(row["rmse_over_scale"], 3)
                 + (" ⚠" if row["over_warning_level"] else ""), _number(row["max_abs_error"], 4),
                 _number(row["scale"], 5)] for row in layers[shown]["layers"]]
        blocks.append(Paragraph(f"`{shown}`" + (" (shipped)" if shown == ship else "") + ":"))
        blocks.append(Table(["Keras layer", "TFLite op", "RMSE / scale", "max |error|", "scale"], rows))
        marked = layers[shown]["summary"]["over_warning_level"]
        blocks.append(Paragraph(
            f"Over the warning level in `{shown}`: " + ", ".join(f"`{name}`" for name in marked) + "."
            if marked else f"No layer of `{shown}` is over the warning level."))
    for name, table in layers.items():
        if "error" in table:
            blocks.append(Paragraph(f"`{name}`: per-layer error {table['error']}."))
    if plot_path("layer_errors") in plots:
        blocks.append(Image(plot_path("layer_errors"), "quantization error per layer"))
    return blocks


def _calibration_sets(result: dict | None) -> list:
    """The calibration-set audit of int8: each group's change under each calibration set, and the set used."""
    audit = ((result or {}).get("details") or {}).get("calibration")
    if not audit:
        return []
    groups = sorted({group for row in audit["sets"] for group in row["changes"]})
    rows = []
    for row in audit["sets"]:
        cells = [" / ".join(_change({"change": row["changes"].get(group, {}).get(metric)}) for metric in ("tpr", "fpr"))
                 for group in groups]
        rows.append([f"`{row['name']}`" + (" (used)" if row["name"] == audit["chosen"] else ""),
                     _number(row["rows"]), *cells, describe(row["worst"])])
    return [Heading(3, "Calibration set of int8"), Paragraph(
        f"int8 calibrated on the default representative training rows, and on rows of each group of "
        f"`{audit['column']}` alone; each judged in LiteRT on the validation split against the float model (ΔTPR / "
        f"ΔFPR per group of `{audit['column']}`; worst over every sensitive column). Used: {audit['why']}."),
        Table(["calibration set", "rows", *[f"{audit['column']} = {group}: ΔTPR / ΔFPR" for group in groups],
               "worst group change"], rows)]


def _selective_int8(result: dict | None, deployment: dict | None) -> list:
    """What selective_int8 kept in float, what each layer cost, and whether it still runs on a microcontroller."""
    if not result:
        return []
    blocks: list = [Heading(3, "Selective int8: layers kept in float for a group")]
    if result["status"] != "ok":
        return blocks + [Paragraph(f"`selective_int8` was not built: {result.get('reason')}.")]
    details = (result.get("details") or {}).get("selective") or {}
    start, final = (details.get("start") or {}).get("worst") or {}, (details.get("final") or {}).get("worst") or {}
    blocks.append(Paragraph(
        f"On the validation split, int8's worst group change against the float model was {describe(start)} (limit "
        f"±{details.get('limit')}); keeping the layers below in float makes it {describe(final)}"
        + (", inside the limit." if details.get("within_limit") else ", still outside the limit.")
        + f" Byte budget {_number(details.get('byte_budget'))} ({_number(details.get('int8_bytes'))} for int8)."))
    rows = [[f"`{step.get('keras_layer') or step['tensor_name']}`", step.get("op") or "",
             _number(step.get("rmse_over_scale"), 2), f"{step['bytes_added']:+,}",
             f"{step['latency_ms_added']:+.4f} ms", describe(step["worst_after"]),
             "yes" if step.get("float_in_file") else "NO: the name did not match; still int8"]
            for step in details.get("restored") or []]
    if rows:
        blocks.append(Table(["layer kept in float", "op", "RMSE / scale in int8", "bytes", "latency",
                             "worst group change after", "float in the file"], rows))
    else:
        blocks.append(Paragraph("No layer was kept in float: " + str(details.get("stopped")) + "."))
    micro = (((deployment or {}).get("variants") or {}).get("selective_int8") or {}).get("microcontroller") or {}
    if micro:
        blocks.append(Paragraph("On the microcontroller runtime (tflite-micro): " + (
            f"it runs, in an arena of {_number(micro.get('arena_bytes'))} bytes." if micro.get("supported") else f"it does not run ({micro.get('first_unsupported')}).")))
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
        line = (f"`{name}`: {tuning['epochs']} epochs at learning rate {tuning['learning_rate']:g}"
                + _fine_tuning_objective(tuning) + f", kept epoch {tuning['kept_epoch']}"
                + (f" ({tuning['recovery']})" if tuning.get("recovery") else ""))
        if tuning.get("sampled"):  # a large training split: the --fine-tune-steps budget
            line += (f" ({tuning['steps']:,} steps in all, {tuning['steps_per_epoch']:,} an epoch, each over a "
                     f"shuffled sample of {tuning['rows_per_epoch']:,} training rows: the --fine-tune-steps budget)")
        search = details.get("learning_rate_search") or {}
        if search.get("candidates"):
            cells = []
            for rate, value in search["candidates"].items():
                correlation = value.get("rank_correlation_with_float")
                cells.append(f"{rate} → {value['validation_pr_auc']:.4f}"
                             + ("" if correlation is None else f", {correlation:.3f}"))
            line += (" (learning rate chosen on validation; PR-AUC, and rank correlation with the float model: "
                     + ", ".join(cells) + f"; {search['chosen_because']})")
        if "target_sparsity" in details:
            allocated = (details.get("sparsity_allocation") or {}).get("method") == "sensitivity"
            line += f"; pruned to {details['target_sparsity']:.0%} sparsity" + (
                " overall, spread over the layers by sensitivity (below)" if allocated else "")
        if "pruning" in details:
            line += "; starts from the pruned model of `pruned_int8`"
            if details.get("zeros_kept_by_mask"):
                line += (" and keeps its zeros (tfmot's scheme masks Conv2D and Dense kernels; the zeros of "
                         + ", ".join(f"`{layer}`" for layer in details["zeros_kept_by_mask"])
                         + " are set back to zero after every batch)")
        lines.append(line + ".")
    return lines


def _fine_tuning_objective(tuning: dict) -> str:
    """What a variant's fine-tuning fitted, as words after "... at learning rate R" (empty for older runs)."""
    targets = {"float_model": " toward the float model's scores (self-distillation)",
               "labels": " on the labels",
               "training": " on what the float model was trained on"}.get(tuning.get("targets"), "")
    if targets and tuning.get("rows"):
        targets += f" ({tuning['rows']:,} rows, {str(tuning.get('loss', 'binary_crossentropy')).replace('_', ' ')})"
    if tuning.get("member_final_losses"):
        targets += f", each of its {len(tuning['member_final_losses'])} ensemble members on its own loss"
    return targets


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


def _flipped_decisions(flips: dict | None, ship: str, plots: list[str]) -> list:
    """The flip ledger's summary: how many test decisions each variant changed, in which groups, and for the
    shipped variant the group it changed most, for review by a person (flips.csv holds every one)."""
    if not flips or not flips.get("variants"):
        return []
    blocks: list = [Heading(3, "Decisions compression flipped"), Paragraph(
        "Test examples whose decision differs between the float model and a variant (Hooker et al., \"What do "
        "compressed deep neural networks forget?\": compression changes a few examples, not all alike). Every "
        "one is listed in `flips.csv` with its groups, both scores and its distance from the threshold, for "
        "review by a person. Rates carry 95 % intervals.")]
    rows = []
    for variant, summary in flips["variants"].items():
        overall = summary["overall"]
        highest = [f"{column} = {group} ({_estimate(summary['by_group'][column][group]['rate'])})"
                   for column, group in summary.get("highest", {}).items() if group is not None]
        rows.append([f"`{variant}`" + (" (shipped)" if variant == ship else ""),
                     f"{overall['flips']:,} of {overall['rows']:,}", _estimate(overall["rate"], 4),
                     f"{overall['now_wrong']:,} / {overall['now_right']:,}",
                     _number(overall.get("median_abs_reference_margin")), "; ".join(highest[:1]) or "—"])
    blocks.append(Table(["variant", "flipped", "flip rate", "now wrong / now right",
                         "median distance from threshold (float)", "highest group flip rate"], rows))
    shipped = flips["variants"].get(ship)
    if shipped:
        for column, cells in shipped["by_group"].items():
            measured = [(group, cell) for group, cell in cells.items() if cell["measurable"]]
            if len(measured) < 2:
                continue
            blocks.append(Paragraph(f"`{ship}` by {column}: " + "; ".join(
                f"{group} {cell['flips']} of {cell['rows']} ({_estimate(cell['rate'], 4)})"
                for group, cell in measured) + "."))
            break  # the first sensitive column in words; every column in flips.json and the plots
    for plot in plots:
        if is_plot(plot, "flip_rates_") or is_plot(plot, "flipped_images_"):
            blocks.append(Image(plot, "decisions flipped against the float model"))
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
