"""Domain options: declared once on the domain, they become the CLI's flags, its help, its checks
and one mapping in the run's config."""

import argparse

import pytest

from pipeline.cli import _parser, run_config
from pipeline.config import RunConfig
from pipeline.errors import InputError
from pipeline.options import DomainOption, add_domain_arguments, declared_options, given_options, options_in_force
from pipeline.registry import all_domains_by_name, get_domain


class _Toy:
    """A stand-in domain: only its `options` matter here."""

    def __init__(self, *options):
        self.options = options


def test_a_declared_option_is_a_flag_with_its_help_type_and_default():
    toy = _Toy(DomainOption("window", type=int, default=30, minimum=2, help="cycles per window"),
               DomainOption("strict", kind="flag", help="stop on the first bad row"),
               DomainOption("probe_path", kind="path", flag="--probe", help="a probe file"))
    parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_domain_arguments(parser, {"toy": toy})
    help_text = parser.format_help()
    assert "toy options" in help_text and "--window CYCLES" not in help_text and "--window WINDOW" in help_text
    assert "cycles per window (default: 30)" in help_text and "(default: None)" not in help_text
    assert "--probe PATH" in help_text and "--strict" in help_text
    given = given_options(parser.parse_args(["--window", "12", "--strict"]))
    assert given == {"window": 12, "strict": True}  # typed; the options not given are absent
    assert given_options(parser.parse_args([])) == {}
    assert options_in_force(toy, {"window": 12}) == {"window": 12, "strict": False, "probe_path": None}


def test_two_domains_share_an_option_only_when_they_declare_it_alike():
    first = _Toy(DomainOption("cluster_column", help="a customer id"))
    second = _Toy(DomainOption("cluster_column", help="a patient id"))
    declared = declared_options({"a": first, "b": second})
    assert [domain for domain, _ in declared["cluster_column"]] == ["a", "b"]
    parser = argparse.ArgumentParser()
    add_domain_arguments(parser, {"a": first, "b": second})
    assert "a: a customer id; b: a patient id" in " ".join(parser.format_help().split())
    with pytest.raises(ValueError, match="declare option 'cluster_column' differently"):
        declared_options({"a": first, "b": _Toy(DomainOption("cluster_column", type=int, help="x"))})


def test_the_registered_domains_declare_their_options_consistently():
    domains = all_domains_by_name()
    declared = declared_options(domains)  # raises if two domains disagree
    assert {domain for domain, _ in declared["cluster_column"]} == {"fraud", "tabular", "imaging"}
    assert {domain for domain, _ in declared["search_trials"]} == {"fraud", "tabular", "maintenance"}
    assert set(declared) >= {"window", "horizon", "text_column", "probe_path", "identity_terms_path",
                             "metadata_path", "skip_unreadable"}
    for uses in declared.values():
        for _, option in uses:
            assert option.help and not option.help.endswith(".")


def test_the_command_line_carries_domain_options_as_one_mapping():
    config = run_config(["maintenance", "--window", "12"])
    assert config.options == {"window": 12}
    assert config.option("window") == 12 and config.option("horizon") == 30  # the domain's default
    in_force = config.with_domain_defaults(get_domain("maintenance"))
    # What the manifest records; ensemble_members None: by the table's size (training.json says how many).
    expected = {"window": 12, "horizon": 30, "search_trials": 6, "ensemble_members": None}
    assert in_force.options == expected
    assert in_force.to_json()["options"] == expected
    assert run_config(["imaging", "--skip-unreadable"]).options == {"skip_unreadable": True}


def test_an_option_the_domain_does_not_read_or_a_bad_value_is_refused_with_the_fix():
    with pytest.raises(InputError, match="--window is not read by the fraud domain") as error:
        run_config(["fraud", "--window", "12"])
    assert "maintenance" in error.value.fix
    with pytest.raises(InputError, match="--cluster-column is not read by the sentiment domain") as error:
        run_config(["sentiment", "--cluster-column", "user"])
    assert "fraud, tabular, imaging" in error.value.fix
    with pytest.raises(InputError, match="option --window is 1, expected at least 2"):
        run_config(["maintenance", "--window", "1"])
    with pytest.raises(InputError, match="is not read by the fraud domain"):  # built in Python, same check
        RunConfig(domain="fraud", options={"horizon": 5}).validate()
    with pytest.raises(KeyError, match="declares no option 'window'"):
        RunConfig(domain="fraud").option("window")


def test_commands_other_than_run_do_not_import_the_domains():
    parser = _parser()
    assert parser.parse_args(["domains"]).command == "domains"
    with pytest.raises(SystemExit):  # without the domains, `run` has no domain flags
        parser.parse_args(["run", "maintenance", "--window", "3"])
