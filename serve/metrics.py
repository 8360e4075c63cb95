"""Prometheus metrics of one app, in its own registry (several apps may share a test process).

HTTP requests and latency by route; jobs by state (read from the store at each scrape); the queue;
and, added up from every job's stats as its rounds commit, teacher requests, tokens and failures and
the items each filter kept and dropped (by reason).

/metrics answers without a key, so its label values come only from the server's own names: a filter
by its registered name (never a client's label), a drop reason cut to its kind (`blacklist`, not the
word; `rouge_l`, not the threshold). The series count is bounded whatever the bodies say: a filter
has at most `MAX_REASONS` reasons, the rest count as `other`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

Flat = dict[tuple[str, ...], float]
MAX_REASONS = 16  # distinct drop reasons per filter in the metrics; beyond, "other"


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
            "items each filter (by its registered name) kept, and dropped by the kind of reason",
            ["filter", "outcome", "reason"],
            registry=r,
        )
        r.register(_JobsByState(count_by_state))
        self._reasons: dict[str, set[str]] = {}  # filter name -> the reasons it has series for

    def _reason(self, filter_name: str, reason: str) -> str:
        """A drop reason as a label value: its kind only, and one of at most MAX_REASONS per filter."""
        kind = re.split(r"[:>=<]", reason, maxsplit=1)[0]
        kind = re.sub(r"\d+", "n", kind)[:40] or "none"  # over_5_instances -> over_n_instances
        seen = self._reasons.setdefault(filter_name, set())
        if kind not in seen and len(seen) >= MAX_REASONS:
            return "other"
        seen.add(kind)
        return kind

    def job_started(self, stats: dict[str, Any] | None) -> dict[str, Flat]:
        """What a (resumed) job had counted before this process ran it: only what it adds counts."""
        return {"last": _flatten(stats)}

    def job_progress(
        self, seen: dict[str, Flat], stats: dict[str, Any], names: Mapping[str, str] | None = None
    ) -> None:
        """Add what a job counted since its last round; `names` maps its filters' labels to their
        registered names (a label is the client's text: it never becomes a label value)."""
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
                # a label no spec of the job gives is the code's own (the domain stage's verify, ...)
                filter_name = (names or {}).get(label, label)
                outcome, _, reason = name.partition("_")  # kept, or dropped_<reason>
                if reason:
                    reason = self._reason(filter_name, reason)
                self.items.labels(filter=filter_name, outcome=outcome, reason=reason).inc(delta)
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
