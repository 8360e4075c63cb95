"""The evolution stage (Evol-Instruct), round by round. Read it top to bottom, like the bootstrap.

It starts from a list of records (the bootstrap's dataset, or the rows of an existing Alpaca file)
and keeps a *pool*: one item per starting record, the newest surviving evolution of it. One round:
  1. for each pool item, the run's seeded RNG draws one op (by the configured weights) for
     (seed, "evolve", round, item id); workers send the rewrite prompts and parse the new instructions;
  2. the cheap eliminator rules judge the new instruction (h2o's unchanged / too many newlines or list
     items / assistant boilerplate, and the paper's prompt leak);
  3. the teacher judges whether each survivor is equal to its parent (the paper's rule 1), and
     `evol_no_gain` drops the equal ones;
  4. the teacher answers each survivor; rules 2 and 3 read the answer (sorry and short; stop words);
  5. optionally the teacher scores complexity and answer quality (Deita, 1-6) and a score filter keeps
     the best;
  6. the run's dedup judges each surviving evolution against every instruction the run kept before
     it, in (round, pool position) order (`evolve_checks.py`; the run's instruction filters joined
     the rules of step 2);
  7. a kept evolution replaces its parent in the pool; a failed one leaves the parent there, to be
     evolved again (by a freshly drawn op) next round. The runner appends the round's records and
     drops to `evolved.jsonl` / `evolve_dropped.jsonl` and commits the round in state.json.

Round numbers: evolution rounds count 1..R. The stage's section of state.json records the inputs'
fingerprint: when the bootstrap grows after an evolution, the evolution is redone on the new inputs.
An evolved record carries its lineage: `round` (evolution round), `op`, `parent_ids=[parent]`,
`root_id` (the starting item), id `e<round>-<parent id>`.

The stage's part of the dataset is every round's evolutions, after the starting rows (WizardLM merged
the starting set with every round's evolutions).
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import ray

from filters.base import Filter, Phase, build_filters, take_stats
from generator.config import RunConfig
from generator.evolve_report import evolve_report, round_line
from generator.pool import Verdict
from generator.provenance import Identities, describe, provenance
from generator.records import Dropped, Instance, Record
from generator.run_folder import StageFiles
from generator.seeding import derive_seed
from generator.stages.base import Context, Resumed, RoundDone
from generator.stages.evolve_checks import RunDedup, evolve_specs
from generator.state import EvolveInput, EvolveRoundStats, EvolveState, StageState
from generator.stats import RunStats
from generator.tasks.answer import AnswerRow, AnswerTask
from generator.tasks.base import Task
from generator.tasks.judge import EqualityJudge, ScoreKind, ScoreTask
from generator.tasks.rewrite import (
    DATA_FORMATS,
    EvolveRow,
    EvolveTask,
    draw_op,
    prompt_text,
)
from generator.teachers.base import TeacherResponse
from generator.workers import Answer

log = logging.getLogger("synth_instruct")

EVOLVED, EVOLVE_DROPPED = "evolved.jsonl", "evolve_dropped.jsonl"
PHASES: tuple[Phase, ...] = ("instruction", "verdict", "answer", "scores")  # the eliminator's order
SCORE_KINDS: tuple[ScoreKind, ...] = ("complexity", "quality")


class Evolution:
    name = "evolve"
    files = StageFiles(records=EVOLVED, dropped=EVOLVE_DROPPED)
    unit = "rounds"

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    def total(self) -> int:
        return self.cfg.evolve_rounds

    def target(self) -> int | None:
        return None

    def fingerprint(self, inputs: list[Record]) -> str | None:
        """Which starting items (ids and text) an evolution belongs to."""
        digest = hashlib.sha256()
        for r in inputs:
            digest.update(f"{r.id}\x00{r.instruction}\x00".encode())
        return digest.hexdigest()[:16]

    def contribution(self, inputs: list[Record], records: list[Record]) -> list[Record]:
        return [r for r in records if r.round <= self.cfg.evolve_rounds and r.instances]

    def report(self, state: StageState | None) -> dict[str, Any] | None:
        if not isinstance(state, EvolveState):
            return None
        return evolve_report(self.cfg.evolve_profile, state)

    def open(self, ctx: Context, inputs: list[Record], resumed: Resumed) -> EvolutionRun | None:
        """The eliminator's filters and the tasks, unless every round is done."""
        saved = resumed.state if isinstance(resumed.state, EvolveState) else None
        if saved is not None and saved.round >= self.cfg.evolve_rounds:
            return None
        return EvolutionRun(self.cfg, ctx, inputs, resumed.records, saved)


class EvolutionRun:
    """The rounds still to run, from where the stage's section left them.

    Items go through the rounds on their own, a few at a time: an item whose evolution is judged in
    round N is evolved again for round N+1 at once, while other items of round N are still being
    answered, so a slow teacher always has work. A score filter that keeps a top fraction judges a
    whole round: with one, every item waits for its round to end. Rounds still commit in order, each
    with the same records, drops and counters in the same order as if it ran alone.
    """

    def __init__(
        self,
        cfg: RunConfig,
        ctx: Context,
        inputs: list[Record],
        evolved: list[Record],
        saved: EvolveState | None,
    ) -> None:
        assert cfg.evolve_filters is not None
        self.cfg = cfg
        self.pool_ids = list(saved.pool) if saved else [r.id for r in inputs]
        self.done = saved.round if saved else 0
        self.table: list[EvolveRoundStats] = list(saved.rounds) if saved else []
        self.started_from = EvolveInput(items=len(inputs), avg_words=_avg_words(inputs))
        self.by_id = {r.id: r for r in [*inputs, *evolved]}
        self.kept_total = len(evolved)
        self.specs = evolve_specs(cfg)
        self.dedup = RunDedup(cfg, [*inputs, *evolved])  # what the run kept, in the order it kept it
        self.frontier = (self.done + 1, 0)  # the next (round, position) the dedup decides
        self.tasks = EvolveTasks(cfg)
        self.workers, self.identity = ctx.workers(), ctx.identities()
        self.live: dict[int, EvolutionRound] = {}  # rounds started and not committed
        self.pending: dict[ray.ObjectRef[Any], Step] = {}  # batches at the workers
        self.sent = 0
        log.info(
            "evolving %d items for rounds %d..%d (%s ops, teacher %s, %d workers)",
            len(inputs),
            self.done + 1,
            cfg.evolve_rounds,
            cfg.evolve_profile,
            describe(self.identity, cfg.route),
            len(self.workers),
        )

    def rounds(self) -> Generator[RoundDone, None, None]:
        current = self.done + 1
        if current > self.cfg.evolve_rounds:
            return
        self.start_whole(current)
        while current <= self.cfg.evolve_rounds:
            self.settle()
            rnd = self.live[current]
            if rnd.all_failed:
                yield RoundDone(current, rnd.stats, done=current - 1, failed=True, error=rnd.last_error)
                self.start_whole(current)  # the same round again: failures are not cached, so a retry
                continue
            if rnd.closed and self.frontier[0] > current:
                del self.live[current]
                yield self.commit(rnd)
                current += 1
                continue
            self.answers_in()

    def start_whole(self, number: int) -> None:
        """Start round `number` with the whole pool as it stands (the first round, or a retry)."""
        self.start(number).enter(list(enumerate(self.by_id[i] for i in self.pool_ids)))

    def start(self, number: int) -> EvolutionRound:
        self.live[number] = EvolutionRound(
            self.cfg,
            number,
            len(self.pool_ids),
            self.identity,
            build_filters(self.specs),
            self.tasks,
            self.send,
        )
        return self.live[number]

    def send(self, step: Step, task: Task[Any, Any], rows: list[Any]) -> None:
        """Send a batch of one round to the next worker; `answers_in` hands its answers back."""
        worker = self.workers[self.sent % len(self.workers)]
        self.sent += 1
        self.pending[worker.run.remote(task, rows, step.round)] = step

    def answers_in(self) -> None:
        """Wait for some batches, take them a step on, and start the next round of the items done."""
        first, _ = ray.wait(list(self.pending), num_returns=1)
        done, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0)
        for ref in dict.fromkeys([*first, *done]):
            step = self.pending.pop(ref)
            self.live[step.round].advance(step, ray.get(ref))
        self.settle()

    def settle(self) -> None:
        """Decide the items whose round has ended, in (round, position) order: the run's dedup keeps
        an evolution or drops it as a duplicate, and the item goes on to its next round (as its kept
        evolution, or as the parent again). The order makes the decisions the same whatever order the
        teacher answers in."""
        released: dict[int, list[tuple[int, Record]]] = {}
        while (rnd := self.live.get(self.frontier[0])) is not None:
            position = self.frontier[1]
            if position == rnd.size:
                self.frontier = (rnd.number + 1, 0)
                continue
            if not rnd.ready(position):
                break
            record = rnd.outcome[position]
            if record is not None:
                rnd.judged(position, record, self.dedup.judge(record), self.dedup.take_stats())
            if rnd.number < self.cfg.evolve_rounds:
                going_on = rnd.outcome[position] or rnd.parents[position]
                released.setdefault(rnd.number + 1, []).append((position, going_on))
            self.frontier = (rnd.number, position + 1)
        for number, items in released.items():
            (self.live.get(number) or self.start(number)).enter(items)

    def commit(self, rnd: EvolutionRound) -> RoundDone:
        rnd.finish()
        # a kept evolution replaces its parent in the pool; a failed one leaves the parent
        child_of = {r.parent_ids[0]: r for r in rnd.kept}
        self.pool_ids = [child_of[i].id if i in child_of else i for i in self.pool_ids]
        for record in rnd.kept:
            record.parent_instruction = None  # the parent is one id away
            self.by_id[record.id] = record
        self.kept_total += len(rnd.kept)
        self.table.append(rnd.summary())
        rnd.stats.counts["evolve_rounds"] += 1
        rnd.stats.counts["evolved"] += len(self.pool_ids)
        rnd.stats.counts["evolve_kept"] += len(rnd.kept)
        rnd.stats.add_filter_stats(take_stats(rnd.filters))
        state = EvolveState(
            round=rnd.number, pool=self.pool_ids, rounds=list(self.table), started_from=self.started_from
        )
        return RoundDone(
            round=rnd.number,
            stats=rnd.stats,
            records=rnd.kept,
            dropped=rnd.dropped,
            state=state,
            kept=self.kept_total,
            done=rnd.number,
            summary=round_line(self.table[-1]),
        )

    def close(self) -> None:
        pass  # it starts no actors of its own


class EvolveTasks:
    """The stage's teacher tasks, built once from the config."""

    def __init__(self, cfg: RunConfig) -> None:
        assert (
            cfg.evolve_params is not None and cfg.answer_params is not None and cfg.judge_params is not None
        )
        self.evolve = EvolveTask(cfg.evolve_params, cfg.evolve_api)
        self.answer = AnswerTask(cfg.answer_params, cfg.evolve_api)
        self.judge = EqualityJudge(cfg.judge_params, cfg.evolve_api)
        kinds = SCORE_KINDS if cfg.evolve_scores else ()
        self.scorers = [ScoreTask(kind, cfg.judge_params, cfg.evolve_api) for kind in kinds]


@dataclass
class Step:
    """A batch of one round's items at one step: which items (by pool position) and what they hold."""

    round: int
    name: str  # evolve, judge, answer, or a scorer's stage
    items: list[int]
    records: list[Record]  # the parents (evolve), then the evolutions


def batch_size(max_in_flight: int) -> int:
    """Items per request batch: a batch goes on to its next step when all its items are answered, so
    small batches keep a small window full; up to 8 keeps the number of actor calls down when it is wide.
    (It changes nothing in the data: answers are taken per item, and drops are put in pool order.)"""
    return max(1, min(8, max_in_flight // 16))


# Where each kind of drop sits in a round's drop list: a round that ran alone, step by step, wrote its
# evolve failures first, then the instruction rules' drops, and so on, each in pool order.
DROP_ORDER = {
    "evolve": 0,
    "instruction": 1,
    "verdict": 2,
    "answer_failed": 3,
    "answer": 4,
    "scores": 5,
    "dedup": 6,
}
Send = Callable[[Step, Task[Any, Any], list[Any]], None]


class EvolutionRound:
    """One evolution round: its items as they go through the steps, its survivors and its drops."""

    def __init__(
        self,
        cfg: RunConfig,
        number: int,
        size: int,
        identity: Identities,
        filters: list[Filter],
        tasks: EvolveTasks,
        send: Send,
    ) -> None:
        """`size`: the pool's items, which enter as the round before lets them go."""
        self.cfg, self.number, self.size, self.identity = cfg, number, size, identity
        self.tasks, self.send = tasks, send
        self.filters = filters  # this round's own, so their counters are this round's
        self.stats = RunStats()  # this round's counters, added to the stage's when it commits
        self.phases = {phase: [f for f in filters if f.phase == phase] for phase in PHASES}
        # A filter that ranks the round's items (a top fraction) needs all of them: the round ends first.
        self.waits_for_round = any(f.batch_level for f in self.phases["scores"])
        self.steps = (["judge"] if self.phases["verdict"] else []) + ["answer"]
        self.steps += [scorer.stage for scorer in tasks.scorers]
        self.parents: dict[int, Record] = {}  # pool position -> the item this round evolves
        self.ops_of: dict[int, str] = {}
        self.outcome: dict[int, Record | None] = {}  # pool position -> its kept evolution, or None
        self.scored: dict[int, Record] = {}  # survivors waiting for a round-wide score filter
        self.held: list[int] = []  # items whose evolve request failed: they go on once the round ends
        self.drops: list[tuple[int, int, Dropped]] = []  # (DROP_ORDER, pool position, drop)
        self.failed: Counter[str] = Counter()
        self.ops: Counter[str] = Counter()
        self.answered = 0  # evolve requests that got a response (none at all: the round failed)
        self.kept: list[Record] = []
        self.dropped: list[Dropped] = []
        self.closed = size == 0
        self.last_error: str | None = None
        self._position: dict[str, int] = {}  # record id -> pool position, for drops reported by filters
        self._rank = 0
        for f in filters:
            f.on_drop = self._on_drop

    @property
    def all_failed(self) -> bool:
        """Every evolve request of the round failed: the runner counts it, and the round runs again."""
        return self.closed and self.size > 0 and self.answered == 0

    # 1. one op per pool item, drawn from the item's own seeded RNG; sent a few items at a time
    def enter(self, items: list[tuple[int, Record]]) -> None:
        assert self.cfg.evolve_ops is not None
        size = batch_size(self.cfg.max_in_flight or 8)
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            rows = []
            for position, item in batch:
                self.parents[position] = item
                rng = random.Random(derive_seed(self.cfg.seed, "evolve", self.number, item.id))
                op = draw_op(rng, self.cfg.evolve_ops, self.cfg.evolve_profile)
                rows.append(
                    EvolveRow(
                        parent=item,
                        op=op,
                        round=self.number,
                        data_format=rng.choice(DATA_FORMATS) if op == "complicate_input" else None,
                        seed=derive_seed(self.cfg.seed, "evolve-request", self.number, item.id),
                    )
                )
                self.ops[op] += 1
                self.ops_of[position] = op
            step = Step(self.number, "evolve", [p for p, _ in batch], [item for _, item in batch])
            self.send(step, self.tasks.evolve, rows)

    # 2-5. the eliminator, cheapest rules first, each item on its own
    def advance(self, step: Step, results: list[Answer[Any]]) -> None:
        """Take a batch's answers one step on; an item whose round ended here has its `outcome`."""
        self.stats.teacher_call(step.name, [r for r, _ in results])
        ended, alive = [], []
        for position, record, (response, parsed) in zip(step.items, step.records, results, strict=True):
            going_on = self._take(step.name, position, record, response, parsed)
            if going_on is None:
                ended.append(position)
            else:
                alive.append((position, going_on))
        ended += self._next(step, alive)
        for position in ended:
            self.outcome.setdefault(position, None)
        if len(self.outcome) + len(self.scored) == self.size:
            self._end()

    def ready(self, position: int) -> bool:
        """Whether the item's round has ended, so the run's dedup may decide it now. An item whose evolve
        request failed waits for the round's end (a round where every request failed runs again);
        with a round-wide score filter every item does."""
        if self.all_failed or position not in self.outcome:
            return False
        return self.closed or (position not in self.held and not self.waits_for_round)

    def judged(
        self, position: int, record: Record, verdict: Verdict, counters: dict[str, dict[str, int]]
    ) -> None:
        """The run dedup's verdict on a surviving evolution, and its counters (this round's: it commits
        them): a duplicate's drop names what it duplicated."""
        self.stats.add_filter_stats(counters)
        if verdict.kept:
            return
        record.near_duplicate = verdict.near_duplicate
        reason = verdict.reason or "duplicate"
        log.debug("evolve round %d: dropped %s by %s: %s", self.number, record.id, verdict.filter, reason)
        drop = Dropped(
            filter=verdict.filter or "dedup",
            reason=reason,
            stage="evolve",
            round=self.number,
            item=record.brief(),
        )
        self.drops.append((DROP_ORDER["dedup"], position, drop))
        self.outcome[position] = None

    def _take(
        self, name: str, position: int, record: Record, response: TeacherResponse, parsed: Any
    ) -> Record | None:
        """One answer: the evolution as it goes on, or None when its round ended here (failed/dropped)."""
        if name == "evolve":
            self.answered += response.ok
            self.last_error = response.error or self.last_error
            if parsed is None:
                stub = Record(
                    id=f"e{self.number}-{record.id}",
                    instruction=response.text,
                    origin=f"evol:{self.ops_of[position]}",
                    round=self.number,
                )
                self._fail(position, stub, "evolve", response)
                self.held.append(position)
                return None
            parsed.provenance.append(provenance("evolve", self.identity, response))
            return self._filter(position, "instruction", parsed)
        if name == "judge":
            record.equal_to_parent = parsed
            record.provenance.append(provenance("judge", self.identity, response))
            self.stats.stages["judge"]["unreadable"] += response.ok and parsed is None
            return self._filter(position, "verdict", record)
        if name == "answer":
            record.provenance.append(provenance("answer", self.identity, response))
            if parsed is None:
                self._fail(position, record, "answer", response)
                return None
            record.instances = [Instance(input="", output=parsed)]
            return self._filter(position, "answer", record)
        scorer = next(s for s in self.tasks.scorers if s.stage == name)
        record.provenance.append(provenance(scorer.stage, self.identity, response))
        if parsed is not None:
            record.scores[scorer.kind] = parsed
        self.stats.stages[scorer.stage]["unreadable"] += response.ok and parsed is None
        return record

    def _next(self, step: Step, alive: list[tuple[int, Record]]) -> list[int]:
        """Send a step's survivors to the next step; past the last, score them. Returns those done."""
        if not alive:
            return []
        index = -1 if step.name == "evolve" else self.steps.index(step.name)
        if index + 1 < len(self.steps):
            name = self.steps[index + 1]
            nxt = Step(self.number, name, [p for p, _ in alive], [r for _, r in alive])
            self.send(nxt, self._task(name), self._rows(name, alive))
            return []
        done = []
        for position, record in alive:
            if "complexity" in record.scores and "quality" in record.scores:
                record.scores["deita"] = record.scores["complexity"] * record.scores["quality"]
            if self.waits_for_round:
                self.scored[position] = record
            else:
                self.outcome[position] = self._filter(position, "scores", record)
                done.append(position)
        return done

    def _end(self) -> None:
        """Every item's round has ended (or waits for the round-wide filter): the round closes."""
        if self.scored:
            order = sorted(self.scored)
            self._rank = DROP_ORDER["scores"]
            self._position.update((self.scored[p].id, p) for p in order)
            kept = {r.id for r in self._batch_filter([self.scored[p] for p in order])}
            self.outcome.update((p, self.scored[p] if self.scored[p].id in kept else None) for p in order)
            self.scored = {}
        self.closed = True

    def finish(self) -> None:
        """The round's kept evolutions and drops, in pool order, once the run's dedup decided them all."""
        self.kept = [r for _, r in sorted(self.outcome.items()) if r is not None]
        self.dropped = [d for _, _, d in sorted(self.drops, key=lambda t: (t[0], t[1]))]

    def _task(self, name: str) -> Task[Any, Any]:
        if name == "judge":
            return self.tasks.judge
        if name == "answer":
            return self.tasks.answer
        return next(s for s in self.tasks.scorers if s.stage == name)

    def _rows(self, name: str, alive: list[tuple[int, Record]]) -> list[Any]:
        if name == "answer":
            seed = self.cfg.seed
            return [
                AnswerRow(record=r, seed=derive_seed(seed, "answer", self.number, r.id)) for _, r in alive
            ]
        return [r for _, r in alive]

    def _filter(self, position: int, phase: Phase, record: Record) -> Record | None:
        """The phase's rules on one item, in order: the item, or None if one dropped it."""
        self._rank, self._position[record.id] = DROP_ORDER[phase], position
        for f in self.phases[phase]:
            if not f.apply(record)[0]:
                return None
        return record

    def _batch_filter(self, items: list[Record]) -> list[Record]:
        for f in self.phases["scores"]:  # each sees the batch that reaches it (a top fraction is the batch's)
            items = f.apply_batch(items)
        return items

    def _on_drop(self, item: Record, label: str, reason: str) -> None:
        log.debug("evolve round %d: dropped %s by %s: %s", self.number, item.id, label, reason)
        drop = Dropped(filter=label, reason=reason, stage="evolve", round=self.number, item=item.brief())
        self.drops.append((self._rank, self._position[item.id], drop))

    def _fail(self, position: int, item: Record, step: str, response: TeacherResponse) -> None:
        """A teacher call that gave nothing usable: not a rule's verdict, but written down all the same."""
        reason = "no_response" if not response.ok else "truncated" if response.truncated else "unparseable"
        self.failed[f"{step}_{reason}"] += 1
        drop = Dropped(filter=step, reason=reason, stage="evolve", round=self.number, item=item.brief())
        self.drops.append((DROP_ORDER["evolve" if step == "evolve" else "answer_failed"], position, drop))

    def summary(self) -> EvolveRoundStats:
        eliminated = Counter(d.filter for d in self.dropped if d.filter not in ("evolve", "answer"))
        words = [len(r.instruction.split()) for r in self.kept]
        tokens = [p.completion_tokens for r in self.kept for p in r.provenance if p.stage == "evolve"]
        return EvolveRoundStats(
            round=self.number,
            evolved=sum(self.ops.values()),
            failed=dict(self.failed),
            eliminated=dict(eliminated),
            kept=len(self.kept),
            avg_words=round(sum(words) / len(words), 2) if words else None,
            avg_tokens=round(sum(tokens) / len(tokens), 2) if tokens else None,
            ops=dict(self.ops),
            kept_ops=dict(Counter(r.op for r in self.kept if r.op)),
        )


def _avg_words(records: list[Record]) -> float | None:
    """Mean words of what gets evolved (the instruction with its input folded in), round 0's length."""
    return round(sum(len(prompt_text(r).split()) for r in records) / len(records), 2) if records else None
