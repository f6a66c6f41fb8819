"""Compare runs: two finished runs of one domain side by side."""

import pandas as pd
import streamlit as st

from common import estimate, fmt, good_runs, guard, load_json, no_runs_message
from pipeline import artifacts
from pipeline import reports_index as index
from pipeline.stages.gate import verdict_label

st.title("Compare runs")
entries = good_runs()
domains = sorted({entry.domain for entry in entries})
if not entries:
    no_runs_message()
    st.stop()

domain = st.selectbox("Domain", domains, key="compare_domain")
candidates = [entry for entry in entries if entry.domain == domain]
if len(candidates) < 2:
    st.info(f"Only one finished run of `{domain}`: there is nothing to compare it with yet.")
    st.stop()
by_key = {entry.key: entry for entry in candidates}
labels = index.picker_labels(candidates)
keys = list(by_key)
left, right = st.columns(2)
key_a = left.selectbox("Run A", keys, index=0, format_func=labels.__getitem__, key="compare_a")
key_b = right.selectbox("Run B", keys, index=1, format_func=labels.__getitem__, key="compare_b")
a, b = by_key[key_a], by_key[key_b]
if a.key == b.key:
    st.warning("Run A and run B are the same run: pick two different runs.")

for column, entry, name in ((left, a, "A"), (right, b, "B")):
    with column:
        passed = entry.gate_passed
        verdict = "No gate" if passed is None else f"Gate {entry.gate_verdict}"
        (st.success if passed else st.error)(f"Run {name}: {verdict} for `{entry.ship_variant}`")
        st.markdown(f"- created {entry.created}\n- data: {entry.data_source}\n- seed {entry.manifest.get('seed')}"
                    f"\n- data fingerprint `{str((entry.manifest.get('data') or {}).get('fingerprint', ''))[:16]}`")
        for reason in entry.gate_reasons:
            st.markdown(f"- {reason}")

data_a, data_b = a.manifest.get("data") or {}, b.manifest.get("data") or {}
same_source = data_a.get("fingerprint") == data_b.get("fingerprint")
same_rows = data_a.get("splits") == data_b.get("splits")
if same_source and same_rows:
    st.caption("Same data (identical fingerprint, identical splits).")
elif same_source:
    st.warning("Same source data (identical fingerprint), but not the same rows: "
               + "; ".join(f"run {name}: " + ", ".join(f"{split} {rows:,}" for split, rows in (data.get("splits") or {}).items())
                           + (" (--quick)" if (entry.manifest.get("config") or {}).get("quick") else "")
                           for name, entry, data in (("A", a, data_a), ("B", b, data_b)))
               + ". Their figures are not comparable one to one.")
else:
    st.caption("Different data: the fingerprints differ.")

with guard("The variant comparison"):
    st.subheader("Variants")
    rows_a = {row["variant"]: row for row in index.tradeoff_rows(a.manifest, load_json(a, artifacts.METRICS),
                                                                 load_json(a, artifacts.COMPRESSION), a.gate)}
    rows_b = {row["variant"]: row for row in index.tradeoff_rows(b.manifest, load_json(b, artifacts.METRICS),
                                                                 load_json(b, artifacts.COMPRESSION), b.gate)}
    metric = a.headline_metric or "headline"
    table = []
    for variant in list(dict.fromkeys([*rows_a, *rows_b])):
        ra, rb = rows_a.get(variant, {}), rows_b.get(variant, {})
        ha, hb = ra.get("headline"), rb.get("headline")
        table.append({
            "variant": variant + (" (shipped in A)" if ra.get("shipped") else "")
            + (" (shipped in B)" if rb.get("shipped") else ""),
            f"{metric} A": fmt(ha) if ra.get("status") == "ok" else ra.get("reason") or "absent",
            f"{metric} B": fmt(hb) if rb.get("status") == "ok" else rb.get("reason") or "absent",
            "Δ (B − A)": f"{hb - ha:+.4f}" if ha is not None and hb is not None else "",
            "KB A": fmt(ra["bytes"] / 1024, 1) if ra.get("bytes") else "",
            "KB B": fmt(rb["bytes"] / 1024, 1) if rb.get("bytes") else "",
            "latency ms A": fmt(ra.get("latency_ms")), "latency ms B": fmt(rb.get("latency_ms")),
            "same decisions A": fmt(ra.get("identical_decisions")),
            "same decisions B": fmt(rb.get("identical_decisions")),
        })
    st.table(pd.DataFrame(table))

with guard("The gate comparison"):
    st.subheader("Gate checks")
    checks = {}
    for name, entry in (("A", a), ("B", b)):
        for check in entry.gate.get("checks") or []:
            row = checks.setdefault(check.get("name"), {"check": check.get("name")})
            row[f"value {name}"] = fmt(check.get("value"))
            row[f"limit {name}"] = fmt(check.get("limit"))
            row[f"result {name}"] = verdict_label(check)
    st.table(pd.DataFrame(list(checks.values())))

with guard("The fairness comparison"):
    st.subheader("Disparities of the shipped variant")
    rows = []
    for name, entry in (("A", a), ("B", b)):
        audit = load_json(entry, artifacts.AUDIT) or {}
        for column, values in ((audit.get("disparities") or {}).get(entry.ship_variant) or {}).items():
            rows.append({"run": name, "variant": entry.ship_variant, "column": column,
                         "equalized odds difference": estimate(values.get("equalized_odds_difference")),
                         "demographic parity difference": estimate(values.get("demographic_parity_difference"))})
    if rows:
        st.table(pd.DataFrame(rows))
    else:
        st.caption("No audit in these runs.")

with guard("The settings comparison"):
    st.subheader("Settings that differ")
    differences = index.config_differences(a.manifest, b.manifest)
    if differences:
        st.table(pd.DataFrame([{"setting": d["setting"], "A": str(d["a"]), "B": str(d["b"])} for d in differences]))
    else:
        st.caption("The two runs used the same settings.")
