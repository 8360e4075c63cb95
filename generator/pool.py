"""The instruction pool: the single owner of accepted instructions and of the dedup index.

Acceptance is order-dependent (a candidate is compared with everything accepted before it), so one
owner decides, in the order candidates are offered. Run as a Ray actor (`PoolActor`), it is that one
owner for every worker; as a plain object it is easy to unit-test.

In-context mixes are drawn by `sample_mixes`, a pure function of the pool's ids, which the driver
calls on its own copy of them: as an actor call it waited in the pool's queue before every round.
"""

from __future__ import annotations

import random
from typing import NamedTuple

import ray

from filters.base import FilterSpec, build_dedup, take_stats
from generator.records import NearDuplicate, Record


class Verdict(NamedTuple):
    """The pool's verdict on one candidate, aligned with the offered list.

    Only the verdict crosses the actor boundary, not the record: the driver already holds the records.
    A plain tuple, since a round's verdicts are pickled on every round. `near_duplicate` says what a
    dropped item duplicated, when the filter knows.
    """

    kept: bool
    filter: str | None = None  # the label of the filter that dropped it
    reason: str | None = None
    near_duplicate: NearDuplicate | None = None


KEPT = Verdict(kept=True)


class Neighbours(NamedTuple):
    """What dedup learned about a kept record: its most similar pool items and mean similarity."""

    most_similar: list[tuple[str, float]]
    avg_similarity: float | None


def sample_mixes(
    seeds: list[str], machine: list[str], mix_seeds: list[int], n_seed: int, n_machine: int
) -> list[list[str]]:
    """One in-context mix of ids per seed: up to `n_machine` machine tasks, the rest seeds, shuffled.

    Uniform sampling, as in Self-Instruct. Early on the machine pool is empty or small, so seeds fill
    the prompt. Each seed fixes its draw, so a resumed run makes the same prompts. `machine` lists the
    kept ids in the order they were kept: the pool's order, which the driver mirrors.
    """
    mixes = []
    for mix_seed in mix_seeds:
        rng = random.Random(mix_seed)
        picked = rng.sample(machine, min(n_machine, len(machine)))
        mix = picked + rng.sample(seeds, min(n_seed + n_machine - len(picked), len(seeds)))
        rng.shuffle(mix)
        mixes.append(mix)
    return mixes


class Pool:
    """The dedup filters, loaded with the seeds and then every kept instruction, in order. It judges
    instruction text only, so candidates cross the actor boundary as `(id, instruction)` pairs and only
    verdicts come back: the driver holds the records themselves.
    """

    def __init__(self, seeds: list[Record], dedup: list[FilterSpec]) -> None:
        self.filters = build_dedup(dedup)
        self._undescribed: list[Record] = []  # kept, but `describe_kept` has not run on them yet
        self._dropped: dict[int, Verdict] = {}  # id(record) -> its verdict, during `offer`
        for f in self.filters:
            f.on_drop = self._note_drop
            for seed in seeds:
                f.add(seed)

    def _note_drop(self, item: Record, label: str, reason: str) -> None:
        self._dropped[id(item)] = Verdict(False, label, reason, item.near_duplicate)

    def offer(self, candidates: list[tuple[str, str]]) -> list[Verdict]:
        """Run each `(id, instruction)` through the dedup filters in order; keep it if it passes.

        Each filter judges the batch that the filters before it kept (in one call, so it can score the
        batch at once); its decisions do not depend on the others'.
        """
        records = [Record(id=id_, instruction=text, origin="candidate") for id_, text in candidates]
        alive = records
        for f in self.filters:
            alive = [r for r, kept in zip(alive, f.offer(alive), strict=True) if kept]
        self._undescribed += alive
        verdicts = [self._dropped.get(id(r), KEPT) for r in records]
        self._dropped.clear()
        return verdicts

    def describe_kept(self) -> list[Neighbours]:
        """Neighbours of every record kept since the last call, in the order they were kept.

        Separate from `offer` because only the round's write needs it: `offer` scores the rows and
        decides, this ranks the kept items' rows (top-k, mean). The loop asks for it right after
        `offer` and collects it once the workers have written instances.
        """
        found: dict[int, Neighbours] = {}
        for f in self.filters:
            found.update((id(r), Neighbours(top, avg)) for r, top, avg in f.neighbours())
        fresh, self._undescribed = self._undescribed, []
        return [found.get(id(r)) or Neighbours([], None) for r in fresh]  # or none was ranked

    def restore(self, accepted: list[Record]) -> None:
        """Resume: re-add previously accepted records, in their original order, without counting."""
        for record in accepted:
            for f in self.filters:
                f.add(record)

    def take_stats(self) -> dict[str, dict[str, int]]:
        """The dedup counters since the last call, by filter label (the driver adds them to the run's)."""
        return take_stats(self.filters)


# One actor owns the pool; it does no heavy teacher work, so it asks for no whole CPU.
PoolActor = ray.remote(num_cpus=0)(Pool)
