"""The domains: every module of this package that defines `DOMAIN` is one, named after the module.

Adding a domain is adding a module (and its templates in `generator/tasks/templates/`); nothing else
learns its name. `generator/domains/base.py` says what a domain supplies.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.domains.base import Domain
from generator.records import SeedTask

if TYPE_CHECKING:
    from generator.config import RunConfig


@cache
def domain_names() -> list[str]:
    """The registered domains, sorted (modules of this package that define `DOMAIN`)."""
    names = []
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base" and hasattr(_module(module.name), "DOMAIN"):
            names.append(module.name)
    return sorted(names)


def get_domain(name: str) -> Domain:
    """The domain called `name` (see `domain_names()`)."""
    if name not in domain_names():
        raise KeyError(f"unknown domain {name!r}; known: {', '.join(domain_names())}")
    domain: Domain = _module(name).DOMAIN
    return domain


def domain_for(cfg: RunConfig) -> Domain:
    """The config's domain, set up for it: a domain with settings of its own (the code domain's sandbox
    limits, the medical domain's corpus) has `configure(cfg)`, which raises ConfigError on bad ones.
    The run calls it before Ray or the teacher start, so a bad setting costs nothing."""
    assert cfg.domain is not None
    domain = get_domain(cfg.domain)
    configure = getattr(domain, "configure", None)
    configured: Domain = configure(cfg) if configure is not None else domain
    return configured


def _module(name: str) -> Any:
    return importlib.import_module(f"{__name__}.{name}")


def check_domain_seeds(path: Path, seeds: list[SeedTask], domain: str) -> None:
    """Refuse a seed file written for another domain (`--domain code --seeds seeds/arithmetic.jsonl`)."""
    from generator.seeds import SeedFileError

    other = next((s for s in seeds if s.domain is not None and s.domain != domain), None)
    if other is not None:
        raise SeedFileError(
            f"{path}: seed {other.id!r} belongs to the {other.domain} domain, not {domain}: "
            f"use --seeds seeds/{domain}.jsonl (or a file of {domain} seeds)"
        )
