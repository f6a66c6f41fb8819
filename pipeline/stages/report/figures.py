"""The model card's plots of the variants: the quality / size trade-off with its Pareto front, and latency.

Each is a matplotlib `Figure` the caller saves; no pyplot state is used.
"""

from __future__ import annotations

from matplotlib.figure import Figure


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated (smaller x and larger y are better)."""
    front = []
    for i, (x, y) in enumerate(points):
        if not any((ox <= x and oy >= y) and (ox < x or oy > y) for j, (ox, oy) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def evaluation_figures(metrics: dict, *, ship_variant: str) -> dict[str, Figure]:
    """{"tradeoff", "latency"} figures of every variant with a headline value; {} when none has one."""
    headline = metrics["headline_metric"]
    names = [n for n, e in metrics["variants"].items() if e["quality"].get(headline) is not None]
    figures: dict[str, Figure] = {}
    if not names:
        return figures
    sizes = [metrics["variants"][n]["size"]["gzip_bytes"] / 1024 for n in names]
    quality = [metrics["variants"][n]["quality"][headline] for n in names]
    latency = [metrics["variants"][n]["latency"]["median_ms"] for n in names]
    figures["tradeoff"] = _tradeoff_figure(metrics, names, sizes, quality, latency, ship_variant=ship_variant)
    figures["latency"] = _latency_figure(metrics, names, latency)
    return figures


def _tradeoff_figure(metrics: dict, names: list[str], sizes: list[float], quality: list[float],
                     latency: list[float], *, ship_variant: str) -> Figure:
    """Headline metric against gzip size, coloured by latency, with the Pareto front and the float model's line."""
    headline = metrics["headline_metric"]
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
    return figure


def _latency_figure(metrics: dict, names: list[str], latency: list[float]) -> Figure:
    """Median single-example latency of the Keras float model and every variant, log scale."""
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
    return figure
