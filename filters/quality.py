"""Keep items by their Deita-style scores: above a threshold, or the top fraction of a batch.

The teacher writes the scores (`generator/tasks/judge.py::ScoreTask`, 1-6) into `record.scores`;
`deita` is complexity × quality, the product Deita ranks by. This filter only reads them.

A top fraction is a property of a batch, not of one item, so with `top_fraction` the filter judges
batches only (`filter_batch`, through `apply_batch` or `run_filters`; the evolution stage gives it a
round's survivors). Ties at the cut keep batch order, so the choice is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from filters.base import Filter, Judgement, register
from generator.records import Record

SCORE_KEYS = ("complexity", "quality", "deita")


@register
class ScoreFilter(Filter):
    name = "score"
    phase = "scores"

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

    @property
    def batch_level(self) -> bool:  # type: ignore[override]
        return self.top_fraction is not None

    def filter_batch(self, items: Sequence[Record]) -> list[Judgement]:
        """With `top_fraction`: keep the top fraction of the scored items of `items` (rounded up)."""
        top = None
        if self.top_fraction is not None:
            scored = [(i, r) for i, r in enumerate(items) if self.key in r.scores]
            ranked = sorted(scored, key=lambda p: (-p[1].scores[self.key], p[0]))
            top = {r.id for _, r in ranked[: math.ceil(self.top_fraction * len(ranked))]}
        return [self._judge(item, top) for item in items]

    def filter(self, item: Record) -> Judgement:
        if self.top_fraction is not None:
            raise RuntimeError("a score filter with top_fraction judges batches: use filter_batch(items)")
        return self._judge(item, None)

    def _judge(self, item: Record, top: set[str] | None) -> Judgement:
        score = item.scores.get(self.key)
        if score is None:
            return True if self.keep_unscored else (False, "unscored")
        if self.min_score is not None and score < self.min_score:
            return False, "below_threshold"
        if top is not None and item.id not in top:
            return False, "below_top_fraction"
        return True
