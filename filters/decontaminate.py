"""Decontamination: drop items that overlap an evaluation set by word n-grams.

A synthetic dataset must not teach the answers to the benchmark it will be judged on. The user gives
one or more JSONL (or JSON array) files of evaluation prompts; an item is dropped, with reason
`contaminated:<set>`, when either

- it contains at least `threshold` of the distinct n-grams of one evaluation prompt (the prompt leaked
  into the item), or
- at least `threshold` of the item's own n-grams occur in the evaluation set (the item is stitched from
  evaluation text).

Words are rouge-score tokens (lowercase a-z0-9 runs), so case and punctuation do not hide a copy. A
prompt shorter than n words is matched as a whole (its one k-gram); prompts under 4 words are ignored,
they would match everything. The instruction is judged alone and together with each instance input.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from filters.base import Filter, Judgement, ResourceKind, register
from filters.rouge import rouge_tokens
from filters.textio import InputError, read_rows
from generator.records import Contamination, Record

MIN_NGRAM = 4
PROMPT_FIELDS = ("prompt", "instruction", "input", "question", "text", "content")


def _grams(tokens: Sequence[str], k: int) -> set[int]:
    # hashes of the distinct k-grams; a 64-bit hash collision is far rarer than any real overlap
    return {hash(tuple(tokens[i : i + k])) for i in range(len(tokens) - k + 1)}


def _prompt_text(row: Any, field: str | None, where: str) -> str:
    if isinstance(row, str):
        return row
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a string or an object, got {type(row).__name__}")
    fields = (field,) if field else PROMPT_FIELDS
    parts = [row[f] for f in fields if isinstance(row.get(f), str)]
    if not parts:
        raise InputError(f"{where}: no prompt text: expected a string field among {', '.join(fields)}")
    return "\n".join(parts)


class EvalSet:
    """The n-grams of one evaluation set, mapped to the prompts they come from."""

    def __init__(self, prompts: Sequence[str], n: int, name: str) -> None:
        self.name = name
        self.n = n
        self.grams: dict[int, list[int]] = {}  # gram hash -> prompts holding it
        self.prompt_grams: list[int] = []  # distinct grams per prompt
        self.sizes: set[int] = set()  # gram lengths in use: n, and the length of each shorter prompt
        for pid, text in enumerate(prompts):
            tokens = rouge_tokens(text)
            k = min(n, len(tokens))
            grams = _grams(tokens, k) if k >= MIN_NGRAM else set()
            self.prompt_grams.append(len(grams))
            if grams:
                self.sizes.add(k)
            for g in grams:
                self.grams.setdefault(g, []).append(pid)

    @classmethod
    def from_file(
        cls, path: str | Path, n: int, name: str | None = None, field: str | None = None
    ) -> EvalSet:
        """The set of a file, read once per version of it (every job of a server names the same files)."""
        info = Path(path).stat()
        return _read_set(str(path), info.st_mtime_ns, info.st_size, n, name, field)

    def overlap(self, text: str) -> float:
        """The larger of: the best share of one prompt's n-grams found in `text`, and the share of
        `text`'s n-grams found anywhere in the set."""
        tokens = rouge_tokens(text)
        best = 0.0
        hits: Counter[int] = Counter()
        for k in self.sizes:
            if len(tokens) < k:
                continue
            grams = _grams(tokens, k)
            found = [g for g in grams if g in self.grams]
            if k == self.n and grams:
                best = max(best, len(found) / len(grams))
            for g in found:
                hits.update(self.grams[g])
        for pid, count in hits.items():
            best = max(best, count / self.prompt_grams[pid])
        return best


@functools.lru_cache(maxsize=32)
def _read_set(path: str, mtime_ns: int, size: int, n: int, name: str | None, field: str | None) -> EvalSet:
    prompts = [_prompt_text(row, field, f"{path}:{line}") for line, row in read_rows(path)]
    return EvalSet(prompts, n, name or Path(path).stem)


@register
class DecontaminateFilter(Filter):
    """Drop items whose n-gram overlap with an evaluation set reaches `threshold`.

    Args:
        eval_file: a JSONL or JSON-array file of prompts (strings, or objects with a prompt field), or a
            list of such files: each is its own set in the reason.
        n: n-gram length in words (8, as in common instruction-data decontamination).
        threshold: the overlap share (0-1] that counts as contaminated.
        name: the set's name in the reason (default: the file name without extension).
        field: which field of each object holds the prompt (default: the first present of
            prompt, instruction, input, question, text, content; instruction + input are joined).
    """

    name = "decontaminate"
    # a request body names one of the server's eval sets
    resources: ClassVar[Mapping[str, ResourceKind]] = {"eval_file": "eval_sets"}

    def __init__(
        self,
        eval_file: str | Path | Sequence[str | Path],
        n: int = 8,
        threshold: float = 0.5,
        name: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__()
        if n < MIN_NGRAM:
            raise ValueError(f"n must be at least {MIN_NGRAM}, got {n}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        files = [eval_file] if isinstance(eval_file, str | Path) else list(eval_file)
        if name is not None and len(files) != 1:
            raise ValueError("name= names one evaluation file; with several, each is named by its file")
        self.threshold = threshold
        self.sets = [EvalSet.from_file(f, n, name, field) for f in files]

    def filter(self, item: Record) -> Judgement:
        texts = [item.instruction] + [
            f"{item.instruction}\n{i.input}" for i in item.instances if i.input.strip()
        ]
        for eval_set in self.sets:
            score = max(eval_set.overlap(t) for t in texts)
            if score >= self.threshold:
                item.contamination = Contamination(set=eval_set.name, overlap=round(score, 4))
                return False, f"contaminated:{eval_set.name}"
        return True
