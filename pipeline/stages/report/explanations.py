"""The model card's explanations part: which SHAP method, how exact, top columns per model, agreement.

`explanation_method_text` is also shown by the dashboard's explanations page, so that the card
and the page describe the method in the same words.
"""

from __future__ import annotations

from pipeline.artifacts import is_plot, plot_name
from pipeline.stages.report.card import Heading, Image, Paragraph, Table
from pipeline.stages.report.formatting import _number


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
    """The explainer and its method, the top columns and additivity error per model, agreement with float."""
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
    blocks += _drift_by_group(explanation.get("drift_by_group"))
    for plot in plots:
        if is_plot(plot, "shap_global") or is_plot(plot, "shap_local"):
            blocks.append(Image(plot, plot_name(plot).replace("_", " ")))
    return blocks


def _drift_by_group(drift: dict | None) -> list:
    """Agreement of each explained model with the float model's explanation, per group (explanation_drift.py)."""
    if not drift:
        return []
    if drift.get("not_measured"):
        return [Paragraph(f"Explanation agreement by group: not measured ({drift['not_measured']}).")]
    blocks: list = []
    models = drift.get("models", {})
    shipped = drift.get("shipped")
    if len(models) > 1:
        blocks += [Paragraph(
            "Every candidate that could have shipped (it fits every named target with no failed check on validation) "
            "is explained on the same rows and compared with the float model:"),
            Table(["variant", "rank correlation (all rows)", "top-5 overlap", "lowest group", "flagged groups"],
                  [_drift_summary_row(name, result, name == shipped, drift["min_agreement"])
                   for name, result in models.items()])]
    for name, result in models.items():
        if shipped is not None and name != shipped:
            continue
        rows = []
        for column, cells in result["by_group"].items():
            for group, cell in cells.items():
                if not cell.get("measured"):
                    rows.append([column, group, _number(cell["rows"]), "too few rows", "", ""])
                    continue
                low = cell["spearman"] is not None and cell["spearman"] < drift["min_agreement"]
                rows.append([column, group, _number(cell["rows"]), _number(cell["spearman"], 3) + (" ⚠" if low else ""),
                             f"{cell['top5_overlap']} of 5", ", ".join(f"`{f}`" for f in cell["sign_flips"]) or "—"])
        flagged = result["flagged"]
        blocks += [Paragraph(
            f"`{name}` vs float, by group (Spearman rank correlation of mean |SHAP|, top-5 overlap, features whose "
            f"mean SHAP value changed sign); under {drift['min_agreement']} is flagged ⚠: "
            + ("; ".join(f"{item['column']} = {item['group']}" if item["column"] else item["group"] for item in flagged)
               if flagged else "none") + "."),
            Table(["column", "group", "explained rows", "rank correlation", "top-5 overlap", "sign flips"], rows)]
    return blocks


def _drift_summary_row(name: str, result: dict, shipped: bool, limit: float) -> list:
    """One candidate's explanation agreement: overall, its lowest measured group, and its flagged groups."""
    overall, lowest = result["overall"], result.get("lowest_group")
    low = overall.get("spearman") is not None and overall["spearman"] < limit
    return [f"`{name}`" + (" (shipped)" if shipped else ""), _number(overall.get("spearman"), 3) + (" ⚠" if low else ""),
            "—" if overall.get("top5_overlap") is None else f"{overall['top5_overlap']} of 5",
            "—" if not lowest else f"{lowest['column']} = {lowest['group']}: {_number(lowest['spearman'], 3)}"
            + (" ⚠" if lowest["spearman"] < limit else ""), str(len(result["flagged"]))]
