"""Instance filters: Self-Instruct's preparation stage (`prepare_for_finetuning.py`), one filter per rule.

Two kinds, both `Filter`s of phase "instances", so they count and report drops like every other filter:

- **per-instance rules** (`InstanceFilter`) judge a task's input/output pairs, one reason or None per
  instance (`check_instances`; state such as "seen before" lives in that one call). Through
  `apply_instance_filters`, `total` counts instances and `on_drop` receives a one-instance copy of the
  record holding exactly the instance that was dropped;
- **task rules** (any other filter) judge the record with the instances that survived so far: a
  conflict drops the task.

`apply_instance_filters(record, filters)` runs them in the configured order. Self-Instruct's order is
empty output, input == output, truncated → (conflicting outputs, exact duplicates) → at most 5; its
`max 5` is a random sample, ours keeps the first k so a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby
from typing import cast

from filters.base import Filter, Judgement, register
from generator.records import Instance, Record


class InstanceFilter(Filter):
    """A rule on each instance of a task, in order."""

    phase = "instances"

    def check_instances(self, instances: list[Instance]) -> list[str | None]:
        """The drop reason for each instance, or None to keep it."""
        raise NotImplementedError

    def filter(self, item: Record) -> Judgement:
        # a whole record: every instance must pass (the first failing one names the reason)
        for reason in self.check_instances(item.instances):
            if reason is not None:
                return False, reason
        return True


def _clean(text: str) -> str:
    return text.strip()


@register
class EmptyOutputFilter(InstanceFilter):
    """Drop an instance whose output is empty (after stripping whitespace)."""

    name = "instance_empty_output"

    def check_instances(self, instances: list[Instance]) -> list[str | None]:
        return [None if _clean(i.output) else "empty_output" for i in instances]


@register
class InputEqualsOutputFilter(InstanceFilter):
    """Drop an instance whose output just repeats its input."""

    name = "instance_input_equals_output"

    def check_instances(self, instances: list[Instance]) -> list[str | None]:
        return ["input_equals_output" if _clean(i.input) == _clean(i.output) else None for i in instances]


@register
class TruncatedFilter(InstanceFilter):
    """Drop an instance whose input or output ends with ":" (the generation stopped mid-example)."""

    name = "instance_truncated"

    def check_instances(self, instances: list[Instance]) -> list[str | None]:
        return [_truncated(i) for i in instances]


def _truncated(instance: Instance) -> str | None:
    if _clean(instance.input).endswith(":"):
        return "truncated_input"
    if _clean(instance.output).endswith(":"):
        return "truncated_output"
    return None


@register
class RepetitionFilter(InstanceFilter):
    """Drop an instance whose output loops: a small model answering greedily can repeat one sentence
    until `max_tokens` (Magpie's answers on SmolLM2-135M did, in half the rows of a 100-row run).

    The output is looping when, of its word `n`-grams, fewer than `min_unique` are distinct; outputs
    under `min_words` words are left alone (a short list repeats by nature).
    """

    name = "instance_repetition"

    def __init__(self, n: int = 4, min_unique: float = 0.5, min_words: int = 24) -> None:
        super().__init__()
        if n < 1 or not 0 < min_unique <= 1 or min_words < n:
            raise ValueError("need n >= 1, 0 < min_unique <= 1 and min_words >= n")
        self.n, self.min_unique, self.min_words = n, min_unique, min_words

    def check_instances(self, instances: list[Instance]) -> list[str | None]:
        return [self._looping(i.output) for i in instances]

    def _looping(self, output: str) -> str | None:
        words = output.lower().split()
        if len(words) < self.min_words:
            return None
        grams = [tuple(words[k : k + self.n]) for k in range(len(words) - self.n + 1)]
        return "degenerate_repetition" if len(set(grams)) / len(grams) < self.min_unique else None


@register
class DuplicateInstanceFilter(InstanceFilter):
    """Drop an instance identical (input and output) to an earlier one of the same task."""

    name = "instance_duplicate"

    def check_instances(self, instances: list[Instance]) -> list[str | None]:
        seen: set[tuple[str, str]] = set()
        out: list[str | None] = []
        for instance in instances:
            key = (_clean(instance.input), _clean(instance.output))
            out.append("duplicate_instance" if key in seen else None)
            seen.add(key)
        return out


@register
class MaxInstancesFilter(InstanceFilter):
    """Keep at most `k` instances per task (Self-Instruct 5, Alpaca 1): the first k that reach it."""

    name = "max_instances"

    def __init__(self, k: int = 5) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k

    def check_instances(self, instances: list[Instance]) -> list[str | None]:
        over = f"over_{self.k}_instances"
        return [None if n < self.k else over for n in range(len(instances))]


@register
class ConflictingOutputsFilter(Filter):
    """Drop the whole task when one non-empty input appears with different outputs.

    Such a task is ambiguous (or the teacher was guessing), so none of its instances can be trusted.
    """

    name = "instance_conflicting_outputs"
    phase = "instances"

    def filter(self, item: Record) -> Judgement:
        outputs: dict[str, str] = {}
        for instance in item.instances:
            key = _clean(instance.input)
            if not key:
                continue
            first = outputs.setdefault(key, _clean(instance.output))
            if first != _clean(instance.output):
                return False, "conflicting_outputs"
        return True


def apply_instance_filters(record: Record, filters: Sequence[Filter] | Iterable[Filter]) -> Record | None:
    """Run instance filters in order; returns the record with its surviving instances, or None.

    Per-instance rules see the surviving instances (an instance stops at the first rule that drops it,
    and a drop is counted once and reported with a one-instance copy of the record); task rules see the
    record with the survivors so far and drop it whole. A record left with no instance is dropped
    (None). The record passed in is not modified (it is returned as it is when every instance survives).
    """
    instances = record.instances
    for per_instance, group in groupby(filters, key=lambda f: isinstance(f, InstanceFilter)):
        if not instances:
            break
        rules = list(group)
        if per_instance:
            instances = _per_instance(record, instances, cast(list[InstanceFilter], rules))
            continue
        # Task rules see the survivors so far (rules only drop: same length, same instances).
        view = record if len(instances) == len(record.instances) else _with(record, instances)
        if not all(f.apply(view)[0] for f in rules):
            return None
    if not instances:
        return None
    return record if len(instances) == len(record.instances) else _with(record, instances)


def filter_instances(record: Record, filters: Sequence[Filter] | Iterable[Filter]) -> None:
    """Replace `record`'s instances with those the filters keep (none: it leaves the dataset). The
    bootstrap does this to each accepted record, and a replay does it again the same way."""
    filtered = apply_instance_filters(record, filters) if record.instances else None
    record.instances = filtered.instances if filtered is not None else []


def _per_instance(record: Record, instances: list[Instance], rules: list[InstanceFilter]) -> list[Instance]:
    """A run of per-instance rules, each judging the instances that reach it in one call.

    Counted as if each instance went through the rules in turn; only a drop (rare) builds the
    one-instance copy it is reported with, in the order of the instances.
    """
    alive = instances
    positions: Sequence[int] = range(len(instances))  # of the instances in `alive`
    drops: list[tuple[int, InstanceFilter, str]] = []  # (position, rule, reason)
    for f in rules:
        reasons = f.check_instances(alive)
        if any(reasons):
            drops += [(p, f, r) for p, r in zip(positions, reasons, strict=True) if r is not None]
            positions = [p for p, r in zip(positions, reasons, strict=True) if r is None]
            alive = [instances[p] for p in positions]
        if alive:
            f.stats["total"] += len(alive)
            f.stats["kept"] += len(alive)
        else:
            break
    for p, f, reason in sorted(drops, key=lambda d: d[0]):
        f.count(_with(record, [instances[p]]), (False, reason))
    return alive


def _with(record: Record, instances: list[Instance]) -> Record:
    return record.model_copy(update={"instances": instances})
