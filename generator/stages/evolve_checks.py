"""What an evolved instruction must pass besides the eliminator: the run's own instruction filters,
and the run's dedup against every instruction the run kept before it.

Without these, the evolution judged an evolution against its parent only: a teacher that answers
rewrite prompts with stock paragraphs made runs whose dataset held the same instruction many times
(a 200-instruction run with one round wrote 400 rows of 258 distinct instructions). Now

- the run's `instruction_filters`, plus `query_is_answer` (an "instruction" that reads as an answer:
  "Sure! Here is ..."), join the eliminator's instruction rules; and
- every evolution the eliminator keeps goes through the run's `dedup` filters, against the stage's
  inputs (the instructions the run kept before it) and every evolution kept before it, in a fixed
  order: round by round, and in pool order within a round. A dropped evolution leaves its parent in
  the pool, as a failed one does, and its drop names what it duplicated.

Their counters are labelled `evolve:<label>`, apart from the same filters' counters in the bootstrap.
"""

from __future__ import annotations

from collections.abc import Iterable

from filters.base import FilterSpec
from generator.config import RunConfig
from generator.pool import Pool, Verdict
from generator.records import Record

PREFIX = "evolve:"
ANSWER_CHECK = FilterSpec(name="query_is_answer")


def evolve_specs(cfg: RunConfig) -> list[FilterSpec]:
    """The evolution's filters, in order: the eliminator's rules, the run's instruction filters (and
    the answer check), then the score filter."""
    assert cfg.evolve_filters is not None and cfg.instruction_filters is not None
    own = [*cfg.instruction_filters]
    if all(s.name != ANSWER_CHECK.name for s in own):
        own.append(ANSWER_CHECK)
    eliminator = {s.name for s in cfg.evolve_filters}
    run_filters = [s.model_copy(update={"label": PREFIX + s.key}) for s in own if s.name not in eliminator]
    score = [cfg.score_filter] if cfg.score_filter else []
    return [*cfg.evolve_filters, *run_filters, *score]


class RunDedup:
    """The run's dedup filters over the instructions the run kept, in the order it kept them."""

    def __init__(self, cfg: RunConfig, kept: Iterable[Record]) -> None:
        assert cfg.dedup is not None
        specs = [s.model_copy(update={"label": PREFIX + s.key, "params": _decide_only(s)}) for s in cfg.dedup]
        self.pool = Pool(list(kept), specs)  # added, not judged: they are in the dataset already

    def judge(self, record: Record) -> Verdict:
        """Keep `record` (it joins the pool) or say what it duplicated."""
        return self.pool.offer([(record.id, record.instruction)])[0]

    def take_stats(self) -> dict[str, dict[str, int]]:
        return self.pool.take_stats()


def _decide_only(spec: FilterSpec) -> dict[str, object]:
    """A dedup spec's parameters without the neighbour ranking that only the bootstrap's rows use
    (it changes no decision: ROUGE-L ranks neighbours after deciding)."""
    if spec.name == "rouge_l":
        return {**spec.params, "similarity": False}
    return dict(spec.params)
