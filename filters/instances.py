"""Instance filters: Self-Instruct's preparation stage (`prepare_for_finetuning.py`), one filter per rule.

Two kinds, both ordinary `Filter`s so they count and report drops like every other filter:

- **per-instance rules** (`per_instance = True`) judge one input/output pair. `apply_instance_filters`
  hands them a one-instance copy of the record, so `total` counts instances and `on_drop` receives
  exactly the instance that was dropped;
- **task rules** judge the record with the instances that survived so far: a conflict drops the task.

`apply_instance_filters(record, filters)` runs them in the configured order. Self-Instruct's order is
empty output, input == output, truncated → (conflicting outputs, exact duplicates) → at most 5; its
`max 5` is a random sample, ours keeps the first k so a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import groupby

from filters.base import Filter, register
from generator.records import Instance, Record


class InstanceFilter(Filter):
    """A rule on `record.instances`. `start_task` resets any per-task state before a new record."""

    per_instance = True

    def start_task(self) -> None:
        """Called by `apply_instance_filters` before the instances of each record."""

    def check(self, instance: Instance) -> str | None:
        """The drop reason for one instance, or None to keep it (per-instance rules)."""
        raise NotImplementedError

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        # Given a one-instance copy this judges that instance; given a whole record, every instance
        # must pass (the first failing one names the reason).
        for instance in item.instances:
            reason = self.check(instance)
            if reason is not None:
                return False, reason
        return True


def _clean(text: str) -> str:
    return text.strip()


@register
class EmptyOutputFilter(InstanceFilter):
    """Drop an instance whose output is empty (after stripping whitespace)."""

    name = "instance_empty_output"

    def check(self, instance: Instance) -> str | None:
        return "empty_output" if not _clean(instance.output) else None


@register
class InputEqualsOutputFilter(InstanceFilter):
    """Drop an instance whose output just repeats its input."""

    name = "instance_input_equals_output"

    def check(self, instance: Instance) -> str | None:
        return "input_equals_output" if _clean(instance.input) == _clean(instance.output) else None


@register
class TruncatedFilter(InstanceFilter):
    """Drop an instance whose input or output ends with ":" (the generation stopped mid-example)."""

    name = "instance_truncated"

    def check(self, instance: Instance) -> str | None:
        if _clean(instance.input).endswith(":"):
            return "truncated_input"
        if _clean(instance.output).endswith(":"):
            return "truncated_output"
        return None


@register
class DuplicateInstanceFilter(InstanceFilter):
    """Drop an instance identical (input and output) to an earlier one of the same task."""

    name = "instance_duplicate"

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, str]] = set()

    def start_task(self) -> None:
        self._seen.clear()

    def check(self, instance: Instance) -> str | None:
        key = (_clean(instance.input), _clean(instance.output))
        if key in self._seen:
            return "duplicate_instance"
        self._seen.add(key)
        return None


@register
class MaxInstancesFilter(InstanceFilter):
    """Keep at most `k` instances per task (Self-Instruct 5, Alpaca 1): the first k that reach it."""

    name = "max_instances"

    def __init__(self, k: int = 5) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k
        self._count = 0

    def start_task(self) -> None:
        self._count = 0

    def check(self, instance: Instance) -> str | None:
        if self._count >= self.k:
            return f"over_{self.k}_instances"
        self._count += 1
        return None


@register
class ConflictingOutputsFilter(InstanceFilter):
    """Drop the whole task when one non-empty input appears with different outputs.

    Such a task is ambiguous (or the teacher was guessing), so none of its instances can be trusted.
    """

    name = "instance_conflicting_outputs"
    per_instance = False

    def filter(self, item: Record) -> bool | tuple[bool, str]:
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

    Per-instance rules see each surviving instance on its own (a one-instance copy of the record, so a
    drop is counted once and reported with just that instance); task rules see the record with the
    survivors so far and drop it whole. A record left with no instance is dropped (None). The record
    passed in is not modified (it is returned as it is when every instance survives).
    """
    chain = list(filters)
    for f in chain:
        if isinstance(f, InstanceFilter):
            f.start_task()
    instances = record.instances
    for per_instance, group in groupby(chain, key=lambda f: bool(getattr(f, "per_instance", False))):
        if not instances:
            break
        rules = list(group)
        if per_instance:
            # A run of per-instance rules, which stops at the first rule that drops an instance (the
            # same counts as running each rule over all instances in turn).
            instances = [i for i in instances if all(_apply_to(f, record, i) for f in rules)]
            continue
        # Task rules see the survivors so far (rules only drop: same length, same instances).
        view = record if len(instances) == len(record.instances) else _with(record, instances)
        if not _passes(rules, view):
            return None
    if not instances:
        return None
    return record if len(instances) == len(record.instances) else _with(record, instances)


def _with(record: Record, instances: list[Instance]) -> Record:
    return record.model_copy(update={"instances": instances})


def _passes(rules: list[Filter], item: Record) -> bool:
    return all(f.apply(item)[0] for f in rules)


def _apply_to(f: Filter, record: Record, instance: Instance) -> bool:
    """`f.apply` on a one-instance copy of `record`, without making the copy when `f` keeps it.

    A rule that works through `check` is asked directly and counted as `apply` counts; only a drop
    (rare) builds the copy, so `on_drop` still receives exactly the dropped instance.
    """
    if (
        isinstance(f, InstanceFilter)
        and type(f).filter is InstanceFilter.filter
        and f.check(instance) is None
    ):
        f.stats["total"] += 1
        f.stats["kept"] += 1
        return True
    return f.apply(_with(record, [instance]))[0]
