"""The bootstrap loop, round by round. Read this file top to bottom to see how a dataset grows.

A round has two halves. Finding new instructions:
  1. the driver samples an in-context mix of pool ids per proposal slot (seeded by run seed, round, slot);
  2. workers send the proposal prompts to the teacher concurrently and parse the responses;
  3. the driver runs the instruction filters (heuristics) on the candidates, in order;
  4. the pool actor runs dedup (ROUGE-L) and accepts or rejects each survivor, in order.
Completing them:
  5. the workers classify each accepted instruction and write its instances, one round trip per
     worker (Self-Instruct), or it keeps the instance that came with it (Alpaca); instance filters prune;
  6. the round's records, with their neighbours in the pool, and its drops are appended to the run
     folder, then state.json commits the round.

The halves of consecutive rounds overlap. Once round N's dedup has decided, round N+1's proposals go
out, and their candidates are filtered and offered to the pool while the workers write round N's
instances. Round N+1 depends only on the pool after round N's dedup and on a count fixed by then: the
items kept so far, with all of round N's counted as if they will get instances. What round N+1 finds
before round N commits (its drops, its counters) is held apart, and lost if the run stops there: a
resumed run finds it again, the same way.

Rounds are the unit of determinism and of resume: every request in a round is fixed by the config and
the pool as it stood when the round began, and results are consumed in request order, whatever order
the teacher answered in. With the request cache, a rerun or a resumed run rebuilds the same dataset.
"""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import ray
from tqdm import tqdm

from filters.base import Filter, build_filters, run_filters, take_stats
from filters.instances import apply_instance_filters
from generator.common import TeacherUnavailable, check_config, dataset_records, derive_seed, provenance
from generator.common import brief as _brief
from generator.common import stop_actors as _stop_actors
from generator.config import RunConfig
from generator.output import ALPACA, STATS, RunFolder, write_json_atomic
from generator.pool import PoolActor, sample_mixes
from generator.records import Dropped, Record, Similar, alpaca_rows, as_example, as_task, seed_to_record
from generator.seeds import load_seeds
from generator.stats import RunStats
from generator.tasks.instances import ClassifyTask, InstancesTask, with_classification
from generator.tasks.propose import AlpacaPropose, ProposeRow, SelfInstructPropose
from generator.workers import Chain, TeacherFactory, WorkerActor, collect, send_to_workers

log = logging.getLogger("synth_instruct")


@dataclass
class Found:
    """A round in flight: its candidates, offered to the pool, and what is still pending for it.

    Nothing here is committed yet: its drops and counters are added to the run's when it commits.
    """

    round: int
    planned: int  # the kept count its number of proposals was planned from (a retry reuses it)
    candidates: int = 0
    survivors: list[Record] = field(default_factory=list)  # passed the instruction filters
    new: list[Record] = field(default_factory=list)  # accepted by dedup (once `settle` has run)
    failed: bool = False  # every proposal request failed
    last_error: str | None = None
    # answers still pending: the pool's (collected by `settle` and `complete`), the workers' instances
    verdicts: Any = None
    filter_stats: Any = None
    neighbours: Any = None
    writing: list[Any] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    stats: RunStats = field(default_factory=RunStats)  # this round's counters, added when it commits


def grow(config: RunConfig, make_teacher: TeacherFactory) -> dict[str, Any]:
    """Run (or resume) the bootstrap until `target` instructions have instances. Returns stats."""
    cfg = config.resolved()
    assert cfg.out is not None
    seeds = load_seeds(cfg.seeds)  # bad seeds fail here, before any teacher call
    folder = RunFolder(cfg.out)
    check_config(folder, cfg)

    state = folder.load_state()
    if state is None:
        folder.reset()
        accepted: list[Record] = []
        first_round, stats = 0, RunStats()
    else:
        accepted = folder.recover(state["round"])
        first_round, stats = state["round"] + 1, RunStats(state["stats"])
        log.info(
            "resuming %s after round %d: %d instructions accepted so far",
            folder.path,
            state["round"],
            len(accepted),
        )
    kept = sum(1 for r in accepted if r.instances)
    # What the next round was planned from when the run stopped: see `Bootstrap.proposals`.
    planned = sum(1 for r in accepted if r.instances or r.round == first_round - 1)
    planned = kept if planned >= cfg.target else planned

    def more_rounds(round_: int, count: int) -> bool:
        return count < cfg.target and (cfg.max_rounds is None or round_ < cfg.max_rounds)

    loop = Bootstrap(cfg, [seed_to_record(s) for s in seeds], accepted, make_teacher)
    failed_rounds = 0
    started = time.monotonic()
    elapsed_before = stats.elapsed_s
    bar = tqdm(total=cfg.target, initial=min(kept, cfg.target), unit="instr", desc="kept", dynamic_ncols=True)
    log.info(
        "growing %s: %d seeds, target %d, profile %s, teacher %s/%s, %d workers",
        cfg.run_name,
        len(seeds),
        cfg.target,
        cfg.profile,
        *loop.identity,
        cfg.num_workers,
    )
    try:
        found = loop.find(first_round, planned) if more_rounds(first_round, kept) else None
        while found is not None:
            loop.settle(found)
            if found.failed:
                failed_rounds += 1
                stats.add(found.stats)  # the failed requests count; the round itself is tried again
                log.warning(
                    "round %d: every proposal request failed (%d in a row)", found.round, failed_rounds
                )
                if failed_rounds >= cfg.max_failed_rounds:
                    raise TeacherUnavailable(
                        f"the teacher answered none of the last {failed_rounds} rounds; "
                        f"last error: {found.last_error}. Accepted items are saved; rerun to resume."
                    )
                found = loop.find(found.round, found.planned)  # failures are not cached: a true retry
                continue
            failed_rounds = 0

            # The next round may start now: its proposals go out before this round's instance work, so
            # the workers answer them first, and its dedup runs in the pool while they write instances.
            planned = kept + len(found.new)
            proposals = (
                loop.proposals(found.round + 1, planned) if more_rounds(found.round + 1, planned) else None
            )
            loop.start_instances(found)
            following = loop.offer(found.round + 1, planned, proposals) if proposals is not None else None

            newly_kept = loop.complete(found)
            kept += newly_kept
            accepted.extend(found.new)
            stats.add(found.stats)
            stats.counts["accepted"] += len(found.new)
            stats.counts["accepted_with_instances"] += newly_kept
            stats.counts["rounds"] += 1
            stats.elapsed_s = elapsed_before + time.monotonic() - started
            with stats.timed("write"):
                folder.append_records(found.new)
                folder.append_dropped(found.dropped)
                folder.commit_round({"round": found.round, "stats": stats.to_state()})
                write_json_atomic(
                    folder.file(STATS), stats.summary(cfg.price_prompt_per_1m, cfg.price_completion_per_1m)
                )
            log.info(
                "round %d: %d candidates, %d dropped, %d accepted, %d with instances; kept %d/%d",
                found.round,
                found.candidates,
                len(found.dropped),
                len(found.new),
                newly_kept,
                kept,
                cfg.target,
            )
            bar.update(min(kept, cfg.target) - bar.n)
            bar.set_postfix(
                round=found.round,
                tok_s=f"{stats.tokens('generated') / max(stats.elapsed_s, 1e-9):.0f}",
                cand=stats.counts["candidates"],
            )
            # Items this round kept without instances leave `kept` short of the plan: plan on `kept`.
            if following is None and more_rounds(found.round + 1, kept):
                following = loop.find(found.round + 1, kept)
            found = following
            # What the run keeps (records, their provenance and instances) only grows, and Python's
            # cyclic GC would scan all of it again and again: about a quarter of the driver's CPU at
            # 10K kept. Nothing here forms cycles, so the survivors of each round are frozen out of it.
            gc.freeze()
    finally:
        bar.close()
        loop.stop()

    # -- the dataset -----------------------------------------------------------------------------------
    final = dataset_records(accepted, cfg.target)
    dataset = [row.model_dump() for r in final for row in alpaca_rows(r)]
    write_json_atomic(folder.file(ALPACA), dataset)
    stats.counts["dataset_instructions"] = len(final)
    stats.counts["dataset_rows"] = len(dataset)
    summary = stats.summary(cfg.price_prompt_per_1m, cfg.price_completion_per_1m)
    write_json_atomic(folder.file(STATS), summary)
    return summary


class Bootstrap:
    """The actors, tasks and filters of a run, and the steps of a round. `grow` puts them in order."""

    def __init__(
        self, cfg: RunConfig, seeds: list[Record], accepted: list[Record], make_teacher: TeacherFactory
    ) -> None:
        assert cfg.propose_params is not None  # a resolved config
        self.cfg = cfg
        api = cfg.api or "completion"
        if cfg.profile == "alpaca":
            self.propose: Any = AlpacaPropose(cfg.propose_params, cfg.tasks_per_request or 20, api)
        else:
            self.propose = SelfInstructPropose(cfg.propose_params, api)
        instances = (
            InstancesTask(cfg.instance_params, cfg.max_instances or 5, api) if cfg.instance_params else None
        )
        # The instance prompt depends on the classify answer: the workers chain the two per row.
        self.write: Any = instances
        if instances is not None and cfg.classify_params is not None:
            self.write = Chain(ClassifyTask(cfg.classify_params, api), instances, with_classification)
        self.instruction_filters = build_filters(cfg.instruction_filters or [])
        self.instance_filters = build_filters(cfg.instance_filters or [])

        pool: Any = PoolActor.remote(seeds, cfg.dedup or [])
        ray.get(pool.restore.remote(accepted))
        self.pool = pool
        # In-context mixes are sampled from ids in the pool's order (seeds, then kept items as kept), here
        # in the driver, which turns them into examples (copied once, when kept).
        self.seed_ids, self.machine_ids = [r.id for r in seeds], [r.id for r in accepted]
        self.examples = {r.id: as_example(r) for r in [*seeds, *accepted]}
        self.workers: list[Any] = [WorkerActor.remote(make_teacher) for _ in range(cfg.num_workers)]
        backend, model = ray.get(self.workers[0].identity.remote())
        self.identity = (str(backend), str(model))

    # -- finding: steps 1-4 -----------------------------------------------------------------------------

    def find(self, round_: int, planned: int) -> Found:
        return self.offer(round_, planned, self.proposals(round_, planned))

    def proposals(self, round_: int, planned: int) -> list[Any]:
        """Sample the in-context mixes of `round_` from the pool as it stands, and send its proposals.

        A proposal yields a few kept instructions, so near the target a smaller round avoids paying
        for classification and instances of items the dataset will not need. `planned` counts the
        items kept so far, and those of the round before as if all of them will get instances.
        """
        cfg = self.cfg
        slots = min(cfg.prompts_per_round, max(1, -(-(cfg.target - planned) // 2)))
        mix_seeds = [derive_seed(cfg.seed, "mix", round_, i) for i in range(slots)]
        n_seed, n_machine = cfg.seeds_in_prompt or 0, cfg.machine_in_prompt or 0
        mixes = sample_mixes(self.seed_ids, self.machine_ids, mix_seeds, n_seed, n_machine)
        rows = [
            ProposeRow(
                round=round_,
                index=i,
                examples=[self.examples[id_] for id_ in mix],
                seed=derive_seed(cfg.seed, "propose", round_, i),
            )
            for i, mix in enumerate(mixes)
        ]
        return send_to_workers(self.workers, self.propose, rows)

    def offer(self, round_: int, planned: int, proposals: list[Any]) -> Found:
        """Collect the proposals, run the instruction filters and offer the survivors to the pool.

        The pool's answers are left pending (`settle` collects them), so the pool decides while the
        driver and the workers go on with the round before.
        """
        found = Found(round_, planned)
        with found.stats.timed("propose"):
            results = collect(proposals)
        found.stats.teacher_call("propose", [r for r, _ in results])
        if all(not r.ok for r, _ in results):
            found.failed, found.last_error = True, results[-1][0].error if results else "no requests"
            return found
        candidates = []
        for response, parsed in results:
            if response.ok and parsed is None:
                found.stats.stages["propose"]["unparseable"] += 1
            for record in parsed or []:
                record.provenance.append(provenance("propose", self.identity, response))
                candidates.append(record)
        found.candidates = len(candidates)
        found.stats.counts["candidates"] += len(candidates)

        with found.stats.timed("instruction_filters"):
            _drops_into(found, self.instruction_filters, "instruction")
            found.survivors = run_filters(self.instruction_filters, candidates)
        found.stats.add_filter_stats(take_stats(self.instruction_filters))
        # Dedup in the pool actor: the single owner decides, in order. Actor calls run in the order they
        # were sent, so its neighbours and counters are those of this round's offer. The neighbours are
        # scored while the workers write instances, and collected only for the write.
        found.verdicts = self.pool.offer.remote([(r.id, r.instruction) for r in found.survivors])
        found.filter_stats = self.pool.take_stats.remote()
        found.neighbours = self.pool.describe_kept.remote()
        return found

    def settle(self, found: Found) -> None:
        """Collect the pool's verdicts: `found.new` holds the accepted records, in order."""
        if found.failed:
            return
        with found.stats.timed("dedup"):
            verdicts = ray.get(found.verdicts)
        found.stats.add_filter_stats(ray.get(found.filter_stats))
        for record, v in zip(found.survivors, verdicts, strict=True):
            if v.kept:
                found.new.append(record)
                continue
            record.near_duplicate = v.near_duplicate
            found.dropped.append(
                Dropped(
                    filter=v.filter or "dedup",
                    reason=v.reason or "",
                    stage="dedup",
                    round=found.round,
                    item=_brief(record),
                )
            )
        if self.write is None:  # the records came with their instances (Alpaca): prune them now
            self._filter_instances(found)
        # In-context examples show the instruction (and, for Alpaca, its filtered instance).
        self.examples.update((r.id, as_example(r)) for r in found.new)
        self.machine_ids += [r.id for r in found.new]

    # -- completing: steps 5-6 --------------------------------------------------------------------------

    def start_instances(self, found: Found) -> None:
        """Send the accepted records to the workers for classification and instances."""
        if self.write is not None and found.new:
            # Workers get only what the prompts need, not the provenance each record has gathered.
            found.writing = send_to_workers(self.workers, self.write, [as_task(r) for r in found.new])

    def complete(self, found: Found) -> int:
        """Attach instances and neighbours to `found.new`; returns how many have instances."""
        stats = found.stats
        if found.writing:
            with stats.timed("instances"):
                results = collect(found.writing)
            if not isinstance(self.write, Chain):  # no classify step: instances only
                results = [(None, result) for result in results]
            classified = [c for c, _ in results if c is not None]
            if classified:
                stats.teacher_call("classify", [response for response, _ in classified])
            stats.teacher_call("instances", [response for _, (response, _) in results])
            for record, (classify, (response, parsed)) in zip(found.new, results, strict=True):
                if classify is not None:
                    c_response, is_clf = classify
                    # An unreadable answer counts as "not classification": input-first still works.
                    record.is_classification = bool(is_clf)
                    record.provenance.append(provenance("classify", self.identity, c_response))
                    stats.stages["classify"]["unreadable"] += c_response.ok and is_clf is None
                record.instances = parsed or []
                record.provenance.append(provenance("instances", self.identity, response))
            self._filter_instances(found)
        with stats.timed("neighbours"):  # only the wait: the pool scored them alongside
            for record, n in zip(found.new, ray.get(found.neighbours), strict=True):
                record.most_similar = [Similar(text=t, score=f) for t, f in n.most_similar]
                record.avg_similarity = n.avg_similarity
        return sum(1 for r in found.new if r.instances)

    def _filter_instances(self, found: Found) -> None:
        with found.stats.timed("instance_filters"):
            _drops_into(found, self.instance_filters, "instances")
            for record in found.new:
                filtered = apply_instance_filters(record, self.instance_filters) if record.instances else None
                record.instances = filtered.instances if filtered is not None else []
        found.stats.add_filter_stats(take_stats(self.instance_filters))

    def stop(self) -> None:
        _stop_actors(self.workers, self.pool)


def _drops_into(found: Found, filters: list[Filter], stage: str) -> None:
    """Point the filters' drop reports at `found.dropped` (the round they judge now)."""

    def record_drop(item: Record, name: str, reason: str) -> None:
        log.debug("dropped %s at %s by %s: %s", item.id, stage, name, reason)
        found.dropped.append(
            Dropped(filter=name, reason=reason, stage=stage, round=found.round, item=_brief(item))
        )

    for f in filters:
        f.on_drop = record_drop
