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
from generator.teachers.routing import DEFAULT, teacher_for
from generator.teachers.window import merge_reports
from generator.workers import TeacherFactory, WorkerActor, stop_actors


class Workers:
    """A run's worker actors, shared by its stages (or by many runs); started when first needed."""

    def __init__(self, cfg: RunConfig, make_teacher: TeacherFactory) -> None:
        self.cfg, self.make_teacher = cfg, make_teacher
        self._actors: list[Any] = []
        self._identities: dict[str, tuple[str, str]] | None = None
        self._windows: dict[str, dict[str, int]] | None = None  # the last report, kept after they stop

    def workers(self) -> list[Any]:
        """The actors, started if need be (without waiting for them: `identity` does)."""
        if not self._actors:
            names = self.cfg.teacher_names()
            limits = {name: self.cfg.for_teacher(name).max_in_flight or 1 for name in names}
            # Each worker's part of each teacher's window; the parts add up to its limit exactly.
            count = min(self.cfg.num_workers, *limits.values())
            shares = [
                {name: limit // count + (i < limit % count) for name, limit in limits.items()}
                for i in range(count)
            ]
            chat_only = frozenset(n for n in names if n != DEFAULT and self.cfg.teachers[n].api == "chat")
            route = self.cfg.route
            self._actors = [
                WorkerActor.remote(self.make_teacher, share, route, chat_only) for share in shares
            ]
        return self._actors

    def identity(self) -> tuple[str, str]:
        """The run's own teacher's (backend, model), once the workers are up (this waits for it)."""
        return self.identities()[DEFAULT]

    def identities(self) -> dict[str, tuple[str, str]]:
        """Every teacher's (backend, model), by name (this waits for the teachers)."""
        if self._identities is None:
            found = ray.get(self.workers()[0].identities.remote())
            self._identities = {str(k): (str(b), str(m)) for k, (b, m) in found.items()}
        return self._identities

    def identity_for(self, stage: str) -> tuple[str, str]:
        """(backend, model) of the teacher `stage` is routed to (the run's own when the pool was built
        with one teacher for everything, as tests and the service may)."""
        identities = self.identities()
        return identities.get(teacher_for(self.cfg.route, stage), identities[DEFAULT])

    def known_identities(self) -> dict[str, tuple[str, str]]:
        """The teachers' identities if the workers have said them (never waits)."""
        return dict(self._identities or {})

    def window_report(self) -> dict[str, dict[str, int]] | None:
        """Each teacher's in-flight windows, the workers' added up (limit, 429s, decreases, answers)."""
        if self._actors:
            reports = ray.get([w.window_report.remote() for w in self._actors])
            self._windows = {
                name: {
                    **merge_reports([r[name] for r in reports]),
                    "answers": sum(r[name]["answers"] for r in reports),
                }
                for name in reports[0]
            }
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
    backends = {resolved.for_teacher(name).teacher for name in resolved.teacher_names()}
    workers = 1 if "vllm" in backends else resolved.num_workers
    return resolved.model_copy(update={"num_workers": workers})


def start_workers(config: RunConfig, teacher: TeacherFactory | None = None) -> Workers:
    """A pool for `config`\'s teacher (or `teacher`, a zero-argument factory), to share between runs.

    `config` must come from `teacher_settings`. Nothing starts until the pool is first used:
    call `identity()` to wait until the teacher is loaded.
    """
    return Workers(config, teacher or default_teacher(config))


def default_teacher(config: RunConfig) -> TeacherFactory:
    """Builds, inside each worker, the teachers `config` names (each behind the request cache) with
    that worker's share of each one's in-flight limit. `config` comes from `teacher_settings`."""
    return partial(_teachers, config)


def _teachers(config: RunConfig) -> Teacher | dict[str, Teacher]:
    from generator.teachers.factory import make_teachers

    teachers = make_teachers(config)
    return teachers[DEFAULT] if len(teachers) == 1 else teachers
