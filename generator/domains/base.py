"""What a domain is: a seed file, its prompt templates and a verifier (read this file to learn it).

A domain grows a dataset whose answers something other than the teacher has checked (a program that
computes them, a sandbox that runs them). The domain stage (`generator/stages/domain.py`) runs any
domain the same way, round by round:

    draft(round)  ─►  teacher steps, in order  ─►  dedup (domain's key)  ─►  verify  ─►  settle | repair
    (the round's      (each a Task: prompt(item)     (against every item      (Verification:   (the kept
     problems)         -> request, parse(item,         kept before, in          method, verdict,  record, or
                       response) -> items)             round order)             reason, details)  dropped)

Items are `Record`s: what the domain knows about one (arithmetic's expression, code's tests) rides in
`record.facts`, and the verifier's verdict in `record.verification`. With `--no-verify` the verdicts
are still recorded, but every item keeps the teacher's answer (the ablation compares the two).

A domain is one module in this package that defines `DOMAIN`; `generator/domains/__init__.py` finds
it by its module name, so the loop never learns domain names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from generator.records import Record, SeedTask, Verification
from generator.tasks.base import Task

if TYPE_CHECKING:
    from generator.config import RunConfig

__all__ = ["Domain", "DomainStep", "Verification", "Verifier", "as_kept", "everything"]


class Verifier(Protocol):
    """Checks one item's answer; never raises for a bad answer (that is a verdict)."""

    method: str  # "computed", "sandbox", ...

    def verify(self, item: Record) -> Verification: ...


def everything(item: Record) -> bool:
    return True


@dataclass(frozen=True)
class DomainStep:
    """One teacher step of a domain round.

    `task.parse(item, response)` returns what the item becomes: one item (an answer), several (a
    proposal that lists new tasks), an empty list (nothing usable), or None (the text could not be
    read). Items `wants` refuses skip the step unchanged (arithmetic writes a story only for the
    problems drafted to get one). `before` prepares an item in the driver before it is sent.
    """

    task: Task[Record, list[Record] | None]
    wants: Callable[[Record], bool] = field(default=everything)
    # runs in the driver on each item the step is about to send (medical retrieves its passages here:
    # the index stays in one process, and the workers get the item with what its prompt needs)
    before: Callable[[Record], Record] | None = None


class Domain(Protocol):
    name: str
    verifier: Verifier

    def draft(self, cfg: RunConfig, round_: int, count: int, seeds: list[SeedTask]) -> list[Record]:
        """The round's `count` problems, fixed by the run's seed and the round (never by timing)."""
        ...

    def steps(self, cfg: RunConfig) -> list[DomainStep]:
        """The teacher steps every drafted problem goes through, in order."""
        ...

    def dedup_key(self, item: Record) -> str | None:
        """Items with the same key are duplicates: the later one is dropped (None: never a duplicate)."""
        ...

    def settle(self, item: Record) -> Record:
        """A verified item as the dataset keeps it (arithmetic puts the computed solution in its
        output); with `--no-verify` the stage keeps the teacher's answer and does not call this."""
        ...

    def repair(self, item: Record) -> Record | None:
        """An item whose answer failed verification, with the domain's own answer in its place, or None
        (dropped). Arithmetic computes every answer, so a wrong one costs nothing but the teacher's
        answer (only an inconsistent word problem is dropped); code has no answer but the teacher's."""
        ...


Facts = dict[str, Any]


def as_kept(domain: Domain, item: Record, verify: bool) -> Record:
    """A round's survivor as the dataset keeps it: as the teacher wrote it (`--no-verify`), settled
    when verified, repaired when not (`filters.verify.Verify` lets through only what can be repaired).
    The domain stage and the replay both keep items this way."""
    if not verify:
        return item
    assert item.verification is not None
    if item.verification.verdict == "verified":
        return domain.settle(item)
    repaired = domain.repair(item)
    assert repaired is not None
    return repaired
