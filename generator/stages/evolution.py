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
  6. a kept evolution replaces its parent in the pool; a failed one leaves the parent there, to be
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
from collections.abc import Generator
from typing import Any, TypeVar

from filters.base import Filter, Phase, build_filters, take_stats
from generator.config import RunConfig
from generator.evolve_report import evolve_report, round_line
from generator.provenance import provenance
from generator.records import Dropped, Instance, Record
from generator.run_folder import StageFiles
from generator.seeding import derive_seed
from generator.stages.base import Context, Resumed, RoundDone
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
from generator.workers import Answer, run_on_workers

log = logging.getLogger("synth_instruct")

EVOLVED, EVOLVE_DROPPED = "evolved.jsonl", "evolve_dropped.jsonl"
PHASES: tuple[Phase, ...] = ("instruction", "verdict", "answer", "scores")  # the eliminator's order
SCORE_KINDS: tuple[ScoreKind, ...] = ("complexity", "quality")
Row = TypeVar("Row")
Out = TypeVar("Out")


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
    """The rounds still to run, from where the stage's section left them."""

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
        self.filters = build_filters([*cfg.evolve_filters, *([cfg.score_filter] if cfg.score_filter else [])])
        self.tasks = EvolveTasks(cfg)
        self.workers, self.identity = ctx.workers(), ctx.identity()
        log.info(
            "evolving %d items for rounds %d..%d (%s ops, teacher %s/%s, %d workers)",
            len(inputs),
            self.done + 1,
            cfg.evolve_rounds,
            cfg.evolve_profile,
            *self.identity,
            len(self.workers),
        )

    def rounds(self) -> Generator[RoundDone, None, None]:
        current = self.done + 1
        while current <= self.cfg.evolve_rounds:
            pool = [self.by_id[i] for i in self.pool_ids]
            rnd = EvolutionRound(self.cfg, current, self.workers, self.identity, self.filters)
            rnd.evolve(pool, self.tasks.evolve)
            if rnd.all_failed:
                yield RoundDone(current, rnd.stats, done=current - 1, failed=True, error=rnd.last_error)
                continue  # the same round again: failures are not cached, so this retries them
            rnd.eliminate(self.tasks)

            # a kept evolution replaces its parent in the pool; a failed one leaves the parent
            child_of = {r.parent_ids[0]: r for r in rnd.kept}
            self.pool_ids = [child_of[p.id].id if p.id in child_of else p.id for p in pool]
            for record in rnd.kept:
                record.parent_instruction = None  # the parent is one id away
                self.by_id[record.id] = record
            self.kept_total += len(rnd.kept)
            self.table.append(rnd.summary())
            rnd.stats.counts["evolve_rounds"] += 1
            rnd.stats.counts["evolved"] += len(pool)
            rnd.stats.counts["evolve_kept"] += len(rnd.kept)
            rnd.stats.add_filter_stats(take_stats(self.filters))
            state = EvolveState(
                round=current, pool=self.pool_ids, rounds=list(self.table), started_from=self.started_from
            )
            yield RoundDone(
                round=current,
                stats=rnd.stats,
                records=rnd.kept,
                dropped=rnd.dropped,
                state=state,
                kept=self.kept_total,
                done=current,
                summary=round_line(self.table[-1]),
            )
            current += 1

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


class EvolutionRound:
    """One evolution round: its requests, its survivors and its drops, with their counts."""

    def __init__(
        self,
        cfg: RunConfig,
        number: int,
        workers: list[Any],
        identity: tuple[str, str],
        filters: list[Filter],
    ) -> None:
        self.cfg, self.number, self.workers, self.identity = cfg, number, workers, identity
        self.stats = RunStats()  # this round's counters, added to the stage's when it commits
        self.phases = {phase: [f for f in filters if f.phase == phase] for phase in PHASES}
        self.dropped: list[Dropped] = []
        self.failed: Counter[str] = Counter()
        self.ops: Counter[str] = Counter()
        self.candidates: list[Record] = []
        self.kept: list[Record] = []
        self.all_failed = False
        self.last_error: str | None = None
        for f in filters:
            f.on_drop = self._on_drop

    def _on_drop(self, item: Record, label: str, reason: str) -> None:
        log.debug("evolve round %d: dropped %s by %s: %s", self.number, item.id, label, reason)
        self.dropped.append(
            Dropped(filter=label, reason=reason, stage="evolve", round=self.number, item=item.brief())
        )

    def _fail(self, item: Record, step: str, response: TeacherResponse) -> None:
        """A teacher call that gave nothing usable: not a rule's verdict, but written down all the same."""
        reason = "no_response" if not response.ok else "truncated" if response.truncated else "unparseable"
        self.failed[f"{step}_{reason}"] += 1
        self.dropped.append(
            Dropped(filter=step, reason=reason, stage="evolve", round=self.number, item=item.brief())
        )

    def _ask(self, task: Task[Row, Out], rows: list[Row]) -> list[Answer[Out]]:
        log.info("evolve round %d: %s for %d items", self.number, task.stage, len(rows))
        results = run_on_workers(self.workers, task, rows)
        self.stats.teacher_call(task.stage, [r for r, _ in results])
        return results

    # 1. one op per pool item, drawn from the item's own seeded RNG
    def evolve(self, pool: list[Record], task: EvolveTask) -> None:
        assert self.cfg.evolve_ops is not None
        rows = []
        for item in pool:
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
        results = self._ask(task, rows)
        self.all_failed = bool(results) and all(not r.ok for r, _ in results)
        self.last_error = results[-1][0].error if results else None
        for row, (response, record) in zip(rows, results, strict=True):
            if record is None:
                stub = Record(
                    id=f"e{self.number}-{row.parent.id}",
                    instruction=response.text,
                    origin=f"evol:{row.op}",
                    round=self.number,
                )
                self._fail(stub, "evolve", response)
                continue
            record.provenance.append(provenance("evolve", self.identity, response))
            self.candidates.append(record)

    # 2-5. the eliminator, cheapest rules first
    def eliminate(self, tasks: EvolveTasks) -> None:
        alive = self._filter("instruction", self.candidates)

        if self.phases["verdict"] and alive:
            for record, (response, equal) in zip(alive, self._ask(tasks.judge, alive), strict=True):
                record.equal_to_parent = equal
                record.provenance.append(provenance("judge", self.identity, response))
                self.stats.stages["judge"]["unreadable"] += response.ok and equal is None
            alive = self._filter("verdict", alive)

        rows = [
            AnswerRow(record=r, seed=derive_seed(self.cfg.seed, "answer", self.number, r.id)) for r in alive
        ]
        answered = []
        for record, (response, text) in zip(alive, self._ask(tasks.answer, rows), strict=True):
            record.provenance.append(provenance("answer", self.identity, response))
            if text is None:
                self._fail(record, "answer", response)
                continue
            record.instances = [Instance(input="", output=text)]
            answered.append(record)
        alive = self._filter("answer", answered)

        for scorer in tasks.scorers if alive else []:
            for record, (response, score) in zip(alive, self._ask(scorer, alive), strict=True):
                record.provenance.append(provenance(scorer.stage, self.identity, response))
                if score is not None:
                    record.scores[scorer.kind] = score
                self.stats.stages[scorer.stage]["unreadable"] += response.ok and score is None
        for record in alive:
            if "complexity" in record.scores and "quality" in record.scores:
                record.scores["deita"] = record.scores["complexity"] * record.scores["quality"]
        self.kept = self._filter("scores", alive)

    def _filter(self, phase: Phase, items: list[Record]) -> list[Record]:
        for f in self.phases[phase]:  # each sees the batch that reaches it (a top fraction is the batch's)
            items = f.apply_batch(items)
        return items

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
