"""What a stage is: the interface between one kind of round (bootstrap, evolve, ...) and the runner.

A stage supplies only what is its own: how it plans and runs a round, what a round commits, and which
records it adds to the dataset. The runner (`generator/runner.py`) owns everything stages share:
the run folder and its lock, resume, the round commit, the failed-rounds guard, progress, stop,
stats merging and the dataset file.

`Stage.open()` starts what the stage's rounds need (actors, tasks, filters) and returns a `StageRun`,
or None when the stage has nothing left to do. `StageRun.rounds()` is a generator: it yields one
`RoundDone` per finished round, in order, and the runner commits it before asking for the next. A stage
may start round N+1 before it yields round N (the bootstrap does): whatever it has in flight when the
runner stops asking is dropped (`StageRun.close()`), and a resumed run plans it again, the same way.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

from generator.candidates import Candidate
from generator.records import AlpacaRow, Dropped, Record
from generator.run_folder import StageFiles
from generator.state import StageState
from generator.stats import RunStats


@dataclass
class RoundDone:
    """One finished round: what it commits, or (`failed`) a round whose every request failed.

    A failed round commits nothing; the runner counts it, and the stage tries the same round again
    (failures are not cached, so that is a true retry).
    """

    round: int
    stats: RunStats  # this round's counters, added to the stage's when it commits
    records: list[Record] = field(default_factory=list)  # appended to the stage's records file
    dropped: list[Dropped] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)  # what it judged, in order (candidates.jsonl)
    state: StageState | None = None  # the stage's section of state.json after this round
    kept: int = 0  # the stage's kept items after this round
    done: int = 0  # progress, in the stage's unit (see `Stage.unit`)
    summary: str = ""  # the round's log line
    failed: bool = False
    error: str | None = None


@dataclass
class Resumed:
    """What a stage starts from: its committed records and section (None: a fresh start)."""

    records: list[Record]
    state: StageState | None


@dataclass(frozen=True)
class Progress:
    """What `on_progress` gets after every committed round."""

    stage: str
    round: int
    kept: int  # the stage's kept items so far
    target: int | None  # the stage's goal for `kept`, if it has one (bootstrap: --target)
    done: int  # progress in `unit`, out of `total`
    total: int
    unit: str  # "instructions" (bootstrap), "rounds" (evolve)
    stats: dict[str, Any]  # stats.json as it stands
    # The rows this round added to the dataset, in dataset order: appended to the rows of the rounds
    # before (and of the folder as a resumed run found it), they are the dataset so far.
    rows: list[AlpacaRow] = field(default_factory=list)


class Context(Protocol):
    """What the runner lends a stage: the worker actors (started on first use) and their teacher."""

    def workers(self) -> list[Any]: ...

    def identity(self) -> tuple[str, str]: ...

    def identities(self) -> dict[str, tuple[str, str]]: ...


class StageRun(Protocol):
    """A stage's rounds, ready to go: the runner times `rounds()` and always calls `close()`."""

    def rounds(self) -> Generator[RoundDone, None, None]:
        """Run rounds until the stage is done (or the runner stops asking)."""
        ...

    def close(self) -> None:
        """Stop what `open` started (the bootstrap's pool actor); the run's workers stay."""
        ...


class Stage(Protocol):
    name: str  # its section in state.json and its part of the dataset
    unit: str

    @property
    def files(self) -> StageFiles | None:
        """Its two append-only files; None for a stage with no rounds (the input rows)."""
        ...

    def total(self) -> int:
        """The progress total, in `unit`."""
        ...

    def target(self) -> int | None:
        """The goal for kept items, if the stage has one."""
        ...

    def fingerprint(self, inputs: list[Record]) -> str | None:
        """Which inputs a committed section belongs to; a section of other inputs is redone."""
        ...

    def open(self, ctx: Context, inputs: list[Record], resumed: Resumed) -> StageRun | None:
        """Get ready to run rounds (None: the stage is done already)."""
        ...

    def contribution(self, inputs: list[Record], records: list[Record]) -> list[Record]:
        """The stage's part of the dataset, from its committed records (and its inputs)."""
        ...

    def report(self, state: StageState | None) -> dict[str, Any] | None:
        """An extra section of stats.json under the stage's name, if it has one."""
        ...
