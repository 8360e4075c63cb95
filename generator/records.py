"""The typed records that cross module boundaries.

One record type flows through the whole loop: `Record`, a machine (or seed) instruction with its
instances, its similarity to the pool, its lineage and the provenance of every teacher call that shaped
it. Seed files are parsed into `SeedTask`; the dataset is written as `AlpacaRow`.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field


class Instance(BaseModel):
    """One input/output example of a task. `input` is empty when the task needs none."""

    model_config = ConfigDict(extra="forbid")

    input: str = ""
    output: str


class SeedTask(BaseModel):
    """A human-written task in the Self-Instruct schema (`seeds/175.jsonl`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str
    name: str
    instruction: str = Field(min_length=1)
    instances: list[Instance] = Field(min_length=1)
    is_classification: bool
    # optional domain fields (any other field is an error)
    domain: str | None = None
    tests: list[str] | None = None  # code tasks: tests a solution must pass
    references: list[str] | None = None  # medical tasks: the sources the answer rests on


class Similar(BaseModel):
    """A pool item close to an accepted instruction, with its ROUGE-L F score."""

    text: str
    score: float


class NearDuplicate(BaseModel):
    """The pool item a dedup filter found a dropped instruction to duplicate."""

    filter: str  # the filter's label
    metric: str  # what `score` measures: "rouge_l" (F), "jaccard" (estimated), "cosine"
    score: float
    text: str
    id: str | None = None  # the pool item's id (a seed's is "seed:<id>"), when the index knows it


class Contamination(BaseModel):
    """The evaluation set a dropped item overlaps, and by how much (share of n-grams)."""

    set: str
    overlap: float


class Provenance(BaseModel):
    """Where one teacher response came from; kept on every record it shaped."""

    stage: str  # propose | classify | instances | evolve | answer | judge ...
    backend: str
    model: str
    request_key: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False


class Verification(BaseModel):
    """What a domain's verifier found (`generator/domains/`): something other than the teacher checked
    the answer. `reason` says why for a verdict other than "verified"; `details` holds the evidence
    (the computed value, the sandbox's status and output)."""

    method: str  # computed | sandbox | ...
    verdict: Literal["verified", "failed", "unverifiable"]
    reason: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class Record(BaseModel):
    """A candidate or accepted instruction: the one record type of the pipeline."""

    id: str
    instruction: str
    origin: str  # seed | self-instruct | alpaca | evol:<op> ...
    round: int = 0
    parent_ids: list[str] = Field(default_factory=list)
    persona: str | None = None  # the persona its proposal prompt was written for (--personas)
    root_id: str | None = None  # the seed this item descends from (evolution lineage)
    op: str | None = None  # the evolution operation that produced it
    is_classification: bool | None = None
    instances: list[Instance] = Field(default_factory=list)
    most_similar: list[Similar] = Field(default_factory=list)
    avg_similarity: float | None = None
    scores: dict[str, float] = Field(default_factory=dict)
    provenance: list[Provenance] = Field(default_factory=list)
    # why a filter dropped it
    near_duplicate: NearDuplicate | None = None
    contamination: Contamination | None = None
    # the evolution stage's notes on an evolved item
    parent_instruction: str | None = None  # the prompt it was evolved from (cleared once it is kept)
    equal_to_parent: bool | None = None  # the judge's verdict (None: not asked, or unreadable)
    data_format: str | None = None  # the data `complicate_input` asked for
    # a domain item's own data (arithmetic: the expression; code: the tests) and its verifier's verdict
    facts: dict[str, Any] | None = None
    verification: Verification | None = None

    def brief(self) -> dict[str, Any]:
        """What dropped.jsonl keeps of a dropped item: enough to read why, not its full provenance."""
        return self.model_dump(include=_BRIEF, exclude_none=True)


_BRIEF = {"id", "instruction", "origin", "round", "persona", "instances", "most_similar"}
_BRIEF |= {"near_duplicate", "contamination", "parent_instruction", "equal_to_parent", "data_format"}
_BRIEF |= {"facts", "verification"}


class AlpacaRow(BaseModel):
    """One row of the fine-tuning dataset (`alpaca.json`)."""

    instruction: str
    input: str = ""
    output: str


class Dropped(BaseModel):
    """An item a filter removed, with the filter's name and its reason (`dropped.jsonl`)."""

    filter: str
    reason: str
    stage: str
    round: int = 0
    item: dict[str, Any]


def seed_to_record(task: SeedTask) -> Record:
    """A seed task as a pool record (seeds are the first members of the pool)."""
    return Record(
        id=f"seed:{task.id}",
        instruction=task.instruction,
        origin="seed",
        root_id=f"seed:{task.id}",
        is_classification=task.is_classification,
        instances=list(task.instances),
    )


class Example(NamedTuple):
    """A pool item as an in-context example: id, text and its first instance, if it has one.

    Proposal prompts show at most one instance per example (Alpaca shows it, Self-Instruct does not).
    A plain tuple: a round sends hundreds of them to the workers.
    """

    id: str
    instruction: str
    input: str = ""
    output: str | None = None  # None: no instance


def as_example(record: Record) -> Example:
    """A record as an in-context example needs it: not its provenance or scores."""
    if not record.instances:
        return Example(record.id, record.instruction)
    first = record.instances[0]
    return Example(record.id, record.instruction, first.input, first.output)


class TaskRow(NamedTuple):
    """A task as the classify and instance prompts need it: what workers get instead of a Record.

    A plain tuple, since thousands cross to the workers each round and a Record costs about ten times
    as much to build and to pickle.
    """

    id: str
    instruction: str
    is_classification: bool | None = None


def as_task(record: Record) -> TaskRow:
    """A record as a prompt about the task itself needs it (classify, instances): id, text, kind."""
    return TaskRow(record.id, record.instruction, record.is_classification)


def alpaca_rows(record: Record) -> list[AlpacaRow]:
    """One Alpaca row per instance (Self-Instruct writes one row per instance too)."""
    return [
        AlpacaRow(instruction=record.instruction, input=i.input, output=i.output) for i in record.instances
    ]
