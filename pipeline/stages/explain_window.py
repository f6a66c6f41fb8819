"""Moved to `pipeline.explainers.window`; this name keeps the old import path working."""

from pipeline.explainers.window import (
    DEFAULT_BLOCKS, WindowExplainer, block_label, explain_windows, time_blocks, window_cells,
    window_explanation_figures,
)

__all__ = [
    "DEFAULT_BLOCKS", "WindowExplainer", "block_label", "explain_windows", "time_blocks", "window_cells",
    "window_explanation_figures",
]
