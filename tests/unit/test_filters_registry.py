"""Every built-in filter is registered under the name the run config uses, with published defaults."""

from __future__ import annotations

import pytest

from filters.base import REGISTRY, build_filters
from filters.heuristics import ALPACA_BLACKLIST_EXTRA, SELF_INSTRUCT_BLACKLIST

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
