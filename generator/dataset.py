"""The dataset of a run folder: every stage's part, in stage order. Every consumer reads it here.

    from generator.dataset import dataset
    ds = dataset(Path("out/self-instruct-seed42"))
    ds.rows()       # the Alpaca rows (what alpaca.json holds); `for row in ds` and `len(ds)` too
    ds.sources()    # which stage wrote which rows: [{"stage": "bootstrap", "instructions": .., "rows": ..}]

A stage's part follows from its committed records alone (`Stage.contribution`), so the dataset of a
folder is the same whether it is read after the run, while it is stopped half-way, or by the CLI, the
export or the service. A stage whose section was made from other inputs (the bootstrap grew after the
evolution ran) contributes nothing until it is run again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.config import RunConfig
from generator.records import AlpacaRow, Record, alpaca_rows
from generator.run_folder import CONFIG, RunFolder, read_json
from generator.stages import plan
from generator.stages.base import Stage
from generator.state import RunState


@dataclass(frozen=True)
class DatasetPart:
    stage: str
    records: list[Record]


@dataclass(frozen=True)
class Dataset:
    parts: list[DatasetPart]

    def __iter__(self) -> Iterator[AlpacaRow]:
        return iter(self.rows())

    def __len__(self) -> int:
        return len(self.rows())

    def records(self) -> list[Record]:
        return [r for part in self.parts for r in part.records]

    def rows(self) -> list[AlpacaRow]:
        """One Alpaca row per instance, in stage order."""
        return [row for r in self.records() for row in alpaca_rows(r)]

    def sources(self) -> list[dict[str, Any]]:
        """Which stage wrote which rows, in order: the first `rows` rows are the first part's, and so on."""
        return [
            {
                "stage": p.stage,
                "instructions": len(p.records),
                "rows": sum(len(r.instances) for r in p.records),
            }
            for p in self.parts
        ]


def compose(
    stages: list[Stage], folder: RunFolder, state: RunState, known: dict[str, list[Record]] | None = None
) -> Dataset:
    """Each stage's part of the dataset from its committed records, in stage order.

    `known` holds the committed records of stages the caller already has in memory (the runner, at
    the end of a run); the others are read from the folder.
    """
    known = known or {}
    parts: list[DatasetPart] = []
    inputs: list[Record] = []
    for stage in stages:
        section = state.section(stage.name)
        if stage.files is None:
            records: list[Record] = []
        elif section is None or section.input != stage.fingerprint(inputs):
            continue
        elif stage.name in known:
            records = known[stage.name]
        else:
            records = folder.committed_records(stage.files, section.round)
        part = stage.contribution(inputs, records)
        parts.append(DatasetPart(stage.name, part))
        inputs = inputs + part
    return Dataset(parts)


def dataset(folder: str | Path) -> Dataset:
    """The dataset of a run folder, read from its committed files (no Ray, no teacher)."""
    folder = Path(folder)
    cfg = RunConfig.stored(read_json(folder / CONFIG))
    run_folder = RunFolder(folder)
    return compose(plan(cfg), run_folder, run_folder.load_state() or RunState())
