"""Domain name -> Domain. Add a domain here and the contract suite tests it for free."""

from __future__ import annotations

import importlib

from pipeline.domain import Domain
from pipeline.errors import InputError

# name -> "module:ClassName"; imported on first use so `edgeaudit domains` stays fast.
_DOMAINS: dict[str, str] = {
    "fraud": "pipeline.domains.fraud:FraudDomain",
    "tabular": "pipeline.domains.tabular:TabularDomain",
    "sentiment": "pipeline.domains.sentiment:SentimentDomain",
    "maintenance": "pipeline.domains.maintenance:MaintenanceDomain",
    "imaging": "pipeline.domains.imaging:ImagingDomain",
}


def domain_names() -> list[str]:
    return list(_DOMAINS)


def get_domain(name: str) -> Domain:
    if name not in _DOMAINS:
        raise InputError(f"unknown domain {name!r}",
                         fix=f"choose one of: {', '.join(_DOMAINS)} (see `edgeaudit domains`)")
    module_name, class_name = _DOMAINS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)()


def all_domains() -> list[Domain]:
    return [get_domain(name) for name in _DOMAINS]


def all_domains_by_name() -> dict[str, Domain]:
    return {name: get_domain(name) for name in _DOMAINS}


def default_data_domain_names() -> list[str]:
    """The domains that generate default data: what `edgeaudit run all` runs."""
    return [name for name in _DOMAINS if get_domain(name).has_default_data]
