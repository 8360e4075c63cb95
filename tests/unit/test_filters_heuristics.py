"""Heuristic instruction filters: Self-Instruct's rules and defaults, reasons and counters."""

from __future__ import annotations

import pytest

from filters.base import build_filters, run_filters
from filters.heuristics import (
    ALPACA_BLACKLIST_EXTRA,
    SELF_INSTRUCT_BLACKLIST,
    BadPrefixFilter,
    BlacklistFilter,
    LeadingPunctuationFilter,
    NonAsciiStartFilter,
    WordCountFilter,
)
from generator.records import Record


def rec(text: str) -> Record:
    return Record(id="r", instruction=text, origin="test")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Name three cats", (False, "too_short")),  # 3 words: Self-Instruct drops <= 3
        ("Name three black cats", True),
        (" ".join(["word"] * 150), True),
        (" ".join(["word"] * 151), (False, "too_long")),
        ("", (False, "too_short")),
    ],
)
def test_word_count_defaults(text: str, expected: object) -> None:
    assert WordCountFilter().filter(rec(text)) == expected


def test_word_count_bounds_are_configurable() -> None:
    f = WordCountFilter(min_words=2, max_words=3)
    assert f.filter(rec("two words")) is True
    assert f.filter(rec("one")) == (False, "too_short")
    assert f.filter(rec("a b c d")) == (False, "too_long")
    with pytest.raises(ValueError):
        WordCountFilter(min_words=5, max_words=4)


def test_blacklist_is_whole_word_and_case_insensitive() -> None:
    f = BlacklistFilter()
    assert f.filter(rec("Describe the IMAGE below.")) == (False, "blacklist:image")
    assert f.filter(rec("Please go to the store and buy milk.")) == (False, "blacklist:go to")
    assert f.filter(rec("Plot a chart of sales.")) == (False, "blacklist:plot")
    # substrings of longer words are fine: "imagine", "profile", "mapping", "drawer", "plotting"
    assert f.filter(rec("Imagine a profile of a mapping drawer plotting nothing.")) is True
    assert f.filter(rec("Compose a song about music.")) is True  # music is Alpaca's word, not Self-Instruct's


def test_blacklist_lists_and_alpaca_extra() -> None:
    assert "go to" in SELF_INSTRUCT_BLACKLIST and len(SELF_INSTRUCT_BLACKLIST) == 13
    assert ALPACA_BLACKLIST_EXTRA == ("video", "audio", "music", "flowchart", "diagram")
    f = BlacklistFilter(extra=ALPACA_BLACKLIST_EXTRA)
    assert f.filter(rec("Compose a song about music.")) == (False, "blacklist:music")
    assert f.filter(rec("Describe the image.")) == (False, "blacklist:image")
    only = BlacklistFilter(words=["cat"])
    assert only.filter(rec("Describe the image.")) is True
    assert only.filter(rec("Describe the Cat.")) == (False, "blacklist:cat")
    assert BlacklistFilter(words=[]).filter(rec("Describe the image.")) is True


def test_bad_prefix_is_case_sensitive_like_self_instruct() -> None:
    f = BadPrefixFilter()
    assert f.filter(rec("Write a program that sorts a list.")) == (False, "bad_prefix:Write a program")
    assert f.filter(rec("write a program that sorts a list.")) is True
    assert BadPrefixFilter(prefixes=["Create"]).filter(rec("Create a list.")) == (False, "bad_prefix:Create")


@pytest.mark.parametrize(
    ("text", "kept"), [("- Write a poem", False), ('"Quote" this', False), ("Write a poem", True), ("", True)]
)
def test_leading_punctuation(text: str, kept: bool) -> None:
    assert LeadingPunctuationFilter().apply(rec(text))[0] is kept


@pytest.mark.parametrize(
    ("text", "kept"), [("写一首诗", False), ("Écris un poème", False), ("Write it", True)]
)
def test_non_ascii_start(text: str, kept: bool) -> None:
    assert NonAsciiStartFilter().apply(rec(text))[0] is kept


def test_chain_from_config_counts_each_reason_and_reports_drops() -> None:
    specs = [
        {"name": "word_count"},
        {"name": "blacklist", "params": {"extra": list(ALPACA_BLACKLIST_EXTRA)}},
        {"name": "bad_prefix"},
        {"name": "leading_punctuation"},
        {"name": "non_ascii_start"},
    ]
    chain = build_filters(specs)
    dropped: list[tuple[str, str, str]] = []
    for f in chain:
        f.on_drop = lambda item, name, reason: dropped.append((item.instruction, name, reason))
    texts = [
        "Too short here",
        "Draw a picture of a horse please",
        "Write a program to add two numbers",
        "* Give me three reasons to smile",
        "Ünicode first letter is not allowed here",
        "Give me three reasons to smile today",
        "Make a video about cooking pasta",
    ]
    kept = run_filters(chain, [rec(t) for t in texts])
    assert [r.instruction for r in kept] == ["Give me three reasons to smile today"]
    assert dropped == [
        ("Too short here", "word_count", "too_short"),
        ("Draw a picture of a horse please", "blacklist", "blacklist:picture"),
        ("Write a program to add two numbers", "bad_prefix", "bad_prefix:Write a program"),
        ("* Give me three reasons to smile", "leading_punctuation", "leading_punctuation"),
        ("Ünicode first letter is not allowed here", "non_ascii_start", "non_ascii_start"),
        ("Make a video about cooking pasta", "blacklist", "blacklist:video"),
    ]
    assert chain[1].stats == {
        "total": 6,
        "kept": 4,
        "dropped": 2,
        "dropped_blacklist:picture": 1,
        "dropped_blacklist:video": 1,
    }
