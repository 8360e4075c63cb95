"""Instance filters: Self-Instruct's preparation rules, per instance and per task."""

from __future__ import annotations

import pytest

from filters.base import build_filters
from filters.instances import apply_instance_filters
from generator.records import Instance, Record

PROFILE_ORDER = [
    {"name": "instance_empty_output"},
    {"name": "instance_input_equals_output"},
    {"name": "instance_truncated"},
    {"name": "instance_duplicate"},
    {"name": "instance_conflicting_outputs"},
    {"name": "max_instances", "params": {"k": 5}},
]


def task(*pairs: tuple[str, str], rid: str = "t1") -> Record:
    return Record(
        id=rid,
        instruction="Translate the sentence.",
        origin="test",
        instances=[Instance(input=i, output=o) for i, o in pairs],
    )


def chain_with_log() -> tuple[list, list[tuple[str, str, list[tuple[str, str]]]]]:
    filters = build_filters(PROFILE_ORDER)
    log: list[tuple[str, str, list[tuple[str, str]]]] = []
    for f in filters:
        f.on_drop = lambda item, name, reason: log.append(
            (name, reason, [(i.input, i.output) for i in item.instances])
        )
    return filters, log


def test_per_instance_rules_drop_single_instances_and_report_each() -> None:
    filters, log = chain_with_log()
    record = task(
        ("hola", "hello"),
        ("x", ""),  # empty output
        ("same", "same"),  # input == output
        ("Sentence:", "oops"),  # truncated input
        ("hi", "Answer:"),  # truncated output
        ("hola", "hello"),  # exact duplicate
        ("adiós", "goodbye"),
    )
    out = apply_instance_filters(record, filters)
    assert out is not None
    assert [(i.input, i.output) for i in out.instances] == [("hola", "hello"), ("adiós", "goodbye")]
    assert len(record.instances) == 7  # the record passed in is left alone
    assert log == [
        ("instance_empty_output", "empty_output", [("x", "")]),
        ("instance_input_equals_output", "input_equals_output", [("same", "same")]),
        ("instance_truncated", "truncated_input", [("Sentence:", "oops")]),
        ("instance_truncated", "truncated_output", [("hi", "Answer:")]),
        ("instance_duplicate", "duplicate_instance", [("hola", "hello")]),
    ]
    # per-instance rules count instances; the task rule counts tasks
    assert filters[0].stats["total"] == 7 and filters[0].stats["dropped_empty_output"] == 1
    assert filters[3].stats == {"total": 3, "kept": 2, "dropped": 1, "dropped_duplicate_instance": 1}
    assert filters[4].stats == {"total": 1, "kept": 1}


def test_same_input_with_different_outputs_drops_the_task() -> None:
    filters, log = chain_with_log()
    assert apply_instance_filters(task(("2+2", "4"), ("2+2", "5"), ("3+3", "6")), filters) is None
    assert log[-1][:2] == ("instance_conflicting_outputs", "conflicting_outputs")
    assert len(log[-1][2]) == 3  # the whole task is reported


def test_empty_inputs_never_conflict() -> None:
    filters, _ = chain_with_log()
    out = apply_instance_filters(task(("", "A haiku."), ("", "Another haiku.")), filters)
    assert out is not None and len(out.instances) == 2


def test_max_instances_keeps_the_first_k_and_reports_the_rest() -> None:
    filters = build_filters([{"name": "instance_duplicate"}, {"name": "max_instances", "params": {"k": 2}}])
    log: list[str] = []
    filters[1].on_drop = lambda item, name, reason: log.append(f"{item.instances[0].input}:{reason}")
    out = apply_instance_filters(task(("a", "1"), ("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")), filters)
    assert out is not None and [i.input for i in out.instances] == ["a", "b"]
    assert log == ["c:over_2_instances", "d:over_2_instances"]


def test_state_is_per_task() -> None:
    filters, _ = chain_with_log()
    first = apply_instance_filters(task(("a", "1"), rid="t1"), filters)
    second = apply_instance_filters(task(("a", "1"), rid="t2"), filters)  # same pair, another task
    assert first is not None and second is not None and len(second.instances) == 1


def test_no_survivor_means_no_record() -> None:
    filters, _ = chain_with_log()
    assert apply_instance_filters(task(("q", ""), ("z", "z")), filters) is None
    assert apply_instance_filters(task(), filters) is None
    assert filters[4].stats["total"] == 0  # task rules never saw the empty tasks


def test_order_is_the_configured_order() -> None:
    # with the cap before the duplicate rule, the duplicate uses up one of the k slots
    filters = build_filters([{"name": "max_instances", "params": {"k": 2}}, {"name": "instance_duplicate"}])
    out = apply_instance_filters(task(("a", "1"), ("a", "1"), ("b", "2")), filters)
    assert out is not None and [i.input for i in out.instances] == ["a"]


def test_drops_are_reported_in_instance_order_and_a_rule_judges_a_whole_record_too() -> None:
    filters, log = chain_with_log()
    out = apply_instance_filters(task(("Sentence:", "a"), ("b", ""), ("c", "3")), filters)
    assert out is not None and [i.input for i in out.instances] == ["c"]
    # the first instance meets the truncated rule after the second met the empty-output one
    assert [(name, inputs) for name, _, inputs in log] == [
        ("instance_truncated", [("Sentence:", "a")]),
        ("instance_empty_output", [("b", "")]),
    ]
    (duplicate,) = build_filters([{"name": "instance_duplicate"}])
    assert duplicate.apply(task(("a", "1"), ("b", "2"), ("a", "1"))) == (False, "duplicate_instance")
    assert duplicate.apply(task(("a", "1"), ("b", "2"))) == (True, None)  # no state left behind


def test_repetition_drops_a_looping_output_only() -> None:
    from filters.instances import RepetitionFilter

    looping = "The answer is simple. " + "I hope this helps you today. " * 12
    fine = " ".join(f"word{i}" for i in range(60))
    short = "yes yes yes yes yes"
    f = RepetitionFilter()
    assert f.check_instances([Instance(output=looping), Instance(output=fine), Instance(output=short)]) == [
        "degenerate_repetition",
        None,
        None,
    ]
    with pytest.raises(ValueError):
        RepetitionFilter(min_unique=0)
