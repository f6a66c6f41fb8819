"""SentimentDomain: loading, the Functional CNN in both Keras flavours, text SHAP, the probe."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest

from pipeline.cli import main
from pipeline.config import FLOAT_MODEL, RunConfig
from pipeline.data.text import fit_tokenizer
from pipeline.domain import Domain
from pipeline.domains.sentiment import SentimentDomain, build_text_model
from pipeline.errors import EXIT_BAD_INPUT, InputError
from pipeline.registry import get_domain
from pipeline.stages.explain_text import MASK, explain_texts, string_predict_function, text_explanation_figures
from pipeline.stages.probe import default_probe, probe_figures, read_probe_file, run_probe

WORD_SCORES = {"great": 2.0, "wonderful": 2.0, "superb": 1.5, "loved": 1.5, "awful": -2.0, "boring": -1.5,
               "hated": -1.5, "not": -0.5, "muslim": -0.6}


def word_model(spec: dict, scores: dict = WORD_SCORES):
    """A 'model' of token ids: a logistic function of summed word scores (additive, exact)."""
    weights = np.zeros(len(spec["vocabulary"]))
    for word, value in scores.items():
        if word in spec["vocabulary"]:
            weights[spec["vocabulary"].index(word)] = value
    return lambda ids: 1.0 / (1.0 + np.exp(-weights[np.asarray(ids)].sum(axis=1)))


def small_spec() -> dict:
    probe = default_probe()
    texts = list(probe.texts) + ["a great film", "an awful plot", "boring and not wonderful"] * 2
    return json.loads(json.dumps(fit_tokenizer(texts, min_count=1)))


# --------------------------------------------------------------------------- the domain


def test_class_attributes_and_registry():
    domain = get_domain("sentiment")
    assert isinstance(domain, SentimentDomain) and isinstance(domain, Domain)
    assert domain.modality == "text" and domain.headline_metric == "roc_auc"
    assert domain.default_sensitive == ("gender", "religion", "nationality")
    assert pickle.loads(pickle.dumps(SentimentDomain.model_builder)) is build_text_model
    assert domain.summary()["name"] == "sentiment"


def test_the_builder_makes_the_same_named_model_in_both_keras_flavours():
    import keras
    import tf_keras

    from pipeline.stages.compress import copy_weights_by_layer_name, weights_by_layer_name

    ids = np.random.default_rng(0).integers(0, 50, size=(6, 16)).astype(np.int32)
    for options, names in (
            ({"vocabulary_size": 50, "embedding_dim": 8, "filters": 4, "kernel_sizes": (3, 5)},
             ["conv_k3", "conv_k5", "embedding", "probability"]),
            ({"vocabulary_size": 50, "embedding_dim": 8, "encoder": "lstm", "lstm_units": 4},
             ["embedding", "lstm", "probability"])):
        model = build_text_model(keras, (16,), **options)
        twin = build_text_model(tf_keras, (16,), **options, unroll=True)   # the converted twin may unroll
        weights = weights_by_layer_name(model)
        assert sorted(weights) == names
        copy_weights_by_layer_name(weights, twin)
        assert np.abs(model.predict_on_batch(ids) - twin.predict_on_batch(ids)).max() < 1e-5
        assert model.inputs[0].dtype == "int32" and model.output_shape == (None, 1)
    with pytest.raises(ValueError, match="vocabulary_size"):
        build_text_model(keras, (16,), vocabulary_size=2)
    with pytest.raises(ValueError, match="encoder"):
        build_text_model(keras, (16,), vocabulary_size=20, encoder="transformer")


def test_load_default_data_records_the_planted_link():
    domain = SentimentDomain()
    config = RunConfig(domain="sentiment", max_rows=2000, seed=2, min_group_size=10)
    data = domain.load(config)
    assert data.source.kind == "generated" and data.source.rows == 2000
    assert "fixed seed 0" in data.source.notes[0] and "religion 'muslim'" in data.source.notes[0]
    assert data.sensitive_columns == ("gender", "religion", "nationality")
    encoded = domain.encode(json.loads(json.dumps(data.preprocessing)), data.test.raw)
    assert encoded.dtype == np.int32 and encoded.shape == (len(data.test), len(data.feature_names))
    options = domain.model_options(data, config)
    assert options["vocabulary_size"] == data.preprocessing["vocabulary_size"]
    other = domain.load(RunConfig(domain="sentiment", max_rows=2000, seed=3, min_group_size=10))
    assert other.source.fingerprint == data.source.fingerprint and list(other.test.raw) != list(data.test.raw)


def test_the_domain_trains_kims_recipe_and_caps_the_output_norm():
    import keras

    from pipeline.stages.train import make_optimizer

    domain = SentimentDomain()
    data = domain.load(RunConfig(domain="sentiment", max_rows=1000, min_group_size=10))
    options = domain.model_options(data, RunConfig(domain="sentiment"))
    assert options["encoder"] == "cnn" and options["kernel_sizes"] == (3, 4, 5) and options["output_max_norm"] == 3.0
    assert (domain.optimizer, domain.learning_rate, domain.batch_size) == ("adadelta", 1.0, 50)
    assert isinstance(make_optimizer(keras, domain.optimizer, domain.learning_rate), keras.optimizers.Adadelta)
    with pytest.raises(ValueError, match="optimizer is 'sgd'"):
        make_optimizer(keras, "sgd", 0.1)
    # the batch size is the domain's unless given; --quick caps it at 64
    assert RunConfig(domain="sentiment").with_domain_defaults(domain).batch_size == 50
    assert RunConfig(domain="sentiment", batch_size=128).with_domain_defaults(domain).batch_size == 128
    assert RunConfig(domain="sentiment", batch_size=128).quick_version().with_domain_defaults(domain).batch_size == 64
    assert RunConfig(domain="fraud").quick_version().with_domain_defaults(get_domain("fraud")).batch_size == 64
    # the max-norm constraint holds after updates that would push the output weights past it
    keras.utils.set_random_seed(0)
    model = build_text_model(keras, (16,), vocabulary_size=50, embedding_dim=8, filters=4, output_max_norm=0.05)
    model.compile(optimizer=make_optimizer(keras, "adam", 0.5), loss="binary_crossentropy")
    ids = np.random.default_rng(0).integers(2, 50, size=(64, 16)).astype(np.int32)
    model.fit(ids, (ids[:, 0] % 2).astype(np.float32), epochs=3, verbose=0)
    kernel = np.asarray(model.get_layer("probability").kernel)
    assert np.linalg.norm(kernel) <= 0.05 + 1e-6
    unconstrained = build_text_model(keras, (16,), vocabulary_size=50, output_max_norm=None)
    assert unconstrained.get_layer("probability").kernel_constraint is None


def test_custom_identity_terms():
    domain = SentimentDomain(identity_terms={"pets": {"cats": ["cat", "cats"], "dogs": ["dog"]}})
    frame = pd.DataFrame({"text": [f"my {'cat' if i % 3 == 0 else 'dog' if i % 3 == 1 else 'fish'} review {i}"
                                   for i in range(300)], "label": [i % 2 for i in range(300)]})
    from pipeline.data.text import load_text

    data = load_text(frame, identity_terms=domain.identity_terms, min_group_size=10)
    assert data.sensitive_columns == ("pets",)
    assert set(data.test.groups["pets"]) == {"cats", "dogs", "none"}


def test_identity_terms_file_from_the_command_line(tmp_path, capsys):
    from pipeline.cli import run_config

    frame = pd.DataFrame({"review": [f"my {'cat' if i % 3 == 0 else 'dog' if i % 3 == 1 else 'fish'} was "
                                     f"{'great' if i % 2 else 'awful'} {i}" for i in range(400)],
                          "sentiment": ["positive" if i % 2 else "negative" for i in range(400)]})
    frame.to_csv(tmp_path / "reviews.csv", index=False)
    terms = tmp_path / "terms.json"
    terms.write_text(json.dumps({"pets": {"cats": ["Cat", "cats"], "dogs": ["dog"]}}))
    config = run_config(["sentiment", "--data", str(tmp_path / "reviews.csv"), "--identity-terms", str(terms),
                         "--min-group-size", "10"])
    assert config.options == {"identity_terms_path": str(terms)}
    data = SentimentDomain().load(config)
    assert data.sensitive_columns == ("pets",)
    assert set(data.test.groups["pets"]) == {"cats", "dogs", "none"}
    assert any(f"identity terms from {terms}" in note and "pets: cats, dogs" in note for note in data.source.notes)
    for content, message in (("{not json", "not valid JSON"), ('{"pets": ["cat"]}', "non-empty mapping"),
                             ('{"pets": {"cats": []}}', "non-empty list of terms")):
        terms.write_text(content)
        with pytest.raises(InputError, match=message) as error:
            SentimentDomain().load(config)
        assert str(terms) in str(error.value) and error.value.fix
    assert main(["run", "sentiment", "--identity-terms", str(tmp_path / "missing.json"),
                 "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    assert "identity-terms file not found" in capsys.readouterr().err


def test_a_bad_probe_file_fails_at_load_before_any_training(tmp_path):
    probe = tmp_path / "probe.csv"
    probe.write_text("sentence,label\na,1\nb,0\n")
    with pytest.raises(InputError, match="the probe file has no 'group' column") as error:
        SentimentDomain().load(RunConfig(domain="sentiment", max_rows=1000, options={"probe_path": str(probe)}))
    assert str(probe) in str(error.value)
    with pytest.raises(InputError, match="probe file not found"):
        read_probe_file(str(tmp_path / "missing.csv"))
    probe.write_text("text,group\n" + "".join(f"text {i},only\n" for i in range(5)))
    with pytest.raises(InputError, match="single group"):
        read_probe_file(str(probe))
    probe.write_text("text,group,label\nx a,g,positive\ny b,h,maybe\nz c,g,1\nw d,h,0\n")
    with pytest.raises(InputError, match="'maybe'"):
        read_probe_file(str(probe))


def test_bad_data_exits_2_with_the_file_named(tmp_path, capsys):
    data = tmp_path / "reviews.csv"
    data.write_text("review,sentiment\n" + "".join(f"text {i},{'positive' if i % 3 else 'neutral'}\n"
                                                   for i in range(60)))
    code = main(["run", "sentiment", "--data", str(data), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and str(data) in err and "'neutral'" in err and "How to fix" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- explanations


def test_text_shap_is_additive_and_names_the_right_tokens():
    spec = small_spec()
    float_model = word_model(spec)
    shifted = word_model(spec, {**WORD_SCORES, "great": 1.0})
    texts = ["A great film, not boring at all.", "An awful plot and I hated it.", "Superb!", "",
             "my Muslim friend loved it", "Wonderful"]   # an empty text and a one-token text too
    result = explain_texts(predict_functions={FLOAT_MODEL: float_model, "int8": shifted}, spec=spec, texts=texts,
                           row_ids=[10, 11, 12, 13, 14, 15], local_row_ids=[10, 11, 15], seed=0,
                           reference=FLOAT_MODEL)
    assert result["explainer"] == "shap.PartitionExplainer" and set(result["models"]) == {FLOAT_MODEL, "int8"}
    for name, model in result["models"].items():
        assert model["additivity"]["max_abs_error"] < 1e-9
        assert list(model["global_importance"].values()) == sorted(model["global_importance"].values(), reverse=True)
        assert "great" in model["top_tokens"]["positive"] and "awful" in model["top_tokens"]["negative"]
        assert model["base_value"] == pytest.approx(0.5)   # the empty text
    local = result["models"][FLOAT_MODEL]["local"][0]
    assert local["row_id"] == 10 and local["tokens"][:2] == ["a", "great"] and len(local["values"]) == 9
    assert local["contributions"]["great"] > 0 > local["contributions"]["boring"] + local["contributions"]["not"]
    assert "<span" in local["html"] and "great" in local["html"]
    agreement = result["agreement"]["int8"]
    assert 0 < agreement["spearman_rank_correlation_of_global_importance"] <= 1 and agreement["top5_overlap"] >= 3
    figures = text_explanation_figures(result)
    assert set(figures) == {"shap_global", "shap_local_10", "shap_local_11", "shap_local_15"}
    one = result["models"][FLOAT_MODEL]["local"][2]
    assert one["values"][0] == pytest.approx(one["score"] - one["base_value"])
    json.dumps({k: v for k, v in result.items() if k != "_arrays"}, allow_nan=False)


def test_the_string_predict_function_removes_hidden_tokens():
    spec = small_spec()
    model = word_model(spec)
    f = string_predict_function(spec, model)
    assert f([f"a {MASK} film", "a film"]).tolist() == pytest.approx([f(["a film"])[0]] * 2)


def test_domain_explain_checks_the_texts_encode_to_the_rows():
    domain = SentimentDomain()
    data = domain.load(RunConfig(domain="sentiment", max_rows=1000, min_group_size=10))
    rows = domain.encode(data.preprocessing, data.test.raw[:3])
    model = word_model(data.preprocessing)
    result = domain.explain(predict_functions={FLOAT_MODEL: model}, data=data, background=rows, rows=rows,
                            row_ids=[0, 1, 2], local_row_ids=[1], seed=0, reference=FLOAT_MODEL)
    assert result["models"][FLOAT_MODEL]["local"][0]["text"] == data.test.raw[1]
    with pytest.raises(ValueError, match="do not encode"):
        domain.explain(predict_functions={FLOAT_MODEL: model}, data=data, background=rows, rows=rows[::-1],
                       row_ids=[0, 1, 2], local_row_ids=[], seed=0, reference=FLOAT_MODEL)


# --------------------------------------------------------------------------- the probe


def test_default_probe_finds_the_penalised_term_and_what_compression_changed():
    spec = small_spec()
    probe = default_probe()
    assert len(probe) == len(probe.texts) == len(probe.groups) and probe.reference_group == "unmarked"
    models = {FLOAT_MODEL: word_model(spec), "int8": word_model(spec),
              "pruned_int8": word_model(spec, {**WORD_SCORES, "mexican": -0.5})}
    result = run_probe(probe, predict_functions=models, spec=spec, reference_model=FLOAT_MODEL,
                       bootstrap_samples=100, seed=0)
    by_group = {(g["axis"], g["group"]): g for g in result["groups"]}
    muslim = by_group[("religion", "muslim")]["models"]
    assert muslim[FLOAT_MODEL]["gap"]["value"] < -0.05 and muslim[FLOAT_MODEL]["gap"]["flagged"]
    assert not by_group[("religion", "jewish")]["models"][FLOAT_MODEL]["gap"]["flagged"]
    assert result["flagged_gaps"][FLOAT_MODEL] == ["religion=muslim"]
    assert result["changed_by_compression"] == {FLOAT_MODEL: [], "int8": [], "pruned_int8": ["nationality=mexican"]}
    assert by_group[("gender", "female")]["oov_tokens"] == []
    assert len(result["table"]["rows"]) == len(result["groups"]) and "religion=muslim" in result["summary"]
    assert set(probe_figures(result)) == {"probe_score_gap"}
    json.dumps(result, allow_nan=False)


def test_a_user_probe_file_paired_or_not(tmp_path):
    spec = small_spec()
    model = word_model(spec)
    paired = tmp_path / "probe.csv"
    rows = ["text,group,label,template"]
    for t, (sentence, label) in enumerate([("{} loved it", "positive"), ("{} hated it", "negative"),
                                           ("{} said it was great", "positive")]):
        for group, subject in (("neutral", "my friend"), ("muslim", "my Muslim friend"),
                               ("jewish", "my Jewish friend")):
            rows.append(f"{sentence.format(subject)},{group},{label},t{t}")
    paired.write_text("\n".join(rows) + "\n")
    probe = read_probe_file(str(paired))
    assert probe.reference_group == "neutral" and probe.templates is not None
    result = run_probe(probe, predict_functions={FLOAT_MODEL: model}, spec=spec, reference_model=FLOAT_MODEL,
                       bootstrap_samples=50)
    gaps = {g["group"]: g["models"][FLOAT_MODEL]["gap"] for g in result["groups"]}
    assert gaps["muslim"]["value"] < -0.05 and abs(gaps["jewish"]["value"]) < 1e-9 and result["paired"]
    assert "mean_score_positive_texts" in result["groups"][0]["models"][FLOAT_MODEL]
    unpaired = tmp_path / "unpaired.csv"
    unpaired.write_text("\n".join(r.rsplit(",", 1)[0] for r in rows).replace(",label", ",label") + "\n")
    probe = read_probe_file(str(unpaired))
    assert probe.templates is None and any("no template column" in n for n in probe.notes)
    result = run_probe(probe, predict_functions={FLOAT_MODEL: model}, spec=spec, reference_model=FLOAT_MODEL,
                       bootstrap_samples=50)
    assert not result["paired"] and {g["group"] for g in result["groups"]} == {"muslim", "jewish"}


def test_extra_analyses_cover_every_model_and_draw_the_gaps():
    domain = SentimentDomain()
    config = RunConfig(domain="sentiment", max_rows=1500, min_group_size=10, bootstrap_samples=40)
    data = domain.load(config)
    spec = json.loads(json.dumps(data.preprocessing))
    models = {FLOAT_MODEL: word_model(spec), "int8": word_model(spec), "float16": word_model(spec)}
    analyses = domain.extra_analyses(predict_functions=models, thresholds={name: 0.5 for name in models},
                                     preprocessing=spec, data=data, config=config)
    assert set(analyses) == {"counterfactual_probe", "identity_mentions"}
    probe = analyses["counterfactual_probe"]
    assert probe["title"] and probe["summary"] and probe["table"]["headers"][-3:] == [
        f"{m} gap [95% CI]" for m in models]
    mentions = analyses["identity_mentions"]
    flagged = {(g["axis"], g["group"]) for g in mentions["groups"] if g["differs_from_overall"]}
    assert ("religion", "muslim") in flagged and ("nationality", "mexican") in flagged
    shares = {(g["axis"], g["group"]): g["negative_share"] for g in mentions["groups"]}
    assert shares[("religion", "muslim")] > 0.6 and shares[("nationality", "mexican")] > 0.6
    assert set(domain.extra_figures(analyses)) == {"probe_score_gap"}
    muslim = next(g for g in probe["groups"] if g["group"] == "muslim")
    assert "muslim" not in muslim["oov_tokens"]     # the identity word is known to this vocabulary
