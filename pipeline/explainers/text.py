"""SHAP token attributions on raw text, the same explainer for the float model and the .tflite.

Pure functions: no file I/O, no TensorFlow/Keras import. Every model arrives as a batched
predict function of token ids (what the pipeline evaluates: the Keras model, or a LiteRT
interpreter); this module composes it with the shipped tokenizer spec into a predict
function of STRINGS, f(texts) = model(encode(spec, texts)), and explains f with shap's
`maskers.Text` and `PartitionExplainer` (Owen values over shap's token hierarchy), so the
players are the tokens a device's tokenizer produces.

Method
------
* Masking: shap's Text masker replaces hidden tokens by a mask token; here the mask token
  is a private-use character (MASK, U+E000) that f deletes before tokenizing, so a hidden
  token is REMOVED from the text (consecutive hidden tokens collapse, which removal makes
  harmless). The masker's tokenizer is the spec's own (`token_spans`), and it tokenizes the
  mask token too, as shap needs. With everything hidden the text is empty: the base value
  is f("") (all PAD), the same for every text.
* Only what the model sees is explained: a text is cut after its max_length-th token.
* Cost: at most `max_evals` masked texts per explained text, sent to the model in batches
  of `batch_size`. Default: T * (T - 1) + 2 for T tokens (what PartitionExplainer needs to
  resolve every token of a balanced tree), capped at MAX_EVALS_CAP. The budget leaves the unexplored part of
  the tree on its internal nodes, which shap hands down to the tokens: additivity holds
  whatever the budget, and is checked against f itself: per text
  |sum(phi) - (f(text) - f(""))|.
* Partition breaks ties with numpy's global RNG: it is seeded per model (same seed for
  every model) and restored after.

Result (the keys the report reads, as in `grouped_permutation`)::

    {"explainer": "shap.PartitionExplainer", "settings": {...}, "reference": name,
     "models": {name: {"base_value", "seconds", "seconds_per_100_rows", "predict_calls",
                       "predict_rows", "global_importance": {token: mean over texts of the
                       summed |phi| of its occurrences} (sorted descending, top TOP_GLOBAL),
                       "mean_signed_contribution": {token: mean over texts of its summed phi}
                                                   (the TOP_SIGNED largest in size),
                       "top_tokens": {"positive": {token: mean signed phi}, "negative": {...}},
                       "additivity": {"max_abs_error", "mean_abs_error"},
                       "local": [{"row_id", "text", "score", "base_value", "tokens", "segments",
                                  "values", "contributions": {token: summed phi}, "html"}]}},
     "agreement": {name: {"spearman_rank_correlation_of_global_importance", "top5_overlap",
                          "mean_abs_difference"}},
     "_arrays": {...}}

"top_tokens" are the tokens pushing the score towards each class: the largest mean signed
contributions ("positive") and the most negative ones ("negative"), over the explained texts.

`TextExplainer` is the sentiment domain's explainer: it explains the test texts themselves,
after checking that they encode (with the shipped spec) to the model inputs it was given.
"""

from __future__ import annotations

import html as _html
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from pipeline.data.text import encode_texts, token_spans
from pipeline.explainers.common import (
    CountingPredict, additivity_summary, agreement_with_reference, finite_or_none, import_shap, local_row_positions,
    model_colour, model_names_and_reference,
)

MASK = "\ue000"
MAX_EVALS_CAP = 600
DEFAULT_BATCH_SIZE = 64
TOP_GLOBAL = 30
TOP_PER_CLASS = 12
TOP_SIGNED = 80
POSITIVE_COLOUR = (0.12, 0.47, 0.71)   # raises the score (towards the positive class)
NEGATIVE_COLOUR = (0.84, 0.15, 0.16)   # lowers it


@dataclass(frozen=True)
class TextExplainer:
    """Token attributions on the raw test texts (see the module docstring)."""

    kind: ClassVar[str] = "text"

    def explain(self, *, predict_functions: dict, data, background: np.ndarray, rows: np.ndarray,
                row_ids: list[int], local_row_ids: list[int], seed: int, reference: str) -> dict:
        """Token SHAP values of every model on the test texts `row_ids` (`rows`: their token ids; no background)."""
        spec = json.loads(json.dumps(data.preprocessing))   # the spec as shipped (a JSON round trip)
        texts = [str(t) for t in np.asarray(data.test.raw, dtype=object)[np.asarray(row_ids, dtype=np.int64)]]
        if not np.array_equal(encode_texts(spec, texts), np.asarray(rows)):
            raise ValueError("the texts to explain do not encode to the model inputs given: the shipped tokenizer "
                             "spec differs from the one the pipeline used")
        return explain_texts(predict_functions=predict_functions, spec=spec, texts=texts, row_ids=row_ids,
                             local_row_ids=local_row_ids, seed=seed, reference=reference)

    def figures(self, explanation: dict) -> dict:
        """matplotlib Figures of an explanation (see `text_explanation_figures`)."""
        return text_explanation_figures(explanation)


class SpecTokenizer:
    """The spec's tokenizer in the minimal HuggingFace-like form shap's Text masker drives."""

    def __init__(self, spec: Mapping[str, Any]):
        self.spec = spec
        self._index = {t: i for i, t in enumerate(spec["vocabulary"])}

    def __call__(self, text: str, return_offsets_mapping: bool = True) -> dict:
        spans = token_spans(text)
        ids = [self._index.get(text[a:b].lower(), int(self.spec["oov_id"])) for a, b in spans]
        out = {"input_ids": ids}
        if return_offsets_mapping:
            out["offset_mapping"] = spans
        return out


def visible_text(spec: Mapping[str, Any], text: str) -> str:
    """The text cut after its max_length-th token: the part the model sees."""
    spans = token_spans(text, limit=int(spec["max_length"]) + 1)
    if len(spans) > int(spec["max_length"]):
        return text[: spans[int(spec["max_length"]) - 1][1]]
    return text


def string_predict_function(spec: Mapping[str, Any], predict: Callable[[np.ndarray], np.ndarray]
                            ) -> Callable[[Sequence[str]], np.ndarray]:
    """texts -> probability: hidden tokens (MASK) removed, then the shipped spec, then the model."""

    def f(texts) -> np.ndarray:
        cleaned = [str(t).replace(MASK, " ") for t in np.asarray(texts, dtype=object).reshape(-1)]
        return np.asarray(predict(encode_texts(spec, cleaned)), dtype=np.float64).reshape(-1)

    return f


def default_max_evals(tokens: int) -> int:
    """Enough for PartitionExplainer's whole tree, T * (T - 1) + 2, up to MAX_EVALS_CAP."""
    return int(min(MAX_EVALS_CAP, max(2 * tokens + 2, tokens * (tokens - 1) + 2)))


_warm = False


def _warm_up(shap, masker) -> None:
    """Compile shap's numba kernels once per process, so the first model's timing is not inflated."""
    global _warm
    if _warm:
        return
    state = np.random.get_state()
    try:
        explainer = shap.PartitionExplainer(lambda texts: np.full(len(texts), 0.5), masker)
        explainer.explain_row("warm up shap", max_evals=8, main_effects=False, error_bounds=False, batch_size=8,
                              outputs=None, silent=True)
    finally:
        np.random.set_state(state)
    _warm = True


def _colour(value: float, scale: float) -> tuple[tuple[float, float, float], float]:
    alpha = 0.0 if scale <= 0 else min(1.0, abs(value) / scale)
    return (POSITIVE_COLOUR if value >= 0 else NEGATIVE_COLOUR), alpha


def highlighted_html(segments: Sequence[str], values: Sequence[float], *, scale: float | None = None) -> str:
    """The text as HTML spans coloured by contribution (blue raises the score, red lowers it)."""
    values = [float(v) for v in values]
    scale = scale if scale is not None else max([abs(v) for v in values] or [0.0])
    parts = []
    for segment, value in zip(segments, values):
        (r, g, b), alpha = _colour(value, scale)
        parts.append(f'<span style="background-color: rgba({int(r * 255)}, {int(g * 255)}, {int(b * 255)}, '
                     f'{0.85 * alpha:.2f}); border-radius: 3px; padding: 0 1px" title="{value:+.4f}">'
                     f"{_html.escape(segment)}</span>")
    return '<p class="shap-text" style="line-height: 1.8">' + " ".join(parts) + "</p>"


def explain_texts(
    *,
    predict_functions: Mapping[str, Callable[[np.ndarray], np.ndarray]],
    spec: Mapping[str, Any],
    texts: Sequence[str],
    row_ids: Sequence[int],
    local_row_ids: Sequence[int],
    seed: int = 0,
    reference: str | None = None,
    max_evals: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict:
    """Token attributions of every model on `texts` (see the module docstring).

    max_evals: masked texts per explained text; None -> default_max_evals(tokens)."""
    setup_start = time.perf_counter()
    shap = import_shap()
    names, reference = model_names_and_reference(predict_functions, reference)
    texts = [visible_text(spec, str(t)) for t in texts]
    row_ids = [int(r) for r in row_ids]
    if len(row_ids) != len(texts) or not texts:
        raise ValueError(f"{len(row_ids)} row_ids for {len(texts)} texts (need at least one)")
    position_of, local_row_ids = local_row_positions(row_ids, local_row_ids)
    if batch_size < 2:
        raise ValueError("batch_size must be at least 2")

    tokenizer = SpecTokenizer(spec)
    masker = shap.maskers.Text(tokenizer, mask_token=MASK, collapse_mask_token=True)
    spans = [token_spans(t) for t in texts]
    corpus = _Texts(texts=texts, tokens=[[t[a:b].lower() for a, b in s] for t, s in zip(texts, spans)],
                    segments=[[t[a:b] for a, b in s] for t, s in zip(texts, spans)],
                    budgets=[int(max_evals) if max_evals else default_max_evals(len(s)) for s in spans])
    _warm_up(shap, masker)
    setup_seconds = time.perf_counter() - setup_start

    values: dict[str, list[np.ndarray]] = {}
    scores: dict[str, np.ndarray] = {}
    models: dict[str, dict] = {}
    rng_state = np.random.get_state()
    try:
        for name in names:
            f = _CountingStrings(name, string_predict_function(spec, predict_functions[name]))
            values[name], scores[name], models[name] = _explain_model(
                shap, masker, f, corpus, local_row_ids, position_of, seed=seed, batch_size=batch_size)
    finally:
        np.random.set_state(rng_state)

    return {
        "explainer": "shap.PartitionExplainer",
        "settings": _settings(shap, corpus, spans, local_row_ids, max_evals=max_evals, batch_size=batch_size,
                              seed=seed),
        "setup_seconds": finite_or_none(setup_seconds),
        "feature_columns": ["text"],
        "reference": reference,
        "models": models,
        "agreement": _agreement(corpus.tokens, values, names, reference),
        "_arrays": {"row_ids": np.asarray(row_ids, dtype=np.int64), "scores": scores,
                    "shap_values": {n: [v.tolist() for v in values[n]] for n in names}, "tokens": corpus.tokens},
    }


@dataclass(frozen=True)
class _Texts:
    """The explained texts (the part the model sees), their tokens, the text segments shown, and budgets."""

    texts: list[str]
    tokens: list[list[str]]       # lower-cased, as the vocabulary holds them
    segments: list[list[str]]     # as written
    budgets: list[int]            # max_evals per text


def _token_values(shap, masker, f, corpus: _Texts, *, seed: int, batch_size: int) -> list[np.ndarray]:
    """Each text's token SHAP values (PartitionExplainer; numpy's global RNG seeded with `seed`)."""
    np.random.seed(int(seed))
    explainer = shap.PartitionExplainer(f, masker)
    phis = []
    for text, budget in zip(corpus.texts, corpus.budgets):
        tokens_here = len(token_spans(text))
        if tokens_here == 0:
            phis.append(np.zeros(0))
            continue
        if tokens_here == 1:   # one player: its value is exact (shap's text clustering needs two)
            with_text, empty = f([text, ""])
            phis.append(np.array([with_text - empty]))
            continue
        result = explainer.explain_row(text, max_evals=max(budget, 4), main_effects=False,
                                       error_bounds=False, batch_size=int(batch_size), outputs=None,
                                       silent=True)
        phis.append(np.asarray(result["values"], dtype=np.float64).reshape(-1))
    return phis


def _explain_model(shap, masker, f: "_CountingStrings", corpus: _Texts, local_row_ids: list[int],
                   position_of: dict[int, int], *, seed: int, batch_size: int) -> tuple[list, np.ndarray, dict]:
    """One model's token values per text, its scores f(text) and its entry of models[name] (timed, counted)."""
    texts, tokens, segments = corpus.texts, corpus.tokens, corpus.segments
    start = time.perf_counter()
    phis = _token_values(shap, masker, f, corpus, seed=seed, batch_size=batch_size)
    calls, evaluated = f.calls, f.rows
    f_x = f(texts)
    base_value = float(f([""])[0])
    seconds = time.perf_counter() - start
    errors = np.array([abs(phi.sum() - (fx - base_value)) for phi, fx in zip(phis, f_x)])
    importance, signed = _token_totals(tokens, phis, len(texts))
    order = sorted(importance, key=lambda t: (-importance[t], t))
    local = []
    for row_id in local_row_ids:
        i = position_of[row_id]
        by_token: dict[str, float] = {}
        for token, phi in zip(tokens[i], phis[i]):
            by_token[token] = by_token.get(token, 0.0) + float(phi)
        local.append({
            "row_id": row_id, "text": texts[i], "score": finite_or_none(f_x[i]),
            "base_value": finite_or_none(base_value), "tokens": tokens[i], "segments": segments[i],
            "values": [finite_or_none(v) for v in phis[i]],
            "contributions": {t: finite_or_none(v) for t, v in sorted(by_token.items(), key=lambda kv: -abs(kv[1]))},
            "html": highlighted_html(segments[i], phis[i]),
        })
    model = {
        "base_value": finite_or_none(base_value),
        "seconds": finite_or_none(seconds),
        "seconds_per_100_rows": finite_or_none(seconds * 100.0 / len(texts)),
        "predict_calls": int(calls),
        "predict_rows": int(evaluated),
        "global_importance": {t: finite_or_none(importance[t]) for t in order[:TOP_GLOBAL]},
        "mean_signed_contribution": {
            t: finite_or_none(signed[t]) for t in sorted(signed, key=lambda t: (-abs(signed[t]), t))[:TOP_SIGNED]},
        "top_tokens": {
            "positive": {t: finite_or_none(signed[t]) for t in sorted(signed, key=lambda t: (-signed[t], t))
                         [:TOP_PER_CLASS] if signed[t] > 0},
            "negative": {t: finite_or_none(signed[t]) for t in sorted(signed, key=lambda t: (signed[t], t))
                         [:TOP_PER_CLASS] if signed[t] < 0},
        },
        "additivity": additivity_summary(errors),
        "local": local,
    }
    return phis, f_x, model


def _agreement(tokens: list[list[str]], values: dict[str, list[np.ndarray]], names: list[str],
               reference: str) -> dict:
    """agreement[model] for every model but the reference, over the reference's vocabulary of explained tokens."""
    agreement = {}
    n = len(tokens)
    ref_importance, _ = _token_totals(tokens, values[reference], n)
    vocabulary = sorted(ref_importance)
    ref_vector = np.array([ref_importance[t] for t in vocabulary])
    ref_flat = np.concatenate(values[reference]) if values[reference] else np.zeros(0)
    for name in names:
        if name == reference:
            continue
        importance, _ = _token_totals(tokens, values[name], n)
        vector = np.array([importance.get(t, 0.0) for t in vocabulary])
        flat = np.concatenate(values[name]) if values[name] else np.zeros(0)
        agreement[name] = agreement_with_reference(
            vocabulary, vector, ref_vector, finite_or_none(np.abs(flat - ref_flat).mean()) if flat.size else None)
    return agreement


def _settings(shap, corpus: _Texts, spans: list, local_row_ids: list[int], *, max_evals: int | None,
              batch_size: int, seed: int) -> dict:
    """settings: the method, masker, players and budget of the text explanation."""
    return {
        "method": "partition",
        "method_description": "Owen values over shap's token tree (shap.PartitionExplainer): coalitions follow "
                              "the tree, so these are not Shapley values; where the budget of masked texts runs "
                              "out, an unexplored subtree's value is shared among its tokens",
        "masker": "shap.maskers.Text over a predict function of strings (the shipped tokenizer spec, then the "
                  "model); a hidden token is removed from the text",
        "mask_token": "U+E000 (removed by the predict function before tokenizing)",
        "players": "the tokens of the shipped tokenizer spec, up to max_length (the part the model sees)",
        "link": "identity (probability units)",
        "max_evals": int(max_evals) if max_evals else f"min({MAX_EVALS_CAP}, tokens * (tokens - 1) + 2)",
        "max_evals_used": {"min": int(min(corpus.budgets)), "max": int(max(corpus.budgets))},
        "batch_size": int(batch_size),
        "rows": len(corpus.texts),
        "explained_rows": len(corpus.texts),
        "local_rows": len(local_row_ids),
        "tokens_explained": int(sum(len(s) for s in spans)),
        "background": "none: the base value is the score of the empty text, f('')",
        "seed": int(seed),
        "additivity_target": "f(text) - f(''), both from the predict function",
        "global_importance": "per token: mean over explained texts of the summed |SHAP| of its occurrences",
        "shap_version": str(shap.__version__),
    }


class _CountingStrings(CountingPredict):
    """Counts calls and rows of a predict function of strings (no float32 cast)."""

    def __call__(self, texts) -> np.ndarray:
        texts = np.asarray(texts, dtype=object).reshape(-1)
        out = np.asarray(self.function(texts), dtype=np.float64).reshape(-1)
        if out.shape != (len(texts),):
            raise ValueError(f"predict function {self.name!r} returned shape {out.shape} for {len(texts)} texts")
        if not np.all(np.isfinite(out)):
            raise ValueError(f"predict function {self.name!r} returned non-finite scores")
        self.calls += 1
        self.rows += len(texts)
        return out


def _token_totals(tokens: list[list[str]], phis: list[np.ndarray], n: int) -> tuple[dict, dict]:
    """Per token: mean over texts of summed |phi| (importance) and of summed phi (signed)."""
    importance: dict[str, float] = {}
    signed: dict[str, float] = {}
    for words, phi in zip(tokens, phis):
        for word, value in zip(words, phi):
            importance[word] = importance.get(word, 0.0) + abs(float(value)) / n
            signed[word] = signed.get(word, 0.0) + float(value) / n
    return importance, signed


# --------------------------------------------------------------------------- figures


def text_explanation_figures(explanation: dict) -> dict:
    """shap_global (top tokens per class, every model) and shap_local_<row_id> (highlighted text)."""
    from matplotlib.figure import Figure

    models = explanation["models"]
    names = list(models)
    reference = explanation.get("reference") or names[0]
    figures: dict = {}

    fig = Figure(figsize=(11, 5.2))
    for k, (side, title) in enumerate((("positive", "towards positive"), ("negative", "towards negative"))):
        ax = fig.add_subplot(1, 2, k + 1)
        top = list(models[reference]["top_tokens"][side])[:TOP_PER_CLASS]
        y = np.arange(len(top))
        height = 0.8 / max(1, len(names))
        for m, name in enumerate(names):
            table = models[name].get("mean_signed_contribution", {})
            shown = [table.get(t) or 0.0 for t in top]
            ax.barh(y + (m - (len(names) - 1) / 2) * height, shown, height=height, color=model_colour(m),
                    label=name)
        ax.set_yticks(y)
        ax.set_yticklabels(top, fontsize=9)
        ax.set_ylim(len(top) - 0.5, -0.5)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.grid(axis="x", alpha=0.3)
        ax.locator_params(axis="x", nbins=5)
        ax.set_xlabel("mean SHAP contribution per text (probability)")
        ax.set_title(f"Tokens pushing {title} (ranked by {reference})", fontsize=10)
        if top:
            ax.legend(fontsize=8, loc="lower right" if side == "positive" else "lower left")
    fig.tight_layout()
    figures["shap_global"] = fig

    local_by_model = {n: {e["row_id"]: e for e in models[n]["local"]} for n in names}
    for row_id in local_by_model[reference]:
        entries = [(n, local_by_model[n][row_id]) for n in names if row_id in local_by_model[n]]
        figures[f"shap_local_{row_id}"] = _highlighted_figure(row_id, entries)
    return figures


def _highlighted_figure(row_id: int, entries: list[tuple[str, dict]]):
    """Each model's token contributions as coloured boxes behind the words, wrapped into lines."""
    from matplotlib.figure import Figure

    width_chars = 130
    scale = max([abs(v or 0.0) for _, e in entries for v in e["values"]] or [0.0])
    layouts = []
    for name, entry in entries:
        lines, line, used = [], [], 0
        for segment, value in zip(entry["segments"], entry["values"]):
            word = " ".join(segment.split()) or "·"
            if line and used + len(word) + 1 > width_chars:
                lines.append(line)
                line, used = [], 0
            line.append((used, word, value or 0.0))
            used += len(word) + 1
        if line:
            lines.append(line)
        layouts.append((name, entry, lines or [[]]))
    total_lines = sum(len(lines) + 2 for _, _, lines in layouts) + 1
    line_height = 0.32
    fig = Figure(figsize=(11, 0.5 + line_height * total_lines))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.98))
    ax.set_axis_off()
    ax.set_xlim(0, width_chars)
    ax.set_ylim(total_lines, 0)
    y = 0.8
    for name, entry, lines in layouts:
        ax.text(0, y, f"{name}: P(positive) = {entry['score']:.3f}, base (empty text) = {entry['base_value']:.3f}; "
                      f"row {row_id}", fontsize=9, fontweight="bold", va="center")
        y += 1.1
        for line in lines:
            for x, word, value in line:
                colour, alpha = _colour(value, scale)
                ax.text(x, y, word, fontsize=9.5, family="monospace", va="center",
                        bbox={"facecolor": (*colour, 0.85 * alpha), "edgecolor": "none", "pad": 1.2})
            y += 1
        y += 0.9
    ax.text(0, total_lines - 0.4, "blue: raises P(positive); red: lowers it; colour strength: |SHAP| "
                                  f"(strongest {scale:.3f})", fontsize=8, color="#555555", va="center")
    return fig
