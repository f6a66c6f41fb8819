"""Per-layer pruning sparsity chosen by a sensitivity scan on the validation split.

One sparsity for every layer prunes a model's small, sensitive layers (the first convolution, the
output layer) as hard as its large, redundant ones. The scan (as in Han et al., 2015, "Learning both
weights and connections", and Distiller's sensitivity analysis) prunes one layer at a time, by
magnitude, to each level of `LEVELS`, without fine-tuning, and scores the model on validation rows;
`allocate` then gives each layer the highest level whose score drop stays under a common tolerance,
with the smallest tolerance that still meets the overall target sparsity (counted over the pruned
weights), steps the most sensitive layers back down while the target still holds, and lets the largest
layer give back what the coarse levels overshoot. So the overall sparsity, and with it the compressed
file size, is the target's, and the weights removed come from the layers that miss them least.

Nothing here imports TensorFlow: `scan` takes the weights and two callables (set a layer's weights,
score the model), so it is tested on plain arrays and run on the tf_keras twin in the compression
child (variant_builder.py).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# The sparsity levels each layer is scanned at, and the only levels `allocate` gives.
LEVELS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)


def magnitude_pruned(arrays: list[np.ndarray], level: float) -> list[np.ndarray]:
    """Each array with its smallest-magnitude `level` share of entries set to zero (tfmot's rule: per tensor)."""
    pruned = []
    for array in arrays:
        count = int(round(level * array.size))
        result = np.array(array, copy=True)
        if count > 0:
            order = np.argsort(np.abs(array), axis=None, kind="stable")[:count]
            result.reshape(-1)[order] = 0
        pruned.append(result)
    return pruned


def scan(layers: dict[str, list[np.ndarray]], set_weights: Callable[[str, list[np.ndarray]], None],
         score: Callable[[], float], *, levels: tuple[float, ...] = LEVELS,
         report: Callable[[str], None] = lambda message: None) -> dict:
    """The model's validation score with each layer alone pruned to each level.

    layers: layer name -> its prunable weight arrays (as trained); set_weights(name, arrays) puts
    arrays in that layer's prunable weights; score() scores the model as it stands. Every layer is
    restored before the next is scanned. Returns {"dense": score, "layers": {name: {level: score}}}.
    """
    dense = float(score())
    curves: dict[str, dict[float, float]] = {}
    for position, (name, arrays) in enumerate(layers.items(), start=1):
        report(f"pruning sensitivity: layer {name} ({position} of {len(layers)}) at {len(levels)} sparsities")
        curve = {}
        try:
            for level in levels:
                if level == 0.0:
                    curve[level] = dense
                    continue
                set_weights(name, magnitude_pruned(arrays, level))
                curve[level] = float(score())
        finally:
            set_weights(name, arrays)
        curves[name] = curve
    return {"dense": dense, "layers": curves}


def monotone_drops(curve: dict[float, float], dense: float) -> dict[float, float]:
    """Score drop at each level, never less than at a lower level (a noisy rise is not a free lunch)."""
    drops, worst = {}, 0.0
    for level in sorted(curve):
        worst = max(worst, dense - curve[level])
        drops[level] = worst
    return drops


def overall_sparsity(sparsity: dict[str, float], sizes: dict[str, int]) -> float:
    total = sum(sizes[name] for name in sparsity)
    return sum(sparsity[name] * sizes[name] for name in sparsity) / total if total else 0.0


def allocate(measured: dict, sizes: dict[str, int], target: float) -> dict:
    """Per-layer sparsity with overall (weight-counted) sparsity at least `target` and the least score drop.

    measured: `scan`'s result; sizes: prunable weights per layer. First the smallest tolerance t whose
    levels (each layer's highest level with a drop <= t) reach the target; then layers step down a
    level, the one that saves the largest drop first, while the target still holds; last, the largest
    pruned layer gives back the overshoot, so the pruned weights reach the target exactly. Returns
    {"sparsity": {layer: sparsity given}, "scored_at": {layer: the scanned level its drop is read at},
    "overall": achieved, "tolerance": t, "drops": {layer: drop at that level}}.
    """
    if not measured["layers"]:
        raise ValueError("the sensitivity scan measured no layer: nothing to allocate")
    if not 0.0 < target <= max(max(curve) for curve in measured["layers"].values()):
        raise ValueError(f"target sparsity {target} is outside the scanned levels")
    drops = {name: monotone_drops(curve, measured["dense"]) for name, curve in measured["layers"].items()}

    def levels_at(tolerance: float) -> dict[str, float]:
        return {name: max(level for level, drop in curve.items() if drop <= tolerance)
                for name, curve in drops.items()}

    tolerances = sorted({drop for curve in drops.values() for drop in curve.values()})
    tolerance = next(t for t in tolerances if overall_sparsity(levels_at(t), sizes) >= target - 1e-9)
    sparsity = levels_at(tolerance)
    while True:  # relieve the most sensitive layer that the target can spare
        steps = []
        for name, level in sparsity.items():
            lower = [candidate for candidate in drops[name] if candidate < level]
            if not lower:
                continue
            trial = {**sparsity, name: max(lower)}
            if overall_sparsity(trial, sizes) >= target - 1e-9:
                steps.append((drops[name][level] - drops[name][max(lower)], -sizes[name], name, max(lower)))
        if not steps:
            break
        *_, name, level = max(steps)  # the largest drop saved; on a tie, the smaller layer
        sparsity[name] = level
    scored_at = dict(sparsity)  # the scanned level each layer's drop is read at (at least its sparsity)
    # The levels are coarse: the largest pruned layer gives back what overshoots the target, so the pruned
    # weights reach it exactly (its drop is then at most that of its scanned level).
    largest = max((name for name in sparsity if sparsity[name] > 0), key=lambda name: sizes[name])
    rest = sum(sparsity[name] * sizes[name] for name in sparsity if name != largest)
    exact = (target * sum(sizes[name] for name in sparsity) - rest) / sizes[largest]
    if 0.0 < exact < sparsity[largest]:
        sparsity[largest] = round(exact, 4)
    return {"sparsity": sparsity, "scored_at": scored_at, "overall": round(overall_sparsity(sparsity, sizes), 4),
            "tolerance": round(tolerance, 5),
            "drops": {name: round(drops[name][level], 5) for name, level in scored_at.items()}}


def sensitivity_figure(allocation: dict):
    """Each layer's validation score against its sparsity when pruned alone, the level given marked (a Figure);
    None where the allocation was not scanned."""
    from matplotlib.figure import Figure

    if allocation.get("method") != "sensitivity" or not allocation.get("scan"):
        return None
    figure = Figure(figsize=(7.5, 4.4), layout="constrained")
    ax = figure.add_subplot()
    for index, (name, curve) in enumerate(allocation["scan"].items()):
        levels = [float(level) for level in curve]
        ax.plot(levels, list(curve.values()), marker="o", markersize=3, color=f"C{index}",
                label=f"{name} ({allocation['weights'][name]:,} weights) → {allocation['sparsity'][name]:.0%}")
        scored = allocation["scored_at"][name]
        ax.plot([allocation["sparsity"][name]], [curve[f"{scored:g}"]], marker="*", markersize=13, color=f"C{index}",
                markeredgecolor="black")
    ax.axhline(allocation["dense_score"], color="grey", linestyle=":", linewidth=1, label="unpruned")
    ax.axvline(allocation["target"], color="crimson", linestyle="--", linewidth=1,
               label=f"target {allocation['target']:.0%} (overall {allocation['overall']:.1%})")
    ax.set_xlabel("sparsity of that layer alone (magnitude pruning, no fine-tuning)")
    ax.set_ylabel(f"validation {allocation['metric'].replace('_', '-').upper()}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Pruning sensitivity per layer (★ the sparsity each layer was pruned to)", fontsize=10)
    return figure
