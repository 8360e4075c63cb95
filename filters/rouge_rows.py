"""Full ROUGE-L rows: every candidate against the whole pool, scored a chunk at a time.

A kept instruction stores its top-10 most similar pool items and its mean F over the pool (as
Self-Instruct does), so every kept item is scored against every pool item anyway. Once those rows
exist, the keep-or-drop decision is a comparison with the threshold, and the prefix index
(`filters/rouge.py`) would be work done twice. `PoolRows` therefore scores the candidates announced
with `prepare()` in chunks: one rapidfuzz `cdist` of the chunk against the pool (C, SIMD, on every
core) and one of the chunk against itself. Decisions stay sequential and exact: a candidate is compared
with the pool as the chunk found it plus the chunk members that joined before it. The neighbours of
the members are ranked later, a chunk at a time, off the decision path.

Rows hold LCS/(m+n), which is F/2 in exact arithmetic: ranking by it ties equal fractions exactly, so
the earliest pool item wins a tie however rouge-score rounds. Decisions and reported scores recover the
integer LCS from it and use rouge-score's own float formula (`rouge_f`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from filters.base import Match, Neighbourhood
from filters.rouge import Encoded, RougeLIndex, rouge_f, rouge_f_many, top_k_rows
from generator.records import Record


def _cdist(
    queries: Sequence[str | list[int]], choices: Sequence[str | list[int]], workers: int
) -> np.ndarray:
    if not queries or not choices:
        return np.zeros((len(queries), len(choices)), dtype=np.int32)
    workers = workers if len(queries) > 1 else 1  # threads cost more than one row gains
    return process.cdist(queries, choices, scorer=LCSseq.similarity, dtype=np.int32, workers=workers)


def _half_f(lcs: np.ndarray, m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """LCS/(m+n) for a matrix of LCS lengths; 0 where both texts are empty (F is 0 there too)."""
    denom = m[:, None] + n[None, :]
    return np.divide(lcs, denom, out=np.zeros(lcs.shape), where=denom > 0)


def _exact_f(half: float, m: int, n: int) -> float:
    return rouge_f(round(half * (m + n)), m, n)  # half·(m+n) is the integer LCS to within 1e-12


class _Chunk:
    """Candidates scored together against the pool as it stood (`start` items) and among themselves.

    Deciding needs little: F > t needs an LCS of at least α(m) whatever the other length
    (`RougeLIndex.min_overlap`), so one integer max per row screens the pool part. The rest of the
    row (mean, top k) is read in `neighbours()`, for members only, in blocks small enough for cache.
    """

    def __init__(self, index: RougeLIndex, records: Sequence[Record], workers: int) -> None:
        self.records = list(records)
        self.start = start = len(index)
        self.encs = [index.encode_new(r.instruction) for r in records]  # new tokens get ids here
        seqs = [e.seq for e in self.encs]
        self.m = np.array([len(e.ids) for e in self.encs], dtype=np.int32)
        self.pool_lens = np.array(index._lens[:start], dtype=np.int32)
        self.lcs = _cdist(seqs, index._seqs[:start], workers)  # rows x pool, int32
        self.own = _half_f(_cdist(seqs, seqs, workers), self.m, self.m)
        longest = self.lcs.max(axis=1) if start else np.zeros(len(seqs), dtype=np.int32)
        self.may_pass = [bool(x >= index.min_overlap(int(m))) for x, m in zip(longest, self.m, strict=True)]
        self.members: list[int] = []  # rows that joined the pool, in order: positions start, start + 1, ...
        self.rank: dict[int, int] = {}  # member row -> its place in `members`
        self.described = 0  # members whose neighbours were ranked already

    def best_above(self, r: int, threshold: float, lens: Sequence[int]) -> Match | None:
        """The pool item with the highest F above `threshold` (the earliest on a tie), or None.

        half_f within 1e-9 of threshold/2 holds every pair that can pass, whatever the rounding; the
        few it lets through are decided by rouge-score's float formula.
        """
        cut = max(threshold / 2 - 1e-9, 0.0)
        m = int(self.m[r])
        near: list[tuple[int, float]] = []
        if self.may_pass[r]:
            row = _half_f(self.lcs[r : r + 1], self.m[r : r + 1], self.pool_lens)[0]
            cols = np.flatnonzero(row > cut)
            near += zip(cols.tolist(), row[cols].tolist(), strict=True)
        for c in np.flatnonzero(self.own[r] > cut).tolist():  # rarely any: near-duplicates in one batch
            k = self.rank.get(c)
            if k is not None:
                near.append((self.start + k, float(self.own[r, c])))
        near.sort()
        best: Match | None = None
        for j, half in near:  # ascending j: a later tie never replaces the best
            f = _exact_f(half, m, lens[j])
            if f > threshold and (best is None or f > best.score):
                best = Match(j, f)
        return best

    def neighbours(self, top_k: int, texts: Sequence[str], lens: Sequence[int]) -> list[Neighbourhood]:
        """Top-k `(text, F)` and mean F of each member against the pool before it, in joining order."""
        start, members, first = self.start, self.members, self.described
        self.described = len(members)
        fresh = members[first:]
        if not fresh:
            return []
        # Each member's best k from the pool and its best k among the members before it, side by side
        # (value -1 pads a short list), then merged per row: highest LCS/(m+n) first, earliest on a tie.
        pool_sum, half, pos = self._pool_part(fresh, top_k)
        own = self.own[np.ix_(fresh, members)]
        own[np.arange(len(members))[None, :] >= np.arange(first, len(members))[:, None]] = -1.0
        own_sum = np.where(own >= 0, own, 0.0).sum(axis=1)  # a member sees the members before it
        own_half, own_pos = np.full((len(fresh), top_k), -1.0), np.zeros((len(fresh), top_k), dtype=np.int64)
        for i, cols in enumerate(top_k_rows(own, top_k)):
            own_half[i, : len(cols)], own_pos[i, : len(cols)] = own[i, cols], [start + c for c in cols]
        half, pos = np.hstack([half, own_half]), np.hstack([pos, own_pos])
        order = np.lexsort((pos, -half))[:, :top_k]
        half, pos = np.take_along_axis(half, order, axis=1), np.take_along_axis(pos, order, axis=1)
        # rouge-score's F from the integer LCS (padding, at -1, gets a negative LCS: 0, dropped below)
        m = self.m[fresh].astype(np.float64)[:, None]
        n = np.asarray(lens[: start + len(members)], dtype=np.float64)[pos]
        f = rouge_f_many(np.rint(half * (m + n)), m, n)
        out: list[Neighbourhood] = []
        for i, (row_half, row_pos, row_f) in enumerate(
            zip(half.tolist(), pos.tolist(), f.tolist(), strict=True)
        ):
            count = start + first + i
            scored = [(texts[j], fj) for h, j, fj in zip(row_half, row_pos, row_f, strict=True) if h >= 0]
            mean = 2 * float(pool_sum[i] + own_sum[i]) / count if count else None  # nothing before it: None
            out.append((self.records[fresh[i]], scored, mean))
        return out

    def _pool_part(self, members: list[int], top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per member row: the sum of half_f over the pool part, and its top k half_f and positions."""
        sums = np.zeros(len(members))
        top_half = np.full((len(members), top_k), -1.0)
        top_pos = np.zeros((len(members), top_k), dtype=np.int64)
        for first in range(0, len(members) if self.start else 0, _BLOCK):
            rows = members[first : first + _BLOCK]
            half = _half_f(self.lcs[rows], self.m[rows], self.pool_lens)
            sums[first : first + len(rows)] = half.sum(axis=1)
            for i, top in enumerate(top_k_rows(half, top_k)):
                top_half[first + i, : len(top)], top_pos[first + i, : len(top)] = half[i, top], top
        return sums, top_half, top_pos


_BLOCK = 16  # rows scored together: 16 x a 10K pool of float64 is 1.3 MB, about one core's cache
# Chunks wait for `neighbours()` with their LCS rows; past this many values (256 MiB of int32) they are
# ranked at once, so a caller that never asks holds results, not rows.
_MAX_HELD = 2**26


class PoolRows:
    """Decides announced candidates from full rows scored in chunks, in any order, exactly.

    `prepare(records)` announces the next candidates; `best_above(record)` scores one against the
    current pool (returning its encoding for `index.add_encoded` and the near-duplicate, if any);
    `joined(record)` says it was added; `neighbours()` ranks the members' neighbours and lets the
    chunks go. A record that was not announced, or a pool that grew behind the chunk's back
    (`index.add`), is scored on its own: slower, never wrong.
    """

    def __init__(self, index: RougeLIndex, top_k: int, chunk: int = 256, workers: int = -1) -> None:
        self.index = index  # its threshold decides
        self.top_k = top_k
        self.chunk = chunk
        self.workers = workers  # cdist threads: the decisions wait on it, so it may use every core
        self._announced: dict[int, tuple[int, int]] = {}  # id(record) -> (batch number, row)
        self._batches: list[list[Record]] = []
        self._current: dict[int, _Chunk] = {}  # batch number -> the chunk scoring it now
        self._held: list[_Chunk] = []  # chunks with members whose neighbours are not ranked yet
        self._held_values = 0  # LCS values those chunks hold
        self._ranked: list[Neighbourhood] = []  # neighbours ranked early, to let rows go
        self._last: tuple[Record, _Chunk, int] | None = None  # the record `joined` may be told about
        self._renumber_at = 0  # pool size at which token ids are ranked by frequency again (doubles)

    def prepare(self, records: Sequence[Record]) -> None:
        if len(self.index) >= self._renumber_at:  # no encoding is in flight between batches
            self.index.renumber_by_frequency()
            self._renumber_at = 2 * len(self.index)
        self._batches = [list(records[i : i + self.chunk]) for i in range(0, len(records), self.chunk)]
        self._announced = {id(r): divmod(i, self.chunk) for i, r in enumerate(records)}
        self._current = {}

    def best_above(self, record: Record) -> tuple[Encoded, Match | None]:
        chunk, r = self._chunk_for(record)
        self._last = (record, chunk, r)
        return chunk.encs[r], chunk.best_above(r, self.index.threshold, self.index._lens)

    def joined(self, record: Record) -> None:
        """`record`, just judged by `best_above`, was added to the index."""
        assert self._last is not None and self._last[0] is record, "joined() must follow its best_above()"
        _, chunk, r = self._last
        self._last = None
        if not any(chunk is c for c in self._held):
            self._held.append(chunk)
            self._held_values += chunk.lcs.size
        chunk.rank[r] = len(chunk.members)
        chunk.members.append(r)
        if self._held_values > _MAX_HELD:  # nobody asks for neighbours: rank them now, keep the results
            ranked = self.neighbours()
            self._ranked = ranked
        self._announced.pop(id(record), None)

    def _chunk_for(self, record: Record) -> tuple[_Chunk, int]:
        where = self._announced.get(id(record))
        if where is None:
            return _Chunk(self.index, [record], self.workers), 0
        number, r = where
        chunk = self._current.get(number)
        if chunk is None or len(self.index) != chunk.start + len(chunk.members):
            # first use, or the pool grew behind it: score the batch again against the pool as it is
            chunk = self._current[number] = _Chunk(self.index, self._batches[number], self.workers)
        return chunk, r

    def neighbours(self) -> list[Neighbourhood]:
        """Neighbours of every member since the last call, in joining order; their chunks are let go."""
        held, self._held, self._held_values = self._held, [], 0
        texts, lens = self.index.texts, self.index._lens
        ranked, self._ranked = self._ranked, []
        return ranked + [n for chunk in held for n in chunk.neighbours(self.top_k, texts, lens)]
