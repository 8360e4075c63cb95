"""Keep items by their Deita-style scores: above a threshold, or the top fraction of a batch.

The teacher writes the scores (`generator/tasks/judge.py::ScoreTask`, 1-6) into `record.scores`;
`deita` is complexity × quality, the product Deita ranks by. This filter only reads them.

A top fraction is a property of a batch, not of one item: call `fit(batch)` first (the evolution stage
does, once per round), then `filter` each item of that batch. Ties at the cut keep batch order, so the
choice is deterministic.
"""

from __future__ import annotations

import math
from typing import ClassVar

from filters.base import Filter, register
from filters.eliminator import Needs
from generator.records import Record

SCORE_KEYS = ("complexity", "quality", "deita")


@register
class ScoreFilter(Filter):
    name = "score"
    needs: ClassVar[Needs] = "scores"

    def __init__(
        self,
        key: str = "quality",
        min_score: float | None = None,
        top_fraction: float | None = None,
        keep_unscored: bool = False,
    ) -> None:
        super().__init__()
        if key not in SCORE_KEYS:
            raise TypeError(f"key must be one of {', '.join(SCORE_KEYS)}, got {key!r}")
        if min_score is None and top_fraction is None:
            raise TypeError("give min_score, top_fraction or both")
        if top_fraction is not None and not 0 < top_fraction <= 1:
            raise TypeError(f"top_fraction must be in (0, 1], got {top_fraction}")
        self.key, self.min_score, self.top_fraction = key, min_score, top_fraction
        self.keep_unscored = keep_unscored
        self._top: set[str] | None = None

    def fit(self, batch: list[Record]) -> None:
        """Choose the top `top_fraction` of the scored items of `batch` (rounded up)."""
        if self.top_fraction is None:
            return
        scored = [(i, r) for i, r in enumerate(batch) if self.key in r.scores]
        ranked = sorted(scored, key=lambda p: (-p[1].scores[self.key], p[0]))
        keep = math.ceil(self.top_fraction * len(ranked))
        self._top = {r.id for _, r in ranked[:keep]}

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        score = item.scores.get(self.key)
        if score is None:
            return True if self.keep_unscored else (False, "unscored")
        if self.min_score is not None and score < self.min_score:
            return False, "below_threshold"
        if self.top_fraction is not None:
            if self._top is None:
                raise RuntimeError("score filter with top_fraction: call fit(batch) before filter(item)")
            if item.id not in self._top:
                return False, "below_top_fraction"
        return True
