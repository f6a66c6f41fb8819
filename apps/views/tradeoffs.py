"""Edge trade-offs: quality vs size vs latency of every variant, the Pareto front, sparsity,
agreement with the float model, and the variant the gate judged for shipping."""

import altair as alt
import pandas as pd
import streamlit as st

from common import contents, fmt, guard, load_json, pick_run, show_plot
from pipeline import artifacts
from pipeline import reports_index as index
from pipeline.stages.deploy import decision_rows
from pipeline.stages.group_harm import describe
from pipeline.stages.gate import verdict_label

entry = pick_run("Edge trade-offs")
if entry is None:
    st.stop()

metrics = load_json(entry, artifacts.METRICS) or {}
headline = metrics.get("headline_metric") or entry.headline_metric or "quality"
rows = index.tradeoff_rows(entry.manifest, metrics, load_json(entry, artifacts.COMPRESSION), entry.gate)
built = [row for row in rows if row["status"] == "ok"]
ship = entry.ship_variant
contents([("Which variant ships", "ships"), ("Trade-off chart", "tradeoff"), ("Every variant", "variants"),
          ("Quantization error by layer", "layers"), ("Gate", "gate")])

verdict = "not recorded" if entry.gate_passed is None else entry.gate_verdict
message = f"The gate judged **`{ship}`**, the variant chosen to ship: **{verdict}**."
if entry.gate_passed is False:
    st.error(message + " " + "; ".join(entry.gate_reasons))
else:
    st.success(message)

for row in rows:
    if row["status"] != "ok":
        st.warning(f"Variant `{row['variant']}` was not built: {row['reason']}")

with guard("The decision table"):
    st.subheader("Which variant ships, and why", anchor="ships")
    deployment = load_json(entry, artifacts.DEPLOYMENT)
    if not deployment:
        st.info("This run has no deployment.json (it was written before device targets existed): "
                "re-run it to see the decision table.")
    else:
        decision = deployment["decision"]
        named = decision.get("named_targets") or []
        st.markdown(f"**`{decision['ship_variant']}` ships**: {decision['explanation']}.  \n"
                    + (f"Targets named for this run: {', '.join(f'`{t}`' for t in named)}. " if named else
                       "No target was named (`--target`): any variant LiteRT runs could ship. ")
                    + f"Chosen on the {decision['chosen_on']}; order: {decision['order_rule']}."
                    + (f"  \nA device flags a case when the output reaches **{decision['threshold']:.4f}** "
                       f"(the threshold of `{decision['ship_variant']}`)." if decision.get("threshold") is not None
                       else ""))
        targets = [target["name"] for target in deployment["targets"]]
        table = [{
            "variant": row["variant"] + (" (ships)" if row["ships"] else ""),
            "flash KB": round(row["flash_bytes"] / 1024, 1),
            "arena KB (tflite-micro)": None if row["arena_bytes"] is None else round(row["arena_bytes"] / 1024, 1),
            "same decisions as LiteRT": row["agreement_with_litert"],
            **{f"{'★ ' if t in named else ''}{t}": "✔ fits" if row["targets"][t]["fits"] else
               "✘ " + "; ".join(row["targets"][t]["why_not"]) for t in targets},
            "validation checks": row["validation_verdict"],
            "why not chosen": row["why_not_chosen"] or "chosen",
        } for row in decision_rows(deployment)]
        st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
        st.caption("✔ fits / ✘ does not fit each target (★: named for this run), measured: every variant was "
                   "loaded in the microcontroller runtime (TensorFlow Lite Micro) and its smallest tensor arena "
                   "found by bisection. Validation checks: the gate's checks measured on the validation split, "
                   "which is where the choice is made. `edgeaudit targets` lists the devices.")
        device = deployment.get("device") or {}
        if device.get("python_snippet"):
            with st.expander(f"What a device needs to run `{device['variant']}`"):
                if device.get("input"):
                    st.markdown(f"- Input: shape {device['input']['shape']}, {device['input']['dtype']}; apply "
                                f"`{device['preprocessing']}` first\n"
                                f"- Operators to register: {', '.join(device['operators'])}\n"
                                f"- Tensor arena: {device['arena_bytes']:,} bytes; model: {device['flash_bytes']:,} "
                                "bytes of flash"
                                + (f"\n- C source: {', '.join(f'`{p}`' for p in device['sources'])}"
                                   if device.get("sources") else ""))
                st.code(device["python_snippet"], language="python")

# The trade-off chart's plotting height: 380 px less its x axis and the y scale's padding.
PLOT_PX = 380 - 45 - 2 * 24


with guard("The trade-off plot"):
    st.subheader(f"{headline} against size and latency", anchor="tradeoff")
    axes = {"file size (KB)": ("bytes", 1 / 1024), "gzip size (KB)": ("gzip_bytes", 1 / 1024),
            "latency (µs, median, 1 thread, this host's CPU)": ("latency_ms", 1000.0)}
    axis = st.radio("Horizontal axis", list(axes), horizontal=True, key="tradeoff_axis")
    field, scale = axes[axis]
    points = [row for row in built if row.get(field) is not None and row.get("headline") is not None]
    larger = index.higher_is_better(headline)
    front = index.pareto_flags([(row[field], row["headline"]) for row in points], (False, larger))
    frame = pd.DataFrame([{
        "variant": row["variant"], "x": row[field] * scale, headline: row["headline"],
        "role": "shipped" if row["shipped"] else ("Pareto front" if on_front else "dominated"),
        "Pareto": "on the front" if on_front else "dominated",
        "size KB": (row["bytes"] or 0) / 1024, "latency_us": (row["latency_ms"] or 0) * 1000, "sparsity": row["sparsity"],
        "same decisions": row["identical_decisions"],
    } for row, on_front in zip(points, front)])
    if frame.empty:
        st.info("No variant has both a size and a quality measure.")
    else:
        base = alt.Chart(frame).encode(
            x=alt.X("x:Q", title=axis, scale=alt.Scale(zero=False, padding=24)),
            y=alt.Y(f"{headline}:Q", title=headline, scale=alt.Scale(zero=False, padding=24)))
        dots = base.mark_point(filled=True, size=160).encode(
            color=alt.Color("Pareto:N", scale=alt.Scale(domain=["on the front", "dominated"],
                                                        range=["#1a73e8", "#9aa0a6"])),
            shape=alt.Shape("role:N", scale=alt.Scale(domain=["shipped", "Pareto front", "dominated"],
                                                      range=["diamond", "circle", "circle"]), legend=None),
            tooltip=["variant", alt.Tooltip(f"{headline}:Q", format=".4f"), alt.Tooltip("size KB:Q", format=".1f"),
                     alt.Tooltip("latency_us:Q", format=".1f", title="latency (µs)"),
                     alt.Tooltip("sparsity:Q", format=".2f"),
                     alt.Tooltip("same decisions:Q", format=".4f"), "Pareto", "role"])
        line = alt.Chart(frame[frame["Pareto"] == "on the front"].sort_values("x")).mark_line(
            color="#1a73e8", strokeDash=[4, 3]).encode(x="x:Q", y=f"{headline}:Q")
        float_quality = ((metrics.get("keras_float") or {}).get("quality") or {}).get(headline)
        # Names beside their points, stacked where points crowd, in the y axis's units so they share its scale.
        spread = frame[headline].tolist() + ([float_quality] if isinstance(float_quality, (int, float)) else [])
        frame["label_y"] = index.label_heights(frame["x"].tolist(), frame[headline].tolist(), plot_height_px=PLOT_PX,
                                               y_span=max(spread) - min(spread))
        labels = alt.Chart(frame).mark_text(align="left", baseline="middle", dx=9, fontSize=11).encode(
            x="x:Q", y=alt.Y("label_y:Q", title=headline), text="label:N").transform_calculate(
            label="datum.variant + (datum.role == 'shipped' ? ' (shipped)' : '')")
        layers = [line, dots, labels]
        if isinstance(float_quality, (int, float)):
            layers.append(alt.Chart(pd.DataFrame({"y": [float_quality]})).mark_rule(
                color="#d93025", strokeDash=[2, 2]).encode(y="y:Q", tooltip=[alt.Tooltip("y:Q", title="Keras float")]))
        st.altair_chart(alt.layer(*layers).properties(height=380).interactive(), width="stretch")
        on_front = frame.loc[frame["Pareto"] == "on the front", "variant"].tolist()
        front_text = ("Dashed blue line: the Pareto front" if len(on_front) > 1 else
                      f"The Pareto front is one variant, {', '.join(on_front) or 'none'} (no line to draw)")
        st.caption(f"{front_text} (no other variant is smaller or faster with an equal or better {headline}); blue: "
                   "on the front; red dotted rule: the Keras float model; diamond: the shipped variant.")

with guard("The variant table"):
    st.subheader("Every variant, run in LiteRT", anchor="variants")
    table = pd.DataFrame([{
        "variant": row["variant"], "shipped": row["shipped"], headline: row.get("headline"),
        "threshold": row.get("threshold"),
        "size KB": None if row.get("bytes") is None else row["bytes"] / 1024,
        "gzip KB": None if row.get("gzip_bytes") is None else row["gzip_bytes"] / 1024,
        "size vs float32": row.get("ratio_to_float32"), "sparsity": row.get("sparsity"),
        "latency µs": None if row.get("latency_ms") is None else row["latency_ms"] * 1000,
        "same decisions as float": row.get("identical_decisions"),
        "changed decisions": row.get("changed_decisions"), "max score difference": row.get("max_score_difference"),
        "Pareto (size, quality)": row["pareto_size"], "Pareto (size, latency, quality)": row["pareto_all"],
        "status": row["status"] if row["status"] == "ok" else f"not built: {row['reason']}",
    } for row in rows])
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        headline: st.column_config.NumberColumn(format="%.4f"),
        "threshold": st.column_config.NumberColumn(format="%.4f", help="a device flags a case when the output "
                                                   "reaches it; chosen on the validation split per variant"),
        "size KB": st.column_config.NumberColumn(format="%.1f"),
        "gzip KB": st.column_config.NumberColumn(format="%.1f"),
        "size vs float32": st.column_config.NumberColumn(format="%.3f"),
        "sparsity": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
        "latency µs": st.column_config.NumberColumn(format="%.1f", help="median single-example latency in LiteRT, "
                                                                         "1 thread, on this host's CPU"),
        "same decisions as float": st.column_config.NumberColumn(format="%.4f"),
        "max score difference": st.column_config.NumberColumn(format="%.4f"),
    })
    keras = metrics.get("keras_float") or {}
    if keras:
        st.caption(f"Keras float model: {headline} {fmt(((keras.get('quality') or {}).get(headline)))}, "
                   f"{fmt(keras.get('parameters'))} parameters, "
                   f"latency {fmt(((keras.get('latency') or {}).get('median_ms') or 0) * 1000, 1)} µs "
                   f"({keras.get('latency_call', '')}).")
    baselines = metrics.get("baselines") or {}
    if baselines:
        message = "**Baselines** (same split and encoding, not shipped): " + "; ".join(
            f"{name.replace('_', ' ')} {headline} {fmt((model.get('quality') or {}).get(headline))}"
            for name, model in (baselines.get("models") or {}).items()) + ". " + baselines.get("sentence", "")
        (st.warning if (baselines.get("behind_by") or 0) > (baselines.get("limit") or 0.05) else st.info)(message)

with guard("The latency and agreement charts"):
    left, right = st.columns(2)
    # Plain ASCII field names: Vega-Lite reads "." and some symbols in a field name as paths.
    bars = pd.DataFrame([{"variant": row["variant"], "latency_us": (row["latency_ms"] or 0) * 1000,
                          "agreement": row["identical_decisions"],
                          "changed_pct": 100 * (1 - (row["identical_decisions"] if row["identical_decisions"]
                                                     is not None else 1)),
                          "sparsity": row["sparsity"]} for row in built])
    if not bars.empty:
        left.altair_chart(alt.Chart(bars).mark_bar().encode(
            x=alt.X("latency_us:Q", title="median latency (µs, this host's CPU)"),
            y=alt.Y("variant:N", sort=None, axis=alt.Axis(labelOverlap=False)),
            tooltip=["variant", alt.Tooltip("latency_us:Q", format=".1f", title="latency (µs)")]).properties(
            title="Latency (LiteRT, 1 thread)", height=alt.Step(28)), width="stretch")
        right.altair_chart(alt.Chart(bars).mark_bar(color="#34a853").encode(
            x=alt.X("changed_pct:Q", title="test decisions that differ from the float model (%)"),
            y=alt.Y("variant:N", sort=None, axis=alt.Axis(labelOverlap=False)),
            tooltip=["variant", alt.Tooltip("agreement:Q", format=".4f", title="same decisions as float"),
                     alt.Tooltip("changed_pct:Q", format=".2f", title="changed (%)"),
                     alt.Tooltip("sparsity:Q", format=".2f")]
        ).properties(title="Decisions changed by compression", height=alt.Step(28)), width="stretch")

with guard("Quantization error by layer"):
    layers = load_json(entry, artifacts.LAYERS) if artifacts.LAYERS in entry.artifacts else None
    measured = {name: table for name, table in ((layers or {}).get("variants") or {}).items() if table.get("layers")}
    if measured:
        st.subheader("Where quantization error comes from", anchor="layers")
        level = (layers.get("settings") or {}).get("warning_level", 0.7)
        names = list(measured)
        variant = st.selectbox("Full-integer variant", names, key="layers_variant",
                               index=names.index(ship) if ship in names else 0)
        frame = pd.DataFrame([{
            "layer": f"{row.get('keras_layer') or row.get('tensor_name')} ({str(row.get('op', '')).lower()})",
            "keras layer": row.get("keras_layer"), "op": row.get("op"), "RMSE / scale": row.get("rmse_over_scale"),
            "max |error|": row.get("max_abs_error"), "mean error": row.get("mean_error"), "scale": row.get("scale"),
            "over the warning level": bool(row.get("over_warning_level")), "TFLite tensor": row.get("tensor_name")}
            for row in measured[variant]["layers"]])
        bars = alt.Chart(frame).mark_bar().encode(
            x=alt.X("layer:N", sort=None, title="Keras layer (TFLite op)",
                    axis=alt.Axis(labelAngle=-30, labelLimit=240)),
            y=alt.Y("RMSE / scale:Q", title="RMSE / quantization scale"),
            color=alt.Color("over the warning level:N", scale=alt.Scale(domain=[False, True],
                                                                        range=["#4c78a8", "#d62728"])),
            tooltip=["keras layer", "op", alt.Tooltip("RMSE / scale:Q", format=".3f"),
                     alt.Tooltip("max |error|:Q", format=".4g"), "TFLite tensor"])
        rule = alt.Chart(pd.DataFrame({"level": [level]})).mark_rule(color="crimson", strokeDash=[6, 4]).encode(
            y="level:Q")
        st.altair_chart(alt.layer(bars, rule).properties(height=300), width="stretch")
        st.caption(f"TensorFlow's quantization debugger on {measured[variant].get('debug_rows', '?')} validation "
                   "rows: the error each layer adds given int8 inputs, in units of its output's quantization step "
                   f"(rounding alone: about 0.29). Red, over the dashed line ({level}): a layer to keep in float "
                   "or to re-train with quantization in the loop.")
        st.dataframe(frame.drop(columns=["layer"]), hide_index=True, width="stretch",
                     column_config={name: st.column_config.NumberColumn(format="%.4g")
                                    for name in ("RMSE / scale", "max |error|", "mean error", "scale")})
    for name, table in ((layers or {}).get("variants") or {}).items():
        if "error" in table:
            st.caption(f"`{name}`: per-layer error {table['error']}.")
    compression_record = load_json(entry, artifacts.COMPRESSION) or {}
    calibration = ((compression_record.get("int8") or {}).get("details") or {}).get("calibration")
    if calibration:
        st.markdown(f"**Calibration set of int8**: the default representative rows, and rows of each group of "
                    f"`{calibration.get('column')}` alone, each judged on the validation split. Used: "
                    f"{calibration.get('why')}.")
        st.dataframe(pd.DataFrame([{
            "calibration set": row["name"] + (" (used)" if row["name"] == calibration.get("chosen") else ""),
            "rows": row.get("rows"),
            **{f"{group}: Δ{metric.upper()}": (changes or {}).get(metric) for group, changes in
               (row.get("changes") or {}).items() for metric in ("tpr", "fpr")},
            "worst group change": (row.get("worst") or {}).get("change")} for row in calibration.get("sets") or []]),
            hide_index=True, width="stretch")
    selective = compression_record.get("selective_int8")
    if selective:
        st.markdown("**Selective int8**: int8 with the layers that most change a group's TPR or FPR kept in float, "
                    "chosen on the validation split.")
        details = (selective.get("details") or {}).get("selective") or {}
        if selective.get("status") != "ok":
            st.caption(f"Not built: {selective.get('reason')}")
        else:
            st.markdown(f"Worst group change on validation: int8 {describe((details.get('start') or {}).get('worst') or {})}"
                        f" → selective {describe((details.get('final') or {}).get('worst') or {})} "
                        f"(limit ±{details.get('limit')}); "
                        f"{fmt(details.get('final', {}).get('bytes'))} bytes against int8's {fmt(details.get('int8_bytes'))}.")
            steps = [{"layer kept in float": step.get("keras_layer") or step.get("tensor_name"), "op": step.get("op"),
                      "bytes added": step.get("bytes_added"), "latency added (ms)": step.get("latency_ms_added"),
                      "worst group change after": describe(step.get("worst_after") or {}),
                      "float in the file": bool(step.get("float_in_file"))} for step in details.get("restored") or []]
            if steps:
                st.dataframe(pd.DataFrame(steps), hide_index=True, width="stretch")
            else:
                st.caption(f"No layer kept in float: {details.get('stopped')}.")

with guard("Pruning sensitivity"):
    pruned = (load_json(entry, artifacts.COMPRESSION) or {}).get("pruned_int8") or {}
    allocation = (pruned.get("details") or {}).get("sparsity_allocation") or {}
    if pruned.get("status") == "ok" and allocation.get("method") == "sensitivity" and allocation.get("scan"):
        st.subheader("How pruning was spread over the layers", anchor="pruning")
        curves = pd.DataFrame([{"layer": name, "sparsity": float(level), "score": score}
                               for name, curve in allocation["scan"].items() for level, score in curve.items()])
        scored_at = allocation.get("scored_at") or allocation["sparsity"]
        chosen = pd.DataFrame([{"layer": name, "sparsity": level,
                                "score": allocation["scan"][name][f"{scored_at[name]:g}"]}
                               for name, level in allocation["sparsity"].items()])
        metric = str(allocation.get("metric", "pr_auc")).replace("_", "-").upper()
        lines = alt.Chart(curves).mark_line(point=True).encode(
            x=alt.X("sparsity:Q", title="sparsity of that layer alone", axis=alt.Axis(format="%")),
            y=alt.Y("score:Q", title=f"validation {metric}", scale=alt.Scale(zero=False)),
            color=alt.Color("layer:N"), tooltip=["layer", alt.Tooltip("sparsity:Q", format=".0%"),
                                                 alt.Tooltip("score:Q", format=".4f")])
        given = alt.Chart(chosen).mark_point(shape="diamond", size=180, filled=True,
                                                               stroke="black").encode(
            x="sparsity:Q", y="score:Q", color="layer:N",
            tooltip=["layer", alt.Tooltip("sparsity:Q", format=".0%", title="sparsity given")])
        st.altair_chart(alt.layer(lines, given).properties(height=320), width="stretch")
        st.caption(f"Each layer pruned alone, by magnitude and without fine-tuning, on {allocation.get('rows', '?')} "
                   f"validation rows; a diamond marks the sparsity it was given. {allocation.get('overall', 0):.1%} "
                   f"of the pruned weights are zero (target {allocation.get('target', 0):.0%}): the layers that "
                   "miss weights least are pruned hardest. pqat_int8 starts from the same pruned model.")
        after = (pruned.get("details") or {}).get("layer_sparsity_after_fine_tuning") or {}
        st.dataframe(pd.DataFrame([{"layer": name, "weights": (allocation.get("weights") or {}).get(name),
                                    "sparsity given": level, "drop pruned alone": (allocation.get("drops") or {}).get(name),
                                    "sparsity after fine-tuning": after.get(name)}
                                   for name, level in allocation["sparsity"].items()]),
                     hide_index=True, width="stretch",
                     column_config={"sparsity given": st.column_config.NumberColumn(format="percent"),
                                    "sparsity after fine-tuning": st.column_config.NumberColumn(format="percent"),
                                    "drop pruned alone": st.column_config.NumberColumn(format="%.4f")})

with guard("The gate checks"):
    st.subheader("Gate", anchor="gate")
    checks = entry.gate.get("checks") or []
    st.table(pd.DataFrame([{"check": c.get("name"), "value": fmt(c.get("value")), "limit": fmt(c.get("limit")),
                            "result": verdict_label(c), "explanation": c.get("explanation")}
                           for c in checks]))

with st.expander("The run's own plots"):
    shown = [show_plot(entry, path) for path in (artifacts.plot_path("tradeoff"), artifacts.plot_path("latency"))]
    if not any(shown):
        st.caption("This run has no trade-off plots.")
