"""Every built-in filter is registered under the name the run config uses, with published defaults."""

from __future__ import annotations

import pytest

from filters.base import (
    REGISTRY,
    FilterKind,
    FilterSpec,
    build_filters,
    run_filters,
    take_stats,
    validate_specs,
)
from filters.heuristics import ALPACA_BLACKLIST_EXTRA, SELF_INSTRUCT_BLACKLIST
from generator.records import Record

NAMES = {
    "word_count",
    "blacklist",
    "bad_prefix",
    "leading_punctuation",
    "non_ascii_start",
    "rouge_l",
    "minhash",
    "minhash_rouge_l",
    "semantic",
    "decontaminate",
    "instance_empty_output",
    "instance_input_equals_output",
    "instance_truncated",
    "instance_repetition",
    "instance_duplicate",
    "instance_conflicting_outputs",
    "max_instances",
}


def test_all_filters_are_registered() -> None:
    import filters  # noqa: F401

    assert set(REGISTRY) >= NAMES


def test_published_defaults() -> None:
    wc, bl, bp, rl, mi = build_filters(
        [{"name": n} for n in ("word_count", "blacklist", "bad_prefix", "rouge_l", "max_instances")]
    )
    assert (wc.min_words, wc.max_words) == (4, 150)  # type: ignore[attr-defined]
    assert bl.words == list(SELF_INSTRUCT_BLACKLIST)  # type: ignore[attr-defined]
    assert bp.prefixes == ("Write a program",)  # type: ignore[attr-defined]
    assert (rl.threshold, rl.top_k) == (0.7, 10)  # type: ignore[attr-defined]
    assert mi.k == 5  # type: ignore[attr-defined]
    (alpaca,) = build_filters([{"name": "blacklist", "params": {"extra": list(ALPACA_BLACKLIST_EXTRA)}}])
    assert alpaca.words[-5:] == list(ALPACA_BLACKLIST_EXTRA)  # type: ignore[attr-defined]


def test_bad_names_and_params_fail_clearly() -> None:
    with pytest.raises(ValueError, match="unknown filter 'rouge'"):
        build_filters([{"name": "rouge"}])
    with pytest.raises(ValueError, match="bad parameters"):
        build_filters([{"name": "word_count", "params": {"min": 3}}])


# -- the protocol: labels, batches, stats ----------------------------------------------------------


def rec(text: str, rid: str = "x", **fields: object) -> Record:
    return Record(id=rid, instruction=text, origin="test", **fields)  # type: ignore[arg-type]


def test_labels_key_stats_and_drops() -> None:
    loose, strict = build_filters(
        [
            {"name": "word_count", "params": {"min_words": 2}},
            {"name": "word_count", "label": "word_count_strict", "params": {"min_words": 4}},
        ]
    )
    drops: list[tuple[str, str, str]] = []
    for f in (loose, strict):
        f.on_drop = lambda item, label, reason: drops.append((item.id, label, reason))
    kept = run_filters(
        [loose, strict], [rec("one", "a"), rec("two words", "b"), rec("four words are here", "c")]
    )
    assert [r.id for r in kept] == ["c"]
    assert drops == [("a", "word_count", "too_short"), ("b", "word_count_strict", "too_short")]
    assert take_stats([loose, strict]) == {
        "word_count": {"total": 3, "kept": 2, "dropped": 1, "dropped_too_short": 1},
        "word_count_strict": {"total": 2, "kept": 1, "dropped": 1, "dropped_too_short": 1},
    }
    assert take_stats([loose, strict]) == {"word_count": {}, "word_count_strict": {}}  # cleared


def test_an_unlabelled_spec_dumps_as_before() -> None:
    assert FilterSpec(name="blacklist").model_dump() == {"name": "blacklist", "params": {}}
    labelled = FilterSpec(name="blacklist", label="bl2")
    assert labelled.key == "bl2" and labelled.model_dump(mode="json")["label"] == "bl2"


def test_a_batch_filter_judges_the_batch_that_reaches_it_and_drops_are_reported_in_order() -> None:
    """The top fraction is of the items the filters before it kept; drops come in item order."""
    words, top = build_filters(
        [
            {"name": "word_count", "params": {"min_words": 2}},
            {"name": "score", "params": {"top_fraction": 0.5}},
        ]
    )
    items = [
        rec(f"task {i}" if i != 1 else "x", f"i{i}", scores={"quality": float(q)})
        for i, q in enumerate([1, 9, 3, 2, 5])
    ]
    log: list[str] = []
    for f in (words, top):
        f.on_drop = lambda item, label, reason: log.append(f"{item.id}:{label}")
    kept = run_filters([words, top], items)
    assert [r.id for r in kept] == ["i2", "i4"]  # the best 2 of the 4 that reached it (i1 was too short)
    assert log == ["i0:score", "i1:word_count", "i3:score"]


# -- validate_specs: a run config's lists, checked before anything is built -----------------------


@pytest.mark.parametrize(
    ("kind", "specs", "message"),
    [
        (
            "instruction",
            [{"name": "blacklist"}, {"name": "rouge"}],
            "filter 1 ('rouge'): unknown filter 'rouge'; known filters: bad_prefix",
        ),
        ("dedup", [{"name": "rouge_l", "params": {"threshold": 7}}], "filter 0 ('rouge_l'): bad parameters"),
        (
            "instruction",
            [{"name": "word_count", "params": {"min": 3}}],
            "filter 0 ('word_count'): bad parameters",
        ),
        (
            "dedup",
            [{"name": "rouge_l"}, {"name": "word_count"}],
            "filter 1 ('word_count'): not a dedup filter",
        ),
        (
            "instruction",
            [{"name": "instance_duplicate"}],
            "filter 0 ('instance_duplicate'): a filter of phase 'instances'",
        ),
        ("instruction", [{"name": "evol_no_gain"}], "filter 0 ('evol_no_gain'): a filter of phase 'verdict'"),
        ("instances", [{"name": "max_instances"}, {"name": "blacklist"}], "filter 1 ('blacklist')"),
        (
            "instruction",
            [{"name": "minhash"}],
            "filter 0 ('minhash'): a dedup filter belongs in the dedup list",
        ),
        ("evolve", [{"name": "rouge_l"}], "filter 0 ('rouge_l'): a dedup filter"),
        (
            "evolve",
            [{"name": "evol_unchanged"}, {"name": "evol_unchanged"}],
            "filter 1 ('evol_unchanged'): filter 0 has the same key 'evol_unchanged'; give one a label",
        ),
        (
            "dedup",
            [{"name": "semantic", "params": {"threshold": 3}}],
            "filter 0 ('semantic'): bad parameters",
        ),
        ("dedup", [{"name": "semantic", "params": {"modle": "x"}}], "filter 0 ('semantic'): bad parameters"),
    ],
)
def test_validate_specs_names_the_index_and_the_filter(kind: FilterKind, specs: list, message: str) -> None:
    with pytest.raises(ValueError) as err:
        validate_specs(specs, kind)
    assert message in str(err.value)


def test_validate_specs_accepts_what_the_run_uses() -> None:
    from generator.profiles import ALPACA, ELIMINATOR, SELF_INSTRUCT

    for profile in (SELF_INSTRUCT, ALPACA):
        validate_specs(profile.instruction_filters, "instruction")
        validate_specs(profile.dedup, "dedup")
        validate_specs(profile.instance_filters, "instances")
    validate_specs(
        [*ELIMINATOR, {"name": "score", "params": {"top_fraction": 0.5}}, {"name": "word_count"}], "evolve"
    )
    validate_specs(
        [{"name": "minhash"}, {"name": "rouge_l"}, {"name": "rouge_l", "label": "rouge_l_strict"}], "dedup"
    )


def test_validating_semantic_loads_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import filters.semantic

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("validation must not load the model")

    monkeypatch.setattr(filters.semantic, "load_model", no_model)
    validate_specs([{"name": "semantic", "params": {"threshold": 0.85, "device": "cpu"}}], "dedup")
