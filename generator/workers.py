"""Worker actors: they hold a teacher and run tasks (prompt -> teacher -> parse) concurrently.

A worker never decides what is kept; it only turns rows into parsed results, one per row and in row
order, so the driver can hand them to the filters and the pool deterministically.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import ray

from generator.tasks.base import Task
from generator.teachers.base import Teacher, TeacherResponse

log = logging.getLogger(__name__)

TeacherFactory = Callable[[], Teacher]
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
    def __init__(self, make_teacher: TeacherFactory) -> None:
        self.teacher = make_teacher()

    def identity(self) -> tuple[str, str]:
        return self.teacher.backend, self.teacher.model

    async def run(self, task: Task[Row, Out], rows: list[Row]) -> list[Answer[Out]]:
        """(response, parsed) per row; parsed is None when the call failed or the text was garbage."""
        responses = await self.teacher.generate([task.prompt(row) for row in rows])
        out: list[Answer[Out]] = []
        for row, response in zip(rows, responses, strict=True):
            parsed: Out | None = None
            if response.ok:
                try:
                    parsed = task.parse(row, response)
                except Exception as exc:  # a parser bug or odd text must cost one item, not the run
                    log.warning(
                        "%s: could not parse response %s: %s", task.stage, response.request_key[:8], exc
                    )
            out.append((response, parsed))
        return out

    async def run_chain(
        self, chain: Chain[Row, Out, Then], rows: list[Row]
    ) -> list[tuple[Answer[Out], Answer[Then]]]:
        """(first result, second result) per row, in row order."""
        first = await self.run(chain.first, rows)
        second = await self.run(
            chain.then, [chain.feed(row, p) for row, (_, p) in zip(rows, first, strict=True)]
        )
        return list(zip(first, second, strict=True))

    async def close(self) -> None:
        await self.teacher.close()


# Teacher calls wait on the network or on engine actors, so workers need no CPU of their own.
WorkerActor = ray.remote(num_cpus=0)(Worker)


# The results of rows sent to the workers, one chunk per worker, each a list of one result per row.
Pending = list[ray.ObjectRef[list[Out]]]


def _chunks(rows: list[Row], workers: list[Any]) -> list[list[Row]]:
    """One contiguous chunk of rows per worker (fewer when there are fewer rows)."""
    size = -(-len(rows) // len(workers))
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def send_to_workers(workers: list[Any], task: Task[Row, Out], rows: list[Row]) -> Pending[Answer[Out]]:
    """Start `task` on the rows, split across the workers; `collect` waits for the results."""
    return [w.run.remote(task, chunk) for w, chunk in zip(workers, _chunks(rows, workers), strict=False)]


def send_chain(
    workers: list[Any], chain: Chain[Row, Out, Then], rows: list[Row]
) -> Pending[tuple[Answer[Out], Answer[Then]]]:
    """`send_to_workers` for two chained tasks: both answers per row."""
    return [
        w.run_chain.remote(chain, chunk) for w, chunk in zip(workers, _chunks(rows, workers), strict=False)
    ]


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
