"""Exact ROUGE-L dedup, fast.

Self-Instruct and Alpaca reject a candidate when its ROUGE-L F-measure
(`rouge_score.rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)`) against any seed or kept
instruction is above 0.7. They score every pair in pure Python, which is O(N²) LCS tables. This module makes
the *same decisions* (tested against rouge-score in tests/unit/test_rouge_property.py) far faster:

1. Tokenize once with rouge-score's tokenizer (`rouge_tokens`), and give each distinct token one Unicode
   code point, so an instruction becomes a short string and rapidfuzz's bit-parallel LCS can compare two
   instructions in C (`LCSseq.similarity` on those strings is the token LCS).
2. Find candidates with a prefix filter (the AllPairs/PPJoin idea from set-similarity joins) instead of
   scoring every pair. F = 2·LCS/(m+n) > t needs LCS >= α(m) = ⌈t·m/(2-t)⌉ whatever the other length
   (`min_overlap`), and LCS <= the multiset overlap of the two token lists. Under one fixed order of
   token occurrences, two lists sharing at least α elements must share an element in their first
   `len - α + 1` elements, so each pool item is indexed under only that prefix, and a candidate probes
   only its own prefix. The order puts the newest token id first: common words get small ids early in
   the stream, so they fall out of the prefixes and the posting lists stay short.
3. Read the probed posting lists smallest first and score each list with one rapidfuzz call, which
   screens with 2·LCS/(m+n) (the same F in exact arithmetic); the few that come near the threshold get
   rouge-score's own float formula (`rouge_f`), so a score sitting on the threshold is decided bit for
   bit as the oracle decides it (2·7/(9+11) rounds above 0.7 and is rejected; 2·7/(10+10) does not).
   A near-duplicate shares the rare tokens, so most rejections stop after the first short list; only
   a keep has to read them all.

Engine notes §C bounded F with Σ min(count) over a full inverted index; that touches every posting of
common words such as "the" for every candidate, which grows with the pool. The prefix filter gives the
same guarantee (it never skips a pair that can pass) and skips those lists.

The `rouge_l` filter (`filters/rouge_filter.py`) uses this index when only decisions are wanted. When
kept items also get the top-k most similar pool items and the mean F (as the originals store), every
pair is scored anyway, and the decisions come from those rows instead (`filters/rouge_rows.py`).
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Indel, LCSseq

from filters.base import Match

_TOKEN_RE = re.compile(r"[a-z0-9]+")
_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)  # code points a str cannot hold
_OCCURRENCE = 1 << 32  # element key = token id + k·2³² for the k-th repeat of a token


def rouge_tokens(text: str) -> list[str]:
    """rouge-score's default tokenizer without a stemmer, same output.

    rouge-score lowercases, replaces every run of characters outside [a-z0-9] with a space and keeps the
    [a-z0-9]+ pieces; `findall` on the lowercased text gives the same list. Non-ASCII letters never
    survive, so a Chinese instruction has no tokens at all and scores 0 against everything (the oracle's
    quirk, kept on purpose so decisions match).
    """
    return _TOKEN_RE.findall(text.lower())


def rouge_f(lcs: int, m: int, n: int) -> float:
    """rouge-score's LCS F-measure for an LCS of `lcs` tokens between lists of m and n tokens.

    The same float operations in the same order as `rouge_scorer._score_lcs` + `scoring.fmeasure`
    (precision and recall swap places when the arguments do, which leaves F bit for bit the same).
    """
    if lcs == 0:  # also the empty-list case, where rouge-score returns 0 without dividing
        return 0.0
    precision = lcs / n
    recall = lcs / m
    return 2 * precision * recall / (precision + recall)


def rouge_f_many(lcs: np.ndarray, m: int | np.ndarray, n: np.ndarray) -> np.ndarray:
    """`rouge_f` element by element, over arrays that broadcast together (one query against many
    items, or a matrix of rows), with the same float64 operations in the same order."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = lcs / n
        recall = lcs / m
        f = 2 * precision * recall / (precision + recall)
    return np.where(lcs > 0, f, 0.0)  # no overlap (an empty list included): 0 without dividing


class Encoded(NamedTuple):
    ids: list[int]  # token ids; 0 for a token the pool has never seen (it can match nothing)
    seq: str | list[int]  # the ids as code points (a list of ints only past U+10FFFF distinct tokens)


def _as_sequence(ids: list[int]) -> str | list[int]:
    # rapidfuzz compares a str by code point and a list of ints by value, and the two mix, so a pool
    # with more distinct tokens than Unicode has code points stays exact.
    if not ids or max(ids) <= _MAX_CODE_POINT:
        return "".join(map(chr, ids))
    return list(ids)


def _elements(ids: list[int]) -> list[int]:
    """Token occurrences as prefix-filter elements, in the global order (newest token id first).

    A repeated token gives one element per occurrence, so a shared element count is the multiset overlap,
    an upper bound on the LCS. Unknown tokens (id 0) sort last and are left out: no pool item has them.
    """
    out: list[int] = []
    prev, k = -1, 0
    for t in sorted(ids, reverse=True):
        if t == 0:
            break
        k = k + 1 if t == prev else 0
        out.append(t + k * _OCCURRENCE)
        prev = t
    return out


class RougeLIndex:
    """The pool of texts and its prefix index: answers "is this text a near-duplicate?" exactly.

    `add` puts a text in the pool unconditionally (seeds, or the accepted items on resume, in order),
    with the id of its item if it has one; `check` finds a pool item with F > threshold; `scores` gives
    F against every pool item.
    """

    def __init__(self, threshold: float = 0.7, prefix_index: bool = True) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.threshold = threshold
        self.prefix_index = prefix_index  # False: only scores (another index proposes candidates)
        self.texts: list[str] = []
        self.ids: list[str | None] = []  # the pool items' ids, beside their texts
        self._seqs: list[str | list[int]] = []
        # token counts: an int array indexes fast one at a time and lends numpy a view for whole rows
        self._lens = array("i")
        self._vocab: dict[str, int] = {}
        self._counts: Counter[int] = Counter()  # token id -> occurrences in the pool (no prefix index)
        # prefix element -> the pool positions indexed under it, and their sequences (read together)
        self._postings: dict[int, tuple[list[int], list[str | list[int]]]] = {}

    def __len__(self) -> int:
        return len(self.texts)

    # -- the prefix-filter arithmetic ----------------------------------------------------------------

    def min_overlap(self, n: int) -> int:
        """α(n): the LCS any pair with one side of n tokens needs for F > threshold, rounded down safely.

        F > t with LCS <= min(m, n) implies LCS > t·n/(2-t) whatever m is. rouge_f's rounding moves F by
        a few ulps, far less than the (1 - 1e-9) slack, so α never exceeds what a passing pair has.
        """
        t = self.threshold
        return max(1, math.ceil(t * n / (2 - t) * (1 - 1e-9)))

    # -- pool ----------------------------------------------------------------------------------------

    def _encode(self, text: str) -> Encoded:
        vocab = self._vocab
        ids = [vocab.get(tok, 0) for tok in rouge_tokens(text)]
        return Encoded(ids, _as_sequence(ids))

    def _token_id(self, token: str) -> int:
        tid = self._vocab.get(token)
        if tid is None:
            # ids in first-seen order, skipping the surrogate code points a str cannot hold
            tid = len(self._vocab) + 1
            tid = tid if tid < _SURROGATES.start else tid + len(_SURROGATES)
            self._vocab[token] = tid
        return tid

    def encode_new(self, text: str) -> Encoded:
        """`text` as token ids, giving new tokens an id (an item about to join the pool, or rows)."""
        ids = [self._token_id(tok) for tok in rouge_tokens(text)]
        return Encoded(ids, _as_sequence(ids))

    def renumber_by_frequency(self) -> None:
        """Give the tokens most frequent in the pool the smallest ids, and re-encode the pool.

        rapidfuzz looks a code point below 256 up in a table and a larger one in a hash map, which
        makes `cdist` about 3x slower, so most comparisons get faster when the common tokens sit below
        256. LCS does not depend on the labels. Only for an index without the prefix index (whose
        order is the ids'), and only while no encoding made before is still to be added.
        """
        if self.prefix_index:
            raise RuntimeError("the prefix index orders by id: renumbering would break it")
        if len(self._vocab) + len(_SURROGATES) >= _MAX_CODE_POINT:
            return  # ids past U+10FFFF are int lists: leave such a pool as it is
        ranked = sorted(self._vocab.items(), key=lambda kv: -self._counts[kv[1]])  # ties: first seen
        mapping: dict[int, int] = {}
        for rank, (token, old) in enumerate(ranked, start=1):
            new = rank if rank < _SURROGATES.start else rank + len(_SURROGATES)
            mapping[old] = new
            self._vocab[token] = new
        self._seqs = [s.translate(mapping) for s in self._seqs]  # type: ignore[union-attr]
        self._counts = Counter({mapping[k]: v for k, v in self._counts.items()})

    def add(self, text: str, id: str | None = None) -> int:
        """Put `text` (of the item `id`) in the pool without checking it; returns its pool position."""
        return self.add_encoded(text, self.encode_new(text), id)

    def add_encoded(self, text: str, enc: Encoded, id: str | None = None) -> int:
        """`add` for a text already encoded by `encode_new` (no second tokenization)."""
        ids, seq = enc
        pos = len(self.texts)
        self.texts.append(text)
        self.ids.append(id)
        if not self.prefix_index:
            self._counts.update(ids)  # only `renumber_by_frequency` reads them
        self._seqs.append(seq)
        n = len(ids)
        self._lens.append(n)
        if n and self.prefix_index:
            postings = self._postings
            for key in _elements(ids)[: n - self.min_overlap(n) + 1]:
                bucket = postings.get(key)
                if bucket is None:
                    postings[key] = ([pos], [seq])
                else:
                    bucket[0].append(pos)
                    bucket[1].append(seq)
        return pos

    def check(self, text: str) -> Match | None:
        """The most similar pool item with F > threshold, or None when `text` may join the pool."""
        return self.check_encoded(self._encode(text))

    def check_encoded(self, enc: Encoded) -> Match | None:
        m = len(enc.ids)
        if m == 0:
            return None  # no tokens: F is 0 against everything, as in rouge-score
        if not self.prefix_index:
            raise RuntimeError("this index keeps no prefix index; check candidates with best_of")
        elements = _elements(enc.ids)
        probe = elements[: len(elements) - self.min_overlap(m) + 1]
        # Every item that can pass sits in one of these posting lists, and the order they are read in is
        # free: smallest first. A near-duplicate shares the rare tokens, so most rejections end after one
        # short list and only a keep reads them all. An item in two lists is scored twice, which costs
        # less than removing the repeats.
        buckets = sorted(
            (b for b in map(self._postings.get, probe) if b is not None), key=lambda b: len(b[0])
        )
        for positions, seqs in buckets:
            match = self._best_in(enc, m, positions, seqs)
            if match is not None:
                return match
        return None

    def _best_in(
        self, enc: Encoded, m: int, positions: Sequence[int], seqs: Sequence[str | list[int]]
    ) -> Match | None:
        """The best of these pool items (`positions`, with their `seqs`) with F > threshold, or None."""
        # One C call screens them with rapidfuzz's normalised Indel similarity, which is 2·LCS/(m+n):
        # ROUGE-L's F in exact arithmetic. The few within 1e-6 of the threshold are then scored with
        # rouge-score's own float formula, so a score on the threshold is decided as the oracle decides.
        screened = process.extract(
            enc.seq,
            seqs,
            scorer=Indel.normalized_similarity,
            score_cutoff=max(0.0, self.threshold - 1e-6),
            limit=None,
        )
        best: Match | None = None
        lens = self._lens
        for seq, _, i in screened:
            j = positions[i]
            f = rouge_f(LCSseq.similarity(enc.seq, seq), m, lens[j])
            # the earliest pool item wins a tie, so the order of the lists never shows
            if f > self.threshold and (
                best is None or f > best.score or (f == best.score and j < best.position)
            ):
                best = Match(j, f)
        return best

    def scores(self, text: str, positions: Sequence[int] | None = None) -> np.ndarray:
        """F (rouge-score's value) of `text` against every pool item in pool order, or against the
        items at `positions`, in that order."""
        return self._scores(self._encode(text), positions)

    def _scores(self, enc: Encoded, positions: Sequence[int] | None = None) -> np.ndarray:
        if positions is None:
            choices: Sequence[str | list[int]] = self._seqs
            lens = np.array(self._lens, dtype=np.int32)  # a copy: a view would pin the array's size
        else:
            choices = [self._seqs[j] for j in positions]
            lens = np.array([self._lens[j] for j in positions], dtype=np.int32)
        if not choices or not enc.ids:
            return np.zeros(len(choices))
        lcs = process.cdist([enc.seq], choices, scorer=LCSseq.similarity, dtype=np.int32)[0]
        return rouge_f_many(lcs, len(enc.ids), lens)

    def best_of(self, text: str, positions: Sequence[int]) -> Match | None:
        """The best pool item among `positions` with F > threshold (candidates from another index)."""
        enc = self._encode(text)
        if not enc.ids or not positions:
            return None
        return self._best_in(enc, len(enc.ids), positions, [self._seqs[j] for j in positions])

    def offer(self, text: str) -> Match | None:
        """`check`, then `add` when it passes: the Self-Instruct loop for one candidate."""
        match = self.check(text)
        if match is None:
            self.add(text)
        return match


def top_k_rows(rows: np.ndarray | Sequence[np.ndarray], k: int) -> list[list[int]]:
    """For each row, the columns of its k highest values, highest first, earliest column on a tie.

    Many rows in a few numpy calls. Values are >= 0; -1 marks a missing one (rows of other lengths are
    padded with it). Only values that can reach the top k are sorted.
    """
    if isinstance(rows, np.ndarray):
        matrix = rows
    else:
        matrix = np.full((len(rows), max((len(r) for r in rows), default=0)), -1.0)
        for i, r in enumerate(rows):
            matrix[i, : len(r)] = r
    height, width = matrix.shape
    if k <= 0 or not height:
        return [[] for _ in range(height)]
    if width > k:
        # The k-th largest of a row is at least the k-th largest of any k of its values, such as the
        # maxima of k or more segments: everything below that bound is out of the top k.
        segments = min(max(32, k), width)
        step = width // segments
        maxima = matrix[:, : segments * step].reshape(height, segments, step).max(axis=2)
        bound = np.partition(maxima, segments - k, axis=1)[:, segments - k]
        chosen = (matrix >= bound[:, None]) & (matrix >= 0)
    else:
        chosen = matrix >= 0
    r, c = np.nonzero(chosen)
    order = np.lexsort((c, -matrix[r, c], r))
    r, c = r[order], c[order]
    keep = np.arange(len(r)) - np.searchsorted(r, r) < k  # rank within its row
    out: list[list[int]] = [[] for _ in range(height)]
    for i, j in zip(r[keep].tolist(), c[keep].tolist(), strict=True):
        out[i].append(j)
    return out
