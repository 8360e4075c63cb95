"""Re-filter a recorded run with other filters, without a teacher call (`generator.ablate --replay`).

A run records every candidate it judged, in order (`candidates.jsonl`, `generator/candidates.py`).
Replaying takes that stream through a variant's filters the way the stage did: round by round, the
instruction filters on the round's candidates, then dedup against the seeds and everything kept before
(the pool, in process), then the instance filters on the instances the teacher wrote; for a domain,
the duplicate check by the domain's key and the recorded verdicts (verification on or off). With the
run's own filters it makes the run's decisions again, exactly, and so the same dataset.

What it cannot show: a live run's pool shapes its later prompts (the in-context examples are kept
items), and a run stops at its target. A variant that keeps other items would have been shown other
examples and asked other questions; a replay only re-judges what was asked. A candidate the run dropped
before its instances were written has none to replay (`unanswered`), and a variant that keeps fewer
items than the target cannot make more: that needs full mode, which generates again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from filters.base import build_filters, run_filters, take_stats
from filters.instances import filter_instances
from filters.verify import domain_filters
from generator.candidates import Candidate, read_candidates
from generator.config import RunConfig
from generator.domains import domain_for
from generator.domains.base import as_kept
from generator.pool import Pool
from generator.records import Record, Verification, seed_to_record
from generator.seeds import load_seeds


@dataclass
class Replayed:
    """What a variant keeps of a recorded run."""

    records: list[Record]  # the dataset: the first `target` kept items with instances
    filters: dict[str, dict[str, int]] = field(default_factory=dict)  # each filter's counters, by label
    counts: Counter[str] = field(default_factory=Counter)  # candidates, accepted, unanswered, rounds

    @property
    def kept(self) -> int:
        return len(self.records)


def replay(folder: Path, cfg: RunConfig) -> Replayed:
    """The dataset `cfg`'s filters make of the run recorded in `folder` (no teacher, no Ray)."""
    cfg = cfg.resolved()
    stream = read_candidates(folder)
    stages = {c.stage for c in stream}
    if stages == {"domain"}:
        return _replay_domain(stream, cfg)
    if stages - {"bootstrap"}:
        raise ValueError(f"{folder}: cannot replay the stages {', '.join(sorted(stages))}")
    return _replay_bootstrap(stream, cfg)


def _rounds(stream: list[Candidate]) -> Iterator[tuple[int, list[Candidate]]]:
    for number, group in groupby(stream, key=lambda c: c.round):
        yield number, list(group)


def _replay_bootstrap(stream: list[Candidate], cfg: RunConfig) -> Replayed:
    seeds = [seed_to_record(s) for s in load_seeds(cfg.seeds)]
    pool = Pool(seeds, cfg.dedup or [])
    instruction = build_filters(cfg.instruction_filters or [])
    instances = build_filters(cfg.instance_filters or [])
    out = Replayed(records=[])
    kept: list[Record] = []
    with_instances = 0
    for _, group in _rounds(stream):
        if with_instances >= cfg.target:
            break  # the live run stops here: it would not have asked for these
        out.counts["rounds"] += 1
        records = [c.as_record() for c in group]
        answered = {c.record["id"] for c in group if c.answered}
        out.counts["candidates"] += len(records)
        survivors = run_filters(instruction, records)
        verdicts = pool.offer([(r.id, r.instruction) for r in survivors])
        accepted = [r for r, v in zip(survivors, verdicts, strict=True) if v.kept]
        for record in accepted:
            if record.id not in answered:
                out.counts["unanswered"] += 1  # accepted here, but the run never asked for its instances
                record.instances = []
                continue
            filter_instances(record, instances)
        out.counts["accepted"] += len(accepted)
        with_instances += sum(1 for r in accepted if r.instances)
        kept += accepted
    out.records = [r for r in kept if r.instances][: cfg.target]
    out.filters = {**take_stats(instruction), **pool.take_stats(), **take_stats(instances)}
    return out


class RecordedVerdict:
    """The verdict the run's verifier gave, read back (a replay runs no sandbox and no teacher)."""

    method = "recorded"

    def verify(self, item: Record) -> Verification:
        return item.verification or Verification(
            method="recorded", verdict="unverifiable", reason="not_recorded"
        )


def _replay_domain(stream: list[Candidate], cfg: RunConfig) -> Replayed:
    domain = domain_for(cfg)
    out = Replayed(records=[])
    totals: dict[str, Counter[str]] = {}
    seen: set[str] = set()
    kept: list[Record] = []
    for _, group in _rounds(stream):
        if len(kept) >= cfg.target:
            break
        out.counts["rounds"] += 1
        records = [c.as_record() for c in group]
        out.counts["candidates"] += len(records)
        # as the stage does at each commit: dedup against what was kept before, then the verdicts
        filters = domain_filters(domain, seen, RecordedVerdict(), keep_all=not cfg.verify)
        survivors = [as_kept(domain, r, cfg.verify) for r in run_filters(filters, records)]
        for label, counters in take_stats(filters).items():
            totals.setdefault(label, Counter()).update(counters)
        seen.update(k for r in survivors if (k := domain.dedup_key(r)) is not None)
        kept += survivors
    out.records = kept[: cfg.target]
    out.counts["accepted"] = len(kept)
    out.filters = {label: dict(c) for label, c in totals.items()}
    return out
