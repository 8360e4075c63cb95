"""Run accounting: per-stage and per-teacher counters, per-filter drops, tokens, time and cost.

Counters are plain `Counter`s so they add up across rounds and stages, and survive a resume (saved in
each stage's section of state.json as `SavedStats`, added back on restart). Teacher calls are counted
per stage and, when a run routes stages to several teachers, per teacher and stage: each teacher's
tokens are priced at its own prices.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from generator.state import SavedStats
from generator.teachers.base import TeacherResponse
from generator.teachers.routing import DEFAULT

Prices = Mapping[str, tuple[float, float]]  # teacher name -> (per 1M prompt tokens, per 1M completion)

# What one teacher call adds to its stage's (and its teacher's) counters.
CALL_COUNTERS = (
    "requests",
    "cache_hits",
    "failed",
    "truncated",
    "retries",
    "prompt_tokens",
    "completion_tokens",
    "generated_tokens",
    "latency_ms",
)


class RunStats:
    def __init__(self, saved: SavedStats | None = None) -> None:
        saved = saved or SavedStats()
        self.stages: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.filters: defaultdict[str, Counter[str]] = defaultdict(Counter)  # keyed by filter label
        # teacher name -> stage -> the call counters
        self.teachers: defaultdict[str, defaultdict[str, Counter[str]]] = defaultdict(
            lambda: defaultdict(Counter)
        )
        self.counts: Counter[str] = Counter(saved.counts)
        self.elapsed_s: float = saved.elapsed_s
        self.timings: defaultdict[str, float] = defaultdict(float, saved.timings)  # seconds per step
        for stage, counters in saved.stages.items():
            self.stages[stage].update(counters)
        for name, counters in saved.filters.items():
            self.filters[name].update(counters)
        teachers = saved.teachers
        if not teachers and saved.stages:  # saved before teachers were counted: the one teacher's
            teachers = {
                DEFAULT: {k: {c: v.get(c, 0) for c in CALL_COUNTERS} for k, v in saved.stages.items()}
            }
        for name, stages in teachers.items():
            for stage, counters in stages.items():
                self.teachers[name][stage].update(counters)

    def teacher_call(self, stage: str, responses: list[TeacherResponse]) -> None:
        """Count a stage's answers, in the stage's counters and in those of the teacher of each."""
        s = self.stages[stage]
        for r in responses:
            call = Counter(
                requests=1,
                cache_hits=r.cached,
                failed=not r.ok,
                truncated=r.truncated,
                retries=max(0, r.attempts - 1),
                prompt_tokens=r.prompt_tokens,
                completion_tokens=r.completion_tokens,
                generated_tokens=0 if r.cached else r.completion_tokens,  # what the teacher really made
                latency_ms=0 if r.cached else round(r.latency_s * 1000),
            )
            s.update(call)
            self.teachers[r.teacher][stage].update(call)

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
        for name, stages in other.teachers.items():
            for stage, counters in stages.items():
                self.teachers[name][stage].update(counters)
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
            teachers={n: {k: dict(v) for k, v in stages.items()} for n, stages in self.teachers.items()},
        )

    def teacher_summary(self, prices: Prices) -> dict[str, Any]:
        """Per teacher: its calls, tokens, failures, mean latency and cost, in all and per stage."""
        out: dict[str, Any] = {}
        names = [*prices, *(n for n in sorted(self.teachers) if n not in prices)]  # a silent one too
        for name in names:
            stages: Mapping[str, Counter[str]] = self.teachers.get(name, {})
            price = prices.get(name, (0.0, 0.0))
            per_stage = {stage: _call_summary(c, price) for stage, c in sorted(stages.items())}
            out[name] = {**_call_summary(sum(stages.values(), Counter()), price), "stages": per_stage}
        return out

    def summary(self, prices: Prices) -> dict[str, Any]:
        """stats.json's accounts; `prices` by teacher name (a run's own teacher is `default`)."""
        prompt, completion, generated = (
            self.tokens("prompt"),
            self.tokens("completion"),
            self.tokens("generated"),
        )
        requests = sum(s["requests"] for s in self.stages.values())
        hits = sum(s["cache_hits"] for s in self.stages.values())
        teachers = self.teacher_summary(prices)
        return {
            "counts": dict(self.counts),
            "stages": {k: {**v, "mean_latency_s": _mean_latency(v)} for k, v in self.stages.items()},
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
            "cost_estimate_usd": round(sum(t["cost_usd"] for t in teachers.values()), 6),
            "teachers": teachers,
        }


def _mean_latency(c: Mapping[str, int]) -> float:
    """Mean seconds per answer the teacher really gave (cached answers took none)."""
    sent = c.get("requests", 0) - c.get("cache_hits", 0)
    return round(c.get("latency_ms", 0) / 1000 / sent, 3) if sent > 0 else 0.0


def _call_summary(c: Counter[str], price: tuple[float, float]) -> dict[str, Any]:
    cost = c["prompt_tokens"] * price[0] / 1e6 + c["completion_tokens"] * price[1] / 1e6
    return {
        **{k: c[k] for k in CALL_COUNTERS if k != "latency_ms"},
        "mean_latency_s": _mean_latency(c),
        "cost_usd": round(cost, 6),
    }
