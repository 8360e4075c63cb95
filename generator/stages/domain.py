"""The domain stage: grow a dataset whose answers are checked (`--domain`). Read it top to bottom.

It takes the bootstrap's place when the config names a domain (`generator/domains/`). One round:
  1. the domain drafts the round's problems (arithmetic samples them; code asks for new tasks), fixed
     by the run's seed and the round number alone;
  2. the problems go through the domain's teacher steps, in order, on the workers (a story for an
     arithmetic problem, then its answer; a code task, then its solution and tests);
  3. at commit, in round order: `KeyDedup` drops items an earlier item already covers, `Verify` runs
     the domain's verifier on the rest (in parallel: the sandbox), and the verified items are settled
     (arithmetic: the computed solution becomes the output). With `--no-verify` every answered item is
     kept as the teacher wrote it, verdict recorded.

A round's problems never depend on another round's results, so `--rounds-in-flight` rounds are at the
teacher at once and commit in order: the dataset is the same whatever order the teacher answers in.
A round whose every request of a step failed is tried again (failures are not cached). Dedup runs at
commit, against the items kept before, so a resumed run (which rebuilds the keys from the committed
items) decides exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import ray

from filters.base import run_filters, take_stats
from filters.verify import domain_filters, verification_counts
from generator.candidates import Fate, candidate
from generator.config import RunConfig
from generator.domains import domain_for
from generator.domains.base import Domain, DomainStep, as_kept
from generator.provenance import describe, provenance
from generator.records import Dropped, Record
from generator.run_folder import StageFiles
from generator.seeds import load_seeds
from generator.stages.base import Context, Resumed, RoundDone
from generator.state import DomainState, StageState
from generator.stats import RunStats
from generator.tasks.base import Task
from generator.workers import Answer, Pending, collect, ready, send_to_workers

log = logging.getLogger("synth_instruct")

INSTRUCTIONS, DROPPED, CANDIDATES = "instructions.jsonl", "dropped.jsonl", "candidates.jsonl"
# A teacher the verifier never agrees with would otherwise draft rounds forever: after this many
# committed rounds in a row with nothing kept, the stage ends (a rerun tries again from there).
BARREN_ROUNDS = 10


class DomainStage:
    name = "domain"
    files = StageFiles(records=INSTRUCTIONS, dropped=DROPPED, candidates=CANDIDATES)
    unit = "items"

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg
        self._method: str | None = None

    def method(self) -> str:
        """The verifier's method, worked out once (configuring a domain may open its corpus)."""
        if self._method is None:
            self._method = domain_for(self.cfg).verifier.method
        return self._method

    def total(self) -> int:
        return self.cfg.target

    def target(self) -> int | None:
        return self.cfg.target

    def fingerprint(self, inputs: list[Record]) -> str | None:
        return None  # it starts from the seed file, which the config names

    def contribution(self, inputs: list[Record], records: list[Record]) -> list[Record]:
        return [r for r in records if r.instances][: self.cfg.target]

    def report(self, state: StageState | None) -> dict[str, Any] | None:
        """stats.json's "domain" section: what the verifier said of the teacher's answers."""
        if state is None:
            return None
        counts = verification_counts(state.stats.filters.get("verify", {}))
        failed, unverifiable, repaired = counts["failed"], counts["unverifiable"], counts["repaired"]
        assert isinstance(failed, dict) and isinstance(unverifiable, dict) and isinstance(repaired, int)
        rejected = sum(failed.values()) + sum(unverifiable.values())
        return {
            "name": self.cfg.domain,
            "verify": self.cfg.verify,
            "method": self.method(),
            "verification": counts,
            # every answer the verifier did not pass: repaired (the domain's own answer kept instead),
            # dropped, or with --no-verify kept as the teacher wrote it
            "teacher_answers_rejected": rejected,
            "dropped": rejected - repaired if self.cfg.verify else 0,
        }

    def open(self, ctx: Context, inputs: list[Record], resumed: Resumed) -> DomainRun | None:
        cfg = self.cfg
        state = resumed.state if isinstance(resumed.state, DomainState) else None
        next_round = state.round + 1 if state else 0
        kept = sum(1 for r in resumed.records if r.instances)
        if kept >= cfg.target or (cfg.max_rounds is not None and next_round >= cfg.max_rounds):
            return None
        return DomainRun(cfg, domain_for(cfg), ctx, resumed.records, next_round, kept)


@dataclass
class DomainRound:
    """One round on its way through the teacher steps; nothing in it is committed yet."""

    number: int
    items: list[Record]  # the round's items as the last finished step left them
    step: int = -1  # the step in flight (-1: none sent yet)
    pending: Pending[Answer[list[Record] | None]] = field(default_factory=list)
    waiting: list[Record] = field(default_factory=list)  # the items sent to the step in flight
    dropped: list[Dropped] = field(default_factory=list)
    stats: RunStats = field(default_factory=RunStats)
    failed: bool = False
    last_error: str | None = None
    drafted: int = 0


class DomainRun:
    def __init__(
        self,
        cfg: RunConfig,
        domain: Domain,
        ctx: Context,
        committed: list[Record],
        next_round: int,
        kept: int,
    ) -> None:
        self.cfg, self.domain = cfg, domain
        self.seeds = load_seeds(cfg.seeds)
        self.steps: list[DomainStep] = domain.steps(cfg)
        self.workers, self.identity = ctx.workers(), ctx.identities()
        # the keys of every item kept so far: a later item with one of them is a duplicate
        self.seen = {k for r in committed if r.instances and (k := domain.dedup_key(r)) is not None}
        self.parallel = cfg.sandbox_parallel or os.cpu_count() or 1
        self.next_round, self.kept = next_round, kept
        self.barren = 0  # rounds in a row, up to now, that kept nothing
        self.flight: dict[int, DomainRound] = {}  # rounds sent and not committed, oldest first
        log.info(
            "domain %s: growing from %s, target %d, %s, teacher %s, %d workers",
            domain.name,
            cfg.seeds,
            cfg.target,
            "verified answers only" if cfg.verify else "teacher answers kept (--no-verify)",
            describe(self.identity, cfg.route),
            len(self.workers),
        )

    def rounds(self) -> Generator[RoundDone, None, None]:
        while self.send_more():
            oldest = next(iter(self.flight.values()))
            if oldest.step >= len(self.steps):  # answered: commit it
                del self.flight[oldest.number]
                yield self.commit(oldest)
                if self.kept >= self.cfg.target:
                    return
                if self.barren >= BARREN_ROUNDS:
                    log.warning(
                        "stopping: %d rounds in a row kept nothing (the verifier rejected every answer; "
                        "see dropped.jsonl). A stronger teacher, or --no-verify to keep its answers anyway",
                        self.barren,
                    )
                    return
                continue
            progressed = False
            for rnd in list(self.flight.values()):
                if rnd.step < len(self.steps) and ready(rnd.pending):
                    progressed = True
                    self.advance(rnd)
                    if rnd.failed:
                        yield RoundDone(
                            rnd.number, rnd.stats, done=self.kept, failed=True, error=rnd.last_error
                        )
                        self.flight[rnd.number] = self.start(
                            rnd.number
                        )  # a true retry: failures aren't cached
            if not progressed:
                waiting = [ref for rnd in self.flight.values() for ref in rnd.pending]
                if waiting:
                    ray.wait(waiting, num_returns=1, fetch_local=False)

    def send_more(self) -> bool:
        """Keep `--rounds-in-flight` rounds at the teacher; False once nothing is left to do."""
        cfg = self.cfg
        while len(self.flight) < cfg.rounds_in_flight and (
            cfg.max_rounds is None or self.next_round < cfg.max_rounds
        ):
            self.flight[self.next_round] = self.start(self.next_round)
            self.next_round += 1
        return bool(self.flight)

    def start(self, number: int) -> DomainRound:
        items = self.domain.draft(self.cfg, number, self.cfg.prompts_per_round, self.seeds)
        rnd = DomainRound(number, items, drafted=len(items))
        self.send_step(rnd, 0)
        return rnd

    def send_step(self, rnd: DomainRound, step: int) -> None:
        """Send the items the step wants; a step none wants is skipped."""
        while step < len(self.steps):
            current = self.steps[step]
            rnd.waiting = [item for item in rnd.items if current.wants(item)]
            if current.before is not None:
                rnd.waiting = [current.before(item) for item in rnd.waiting]
            if rnd.waiting:
                break
            step += 1
        rnd.step = step
        if step < len(self.steps):
            task: Task[Record, Any] = self.steps[step].task  # parsed: the items it becomes, or None
            rnd.pending = send_to_workers(self.workers, task, rnd.waiting, priority=rnd.number)

    def advance(self, rnd: DomainRound) -> None:
        """Take a finished step's answers: the items it returned replace the ones it was given."""
        task = self.steps[rnd.step].task
        answers = collect(rnd.pending)
        rnd.pending = []
        rnd.stats.teacher_call(task.stage, [response for response, _ in answers])
        if all(not response.ok for response, _ in answers):
            rnd.failed, rnd.last_error = True, answers[-1][0].error
            return
        became: dict[str, list[Record]] = {}
        for item, (response, parsed) in zip(rnd.waiting, answers, strict=True):
            if not response.ok:
                rnd.stats.stages[task.stage]["lost"] += 1  # counted with the failed requests
                became[item.id] = []
                continue
            if not parsed:
                self._drop(rnd, item, task.stage, "unreadable", task.stage)
                became[item.id] = []
                continue
            for new in parsed:
                new.provenance.append(provenance(task.stage, self.identity, response))
            became[item.id] = parsed
        rnd.items = [new for item in rnd.items for new in became.get(item.id, [item])]
        self.send_step(rnd, rnd.step + 1)

    def commit(self, rnd: DomainRound) -> RoundDone:
        """Dedup against the items kept before, verify, settle: the round, ready to commit."""
        stats = rnd.stats
        filters = domain_filters(
            self.domain, self.seen, self.domain.verifier, not self.cfg.verify, self.parallel
        )
        fates: dict[str, Fate] = {}

        def dropped(item: Record, label: str, reason: str) -> None:
            fates[item.id] = Fate(step="verify", filter=label, reason=reason)
            self._drop(rnd, item, label, reason, "verify")

        for f in filters:
            f.on_drop = dropped
        answered = [r for r in rnd.items if r.instances]
        with stats.timed("verify"):
            survivors = run_filters(filters, answered)
        stats.add_filter_stats(take_stats(filters))
        kept = [as_kept(self.domain, r, self.cfg.verify) for r in survivors]
        # what later rounds are deduplicated against: the items kept, not those the verifier dropped
        self.seen.update(k for r in kept if (k := self.domain.dedup_key(r)) is not None)
        self.kept += len(kept)
        self.barren = 0 if kept else self.barren + 1
        stats.counts["rounds"] += 1
        stats.counts["drafted"] += rnd.drafted
        stats.counts["answered"] += len(answered)
        stats.counts["accepted"] += len(kept)
        stats.counts["accepted_with_instances"] += len(kept)
        return RoundDone(
            round=rnd.number,
            stats=stats,
            records=kept,
            dropped=rnd.dropped,
            # as judged: the teacher's answer and the verdict (a replay can switch verification off)
            candidates=[candidate("domain", rnd.number, r, r.instances, fates.get(r.id)) for r in answered],
            state=DomainState(round=rnd.number),
            kept=self.kept,
            done=self.kept,
            summary=f"round {rnd.number}: {rnd.drafted} drafted, {len(rnd.dropped)} dropped, "
            f"{len(kept)} kept; kept {self.kept}/{self.cfg.target}",
        )

    def _drop(self, rnd: DomainRound, item: Record, label: str, reason: str, stage: str) -> None:
        log.debug("dropped %s at %s by %s: %s", item.id, stage, label, reason)
        rnd.dropped.append(
            Dropped(filter=label, reason=reason, stage=stage, round=rnd.number, item=item.brief())
        )

    def close(self) -> None:
        abandoned = [ref for rnd in self.flight.values() for ref in rnd.pending]
        for ref in abandoned:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        if self.flight:
            log.info("abandoned %d rounds in flight (%s)", len(self.flight), ", ".join(map(str, self.flight)))
