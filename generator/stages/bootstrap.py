"""The bootstrap stage (Self-Instruct, Alpaca), round by round. Read it top to bottom to see how a
dataset grows.

A round has two halves. Finding new instructions:
  1. the driver samples an in-context mix of pool ids per proposal slot (seeded by run seed, round, slot);
  2. workers send the proposal prompts to the teacher concurrently and parse the responses;
  3. the driver runs the instruction filters (heuristics) on the candidates, in order;
  4. the pool actor runs dedup (ROUGE-L) and accepts or rejects each survivor, in order.
Completing them:
  5. the workers classify each accepted instruction and write its instances (Self-Instruct), or it
     keeps the instance that came with it (Alpaca); instance filters prune;
  6. the round's records, with their neighbours in the pool, and its drops go to the runner, which
     appends them to the run folder and commits the round.

Many rounds are in flight at once, so a slow teacher always has work (see `round_plan.py`): round N
goes out as soon as round N - lag is decided, and samples its examples from the pool as it stood then.
Each step waits only on what it needs: a round is screened once its proposals are in and the round
before it has reached the pool, decided once the pool has judged it, and committed once its instances
are in and the round before it has committed. The workers' windows serve earlier rounds first.

Rounds are the unit of determinism and of resume: every request in a round is fixed by the config and
by counts of the rounds before it, and results are consumed in request order, whatever order the
teacher answered in. What a round finds before it commits (its drops, its counters) is held in its
`RoundInFlight`, and lost if the run stops there: a resumed run finds it again, the same way. With the
request cache, a rerun or a resumed run rebuilds the same dataset.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import logging
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import ray

from filters.base import Filter, build_filters, run_filters, take_stats
from filters.instances import filter_instances
from generator.candidates import Fate, candidate
from generator.config import RunConfig
from generator.magpie import magpie_template
from generator.personas import load_personas, persona_for
from generator.pool import Neighbours, PoolActor, Verdict, sample_mixes
from generator.profiles import PROFILES
from generator.provenance import describe, provenance
from generator.records import Dropped, Instance, Record, Similar, TaskRow, as_example, as_task, seed_to_record
from generator.run_folder import StageFiles
from generator.seeding import derive_seed
from generator.seeds import load_seeds
from generator.stages.base import Context, Resumed, RoundDone
from generator.stages.round_plan import RoundPlan
from generator.state import BootstrapState, StageState
from generator.stats import RunStats
from generator.tasks.instances import ClassifyTask, InstancesTask, with_classification
from generator.tasks.magpie import MagpieAnswer, MagpiePropose
from generator.tasks.propose import ProposeRow, ProposeTask, make_proposer
from generator.workers import Answer, Chain, Pending, collect, ready, send_chain, send_to_workers

log = logging.getLogger("synth_instruct")

INSTRUCTIONS, DROPPED, CANDIDATES = "instructions.jsonl", "dropped.jsonl", "candidates.jsonl"
WriteChain = Chain[TaskRow, bool | None, list[Instance]]


class Bootstrap:
    """The stage: what the runner needs to know of it. `BootstrapRounds` holds the round's steps."""

    name = "bootstrap"
    files = StageFiles(records=INSTRUCTIONS, dropped=DROPPED, candidates=CANDIDATES)
    unit = "instructions"

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    def total(self) -> int:
        return self.cfg.target

    def target(self) -> int | None:
        return self.cfg.target

    def fingerprint(self, inputs: list[Record]) -> str | None:
        return None  # it starts from the seed file, which the config names

    def contribution(self, inputs: list[Record], records: list[Record]) -> list[Record]:
        """The first `target` accepted instructions that have instances."""
        return [r for r in records if r.instances][: self.cfg.target]

    def report(self, state: StageState | None) -> dict[str, Any] | None:
        return None

    def open(self, ctx: Context, inputs: list[Record], resumed: Resumed) -> BootstrapRounds | None:
        """The pool (with the seeds and the accepted items) and the tasks, unless the target is met."""
        cfg = self.cfg
        accepted = resumed.records
        state = resumed.state if isinstance(resumed.state, BootstrapState) else None
        first_round = state.round + 1 if state else 0
        kept = sum(1 for r in accepted if r.instances)
        per_round = [0] * first_round
        for r in accepted:
            per_round[r.round] += 1
        slots = (state.slots if state else [])[:first_round]
        plan = RoundPlan(
            cfg.target,
            cfg.prompts_per_round,
            cfg.rounds_in_flight,
            cfg.max_rounds,
            prior=PROFILES[cfg.profile].proposal_yield,
            slots=slots + [0] * (first_round - len(slots)),  # a folder from before plans were saved
            accepted=per_round,
        )
        if plan.after_drain(kept) is None:  # the target is met, or --max-rounds
            return None
        seeds = [seed_to_record(s) for s in load_seeds(cfg.seeds)]
        steps = BootstrapRounds(cfg, seeds, accepted, ctx, plan, kept)
        log.info(
            "growing %s: %d seeds, target %d, profile %s, teacher %s, %d workers, %d rounds in flight",
            cfg.run_name,
            len(seeds),
            cfg.target,
            cfg.profile,
            describe(steps.identity, cfg.route),
            cfg.num_workers,
            cfg.rounds_in_flight,
        )
        return steps


@dataclass
class RoundInFlight:
    """A round being found and completed: its candidates, offered to the pool, and what is pending.

    Nothing here is committed yet: its drops and counters reach the run when the runner commits it.
    """

    round: int
    slots: int  # its proposals (a retry sends the same ones)
    proposals: Pending[Answer[list[Record]]] = field(default_factory=list)
    screened: bool = False  # its survivors are offered to the pool
    decided: bool = False  # the pool's verdicts are in: `new` holds the accepted records
    candidates: int = 0
    survivors: list[Record] = field(default_factory=list)  # passed the instruction filters
    new: list[Record] = field(default_factory=list)  # accepted by dedup (once `decide` has run)
    failed: bool = False  # every proposal request failed
    last_error: str | None = None
    # answers still pending: the pool's (collected by `decide` and `complete`), the workers' instances
    verdicts: ray.ObjectRef[list[Verdict]] | None = None
    dedup_stats: ray.ObjectRef[dict[str, dict[str, int]]] | None = None
    neighbours: ray.ObjectRef[list[Neighbours]] | None = None
    classified: Pending[tuple[Answer[bool | None], Answer[list[Instance]]]] = field(default_factory=list)
    instances: Pending[Answer[list[Instance]]] = field(default_factory=list)  # when there is no classify
    dropped: list[Dropped] = field(default_factory=list)
    # the candidate stream (candidates.jsonl): every candidate in order, the first filter that dropped
    # it, and the instances the teacher wrote before any instance filter judged them
    judged: list[Record] = field(default_factory=list)
    fates: dict[str, Fate] = field(default_factory=dict)
    raw_instances: dict[str, list[Instance]] = field(default_factory=dict)
    stats: RunStats = field(default_factory=RunStats)  # this round's counters, added when it commits

    def waiting_on(self) -> list[ray.ObjectRef[Any]]:
        """What its next step waits for."""
        if not self.screened:
            return list(self.proposals)
        if not self.decided:
            return [ref for ref in (self.verdicts, self.dedup_stats) if ref is not None]
        pending: list[ray.ObjectRef[Any]] = [*self.classified, *self.instances]
        return pending + ([self.neighbours] if self.neighbours is not None else [])


class BootstrapRounds:
    """The actors, tasks and filters of the stage, and the steps of a round, in the order they run."""

    def __init__(
        self,
        cfg: RunConfig,
        seeds: list[Record],
        accepted: list[Record],
        ctx: Context,
        plan: RoundPlan,
        kept: int,
    ) -> None:
        """`accepted`: the committed records, `kept` of them with instances; `plan` says what comes next."""
        assert cfg.propose_params is not None  # a resolved config
        self.cfg = cfg
        api = cfg.api or "completion"
        proposal = PROFILES[cfg.profile].proposal
        self.personas = load_personas(cfg.personas)
        self.propose: ProposeTask | MagpiePropose
        self.instances: InstancesTask | MagpieAnswer | None
        if proposal == "pre-query":  # Magpie: the teacher writes queries from its chat template alone
            assert cfg.instance_params is not None
            self.propose = MagpiePropose(magpie_template(cfg), cfg.propose_params)
            self.instances = MagpieAnswer(cfg.instance_params, cfg.evolve_api)
        else:
            self.propose = make_proposer(proposal, cfg.propose_params, cfg.tasks_per_request or 20, api)
            self.instances = (
                InstancesTask(cfg.instance_params, cfg.max_instances or 5, api)
                if cfg.instance_params
                else None
            )
        # The instance prompt depends on the classify answer: the workers chain the two per row.
        self.chain: WriteChain | None = None
        if self.instances is not None and cfg.classify_params is not None:
            self.chain = Chain(ClassifyTask(cfg.classify_params, api), self.instances, with_classification)
        self.instruction_filters = build_filters(cfg.instruction_filters or [])
        self.instance_filters = build_filters(cfg.instance_filters or [])

        # Ray's actor handles are not typed per method: what crosses is typed in `RoundInFlight`.
        # The workers and the pool actor start side by side: each is a process to start and import into.
        self.workers = ctx.workers()
        pool: Any = PoolActor.remote(seeds, cfg.dedup or [])
        restored = pool.restore.remote(accepted)
        self.pool = pool
        # In-context mixes are sampled from ids in the pool's order (seeds, then kept items as kept), here
        # in the driver, which turns them into examples (copied once, when kept). `pool_after[n]` is how
        # many machine ids the pool held after round n: round N samples from the first
        # `pool_after[N - lag]`.
        self.seed_ids, self.machine_ids = [r.id for r in seeds], [r.id for r in accepted]
        self.pool_after = list(itertools.accumulate(plan.accepted))
        self.examples = {r.id: as_example(r) for r in [*seeds, *accepted]}
        self.identity = ctx.identities()
        ray.get(restored)
        self.plan, self.kept = plan, kept
        self.flight: dict[int, RoundInFlight] = {}  # the rounds sent and not committed, oldest first

    # -- the rounds, in order ---------------------------------------------------------------------------

    def rounds(self) -> Generator[RoundDone, None, None]:
        """Run (or resume) rounds until `target` instructions have instances."""
        while self.send_planned():
            progressed = False
            # Each step is taken for the oldest round waiting on it, once what it waits for is in.
            found = next((f for f in self.flight.values() if not f.screened), None)
            if found is not None and ready(found.proposals):
                progressed = True
                self.screen(found)
                if found.failed:
                    yield RoundDone(
                        found.round, found.stats, done=self.kept, failed=True, error=found.last_error
                    )
                    # the same round again, a true retry: failures are not cached
                    self.flight[found.round] = self.sent(found.round, found.slots)
            found = next((f for f in self.flight.values() if not f.decided), None)
            if found is not None and found.screened and ready(found.waiting_on()):
                progressed = True
                self.decide(found)
                self.start_instances(found)
            oldest = next(iter(self.flight.values()))
            if oldest.decided and ready(oldest.waiting_on()):
                progressed = True
                del self.flight[oldest.round]
                yield self.complete(oldest)
                if self.kept >= self.cfg.target:
                    return  # the rounds still in flight would add nothing the dataset takes
            if not progressed:
                self.wait()
            # What the run keeps (records, their provenance and instances) only grows, and Python's
            # cyclic GC would scan all of it again and again: about a quarter of the driver's CPU at
            # 10K kept. Nothing here forms cycles, so the survivors of each step are frozen out of it.
            gc.freeze()

    def send_planned(self) -> bool:
        """Send every round the plan allows now; False when nothing is left in flight or to send."""
        while (slots := self.plan.by_plan()) is not None:
            round_ = self.plan.send(slots)
            self.flight[round_] = self.sent(round_, slots)
        if not self.flight and (slots := self.plan.after_drain(self.kept)) is not None:
            round_ = self.plan.send(slots)  # the rounds fell short of the plan: one more, planned on them
            self.flight[round_] = self.sent(round_, slots)
            return self.send_planned()
        return bool(self.flight)

    def wait(self) -> None:
        """Sleep until an answer that one of the next steps waits for is in."""
        waiting = [ref for found in self.flight.values() for ref in found.waiting_on()]
        _, pending = ray.wait(waiting, num_returns=len(waiting), timeout=0, fetch_local=False)
        if pending:
            ray.wait(pending, num_returns=1, fetch_local=False)

    def close(self) -> None:
        # Rounds still in flight (the target is met, or the run stops) are abandoned: cancel their
        # requests at the workers rather than pay for answers nobody reads.
        abandoned = [ref for found in self.flight.values() for ref in found.waiting_on()]
        for ref in abandoned:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        if self.flight:
            log.info("abandoned %d rounds in flight (%s)", len(self.flight), ", ".join(map(str, self.flight)))
        ray.kill(self.pool)  # the workers belong to the run, which stops them after its last stage

    # -- finding: steps 1-4 -----------------------------------------------------------------------------

    def sent(self, round_: int, slots: int) -> RoundInFlight:
        """Sample the in-context mixes of `round_` and send its `slots` proposals.

        The mixes come from the pool as it stood after round `round_ - lag` (see `round_plan.py`).
        """
        cfg = self.cfg
        seen = self.plan.sees(round_)
        machine_ids = self.machine_ids[: self.pool_after[seen]] if seen >= 0 else []
        mix_seeds = [derive_seed(cfg.seed, "mix", round_, i) for i in range(slots)]
        n_seed, n_machine = cfg.seeds_in_prompt or 0, cfg.machine_in_prompt or 0
        mixes = sample_mixes(self.seed_ids, machine_ids, mix_seeds, n_seed, n_machine)
        rows = [
            ProposeRow(
                round=round_,
                index=i,
                examples=[self.examples[id_] for id_ in mix],
                seed=derive_seed(cfg.seed, "propose", round_, i),
                persona=persona_for(self.personas, cfg.seed, round_, i),
            )
            for i, mix in enumerate(mixes)
        ]
        proposals = send_to_workers(self.workers, self.propose, rows, priority=round_)
        return RoundInFlight(round_, slots, proposals)

    def screen(self, found: RoundInFlight) -> None:
        """Collect the proposals, run the instruction filters and offer the survivors to the pool.

        The pool's answers are left pending (`decide` collects them), so the pool decides while the
        driver and the workers go on with other rounds.
        """
        found.screened = True
        results = collect(found.proposals)
        found.stats.teacher_call("propose", [r for r, _ in results])
        if all(not r.ok for r, _ in results):
            found.failed, found.last_error = True, results[-1][0].error if results else "no requests"
            return
        candidates = []
        for response, parsed in results:
            if response.ok and parsed is None:
                found.stats.stages["propose"]["unparseable"] += 1
            for record in parsed or []:
                record.provenance.append(provenance("propose", self.identity, response))
                candidates.append(record)
        found.candidates = len(candidates)
        found.judged = candidates
        if self.chain is None and self.instances is None:  # Alpaca: each came with its instance
            found.raw_instances = {r.id: list(r.instances) for r in candidates}
        found.stats.counts["candidates"] += len(candidates)

        with found.stats.timed("instruction_filters"):
            _drops_into(found, self.instruction_filters, "instruction")
            found.survivors = run_filters(self.instruction_filters, candidates)
        found.stats.add_filter_stats(take_stats(self.instruction_filters))
        # Dedup in the pool actor: the single owner decides, in order. Actor calls run in the order they
        # were sent, so its neighbours and counters are those of this round's offer. The neighbours are
        # scored while the workers write instances, and collected only for the write.
        found.verdicts = self.pool.offer.remote([(r.id, r.instruction) for r in found.survivors])
        found.dedup_stats = self.pool.take_stats.remote()
        found.neighbours = self.pool.describe_kept.remote()

    def decide(self, found: RoundInFlight) -> None:
        """Collect the pool's verdicts: `found.new` holds the accepted records, in order."""
        assert found.verdicts is not None and found.dedup_stats is not None
        found.decided = True
        verdicts = ray.get(found.verdicts)
        dedup_stats = ray.get(found.dedup_stats)
        found.stats.add_filter_stats(dedup_stats)
        for record, v in zip(found.survivors, verdicts, strict=True):
            if v.kept:
                found.new.append(record)
                continue
            record.near_duplicate = v.near_duplicate
            found.fates[record.id] = Fate(step="dedup", filter=v.filter or "dedup", reason=v.reason or "")
            found.dropped.append(
                Dropped(
                    filter=v.filter or "dedup",
                    reason=v.reason or "",
                    stage="dedup",
                    round=found.round,
                    item=record.brief(),
                )
            )
        if self.chain is None and self.instances is None:
            self._filter_instances(found)  # the records came with their instances (Alpaca): prune now
        # In-context examples show the instruction (and, for Alpaca, its filtered instance).
        self.examples.update((r.id, as_example(r)) for r in found.new)
        self.machine_ids += [r.id for r in found.new]
        self.pool_after.append(len(self.machine_ids))
        self.plan.decided(found.round, len(found.new))

    # -- completing: steps 5-6 --------------------------------------------------------------------------

    def start_instances(self, found: RoundInFlight) -> None:
        """Send the accepted records to the workers for classification and instances."""
        if not found.new:
            return
        # Workers get only what the prompts need, not the provenance each record has gathered.
        rows = [as_task(r) for r in found.new]
        if self.chain is not None:
            pending = send_chain(
                self.workers, self.chain, rows, priority=found.round
            )  # typed from its arguments
            found.classified = pending
        elif self.instances is not None:
            found.instances = send_to_workers(self.workers, self.instances, rows, priority=found.round)

    def complete(self, found: RoundInFlight) -> RoundDone:
        """Attach instances and neighbours to `found.new`: the round, ready to commit."""
        stats = found.stats
        if found.classified or found.instances:
            chained: list[tuple[Answer[bool | None] | None, Answer[list[Instance]]]]
            if found.classified:
                chained = [(c, i) for c, i in collect(found.classified)]
            else:  # no classify step: instances only
                chained = [(None, result) for result in collect(found.instances)]
            classified = [c for c, _ in chained if c is not None]
            if classified:
                stats.teacher_call("classify", [response for response, _ in classified])
            assert self.instances is not None  # only rounds with instance requests get here
            step = self.instances.stage  # "instances", or Magpie's "answer"
            stats.teacher_call(step, [response for _, (response, _) in chained])
            for record, (classify, (response, parsed)) in zip(found.new, chained, strict=True):
                if classify is not None:
                    c_response, is_clf = classify
                    # An unreadable answer counts as "not classification": input-first still works.
                    record.is_classification = bool(is_clf)
                    record.provenance.append(provenance("classify", self.identity, c_response))
                    stats.stages["classify"]["unreadable"] += c_response.ok and is_clf is None
                record.instances = parsed or []
                record.provenance.append(provenance(step, self.identity, response))
                found.raw_instances[record.id] = list(record.instances)
            self._filter_instances(found)
        assert found.neighbours is not None
        neighbours = ray.get(found.neighbours)
        for record, n in zip(found.new, neighbours, strict=True):
            record.most_similar = [Similar(text=t, score=f) for t, f in n.most_similar]
            record.avg_similarity = n.avg_similarity
        newly_kept = sum(1 for r in found.new if r.instances)
        self.kept += newly_kept
        stats.counts["accepted"] += len(found.new)
        stats.counts["accepted_with_instances"] += newly_kept
        stats.counts["rounds"] += 1
        judged = [
            candidate("bootstrap", found.round, r, found.raw_instances.get(r.id), found.fates.get(r.id))
            for r in found.judged
        ]
        return RoundDone(
            round=found.round,
            stats=stats,
            records=found.new,
            dropped=found.dropped,
            candidates=judged,
            state=BootstrapState(round=found.round, slots=self.plan.slots[: found.round + 1]),
            kept=self.kept,
            done=self.kept,
            summary=f"round {found.round}: {found.candidates} candidates, {len(found.dropped)} dropped, "
            f"{len(found.new)} accepted, {newly_kept} with instances; kept {self.kept}/{self.cfg.target}",
        )

    def _filter_instances(self, found: RoundInFlight) -> None:
        with found.stats.timed("instance_filters"):
            _drops_into(found, self.instance_filters, "instances")
            for record in found.new:
                filter_instances(record, self.instance_filters)
        found.stats.add_filter_stats(take_stats(self.instance_filters))


def _drops_into(found: RoundInFlight, filters: list[Filter], stage: str) -> None:
    """Point the filters' drop reports at `found.dropped` (the round they judge now)."""

    def record_drop(item: Record, label: str, reason: str) -> None:
        log.debug("dropped %s at %s by %s: %s", item.id, stage, label, reason)
        if stage == "instruction":  # an instance filter drops instances, not the candidate
            found.fates[item.id] = Fate(step=stage, filter=label, reason=reason)
        found.dropped.append(
            Dropped(filter=label, reason=reason, stage=stage, round=found.round, item=item.brief())
        )

    for f in filters:
        f.on_drop = record_drop
