"""Prometheus metrics of one app, in its own registry (several apps may share a test process).

HTTP requests and latency by route; jobs by state (read from the store at each scrape); the queue;
and, added up from every job's stats as its rounds commit, teacher requests, tokens and failures and
the items each filter kept and dropped (by reason).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

Flat = dict[tuple[str, ...], float]


class _JobsByState(Collector):
    def __init__(self, count_by_state: Callable[[], dict[str, int]]) -> None:
        self.count_by_state = count_by_state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("synth_jobs", "jobs in the store, by state", labels=["state"])
        counts = self.count_by_state()
        for state in ("queued", "running", "succeeded", "failed", "cancelled", "interrupted"):
            family.add_metric([state], counts.get(state, 0))
        yield family


class Metrics:
    def __init__(self, count_by_state: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "synth_http_requests", "HTTP requests by route", ["route", "method", "status"], registry=r
        )
        self.http_latency = Histogram(
            "synth_http_request_duration_seconds",
            "time to the response's headers, by route",
            ["route", "method"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.queue_depth = Gauge("synth_queue_depth", "jobs waiting for a slot", registry=r)
        self.jobs_finished = Counter(
            "synth_jobs_finished", "jobs that ended, by state", ["state"], registry=r
        )
        self.teacher = Counter(
            "synth_teacher", "teacher requests, cache hits and failures", ["what"], registry=r
        )
        self.tokens = Counter("synth_teacher_tokens", "teacher tokens", ["kind"], registry=r)
        self.items = Counter(
            "synth_items",
            "items each filter (by label) kept, and dropped by reason",
            ["filter", "outcome", "reason"],
            registry=r,
        )
        r.register(_JobsByState(count_by_state))

    def job_started(self, stats: dict[str, Any] | None) -> dict[str, Flat]:
        """What a (resumed) job had counted before this process ran it: only what it adds counts."""
        return {"last": _flatten(stats)}

    def job_progress(self, seen: dict[str, Flat], stats: dict[str, Any]) -> None:
        now = _flatten(stats)
        before = seen["last"]
        for key, value in now.items():
            delta = value - before.get(key, 0.0)
            if delta <= 0:
                continue
            kind, *labels = key
            if kind == "teacher":
                self.teacher.labels(what=labels[0]).inc(delta)
            elif kind == "tokens":
                self.tokens.labels(kind=labels[0]).inc(delta)
            else:
                label, name = labels
                outcome, _, reason = name.partition("_")  # kept, or dropped_<reason>
                self.items.labels(filter=label, outcome=outcome, reason=reason).inc(delta)
        seen["last"] = now


def _flatten(stats: dict[str, Any] | None) -> Flat:
    if not stats:
        return {}
    flat: Flat = {}
    teacher = stats.get("teacher", {})
    for what in ("requests", "cache_hits", "failed"):
        flat[("teacher", what)] = float(teacher.get(what, 0))
    for kind in ("prompt", "completion"):
        flat[("tokens", kind)] = float(teacher.get(f"{kind}_tokens", 0))
    for label, counters in stats.get("filters", {}).items():
        for name, value in counters.items():
            if name == "kept" or name.startswith("dropped_"):  # not "total", nor "dropped" (their sum)
                flat[("items", label, name)] = float(value)
    return flat
