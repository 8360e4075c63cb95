"""The bootstrap loop, round by round. Read this file top to bottom to see how a dataset grows.

One round:
  1. the pool samples an in-context mix per proposal slot (seeded by run seed, round and slot);
  2. workers send the proposal prompts to the teacher concurrently and parse the responses;
  3. the driver runs the instruction filters (heuristics) on the candidates, in order;
  4. the pool actor runs dedup (ROUGE-L) and accepts or rejects each survivor, in order;
  5. accepted instructions are classified and get instances (Self-Instruct) or keep the instance
     that came with them (Alpaca); instance filters prune those;
  6. the round's records and drops are appended to the run folder, then state.json commits the round.
     The next round's proposals are already out by then: they depend only on the pool after step 4
     and on the count kept after step 5, so the workers propose while the driver writes.

Rounds are the unit of determinism and of resume: every request in a round is fixed by the config and
the pool as it stood when the round began, and results are consumed in request order, whatever order
the teacher answered in. With the request cache, a rerun or a resumed run rebuilds the same dataset.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import ray
from tqdm import tqdm

from filters.base import build_filters, run_filters
from filters.instances import apply_instance_filters
from generator.common import TeacherUnavailable, check_config, dataset_records, derive_seed, provenance
from generator.common import brief as _brief
from generator.common import pop_stats as _pop_stats
from generator.common import stop_actors as _stop_actors
from generator.config import RunConfig
from generator.output import ALPACA, STATS, RunFolder, write_json_atomic
from generator.pool import PoolActor
from generator.records import Dropped, Record, Similar, alpaca_rows, as_example, as_task, seed_to_record
from generator.seeds import load_seeds
from generator.stats import RunStats
from generator.tasks.instances import ClassifyTask, InstancesTask
from generator.tasks.propose import AlpacaPropose, ProposeRow, SelfInstructPropose
from generator.workers import TeacherFactory, WorkerActor, collect, run_on_workers, send_to_workers

log = logging.getLogger("synth_instruct")


def grow(config: RunConfig, make_teacher: TeacherFactory) -> dict[str, Any]:
    """Run (or resume) the bootstrap until `target` instructions have instances. Returns stats."""
    cfg = config.resolved()
    assert cfg.out is not None and cfg.propose_params is not None
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

    # -- the parts of the loop -----------------------------------------------------------------------
    dropped: list[Dropped] = []
    current_round = first_round

    def on_drop(stage: str) -> Any:
        def record_drop(item: Record, name: str, reason: str) -> None:
            log.debug("dropped %s at %s by %s: %s", item.id, stage, name, reason)
            dropped.append(
                Dropped(filter=name, reason=reason, stage=stage, round=current_round, item=_brief(item))
            )

        return record_drop

    instruction_filters = build_filters(cfg.instruction_filters or [])
    instance_filters = build_filters(cfg.instance_filters or [])
    for f in instruction_filters:
        f.on_drop = on_drop("instruction")
    for f in instance_filters:
        f.on_drop = on_drop("instances")

    if cfg.profile == "alpaca":
        propose: Any = AlpacaPropose(cfg.propose_params, cfg.tasks_per_request or 20, cfg.api or "completion")
    else:
        propose = SelfInstructPropose(cfg.propose_params, cfg.api or "completion")
    classify = ClassifyTask(cfg.classify_params, cfg.api or "completion") if cfg.classify_params else None
    instances = (
        InstancesTask(cfg.instance_params, cfg.max_instances or 5, cfg.api or "completion")
        if cfg.instance_params
        else None
    )

    seed_records = [seed_to_record(s) for s in seeds]
    pool: Any = PoolActor.remote(seed_records, cfg.dedup or [])
    ray.get(pool.restore.remote(accepted))
    # The pool samples ids; the driver turns them into in-context examples (copied once, when kept).
    examples = {r.id: as_example(r) for r in [*seed_records, *accepted]}
    workers: list[Any] = [WorkerActor.remote(make_teacher) for _ in range(cfg.num_workers)]
    backend, model = ray.get(workers[0].identity.remote())
    identity = (str(backend), str(model))

    def send_proposals(round_: int, kept: int) -> list[Any]:
        """Sample the in-context mixes of `round_` from the pool as it stands, and send its proposals.

        A proposal yields a few kept instructions, so near the target a smaller round avoids paying
        for classification and instances of items the dataset will not need.
        """
        slots = min(cfg.prompts_per_round, max(1, -(-(cfg.target - kept) // 2)))
        mix_seeds = [derive_seed(cfg.seed, "mix", round_, i) for i in range(slots)]
        mixes = ray.get(pool.sample.remote(mix_seeds, cfg.seeds_in_prompt or 0, cfg.machine_in_prompt or 0))
        rows = [
            ProposeRow(
                round=round_,
                index=i,
                examples=[examples[id_] for id_ in mix],
                seed=derive_seed(cfg.seed, "propose", round_, i),
            )
            for i, mix in enumerate(mixes)
        ]
        return send_to_workers(workers, propose, rows)

    kept = sum(1 for r in accepted if r.instances)
    next_proposals: list[Any] = []  # the next round's requests, once sent
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
        identity[0],
        identity[1],
        len(workers),
    )
    try:
        while kept < cfg.target and (cfg.max_rounds is None or current_round < cfg.max_rounds):
            dropped.clear()

            # 1-2. propose: sample mixes, ask the teacher, parse candidates (sent at the end of the
            # previous round when there was one)
            with stats.timed("propose"):
                pending, next_proposals = next_proposals or send_proposals(current_round, kept), []
                results = collect(pending)
            stats.teacher_call("propose", [r for r, _ in results])
            if all(not r.ok for r, _ in results):
                failed_rounds += 1
                log.warning(
                    "round %d: every proposal request failed (%d in a row)", current_round, failed_rounds
                )
                if failed_rounds >= cfg.max_failed_rounds:
                    raise TeacherUnavailable(
                        f"the teacher answered none of the last {failed_rounds} rounds; "
                        f"last error: {results[-1][0].error}. Accepted items are saved; rerun to resume."
                    )
                continue  # same round again: failures are not cached, so this retries them
            failed_rounds = 0
            candidates = []
            for response, parsed in results:
                if response.ok and parsed is None:
                    stats.stages["propose"]["unparseable"] += 1
                for record in parsed or []:
                    record.provenance.append(provenance("propose", identity, response))
                    candidates.append(record)
            stats.counts["candidates"] += len(candidates)

            # 3. cheap instruction filters, here in the driver
            with stats.timed("instruction_filters"):
                survivors = run_filters(instruction_filters, candidates)

            # 4. dedup in the pool actor: the single owner decides, in order. The neighbours of the kept
            # items (top-10 similar, mean similarity) are scored there while the workers write instances.
            with stats.timed("dedup"):
                verdicts = ray.get(pool.offer.remote([(r.id, r.instruction) for r in survivors]))
            neighbours = pool.describe_kept.remote()
            new = []
            for record, v in zip(survivors, verdicts, strict=True):
                if v.kept:
                    new.append(record)
                    continue
                if v.detail is not None:
                    record.meta["near_duplicate"] = v.detail
                dropped.append(
                    Dropped(
                        filter=v.filter or "dedup",
                        reason=v.reason or "",
                        stage="dedup",
                        round=current_round,
                        item=_brief(record),
                    )
                )

            # 5. classify, then write instances. Workers get only what the prompts need (not the
            # provenance and lineage each record has gathered), which keeps the round trips light.
            if classify is not None and new:
                with stats.timed("classify"):
                    results = run_on_workers(workers, classify, [as_task(r) for r in new])
                stats.teacher_call("classify", [r for r, _ in results])
                for record, (response, is_clf) in zip(new, results, strict=True):
                    # An unreadable answer counts as "not classification": input-first still works.
                    record.is_classification = bool(is_clf)
                    record.provenance.append(provenance("classify", identity, response))
                    stats.stages["classify"]["unreadable"] += response.ok and is_clf is None
            if instances is not None and new:
                with stats.timed("instances"):
                    results = run_on_workers(workers, instances, [as_task(r) for r in new])
                stats.teacher_call("instances", [r for r, _ in results])
                for record, (response, parsed) in zip(new, results, strict=True):
                    record.instances = parsed or []
                    record.provenance.append(provenance("instances", identity, response))
            with stats.timed("instance_filters"):
                for record in new:
                    filtered = apply_instance_filters(record, instance_filters) if record.instances else None
                    record.instances = filtered.instances if filtered is not None else []
            newly_kept = sum(1 for r in new if r.instances)
            kept += newly_kept
            examples.update((r.id, as_example(r)) for r in new)

            # The next round's requests depend only on the pool after this round's decisions and on
            # `kept`, both final now: send them, so the workers propose while this round is written.
            if kept < cfg.target and (cfg.max_rounds is None or current_round + 1 < cfg.max_rounds):
                next_proposals = send_proposals(current_round + 1, kept)
            with stats.timed("neighbours"):  # only the wait: the pool scored them alongside
                for record, n in zip(new, ray.get(neighbours), strict=True):
                    record.most_similar = [Similar(text=t, score=f) for t, f in n.most_similar]
                    record.avg_similarity = n.avg_similarity

            # 6. write the round, then commit it
            accepted.extend(new)
            stats.counts["accepted"] += len(new)
            stats.counts["accepted_with_instances"] += newly_kept
            stats.counts["rounds"] += 1
            stats.add_filter_stats(_pop_stats(instruction_filters))
            stats.add_filter_stats(_pop_stats(instance_filters))
            stats.add_filter_stats(ray.get(pool.pop_filter_stats.remote()))
            stats.elapsed_s = elapsed_before + time.monotonic() - started
            with stats.timed("write"):
                folder.append_records(new)
                folder.append_dropped(dropped)
                folder.commit_round({"round": current_round, "stats": stats.to_state()})
                write_json_atomic(
                    folder.file(STATS), stats.summary(cfg.price_prompt_per_1m, cfg.price_completion_per_1m)
                )

            log.info(
                "round %d: %d candidates, %d dropped, %d accepted, %d with instances; kept %d/%d",
                current_round,
                len(candidates),
                len(dropped),
                len(new),
                newly_kept,
                kept,
                cfg.target,
            )
            bar.update(min(kept, cfg.target) - bar.n)
            bar.set_postfix(
                round=current_round,
                tok_s=f"{stats.tokens('generated') / max(stats.elapsed_s, 1e-9):.0f}",
                cand=stats.counts["candidates"],
            )
            current_round += 1
            # What the run keeps (records, their provenance and instances) only grows, and Python's
            # cyclic GC would scan all of it again and again: about a quarter of the driver's CPU at
            # 10K kept. Nothing here forms cycles, so the survivors of each round are frozen out of it.
            gc.freeze()
    finally:
        bar.close()
        _stop_actors(workers, pool)

    # -- the dataset -----------------------------------------------------------------------------------
    final = dataset_records(accepted, cfg.target)
    dataset = [row.model_dump() for r in final for row in alpaca_rows(r)]
    write_json_atomic(folder.file(ALPACA), dataset)
    stats.counts["dataset_instructions"] = len(final)
    stats.counts["dataset_rows"] = len(dataset)
    summary = stats.summary(cfg.price_prompt_per_1m, cfg.price_completion_per_1m)
    write_json_atomic(folder.file(STATS), summary)
    return summary
