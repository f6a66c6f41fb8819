"""Explanations: global SHAP importance of the float and the shipped model, and local
explanations side by side (feature bars, highlighted text, image and sensor heatmaps).

Every modality keeps the same top-level keys (explainer, settings, models, agreement);
what a local entry holds decides how it is drawn:
  tokens + per-token values (text)     -> the text, each token highlighted
  heatmap (+ image) (images)           -> the image with the SHAP grid laid over it
  contributions "<sensor> @ <block>"   -> a sensor x time-block heatmap (windows)
  contributions {feature: value}       -> bars of the largest contributions (tables)
Anything else is shown as JSON. The run's own PNG of the same example is shown too.
"""

import html

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from pipeline import artifacts
from common import fmt, guard, load_bytes, load_json, pick_run, plots_matching, show_plot

RAISES, LOWERS = "#d93025", "#1a73e8"   # the dashboard's convention: red raises the score, blue lowers it

entry = pick_run("Explanations")
if entry is None:
    st.stop()

explanation = load_json(entry, artifacts.EXPLANATIONS)
if not explanation:
    st.info("This run has no explanations (explanations.json is not in its manifest).")
    st.stop()

models = {name: value for name, value in (explanation.get("models") or {}).items() if isinstance(value, dict)}
reference = explanation.get("reference") if explanation.get("reference") in models else next(iter(models), None)
names = list(dict.fromkeys([name for name in [reference, *models] if name in models]))
settings = explanation.get("settings") or {}
rows_explained = settings.get("explained_rows")
st.markdown(f"Explainer **{explanation.get('explainer', 'n/a')}**, the same for every model so the float model and "
            "the shipped `.tflite` can be compared" + (f"; {rows_explained} test examples explained."
                                                       if rows_explained else "."))
if settings.get("players"):
    st.caption(f"Players: {settings['players']}")
if settings.get("method"):
    from pipeline.stages.report import explanation_method_text

    st.caption(explanation_method_text(settings))


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _grid(value):
    """A 2-D float array of a nested list (None -> NaN; 3-D: averaged over the last axis), else None."""
    if not isinstance(value, list) or not value or not isinstance(value[0], list):
        return None
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    if array.ndim == 3:
        array = array.mean(axis=-1)
    return array if array.ndim == 2 and array.size else None


def _cells(array: np.ndarray, x0: float = 0.0, y0: float = 0.0, width: float = 1.0, height: float = 1.0):
    """Rectangles covering [x0, x0+width] x [y0, y0+height] with one cell per array element."""
    rows, columns = array.shape
    return pd.DataFrame([{"x": x0 + c * width / columns, "x2": x0 + (c + 1) * width / columns,
                          "y": y0 + r * height / rows, "y2": y0 + (r + 1) * height / rows,
                          "row": r, "column": c, "value": float(array[r, c])}
                         for r in range(rows) for c in range(columns) if np.isfinite(array[r, c])])


def _token_values(local: dict):
    tokens = local.get("segments") or local.get("tokens")
    if not isinstance(tokens, list) or not tokens:
        return None
    for key in ("values", "shap_values", "attributions", "contributions"):
        values = local.get(key)
        if isinstance(values, list) and len(values) == len(tokens) and all(
                v is None or isinstance(v, (int, float)) for v in values):
            return [str(t) for t in tokens], [_number(v) for v in values]
    return None


def _window_grid(local: dict):
    contributions = local.get("contributions")
    if not isinstance(contributions, dict) or not contributions or not all(" @ " in str(k) for k in contributions):
        return None
    cells = explanation.get("window_cells") or {}
    pairs = [str(k).split(" @ ", 1) for k in contributions]
    sensors = list(cells.get("sensors") or dict.fromkeys(p[0] for p in pairs))
    blocks = list(cells.get("blocks") or dict.fromkeys(p[1] for p in pairs))
    frame = pd.DataFrame([{"sensor": s, "block": b, "value": _number(v)}
                          for (s, b), v in zip(pairs, contributions.values())])
    return frame, sensors, blocks


def extent_of(local: dict) -> float:
    """The largest |value| of a local entry, to share one colour scale between models."""
    found = _token_values(local)
    if found:
        return max([abs(v) for v in found[1]] or [0.0])
    grid = _grid(local.get("heatmap"))
    if grid is not None:
        return float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 0.0
    contributions = local.get("contributions")
    if isinstance(contributions, dict):
        return max([abs(_number(v)) for v in contributions.values()] or [0.0])
    return 0.0


def show_local(local: dict, extent: float) -> None:
    """One local explanation, drawn the way its shape asks for."""
    extent = max(extent, 1e-9)
    facts = [f"score {fmt(local.get('score'))}", f"base value {fmt(local.get('base_value'))}"]
    if local.get("label") is not None:
        facts.append(f"label {local['label']}")
    if isinstance(local.get("groups"), dict):
        facts += [f"{k} {v}" for k, v in local["groups"].items()]
    st.caption(" · ".join(facts))
    colour = alt.Scale(scheme="redblue", domain=[-extent, extent], reverse=True)

    found = _token_values(local)
    if found:                                                    # text: every token highlighted
        spans = []
        for token, value in zip(*found):
            alpha = min(1.0, abs(value) / extent) * 0.85
            rgb = "217,48,37" if value > 0 else "26,115,232"
            spans.append(f'<span title="{value:+.4f}" style="background:rgba({rgb},{alpha:.2f});'
                         f'padding:1px 2px;border-radius:3px">{html.escape(token)}</span>')
        st.markdown('<div style="line-height:2.1">' + " ".join(spans) + "</div>", unsafe_allow_html=True)
        return

    heatmap = _grid(local.get("heatmap"))
    if heatmap is not None:                                      # image: the SHAP grid over the image
        image = _grid(local.get("image"))
        side = float(max(heatmap.shape))
        layers = []
        if image is not None:
            layers.append(alt.Chart(_cells(image, width=side, height=side)).mark_rect().encode(
                x=alt.X("x:Q", axis=None), x2="x2", y=alt.Y("y:Q", axis=None, scale=alt.Scale(reverse=True)), y2="y2",
                color=alt.Color("value:Q", scale=alt.Scale(scheme="greys", reverse=True), legend=None)))
        layers.append(alt.Chart(_cells(heatmap, width=side, height=side)).mark_rect(
            opacity=0.55 if image is not None else 1.0, stroke="white", strokeWidth=0.3).encode(
            x=alt.X("x:Q", axis=None), x2="x2", y=alt.Y("y:Q", axis=None, scale=alt.Scale(reverse=True)), y2="y2",
            color=alt.Color("value:Q", scale=colour, title="SHAP"),
            tooltip=[alt.Tooltip("row:O", title=local.get("row_title") or "row"),
                     alt.Tooltip("column:O", title=local.get("column_title") or "column"),
                     alt.Tooltip("value:Q", format="+.5f", title="SHAP")]))
        chart = alt.layer(*layers).resolve_scale(color="independent") if len(layers) > 1 else layers[0]
        st.altair_chart(chart.properties(height=300, width=300), width="content")
        return

    window = _window_grid(local)
    if window is not None:                                       # sensor histories: sensor x time block
        frame, sensors, blocks = window
        st.altair_chart(alt.Chart(frame).mark_rect().encode(
            x=alt.X("block:N", sort=blocks, title="time block (t-0: last cycle)"),
            y=alt.Y("sensor:N", sort=sensors, title=None, axis=alt.Axis(labelOverlap=False)),
            color=alt.Color("value:Q", scale=colour, title="SHAP"),
            tooltip=["sensor", "block", alt.Tooltip("value:Q", format="+.5f")]).properties(
            height=max(160, 22 * len(sensors))), width="stretch")
        return

    contributions = local.get("contributions")
    if isinstance(contributions, dict) and contributions:        # tables: the largest contributions
        shown = sorted(((str(k), _number(v)) for k, v in contributions.items()), key=lambda kv: -abs(kv[1]))[:12]
        values = local.get("values") if isinstance(local.get("values"), dict) else {}
        if isinstance(local.get("raw_values"), dict):  # the value as the data file holds it, not standardised
            values = {**values, **local["raw_values"]}
        frame = pd.DataFrame([{"feature": f"{name} = {fmt(values.get(name), 3)}" if name in values else name,
                               "SHAP": value, "direction": "raises" if value > 0 else "lowers"}
                              for name, value in shown])
        st.altair_chart(alt.Chart(frame).mark_bar().encode(
            y=alt.Y("feature:N", sort=None, title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X("SHAP:Q", scale=alt.Scale(domain=[-extent, extent])),
            color=alt.Color("direction:N", scale=alt.Scale(domain=["raises", "lowers"], range=[RAISES, LOWERS]),
                            legend=None),
            tooltip=["feature", alt.Tooltip("SHAP:Q", format="+.5f")]).properties(height=26 * len(shown) + 30),
            width="stretch")
        return
    st.json({k: v for k, v in local.items() if k != "row_id"}, expanded=False)


with guard("Global importance"):
    st.subheader("Global importance (mean |SHAP|)")
    top = st.slider("Features shown", 3, 40, 15, key="explain_top")
    ranking = [str(k) for k in list((models.get(reference) or {}).get("global_importance") or {})[:top]]
    rows = [{"model": name, "feature": str(feature), "importance": _number(value)}
            for name in names for feature, value in (models[name].get("global_importance") or {}).items()
            if str(feature) in ranking]
    if rows:
        chart = alt.Chart(pd.DataFrame(rows)).mark_bar().encode(
            y=alt.Y("feature:N", sort=ranking, title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X("importance:Q", title="mean |SHAP value|"),
            yOffset=alt.YOffset("model:N", sort=names), color=alt.Color("model:N", sort=names),
            tooltip=["model", "feature", alt.Tooltip("importance:Q", format=".5f")])
        st.altair_chart(chart.properties(height=max(220, 34 * len(ranking))), width="stretch")
    else:
        st.caption("No global importance recorded.")
    agreement = explanation.get("agreement") or {}
    if agreement:
        st.table(pd.DataFrame([{"model": name, "vs": reference,
                                "Spearman rank correlation": fmt(values.get(
                                    "spearman_rank_correlation_of_global_importance"), 3),
                                "top-5 shared": values.get("top5_overlap"),
                                "mean |Δ SHAP|": fmt(values.get("mean_abs_difference"), 5)}
                               for name, values in agreement.items() if isinstance(values, dict)]))

with guard("Agreement by group"):
    drift = explanation.get("drift_by_group") or {}
    if drift.get("models"):
        st.subheader("Does the shipped model decide for the same reasons in every group?")
        limit = drift.get("min_agreement", 0.8)
        drift_models = drift["models"]
        shown = list(drift_models)
        if len(drift_models) > 1:
            st.markdown("Every candidate that could have shipped (fits every named target, no failed check on "
                        "validation), explained on the same rows:")
            summary = []
            for name, result in drift_models.items():
                lowest = result.get("lowest_group") or {}
                summary.append({"variant": name + (" (shipped)" if name == drift.get("shipped") else ""),
                                "rank correlation (all rows)": (result.get("overall") or {}).get("spearman"),
                                "top-5 shared": (result.get("overall") or {}).get("top5_overlap"),
                                "lowest group": f"{lowest['column']} = {lowest['group']}" if lowest else None,
                                "its rank correlation": lowest.get("spearman"),
                                "flagged groups": len(result.get("flagged") or [])})
            st.dataframe(pd.DataFrame(summary), hide_index=True, width="stretch", column_config={
                name: st.column_config.NumberColumn(format="%.3f")
                for name in ("rank correlation (all rows)", "its rank correlation")})
            default = drift.get("shipped") if drift.get("shipped") in drift_models else shown[0]
            shown = [st.selectbox("Variant shown by group", shown, index=shown.index(default), key="drift_variant")]
        for name in shown:
            result = drift_models[name]
            cells = [{"column": column, "group": str(group), "explained rows": cell.get("rows"),
                      "rank correlation": cell.get("spearman"), "top-5 shared": cell.get("top5_overlap"),
                      "sign flips": ", ".join(cell.get("sign_flips") or []) or "—"}
                     for column, groups in (result.get("by_group") or {}).items()
                     for group, cell in groups.items() if cell.get("measured")]
            if not cells:
                continue
            frame = pd.DataFrame(cells)
            frame["under the limit"] = frame["rank correlation"].fillna(1.0) < limit
            frame["label"] = frame["column"] + " = " + frame["group"]
            bars = alt.Chart(frame).mark_bar().encode(
                y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=260)),
                x=alt.X("rank correlation:Q", scale=alt.Scale(domain=[-1, 1]),
                        title=f"Spearman rank correlation of mean |SHAP|, {name} vs {reference}"),
                color=alt.Color("under the limit:N", scale=alt.Scale(domain=[False, True],
                                                                     range=["#4c78a8", "#d62728"])),
                tooltip=["column", "group", "explained rows", alt.Tooltip("rank correlation:Q", format=".3f"),
                         "top-5 shared", "sign flips"])
            rule = alt.Chart(pd.DataFrame({"limit": [limit]})).mark_rule(color="crimson", strokeDash=[6, 4]).encode(
                x="limit:Q")
            st.altair_chart(alt.layer(bars, rule).properties(height=max(160, 30 * len(frame))), width="stretch")
            st.dataframe(frame.drop(columns=["label"]), hide_index=True, width="stretch",
                         column_config={"rank correlation": st.column_config.NumberColumn(format="%.3f")})
            flagged = result.get("flagged") or []
            st.caption(f"Per group of the explained test rows: how {name}'s SHAP importance ranks against the float "
                       f"model's, and the features whose mean SHAP value changed sign. Under {limit} "
                       "(--min-explanation-agreement) is red" + (": " + "; ".join(
                           f"{item['column']} = {item['group']}" if item.get("column") else str(item.get("group"))
                           for item in flagged) + "." if flagged else "; none is.") + " Groups with fewer than "
                       f"{drift.get('min_rows', 10)} explained rows are left out.")
    elif drift.get("not_measured"):
        st.caption(f"Explanation agreement by group: not measured ({drift['not_measured']}).")

if isinstance(explanation.get("heatmaps"), dict) and explanation.get("window_cells"):
    with guard("Sensor heatmaps"):
        st.subheader("Where in the window: mean |SHAP| per sensor and time block")
        cells = explanation["window_cells"]
        panes = st.columns(len(names))
        for pane, name in zip(panes, names):
            grid = _grid(explanation["heatmaps"].get(name))
            if grid is None:
                continue
            frame = pd.DataFrame([{"sensor": str(cells["sensors"][r]), "block": str(cells["blocks"][c]),
                                   "value": float(grid[r, c])} for r in range(grid.shape[0])
                                  for c in range(grid.shape[1])])
            pane.markdown(f"**{name}**")
            pane.altair_chart(alt.Chart(frame).mark_rect().encode(
                x=alt.X("block:N", sort=list(cells["blocks"])),
                y=alt.Y("sensor:N", sort=list(cells["sensors"]), axis=alt.Axis(labelOverlap=False)),
                color=alt.Color("value:Q", scale=alt.Scale(scheme="oranges"), title="mean |SHAP|"),
                tooltip=["sensor", "block", alt.Tooltip("value:Q", format=".5f")]).properties(
                height=max(160, 22 * grid.shape[0])), width="stretch")

if any(isinstance(models[name].get("top_tokens"), dict) for name in names):
    with guard("Top tokens"):
        st.subheader("Tokens that push the score")
        panes = st.columns(len(names))
        for pane, name in zip(panes, names):
            tokens = models[name].get("top_tokens") or {}
            pane.markdown(f"**{name}**")
            pane.table(pd.DataFrame([{"direction": direction, "token": token, "mean SHAP": fmt(value, 4)}
                                     for direction in ("positive", "negative")
                                     for token, value in (tokens.get(direction) or {}).items()]))

if any(isinstance(models[name].get("region_mass"), dict) for name in names):
    with guard("Where the attribution lies"):
        st.subheader("Where in the image the attribution lies")
        st.table(pd.DataFrame([{"model": name, **{key: fmt(value) for key, value in
                                                   (models[name].get("region_mass") or {}).items()
                                                   if not isinstance(value, (dict, list))}} for name in names]))
        st.caption("Share of |SHAP| on each set of regions, beside the share a uniform attribution would give: "
                   "a shortcut (e.g. a marker in a corner) shows up as mass far above its area.")

def _describe_rows(row_ids: list, names: list[str]) -> dict:
    """row id -> "row 17 · label 1 · float 1, int8 0 (changed)", from predictions.csv where the run has it."""
    if artifacts.PREDICTIONS not in entry.artifacts:
        return {}
    import io

    table = pd.read_csv(io.BytesIO(load_bytes(entry, artifacts.PREDICTIONS))).set_index("row")
    described = {}
    for row in row_ids:
        if row not in table.index:
            continue
        decisions = {name: table.at[row, f"decision:{name}"] for name in names if f"decision:{name}" in table}
        changed = len(set(decisions.values())) > 1
        described[row] = (f"row {row} · label {table.at[row, 'label']} · "
                          + ", ".join(f"{name} {int(value)}" for name, value in decisions.items())
                          + (" · decision changed" if changed else ""))
    return described


with guard("Local explanations"):
    st.subheader("Local explanations, float and shipped model side by side")
    locals_by_model = {name: {item.get("row_id"): item for item in models[name].get("local") or []
                              if isinstance(item, dict)} for name in names}
    row_ids = list(dict.fromkeys(row for name in names for row in locals_by_model[name]))
    if not row_ids:
        st.caption("No local explanations recorded.")
    else:
        described = _describe_rows(row_ids, names)
        row_id = st.selectbox("Example (test row)", row_ids, key="explain_row",
                              format_func=lambda row: described.get(row, f"row {row}"))
        entries = {name: locals_by_model[name].get(row_id) for name in names}
        extent = max([extent_of(item) for item in entries.values() if item] or [0.0])
        panes = st.columns(len(names))
        for pane, name in zip(panes, names):
            with pane:
                st.markdown(f"**{name}**" + (" (reference)" if name == reference else "")
                            + (" (shipped)" if name == entry.ship_variant else ""))
                if entries[name] is None:
                    st.caption("not explained for this model")
                else:
                    with guard(f"Example {row_id} of {name}"):
                        show_local(entries[name], extent)
        st.caption("Red raises the score (towards the positive class), blue lowers it; both models share one "
                   "colour scale.")
        if artifacts.plot_path(f"shap_local_{row_id}") in entry.artifacts:
            with st.expander(f"The run's own plot of example {row_id}"):
                show_plot(entry, artifacts.plot_path(f"shap_local_{row_id}"))

with st.expander("The run's own explanation plots"):
    paths = [*plots_matching(entry, "shap_global"), *plots_matching(entry, "shap_beeswarm")]
    for path in paths:
        show_plot(entry, path)
    if not paths:
        st.caption("This run has no global explanation plots.")
