"""Report helpers: the Pareto front and the two renderings of the model card."""

from pipeline.stages.report import Bullets, Heading, Image, Paragraph, Table, pareto_front, render_html, render_markdown


def test_pareto_front_keeps_only_undominated_points():
    points = [(10.0, 0.90), (5.0, 0.89), (5.0, 0.80), (20.0, 0.95), (25.0, 0.94)]
    assert pareto_front(points) == [1, 0, 3]


def test_markdown_and_html_render_the_same_blocks():
    blocks = [Heading(1, "Card"), Paragraph("**Gate PASSED** for `int8` <x>"), Bullets(["a", "b"]),
              Table(["k", "v"], [["x|y", "1"]]), Image("plots/tradeoff.png", "trade-off")]
    markdown = render_markdown(blocks)
    assert "# Card" in markdown and "| x\\|y | 1 |" in markdown and "![trade-off](plots/tradeoff.png)" in markdown
    page = render_html(blocks, "Card")
    assert "<strong>Gate PASSED</strong>" in page and "<code>int8</code>" in page
    assert "&lt;x&gt;" in page and "<x>" not in page
    assert '<img src="plots/tradeoff.png"' in page and "<td>x|y</td>" in page


def _explanation_paragraphs(settings: dict) -> str:
    from pipeline.stages.report import _explanations

    explanation = {"explainer": "x", "settings": {"explained_rows": 20, **settings}, "models": {}, "agreement": {}}
    return render_markdown(_explanations(explanation, []))


def test_card_calls_exact_values_exact_and_sampled_values_estimates_with_their_error():
    exact = _explanation_paragraphs({
        "method": "exact", "columns": 12, "additivity_target": "f(x) - mean f(background), both from f",
        "method_description": "exact Shapley values: all 2^12 = 4,096 coalitions of the 12 players"})
    assert "all 2^12 = 4,096 coalitions" in exact and "exact Shapley values of that game (no sampling)" in exact
    assert "f(x) - mean f(background)." in exact and "ESTIMATES" not in exact

    error = {"max_abs_error_vs_exact": 0.128, "mean_abs_error_vs_exact": 0.0123, "mean_abs_value": 0.0456,
             "rows": 5, "reference": "32 antithetic permutations (two halves of 16)",
             "reference_max_abs_error": 0.011, "reference_mean_abs_error": 0.002}
    sampled = _explanation_paragraphs({
        "method": "permutation", "columns": 64, "exact_rule": "exact when 2^players x ...",
        "method_description": "sampled Shapley values: 2 antithetic permutation(s) per row",
        "sampling_error": error})
    assert "ESTIMATES of the Shapley values, not exact ones" in sampled and "2^64 coalitions" in sampled
    assert "largest |error| 0.1280" in sampled and "mean |error| 0.01230" in sampled and "0.0456" in sampled
    assert "on 5 explained rows per model, against 32 antithetic" in sampled and "32 antithetic permutations" in sampled
    assert "reference's own sampling error is about 0.00200 (mean) and at most 0.0110" in sampled
    assert "exact Shapley values of that game" not in sampled

    unmeasured = _explanation_paragraphs({"method": "permutation", "columns": 64, "method_description": "sampled",
                                          "sampling_error": None})
    assert "not measured" in unmeasured
    text = _explanation_paragraphs({"method": "partition", "method_description": "Owen values over shap's token tree",
                                    "additivity_target": "f(text) - f(''), both from the predict function"})
    assert "Owen values" in text and "f(text) - f('')." in text and "exact Shapley" not in text


def test_the_card_says_whether_sensitive_attributes_are_model_inputs():
    from pipeline.stages.report.sections import _sensitive_inputs_sentence

    assert "audit only, not as model inputs" in _sensitive_inputs_sentence({"sensitive_inputs": []}, "tabular")
    assert "audit only, not as model inputs" in _sensitive_inputs_sentence({}, "tabular")  # older runs
    table = _sensitive_inputs_sentence({"sensitive_inputs": ["Type"]}, "tabular")
    assert "Also model inputs: `Type`" in table and "not as model inputs" not in table
    text = _sensitive_inputs_sentence({"sensitive_inputs": ["gender", "religion"]}, "text")
    assert "identity terms in the text the model reads" in text and "`gender`, `religion`" in text


def test_the_baseline_sentence_says_when_the_keras_model_is_behind():
    from pipeline.stages.baselines import BASELINE_GAP, baseline_sentence

    behind = baseline_sentence("pr_auc", 0.151, "hist_gradient_boosting", 0.249, (0.249 - 0.151) / 0.249)
    assert "39% behind hist gradient boosting on pr_auc (0.1510 against 0.2490" in behind
    close = baseline_sentence("pr_auc", 0.40, "logistic_regression", 0.41, 0.01 / 0.41)
    assert "holds its own" in close and f"within {BASELINE_GAP:.0%}" in close


def test_the_card_shows_layer_errors_and_what_selective_int8_kept_in_float():
    from pipeline.stages import layer_errors
    from pipeline.stages.report.analyses import _layer_errors, _selective_int8

    dump = ("op_name,tensor_idx,num_elements,stddev,mean_error,max_abs_error,mean_squared_error,scale,zero_point,"
            "tensor_name\nFULLY_CONNECTED,15,32,0.1,0.0,0.3,0.0004,0.05,-128,m/dense_0/MatMul\n"
            "FULLY_CONNECTED,19,16,0.1,0.0,0.3,0.01,0.01,-128,m/dense_1/MatMul\n")
    rows = layer_errors.layer_table(dump, ["dense_0", "dense_1"], "dense_1")
    layers = {"int8": {"layers": rows, "summary": layer_errors.summary(rows)},
              "qat_int8": {"error": "not measured: quantization-aware"}}
    text = render_markdown(_layer_errors(layers, "int8", []))
    assert "| `dense_1` | FULLY_CONNECTED | 10.000 ⚠ |" in text and "| `dense_0` | FULLY_CONNECTED | 0.400 |" in text
    assert "Over the warning level in `int8`: `dense_1`." in text and "`qat_int8`: per-layer error not measured" in text

    worst = lambda change: {"column": "Sex", "group": "F", "metric": "tpr", "change": change, "rows": 40}  # noqa: E731
    built = {"status": "ok", "details": {"selective": {
        "limit": 0.05, "byte_budget": 1250, "int8_bytes": 1000, "within_limit": True,
        "start": {"worst": worst(-0.2)}, "final": {"worst": worst(-0.025)},
        "restored": [{"keras_layer": "dense_1", "tensor_name": "m/dense_1/MatMul", "op": "FULLY_CONNECTED",
                      "rmse_over_scale": 10.0, "bytes_added": 180, "latency_ms_added": 0.001,
                      "worst_after": worst(-0.025), "float_in_file": True}]}}}
    deployment = {"variants": {"selective_int8": {"microcontroller": {"supported": True, "arena_bytes": 4096}}}}
    text = render_markdown(_selective_int8(built, deployment))
    assert "int8's worst group change against the float model was TPR -0.200 in Sex = F" in text
    assert "makes it TPR -0.025 in Sex = F, inside the limit." in text
    assert "| `dense_1` | FULLY_CONNECTED | 10.00 | +180 | +0.0010 ms | TPR -0.025 in Sex = F | yes |" in text
    assert "it runs, in an arena of 4,096 bytes." in text
    skipped = render_markdown(_selective_int8({"status": "skipped", "reason": "int8 already keeps every group"}, None))
    from pipeline.stages.report.analyses import _calibration_sets

    calibration = {"column": "Sex", "chosen": "Sex = M", "why": "rows of Sex = M only: ...", "sets": [
        {"name": "representative", "rows": 200, "worst": worst(-0.2), "changes": {"F": {"tpr": -0.2, "fpr": 0.01}}},
        {"name": "Sex = M", "rows": 120, "worst": worst(-0.01), "changes": {"F": {"tpr": -0.01}}}]}
    text = render_markdown(_calibration_sets({"details": {"calibration": calibration}}))
    assert "| `representative` | 200 | -0.200 / +0.010 | TPR -0.200 in Sex = F |" in text
    assert "| `Sex = M` (used) | 120 | -0.010 / n/a | TPR -0.010 in Sex = F |" in text
    assert render_markdown(_calibration_sets({"details": {}})) == render_markdown([])
    assert "`selective_int8` was not built: int8 already keeps every group." in skipped


def test_the_card_lists_explanation_agreement_by_group_and_flags_the_low_ones():
    from pipeline.stages.report.explanations import _drift_by_group

    drift = {"min_agreement": 0.8, "min_rows": 10, "models": {"int8": {
        "overall": {"spearman": 0.95}, "flagged": [{"column": "Age", "group": "66+", "spearman": 0.4}],
        "lowest_group": {"column": "Age", "group": "66+", "spearman": 0.4},
        "by_group": {"Age": {"18-25": {"measured": True, "rows": 30, "spearman": 0.97, "top5_overlap": 5,
                                       "sign_flips": []},
                             "66+": {"measured": True, "rows": 12, "spearman": 0.4, "top5_overlap": 3,
                                     "sign_flips": ["amount"]},
                             "unknown": {"measured": False, "rows": 3}}}}}}
    text = render_markdown(_drift_by_group(drift))
    assert "under 0.8 is flagged ⚠: Age = 66+." in text
    assert "| Age | 66+ | 12 | 0.400 ⚠ | 3 of 5 | `amount` |" in text and "| Age | 18-25 | 30 | 0.970 | 5 of 5 | — |" in text
    assert "| Age | unknown | 3 | too few rows |" in text
    assert "not measured (no shared players)" in render_markdown(_drift_by_group({"not_measured": "no shared players"}))
    # several candidates: a summary row each, and the by-group table of the shipped one only
    agreeing = {"overall": {"spearman": 0.99, "top5_overlap": 5}, "flagged": [],
                "lowest_group": {"column": "Age", "group": "18-25", "spearman": 0.98}, "by_group": {"Age": {
        "18-25": {"measured": True, "rows": 30, "spearman": 0.98, "top5_overlap": 5, "sign_flips": []}}}}
    text = render_markdown(_drift_by_group({**drift, "shipped": "pruned_int8",
                                            "models": {**drift["models"], "pruned_int8": agreeing}}))
    assert "| `int8` | 0.950 | — | Age = 66+: 0.400 ⚠ | 1 |" in text
    assert "| `pruned_int8` (shipped) | 0.990 | 5 of 5 | Age = 18-25: 0.980 | 0 |" in text
    assert "`pruned_int8` vs float, by group" in text and "`int8` vs float, by group" not in text


def test_the_cards_fine_tuning_line_says_what_was_fit_how_the_ensemble_was_tuned_and_how_long_it_recovered():
    from pipeline.stages.report.analyses import _fine_tuning_lines
    from pipeline.stages.variant_builder import _recovery_words

    tuning = {"epochs": 9, "learning_rate": 1e-3, "kept_epoch": 7, "targets": "training", "rows": 54000,
              "loss": "focal", "member_final_losses": [0.1] * 5,
              "recovery": _recovery_words(planned=6, most=12, run=9, best=7)}
    lines = _fine_tuning_lines({"pruned_int8": {"status": "ok", "details": {"fine_tuning": tuning}},
                                "int8": {"status": "ok", "details": {}}})
    assert lines == ["`pruned_int8`: 9 epochs at learning rate 0.001 on what the float model was trained on "
                     "(54,000 rows, focal), each of its 5 ensemble members on its own loss, kept epoch 7 (pruning's "
                     "recovery ran 9 of at most 12 epochs (6 planned); best validation PR-AUC at epoch 7, stopped "
                     "after 2 epochs without a better one)."]
    assert _recovery_words(planned=6, most=12, run=12, best=11).endswith("stopped at the limit")
    assert _recovery_words(planned=6, most=12, run=6, best=4).endswith("stopped after 2 epochs without a better one")
    labels = _fine_tuning_lines({"qat_int8": {"status": "ok", "details": {"fine_tuning": {
        "epochs": 6, "learning_rate": 1e-4, "kept_epoch": 2, "targets": "labels", "rows": 600,
        "loss": "binary_crossentropy"}}}})
    assert labels == ["`qat_int8`: 6 epochs at learning rate 0.0001 on the labels (600 rows, binary crossentropy), "
                      "kept epoch 2."]
