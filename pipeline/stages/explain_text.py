"""Moved to `pipeline.explainers.text`; this name keeps the old import path working."""

from pipeline.explainers.text import (
    DEFAULT_BATCH_SIZE, MASK, MAX_EVALS_CAP, SpecTokenizer, TextExplainer, default_max_evals, explain_texts,
    highlighted_html, string_predict_function, text_explanation_figures, visible_text,
)

__all__ = [
    "DEFAULT_BATCH_SIZE", "MASK", "MAX_EVALS_CAP", "SpecTokenizer", "TextExplainer", "default_max_evals",
    "explain_texts", "highlighted_html", "string_predict_function", "text_explanation_figures", "visible_text",
]
