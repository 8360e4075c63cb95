"""The input stage of `python -m generator.evolve`: the rows of an existing dataset, as they are.

It runs no rounds and commits nothing: its part of the dataset is the input file's rows, which the
evolution then evolves (the dataset is the input rows followed by every round's evolutions).
"""

from __future__ import annotations

from typing import Any

from generator.config import RunConfig
from generator.records import Record, seed_to_record
from generator.run_folder import StageFiles
from generator.seeds import load_seeds
from generator.stages.base import Context, Resumed, StageRun
from generator.state import StageState


class InputRows:
    name = "input"
    files: StageFiles | None = None
    unit = "rows"

    def __init__(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    def total(self) -> int:
        return 0

    def target(self) -> int | None:
        return None

    def fingerprint(self, inputs: list[Record]) -> str | None:
        return None

    def open(self, ctx: Context, inputs: list[Record], resumed: Resumed) -> StageRun | None:
        return None  # no rounds: the rows are its part of the dataset

    def contribution(self, inputs: list[Record], records: list[Record]) -> list[Record]:
        return [seed_to_record(task) for task in load_seeds(self.cfg.seeds)]

    def report(self, state: StageState | None) -> dict[str, Any] | None:
        return None
