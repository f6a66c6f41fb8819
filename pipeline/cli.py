"""The `edgeaudit` command line.

    edgeaudit domains                       list the registered domains
    edgeaudit targets                       list the built-in device targets (--target NAME)
    edgeaudit run fraud                     the fraud domain on its embedded default data
    edgeaudit run all                       every domain on its embedded default data
    edgeaudit run fraud --data claims.csv --label FraudFound_P --sensitive Sex Age
    edgeaudit dashboard --reports reports   the audit dashboard (Streamlit on localhost)
    edgeaudit report reports/fraud/<run-id> a self-contained HTML report, written beside the run

Exit codes: 0 success, 1 crash, 2 bad input (message, no traceback), 3 gate failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from pipeline import __version__
from pipeline.config import (ALL_VARIANTS, FINE_TUNE_TARGETS, INCONCLUSIVE_POLICIES, PRUNING_LEARNING_RATES,
                             SPARSITY_ALLOCATIONS,
                             THRESHOLD_RULES, GateThresholds,
                             RunConfig)
from pipeline.console import set_verbose, verbose
from pipeline.errors import EXIT_BAD_INPUT, EXIT_CRASH, EXIT_GATE_FAILED, EXIT_OK, InputError
from pipeline.options import add_domain_arguments, given_options
from pipeline.stages.gate import verdict_label, verdict_of


def _parser(domains: dict | None = None) -> argparse.ArgumentParser:
    """The command line. `domains` ({name: Domain}): add each domain's own options to `run` (the
    domains are imported only for `run`, so that the other commands and --help stay fast)."""
    parser = argparse.ArgumentParser(
        prog="edgeaudit",
        description="Train, compress for the edge, explain and audit Keras models; one report folder per run.",
        epilog="Exit codes: 0 success, 1 crash, 2 bad input, 3 gate failed (the report is still written).",
    )
    parser.add_argument("--version", action="version", version=f"edgeaudit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("domains", help="list the registered domains and their default settings")
    targets = commands.add_parser(
        "targets", help="list the built-in device targets (RAM, flash, runtime) that --target names",
        description="The built-in device targets. A target file of your own, in the format "
                    "`edgeaudit targets --format json` prints, adds a device: edgeaudit run ... --target my-board.json")
    targets.add_argument("--format", choices=("text", "json"), default="text",
                         help="text for people; json: the targets file itself, a template for your own")

    run = commands.add_parser(
        "run", help="run the whole pipeline for one domain (or 'all')",
        description="Load data, train, compress to .tflite variants, evaluate them in LiteRT, explain with "
                    "SHAP, audit with Fairlearn, write a report folder and apply the gate.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _add_run_arguments(run, domains)
    _add_dashboard_and_report(commands)
    return parser


def _add_run_arguments(run: argparse.ArgumentParser, domains: dict | None) -> None:
    """`edgeaudit run`'s arguments, group by group; the domains' own options after the data group."""
    defaults = RunConfig(domain="")
    run.add_argument("domain", help="a domain from `edgeaudit domains`, or 'all' for every domain on its default data")
    data = run.add_argument_group("data")
    data.add_argument("--data", dest="data_path", metavar="PATH",
                      help="your own data file; without it, the domain's embedded default data is generated")
    data.add_argument("--label", dest="label_column", metavar="COLUMN",
                      help="the binary label column of --data (e.g. FraudFound_P)")
    data.add_argument("--positive-label", metavar="VALUE", default=None,
                      help="the label value (tables, texts) or class subfolder (images) that means 1, the outcome "
                           "to detect; every other value becomes 0 (one-vs-rest; the model card names the mapping). "
                           "Without it the label must hold two values")
    data.add_argument("--drop", dest="drop_columns", metavar="COLUMN", nargs="+", default=[],
                      help="tables: columns to remove before anything else, without editing the file (a column "
                           "named as a likely label leak, an identifier the tool did not recognise)")
    data.add_argument("--sensitive", dest="sensitive_columns", metavar="COLUMN", nargs="+", default=[],
                      help="columns that define the groups to audit (e.g. Sex Age); numeric ones are banded")
    data.add_argument("--max-rows", type=int, default=None,
                      help="subsample the data to this many rows (stratified) for a faster run")
    data.add_argument("--merge-small-groups", action="store_true",
                      help="tables: merge groups of your data too small to measure (under --min-group-size test rows) "
                           "into 'other', noted in the card, instead of stopping; bands EdgeAudit makes (ages, "
                           "quartiles) always merge with a neighbour")
    data.add_argument("--min-group-size", type=int, default=defaults.min_group_size,
                      help="smallest group (rows in the test split) the audit will measure")
    if domains is not None:
        add_domain_arguments(run, domains)
    _add_training_and_compression(run, defaults, domains)
    _add_analysis_and_gate(run, defaults)


def _add_training_and_compression(run: argparse.ArgumentParser, defaults: RunConfig, domains: dict | None) -> None:
    training = run.add_argument_group("training")
    training.add_argument("--epochs", type=int, default=defaults.epochs, help="largest number of training epochs "
                          "(early stopping on validation PR-AUC usually stops sooner)")
    def per_domain(attribute: str) -> str:  # " (fraud 256, sentiment 64, ...)": every domain's own value
        return (" (" + ", ".join(f"{name} {getattr(domain, attribute):g}" for name, domain in domains.items()) + ")"
                if domains else "")

    own_batch, own_sparsity = per_domain("batch_size"), per_domain("target_sparsity")
    training.add_argument("--batch-size", type=int, default=defaults.batch_size, help="training batch size on CPU "
                          f"(scaled up on a GPU); default: the domain's own{own_batch}")
    training.add_argument("--seed", type=int, default=defaults.seed, help="seed for the splits, the model's "
                          "initialisation, training and the bootstrap; each domain's default data are generated "
                          "with the domain's own fixed seed, the same in every run")
    training.add_argument("--quick", action="store_true",
                          help="smoke run: at most 4,000 rows, 5 epochs, small SHAP and bootstrap samples")
    compression = run.add_argument_group("compression")
    compression.add_argument("--variants", nargs="+", default=list(defaults.variants), choices=ALL_VARIANTS,
                             metavar="VARIANT", help=f"variants to build, among: {' '.join(ALL_VARIANTS)}")
    compression.add_argument("--target-sparsity", type=float, default=defaults.target_sparsity,
                             help="share of the prunable weights magnitude pruning sets to zero; default: the "
                                  f"domain's own{own_sparsity}")
    compression.add_argument("--sparsity-allocation", choices=SPARSITY_ALLOCATIONS,
                             default=defaults.sparsity_allocation,
                             help="how the target sparsity is spread over layers: 'sensitivity' scans each layer on "
                                  "validation and prunes the layers that miss weights least hardest; 'uniform' "
                                  "prunes every layer to the target (default %(default)s)")
    compression.add_argument("--fine-tune-epochs", type=int, default=defaults.fine_tune_epochs,
                             help="epochs of pruning / quantization-aware fine-tuning")
    compression.add_argument("--fine-tune-steps", type=int, default=defaults.fine_tune_steps,
                             help="the most fine-tuning steps in all; on a larger training split each epoch is a "
                                  "shuffled sample of it (default %(default)s)")
    compression.add_argument("--fine-tune-targets", choices=FINE_TUNE_TARGETS, default=defaults.fine_tune_targets,
                             help="what pruning and quantization-aware fine-tuning fit: 'training', what the float "
                                  "model was trained on (its rows, synthetic ones included, its targets, a teacher's "
                                  "mix included, its weights and its loss); 'labels', the train rows' labels with "
                                  "class-weighted binary cross-entropy; 'float_model', the float model's own scores "
                                  "on the train rows (self-distillation) (default %(default)s)")
    compression.add_argument("--pruning-learning-rate", type=float, default=None,
                             help="learning rate of the fine-tuning that prunes (default: try "
                                  f"{' and '.join(f'{rate:g}' for rate in PRUNING_LEARNING_RATES)}, "
                                  "keep the better on validation; of two provably within 0.005 "
                                  "PR-AUC, the one ranking rows most like the float model)")
    compression.add_argument("--quantization-aware-learning-rate", type=float,
                             default=defaults.quantization_aware_learning_rate,
                             help="learning rate of quantization-aware fine-tuning")
    compression.add_argument("--per-channel-dense", action="store_true",
                             help="per-channel int8 scales for Dense layers in post-training int8 "
                                  "(default per-tensor, as QAT uses: smaller files)")
    compression.add_argument("--ship", dest="ship_variant", default=defaults.ship_variant, metavar="VARIANT",
                             help="the variant meant for devices, explained and judged by the gate: 'auto' ships "
                                  "the first variant (smallest flash, then latency) that fits every --target and "
                                  "passes every gate check on the validation split; a variant name ships that one")
    compression.add_argument("--target", dest="targets", action="append", default=[], metavar="NAME|FILE",
                             help="a device the shipped variant must fit (repeatable): a built-in target from "
                                  "`edgeaudit targets`, or a JSON file in the same format; default: none (any "
                                  "variant LiteRT runs)")


def _add_analysis_and_gate(run: argparse.ArgumentParser, defaults: RunConfig) -> None:
    gate_defaults = GateThresholds()
    evaluation = run.add_argument_group("evaluation")
    evaluation.add_argument("--threshold-rule", choices=list(THRESHOLD_RULES), default=None,
                            help="how each model's decision threshold is chosen on the validation split: "
                                 + "; ".join(f"{name}: {what}" for name, what in THRESHOLD_RULES.items())
                                 + " (default: the domain's rule, see `edgeaudit domains`)")
    evaluation.add_argument("--latency-runs", type=int, default=defaults.latency_runs,
                            help="single-example LiteRT calls timed per variant (the median is reported)")
    evaluation.add_argument("--representative-rows", type=int, default=defaults.representative_rows,
                            help="training rows that calibrate full-integer quantization")
    analysis = run.add_argument_group("explanation and audit")
    analysis.add_argument("--explain-rows", type=int, default=defaults.explain_rows,
                          help="test rows explained with SHAP per model")
    analysis.add_argument("--background-rows", type=int, default=defaults.background_rows,
                          help="training rows SHAP uses as its background")
    analysis.add_argument("--local-examples", type=int, default=defaults.local_examples,
                          help="test rows whose explanation is drawn one by one")
    analysis.add_argument("--min-explanation-agreement", type=float, default=defaults.min_explanation_agreement,
                          metavar="R", help="flag a group whose SHAP importance ranks under this Spearman correlation "
                                            "with the float model's (default %(default)s)")
    analysis.add_argument("--bootstrap-samples", type=int, default=defaults.bootstrap_samples,
                          help="bootstrap resamples for the audit's 95%% intervals")
    gate = run.add_argument_group("gate")
    gate.add_argument("--max-quality-drop", type=float, default=gate_defaults.max_quality_drop,
                      help="largest drop of the headline metric (shipped variant vs float)")
    gate.add_argument("--max-equalized-odds-difference", type=float,
                      default=gate_defaults.max_equalized_odds_difference,
                      help="largest equalized-odds difference of the shipped variant, per sensitive column")
    gate.add_argument("--max-gap-widening", type=float, default=gate_defaults.max_gap_widening,
                      help="largest widening of a TPR/FPR gap between groups caused by compression")
    gate.add_argument("--min-positives-per-group", type=int, default=gate_defaults.min_positives_per_group,
                      help="fewer positives (or negatives) than this in a group make its equalized-odds "
                           "check inconclusive")
    gate.add_argument("--inconclusive", choices=INCONCLUSIVE_POLICIES, default=gate_defaults.inconclusive,
                      help="how an inconclusive check (its interval straddles the limit, or a group has too "
                           "few positives) counts for the exit code")
    cluster = run.add_argument_group("several machines (tf.distribute.MultiWorkerMirroredStrategy)")
    cluster.add_argument("--workers", default=None, metavar="HOST:PORT,HOST:PORT",
                         help="every worker's address, the same list on every machine; without it, TF_CONFIG "
                              "set by a cluster manager is used if present")
    cluster.add_argument("--worker-index", type=int, default=None, metavar="I",
                         help="this machine's position in --workers; 0 is the chief, the only one that writes "
                              "the report")
    output = run.add_argument_group("output")
    output.add_argument("--out", dest="output_dir", default=defaults.output_dir, metavar="DIR",
                        help="reports folder; each run goes to DIR/<domain>/<run-id>/")
    output.add_argument("--verbose", action="store_true",
                        help="also show the frameworks' own log lines (TensorFlow's C++ start-up messages, "
                             "LiteRT's delegate notes), hidden by default; same as EDGEAUDIT_VERBOSE=1")


def _add_dashboard_and_report(commands) -> None:
    defaults = RunConfig(domain="")
    dashboard = commands.add_parser(
        "dashboard", help="open the audit dashboard over a reports folder (Streamlit, on localhost)",
        description="Start the Streamlit dashboard, headless, on 127.0.0.1, over every run in the reports folder. "
                    "It only reads run folders: nothing in it trains or converts. Ctrl+C stops it.")
    dashboard.add_argument("--reports", default=defaults.output_dir, metavar="DIR",
                           help="the reports folder, what `edgeaudit run --out` wrote "
                                f"(default: {defaults.output_dir})")
    dashboard.add_argument("--port", type=int, default=None,
                           help="port on 127.0.0.1 (default: 8501, or the next free port)")

    report = commands.add_parser(
        "report", help="write the self-contained HTML report of one run",
        description="Verify a finished run against its manifest and write one HTML file holding its summary, "
                    "model card and plots (embedded): it opens in any browser, without a server.")
    report.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder, e.g. reports/fraud/<run-id>")
    report.add_argument("--output", "-o", metavar="PATH", default=None,
                        help="where to write the HTML (default: RUN_DIR.html beside the run folder; never inside "
                             "it, since a finished run holds exactly what its manifest lists)")


def _config(arguments: argparse.Namespace, domain: str, *, own_options_only: bool = False) -> RunConfig:
    """The validated RunConfig of one domain. own_options_only (`run all`): drop the domain options
    this domain does not declare (--window reaches maintenance only) instead of refusing them."""
    options = given_options(arguments)
    if own_options_only:
        from pipeline.registry import get_domain

        declared = {option.name for option in get_domain(domain).options}
        options = {name: value for name, value in options.items() if name in declared}
    config = RunConfig(
        domain=domain, data_path=arguments.data_path, label_column=arguments.label_column,
        sensitive_columns=tuple(arguments.sensitive_columns), output_dir=arguments.output_dir,
        positive_label=arguments.positive_label, drop_columns=tuple(arguments.drop_columns),
        merge_small_groups=arguments.merge_small_groups,
        epochs=arguments.epochs, batch_size=arguments.batch_size, seed=arguments.seed,
        max_rows=arguments.max_rows, variants=tuple(arguments.variants), options=options,
        target_sparsity=arguments.target_sparsity, fine_tune_epochs=arguments.fine_tune_epochs,
        fine_tune_steps=arguments.fine_tune_steps, fine_tune_targets=arguments.fine_tune_targets,
        sparsity_allocation=arguments.sparsity_allocation,
        pruning_learning_rate=arguments.pruning_learning_rate,
        quantization_aware_learning_rate=arguments.quantization_aware_learning_rate, per_channel_dense=arguments.per_channel_dense,
        ship_variant=arguments.ship_variant, targets=tuple(arguments.targets), threshold_rule=arguments.threshold_rule,
        explain_rows=arguments.explain_rows, background_rows=arguments.background_rows,
        local_examples=arguments.local_examples, latency_runs=arguments.latency_runs,
        min_explanation_agreement=arguments.min_explanation_agreement,
        representative_rows=arguments.representative_rows,
        bootstrap_samples=arguments.bootstrap_samples, min_group_size=arguments.min_group_size,
        gate=GateThresholds(max_quality_drop=arguments.max_quality_drop,
                            max_equalized_odds_difference=arguments.max_equalized_odds_difference,
                            max_gap_widening=arguments.max_gap_widening,
                            min_positives_per_group=arguments.min_positives_per_group,
                            inconclusive=arguments.inconclusive),
        workers=_worker_addresses(arguments.workers),
        worker_index=arguments.worker_index,
    )
    return (config.quick_version() if arguments.quick else config).validate()


def _worker_addresses(text: str | None) -> tuple[str, ...]:
    """--workers HOST:PORT,HOST:PORT as a tuple; a list with nothing in it, or an empty item, is refused."""
    if text is None:
        return ()
    items = [item.strip() for item in text.split(",")]
    example = "--workers 10.0.0.1:2222,10.0.0.2:2222"
    if not any(items):
        raise InputError(f"--workers {text!r} names no worker",
                         fix=f"give every worker's HOST:PORT, separated by commas, e.g. {example}; leave "
                             "--workers out to train on this machine alone")
    empty = [str(position) for position, item in enumerate(items, start=1) if not item]
    if empty:
        raise InputError(f"--workers {text!r} has an empty address at position {', '.join(empty)} of {len(items)}",
                         fix=f"remove the extra comma, so that every item is a HOST:PORT, e.g. {example}")
    return tuple(items)


def run_config(argv: list[str]) -> RunConfig:
    """The validated RunConfig that `edgeaudit run ARGV...` would use for its one domain."""
    arguments = _parser(_all_domains()).parse_args(["run", *argv])
    return _config(arguments, arguments.domain)


def _all_domains() -> dict:
    from pipeline.registry import all_domains_by_name

    return all_domains_by_name()


def _command(argv: list[str]) -> str | None:
    """The command word of a command line (the first item that is not an option)."""
    return next((item for item in argv if not item.startswith("-")), None)


def _list_domains() -> int:
    from pipeline.registry import all_domains

    for domain in all_domains():
        print(f"{domain.name:14s} {domain.title}")
        print(f"{'':14s} {domain.description}")
        print(f"{'':14s} modality {domain.modality}; headline metric {domain.headline_metric}; "
              f"threshold rule {domain.threshold_rule}; "
              + (f"default label {domain.default_label}; groups {', '.join(domain.default_sensitive)}"
                 if domain.has_default_data else "no default data: needs --data, --label and --sensitive"))
        for option in domain.options:
            default = option.default_value()
            print(f"{'':14s} {option.command_line}: {option.help}"
                  + ("" if default in (None, False) else f" (default {default})"))
    return EXIT_OK


def _list_targets(arguments: argparse.Namespace) -> int:
    from pipeline.targets import TARGETS_FILE, builtin_targets, describe_targets

    if arguments.format == "json":
        print(TARGETS_FILE.read_text(encoding="utf-8"), end="")
    else:
        print(describe_targets(list(builtin_targets().values())))
    return EXIT_OK


def _run(arguments: argparse.Namespace) -> int:
    from pipeline.registry import default_data_domain_names, get_domain

    if arguments.domain == "all":
        for option, value in (("--data", arguments.data_path),
                              ("--cluster-column", given_options(arguments).get("cluster_column")),
                              ("--positive-label", arguments.positive_label), ("--drop", arguments.drop_columns)):
            if value:
                raise InputError(f"{option} cannot be used with 'all': each domain reads a different kind of data",
                                 fix=f"run one domain at a time with {option}, or drop {option} to use the default data")
        # every domain with default data (`tabular` reads only the user's table)
        names = default_data_domain_names()
    else:
        get_domain(arguments.domain)  # unknown name -> InputError listing the valid ones
        names = [arguments.domain]
    # validate every option before any work
    configs = [_config(arguments, name, own_options_only=arguments.domain == "all") for name in names]

    from pipeline.run import check_before_work, run_pipeline

    if arguments.domain != "all":
        print(_heading(configs[0]), flush=True)
        return _report_outcome(run_pipeline(configs[0]))  # checks --out and the cluster before loading
    check_before_work(configs[0])  # once for every domain: one error, not one per domain
    # Every domain on its default data: one domain's failure does not stop the others, gate
    # verdicts are findings (exit 0), and one table at the end says how each run ended.
    rows, exit_code = [], EXIT_OK
    for config in configs:
        print(_heading(config), flush=True)
        try:
            outcome = run_pipeline(config)
        except InputError as error:
            print(f"edgeaudit: error: {config.domain}: {error}", file=sys.stderr, flush=True)
            rows.append((config.domain, "BAD INPUT", "", str(error).splitlines()[0]))
            exit_code = exit_code or EXIT_BAD_INPUT
            continue
        except Exception as error:  # noqa: BLE001 - reported, and the other domains still run
            traceback.print_exc()
            rows.append((config.domain, "CRASHED", "", f"{type(error).__name__}: {error}".splitlines()[0]))
            exit_code = EXIT_CRASH
            continue
        _report_outcome(outcome)
        rows.append(_summary_row(config.domain, outcome))
    print(_summary_table(rows))
    return exit_code


def _heading(config: RunConfig) -> str:
    return f"== {config.domain}{' (quick)' if config.quick else ''} =="


def _report_outcome(outcome) -> int:
    """Print how one run ended; its exit code (3 when the gate failed)."""
    if outcome.run_dir is None:  # a worker other than the chief
        print(f"Worker {outcome.manifest['worker']} done: trained with {outcome.manifest['replicas_in_sync']} "
              f"replicas; weights fingerprint {outcome.manifest['weights_fingerprint']}. "
              f"The chief (worker 0) writes the report.")
        return EXIT_OK
    print(_gate_summary(outcome.gate))
    print(f"Report: {outcome.run_dir}")
    if outcome.manifest.get("distributed"):
        print(f"Trained on {len(outcome.manifest['distributed']['workers'])} workers; weights fingerprint "
              f"{outcome.manifest['distributed']['weights_fingerprint']}")
    return EXIT_OK if outcome.gate["passed"] else EXIT_GATE_FAILED


def _summary_row(domain: str, outcome) -> tuple[str, str, str, str]:
    if outcome.run_dir is None:
        return domain, "worker", "", "trained; the chief writes the report"
    gate = outcome.gate
    failed = [check["explanation"] for check in gate["checks"] if not check["passed"]]
    why = "; ".join(failed) if failed else f"all {len(gate['checks'])} checks passed"
    return domain, verdict_label(gate, gate=True), _shown_path(outcome.run_dir), why


def _shown_path(path) -> str:
    """The run folder relative to the working directory when it lies below it, else absolute."""
    from pathlib import Path

    absolute = Path(path).resolve()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _summary_table(rows: list[tuple[str, str, str, str]]) -> str:
    """One line per domain: domain, gate verdict (or how it failed), run folder, why."""
    headers = ("domain", "gate", "run folder", "why")
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(3)]
    finished = sum(1 for row in rows if row[1] in ("PASSED", "FAILED", "worker") or row[1].startswith("INCONCLUSIVE"))
    lines = ["", f"Summary: {finished} of {len(rows)} runs finished. A failed gate is a finding about that "
                 "model, written into its report; it does not stop the other domains."]
    for row in [headers, *rows]:
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths)) + "  " + row[3])
    return "\n".join(lines)


def _gate_summary(gate: dict) -> str:
    lines = [f"Gate {verdict_label(gate, gate=True)} for the shipped variant {gate['ship_variant']}:"]
    for check in gate["checks"]:
        mark = {"pass": "ok", "fail": "FAIL", "inconclusive": "??"}[verdict_of(check)]
        lines.append(f"  [{mark}] {check['explanation']}")
    if verdict_of(gate) == "inconclusive":
        lines.append(f"  (inconclusive counts as {'passed' if gate['passed'] else 'failed'}: "
                     f"--inconclusive {gate.get('inconclusive_counts_as', 'fail')})")
    return "\n".join(lines)


def _free_port(start: int = 8501, attempts: int = 100) -> int:
    import socket

    for port in range(start, start + attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise InputError(f"no free port between {start} and {start + attempts - 1} on 127.0.0.1",
                     fix="pass a free port with --port")


def _dashboard(arguments: argparse.Namespace) -> int:
    from pathlib import Path

    from pipeline.reports_index import find_run_folders

    reports = Path(arguments.reports).resolve()
    if not reports.is_dir():
        raise InputError(f"there is no reports folder at {reports}",
                         fix="write a run first (`edgeaudit run fraud`), or pass --reports DIR with the folder "
                             "`edgeaudit run --out DIR` wrote")
    if arguments.port is not None and not 1 <= arguments.port <= 65535:
        raise InputError(f"--port is {arguments.port}", fix="pass a port between 1 and 65535")
    app = Path(__file__).resolve().parent.parent / "apps" / "dashboard.py"
    if not app.is_file():
        raise InputError(f"the dashboard app is not at {app}",
                         fix="install EdgeAudit from its source folder (`pip install -e .` or `make test`)")
    port = arguments.port or _free_port()
    folders = find_run_folders(reports)
    os.environ["EDGEAUDIT_REPORTS"] = str(reports)
    print(f"EdgeAudit dashboard over {reports} ({len(folders)} run folder(s))", flush=True)
    print(f"  Open http://127.0.0.1:{port}  (Ctrl+C to stop)", flush=True)

    from streamlit.web import cli as streamlit_cli

    result = streamlit_cli.main(
        args=["run", str(app), "--server.headless", "true", "--server.address", "127.0.0.1",
              "--server.port", str(port), "--browser.gatherUsageStats", "false",
              "--server.fileWatcherType", "none", "--server.runOnSave", "false",
              "--client.toolbarMode", "minimal"],
        prog_name="streamlit", standalone_mode=False)
    return result if isinstance(result, int) else EXIT_OK


def _report(arguments: argparse.Namespace) -> int:
    from pipeline.static_report import write_report

    target = write_report(arguments.run_dir, arguments.output)
    print(f"Report: {target} ({target.stat().st_size / 1024:,.0f} KB, self-contained HTML)")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    arguments = _parser(_all_domains() if _command(argv) == "run" else None).parse_args(argv)
    set_verbose(getattr(arguments, "verbose", False) or verbose())
    try:
        if arguments.command == "domains":
            return _list_domains()
        if arguments.command == "targets":
            return _list_targets(arguments)
        if arguments.command == "run":
            return _run(arguments)
        if arguments.command == "dashboard":
            return _dashboard(arguments)
        if arguments.command == "report":
            return _report(arguments)
    except InputError as error:
        print(f"edgeaudit: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("edgeaudit: interrupted; the unfinished run was removed", file=sys.stderr)
        return 130
    raise AssertionError(f"unhandled command {arguments.command}")


if __name__ == "__main__":
    sys.exit(main())
