"""Run configuration: flat, frozen, validated in one place.

Every option of `edgeaudit run` maps to one field here. `RunConfig.validate()` is the
only place option values are checked; it raises InputError naming the option and the fix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from pipeline.errors import InputError

# Every compression variant, in the order they are produced and reported.
# "float32" is the unquantized .tflite; the others are compressed variants.
ALL_VARIANTS: tuple[str, ...] = (
    "float32",
    "dynamic_range",
    "float16",
    "int8",
    "selective_int8",
    "pruned_int8",
    "qat_int8",
    "pqat_int8",
)

# How a model's decision threshold is chosen on the validation split, by rule name
# (pipeline.metrics.choose_threshold applies them).
THRESHOLD_RULES: dict[str, str] = {
    "f1": "maximise F1 (fits rare positives: the alarms that matter, few false ones)",
    "accuracy": "maximise accuracy (fits balanced classes whose two errors cost the same)",
    "youden": "maximise Youden's J = sensitivity + specificity - 1 (weighs the two error rates equally, "
              "whatever the class balance)",
}


# Name under which the Keras (float, unconverted) model appears next to the variants.
FLOAT_MODEL = "keras_float"

# The learning rates the pruning fine-tune tries, unless --pruning-learning-rate names one: each
# prunes its own copy and the best on validation is kept (pipeline/stages/validation_choice.py).
PRUNING_LEARNING_RATES: tuple[float, ...] = (1e-3, 1e-4)
# How --target-sparsity is spread over the pruned layers (pipeline/stages/pruning_sensitivity.py).
SPARSITY_ALLOCATIONS: tuple[str, ...] = ("sensitivity", "uniform")
# What fine-tuning (pruning, QAT, PQAT) fits: what the float model was trained on (its rows, targets, weights and
# loss), the labels alone, or the float model's own scores on the training rows (self-distillation)
# (pipeline/run.py `compression_job`, pipeline/stages/variant_builder.py `_fine_tuning_targets`).
FINE_TUNE_TARGETS: tuple[str, ...] = ("training", "labels", "float_model")


@dataclass(frozen=True)
class GateThresholds:
    """Limits a run must respect; a run outside them fails the gate (exit code 3)."""

    # Largest allowed drop of the domain's headline metric (e.g. PR-AUC), shipped
    # variant vs the float Keras model, on the test split.
    max_quality_drop: float = 0.01
    # Largest allowed equalized-odds difference of the shipped variant, per sensitive column.
    max_equalized_odds_difference: float = 0.30
    # Largest allowed widening, by compression, of a between-group gap (TPR or FPR
    # difference between the best and worst group), shipped variant vs float.
    max_gap_widening: float = 0.05
    # Fewer positives than this in a group (or negatives, for its FPR) and its equalized-odds
    # check is inconclusive: benchmarks/interval_coverage.py measured the gap's 95 % interval
    # covering only 86 % of the time at about 15 positives a group.
    min_positives_per_group: int = 20
    # How an inconclusive check counts for the exit code: "fail" (the default) or "pass".
    inconclusive: str = "fail"


INCONCLUSIVE_POLICIES = ("fail", "pass")


# --quick: batches of at most this many rows, so that little data still gives enough steps.
QUICK_MAX_BATCH_SIZE = 64


@dataclass(frozen=True)
class RunConfig:
    domain: str
    data_path: str | None = None
    label_column: str | None = None
    # The label value (tables, texts) or class subfolder (images) that means 1; every other value
    # is 0 (one-vs-rest). None: the label must be binary (each domain's own rule).
    positive_label: str | None = None
    # Columns removed from a table before anything else (--drop): a leak, a column not to use.
    drop_columns: tuple[str, ...] = ()
    # Merge the user's own groups too small to measure into "other" (bands the tool made always merge).
    merge_small_groups: bool = False
    sensitive_columns: tuple[str, ...] = ()
    output_dir: str = "reports"
    epochs: int = 30
    batch_size: int | None = None         # None: the domain's own (Domain.batch_size), filled in by run_pipeline
    seed: int = 0
    quick: bool = False
    # Subsample the loaded data to at most this many rows (stratified); None keeps all.
    max_rows: int | None = None
    # The domain's own options, {name: value}, as each domain declares them (Domain.options,
    # pipeline.options); read with option(name). with_domain_defaults fills in every default.
    options: dict = field(default_factory=dict)
    # Compression
    variants: tuple[str, ...] = ALL_VARIANTS
    target_sparsity: float | None = None  # None: the domain's (Domain.target_sparsity)
    # How the target sparsity is spread over layers: "sensitivity" (a scan on validation) or "uniform".
    sparsity_allocation: str = "sensitivity"
    fine_tune_epochs: int = 6
    # Fine-tuning (pruning, QAT, PQAT) runs at most this many steps in all: on a large training split each
    # epoch is a fresh shuffled sample of it, not a pass over every row.
    fine_tune_steps: int = 6000
    fine_tune_targets: str = "training"   # one of FINE_TUNE_TARGETS
    # None: try each of PRUNING_LEARNING_RATES, keep the best on validation (validation_choice.py)
    pruning_learning_rate: float | None = None
    quantization_aware_learning_rate: float = 1e-4
    representative_rows: int = 200
    per_channel_dense: bool = False
    # The variant meant for devices: "auto" chooses it on the validation split (pipeline.stages.deploy),
    # a variant name ships that one.
    ship_variant: str = "auto"
    # Device targets the shipped variant must fit: built-in names (pipeline/targets.json) or target files.
    targets: tuple[str, ...] = ()
    # Evaluation
    latency_runs: int = 200
    # How decision thresholds are chosen on validation (pipeline.metrics.THRESHOLD_RULES);
    # None: the domain's own rule, which run_pipeline fills in.
    threshold_rule: str | None = None
    # Explanation
    explain_rows: int = 100
    background_rows: int = 100
    local_examples: int = 5
    # A group whose SHAP importance ranks under this Spearman correlation with the float model's is flagged
    # (pipeline/stages/explanation_drift.py).
    min_explanation_agreement: float = 0.8
    # Audit
    bootstrap_samples: int = 200
    min_group_size: int = 20
    gate: GateThresholds = field(default_factory=GateThresholds)
    # Multi-worker training: every worker's HOST:PORT and this process's index (0 = chief).
    # Empty: single process, unless TF_CONFIG is set by a cluster manager.
    workers: tuple[str, ...] = ()
    worker_index: int | None = None

    def validate(self) -> "RunConfig":
        def positive(name: str, value: int | None, minimum: int = 1) -> None:
            if value is not None and value < minimum:
                raise InputError(
                    f"option --{name.replace('_', '-')} is {value}, expected at least {minimum}",
                    fix=f"pass --{name.replace('_', '-')} {minimum} or more",
                )

        for name in ("epochs", "batch_size", "fine_tune_epochs", "fine_tune_steps", "representative_rows",
                     "explain_rows", "background_rows", "bootstrap_samples", "min_group_size"):
            positive(name, getattr(self, name))
        positive("latency_runs", self.latency_runs, 200)
        positive("max_rows", self.max_rows, 100)
        positive("local_examples", self.local_examples, 0)
        self._check_domain_options()
        for name, example in (("pruning_learning_rate", 1e-3), ("quantization_aware_learning_rate", 1e-4)):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1.0:
                option = "--" + name.replace("_", "-")
                raise InputError(f"option {option} is {value}, expected a value between 0 and 1",
                                 fix=f"pass for example {option} {example:g}")
        if not -1.0 <= self.min_explanation_agreement <= 1.0:
            raise InputError(f"option --min-explanation-agreement is {self.min_explanation_agreement}, expected a "
                             "rank correlation between -1 and 1", fix="pass for example --min-explanation-agreement 0.8")
        if self.target_sparsity is not None and not 0.0 < self.target_sparsity < 1.0:
            raise InputError(
                f"option --target-sparsity is {self.target_sparsity}, expected a fraction between 0 and 1",
                fix="pass for example --target-sparsity 0.75",
            )
        if self.fine_tune_targets not in FINE_TUNE_TARGETS:
            raise InputError(f"option --fine-tune-targets is {self.fine_tune_targets!r}, expected one of "
                             f"{', '.join(FINE_TUNE_TARGETS)}", fix="pass --fine-tune-targets training")
        if self.sparsity_allocation not in SPARSITY_ALLOCATIONS:
            raise InputError(f"option --sparsity-allocation is {self.sparsity_allocation!r}, expected one of "
                             f"{', '.join(SPARSITY_ALLOCATIONS)}", fix="pass --sparsity-allocation sensitivity")
        if self.threshold_rule is not None and self.threshold_rule not in THRESHOLD_RULES:
            raise InputError(f"option --threshold-rule is {self.threshold_rule!r}, expected one of "
                             f"{', '.join(THRESHOLD_RULES)}",
                             fix="pass for example --threshold-rule accuracy (or leave it out for the domain's rule)")
        unknown = [v for v in self.variants if v not in ALL_VARIANTS]
        if unknown:
            raise InputError(
                f"unknown variant(s) {', '.join(map(repr, unknown))}",
                fix=f"choose among: {', '.join(ALL_VARIANTS)}",
            )
        if self.ship_variant != "auto" and self.ship_variant not in self.variants:
            raise InputError(
                f"the variant to ship, {self.ship_variant!r}, is not among the variants built "
                f"({', '.join(self.variants)})",
                fix="add it to --variants, choose another with --ship, or leave --ship out (auto: chosen on "
                    "the validation split)",
            )
        from pipeline.targets import resolve_targets

        resolve_targets(self.targets)  # a name that is not built in, or a bad target file: InputError
        for name in ("max_quality_drop", "max_equalized_odds_difference", "max_gap_widening"):
            value = getattr(self.gate, name)
            if value < 0:
                raise InputError(f"gate threshold {name} is {value}, expected ≥ 0",
                                 fix=f"pass a non-negative --{name.replace('_', '-')}")
        positive("min_positives_per_group", self.gate.min_positives_per_group)
        if self.gate.inconclusive not in INCONCLUSIVE_POLICIES:
            raise InputError(f"option --inconclusive is {self.gate.inconclusive!r}, expected one of "
                             f"{', '.join(INCONCLUSIVE_POLICIES)}", fix="pass --inconclusive fail or --inconclusive pass")
        return self

    def _check_domain_options(self) -> None:
        """Every option given is one this domain declares, with an allowed value (a registered
        domain only: a config for an unknown domain fails where the domain is looked up)."""
        from pipeline.options import check_options, declared_options
        from pipeline.registry import all_domains_by_name, domain_names, get_domain

        if self.domain not in domain_names():
            return
        if self.drop_columns and not get_domain(self.domain).reads_tables:
            raise InputError(f"--drop removes columns of a table; the {self.domain} domain does not read tables",
                             fix="leave --drop out (it applies to tabular, fraud and maintenance's per-reading tables)")
        if not self.options:
            return
        domains = all_domains_by_name()
        check_options(self.domain, domains[self.domain], self.options, declared_options(domains))

    def option(self, name: str):
        """The value in force of the domain's option `name`: the one given, else the domain's default."""
        if name in self.options:
            return self.options[name]
        from pipeline.registry import get_domain

        for option in get_domain(self.domain).options:
            if option.name == name:
                return option.default_value()
        raise KeyError(f"the {self.domain} domain declares no option {name!r}")

    def with_domain_defaults(self, domain) -> "RunConfig":
        """Fill the options left to the domain (None) with the domain's own choice, so that
        every stage reads the value in force from the config, and the manifest records it."""
        from pipeline.options import options_in_force

        batch_size = domain.batch_size if self.batch_size is None else self.batch_size
        return dataclasses.replace(
            self, threshold_rule=domain.threshold_rule if self.threshold_rule is None else self.threshold_rule,
            batch_size=min(batch_size, QUICK_MAX_BATCH_SIZE) if self.quick else batch_size,
            target_sparsity=domain.target_sparsity if self.target_sparsity is None else self.target_sparsity,
            options=options_in_force(domain, self.options))

    def pruning_learning_rates(self) -> tuple[float, ...]:
        """The learning rates the pruning fine-tune tries: the one given, or every candidate."""
        return PRUNING_LEARNING_RATES if self.pruning_learning_rate is None else (self.pruning_learning_rate,)

    def quick_version(self) -> "RunConfig":
        """A smoke-run version: little data, short training, small statistics; the same stages."""
        return dataclasses.replace(
            self,
            quick=True,
            # Few rows and epochs (the batch size is capped in with_domain_defaults, once the
            # domain's own is known).
            epochs=min(self.epochs, 5),
            max_rows=self.max_rows or 4000,
            fine_tune_epochs=2,
            representative_rows=min(self.representative_rows, 100),
            explain_rows=min(self.explain_rows, 20),
            background_rows=min(self.background_rows, 30),
            local_examples=min(self.local_examples, 3),
            bootstrap_samples=min(self.bootstrap_samples, 50),
        )

    def to_json(self) -> dict:
        return dataclasses.asdict(self)
