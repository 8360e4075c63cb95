"""Jobs run here: a bounded queue, `concurrency` threads, and one teacher shared by every job.

Each job is one call of the library entry point, `generator.run.run(config, on_progress=...,
stop=..., workers=pool)`, in a thread: no second loop, no subprocess. The pool (`generator.worker_pool`)
holds the one teacher (with the embedded teacher, one vLLM engine) and its in-flight windows, in which
the jobs' requests take turns by priority. Cancel sets the job's `stop` event: its round in flight
commits, and what it accepted stays readable.

A server stopped or killed with jobs queued or running finds them in the store when it starts again
and queues them again (`on_restart="resume"`, the run folder resumes after its last committed round,
so no accepted row is lost or repeated) or marks them `interrupted`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.config import ConfigError, RunConfig
from generator.dataset import dataset
from generator.errors import RunFolderBusy, TeacherUnavailable
from generator.ray_runtime import ray_runtime
from generator.records import SeedTask
from generator.run import run
from generator.run_folder import CONFIG, STATS, read_json
from generator.seeds import SeedFileError
from generator.stages.base import Progress
from generator.stages.evolve_checks import ANSWER_CHECK, PREFIX
from generator.worker_pool import Workers, start_workers, teacher_settings
from generator.workers import TeacherFactory
from serve.bodies import JobProgress, JobState
from serve.ceilings import Ceilings, JobCeilings
from serve.jobs import JobStore
from serve.metrics import Metrics
from serve.public import public_error, scrub
from serve.resources import FILTER_FIELDS
from serve.rows import RowLog

log = logging.getLogger("synth_instruct.serve")


class QueueFull(Exception):
    """No room for another job; the caller should come back later."""


class OwnerBusy(QueueFull):
    """The caller has as many jobs queued or running as it may."""


@dataclass
class ActiveJob:
    id: str
    config: RunConfig
    stop: threading.Event = field(default_factory=threading.Event)
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    stats: dict[str, Any] | None = None
    started: float = 0.0  # time.monotonic() when this process began running it
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(default_factory=list)


class JobExecutor:
    def __init__(
        self,
        store: JobStore,
        jobs_dir: Path,
        base: RunConfig,
        metrics: Metrics,
        *,
        concurrency: int,
        max_queued: int,
        teacher: TeacherFactory | None = None,
        ceilings: Ceilings,
    ) -> None:
        self.store, self.jobs_dir, self.metrics = store, jobs_dir, metrics
        self.ceilings = ceilings  # the server's bounds on every job
        self.base = teacher_settings(base)
        self.concurrency, self.max_queued = concurrency, max_queued
        self.pool: Workers = start_workers(self.base, teacher)
        self._waiting: deque[str] = deque()  # queued job ids, oldest first
        self._active: dict[str, ActiveJob] = {}
        self._logs: OrderedDict[str, RowLog] = OrderedDict()  # recently read jobs' rows
        self._lock = threading.RLock()
        self._wakeup = threading.Condition(self._lock)  # a job was queued, or the server is closing
        self._threads: list[threading.Thread] = []
        self._runtime: Any = None
        self.ready = threading.Event()
        self.teacher_error: str | None = None
        self.identity: tuple[str, str] | None = None
        self._closing = False  # set by close(): no job starts after it

    # -- life cycle ----------------------------------------------------------------------------------
    def start(self, on_restart: str) -> None:
        """Start Ray (or join it), load the teacher in the background, and pick up left-over jobs."""
        # ray.init puts its own SIGTERM handler (exit at once) in place of the server's (stop gracefully)
        handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        self._runtime = ray_runtime(self.base.ray_address)
        self._runtime.__enter__()  # held until close(): every job's run() shares this Ray
        if threading.current_thread() is threading.main_thread():
            for signum, handler in handlers.items():
                if handler is not None:
                    signal.signal(signum, handler)
        threading.Thread(target=self._load_teacher, name="teacher-loader", daemon=True).start()
        for row in self.store.active():
            job_id, was = row["id"], row["state"]
            if on_restart != "resume":
                log.info("job %s was %s when the server stopped: marked interrupted", job_id, was)
                self.store.set_state(job_id, "interrupted", "the server stopped while the job ran")
                continue
            try:
                config = RunConfig.model_validate_json(row["config"])
            except ValueError as exc:  # made by another version whose settings this one lacks
                log.warning("job %s cannot resume: %s", job_id, exc)
                self.store.set_state(job_id, "failed", scrub(f"cannot resume: {exc}"))
                continue
            log.info("job %s was %s when the server stopped: queued again to resume", job_id, was)
            self.store.set_state(job_id, "queued")
            self._enqueue(job_id, config)
        for i in range(self.concurrency):
            t = threading.Thread(target=self._work, name=f"job-runner-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def _load_teacher(self) -> None:
        try:
            self.identity = self.pool.identity()  # waits until the teacher (vLLM engine) is up
            log.info("teacher ready: %s %s", *self.identity)
            self.ready.set()
        except Exception as exc:  # readyz says why; jobs fail with the same reason
            log.error("the teacher did not start: %s: %s", type(exc).__name__, exc)
            self.teacher_error = scrub(f"{type(exc).__name__}: {exc}")  # /readyz takes no key

    def close(self, timeout: float = 30.0) -> None:
        """Stop every running job after its round in flight commits; they resume on the next start.
        Waits `timeout` seconds in all for the jobs (serve/app.py exits anyway after that)."""
        with self._lock:
            self._closing = True
            active = list(self._active.values())
            self._wakeup.notify_all()
        for job in active:
            job.stop.set()
        deadline = time.monotonic() + timeout
        for job in active:
            job.done.wait(max(0.0, deadline - time.monotonic()))
        self.pool.stop()
        if self._runtime is not None:
            self._runtime.__exit__(None, None, None)
            self._runtime = None

    # -- submitting ----------------------------------------------------------------------------------
    def folder(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def queued(self) -> int:
        return len(self._waiting)

    def check_room(self, owner: str, max_per_owner: int | None) -> None:
        """Refuse now (OwnerBusy, QueueFull) a job that `submit` would refuse: the cheap checks come
        before a body's filters are built or its files read. `submit` checks again under the lock."""
        if max_per_owner is not None and self.store.count_active(owner) >= max_per_owner:
            raise OwnerBusy(f"this key has {max_per_owner} jobs queued or running (the limit)")
        if self.queued() >= self.max_queued:
            raise QueueFull(f"{self.queued()} jobs are waiting (the limit is {self.max_queued})")

    def submit(
        self,
        owner: str,
        kind: str,
        request: dict[str, Any],
        config: RunConfig,
        seed_tasks: list[SeedTask] | None = None,
        max_per_owner: int | None = None,
    ) -> str:
        """Store and queue a job. `config` is the job's RunConfig less its folder (set here); inline
        `seed_tasks` are written to the job's folder and become its seed file."""
        with self._lock:  # the checks and the queueing at once: two requests cannot both take the last place
            return self._submit(owner, kind, request, config, seed_tasks, max_per_owner)

    def _submit(
        self,
        owner: str,
        kind: str,
        request: dict[str, Any],
        config: RunConfig,
        seed_tasks: list[SeedTask] | None,
        max_per_owner: int | None,
    ) -> str:
        self.check_room(owner, max_per_owner)
        job_id = secrets.token_hex(8)
        folder = self.folder(job_id)
        folder.mkdir(parents=True)
        # The job runs on the shared pool: its config.json says so (workers, in-flight limit).
        pool = {"num_workers": self.base.num_workers, "max_in_flight": self.base.max_in_flight}
        config = config.model_copy(update={"out": folder / "run", "run_name": job_id, **pool})
        if seed_tasks is not None:
            seeds = folder / "seeds.jsonl"
            seeds.write_text(
                "".join(t.model_dump_json(exclude_none=True) + "\n" for t in seed_tasks), "utf-8"
            )
            config = config.model_copy(update={"seeds": seeds})
        self.store.create(job_id, owner, kind, request, config.model_dump_json())
        self._enqueue(job_id, config)
        return job_id

    def _enqueue(self, job_id: str, config: RunConfig) -> None:
        with self._lock:
            self._active[job_id] = ActiveJob(job_id, config)
            self.rows(job_id).reopen()
            self._waiting.append(job_id)
            self.metrics.queue_depth.set(self.queued())
            self._wakeup.notify()

    def cancel(self, job_id: str) -> None:
        """A queued job leaves the queue at once; a running one stops after its round in flight."""
        with self._lock:
            job = self._active.get(job_id)
            if job is None:
                return
            job.cancelled = True
            job.stop.set()
            if job_id not in self._waiting:
                return
            self._waiting.remove(job_id)
            self.metrics.queue_depth.set(self.queued())
        self._finish(job, "cancelled", "cancelled before it started")
        self._forget(job)

    async def ended(self, job_id: str) -> None:
        """Wait, on the event loop and holding no thread, until the job has ended in this process."""
        event = asyncio.Event()
        with self._lock:
            job = self._active.get(job_id)
            if job is None or job.done.is_set():
                return
            job.waiters.append((asyncio.get_running_loop(), event))
        await event.wait()

    def live_stats(self, job_id: str) -> dict[str, Any] | None:
        """stats.json as the running job last reported it, else as its folder holds it."""
        with self._lock:
            job = self._active.get(job_id)
        if job is not None and job.stats is not None:
            return job.stats
        path = self.folder(job_id) / "run" / STATS
        try:
            return dict(read_json(path))
        except (OSError, ValueError):
            return None

    def rows(self, job_id: str) -> RowLog:
        """The job's rows so far: its log while it runs, else read once from its run folder."""
        with self._lock:
            found = self._logs.get(job_id)
            if found is not None:
                self._logs.move_to_end(job_id)
                return found
            if job_id in self._active:  # queued: its folder holds what a resumed job committed
                log_ = self._logs[job_id] = RowLog(self._committed_rows(job_id))
                return log_
        rows = self._committed_rows(job_id)  # a finished job: read without holding up the others
        with self._lock:
            log_ = self._logs.setdefault(job_id, RowLog(rows, finished=True))
            finished = [k for k in self._logs if k not in self._active]
            for old in finished[: max(0, len(self._logs) - 256)]:  # forget the oldest finished jobs' rows
                del self._logs[old]
            return log_

    def _committed_rows(self, job_id: str) -> list[dict[str, Any]]:
        run_dir = self.folder(job_id) / "run"
        if not (run_dir / CONFIG).exists():
            return []
        return [row.model_dump() for row in dataset(run_dir).rows()]

    # -- running -------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closing:
                    self._wakeup.wait()
                if self._closing:
                    return  # queued jobs stay queued in the store and run on the next start
                job = self._active[self._waiting.popleft()]
                self.metrics.queue_depth.set(self.queued())
            try:
                self._run(job)
            finally:
                self._forget(job)

    def _forget(self, job: ActiveJob) -> None:
        """The job is over in this process: its rows are complete, its waiters are woken."""
        with self._lock:
            self._active.pop(job.id, None)
            rows = self._logs.get(job.id)
        if rows is not None:
            rows.finish()
        with self._lock:
            job.done.set()
            waiters, job.waiters = job.waiters, []
        for loop, event in waiters:
            loop.call_soon_threadsafe(event.set)

    def _run(self, job: ActiveJob) -> None:
        job.started = time.monotonic()
        self.store.set_state(job.id, "running")
        rows = self.rows(job.id)  # reopened when the job was queued
        seen = self.metrics.job_started(self.live_stats(job.id))
        names = filter_names(job.config)
        ceilings = JobCeilings(job.stop, self.ceilings)
        log.info("job %s running (%d rows already committed)", job.id, len(rows))

        def on_progress(p: Progress) -> None:
            job.stats = p.stats
            rows.extend([r.model_dump() for r in p.rows])
            self.metrics.job_progress(seen, p.stats, names)
            ceilings.after_round(p)
            self.store.set_progress(
                job.id,
                JobProgress(
                    stage=p.stage,
                    round=p.round,
                    kept=p.kept,
                    target=p.target,
                    done=p.done,
                    total=p.total,
                    unit=p.unit,
                    rows=len(rows),
                ),
            )

        try:
            with ceilings:
                summary = run(job.config, on_progress=on_progress, stop=job.stop, workers=self.pool)
        except (ConfigError, SeedFileError, RunFolderBusy, TeacherUnavailable) as exc:
            log.warning("job %s failed: %s", job.id, exc)  # the whole reason here; the client's is scrubbed
            self._finish(job, "failed", public_error(exc))
            return
        except Exception as exc:  # a bug or a dead teacher: the job fails with the reason, the service lives
            log.exception("job %s failed", job.id)
            self._finish(job, "failed", public_error(exc))
            return
        job.stats = summary
        if summary.get("stopped") and job.cancelled:
            self._finish(job, "cancelled", None)
        elif ceilings.reason is not None:
            self._finish(job, "failed", ceilings.reason)
        elif summary.get("stopped"):
            log.info("job %s stopped by the server's shutdown: it resumes on the next start", job.id)
        else:
            self._finish(job, "succeeded", None)

    def _finish(self, job: ActiveJob, state: JobState, error: str | None) -> None:
        self.store.set_state(job.id, state, error)
        self.metrics.jobs_finished.labels(state=state).inc()
        ran = f" after {time.monotonic() - job.started:.2f} s" if job.started else ""
        rows = self._logs.get(job.id)
        log.info(
            "job %s %s%s (%d rows)%s",
            job.id,
            state,
            ran,
            len(rows) if rows else 0,
            f": {error}" if error else "",
        )


def filter_names(config: RunConfig) -> dict[str, str]:
    """Each filter label of a job's config -> the filter's registered name (the metrics' label value)."""
    resolved = config.resolved()
    names: dict[str, str] = {}
    for name, is_list in FILTER_FIELDS.items():
        value = getattr(resolved, name)
        for spec in (value or []) if is_list else ([value] if value is not None else []):
            names[spec.key] = spec.name
            names[PREFIX + spec.key] = spec.name  # the evolution's copy of a run filter
    names[PREFIX + ANSWER_CHECK.name] = ANSWER_CHECK.name
    return names
