"""`candidates.jsonl`: every candidate a stage judged, in the order it was judged, and its fate.

The dataset keeps the survivors and `dropped.jsonl` a brief of each drop; a replay (`generator.ablate
--replay`) needs the whole stream to re-filter a run exactly with other filters. One line per candidate:

    {"stage": "bootstrap", "round": 3, "record": {...}, "fate": null}
    {"stage": "bootstrap", "round": 3, "record": {...}, "fate": {"step": "dedup", "filter": "rouge_l",
     "reason": "rouge_l>=0.7"}}

- `record` is the candidate as its first filter saw it, with the instances the teacher wrote for it,
  before any instance filter (`instances: null` when none were asked for: it never got that far);
  a domain's record carries its `facts` and the verifier's `verification`.
- `fate` is null for a candidate every filter let through, else the step (`instruction`, `dedup`,
  `verify`, ...), the filter's label and its reason. A candidate stops at the first filter that drops
  it, so the filters after it said nothing about it.

Lines are appended with their round and cut back with it on resume, like the stage's other files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from generator.records import Record


class Fate(BaseModel):
    step: str
    filter: str
    reason: str


class Candidate(BaseModel):
    stage: str
    round: int
    record: dict[str, Any]  # the Record's fields (instances None: never asked for)
    fate: Fate | None = None

    def as_record(self) -> Record:
        data = {**self.record, "instances": self.record.get("instances") or []}
        return Record.model_validate(data)

    @property
    def answered(self) -> bool:
        """Whether the teacher wrote instances for it (a replay cannot invent the ones it never asked)."""
        return self.record.get("instances") is not None


def candidate(
    stage: str, round_: int, record: Record, instances: list[Any] | None, fate: Fate | None
) -> Candidate:
    data = record.model_dump(
        mode="json", exclude={"provenance", "most_similar", "avg_similarity", "near_duplicate"}
    )
    data["instances"] = None if instances is None else [i.model_dump() for i in instances]
    return Candidate(stage=stage, round=round_, record=data, fate=fate)


class NoCandidates(ValueError):
    """A run folder made before candidates were recorded: it cannot be replayed."""


def read_candidates(folder: Path, name: str = "candidates.jsonl") -> list[Candidate]:
    """The recorded stream of a run folder, in order (only its committed rounds are there)."""
    path = folder / name
    if not path.exists():
        raise NoCandidates(
            f"{folder}: no {name}: this run was made before runs recorded their candidate stream, so it "
            "cannot be replayed. Run it again (the request cache makes that cheap), or use full mode."
        )
    return [
        Candidate.model_validate_json(line) for line in path.read_text("utf-8").splitlines() if line.strip()
    ]
