"""`python -m generator.export RUN_DIR --format FORMAT [--split T/V/T] [--seed N] [--out DIR] [--force]
[--system TEXT] [--license ID]`

Writes RUN_DIR/export/FORMAT/ (or --out): the split files and README.md, the dataset card.
Exit codes: 0 written, 2 bad input (not a run folder, a bad --split, an unknown format, a non-empty
output folder without --force).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from generator.export.formats import FORMATS
from generator.export.splits import DEFAULT_SPLIT, SPLITS, SplitError, parse_split
from generator.export.write import ExportError, export_run

_DEFAULT_SPLIT = "/".join(f"{r:g}" for r in DEFAULT_SPLIT)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator.export",
        description="Export a run's dataset for fine-tuning, split by instruction, with a dataset card "
        "(README.md) recording the run's seeds, teacher, filters and counts.",
        epilog="Exit codes: 0 written, 2 bad input.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder (out/<run>)")
    p.add_argument(
        "--format",
        required=True,
        metavar="|".join(FORMATS),
        help="alpaca: <split>.json lists of {instruction, input, output}; sharegpt: <split>.jsonl of "
        "{conversations: [human, gpt]}; openai-chat: <split>.jsonl of {messages: [user, assistant]} "
        "(OpenAI fine-tuning); hf: a datasets folder (save_to_disk) plus data/<split>.parquet",
    )
    p.add_argument(
        "--split",
        default=_DEFAULT_SPLIT,
        metavar="T/V/T",
        help=f"{'/'.join(SPLITS)} ratios summing to 1 (default {_DEFAULT_SPLIT}); every instance of an "
        "instruction goes to the same split; a split with no rows is not written (1/0/0: train only)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=42,
        help="seed of the split's shuffle (default 42: the split fine-tuning and evaluation use)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN_DIR/export/FORMAT)")
    p.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty output folder, replacing an earlier export's files (others are kept)",
    )
    p.add_argument(
        "--system",
        default=None,
        metavar="TEXT",
        help="openai-chat only: a system message before each user turn",
    )
    p.add_argument(
        "--license",
        default="other",
        help="the card's licence id (default other: the teacher's terms apply to its outputs)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.format not in FORMATS:
            raise ExportError(f"unknown format {args.format!r}; known: {', '.join(FORMATS)}")
        ratios = parse_split(args.split)
        result = export_run(
            args.run_dir,
            args.format,
            out=args.out,
            ratios=ratios,
            seed=args.seed,
            system=args.system,
            license=args.license,
            force=args.force,
        )
    except (ExportError, SplitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    splits = ", ".join(
        f"{name} {c.rows} rows / {c.instructions} instructions" for name, c in result.splits.items()
    )
    print(f"wrote {result.format} to {result.folder}: {splits}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
