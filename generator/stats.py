"""Run accounting: per-stage teacher counters, per-filter drops, tokens, time and cost.

Counters are plain `Counter`s so they add up across rounds and stages, and survive a resume (saved in
each stage's section of state.json as `SavedStats`, added back on restart).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from generator.state import SavedStats
from generator.teachers.base import TeacherResponse


class RunStats:
    def __init__(self, saved: SavedStats | None = None) -> None:
        saved = saved or SavedStats()
        self.stages: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.filters: defaultdict[str, Counter[str]] = defaultdict(Counter)  # keyed by filter label
        self.counts: Counter[str] = Counter(saved.counts)
        self.elapsed_s: float = saved.elapsed_s
        self.timings: defaultdict[str, float] = defaultdict(float, saved.timings)  # seconds per step
        for stage, counters in saved.stages.items():
            self.stages[stage].update(counters)
        for name, counters in saved.filters.items():
            self.filters[name].update(counters)

    def teacher_call(self, stage: str, responses: list[TeacherResponse]) -> None:
        s = self.stages[stage]
        for r in responses:
            s["requests"] += 1
            s["cache_hits"] += r.cached
            s["failed"] += not r.ok
            s["truncated"] += r.truncated
            s["retries"] += max(0, r.attempts - 1)
            s["prompt_tokens"] += r.prompt_tokens
            s["completion_tokens"] += r.completion_tokens
            s["generated_tokens"] += (
                0 if r.cached else r.completion_tokens
            )  # what the teacher really produced

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Add the wall time of the block to `timings[step]`: where a run spends its time."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] += time.perf_counter() - start

    def add_filter_stats(self, stats: Mapping[str, Mapping[str, int]]) -> None:
        for name, counters in stats.items():
            self.filters[name].update(counters)

    def add(self, other: RunStats) -> None:
        """Add another's counters and times (a round's, when it commits; a stage's, in stats.json)."""
        self.counts.update(other.counts)
        self.elapsed_s += other.elapsed_s
        for step, seconds in other.timings.items():
            self.timings[step] += seconds
        for stage, counters in other.stages.items():
            self.stages[stage].update(counters)
        self.add_filter_stats(other.filters)

    def tokens(self, kind: str) -> int:
        return sum(s[f"{kind}_tokens"] for s in self.stages.values())

    def to_state(self) -> SavedStats:
        return SavedStats(
            counts=dict(self.counts),
            elapsed_s=self.elapsed_s,
            timings=dict(self.timings),
            stages={k: dict(v) for k, v in self.stages.items()},
            filters={k: dict(v) for k, v in self.filters.items()},
        )

    def summary(self, price_prompt_per_1m: float, price_completion_per_1m: float) -> dict[str, Any]:
        prompt, completion, generated = (
            self.tokens("prompt"),
            self.tokens("completion"),
            self.tokens("generated"),
        )
        requests = sum(s["requests"] for s in self.stages.values())
        hits = sum(s["cache_hits"] for s in self.stages.values())
        return {
            "counts": dict(self.counts),
            "stages": {k: dict(v) for k, v in self.stages.items()},
            "filters": {k: dict(v) for k, v in self.filters.items()},
            "teacher": {
                "requests": requests,
                "cache_hits": hits,
                "sent": requests - hits,
                "failed": sum(s["failed"] for s in self.stages.values()),
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "generated_tokens": generated,
                "generated_tokens_per_s": round(generated / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            },
            "wall_time_s": round(self.elapsed_s, 2),
            "step_seconds": {k: round(v, 2) for k, v in self.timings.items()},
            # The estimate prices every token, cached or not: what the dataset would cost from scratch.
            "cost_estimate_usd": round(
                prompt * price_prompt_per_1m / 1e6 + completion * price_completion_per_1m / 1e6, 6
            ),
        }
