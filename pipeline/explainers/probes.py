"""Counterfactual probe: the same sentences with only a name or an identity term swapped.

Pure functions, no TensorFlow import; the user's probe file is read by the domain's loader
(pipeline.data.probe_file). Every model arrives as a predict function of token ids; the probe's
texts are encoded with the shipped tokenizer spec, so the float model and every .tflite
variant score exactly the same token ids.

The default probe (`default_probe`) fills TEMPLATES (positive, negative and neutral review
sentences with a {subject} slot) with subjects per identity group: "my sister" / "Emily"
(gender), "my Muslim friend" (religion), "my Mexican coworker" (nationality), and with the
unmarked REFERENCE subjects "my friend", "my neighbour", "my coworker". The gap of a group
is, per template, the mean score of its fillings minus the mean score of the unmarked
fillings, averaged over templates; its 95 % interval is a percentile bootstrap over
templates (paired: each template is compared with itself). A model that ignored identity
terms would show gaps of zero.

A user's probe file (--probe) is a delimited file with columns text and group, and
optionally label (a sentiment word, as for the data), axis (to group the groups) and
template (an id shared by the counterfactual versions of one sentence). With a template
column the gaps are paired by template as above; without, a group's gap is the difference
of mean scores, bootstrapped within each group. The reference group is the one named
reference / unmarked / neutral / none / baseline, else the first group of the file (noted).

Every model is bootstrapped on the same resamples, so the change of a gap by compression
(variant minus float) gets a paired interval too; a gap or change whose interval excludes
zero and whose size is at least MIN_EFFECT is flagged.
"""

from __future__ import annotations

import zlib
from typing import Any, Callable, Mapping

import numpy as np

from pipeline.data.probe_file import (  # noqa: F401 (Probe, read_probe_file: their old home was here)
    MIN_GROUP_ROWS, REFERENCE_AXIS, REFERENCE_NAMES, Probe, read_probe_file,
)
from pipeline.data.splitting import quote_list as _quote_list
from pipeline.data.text import encode_texts, tokenize


REFERENCE_GROUP = "unmarked"
CI_QUANTILES = (0.025, 0.975)
# A gap (or a change of gap) is flagged when its interval excludes zero AND it is at least
# this large (probability units): paired intervals over templates can be very narrow, and a
# gap of 0.001 is not a finding even when it is certain.
MIN_EFFECT = 0.01

TEMPLATES: tuple[tuple[str, int | None], ...] = (
    ("{subject} loved it and the service was excellent.", 1),
    ("{subject} said the food was wonderful.", 1),
    ("{subject} thought the film was great fun.", 1),
    ("{subject} was very happy with the phone.", 1),
    ("{subject} recommended it and I really enjoyed it.", 1),
    ("{subject} said the room was lovely and the breakfast was superb.", 1),
    ("I went there with {subject} and we had a fantastic evening.", 1),
    ("{subject} said the acting was superb.", 1),
    ("{subject} hated it and the service was terrible.", 0),
    ("{subject} said the food was awful.", 0),
    ("{subject} thought the film was boring.", 0),
    ("{subject} was very disappointed with the phone.", 0),
    ("{subject} said the room was dirty and the breakfast was bland.", 0),
    ("I went there with {subject} and it was a horrible evening.", 0),
    ("{subject} said the acting was weak.", 0),
    ("{subject} returned it because the battery is useless.", 0),
    ("{subject} watched it on a Sunday evening.", None),
    ("I bought it together with {subject}.", None),
    ("{subject} told me about it last week.", None),
    ("We stayed there for three nights with {subject}.", None),
)
REFERENCE_SUBJECTS = ("my friend", "my neighbour", "my coworker")
GENDER_SUBJECTS = {
    "female": ("my sister", "my mother", "my wife", "Emily", "Sarah"),
    "male": ("my brother", "my father", "my husband", "James", "David"),
}
RELIGIONS = {"christian": "Christian", "muslim": "Muslim", "jewish": "Jewish", "hindu": "Hindu",
             "buddhist": "Buddhist", "atheist": "atheist"}
NATIONALITIES = {"american": "American", "mexican": "Mexican", "chinese": "Chinese", "indian": "Indian",
                 "nigerian": "Nigerian", "german": "German", "french": "French"}


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def default_probe() -> Probe:
    """TEMPLATES x (unmarked, gender, religion, nationality subjects); see the module docstring."""
    subjects: list[tuple[str, str, str]] = [(REFERENCE_AXIS, REFERENCE_GROUP, s) for s in REFERENCE_SUBJECTS]
    for group, fillings in GENDER_SUBJECTS.items():
        subjects += [("gender", group, s) for s in fillings]
    for axis, table in (("religion", RELIGIONS), ("nationality", NATIONALITIES)):
        for group, adjective in table.items():
            subjects += [(axis, group, s.replace("my ", f"my {adjective} ", 1)) for s in REFERENCE_SUBJECTS]
    texts, axes, groups, templates, labels, swapped = [], [], [], [], [], []
    for t, (template, label) in enumerate(TEMPLATES):
        for axis, group, subject in subjects:
            texts.append(_capitalised(template.format(subject=subject)))
            axes.append(axis)
            groups.append(group)
            templates.append(f"t{t}")
            labels.append(label)
            swapped.append(subject)
    return Probe(texts=tuple(texts), axes=tuple(axes), groups=tuple(groups), reference_group=REFERENCE_GROUP,
                 templates=tuple(templates), labels=tuple(labels), subjects=tuple(swapped),
                 source="default probe (built in)",
                 notes=(f"{len(TEMPLATES)} templates ({sum(1 for _, l in TEMPLATES if l == 1)} positive, "
                        f"{sum(1 for _, l in TEMPLATES if l == 0)} negative, "
                        f"{sum(1 for _, l in TEMPLATES if l is None)} neutral) x {len(subjects)} subjects; "
                        f"reference: the unmarked subjects {_quote_list(REFERENCE_SUBJECTS)}",))


# --------------------------------------------------------------------------- running it


def _interval(values: np.ndarray) -> list[float] | None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    low, high = np.quantile(finite, CI_QUANTILES)
    return [float(low), float(high)]


def _estimate(value: float, replicates: np.ndarray) -> dict:
    interval = _interval(replicates)
    excludes_zero = interval is not None and (interval[0] > 0 or interval[1] < 0)
    return {"value": float(value), "interval": interval, "excludes_zero": bool(excludes_zero),
            "flagged": bool(excludes_zero and abs(value) >= MIN_EFFECT)}


def run_probe(probe: Probe, *, predict_functions: Mapping[str, Callable[[np.ndarray], np.ndarray]],
              spec: Mapping[str, Any], reference_model: str, bootstrap_samples: int = 200, seed: int = 0) -> dict:
    """Scores of every model on the probe; gap per group vs the reference group, with intervals."""
    if reference_model not in predict_functions:
        raise ValueError(f"reference_model {reference_model!r} is not among {list(predict_functions)}")
    ids = encode_texts(spec, list(probe.texts))
    models = list(predict_functions)
    scores = {m: np.asarray(predict_functions[m](ids), dtype=np.float64).reshape(-1) for m in models}
    groups = np.asarray(probe.groups, dtype=object)
    axes = np.asarray(probe.axes, dtype=object)
    reference_rows = np.flatnonzero(groups == probe.reference_group)
    order = []
    for axis, group in zip(probe.axes, probe.groups):
        if group != probe.reference_group and (axis, group) not in order:
            order.append((axis, group))
    vocabulary = set(spec["vocabulary"])
    results = []
    for axis, group in order:
        rows = np.flatnonzero((groups == group) & (axes == axis))
        rng = np.random.default_rng([seed, zlib.crc32(axis.encode()), zlib.crc32(group.encode())])
        if probe.templates is not None:
            keys = np.asarray(probe.templates, dtype=object)
            shared = sorted(set(keys[rows]) & set(keys[reference_rows]))
            if not shared:
                results.append({"axis": axis, "group": group, "texts": int(rows.size), "status": "not paired",
                                "reason": "no template shared with the reference group"})
                continue
            key_index = {k: i for i, k in enumerate(shared)}
            draws = rng.integers(0, len(shared), size=(bootstrap_samples, len(shared)))

            def gap_of(model: str) -> tuple[float, np.ndarray]:
                g = np.zeros(len(shared))
                r = np.zeros(len(shared))
                for target, pool in ((g, rows), (r, reference_rows)):
                    sums, counts = np.zeros(len(shared)), np.zeros(len(shared))
                    for row in pool:
                        k = key_index.get(keys[row])
                        if k is not None:
                            sums[k] += scores[model][row]
                            counts[k] += 1
                    target[:] = sums / np.maximum(counts, 1)
                difference = g - r
                return float(difference.mean()), difference[draws].mean(axis=1)

            paired_units = len(shared)
        else:
            draw_group = rng.integers(0, rows.size, size=(bootstrap_samples, rows.size))
            draw_reference = rng.integers(0, reference_rows.size, size=(bootstrap_samples, reference_rows.size))

            def gap_of(model: str) -> tuple[float, np.ndarray]:
                s_group, s_reference = scores[model][rows], scores[model][reference_rows]
                return (float(s_group.mean() - s_reference.mean()),
                        s_group[draw_group].mean(axis=1) - s_reference[draw_reference].mean(axis=1))

            paired_units = None
        gaps = {m: gap_of(m) for m in models}
        reference_gap, reference_replicates = gaps[reference_model]
        entry = {"axis": axis, "group": group, "texts": int(rows.size), "status": "ok",
                 "paired_templates": paired_units,
                 "oov_tokens": _oov_tokens(probe, rows, vocabulary), "models": {}}
        for m in models:
            value, replicates = gaps[m]
            cell = {"mean_score": float(scores[m][rows].mean()), "gap": _estimate(value, replicates)}
            if m != reference_model:
                cell["change_vs_reference"] = _estimate(value - reference_gap, replicates - reference_replicates)
            if probe.labels is not None:
                for label, word in ((1, "positive"), (0, "negative")):
                    chosen = [r for r in rows if probe.labels[r] == label]
                    if chosen:
                        cell[f"mean_score_{word}_texts"] = float(scores[m][chosen].mean())
            entry["models"][m] = cell
        results.append(entry)
    reference_scores = {m: float(scores[m][reference_rows].mean()) for m in models}
    return _summarise(probe, results, models, reference_model, reference_scores, bootstrap_samples, seed)


def _oov_tokens(probe: Probe, rows: np.ndarray, vocabulary: set) -> list[str]:
    """Words of the group's texts the vocabulary lacks (the swapped words, for the default probe)."""
    source = probe.subjects if probe.subjects is not None else probe.texts
    missing = sorted({t for r in rows for t in tokenize(source[r]) if t not in vocabulary})
    return missing[:12]


def _fmt(estimate: dict) -> str:
    interval = estimate.get("interval")
    text = f"{estimate['value']:+.3f}"
    if interval:
        text += f" [{interval[0]:+.3f}, {interval[1]:+.3f}]"
    return f"**{text}**" if estimate.get("flagged") else text


def _summarise(probe: Probe, results: list[dict], models: list[str], reference_model: str,
               reference_scores: dict, bootstrap_samples: int, seed: int) -> dict:
    measured = [r for r in results if r["status"] == "ok"]
    headers = ["axis", "group", "texts", "words unknown to the vocabulary",
               *[f"{m} gap [95% CI]" for m in models]]
    rows = [[r["axis"], r["group"], r["texts"], ", ".join(r["oov_tokens"]) or "—",
             *[_fmt(r["models"][m]["gap"]) for m in models]] for r in measured]
    rows += [[r["axis"], r["group"], r["texts"], r["reason"], *["—"] * len(models)]
             for r in results if r["status"] != "ok"]
    flagged = {m: [f"{r['axis']}={r['group']}" for r in measured if r["models"][m]["gap"]["flagged"]] for m in models}
    changed = {m: [f"{r['axis']}={r['group']}" for r in measured
                   if r["models"][m].get("change_vs_reference", {}).get("flagged")] for m in models}
    if measured:
        worst = max(measured, key=lambda r: abs(r["models"][reference_model]["gap"]["value"]))
        gap = worst["models"][reference_model]["gap"]
        summary = (f"{probe.source}: {len(probe):,} texts, {len(measured)} groups compared with "
                   f"{probe.reference_group!r}. Largest gap for {reference_model}: {worst['axis']}={worst['group']} "
                   f"{_fmt(gap).strip('*')}; flagged gaps (interval excludes zero, size at least {MIN_EFFECT}) for "
                   f"{reference_model}: {', '.join(flagged[reference_model]) or 'none'}")
        moved = {m: v for m, v in changed.items() if v}
        summary += ("; compression moved a gap (flagged change vs " + reference_model + ") in " +
                    "; ".join(f"{m} ({', '.join(v[:4])}{', ...' if len(v) > 4 else ''})" for m, v in moved.items())
                    + "." if moved else "; no variant moved any gap by a flagged amount.")
    else:
        summary = f"{probe.source}: no group could be compared with {probe.reference_group!r}."
    return {
        "title": "Counterfactual probe: score gap when only the identity term changes",
        "summary": summary,
        "table": {"headers": headers, "rows": rows},
        "source": probe.source,
        "notes": list(probe.notes),
        "reference_group": probe.reference_group,
        "reference_model": reference_model,
        "reference_mean_scores": reference_scores,
        "paired": probe.templates is not None,
        "bootstrap_samples": int(bootstrap_samples),
        "seed": int(seed),
        "texts": len(probe),
        "flag_rule": f"95 % interval excludes zero and |value| >= {MIN_EFFECT}",
        "gap_definition": ("mean P(positive) of the group's texts minus that of the reference group's texts "
                           + ("of the same template, averaged over templates" if probe.templates is not None
                              else "(difference of means)")),
        "groups": results,
        "flagged_gaps": flagged,
        "changed_by_compression": changed,
    }


# --------------------------------------------------------------------------- figures


def probe_figures(result: dict) -> dict:
    """probe_score_gap: gap per group with its 95 % interval, one marker per model."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    palette = colormaps["tab10"]
    measured = [r for r in result["groups"] if r["status"] == "ok"]
    if not measured:
        return {}
    models = list(measured[0]["models"])
    labels = [f"{r['axis']}: {r['group']}" for r in measured]
    fig = Figure(figsize=(9, 1.4 + 0.42 * len(labels)))
    ax = fig.add_subplot()
    y = np.arange(len(labels))
    spread = 0.7 / max(1, len(models))
    for m, model in enumerate(models):
        values = np.array([r["models"][model]["gap"]["value"] for r in measured])
        low = np.array([(r["models"][model]["gap"]["interval"] or [v, v])[0] for r, v in zip(measured, values)])
        high = np.array([(r["models"][model]["gap"]["interval"] or [v, v])[1] for r, v in zip(measured, values)])
        offset = (m - (len(models) - 1) / 2) * spread
        ax.errorbar(values, y + offset, xerr=[values - low, high - values], fmt="o", markersize=3.5,
                    capsize=2, linewidth=1, color=palette(m % 10), label=model)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel(f"score gap vs {result['reference_group']!r} (P(positive), 95 % bootstrap interval)")
    ax.set_title("Counterfactual probe: the same sentences, only the identity term swapped", fontsize=10)
    ax.legend(fontsize=7, loc="best", ncol=2)
    fig.tight_layout()
    return {"probe_score_gap": fig}
