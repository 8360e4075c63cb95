"""The worker actors a run sends its teacher requests to, and the teacher inside them.

A run starts its own pool (`Workers(cfg, make_teacher)`) and stops it at its end. A process that runs
many runs (the REST service) builds one pool with `start_workers(cfg)` and passes it to every
`run(..., workers=pool)`: one teacher (one vLLM engine) for all of them, and one in-flight window per
worker, in which every run's requests take their turn by priority.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import ray

from generator.config import RunConfig
from generator.teachers.base import Teacher
from generator.teachers.window import merge_reports
from generator.workers import TeacherFactory, WorkerActor, stop_actors


class Workers:
    """A run's worker actors, shared by its stages (or by many runs); started when first needed."""

    def __init__(self, cfg: RunConfig, make_teacher: TeacherFactory) -> None:
        self.cfg, self.make_teacher = cfg, make_teacher
        self._actors: list[Any] = []
        self._identity: tuple[str, str] | None = None
        self._windows: dict[str, int] | None = None  # the windows' last report, kept after they stop

    def workers(self) -> list[Any]:
        """The actors, started if need be (without waiting for them: `identity` does)."""
        if not self._actors:
            assert self.cfg.max_in_flight is not None  # a resolved config
            # Each worker's part of the window; the parts add up to --max-in-flight exactly.
            limit = self.cfg.max_in_flight
            count = min(self.cfg.num_workers, limit)
            shares = [limit // count + (i < limit % count) for i in range(count)]
            self._actors = [WorkerActor.remote(self.make_teacher, share) for share in shares]
        return self._actors

    def identity(self) -> tuple[str, str]:
        """The teacher's (backend, model), once the workers are up (this waits for the teacher)."""
        if self._identity is None:
            backend, model = ray.get(self.workers()[0].identity.remote())
            self._identity = (str(backend), str(model))
        return self._identity

    def window_report(self) -> dict[str, int] | None:
        """The workers' in-flight windows added up (their limit, 429s, decreases): see `Window`."""
        if self._actors:
            reports = ray.get([w.window_report.remote() for w in self._actors])
            self._windows = {**merge_reports(reports), "answers": sum(r["answers"] for r in reports)}
        return self._windows

    def stop(self) -> None:
        if self._actors:
            self.window_report()
            stop_actors(self._actors)
            self._actors = []


def teacher_settings(config: RunConfig) -> RunConfig:
    """`config` resolved, with the worker count its backend wants: one for vLLM (its engine actors
    keep many requests in flight themselves), `num_workers` over HTTP."""
    resolved = config.resolved()
    workers = 1 if resolved.teacher == "vllm" else resolved.num_workers
    return resolved.model_copy(update={"num_workers": workers})


def start_workers(config: RunConfig, teacher: TeacherFactory | None = None) -> Workers:
    """A pool for `config`\'s teacher (or `teacher`, a zero-argument factory), to share between runs.

    `config` must come from `teacher_settings`. Nothing starts until the pool is first used:
    call `identity()` to wait until the teacher is loaded.
    """
    return Workers(config, teacher or default_teacher(config))


def default_teacher(config: RunConfig) -> TeacherFactory:
    """Builds, inside each worker, the teacher `config` names (behind the request cache) with that
    worker's share of the in-flight limit. `config` comes from `teacher_settings`."""
    assert config.max_in_flight is not None
    per_worker = -(-config.max_in_flight // config.num_workers)
    return partial(_teacher, config, per_worker)


def _teacher(config: RunConfig, max_in_flight: int) -> Teacher:
    from generator.teachers.factory import make_teacher

    return make_teacher(config, max_in_flight)
