"""`state.json`: the commit point of a run, typed. One section per stage.

A stage's section names its last committed round; lines of later rounds in its files are an
interrupted round's, cut on resume (see `generator/run_folder.py`). The section also carries the stage's
counters (so a resumed run's stats.json adds up) and whatever the stage needs to plan its next round
(the evolution pool). A new stage adds one section here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SavedStats(BaseModel):
    """`RunStats` as saved: counters by name, per teacher stage and per filter label."""

    counts: dict[str, int] = Field(default_factory=dict)
    elapsed_s: float = 0.0
    timings: dict[str, float] = Field(default_factory=dict)
    stages: dict[str, dict[str, int]] = Field(default_factory=dict)
    filters: dict[str, dict[str, int]] = Field(default_factory=dict)
    teachers: dict[str, dict[str, dict[str, int]]] = Field(default_factory=dict)  # name -> stage -> calls


class StageState(BaseModel):
    """What every stage commits: its last round, its counters and what its input was."""

    model_config = ConfigDict(extra="forbid")

    round: int = Field(description="the last committed round")
    stats: SavedStats = Field(default_factory=SavedStats)
    input: str | None = Field(None, description="fingerprint of the items the stage started from")


class BootstrapState(StageState):
    slots: list[int] = Field(
        default_factory=list, description="proposals each committed round was planned with, by round"
    )


class EvolveRoundStats(BaseModel):
    """One evolution round's row of the table in stats.json ("evolve" -> "rounds")."""

    round: int
    evolved: int
    failed: dict[str, int]
    eliminated: dict[str, int]
    kept: int
    avg_words: float | None
    avg_tokens: float | None
    ops: dict[str, int]
    kept_ops: dict[str, int]


class EvolveInput(BaseModel):
    """The items the evolution started from: how many, and their mean length in words."""

    items: int
    avg_words: float | None


class EvolveState(StageState):
    pool: list[str] = Field(description="ids of the items the next round evolves")
    started_from: EvolveInput
    rounds: list[EvolveRoundStats] = Field(default_factory=list)


class DomainState(StageState):
    """The domain stage commits its round alone: its next round's problems follow from the number."""


class RunState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 2
    bootstrap: BootstrapState | None = None
    evolve: EvolveState | None = None
    domain: DomainState | None = None

    def section(self, stage: str) -> StageState | None:
        """The committed section of `stage` (None: it has not committed a round)."""
        section: StageState | None = getattr(self, stage, None)
        return section

    def with_section(self, stage: str, section: StageState | None) -> RunState:
        """A copy with `stage`'s section replaced (None: dropped, the stage starts over)."""
        if stage not in RunState.model_fields:
            raise KeyError(f"state.json has no section for a stage named {stage!r}")
        return self.model_copy(update={stage: section})
