"""Which learning rate should fine-tune magnitude pruning? Three rates on every case.

    python -m benchmarks.pruning_learning_rate                 # every case whose data is present; ~40 min
    python -m benchmarks.pruning_learning_rate --case sentiment-sst2   # re-run some, keep the others

For each case of `benchmarks.run` (same data and options), the float model is trained once
as the pipeline trains it; then the pruned_int8 variant is built at each learning rate with
the pipeline's own compression stage (75 % sparsity, 6 fine-tuning epochs, the best
validation epoch after the mask reaches its target is kept) and judged in LiteRT.
Columns: the validation PR-AUC of the kept epoch (what a pipeline can choose by, since it
has no other held-out data), and the test headline metric and accuracy (what it ships).
Writes benchmarks/results/pruning-learning-rate.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import platform
import time

from benchmarks.run import CASES, RESULTS

LEARNING_RATES = (1e-3, 3e-4, 1e-4)


def measure_case(name: str) -> dict:

    from pipeline import artifacts
    from pipeline.cli import run_config
    from pipeline.metrics import Predictions, choose_threshold
    from pipeline.registry import get_domain
    from pipeline.run import compression_job
    from pipeline.runtime import configure_runtime
    from pipeline.stages.compress import compress
    from pipeline.stages.evaluate import evaluate_variant
    from pipeline.stages.train import batched_predict_function, train_model

    case = CASES[name]
    config = run_config([case["domain"], *case["arguments"]])
    domain = get_domain(config.domain)
    config = config.with_domain_defaults(domain)
    data = domain.load(config)
    preprocessing = artifacts.json_round_trip(data.preprocessing)
    train_x, validation_x, test_x = (domain.encode(preprocessing, split.raw)
                                     for split in (data.train, data.validation, data.test))
    runtime = configure_runtime(seed=config.seed, batch_size=config.batch_size)
    model_options = domain.model_options(data, config)
    started = time.monotonic()
    trained = train_model(model_builder=domain.model_builder, input_shape=tuple(train_x.shape[1:]),
                          model_options=model_options, train_features=train_x, train_labels=data.train.labels,
                          validation_features=validation_x, validation_labels=data.validation.labels,
                          runtime=runtime, epochs=config.epochs, optimizer=domain.optimizer,
                          learning_rate=domain.learning_rate, progress=lambda line: None,
                          augmentation=domain.augmentation())
    predict = batched_predict_function(trained.model)
    threshold = choose_threshold(data.validation.labels, predict(validation_x), config.threshold_rule)
    reference = Predictions(predict(test_x), threshold)
    float_quality = domain.quality(data.test.labels, reference.scores, threshold)
    headline = domain.headline_metric
    print(f"{name}: float {headline} {float_quality[headline]:.4f} (best epoch {trained.best_epoch}, "
          f"{time.monotonic() - started:.0f} s)", flush=True)
    rates = {}
    for rate in LEARNING_RATES:
        started = time.monotonic()
        job = dataclasses.replace(
            compression_job(config, domain, data, trained, model_options=model_options, train_x=train_x,
                            validation_x=validation_x, batch_size=runtime.batch_size),
            variants=("pruned_int8",), pruning_learning_rates=(rate,))
        result = compress(job, progress=lambda line: None)["pruned_int8"]
        if result.status != "ok":
            raise SystemExit(f"{name}: pruned_int8 at learning rate {rate} {result.status}: {result.reason}")
        evaluation, _, _ = evaluate_variant(result.tflite, validation_features=validation_x,
                                         validation_labels=data.validation.labels, test_features=test_x,
                                         test_labels=data.test.labels, reference=reference, quality=domain.quality,
                                         threshold_rule=config.threshold_rule)
        tuning = result.details["fine_tuning"]
        by_epoch = tuning["validation_pr_auc_by_epoch"]
        rates[f"{rate:g}"] = {
            "kept_epoch": tuning["kept_epoch"], "validation_pr_auc_kept": by_epoch[tuning["kept_epoch"] - 1],
            "validation_pr_auc_by_epoch": by_epoch,
            f"test_{headline}": round(evaluation["quality"][headline], 4),
            "test_accuracy": round(evaluation["quality"]["accuracy"], 4),
            f"test_{headline}_drop_vs_float": round(float_quality[headline] - evaluation["quality"][headline], 4),
            "identical_decisions": evaluation["agreement"]["identical_decisions"],
            "seconds": round(time.monotonic() - started, 1),
        }
        print(f"  learning rate {rate:g}: validation PR-AUC {rates[f'{rate:g}']['validation_pr_auc_kept']:.4f} "
              f"(epoch {tuning['kept_epoch']}), test {headline} {evaluation['quality'][headline]:.4f}", flush=True)
    best_on_validation = max(rates, key=lambda rate: rates[rate]["validation_pr_auc_kept"])
    return {"domain": config.domain, "command": case["arguments"], "headline_metric": headline,
            "float": {headline: round(float_quality[headline], 4), "accuracy": round(float_quality["accuracy"], 4),
                      "best_epoch": trained.best_epoch, "epochs_run": trained.epochs_run},
            "learning_rates": rates, "best_on_validation": best_on_validation,
            "measured_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", choices=list(CASES),
                        help="run only these cases; the others keep their results from the results file")
    wanted = parser.parse_args().case or list(CASES)
    path = RESULTS / "pruning-learning-rate.json"
    results = json.loads(path.read_text())["cases"] if path.exists() else {}
    for name in wanted:
        if CASES[name]["data"] is not None and not CASES[name]["data"].exists():
            print(f"{name}: skipped, {CASES[name]['data']} is not present", flush=True)
            continue
        results[name] = measure_case(name)
        output = {"case": "pruning-learning-rate", "command": "python -m benchmarks.pruning_learning_rate",
                  "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                  "learning_rates": [f"{rate:g}" for rate in LEARNING_RATES],
                  "cases": {case: results[case] for case in CASES if case in results}}
        output["measured_utc"] = max(case["measured_utc"] for case in output["cases"].values())
        RESULTS.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(output, indent=2) + "\n")  # after every case: a long run keeps what it measured


if __name__ == "__main__":
    main()
