"""The tabular model search (issue 19): piecewise-linear encoding, distillation targets, the teacher, KerasTuner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.data.tabular_preprocessing import (
    encode_tabular,
    feature_groups_of,
    fit_preprocessing,
    piecewise_linear,
    with_piecewise_linear,
)


def test_piecewise_linear_fills_bins_up_to_the_value():
    encoded = piecewise_linear(np.array([-1.0, 0.0, 0.5, 2.0, 3.0, 9.0]), [0.0, 1.0, 3.0])
    np.testing.assert_allclose(encoded, [[0, 0], [0, 0], [0.5, 0], [1, 0.5], [1, 1], [1, 1]])


def _table(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.exponential(50.0, rows)
    amount[::10] = np.nan   # 10 % missing: the column gets a missing indicator
    return pd.DataFrame({"amount": amount, "flag": rng.integers(0, 2, rows).astype(float),
                         "channel": rng.choice(["web", "shop"], rows)})


def test_the_piecewise_linear_spec_encodes_raw_rows_by_itself():
    table = _table()
    spec = fit_preprocessing(table, {"amount": "numeric", "flag": "numeric", "channel": "categorical"})
    standardised = encode_tabular(spec, table)
    piecewise = with_piecewise_linear(spec, standardised, bins=4)
    amount, flag, channel = piecewise["columns"]
    # Quantile edges in the column's own units; 4 bins, then the missing indicator.
    filled = table["amount"].fillna(spec["columns"][0]["median"])
    np.testing.assert_allclose(amount["edges"], np.quantile(filled, [0, 0.25, 0.5, 0.75, 1.0]), rtol=1e-4)  # float32 inputs
    assert amount["indices"] == [0, 1, 2, 3, 4] and amount["missing_indicator"]
    assert "edges" not in flag and flag["indices"] == [5]   # two distinct values: stays standardised
    assert channel["indices"] == [6, 7, 8] and piecewise["n_features"] == 9
    assert feature_groups_of(piecewise) == {"amount": [0, 1, 2, 3, 4], "flag": [5], "channel": [6, 7, 8]}
    assert spec["n_features"] == 6 and "edges" not in spec["columns"][0]   # the input spec is untouched

    encoded = encode_tabular(piecewise, table)
    np.testing.assert_allclose(encoded[:, :4], piecewise_linear(filled.to_numpy(), amount["edges"]), atol=1e-6)
    np.testing.assert_array_equal(encoded[:, 4], table["amount"].isna().astype(np.float32))
    np.testing.assert_allclose(encoded[:, 5:], standardised[:, 2:], atol=1e-6)   # the other columns as before
    assert encoded[:, :5].min() >= 0.0 and encoded[:, :5].max() <= 1.0
    # One raw row, as a device would encode it: the largest amount fills every bin.
    row = encode_tabular(piecewise, {"amount": 1e6, "flag": 1.0, "channel": "web"})
    assert row[0, :4].tolist() == [1.0, 1.0, 1.0, 1.0] and row[0, 4] == 0.0


def test_distillation_targets_mix_labels_and_teacher():
    from pipeline.stages.model_search import training_targets

    labels = np.array([0, 1, 1, 0])
    teacher = np.array([0.2, 0.6, 1.0, 0.0])
    assert training_targets(labels, teacher, 0.0) is None
    assert training_targets(labels, None, 0.5) is None
    np.testing.assert_allclose(training_targets(labels, teacher, 0.5), [0.1, 0.8, 1.0, 0.0])
    np.testing.assert_allclose(training_targets(labels, teacher, 1.0), teacher)


def test_the_teacher_scores_rows_it_was_not_fitted_on():
    from sklearn.ensemble import HistGradientBoostingClassifier

    from pipeline.stages.baselines import teacher_scores

    rng = np.random.default_rng(1)
    features = rng.normal(size=(600, 5))
    labels = (features[:, 0] + rng.normal(scale=1.0, size=600) > 1.0).astype(int)
    scores = teacher_scores(features, labels, seed=0)
    assert scores.shape == (600,) and 0.0 <= scores.min() and scores.max() <= 1.0
    in_sample = HistGradientBoostingClassifier(random_state=0).fit(features, labels).predict_proba(features)[:, 1]
    # Out of fold, the teacher cannot have memorised each row's label: its scores separate the
    # train labels less sharply than an in-sample fit does.
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(labels, scores) < roc_auc_score(labels, in_sample) - 0.02
    with pytest.raises(ValueError, match="two examples of each class"):
        teacher_scores(features[:10], np.array([1] + [0] * 9), seed=0)


def test_the_search_runs_the_fixed_and_recommended_recipes_first_and_keeps_the_best_trial_on_validation():
    from pipeline.domains.tabular import build_mlp
    from pipeline.runtime import configure_runtime
    from pipeline.stages.model_search import (
        SearchData,
        default_recipe,
        recommended_recipe,
        search_tabular_model,
        subsample_rows,
    )

    rng = np.random.default_rng(0)
    features = rng.normal(size=(700, 6)).astype(np.float32)
    labels = (features[:, 0] * features[:, 1] > 0.6).astype(np.int64)
    train, validation = slice(0, 500), slice(500, 700)
    data = SearchData(encodings={"standardised": (features[train], features[validation])},
                      train_labels=labels[train], validation_labels=labels[validation],
                      teacher_scores=np.clip(labels[train] * 0.8 + 0.1, 0, 1),
                      synthetic={"standardised": rng.normal(size=(4000, 6)).astype(np.float32)},
                      synthetic_scores=rng.uniform(size=4000).astype(np.float32))
    runtime = configure_runtime(seed=0, batch_size=64, allow_accelerator=False)
    lines: list[str] = []
    result = search_tabular_model(data, model_builder=build_mlp, runtime=runtime, epochs=3, patience=3, trials=3,
                                  seed=0, optimizer="adam", progress=lines.append)
    assert len(result.trials) == 3 and len(lines) == 3 and lines[0].startswith("  trial 1/3")
    # Only what these data offer: one encoding.
    assert result.space["numeric_encoding"] == ["standardised"] and result.space["teacher_weight"] == [0.0, 0.5, 1.0]
    assert result.trials[0]["values"] == default_recipe(result.space)
    # Then the recommended recipe, within what is offered (no piecewise-linear encoding here).
    assert result.trials[1]["values"] == recommended_recipe(result.space)
    assert result.trials[1]["values"]["numeric_encoding"] == "standardised"
    assert result.trials[1]["values"]["teacher_weight"] == 1.0 and result.trials[1]["values"]["augmentation"] == 8
    assert result.space["augmentation"] == [0, 4, 8]
    assert len({tuple(sorted(trial["values"].items())) for trial in result.trials}) == 3   # no trial repeated
    best = max(result.trials, key=lambda trial: trial["val_pr_auc"])
    assert result.chosen == best["values"]
    assert result.to_json()["rows_searched"] == 500
    # A big train split is searched on a stratified sample.
    big = np.r_[np.zeros(90_000, int), np.ones(10_000, int)]
    kept = subsample_rows(big, 50_000, seed=0)
    assert len(kept) == 50_000 and abs(big[kept].mean() - 0.1) < 1e-3 and np.all(np.diff(kept) > 0)


def test_search_trials_zero_trains_the_fixed_recipe(tmp_path):
    from pipeline.config import RunConfig
    from pipeline.registry import get_domain
    from pipeline.search_step import recipe, trials_in_force

    domain = get_domain("fraud")
    config = RunConfig(domain="fraud", quick=True, options={"search_trials": 0}).with_domain_defaults(domain)
    assert trials_in_force(config, domain) == 0
    data = domain.load(config)
    fixed = recipe(config, domain, data, runtime=None, progress=lambda _: None)
    assert fixed.search is None and fixed.data is data and fixed.train_targets is None
    assert fixed.model_options == domain.model_options(data, config)
    quick = RunConfig(domain="fraud", quick=True, options={"search_trials": 8}).with_domain_defaults(domain)
    assert trials_in_force(quick, domain) == 2
    assert trials_in_force(RunConfig(domain="sentiment").with_domain_defaults(get_domain("sentiment")),
                           get_domain("sentiment")) == 0


def test_synthetic_rows_take_each_column_whole_from_one_train_row():
    from pipeline.stages.model_search import gather_columns, swap_noise_sources

    train_x = np.arange(5 * 4, dtype=np.float32).reshape(5, 4)   # row r holds 4r .. 4r+3
    columns = [[0, 1], [2], [3]]                                  # a one-hot pair and two numbers
    sources = swap_noise_sources(rows=5, columns=3, multiplier=8, seed=0, swap_probability=0.3)
    assert sources.shape == (40, 3) and sources.min() >= 0 and sources.max() < 5
    # Most columns come from the row the synthetic row started from; about 30 % were swapped.
    same_as_first = (sources[:, 1:] == sources[:, :1]).mean()
    assert 0.6 < same_as_first < 0.9
    synthetic = gather_columns(train_x, columns, sources)
    np.testing.assert_array_equal(synthetic[:, 0], 4 * sources[:, 0])
    np.testing.assert_array_equal(synthetic[:, 1], 4 * sources[:, 0] + 1)   # a one-hot column stays whole
    np.testing.assert_array_equal(synthetic[:, 2], 4 * sources[:, 1] + 2)
    np.testing.assert_array_equal(synthetic[:, 3], 4 * sources[:, 2] + 3)
    assert np.array_equal(sources, swap_noise_sources(rows=5, columns=3, multiplier=8, seed=0))   # seeded


def test_rows_a_teacher_labelled_train_beside_the_train_rows():
    from pipeline.domains.tabular import build_mlp
    from pipeline.runtime import configure_runtime
    from pipeline.stages.train import train_model

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 4)).astype(np.float32)
    labels = (features[:, 0] > 1.0).astype(np.int64)
    extra = rng.normal(size=(600, 4)).astype(np.float32)
    extra_targets = (extra[:, 0] > 1.0).astype(np.float32) * 0.9
    runtime = configure_runtime(seed=0, batch_size=64, allow_accelerator=False)
    trained = train_model(model_builder=build_mlp, input_shape=(4,), model_options={"hidden_units": (8,)},
                          train_features=features, train_labels=labels, validation_features=features[:100],
                          validation_labels=labels[:100], runtime=runtime, epochs=2, progress=lambda _: None,
                          extra_rows=(extra, extra_targets))
    assert trained.input_pipeline["rows"] == 800 and trained.input_pipeline["batches_per_epoch"] == 13
    with pytest.raises(ValueError, match="multi-worker training takes the default recipe"):
        train_model(model_builder=build_mlp, input_shape=(4,), model_options={}, train_features=features,
                    train_labels=labels, validation_features=features, validation_labels=labels, runtime=runtime,
                    epochs=1, cluster=object(), extra_rows=(extra, extra_targets))


def test_fine_tuning_fits_what_the_float_model_was_trained_on_unless_told_otherwise():
    # --fine-tune-targets training (the default): the recipe's synthetic rows after the train rows, its teacher's mix
    # as targets, the train rows' class weights and weight 1 for the synthetic ones, and its loss.
    import dataclasses

    from pipeline.run import fine_tuning_rows
    from pipeline.search_step import Recipe

    features = np.arange(8, dtype=np.float32).reshape(4, 2)
    labels = np.array([0, 1, 0, 1])
    class_weights = {0: 1.0, 1: 3.0}
    extra = np.full((2, 2), 9.0, dtype=np.float32)
    recipe = Recipe(data=None, model_options={}, learning_rate=1e-3, loss="focal",
                    train_targets=np.array([0.1, 0.8, 0.2, 0.9]), extra_rows=(extra, np.array([0.3, 0.7])))
    rows = fine_tuning_rows("training", features, labels, class_weights, recipe)
    np.testing.assert_array_equal(rows["train_features"], np.concatenate([features, extra]))
    np.testing.assert_allclose(rows["train_labels"], [0.1, 0.8, 0.2, 0.9, 0.3, 0.7], rtol=1e-6)
    np.testing.assert_allclose(rows["train_sample_weights"], [1, 3, 1, 3, 1, 1])
    assert rows["fine_tune_loss"] == "focal"
    # A teacher without synthetic rows: its mix on the train rows, class-weighted.
    rows = fine_tuning_rows("training", features, labels, class_weights, dataclasses.replace(recipe, extra_rows=None))
    np.testing.assert_allclose(rows["train_labels"], [0.1, 0.8, 0.2, 0.9], rtol=1e-6)
    np.testing.assert_allclose(rows["train_sample_weights"], [1, 3, 1, 3])
    # The labels (asked for, or no recipe known): the train rows, class-weighted, binary cross-entropy.
    for what, given in (("labels", recipe), ("float_model", recipe), ("training", None)):
        rows = fine_tuning_rows(what, features, labels, class_weights, given)
        np.testing.assert_array_equal(rows["train_features"], features)
        np.testing.assert_array_equal(rows["train_labels"], labels)
        np.testing.assert_allclose(rows["train_sample_weights"], [1, 3, 1, 3])
        assert rows["fine_tune_loss"] == "binary_crossentropy", what
