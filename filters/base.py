"""The filter protocol (the datatrove pattern): read this file to learn it.

A filter judges one item, `filter(item) -> bool | (bool, reason)`, or a batch of them, `filter_batch`
(by default `filter` item by item; a top fraction of a batch overrides it). `apply(item)` and
`apply_batch(items)` judge, then count `total / kept / dropped / dropped_<reason>` and hand every
dropped item with the filter's label and the reason to an optional `on_drop(item, label, reason)` (the
run writes them to `dropped.jsonl`). Every filter counts the same way, so an ablation is just "run with
this filter switched off and compare the counters" (`take_stats`).

A filter's `phase` says what must be on the item before it can judge: its instruction, its instances,
the judge's verdict on an evolution, the answer, or the scores. Dedup filters (`Dedup`) hold a pool
they compare with and grow: the pool actor `add`s seeds, `offer`s candidates and asks for the kept
ones' `neighbours`.

Filters are registered by name, so a run config chooses, orders, parameterises and labels them as data
(`validate_specs` checks a list of specs cheaply, before anything is built). A parameter that names
something on the machine (a file, a folder, a model) is declared in the filter's `resources`: the REST
service lets a request body give it only as the name of something the server offers, and `register`
refuses a filter with a path-like parameter it does not declare, so no new filter can reopen that hole:

    filters = build_filters([{"name": "word_count", "params": {"min_words": 4}}, {"name": "blacklist"}])
"""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Literal, NamedTuple, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    create_model,
    model_serializer,
)

from generator.records import NearDuplicate, Record

Phase = Literal["instruction", "instances", "verdict", "answer", "scores"]
FilterKind = Literal["instruction", "dedup", "instances", "evolve"]  # the lists of a run config
Judgement = bool | tuple[bool, str]  # kept, or (kept, reason)
DropCallback = Callable[[Record, str, str], None]  # (item, filter label, reason)
# What a parameter that names something on the machine names: the kinds of resource a server offers.
ResourceKind = Literal["eval_sets", "embedding_models", "references"]


class FilterSpec(BaseModel):
    """A filter chosen by name with its parameters, as written in a run config.

    `label` tells two specs of one filter apart (stats, drops); it defaults to the name.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None

    @property
    def key(self) -> str:
        return self.label or self.name

    @model_serializer(mode="wrap")
    def _without_default_label(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # config.json of an unlabelled spec stays as it was, so run folders made before labels resume
        data = cast(dict[str, Any], handler(self))
        if self.label is None:
            data.pop("label", None)
        return data


class Filter:
    """Base class: subclasses set `name` (and `phase`, if not "instruction") and implement `filter`."""

    name: ClassVar[str] = "filter"
    phase: ClassVar[Phase] = "instruction"
    # parameters that name a file, a folder or a model, and the kind of server resource each one names
    resources: ClassVar[Mapping[str, ResourceKind]] = {}
    batch_level = False  # True: a verdict depends on the whole batch (`filter_batch`), not the item alone

    def __init__(self) -> None:
        self.label: str = self.name  # `build_filters` sets the spec's key
        self.stats: Counter[str] = Counter()
        self.on_drop: DropCallback | None = None

    def filter(self, item: Record) -> Judgement:
        raise NotImplementedError

    def filter_batch(self, items: Sequence[Record]) -> list[Judgement]:
        """Judge a batch, in order. Override when a verdict depends on the batch (a top fraction)."""
        return [self.filter(item) for item in items]

    def apply(self, item: Record) -> tuple[bool, str | None]:
        """Judge, count, report a drop. Returns (kept, reason)."""
        return self.count(item, self.filter(item))

    def apply_batch(self, items: Sequence[Record]) -> list[Record]:
        """Judge a batch (`filter_batch`), count and report in order; returns the kept items."""
        judged = self.filter_batch(items)
        return [item for item, j in zip(items, judged, strict=True) if self.count(item, j)[0]]

    def count(self, item: Record, judgement: Judgement) -> tuple[bool, str | None]:
        """Count one judged item and report it if dropped. Returns (kept, reason)."""
        kept, reason = judgement if isinstance(judgement, tuple) else (judgement, None)
        self.stats["total"] += 1
        if kept:
            self.stats["kept"] += 1
            return True, None
        reason = reason or self.name
        self.stats["dropped"] += 1
        self.stats[f"dropped_{reason}"] += 1
        if self.on_drop is not None:
            self.on_drop(item, self.label, reason)
        return False, reason

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """Raise TypeError or ValueError when `params` cannot build this filter (config validation).

        The default builds one and discards it; a filter that is costly to build checks without building.
        """
        cls(**params)


def run_filters(filters: Iterable[Filter], items: Iterable[Record]) -> list[Record]:
    """Pass items through filters in order; an item stops at the first filter that drops it.

    Each filter judges the whole batch that reaches it (`filter_batch`); the items are then counted and
    reported one by one, in their order, each up to the filter that dropped it.
    """
    chain, batch = list(filters), list(items)
    judged: list[Iterator[Judgement]] = []  # per filter: its judgements of the items that reached it
    alive = batch
    for f in chain:
        judgements = f.filter_batch(alive)
        judged.append(iter(judgements))
        alive = [
            item for item, j in zip(alive, judgements, strict=True) if (j[0] if isinstance(j, tuple) else j)
        ]
    for item in batch:
        for f, judgements_of_f in zip(chain, judged, strict=True):
            if not f.count(item, next(judgements_of_f))[0]:
                break
    return alive


def take_stats(filters: Iterable[Filter]) -> dict[str, dict[str, int]]:
    """Each filter's counters since the last call, by label, which are then cleared (the run adds them)."""
    out = {}
    for f in filters:
        out[f.label] = dict(f.stats)
        f.stats.clear()
    return out


# -- dedup: filters with a pool -------------------------------------------------------------------

# a kept record, its top-k most similar pool items as (text, score), and its mean score over the pool
Neighbourhood = tuple[Record, list[tuple[str, float]], float | None]


class Match(NamedTuple):
    """The pool item that makes a candidate a near-duplicate: its position in the pool and its score."""

    position: int
    score: float


def reason_for(name: str, threshold: float) -> str:
    return f"{name}>{threshold:g}"


class Dedup(Filter):
    """A filter over `record.instruction` with a pool it compares with and grows, in order.

    `filter(item)` compares with everything added or kept so far and adds the item when it keeps it;
    a dropped item gets `near_duplicate`, the pool item it duplicated.
    """

    metric: ClassVar[str]  # what `NearDuplicate.score` measures: "rouge_l", "jaccard", "cosine"

    def add(self, record: Record) -> None:
        """Put a pool item in without judging or counting it: seeds, then on resume the accepted items
        in their original order (which rebuilds the very same pool)."""
        raise NotImplementedError

    def add_many(self, records: Iterable[Record]) -> None:
        for record in records:
            self.add(record)

    def offer(self, records: Sequence[Record]) -> list[bool]:
        """Judge a batch in order (each against the pool and the batch's kept items before it), adding
        the kept ones; counts and reports like `apply`. A filter may score the batch at once."""
        return [self.apply(record)[0] for record in records]

    def neighbours(self) -> list[Neighbourhood]:
        """The top-k most similar pool items and the mean similarity of each record kept since the last
        call, in the order they were kept; [] when the filter computes none."""
        return []

    def __len__(self) -> int:
        raise NotImplementedError

    def duplicate_of(self, text: str, id: str | None, score: float) -> NearDuplicate:
        return NearDuplicate(filter=self.label, metric=self.metric, score=score, text=text, id=id)


# -- registry: filters chosen by name --------------------------------------------------------------

REGISTRY: dict[str, type[Filter]] = {}


# a parameter with one of these in its name, or typed as a Path, names something on the machine
PATH_LIKE = re.compile(r"file|path|dir|folder|model|corpus|url|index|template", re.IGNORECASE)


def undeclared_paths(cls: type[Filter]) -> list[str]:
    """The parameters of `cls` that look like they name a file, a folder or a model but are not in its
    `resources`; a filter that takes **kwargs cannot say what it reads, so that counts as one too."""
    found = []
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if p.kind is p.VAR_KEYWORD or p.kind is p.VAR_POSITIONAL:
            found.append(f"**{name}")
        elif (
            name != "self"
            and name not in cls.resources
            and (PATH_LIKE.search(name) or "Path" in str(p.annotation))
        ):
            found.append(name)
    return found


def register(cls: type[Filter]) -> type[Filter]:
    """Class decorator: make a filter available to configs under its `name`."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"two filters are named {cls.name!r}")
    undeclared = undeclared_paths(cls)
    if undeclared:
        raise TypeError(
            f"filter {cls.name!r}: parameter(s) {', '.join(undeclared)} may name a file, a folder or a "
            "model: declare each in `resources` (a request body then names one the server offers)"
        )
    REGISTRY[cls.name] = cls
    return cls


def _as_list(annotation: Any) -> Any:
    """Iterable[X] and Sequence[X] as list[X], recursively: a parameter check wants JSON's own shapes."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Iterable, Sequence, list, tuple) and args:
        return list[_as_list(args[0])]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType) and args:
        return functools.reduce(lambda a, b: a | b, [_as_list(a) for a in args])
    return annotation


_PARAM_MODELS: dict[str, type[BaseModel]] = {}


def params_model(cls: type[Filter]) -> type[BaseModel]:
    """A strict pydantic model of a filter's parameters, from its constructor's signature: a request
    body's parameters are checked with it (no "5" for an int, no true for a number)."""
    if cls.name not in _PARAM_MODELS:
        _PARAM_MODELS[cls.name] = _params_model(cls)
    return _PARAM_MODELS[cls.name]


def _params_model(cls: type[Filter]) -> type[BaseModel]:
    hints = typing.get_type_hints(cls.__init__)
    fields: dict[str, Any] = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self":
            continue
        default = ... if p.default is p.empty else p.default
        fields[name] = (_as_list(hints.get(name, Any)), default)
    return cast(
        type[BaseModel],
        create_model(  # type: ignore[call-overload]
            f"{cls.__name__}Params", __config__=ConfigDict(strict=True, extra="forbid"), **fields
        ),
    )


def _spec(raw: FilterSpec | Mapping[str, Any]) -> FilterSpec:
    return raw if isinstance(raw, FilterSpec) else FilterSpec.model_validate(raw)


def known_filter(name: str) -> type[Filter]:
    import filters  # noqa: F401  (importing the package registers every built-in filter)

    if name not in REGISTRY:
        raise ValueError(f"unknown filter {name!r}; known filters: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def build_filters(specs: Iterable[FilterSpec | Mapping[str, Any]]) -> list[Filter]:
    """Instantiate filters from specs, in order. Unknown names and bad params fail with a clear error."""
    built: list[Filter] = []
    for spec in map(_spec, specs):
        cls = known_filter(spec.name)
        try:
            f = cls(**spec.params)
        except TypeError as exc:
            raise ValueError(f"filter {spec.name!r}: bad parameters {spec.params}: {exc}") from exc
        f.label = spec.key
        built.append(f)
    return built


def build_dedup(specs: Iterable[FilterSpec | Mapping[str, Any]]) -> list[Dedup]:
    """`build_filters` for a dedup list, checked first (`validate_specs`): every filter is a `Dedup`."""
    specs = [_spec(s) for s in specs]
    validate_specs(specs, "dedup")
    return cast(list[Dedup], build_filters(specs))


# which phases each list of a run config may hold
_PHASES: dict[FilterKind, tuple[Phase, ...]] = {
    "instruction": ("instruction",),
    "dedup": ("instruction",),
    "instances": ("instances",),
    "evolve": ("instruction", "verdict", "answer", "scores"),
}


def _wrong_kind(cls: type[Filter], kind: FilterKind) -> str | None:
    if kind == "dedup":
        return None if issubclass(cls, Dedup) else "not a dedup filter"
    if issubclass(cls, Dedup):
        return "a dedup filter belongs in the dedup list (the pool owns and restores its index)"
    if cls.phase not in _PHASES[kind]:
        allowed = ", ".join(_PHASES[kind])
        return f"a filter of phase {cls.phase!r} cannot be one of the {kind} filters (phases: {allowed})"
    return None


def validate_specs(specs: Iterable[FilterSpec | Mapping[str, Any]], kind: FilterKind) -> None:
    """Check a run config's list of filter specs without running anything (semantic loads no model).

    Fails with a ValueError naming the spec's index and name: an unknown name, a filter of the wrong
    kind for the list, bad parameter names or values, or two specs with the same key (name or label).
    """
    seen: dict[str, int] = {}
    for i, spec in enumerate(map(_spec, specs)):
        where = f"filter {i} ({spec.name!r})"
        try:
            cls = known_filter(spec.name)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        wrong = _wrong_kind(cls, kind)
        if wrong is not None:
            raise ValueError(f"{where}: {wrong}")
        try:
            cls.check_params(spec.params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: bad parameters {spec.params}: {exc}") from exc
        if spec.key in seen:
            raise ValueError(
                f"{where}: filter {seen[spec.key]} has the same key {spec.key!r}; give one a label"
            )
        seen[spec.key] = i
