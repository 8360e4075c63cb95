"""The one filter interface (the datatrove pattern).

A filter implements `filter(item) -> bool | (bool, reason)`. The base class does the bookkeeping:
it counts `total`, `kept` and `dropped_<reason>`, and hands every dropped item with its filter name and
reason to an optional `on_drop` callback (the run writes them to `dropped.jsonl`). Because every filter
counts the same way, an ablation is just "run with this filter switched off and compare the counters".

Filters are registered by name, so a run config chooses, orders and parameterises them as data:

    filters = build_filters([{"name": "word_count", "params": {"min_words": 4}}, {"name": "blacklist"}])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from generator.records import Record

DropCallback = Callable[[Record, str, str], None]  # (item, filter name, reason)


class FilterSpec(BaseModel):
    """A filter chosen by name with its parameters, as written in a run config."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Filter:
    """Base class: subclasses set `name` and implement `filter`."""

    name: ClassVar[str] = "filter"

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()
        self.on_drop: DropCallback | None = None

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        raise NotImplementedError

    def apply(self, item: Record) -> tuple[bool, str | None]:
        """Run `filter`, count the outcome, report a drop. Returns (kept, reason)."""
        result = self.filter(item)
        kept, reason = result if isinstance(result, tuple) else (result, None)
        self.stats["total"] += 1
        if kept:
            self.stats["kept"] += 1
            return True, None
        reason = reason or self.name
        self.stats["dropped"] += 1
        self.stats[f"dropped_{reason}"] += 1
        if self.on_drop is not None:
            self.on_drop(item, self.name, reason)
        return False, reason


def run_filters(filters: Iterable[Filter], items: Iterable[Record]) -> list[Record]:
    """Pass items through filters in order; an item stops at the first filter that drops it."""
    kept: list[Record] = []
    chain = list(filters)
    for item in items:
        if all(f.apply(item)[0] for f in chain):
            kept.append(item)
    return kept


# -- registry: filters chosen by name --------------------------------------------------------------

REGISTRY: dict[str, type[Filter]] = {}


def register(cls: type[Filter]) -> type[Filter]:
    """Class decorator: make a filter available to configs under its `name`."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"two filters are named {cls.name!r}")
    REGISTRY[cls.name] = cls
    return cls


def build_filters(specs: Iterable[FilterSpec | dict[str, Any]]) -> list[Filter]:
    """Instantiate filters from specs, in order. Unknown names and bad params fail with a clear error."""
    import filters  # noqa: F401  (importing the package registers every built-in filter)

    built: list[Filter] = []
    for raw in specs:
        spec = raw if isinstance(raw, FilterSpec) else FilterSpec.model_validate(raw)
        if spec.name not in REGISTRY:
            known = ", ".join(sorted(REGISTRY))
            raise ValueError(f"unknown filter {spec.name!r}; known filters: {known}")
        try:
            built.append(REGISTRY[spec.name](**spec.params))
        except TypeError as exc:
            raise ValueError(f"filter {spec.name!r}: bad parameters {spec.params}: {exc}") from exc
    return built


def merged_stats(filters: Iterable[Filter]) -> dict[str, dict[str, int]]:
    """Per-filter counters, ready for stats.json."""
    return {f.name: dict(f.stats) for f in filters}
