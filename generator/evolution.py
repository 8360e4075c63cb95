"""The evolution stage (Evol-Instruct), round by round. Read it top to bottom, like `generator/loop.py`.

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
     evolved again (by a freshly drawn op) next round. The round's records and drops are appended to
     `evolved.jsonl` / `evolve_dropped.jsonl`, then `evolve_state.json` commits the round.

Round numbers: evolution rounds count 1..R on their own, in their own three files, beside the
bootstrap's `instructions.jsonl` / `dropped.jsonl` / `state.json` (whose rounds count 0..). Each stage
cuts only its own files on resume, so a crash in either never touches the other's committed work, and
raising `--target` or `--evolve-rounds` later extends the matching stage. An evolved record carries
its lineage: `round` (evolution round), `op`, `parent_ids=[parent]`, `root_id` (the starting item),
id `e<round>-<parent id>`.

The dataset (`alpaca.json`) is the starting rows followed by the evolved rows, round by round
(WizardLM merged the starting set with every round's evolutions).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import Counter
from typing import Any

import ray
from tqdm import tqdm

from filters.base import Filter, build_filters, take_stats
from generator.common import (
    TeacherUnavailable,
    brief,
    check_config,
    dataset_records,
    derive_seed,
    provenance,
    stop_actors,
)
from generator.config import RunConfig
from generator.output import ALPACA, STATS, RunFolder, write_json_atomic
from generator.records import Dropped, Instance, Record, alpaca_rows, seed_to_record
from generator.seeds import load_seeds
from generator.stats import RunStats
from generator.tasks.evolve import (
    DATA_FORMATS,
    AnswerRow,
    AnswerTask,
    EvolveRow,
    EvolveTask,
    draw_op,
    prompt_text,
)
from generator.tasks.judge import EqualityJudge, ScoreKind, ScoreTask
from generator.teachers.base import TeacherResponse
from generator.workers import TeacherFactory, WorkerActor, run_on_workers

log = logging.getLogger("synth_instruct")

EVOLVED, EVOLVE_DROPPED, EVOLVE_STATE = "evolved.jsonl", "evolve_dropped.jsonl", "evolve_state.json"
PHASES = ("instruction", "verdict", "answer", "scores")  # the order the eliminator's rules run in
SCORE_KINDS: tuple[ScoreKind, ...] = ("complexity", "quality")


class EvolveFolder(RunFolder):
    """The evolution stage's own append-only files and commit point, in the run folder."""

    records_file, dropped_file, state_file = EVOLVED, EVOLVE_DROPPED, EVOLVE_STATE

    def reset(self) -> None:
        """Start the evolution afresh; the bootstrap's files, alpaca.json and stats.json stay."""
        self.file(EVOLVE_STATE).unlink(missing_ok=True)
        for name in (EVOLVED, EVOLVE_DROPPED):
            self._rewrite(name, [])  # present and empty, even if a round keeps or drops nothing


# -- entry points ------------------------------------------------------------------------------------


def evolve_bootstrap(config: RunConfig, make_teacher: TeacherFactory) -> dict[str, Any]:
    """After `grow()`: evolve the bootstrap's dataset; stats.json then covers both stages."""
    cfg = config.resolved()
    assert cfg.out is not None
    folder = RunFolder(cfg.out)
    state = folder.load_state()
    accepted = folder.recover(state["round"]) if state else []  # nothing to cut: grow() just committed
    roots = dataset_records(accepted, cfg.target)
    return evolve(cfg, make_teacher, roots, state["stats"] if state else None)


def evolve_input(config: RunConfig, make_teacher: TeacherFactory) -> dict[str, Any]:
    """`python -m generator.evolve`: evolve the rows of an existing dataset (Alpaca JSON/JSONL)."""
    cfg = config.resolved()
    assert cfg.out is not None
    roots = [seed_to_record(task) for task in load_seeds(cfg.seeds)]
    check_config(EvolveFolder(cfg.out), cfg)  # the bootstrap's files have no place in this run
    return evolve(cfg, make_teacher, roots, None)


# -- the stage -----------------------------------------------------------------------------------------


def evolve(
    cfg: RunConfig, make_teacher: TeacherFactory, roots: list[Record], base_stats: dict[str, Any] | None
) -> dict[str, Any]:
    """Run (or resume) `cfg.evolve_rounds` rounds over `roots`; write the dataset; return the stats.

    `base_stats` is the bootstrap's saved RunStats, added into stats.json so it shows the whole run.
    """
    assert cfg.out is not None and cfg.evolve_ops is not None and cfg.evolve_filters is not None
    assert cfg.evolve_params is not None and cfg.answer_params is not None and cfg.judge_params is not None
    folder = EvolveFolder(cfg.out)
    fingerprint = _fingerprint(roots)

    state = folder.load_state()
    if state is not None and state.get("input") != fingerprint:
        # The starting set changed (the bootstrap grew, or another input file): its lineages no longer
        # hold. Start over; with the request cache, items evolved before cost nothing to redo.
        log.warning(
            "the items to evolve changed since %s was last evolved: evolving them afresh", folder.path
        )
        state = None
    if state is None:
        folder.reset()
        evolved: list[Record] = []
        pool_ids, done, stats, rounds = [r.id for r in roots], 0, RunStats(), []
    else:
        evolved = folder.recover(state["round"])
        pool_ids, done = list(state["pool"]), state["round"]
        stats, rounds = RunStats(state["stats"]), list(state["rounds"])
        log.info(
            "resuming the evolution in %s after round %d: %d evolved so far", folder.path, done, len(evolved)
        )
    by_id = {r.id: r for r in [*roots, *evolved]}

    filters = build_filters([*cfg.evolve_filters, *([cfg.score_filter] if cfg.score_filter else [])])
    evolve_task = EvolveTask(cfg.evolve_params, cfg.evolve_api)
    answer_task = AnswerTask(cfg.answer_params, cfg.evolve_api)
    judge = EqualityJudge(cfg.judge_params, cfg.evolve_api)
    scorers = [ScoreTask(kind, cfg.judge_params, cfg.evolve_api) for kind in SCORE_KINDS]

    started, elapsed_before = time.monotonic(), stats.elapsed_s
    input_stats = {"items": len(roots), "avg_words": _avg_words(roots)}
    if done < cfg.evolve_rounds:
        workers: list[Any] = [WorkerActor.remote(make_teacher) for _ in range(cfg.num_workers)]
        backend, model = ray.get(workers[0].identity.remote())
        identity = (str(backend), str(model))
        log.info(
            "evolving %d items for rounds %d..%d (%s ops, teacher %s/%s, %d workers)",
            len(roots),
            done + 1,
            cfg.evolve_rounds,
            cfg.evolve_profile,
            *identity,
            len(workers),
        )
        bar = tqdm(total=cfg.evolve_rounds, initial=done, unit="round", desc="evolve", dynamic_ncols=True)
        failed_rounds = 0
        try:
            current = done + 1
            while current <= cfg.evolve_rounds:
                pool = [by_id[i] for i in pool_ids]
                rnd = _Round(cfg, current, workers, identity, stats, filters)
                rnd.evolve(pool, evolve_task)
                if rnd.all_failed:
                    failed_rounds += 1
                    log.warning("evolve round %d: every request failed (%d in a row)", current, failed_rounds)
                    if failed_rounds >= cfg.max_failed_rounds:
                        raise TeacherUnavailable(
                            f"the teacher answered none of the last {failed_rounds} evolve rounds; "
                            "evolved items are saved; rerun to resume"
                        )
                    continue  # the same round again: failures are not cached, so this retries them
                failed_rounds = 0
                rnd.eliminate(judge, answer_task, scorers if cfg.evolve_scores else [])

                # a kept evolution replaces its parent in the pool; a failed one leaves the parent
                child_of = {r.parent_ids[0]: r for r in rnd.kept}
                pool_ids = [child_of[p.id].id if p.id in child_of else p.id for p in pool]
                for record in rnd.kept:
                    record.parent_instruction = None  # the parent is one id away
                    by_id[record.id] = record
                evolved.extend(rnd.kept)
                rounds.append(rnd.summary())
                stats.counts["evolve_rounds"] += 1
                stats.counts["evolved"] += len(pool)
                stats.counts["evolve_kept"] += len(rnd.kept)
                stats.add_filter_stats(take_stats(filters))
                stats.elapsed_s = elapsed_before + time.monotonic() - started

                folder.append_records(rnd.kept)
                folder.append_dropped(rnd.dropped)
                folder.commit_round(
                    {
                        "round": current,
                        "input": fingerprint,
                        "pool": pool_ids,
                        "rounds": rounds,
                        "stats": stats.to_state(),
                    }
                )
                summary = _summary(cfg, base_stats, stats, input_stats, rounds)
                write_json_atomic(folder.file(STATS), summary)
                log.info("%s", _round_line(rounds[-1]))
                bar.update(1)
                bar.set_postfix(kept_now=len(rnd.kept), kept_total=len(evolved))
                current += 1
        finally:
            bar.close()
            stop_actors(workers)

    # -- the dataset: starting rows, then every round's evolutions --------------------------------
    final = [*roots, *(r for r in evolved if r.round <= cfg.evolve_rounds and r.instances)]
    dataset = [row.model_dump() for r in final for row in alpaca_rows(r)]
    write_json_atomic(folder.file(ALPACA), dataset)
    summary = _summary(cfg, base_stats, stats, input_stats, rounds)
    summary["counts"]["dataset_instructions"] = len(final)
    summary["counts"]["dataset_rows"] = len(dataset)
    write_json_atomic(folder.file(STATS), summary)
    return summary


class _Round:
    """One evolution round: its requests, its survivors and its drops, with their counts."""

    def __init__(
        self,
        cfg: RunConfig,
        number: int,
        workers: list[Any],
        identity: tuple[str, str],
        stats: RunStats,
        filters: list[Filter],
    ) -> None:
        self.cfg, self.number, self.workers, self.identity, self.stats = cfg, number, workers, identity, stats
        self.phases = {phase: [f for f in filters if f.phase == phase] for phase in PHASES}
        self.dropped: list[Dropped] = []
        self.failed: Counter[str] = Counter()
        self.ops: Counter[str] = Counter()
        self.candidates: list[Record] = []
        self.kept: list[Record] = []
        self.all_failed = False
        for f in filters:
            f.on_drop = self._on_drop

    def _on_drop(self, item: Record, name: str, reason: str) -> None:
        log.debug("evolve round %d: dropped %s by %s: %s", self.number, item.id, name, reason)
        self.dropped.append(
            Dropped(filter=name, reason=reason, stage="evolve", round=self.number, item=brief(item))
        )

    def _fail(self, item: Record, step: str, response: TeacherResponse) -> None:
        """A teacher call that gave nothing usable: not a rule's verdict, but written down all the same."""
        reason = "no_response" if not response.ok else "truncated" if response.truncated else "unparseable"
        self.failed[f"{step}_{reason}"] += 1
        self.dropped.append(
            Dropped(filter=step, reason=reason, stage="evolve", round=self.number, item=brief(item))
        )

    def _ask(self, task: Any, rows: list[Any]) -> list[tuple[TeacherResponse, Any]]:
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
    def eliminate(self, judge: EqualityJudge, answer: AnswerTask, scorers: list[ScoreTask]) -> None:
        alive = self._filter("instruction", self.candidates)

        if self.phases["verdict"] and alive:
            for record, (response, equal) in zip(alive, self._ask(judge, alive), strict=True):
                record.equal_to_parent = equal
                record.provenance.append(provenance("judge", self.identity, response))
                self.stats.stages["judge"]["unreadable"] += response.ok and equal is None
            alive = self._filter("verdict", alive)

        rows = [
            AnswerRow(record=r, seed=derive_seed(self.cfg.seed, "answer", self.number, r.id)) for r in alive
        ]
        answered = []
        for record, (response, text) in zip(alive, self._ask(answer, rows), strict=True):
            record.provenance.append(provenance("answer", self.identity, response))
            if text is None:
                self._fail(record, "answer", response)
                continue
            record.instances = [Instance(input="", output=text)]
            answered.append(record)
        alive = self._filter("answer", answered)

        for scorer in scorers if alive else []:
            for record, (response, score) in zip(alive, self._ask(scorer, alive), strict=True):
                record.provenance.append(provenance(scorer.stage, self.identity, response))
                if score is not None:
                    record.scores[scorer.kind] = score
                self.stats.stages[scorer.stage]["unreadable"] += response.ok and score is None
        for record in alive:
            if "complexity" in record.scores and "quality" in record.scores:
                record.scores["deita"] = record.scores["complexity"] * record.scores["quality"]
        self.kept = self._filter("scores", alive)

    def _filter(self, phase: str, items: list[Record]) -> list[Record]:
        for f in self.phases[phase]:  # each sees the batch that reaches it (a top fraction is the batch's)
            items = f.apply_batch(items)
        return items

    def summary(self) -> dict[str, Any]:
        eliminated = Counter(d.filter for d in self.dropped if d.filter not in ("evolve", "answer"))
        words = [len(r.instruction.split()) for r in self.kept]
        tokens = [p.completion_tokens for r in self.kept for p in r.provenance if p.stage == "evolve"]
        return {
            "round": self.number,
            "evolved": sum(self.ops.values()),
            "failed": dict(self.failed),
            "eliminated": dict(eliminated),
            "kept": len(self.kept),
            "avg_words": round(sum(words) / len(words), 2) if words else None,
            "avg_tokens": round(sum(tokens) / len(tokens), 2) if tokens else None,
            "ops": dict(self.ops),
            "kept_ops": dict(Counter(r.op for r in self.kept if r.op)),
        }


# -- accounts --------------------------------------------------------------------------------------


def _summary(
    cfg: RunConfig,
    base_stats: dict[str, Any] | None,
    stats: RunStats,
    input_stats: dict[str, Any],
    rounds: list[dict[str, Any]],
) -> dict[str, Any]:
    """stats.json: the bootstrap's accounts (if any) plus the evolution's, and the per-round table."""
    total = RunStats(base_stats)
    for stage, counters in stats.stages.items():
        total.stages[stage].update(counters)
    total.add_filter_stats({name: dict(c) for name, c in stats.filters.items()})
    total.counts.update(stats.counts)
    total.elapsed_s += stats.elapsed_s
    summary = total.summary(cfg.price_prompt_per_1m, cfg.price_completion_per_1m)
    eliminated: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    for r in rounds:
        eliminated.update(r["eliminated"])
        failed.update(r["failed"])
        ops.update(r["ops"])
    summary["evolve"] = {
        "profile": cfg.evolve_profile,
        "input": input_stats,
        "rounds": rounds,
        "total": {
            "evolved": sum(r["evolved"] for r in rounds),
            "failed": dict(failed),
            "eliminated": dict(eliminated),
            "kept": sum(r["kept"] for r in rounds),
            "ops": dict(ops),
        },
    }
    return summary


def format_evolve_stats(evolve: dict[str, Any]) -> str:
    """The per-round table printed at the end of a run."""
    lines = [
        f"evolution ({evolve['profile']}): {evolve['input']['items']} items, avg {evolve['input']['avg_words']} words"
    ]
    lines += [f"  {_round_line(r)}" for r in evolve["rounds"]]
    return "\n".join(lines)


def _round_line(r: dict[str, Any]) -> str:
    def counts(c: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"

    words = "-" if r["avg_words"] is None else f"{r['avg_words']:.1f}"
    tokens = "-" if r["avg_tokens"] is None else f"{r['avg_tokens']:.1f}"
    return (
        f"round {r['round']}: {r['evolved']} evolved, {r['kept']} kept, "
        f"{sum(r['failed'].values())} failed; eliminated: {counts(r['eliminated'])}; "
        f"avg {words} words / {tokens} tokens; ops: {counts(r['ops'])}"
    )


def _avg_words(records: list[Record]) -> float | None:
    """Mean words of what gets evolved (the instruction with its input folded in), round 0's length."""
    return round(sum(len(prompt_text(r).split()) for r in records) / len(records), 2) if records else None


def _fingerprint(roots: list[Record]) -> str:
    """Which starting items (ids and text) an evolution belongs to."""
    digest = hashlib.sha256()
    for r in roots:
        digest.update(f"{r.id}\x00{r.instruction}\x00".encode())
    return digest.hexdigest()[:16]
