"""Fairness: metrics by group with their intervals as error bars, the disparity figures,
mitigation before and after, and what compression did to each group as a heatmap."""

import altair as alt
import pandas as pd
import streamlit as st

from pipeline import artifacts
from pipeline.stages.gate import mitigation_made_worse, verdict_of
from common import (contents, estimate, fmt, guard, interval_of, load_bytes, load_json, pick_run, plots_matching, show_plot,
                    value_of)

entry = pick_run("Fairness")
if entry is None:
    st.stop()

audit = load_json(entry, artifacts.AUDIT)
if not audit:
    st.info("This run has no audit (audit.json is not in its manifest).")
    st.stop()

settings = audit.get("settings") or {}
by_group = audit.get("by_group") or {}
models = [m for m in (settings.get("variants") or list(by_group)) if m in by_group] or list(by_group)
reference = settings.get("reference") or (models[0] if models else None)
ship = entry.ship_variant
columns = settings.get("columns") or sorted({c for model in by_group.values() for c in (model or {})})
gate_config = (entry.manifest.get("config") or {}).get("gate") or {}

if not columns:
    st.info("The audit of this run measured no groups.")
    st.stop()

contents([("Did compression hurt a group?", "hurt"), ("Metrics by group", "by-group"), ("Disparities", "disparities"),
          ("What compression did", "compression"), ("Which decisions flipped", "flips"),
          ("Move the threshold", "threshold"), ("Mitigation", "mitigation")])
gated = [c for c in (settings.get("sensitive_columns") or []) if c in columns]
checks = {check.get("name"): check for check in (entry.gate or {}).get("checks") or [] if isinstance(check, dict)}
disparities = audit.get("disparities") or {}
compression = audit.get("compression") or {}


def _eod(model: str, name: str) -> float | None:
    return value_of(((disparities.get(model) or {}).get(name) or {}).get("equalized_odds_difference"))


with st.expander("Glossary"):
    st.markdown(
        "- **TPR** (true-positive rate, recall): of the group's real positives, the share the model flags.\n"
        "- **FPR** (false-positive rate): of the group's real negatives, the share the model flags anyway.\n"
        "- **Equalized odds difference**: the larger of the gap in TPR and the gap in FPR between the best "
        "and the worst group (0: every group is treated alike on both).\n"
        "- **Demographic parity difference**: the gap in the share flagged (selection rate) between groups, "
        "whatever their labels.\n"
        "- **Flagged cell**: a group whose rate changed under compression by more than its paired 95 % interval "
        "allows by chance.\n"
        "- **Inconclusive**: the interval straddles the gate's limit, or a group has too few positives to judge.")

with guard("Did compression hurt a group?"):
    st.subheader("Did compression hurt a group?", anchor="hurt")
    summary, words = [], []
    for name in gated:
        before, after = _eod(reference, name), _eod(ship, name)
        check = checks.get(f"equalized odds difference by {name}") or {}
        table = (compression.get(ship) or {}).get(name) or {}
        widened = [f"{gap.split('_')[0].upper()} gap {change['change']:+.3f}"
                   for gap in ("tpr_gap_change", "fpr_gap_change")
                   for change in [table.get(gap) or {}] if change.get("change") is not None and change.get("flagged")]
        for group, cell in (table.get("groups") or {}).items():
            for metric, change in ((cell or {}).get("changes") or {}).items():
                if isinstance(change, dict) and change.get("flagged"):
                    low, high = interval_of(change)
                    words.append(f"`{ship}` changed the {metric.upper()} of **{name} = {group}** by "
                                 f"{change['change']:+.3f} [{fmt(low)}, {fmt(high)}] against the float model "
                                 f"({cell.get('count', '?')} rows in the group).")
        origin = ("n/a" if before is None or after is None else
                  "already in the float model" if after <= before + 0.01 else
                  "mostly in the float model" if before >= 0.5 * after else "came with compression")
        summary.append({"column": name, "float model": fmt(before), f"{ship} (shipped)": fmt(after),
                        "change": "n/a" if before is None or after is None else f"{after - before:+.3f}",
                        "the gap": origin, "gate": verdict_of(check) if check else "not gated",
                        "gap widened (interval excludes 0)": ", ".join(widened) or "no"})
    if summary:
        st.dataframe(pd.DataFrame(summary), hide_index=True, width="stretch")
        st.caption("Equalized odds difference (the larger of the TPR and FPR gaps between groups) of the float "
                   f"model and of the shipped `{ship}`, per gated column. \"Already in the float model\": "
                   "compression added at most 0.01; the gate's verdict is on the shipped variant's interval.")
    for line in words:
        st.markdown("- " + line)
    if summary and not words:
        st.markdown(f"No group's TPR, FPR or ROC-AUC changed under `{ship}` by more than its paired 95 % interval "
                    "allows. That is not proof of no harm: see each group's size, and the smallest change the "
                    "test could detect, in the heatmap's tooltips below.")

failing = [name for name in gated if checks.get(f"equalized odds difference by {name}")
           and verdict_of(checks[f"equalized odds difference by {name}"]) != "pass"]
# A newly picked run opens on the first column whose gate check did not pass.
if st.session_state.get("fairness_column_run") != entry.key or st.session_state.get("fairness_column") not in columns:
    st.session_state["fairness_column_run"] = entry.key
    st.session_state["fairness_column"] = failing[0] if failing else columns[0]
column = st.selectbox("Sensitive column", columns, key="fairness_column",
                      help="Opens on the first column whose gate check did not pass.")

with guard("Metrics by group"):
    st.subheader(f"Metrics by {column}", anchor="by-group")
    metric_names = []
    for model in models:
        for cell in ((by_group.get(model) or {}).get(column) or {}).get("groups", {}).values():
            for name in (cell.get("metrics") or {}):
                if name not in metric_names and name != "positives":
                    metric_names.append(name)
    left, right = st.columns([1, 2])
    metric_names = metric_names or ["tpr"]
    metric = left.selectbox("Metric", metric_names, index=metric_names.index("tpr") if "tpr" in metric_names else 0,
                            key="fairness_metric")
    default_models = [m for m in (reference, ship) if m in models]
    chosen = right.multiselect("Models", models, default=default_models or models[:1], key="fairness_models")
    points, unmeasurable = [], []
    for model in chosen:
        for group, cell in (((by_group.get(model) or {}).get(column) or {}).get("groups") or {}).items():
            if not cell.get("measurable", True) or not cell.get("metrics"):
                if model == chosen[0]:
                    unmeasurable.append({"group": group, "rows": cell.get("count"), "reason": cell.get("reason")})
                continue
            value = (cell["metrics"] or {}).get(metric)
            low, high = interval_of(value)
            if value_of(value) is None:
                continue
            points.append({"model": model, "group": str(group), "value": value_of(value), "low": low, "high": high,
                           "rows": cell.get("count"), "estimate": estimate(value)})
    if points:
        frame = pd.DataFrame(points)
        base = alt.Chart(frame).encode(x=alt.X("group:N", title=column, sort=None), xOffset="model:N",
                                       color=alt.Color("model:N", title="model"))
        bars = base.mark_rule(strokeWidth=2).encode(y=alt.Y("low:Q", title=metric), y2="high:Q")
        dots = base.mark_point(filled=True, size=80).encode(
            y="value:Q",
            tooltip=["model", "group", "rows", alt.Tooltip("estimate:N", title=f"{metric} [95% interval]")])
        st.altair_chart(alt.layer(bars, dots).properties(height=340), width="stretch")
        st.caption(f"{metric} by group with bootstrap 95 % intervals ({settings.get('bootstrap_samples', '?')} "
                   "resamples) as error bars.")
        st.dataframe(frame.pivot_table(index="group", columns="model", values="estimate", aggfunc="first"),
                     width="stretch")
    else:
        st.info(f"No measurable group for {metric} by {column}.")
    if unmeasurable:
        st.caption("Groups too small or one-class, left out:")
        st.table(pd.DataFrame(unmeasurable))

with guard("Disparities"):
    st.subheader("Disparities", anchor="disparities")
    limit = gate_config.get("max_equalized_odds_difference")
    rows = []
    for model, by_column in (audit.get("disparities") or {}).items():
        values = (by_column or {}).get(column)
        if not isinstance(values, dict):
            continue
        row = {"model": model + (" (shipped)" if model == ship else "")}
        for name, cell in values.items():
            if isinstance(cell, dict) and "value" in cell:
                row[name.replace("_", " ")] = estimate(cell)
        excluded = values.get("groups_excluded") or {}
        row["groups left out"] = "; ".join(f"{g}: {r}" for g, r in excluded.items())
        rows.append(row)
    if rows:
        st.table(pd.DataFrame(rows))
        if limit is not None:
            eod = value_of(((audit.get("disparities") or {}).get(ship) or {}).get(column, {}).get(
                "equalized_odds_difference"))
            verdict = "within" if eod is not None and eod <= limit else "above"
            (st.success if verdict == "within" else st.error)(
                f"`{ship}`: equalized odds difference by {column} is {fmt(eod)}, {verdict} the gate's limit {limit}.")
    else:
        st.caption("No disparity figures for this column.")

with guard("Compression heatmap"):
    st.subheader("What compression did to each group", anchor="compression")
    change_metrics = []
    for variant in compression.values():
        for cell in ((variant or {}).get(column) or {}).get("groups", {}).values():
            for name in (cell.get("changes") or {}):
                if name not in change_metrics:
                    change_metrics.append(name)
    if not change_metrics:
        st.caption("No compression comparison for this column.")
    else:
        change_metric = st.radio("Change of", change_metrics, horizontal=True, key="fairness_change_metric")
        cells = []
        for variant, by_column in compression.items():
            for group, cell in (((by_column or {}).get(column) or {}).get("groups") or {}).items():
                change = (cell.get("changes") or {}).get(change_metric) if cell.get("measurable", True) else None
                if not isinstance(change, dict) or change.get("change") is None:
                    cells.append({"variant": variant, "group": str(group), "change": None, "flagged": False,
                                  "text": "n/a", "detail": cell.get("reason") or "not measurable"})
                    continue
                low, high = interval_of(change)
                flagged = bool(change.get("flagged"))
                positives = value_of((((by_group.get(variant) or {}).get(column) or {}).get("groups", {}).get(group)
                                      or {}).get("metrics", {}).get("positives"))
                detectable = (f"; changes within ±{(high - low) / 2:.3f} cannot be told from noise"
                              if low is not None and high is not None else "")
                cells.append({"variant": variant, "group": str(group), "change": change["change"], "flagged": flagged,
                              "text": f"{change['change']:+.3f}" + (" ⚑" if flagged else ""),
                              "detail": f"{change['change']:+.4f} [{fmt(low)}, {fmt(high)}]"
                                        + (" flagged: the interval excludes 0" if flagged else "")
                                        + f"; {cell.get('count', '?')} rows"
                                        + (f", {int(positives)} positives" if positives is not None else "")
                                        + detectable})
        frame = pd.DataFrame(cells)
        extent = max(0.01, float(frame["change"].abs().max() or 0.01)) if frame["change"].notna().any() else 0.01
        frame["ink"] = ["white" if abs(value) > 0.6 * extent else "black" for value in frame["change"].fillna(0)]
        base = alt.Chart(frame).encode(x=alt.X("group:N", title=column, sort=None, axis=alt.Axis(labelAngle=-30)),
                                       y=alt.Y("variant:N", title="variant", sort=None,
                                               axis=alt.Axis(labelOverlap=False)))
        heat = base.mark_rect(stroke="white").encode(
            color=alt.Color("change:Q", title=f"Δ {change_metric}",
                            scale=alt.Scale(scheme="redblue", domain=[-extent, extent], reverse=True)),
            tooltip=["variant", "group", alt.Tooltip("detail:N", title=f"Δ {change_metric} [95% interval]")])
        outline = base.transform_filter("datum.flagged").mark_rect(fill=None, stroke="black", strokeWidth=2.5)
        text = base.mark_text(fontSize=11).encode(text="text:N", color=alt.Color("ink:N", scale=None))
        # The text layer's literal colours must not share the rect layer's quantitative colour scale: shared,
        # Vega-Lite draws nothing (0 px, "Cannot read properties of null (reading 'type')" in the console).
        st.altair_chart(alt.layer(heat, outline, text).resolve_scale(color="independent")
                        .properties(height=max(200, 44 * frame["variant"].nunique())), width="stretch")
        flagged = frame[frame["flagged"]]
        st.caption(f"Change of {change_metric} against the float model ({settings.get('reference', 'keras_float')}), "
                   "per variant and group. ⚑ and a black frame: flagged, the paired-bootstrap 95 % interval "
                   f"excludes 0 ({len(flagged)} cell(s) here).")
        gaps = []
        for variant, by_column in compression.items():
            content = (by_column or {}).get(column) or {}
            for name in ("tpr_gap_change", "fpr_gap_change"):
                gap = content.get(name)
                if isinstance(gap, dict):
                    low, high = interval_of(gap)
                    gaps.append({"variant": variant, "gap": name.replace("_change", "").replace("_", " "),
                                 "float": fmt(gap.get("reference")), "variant value": fmt(gap.get("variant")),
                                 "change": f"{gap['change']:+.4f}" if gap.get("change") is not None else "n/a",
                                 "interval": f"[{fmt(low)}, {fmt(high)}]", "flagged": bool(gap.get("flagged"))})
        if gaps:
            with st.expander("Gap between groups, float vs each variant"):
                st.table(pd.DataFrame(gaps))

with guard("Which decisions flipped"):
    st.subheader("Which decisions flipped", anchor="flips")
    flip_rates = load_json(entry, artifacts.FLIP_RATES) if artifacts.FLIP_RATES in entry.artifacts else None
    if not flip_rates or not flip_rates.get("variants"):
        st.caption("This run has no flip ledger (flips.json); runs made before it was added do not.")
    else:
        flipped_variants = list(flip_rates["variants"])
        points = []
        for variant, summary in flip_rates["variants"].items():
            for group, cell in ((summary.get("by_group") or {}).get(column) or {}).items():
                rate = cell.get("rate") or {}
                if value_of(rate) is None:
                    continue
                low, high = interval_of(rate)
                points.append({"variant": variant, "group": str(group), "rate": value_of(rate), "low": low,
                               "high": high, "flips": cell.get("flips"), "rows": cell.get("rows"),
                               "estimate": estimate(rate, 4) + ("" if cell.get("measurable", True) else " (too few rows)")})
        if points:
            frame = pd.DataFrame(points)
            base = alt.Chart(frame).encode(x=alt.X("group:N", title=column, sort=None), xOffset="variant:N",
                                           color=alt.Color("variant:N", title="variant"))
            bars = base.mark_bar(opacity=0.8).encode(y=alt.Y("rate:Q", title="share of decisions flipped"))
            whiskers = base.mark_rule(strokeWidth=1.5, color="black").encode(y="low:Q", y2="high:Q")
            st.altair_chart(alt.layer(bars, whiskers).encode(
                tooltip=["variant", "group", "flips", "rows", alt.Tooltip("estimate:N", title="flip rate [95% interval]")]
            ).properties(height=300), width="stretch")
            st.caption("Share of each group's test decisions that a variant decided otherwise than the float model, "
                       "with 95 % intervals (bootstrap, widened to Wilson's). A group flipped more than others lost "
                       "more of what the float model decided; the examples are below.")
        left, right = st.columns([2, 1])
        variant = left.selectbox("Variant", flipped_variants, key="flips_variant",
                                 index=flipped_variants.index(ship) if ship in flipped_variants else 0)
        overall = (flip_rates["variants"].get(variant) or {}).get("overall") or {}
        right.metric("Decisions flipped", f"{overall.get('flips', 0):,} of {overall.get('rows', 0):,}",
                     help=f"Now wrong: {overall.get('now_wrong', 0):,}; now right: {overall.get('now_right', 0):,}.")
        if artifacts.FLIPS in entry.artifacts:
            import io

            ledger_bytes = load_bytes(entry, artifacts.FLIPS)
            ledger = pd.read_csv(io.BytesIO(ledger_bytes), dtype=str, keep_default_na=False)
            shown = ledger[ledger["variant"] == variant].drop(columns=["variant"])
            for name in ("score:reference", "score:variant", "margin:reference", "margin:variant"):
                if name in shown:
                    shown[name] = pd.to_numeric(shown[name], errors="coerce")
            st.dataframe(shown.drop(columns=[c for c in ("threshold:reference", "threshold:variant") if c in shown]),
                         hide_index=True, width="stretch", height=min(38 + 35 * max(len(shown), 1), 420),
                         column_config={name: st.column_config.NumberColumn(format="%.4f") for name in
                                        ("score:reference", "score:variant", "margin:reference", "margin:variant")})
            st.caption(f"Every test example `{variant}` decided otherwise than the float model, closest to the float "
                       "model's threshold first (margin: score minus the model's own threshold). `row` is its "
                       "position in the test split, as in predictions.csv. For review by a person: examples "
                       "compression changes are often atypical or from under-represented groups.")
            st.download_button("Flip ledger (flips.csv)", data=ledger_bytes, file_name=f"flips-{entry.run_id}.csv",
                               mime="text/csv", on_click="ignore", icon=":material/download:", key="download_flips")
        for path in plots_matching(entry, f"flipped_images_{variant}"):
            show_plot(entry, path, caption=f"Test images whose decision {variant} flipped")

with guard("Move the threshold"):
    st.subheader("Move the threshold: the shipped variant against the float model", anchor="threshold")
    table = None
    if artifacts.PREDICTIONS in entry.artifacts:
        import io

        table = pd.read_csv(io.BytesIO(load_bytes(entry, artifacts.PREDICTIONS)), dtype={column: str})
    if table is None or f"score:{ship}" not in table or f"score:{reference}" not in table or column not in table:
        st.caption("This run has no per-example predictions (predictions.csv); re-run it to move the threshold here.")
    else:
        variants = (load_json(entry, artifacts.METRICS) or {}).get("variants") or {}
        shipped_threshold = ((variants.get(ship) or {}).get("quality") or {}).get("threshold")
        if shipped_threshold is None:
            shipped_threshold = 0.5
        threshold = st.slider(f"Threshold of `{ship}`", 0.0, 1.0, float(round(shipped_threshold, 3)), 0.005,
                              key="fairness_threshold",
                              help=f"The run's own threshold for {ship}, chosen on validation, is "
                                   f"{shipped_threshold:.4f}. The float model keeps its own.")
        decided = table[f"score:{ship}"] >= threshold
        reference_decided = table[f"decision:{reference}"] == 1
        rows, matrices = [], []
        for group, part in table.groupby(column, sort=True):
            mine, theirs = decided[part.index], reference_decided[part.index]
            positives, negatives = part["label"] == 1, part["label"] == 0
            rows.append({"group": group, "rows": len(part), "positives": int(positives.sum()),
                         f"TPR {ship}": mine[positives].mean() if positives.any() else None,
                         "TPR float": theirs[positives].mean() if positives.any() else None,
                         f"FPR {ship}": mine[negatives].mean() if negatives.any() else None,
                         "FPR float": theirs[negatives].mean() if negatives.any() else None,
                         "decisions flipped": int((mine != theirs).sum())})
            for model, decisions in (("float", theirs), (ship, mine)):
                matrices.append({"group": group, "model": model,
                                 "true positives": int((decisions & positives).sum()),
                                 "false negatives": int((~decisions & positives).sum()),
                                 "false positives": int((decisions & negatives).sum()),
                                 "true negatives": int((~decisions & negatives).sum())})
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                     column_config={c: st.column_config.NumberColumn(format="%.3f") for c in
                                    (f"TPR {ship}", "TPR float", f"FPR {ship}", f"FPR float")})
        st.caption(f"From predictions.csv, every test example's score: at this threshold, {int(decided.sum()):,} of "
                   f"{len(table):,} test examples are flagged by `{ship}`. Flipped: decided otherwise than the float "
                   "model. With few positives in a group, one example moves its TPR a lot: read the counts.")
        with st.expander("Confusion matrix per group, float vs shipped"):
            st.dataframe(pd.DataFrame(matrices), hide_index=True, width="stretch")

with guard("Mitigation"):
    st.subheader("Mitigation: before and after", anchor="mitigation")
    mitigation = load_json(entry, artifacts.MITIGATION)
    if not mitigation:
        st.caption("This run has no mitigation.")
    elif mitigation.get("status") not in (None, "ok"):
        st.warning(f"Mitigation did not run: {mitigation.get('reason')}")
    else:
        before, after = mitigation.get("before") or {}, mitigation.get("after") or {}
        st.markdown(f"Constraint **{mitigation.get('constraint')}**, objective {mitigation.get('objective')}, "
                    f"fitted on the validation split by `{mitigation.get('sensitive_column')}`, measured on the test "
                    "split (float model).")
        rows = [{"measure": key, "before": fmt(value_of(before.get(key))), "after": fmt(value_of(after.get(key)))}
                for key in dict.fromkeys([*before, *after]) if value_of(before.get(key)) is not None
                or value_of(after.get(key)) is not None]
        for col, values in (before.get("disparities") or {}).items():
            for key, value in (values or {}).items():
                if value_of(value) is not None:
                    rows.append({"measure": f"{key.replace('_', ' ')} by {col}", "before": fmt(value_of(value)),
                                 "after": fmt(value_of(((after.get("disparities") or {}).get(col) or {}).get(key)))})
        st.table(pd.DataFrame(rows))
        worse = mitigation_made_worse(mitigation)
        if worse:
            st.warning("Mitigation made equalized odds worse on the test split by " + ", ".join(worse)
                       + ": the thresholds fitted on the validation split did not carry over.")
        groups = []
        for side, content in (("before", before), ("after", after)):
            for group, cell in (((content.get("by_group") or {}).get(column)) or {}).items():
                for name in ("tpr", "fpr"):
                    if value_of((cell or {}).get(name)) is not None:
                        groups.append({"when": side, "group": str(group), "rate": name.upper(),
                                       "value": value_of(cell[name])})
        if groups:
            chart = alt.Chart(pd.DataFrame(groups)).mark_bar().encode(
                x=alt.X("group:N", sort=None, title=column), xOffset=alt.XOffset("when:N", sort=["before", "after"]),
                y=alt.Y("value:Q"), color=alt.Color("when:N", sort=["before", "after"]),
                column=alt.Column("rate:N", title=None), tooltip=["when", "group", "rate",
                                                                  alt.Tooltip("value:Q", format=".3f")])
            st.altair_chart(chart.properties(height=260), width="content")
        for note in mitigation.get("notes") or []:
            st.caption(note)

with guard("Probes and analyses"):
    found = [path for path in sorted(entry.artifacts) if path.startswith(artifacts.ANALYSES_FOLDER) and path.endswith(".json")]
    if found:
        st.subheader("Probes and analyses of this domain", anchor="analyses")
        for path in found:
            analysis = load_json(entry, path) or {}
            st.markdown(f"**{analysis.get('title') or path}**" + (f": {analysis['summary']}"
                                                                  if analysis.get("summary") else ""))
            table = analysis.get("table")
            if isinstance(table, dict) and table.get("headers") and table.get("rows"):
                st.dataframe(pd.DataFrame([[fmt(cell) if isinstance(cell, float) else cell for cell in row]
                                           for row in table["rows"]], columns=[str(h) for h in table["headers"]]),
                             hide_index=True, width="stretch")

with st.expander("The run's own fairness plots"):
    paths = [*plots_matching(entry, "fairness_"), *plots_matching(entry, "compression_heatmap"),
             *plots_matching(entry, "flip_rates_"), *plots_matching(entry, "mitigation")]
    for path in paths:
        show_plot(entry, path)
    if not paths:
        st.caption("This run has no fairness plots.")
