"""Self-Instruct's heuristic instruction filters (`post_process_gpt3_response`), one filter per rule.

The defaults are the published ones; Alpaca uses the same rules with five more blacklisted words. They
judge `record.instruction` as the parser left it (whitespace collapsed, first letter capitalised).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

from filters.base import Filter, register
from generator.records import Record

SELF_INSTRUCT_BLACKLIST: tuple[str, ...] = (
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
)
"""Words a text-only model cannot act on (Self-Instruct's list)."""

ALPACA_BLACKLIST_EXTRA: tuple[str, ...] = ("video", "audio", "music", "flowchart", "diagram")
"""Alpaca's additions to the Self-Instruct blacklist."""


@register
class WordCountFilter(Filter):
    """Drop instructions with fewer than `min_words` or more than `max_words` words.

    Self-Instruct drops `len(split()) <= 3 or > 150`, i.e. keeps 4 to 150 words.
    """

    name = "word_count"

    def __init__(self, min_words: int = 4, max_words: int = 150) -> None:
        super().__init__()
        if min_words > max_words:
            raise ValueError(f"min_words ({min_words}) is above max_words ({max_words})")
        self.min_words = min_words
        self.max_words = max_words

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        n = len(item.instruction.split())
        if n < self.min_words:
            return False, "too_short"
        if n > self.max_words:
            return False, "too_long"
        return True


@register
class BlacklistFilter(Filter):
    """Drop instructions containing a blacklisted word or phrase: whole word, any case (`\\b(w)\\b`).

    Args:
        words: the list; None means Self-Instruct's (`SELF_INSTRUCT_BLACKLIST`).
        extra: more words on top, e.g. `ALPACA_BLACKLIST_EXTRA`.
    """

    name = "blacklist"

    def __init__(self, words: Iterable[str] | None = None, extra: Iterable[str] = ()) -> None:
        super().__init__()
        listed = list(SELF_INSTRUCT_BLACKLIST if words is None else words) + list(extra)
        self.words = list(dict.fromkeys(w for w in listed if w.strip()))  # keep order, drop repeats
        # one pattern to find whether any word occurs, then the first listed word that does, for the reason
        self._patterns = [re.compile(rf"\b({re.escape(w)})\b", re.IGNORECASE) for w in self.words]
        self._any = (
            re.compile(r"\b(" + "|".join(re.escape(w) for w in self.words) + r")\b", re.IGNORECASE)
            if self.words
            else None
        )

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        text = item.instruction
        if self._any is None or not self._any.search(text):
            return True
        word = next(w for w, p in zip(self.words, self._patterns, strict=True) if p.search(text))
        return False, f"blacklist:{word}"


@register
class BadPrefixFilter(Filter):
    """Drop instructions starting with one of `prefixes` (case-sensitive, as in Self-Instruct).

    The model kept bolting "Write a program" onto tasks that a program cannot be checked for.
    """

    name = "bad_prefix"

    def __init__(self, prefixes: Iterable[str] = ("Write a program",)) -> None:
        super().__init__()
        self.prefixes = tuple(p for p in prefixes if p)

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        for prefix in self.prefixes:
            if item.instruction.startswith(prefix):
                return False, f"bad_prefix:{prefix}"
        return True


@register
class LeadingPunctuationFilter(Filter):
    """Drop instructions whose first character is ASCII punctuation (`string.punctuation`).

    Those are list debris from parsing ("- ...", "...", "2) ..." after the split). An empty instruction
    is left to `word_count`.
    """

    name = "leading_punctuation"

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        text = item.instruction
        if text and text[0] in string.punctuation:
            return False, "leading_punctuation"
        return True


@register
class NonAsciiStartFilter(Filter):
    """Drop instructions whose first character is not ASCII (Self-Instruct's English-only rule)."""

    name = "non_ascii_start"

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        text = item.instruction
        if text and not text[0].isascii():
            return False, "non_ascii_start"
        return True
