"""The instruction pool: the single owner of accepted instructions and of the dedup index.

Acceptance is order-dependent (a candidate is compared with everything accepted before it), so one
owner decides, in the order candidates are offered. Run as a Ray actor (`PoolActor`), it is that one
owner for every worker; as a plain object it is easy to unit-test.
"""

from __future__ import annotations

import random
from typing import Any

import ray
from pydantic import BaseModel

from filters.base import Filter, FilterSpec, build_filters
from generator.records import Record, Similar


class Decision(BaseModel):
    """The pool's verdict on one candidate, aligned with the offered list.

    It carries what dedup learned about the item (its nearest pool items) rather than the record
    itself: the driver already holds the records, so only the verdicts cross the actor boundary.
    """

    kept: bool
    filter: str | None = None
    reason: str | None = None
    most_similar: list[Similar] = []
    avg_similarity: float | None = None


class Pool:
    def __init__(self, seeds: list[Record], dedup: list[FilterSpec]) -> None:
        self.seeds = list(seeds)
        self.machine: list[Record] = []
        self.filters: list[Filter] = build_filters(dedup)
        for f in self.filters:
            for seed in self.seeds:
                _preload(f, seed)

    def sample(self, seeds: list[int], n_seed: int, n_machine: int) -> list[list[Record]]:
        """One in-context mix per seed: up to `n_machine` machine tasks, the rest seeds, shuffled.

        Uniform sampling, as in Self-Instruct. Early on the machine pool is empty or small, so seeds
        fill the prompt. Each seed fixes its draw, so a resumed run makes the same prompts; one call
        serves a whole round (an actor call per prompt would cost more than the sampling).
        """
        return [[_for_prompt(r) for r in self._mix(random.Random(seed), n_seed, n_machine)] for seed in seeds]

    def _mix(self, rng: random.Random, n_seed: int, n_machine: int) -> list[Record]:
        machine = rng.sample(self.machine, min(n_machine, len(self.machine)))
        seeds = rng.sample(self.seeds, min(n_seed + n_machine - len(machine), len(self.seeds)))
        mix = machine + seeds
        rng.shuffle(mix)
        return mix

    def offer(self, candidates: list[Record]) -> list[Decision]:
        """Run each candidate through the dedup filters in order; keep it in the pool if it passes."""
        decisions = []
        for record in candidates:
            decision = Decision(kept=True)
            for f in self.filters:
                kept, reason = f.apply(record)
                if not kept:
                    decision = Decision(kept=False, filter=f.name, reason=reason)
                    break
            if decision.kept:
                self.machine.append(record)
            decision.most_similar, decision.avg_similarity = record.most_similar, record.avg_similarity
            decisions.append(decision)
        return decisions

    def restore(self, accepted: list[Record]) -> None:
        """Resume: re-add previously accepted records, in their original order, without counting."""
        for record in accepted:
            for f in self.filters:
                _preload(f, record)
            self.machine.append(record)

    def pop_filter_stats(self) -> dict[str, dict[str, int]]:
        """The dedup counters since the last call (the driver adds them to the run's totals)."""
        out = {f.name: dict(f.stats) for f in self.filters}
        for f in self.filters:
            f.stats.clear()
        return out

    def size(self) -> dict[str, int]:
        return {"seeds": len(self.seeds), "machine": len(self.machine)}


def _for_prompt(record: Record) -> Record:
    """What a prompt needs of an example: its text, id and instances, not its provenance."""
    return record.model_copy(update={"provenance": [], "most_similar": [], "parent_ids": [], "meta": {}})


def _preload(f: Filter, record: Record) -> None:
    """Dedup filters expose `add(record)` to index an item without judging it."""
    add: Any = getattr(f, "add", None)
    if add is not None:
        add(record)


# One actor owns the pool; it does no heavy teacher work, so it asks for no whole CPU.
PoolActor = ray.remote(num_cpus=0)(Pool)
