"""Train / validation / test splits of a run's dataset, cut by instruction.

A row is one instance of an instruction; a model that saw one instance in training and is scored on
another of the same instruction is scored on what it memorised. So the unit of the split is the
instruction: records are grouped by their instruction text (two records with one text are one
instruction), the groups shuffled with `random.Random(seed)`, and cut by the ratios. Each split keeps
the dataset's own order, so the same folder, ratios and seed always give the same files.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

from generator.dataset import dataset
from generator.records import AlpacaRow, Record, alpaca_rows

DEFAULT_SPLIT: tuple[float, float, float] = (0.9, 0.05, 0.05)
SPLITS = ("train", "validation", "test")
_TOLERANCE = 1e-6  # "0.9/0.05/0.05" sums to 0.9999999999999999 in floats


class SplitError(ValueError):
    """Ratios or a --split string that cannot be used; the message says what is wrong."""


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """Three non-negative ratios summing to 1, or a SplitError naming the problem."""
    if len(ratios) != len(SPLITS):
        raise SplitError(f"a split has {len(SPLITS)} ratios ({'/'.join(SPLITS)}), got {len(ratios)}")
    if any(not math.isfinite(r) or r < 0 for r in ratios):
        raise SplitError(f"split ratios must be finite and >= 0, got {'/'.join(map(str, ratios))}")
    if abs(sum(ratios) - 1.0) > _TOLERANCE:
        raise SplitError(f"split ratios must sum to 1, got {'/'.join(map(str, ratios))} = {sum(ratios):g}")
    return (float(ratios[0]), float(ratios[1]), float(ratios[2]))


def parse_split(text: str) -> tuple[float, float, float]:
    """`"0.9/0.05/0.05"` -> (0.9, 0.05, 0.05); a SplitError says what is wrong with any other text.
    Commas separate too ("0.9,0.05,0.05", as `generator.finetune --split` writes it)."""
    parts = text.replace(",", "/").split("/")
    try:
        ratios = [float(p) for p in parts]
    except ValueError:
        raise SplitError(
            f"--split takes three ratios TRAIN/VALIDATION/TEST such as 0.9/0.05/0.05, got {text!r}"
        ) from None
    return check_ratios(ratios)


def cut(n: int, ratios: Sequence[float]) -> list[int]:
    """How many of `n` instructions each split gets: largest remainder, then at least one for each
    split with a non-zero ratio whenever there are enough instructions for that (3 for 3 splits)."""
    exact = [round(r * n, 9) for r in ratios]  # round: 0.29 * 100 is 28.999999999999996
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(ratios)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    if n >= sum(1 for r in ratios if r > 0):
        for i, r in enumerate(ratios):
            if r > 0 and counts[i] == 0:
                # the largest split holds >= 2 here (pigeonhole), so it can spare one
                donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
                counts[donor] -= 1
                counts[i] += 1
    return counts


def split_records(
    records: Sequence[Record], ratios: Sequence[float] = DEFAULT_SPLIT, seed: int = 42
) -> dict[str, list[Record]]:
    """The records (with at least one instance) of each split, in their dataset order."""
    ratios = check_ratios(ratios)
    groups: dict[str, list[int]] = {}  # instruction text -> positions of its records
    for pos, record in enumerate(records):
        if record.instances:
            groups.setdefault(record.instruction, []).append(pos)
    order = list(groups)
    random.Random(seed).shuffle(order)
    out: dict[str, list[Record]] = {}
    start = 0
    for name, count in zip(SPLITS, cut(len(order), ratios), strict=True):
        positions = sorted(pos for text in order[start : start + count] for pos in groups[text])
        out[name] = [records[pos] for pos in positions]
        start += count
    return out


def rows_of(records: Sequence[Record]) -> list[AlpacaRow]:
    return [row for r in records for row in alpaca_rows(r)]


def split_rows(
    folder: Path, ratios: tuple[float, float, float] = DEFAULT_SPLIT, seed: int = 42
) -> dict[str, list[AlpacaRow]]:
    """The Alpaca rows of each split of a run folder's dataset (every split named, empty or not)."""
    parts = split_records(dataset(folder).records(), ratios, seed)
    return {name: rows_of(records) for name, records in parts.items()}
