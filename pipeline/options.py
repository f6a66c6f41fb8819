"""Options a domain declares for itself: one declaration gives the CLI flag, its help, its type
and default, its check, and the value a run records.

A domain lists its options as `options = (DomainOption(...), ...)` on its class (pipeline/domain.py).
The CLI builds one argument group per domain from the registry (`add_domain_arguments`), the
options given on the command line reach the run as one mapping, `RunConfig.options`, and the
domain reads them with `config.option("window")`. Adding a domain option is one edit: its
declaration. Two domains may declare an option of the same name (fraud's and imaging's
`cluster_column`): they must agree on its kind, type and default, and the CLI shows one flag
whose help names each domain's use.

This module imports nothing heavy: `edgeaudit --help` stays fast.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable

from pipeline.errors import InputError

KINDS = ("value", "path", "flag")


@dataclass(frozen=True)
class DomainOption:
    """One option of a domain.

    name: the Python name, the key in `RunConfig.options` and in the manifest ("window").
    help: what it does, for `--help` and `edgeaudit domains`.
    kind: "value" (a typed value), "path" (a file the user names) or "flag" (on when given).
    type: the type of a "value" (int, float, str).
    default: the value when the option is not given (recorded in the manifest as in force).
    flag: the command-line flag; default "--" + name with "_" as "-".
    metavar: how `--help` names the value.
    minimum: the smallest value allowed (numbers), checked with a clear error.
    """

    name: str
    help: str
    kind: str = "value"
    type: Callable[[str], Any] = str
    default: Any = None
    flag: str | None = None
    metavar: str | None = None
    minimum: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "flag" and self.default not in (None, False):
            raise ValueError(f"option {self.name}: a flag is off unless given; its default must be False")

    @property
    def command_line(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def default_value(self) -> Any:
        return False if self.kind == "flag" else self.default

    def check(self, value: Any, domain: str) -> None:
        """A clear error when `value` is not allowed (today: below `minimum`)."""
        if self.minimum is not None and value is not None and value < self.minimum:
            minimum = int(self.minimum) if float(self.minimum).is_integer() else self.minimum
            raise InputError(f"option {self.command_line} is {value}, expected at least {minimum}",
                             fix=f"pass {self.command_line} {minimum} or more")

    def same_as(self, other: "DomainOption") -> bool:
        """Whether two domains' declarations of one name can share a flag."""
        return (self.kind, self.type, self.default, self.command_line) == (
            other.kind, other.type, other.default, other.command_line)


def declared_options(domains: dict[str, Any]) -> dict[str, list[tuple[str, DomainOption]]]:
    """name -> [(domain, declaration), ...] over the given {domain name: Domain}, in registry order.
    Raises ValueError when two domains declare one name differently (a programming error)."""
    found: dict[str, list[tuple[str, DomainOption]]] = {}
    for domain_name, domain in domains.items():
        for option in domain.options:
            uses = found.setdefault(option.name, [])
            if uses and not uses[0][1].same_as(option):
                raise ValueError(f"domains {uses[0][0]} and {domain_name} declare option {option.name!r} "
                                 "differently (kind, type, default or flag); give one of them another name")
            uses.append((domain_name, option))
    return found


def add_domain_arguments(parser: argparse.ArgumentParser, domains: dict[str, Any]) -> None:
    """One argument group per domain, each option once (the first domain that declares it owns
    the flag; its help names every domain that reads it). Every default is None, so that the
    options a user gave can be told from those left to the domain."""
    declared = declared_options(domains)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, uses in declared.items():
        owner, option = uses[0]
        if owner not in groups:
            groups[owner] = parser.add_argument_group(
                f"{owner} options (with `edgeaudit run {owner}`; see `edgeaudit domains`)")
        help_text = "; ".join(f"{domain}: {use.help}" for domain, use in uses) if len(uses) > 1 else option.help
        # "%(default).0s" prints nothing; it stops a defaults-showing formatter from adding "(default: None)".
        help_text = help_text.replace("%", "%%") + "%(default).0s"
        if option.kind == "flag":
            groups[owner].add_argument(option.command_line, dest=f"option_{name}", action="store_true",
                                       default=None, help=help_text)
            continue
        default = option.default_value()
        shown = "" if default is None else f" (default: {default})"
        groups[owner].add_argument(option.command_line, dest=f"option_{name}", default=None,
                                   type=option.type if option.kind == "value" else str,
                                   metavar=option.metavar or ("PATH" if option.kind == "path" else name.upper()),
                                   help=help_text + shown)


def given_options(arguments: argparse.Namespace) -> dict[str, Any]:
    """The domain options given on the command line: {name: value}."""
    prefix = "option_"
    return {key[len(prefix):]: value for key, value in vars(arguments).items()
            if key.startswith(prefix) and value is not None}


def check_options(domain_name: str, domain: Any, options: dict[str, Any],
                  declared: dict[str, list[tuple[str, DomainOption]]]) -> None:
    """Each given option is one the domain declares, with an allowed value. `declared`: every
    domain's declarations (`declared_options`), to say which domains take an option this one does not."""
    own = {option.name: option for option in domain.options}
    for name, value in options.items():
        if name not in own:
            uses = declared.get(name, [])
            flag = uses[0][1].command_line if uses else "--" + name.replace("_", "-")
            takers = ", ".join(taker for taker, _ in uses)
            raise InputError(f"{flag} is not read by the {domain_name} domain",
                             fix=(f"leave it out; it applies to {takers}" if uses else "leave it out")
                                 + " (`edgeaudit domains` lists each domain's options)")
        own[name].check(value, domain_name)


def options_in_force(domain: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Every option the domain declares, with the value given or its default (what the manifest records)."""
    return {option.name: options.get(option.name, option.default_value()) for option in domain.options}
