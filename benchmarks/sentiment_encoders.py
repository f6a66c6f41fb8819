"""Sentiment encoders on SST-2: the word CNN's settings against the LSTM, float Keras accuracy.

    python -m benchmarks.sentiment_encoders            # needs ../shared/datasets/sentiment/sst2

Trains each setting with the pipeline's own `train_model` (tf.data pipeline, early stopping on
validation PR-AUC) on SST-2 train (validation: sentence families held out of it, as
`edgeaudit run` splits it) and reports accuracy on SST-2 dev at the threshold the sentiment
domain's rule chooses on validation (maximum accuracy), as the pipeline does, and at 0.5. The issue's bar: a word CNN without pretrained
embeddings should reach 0.82. Writes benchmarks/results/sentiment-encoders.json.
Every setting is the earlier pipeline's (`EARLIER_PIPELINE` of benchmarks.sentiment_cnn_variants:
Adam over batches of 256, validation 20 %, embedding 64 x a 10,000-token vocabulary) with the
changes its name gives; the pipeline has since moved to Kim's recipe (see that benchmark).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SST2 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "sentiment" / "sst2" / "train.tsv"
MAX_EPOCHS = 8
PATIENCE = 2

# name -> (build_text_model options over the pipeline's CNN defaults, learning rate, seed)
SETTINGS: dict[str, tuple[dict, float, int]] = {
    "cnn (earlier pipeline default: widths 3,5 x 128 filters)": ({}, 1e-3, 0),
    "cnn, seed 1": ({}, 1e-3, 1),
    "cnn, seed 2": ({}, 1e-3, 2),
    "cnn, learning rate 3e-4": ({}, 3e-4, 0),
    "cnn, widths 2,3,4,5 x 128": ({"kernel_sizes": (2, 3, 4, 5)}, 1e-3, 0),
    "cnn, widths 3,4,5 x 100, embedding 128 (Kim 2014 shape)": (
        {"kernel_sizes": (3, 4, 5), "filters": 100, "embedding_dim": 128}, 1e-3, 0),
    "cnn, embedding dropout 0.4": ({"embedding_dropout": 0.4}, 1e-3, 0),
    "lstm 96 (the earlier pipeline's choice for >= 20k short texts)": ({"encoder": "lstm"}, 1e-3, 0),
}


def main() -> None:
    import numpy as np

    from benchmarks.sentiment_cnn_variants import EARLIER_PIPELINE
    from pipeline.data.text import encode_texts, load_text
    from pipeline.domains.sentiment import LSTM_UNITS, SentimentDomain, build_text_model
    from pipeline.metrics import choose_threshold
    from pipeline.runtime import configure_runtime
    from pipeline.stages.train import batched_predict_function, train_model

    if not SST2.exists():
        raise SystemExit(f"{SST2} is not present: this benchmark needs the SST-2 files")
    data = load_text(SST2, seed=0, validation_share=EARLIER_PIPELINE["validation_share"],
                     max_vocabulary=EARLIER_PIPELINE["max_vocabulary"], min_count=EARLIER_PIPELINE["min_count"])
    spec = data.preprocessing
    train_x, validation_x, test_x = (encode_texts(spec, split.raw) for split in (data.train, data.validation, data.test))
    results = {}
    for name, (overrides, learning_rate, seed) in SETTINGS.items():
        runtime = configure_runtime(seed=seed, batch_size=256)
        options = {"vocabulary_size": int(spec["vocabulary_size"]), "encoder": "cnn", **EARLIER_PIPELINE["model"],
                   "lstm_units": LSTM_UNITS, **overrides}
        started = time.perf_counter()
        trained = train_model(model_builder=build_text_model, input_shape=tuple(train_x.shape[1:]),
                              model_options=options, train_features=train_x, train_labels=data.train.labels,
                              validation_features=validation_x, validation_labels=data.validation.labels,
                              runtime=runtime, epochs=MAX_EPOCHS, learning_rate=learning_rate, patience=PATIENCE,
                              progress=lambda _: None)
        predict = batched_predict_function(trained.model)
        threshold = choose_threshold(data.validation.labels, predict(validation_x), SentimentDomain.threshold_rule)
        scores = predict(test_x)
        results[name] = {
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
            "learning_rate": learning_rate, "seed": seed, "parameters": int(trained.model.count_params()),
            "best_epoch": trained.best_epoch, "epochs_run": trained.epochs_run,
            "dev_accuracy": round(float(((scores >= threshold) == data.test.labels).mean()), 4),
            "dev_accuracy_at_0.5": round(float(((scores >= 0.5) == data.test.labels).mean()), 4),
            "threshold": round(float(threshold), 4), "seconds": round(time.perf_counter() - started, 1),
        }
        print(f"{name:60s} dev accuracy {results[name]['dev_accuracy']:.4f} "
              f"(at 0.5: {results[name]['dev_accuracy_at_0.5']:.4f}), best epoch {trained.best_epoch}", flush=True)
    cnn = [v["dev_accuracy"] for k, v in results.items() if k.startswith("cnn")]
    output = {
        "case": "sentiment-encoders",
        "command": "python -m benchmarks.sentiment_encoders",
        "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "data": {"train": len(data.train), "validation": len(data.validation), "test (SST-2 dev)": len(data.test),
                 "vocabulary": int(spec["vocabulary_size"]), "max_length": int(spec["max_length"])},
        "max_epochs": MAX_EPOCHS, "patience": PATIENCE, "bar": 0.82, "threshold_rule": SentimentDomain.threshold_rule,
        "best_cnn_dev_accuracy": max(cnn), "cnn_settings_reaching_bar": sum(a >= 0.82 for a in cnn),
        "dev_standard_error": round(float(np.sqrt(0.81 * 0.19 / len(data.test))), 4),
        "settings": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sentiment-encoders.json").write_text(json.dumps(output, indent=2) + "\n")


if __name__ == "__main__":
    main()
