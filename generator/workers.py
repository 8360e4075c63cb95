"""Worker actors: they hold a teacher and run tasks (prompt -> teacher -> parse) concurrently.

A worker never decides what is kept; it only turns rows into parsed results, one per row and in row
order, so the driver can hand them to the filters and the pool deterministically.

A worker may hold several teachers (per-stage routing, generator/teachers/routing.py): each request
goes to the teacher its task's stage is routed to, and the response says which (`response.teacher`).

Every teacher request goes through its teacher's in-flight window (`generator/teachers/window.py`), one
request at a time: the window holds the worker's share of `--max-in-flight`, serves waiting requests by
priority (the driver gives earlier rounds' work a lower number, so it goes first), and halves itself on
429s. A batch sent here never waits on its slowest member before the window refills: each row takes a
slot as one frees up, and a chained row sends its second request as soon as its first answer is in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import ray

from generator.tasks.base import Task
from generator.teachers.base import Teacher, TeacherRequest, TeacherResponse
from generator.teachers.routing import DEFAULT, teacher_for
from generator.teachers.window import Window

log = logging.getLogger(__name__)

# Builds a worker's teacher, or its teachers by name (`default` among them) when a run routes stages.
TeacherFactory = Callable[[], Teacher | dict[str, Teacher]]
Row = TypeVar("Row")
Out = TypeVar("Out")
Then = TypeVar("Then")
# (response, parsed) per row; parsed is None when the call failed or the text was garbage. A plain
# tuple: thousands cross from the workers every round. Worker actor handles are `Any`: Ray does not
# type their methods, so what they return is typed here instead.
Answer = tuple[TeacherResponse, Out | None]


@dataclass(frozen=True)
class Chain(Generic[Row, Out, Then]):
    """Two tasks per row in one worker round trip: `then` runs on `feed(row, parsed by first)`.

    Self-Instruct writes instances output-first for classification tasks, so the instance prompt
    depends on the classify answer. Chaining them in the worker saves a round trip through the driver,
    and the second prompts go out as soon as the worker has the first answers.
    """

    first: Task[Row, Out]
    then: Task[Row, Then]
    feed: Callable[[Row, Out | None], Row]


class Worker:
    """`in_flight`: this worker's share of each teacher's window (an int: of the one teacher's).
    `route`: stage role -> teacher name; `chat_only`: teachers whose endpoint has no completions."""

    def __init__(
        self,
        make_teacher: TeacherFactory,
        in_flight: int | Mapping[str, int] = 8,
        route: Mapping[str, str] | None = None,
        chat_only: frozenset[str] = frozenset(),
    ) -> None:
        made = make_teacher()
        self.teachers = dict(made) if isinstance(made, dict) else {DEFAULT: made}
        limits = dict(in_flight) if isinstance(in_flight, Mapping) else {DEFAULT: in_flight}
        self.windows = {name: Window(limits[name]) for name in self.teachers}
        # A factory that makes one teacher (a test's, the service's) answers every stage itself.
        self.route = dict(route or {}) if isinstance(made, dict) else {}
        self.chat_only = chat_only
        self.answers: dict[str, int] = dict.fromkeys(self.teachers, 0)  # abandoned rounds' included

    def identity(self) -> tuple[str, str]:
        return self.identities()[DEFAULT]

    def identities(self) -> dict[str, tuple[str, str]]:
        """(backend, model) of each teacher, by name."""
        return {name: (t.backend, t.model) for name, t in self.teachers.items()}

    def window_report(self) -> dict[str, dict[str, int]]:
        """Each teacher's window (limit, 429s, decreases) and answers, by name."""
        return {name: {**w.report(), "answers": self.answers[name]} for name, w in self.windows.items()}

    async def run(self, task: Task[Row, Out], rows: list[Row], priority: int = 0) -> list[Answer[Out]]:
        """(response, parsed) per row; parsed is None when the call failed or the text was garbage."""
        return list(await asyncio.gather(*(self._one(task, row, priority) for row in rows)))

    async def run_chain(
        self, chain: Chain[Row, Out, Then], rows: list[Row], priority: int = 0
    ) -> list[tuple[Answer[Out], Answer[Then]]]:
        """(first result, second result) per row, in row order; each row goes on on its own."""

        async def both(row: Row) -> tuple[Answer[Out], Answer[Then]]:
            first = await self._one(chain.first, row, priority)
            return first, await self._one(chain.then, chain.feed(row, first[1]), priority)

        return list(await asyncio.gather(*(both(row) for row in rows)))

    async def _one(self, task: Task[Row, Out], row: Row, priority: int) -> Answer[Out]:
        response = await self._ask(teacher_for(self.route, task.stage), task.prompt(row), priority)
        parsed: Out | None = None
        if response.ok:
            try:
                parsed = task.parse(row, response)
            except Exception as exc:  # a parser bug or odd text must cost one item, not the run
                log.warning("%s: could not parse response %s: %s", task.stage, response.request_key[:8], exc)
        return response, parsed

    async def _ask(self, name: str, request: TeacherRequest, priority: int) -> TeacherResponse:
        if name in self.chat_only and request.kind == "completion":
            # An endpoint without completions gets the prompt as one user message (as `--api chat` does).
            request = TeacherRequest.chat(request.text(), request.params)
        window = self.windows[name]
        async with window.slot(priority):
            [response] = await self.teachers[name].generate([request])
        self.answers[name] += 1
        response.teacher = name
        if response.cached:
            pass  # a cached answer says nothing about the server now (its 429s were another day's)
        elif response.rate_limited:
            window.rate_limited(response.rate_limited)
        elif response.ok:
            window.succeeded(response.latency_s)
        return response

    async def close(self) -> None:
        # Two names may share one teacher (one vLLM engine per model): close each once.
        for teacher in {id(t): t for t in self.teachers.values()}.values():
            await teacher.close()


# Teacher calls wait on the network or on engine actors, so workers need no CPU of their own.
WorkerActor = ray.remote(num_cpus=0)(Worker)


# The results of rows sent to the workers, one chunk per worker, each a list of one result per row.
Pending = list[ray.ObjectRef[list[Out]]]


def _chunks(rows: list[Row], workers: list[Any]) -> list[list[Row]]:
    """One contiguous chunk of rows per worker (fewer when there are fewer rows)."""
    size = -(-len(rows) // len(workers))
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def send_to_workers(
    workers: list[Any], task: Task[Row, Out], rows: list[Row], priority: int = 0
) -> Pending[Answer[Out]]:
    """Start `task` on the rows, split across the workers; `collect` waits for the results.

    `priority`: lower goes first when the workers' windows are full (the bootstrap passes the round)."""
    chunks = zip(workers, _chunks(rows, workers), strict=False)
    return [w.run.remote(task, chunk, priority) for w, chunk in chunks]


def send_chain(
    workers: list[Any], chain: Chain[Row, Out, Then], rows: list[Row], priority: int = 0
) -> Pending[tuple[Answer[Out], Answer[Then]]]:
    """`send_to_workers` for two chained tasks: both answers per row."""
    chunks = zip(workers, _chunks(rows, workers), strict=False)
    return [w.run_chain.remote(chain, chunk, priority) for w, chunk in chunks]


def ready(pending: Pending[Out]) -> bool:
    """Whether every part of `pending` has its results (without waiting)."""
    if not pending:
        return True
    done, _ = ray.wait(pending, num_returns=len(pending), timeout=0, fetch_local=False)
    return len(done) == len(pending)


def collect(pending: Pending[Out]) -> list[Out]:
    """Wait for sent rows' results: one per row, in row order."""
    return [result for part in ray.get(pending) for result in part]


def run_on_workers(workers: list[Any], task: Task[Row, Out], rows: list[Row]) -> list[Answer[Out]]:
    """Run rows on the workers concurrently and return in row order."""
    return collect(send_to_workers(workers, task, rows))


def stop_actors(workers: list[Any], *others: Any) -> None:
    """Close teachers (engines release their memory), then kill the actors; never hang on the way out."""
    try:
        ray.get([w.close.remote() for w in workers], timeout=30)
    except Exception as exc:  # an interrupted or crashed run still has to stop its actors
        log.warning("closing the teachers failed: %s", exc)
    for actor in [*workers, *others]:
        ray.kill(actor)
