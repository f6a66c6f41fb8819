"""The Python API, for notebooks: one call runs a domain's whole pipeline, as `edgeaudit run` does.

    from pipeline import run_domain
    result = run_domain("fraud", table, label="is_fraud", sensitive=["sex", "age"], quick=True)
    result            # in Jupyter: the gate's verdict, the shipped variant, quality, failed checks
    result.gate["verdict"], result.metrics, result.audit, result.run_dir

The options are the command line's, spelled as Python names: every field of `RunConfig`
(`epochs`, `seed`, `variants`, `ship_variant`, `targets`, ...), the gate's limits
(`max_quality_drop`, `max_equalized_odds_difference`, `max_gap_widening`,
`min_positives_per_group`, `inconclusive`) and the domain's own options (`window`,
`text_column`, ... as `edgeaudit domains` lists them). The checks and errors are the CLI's.

A table given as a pandas DataFrame is saved once as CSV under `<out>/inputs/` (named by its
SHA-256) and the run reads that file, so its manifest names a file that stays, and the same
run can be repeated from the command line (`result.command`).
"""

from __future__ import annotations

import dataclasses
import html
import os
import shlex
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from pipeline import artifacts
from pipeline.config import GateThresholds, RunConfig
from pipeline.errors import InputError

# Domains whose --data is a table (a CSV file): a DataFrame can stand in for it.
TABLE_DOMAINS = ("tabular", "fraud", "sentiment", "maintenance")
_GATE_FIELDS = {field.name for field in dataclasses.fields(GateThresholds)}
_CONFIG_FIELDS = {field.name for field in dataclasses.fields(RunConfig)} - {"domain", "gate", "options"}
# Python names that differ from RunConfig's, for the words the command line uses.
_ALIASES = {"data": "data_path", "label": "label_column", "sensitive": "sensitive_columns", "out": "output_dir",
            "ship": "ship_variant", "target": "targets", "drop": "drop_columns"}


@dataclass(frozen=True)
class RunResult:
    """A finished run: its folder and what it found. metrics, audit, deployment: the run's JSON files."""

    run_dir: Path
    manifest: dict
    gate: dict
    config: RunConfig

    def _json(self, name: str) -> dict:
        import json

        path = self.run_dir / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @cached_property
    def metrics(self) -> dict:
        return self._json(artifacts.METRICS)

    @cached_property
    def audit(self) -> dict:
        return self._json(artifacts.AUDIT)

    @cached_property
    def deployment(self) -> dict:
        return self._json(artifacts.DEPLOYMENT)

    @property
    def ship_variant(self) -> str:
        return self.gate.get("ship_variant") or self.manifest.get("ship_variant")

    @property
    def passed(self) -> bool:
        return self.gate.get("passed") is True

    @property
    def verdict(self) -> str:
        from pipeline.stages.gate import verdict_label

        return verdict_label(self.gate, gate=True)

    @property
    def failed_checks(self) -> list[dict]:
        from pipeline.stages.gate import verdict_of

        return [check for check in self.gate.get("checks") or [] if isinstance(check, dict) and verdict_of(check) != "pass"]

    @property
    def command(self) -> str:
        """The `edgeaudit run` command line that repeats this run."""
        return command_line(self.config)

    def summary(self) -> dict:
        """The headline numbers: domain, verdict, shipped variant, headline metric of float and shipped."""
        headline = self.metrics.get("headline_metric") or self.manifest.get("headline_metric")
        float_quality = ((self.metrics.get("keras_float") or {}).get("quality") or {}).get(headline)
        shipped = (((self.metrics.get("variants") or {}).get(self.ship_variant) or {}).get("quality") or {})
        return {"domain": self.manifest.get("domain"), "run_dir": str(self.run_dir), "verdict": self.verdict,
                "ship_variant": self.ship_variant, "headline_metric": headline, "float": float_quality,
                "shipped": shipped.get(headline), "failed_checks": [check.get("name") for check in self.failed_checks]}

    def __repr__(self) -> str:
        summary = self.summary()
        return (f"RunResult({summary['domain']}: gate {summary['verdict']}, ships {summary['ship_variant']}, "
                f"{summary['headline_metric']} {_number(summary['float'])} float -> {_number(summary['shipped'])} "
                f"shipped; {self.run_dir})")

    def _repr_html_(self) -> str:
        """Jupyter's view: a short table, then each check that did not pass with its explanation."""
        summary = self.summary()
        escape = html.escape
        rows = [("domain", summary["domain"]), ("gate", summary["verdict"]), ("ships", summary["ship_variant"]),
                (f"{summary['headline_metric']}: float / shipped",
                 f"{_number(summary['float'])} / {_number(summary['shipped'])}"),
                ("run folder", summary["run_dir"]), ("repeat with", self.command)]
        table = "".join(f"<tr><th style=\"text-align:left\">{escape(str(key))}</th><td><code>{escape(str(value))}"
                        "</code></td></tr>" for key, value in rows)
        from pipeline.stages.gate import verdict_of

        checks = "".join(f"<li><b>{escape(str(check.get('name')))}</b> ({escape(verdict_of(check))}): "
                         f"{escape(str(check.get('explanation') or ''))}</li>" for check in self.failed_checks)
        return (f"<div><table>{table}</table>"
                + (f"<p>Checks that did not pass:</p><ul>{checks}</ul>" if checks else "<p>Every check passed.</p>")
                + f"<p>Open it in the dashboard: <code>edgeaudit dashboard --reports "
                  f"{escape(str(Path(self.config.output_dir)))}</code></p></div>")


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "n/a"


def run_config_for(domain: str, data: Any = None, **options: Any) -> RunConfig:
    """The validated RunConfig that `run_domain(domain, data, **options)` runs (no work done, no file written)."""
    return _config(domain, data, options, write_table=False)


def run_domain(domain: str, data: Any = None, **options: Any) -> RunResult:
    """Run one domain end to end and return what it found; see the module's docstring for the options.

    data: None (the domain's embedded default data), a path (str or Path: what --data takes), or,
    for the table domains (fraud, sentiment, maintenance), a pandas DataFrame.
    quick=True: the smoke run of `--quick`. progress=False silences the stage lines.
    Raises InputError (with `.fix`) on bad input, before any work where it can."""
    from pipeline.progress import Silent
    from pipeline.run import STAGES, run_pipeline

    show_progress = options.pop("progress", True)
    config = _config(domain, data, options, write_table=True)
    outcome = run_pipeline(config, progress=None if show_progress else Silent(STAGES))
    if outcome.run_dir is None:
        raise InputError("this process is a worker of a multi-machine run; only the chief (--worker-index 0) "
                         "writes the run folder", fix="call run_domain on the chief, or without workers")
    return RunResult(run_dir=Path(outcome.run_dir), manifest=outcome.manifest, gate=outcome.gate or {},
                     config=config)


def _config(domain: str, data: Any, options: dict, *, write_table: bool) -> RunConfig:
    from pipeline.registry import get_domain

    domain_object = get_domain(domain)  # an unknown name: InputError listing the valid ones
    options = {_ALIASES.get(key, key): value for key, value in options.items()}
    quick = bool(options.pop("quick", False))
    gate = {key: options.pop(key) for key in list(options) if key in _GATE_FIELDS}
    fields = {key: options.pop(key) for key in list(options) if key in _CONFIG_FIELDS}
    options = {key: value for key, value in options.items() if value is not None}  # None: not given
    from pipeline.options import declared_options
    from pipeline.registry import all_domains_by_name

    declared = {option.name for option in domain_object.options}
    # Another domain's option goes on to RunConfig's check, which says which domain reads it.
    every_option = declared_options(all_domains_by_name())
    unknown = [key for key in options if key not in every_option]
    if unknown:
        raise InputError(f"run_domain got unknown option(s) {', '.join(map(repr, unknown))} for the {domain} domain",
                         fix="use the command line's options as Python names (epochs, seed, variants, ship, "
                             "targets, max_quality_drop, ...) and the domain's own ("
                             + (", ".join(sorted(declared)) or "it has none") + ")")
    defaults = {**dataclasses.asdict(RunConfig(domain=domain)), **dataclasses.asdict(GateThresholds())}
    for values in (fields, gate):
        for key, value in values.items():
            values[key] = _typed(key, value, type(defaults.get(key)))
    for option in domain_object.options:
        if option.name in options and option.kind == "value":
            options[option.name] = _typed(option.name, options[option.name], option.type)
    for key in ("sensitive_columns", "variants", "targets", "workers", "drop_columns"):
        if key in fields and not isinstance(fields[key], tuple):
            fields[key] = (fields[key],) if isinstance(fields[key], str) else tuple(fields[key])
    if data is not None:
        if "data_path" in fields:
            raise InputError("run_domain got both `data` and `data_path`", fix="give the data once")
        fields["data_path"] = _data_path(domain, data, fields.get("output_dir", "reports"), write_table)
    config = RunConfig(domain=domain, gate=GateThresholds(**gate), options=options, **fields)
    return (config.quick_version() if quick else config).validate()


def _typed(name: str, value: Any, kind: type) -> Any:
    """A value given in Python as the command line would parse it ("5" for an int option is 5); an
    InputError naming the option when it cannot be."""
    if kind in (int, float) and not isinstance(value, bool) and isinstance(value, (str, int, float)):
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None and (kind is float or number.is_integer()):
            return kind(number)
        raise InputError(f"run_domain got {name}={value!r}, expected {'a whole number' if kind is int else 'a number'}",
                         fix=f"pass {name} as a number, e.g. {name}={kind(1)}")
    return value


def _data_path(domain: str, data: Any, output_dir: str, write_table: bool) -> str:
    if isinstance(data, (str, os.PathLike)):
        return os.fspath(data)
    import pandas as pd

    if not isinstance(data, pd.DataFrame):
        raise InputError(f"run_domain's data is a {type(data).__name__}",
                         fix="pass a path (what --data takes), a pandas DataFrame (tables: "
                             f"{', '.join(TABLE_DOMAINS)}), or None for the domain's default data")
    if domain not in TABLE_DOMAINS:
        raise InputError(f"the {domain} domain reads files, not a table: a DataFrame cannot stand in for its data",
                         fix="pass the path of its data (what `edgeaudit run " + domain + " --data` takes)")
    table = data.to_csv(index=False, lineterminator="\n").encode("utf-8")
    path = artifacts.input_table_path(output_dir, table)
    if write_table:
        artifacts.check_output_dir(output_dir)
        artifacts.write_once(path, table)
    return str(path)


def command_line(config: RunConfig) -> str:
    """The `edgeaudit run` command line of a config (options left at their defaults are left out)."""
    from pipeline.registry import get_domain

    defaults = RunConfig(domain=config.domain)
    flags = {"data_path": "--data", "label_column": "--label", "sensitive_columns": "--sensitive",
             "output_dir": "--out", "ship_variant": "--ship", "targets": "--target", "drop_columns": "--drop"}
    words = ["edgeaudit", "run", config.domain]
    if config.quick:
        words.append("--quick")
        defaults = defaults.quick_version()
    for field in dataclasses.fields(RunConfig):
        name = field.name
        value, default = getattr(config, name), getattr(defaults, name)
        if name in ("domain", "quick", "options", "gate", "workers", "worker_index") or value == default:
            continue
        flag = flags.get(name, "--" + name.replace("_", "-"))
        if isinstance(value, bool):
            words.append(flag)
        elif name == "targets":
            for target in value:
                words += [flag, str(target)]
        elif isinstance(value, tuple):
            words += [flag, *map(str, value)]
        else:
            words += [flag, str(value)]
    for name, value in dataclasses.asdict(config.gate).items():
        if value != getattr(GateThresholds(), name):
            words += ["--" + name.replace("_", "-"), str(value)]
    own = {option.name: option for option in get_domain(config.domain).options}
    for name, value in config.options.items():
        option = own[name]
        if value == option.default_value():
            continue
        words += [option.command_line] if option.kind == "flag" else [option.command_line, str(value)]
    return shlex.join(words)
