"""Evolve an existing instruction dataset with Evol-Instruct, as WizardLM did from Alpaca's 52K.

    python -m generator.evolve --input alpaca.json --rounds 4 --out out/alpaca-evol \\
        --teacher openai --base-url http://127.0.0.1:8000/v1 --model my-model
    python -m generator.evolve --input code_alpaca.json --rounds 3 --evolve-profile code ...  # WizardCoder ops

The input is Alpaca JSON or JSONL (`instruction, input, output`) or Self-Instruct seed tasks. Each row's
input is folded into its instruction before evolving (WizardLM did the same). The run folder gets the
same files as `generator.run`: `alpaca.json` (the input rows, then every round's evolved rows),
`evolved.jsonl` (each evolved item with its lineage and scores), `evolve_dropped.jsonl` (every
eliminated evolution with its rule and reason), `stats.json` (per-round table under "evolve") and
`config.json`. Rerunning the same command resumes; a larger --rounds evolves a finished run further.
Exit codes as `generator.run`: 0 done, 1 run failed, 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from generator.run import add_common_flags, cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator.evolve",
        description="Evolve an existing Alpaca-style dataset into harder and rarer instructions "
        "(Evol-Instruct: depth and breadth ops, the eliminator, answers, Deita scores) with a teacher LLM.",
        epilog="Outputs in --out: alpaca.json, evolved.jsonl, evolve_dropped.jsonl, stats.json, config.json. "
        "Exit codes: 0 done, 1 run failed, 2 bad input, 130 interrupted.",
    )
    p.add_argument(
        "--input",
        dest="seeds",
        type=Path,
        default=None,
        help="dataset to evolve: Alpaca JSON or JSONL (instruction, input, output), or Self-Instruct tasks",
    )
    p.add_argument(
        "--rounds",
        dest="evolve_rounds",
        type=int,
        default=None,
        help="evolution rounds (default 4, as WizardLM)",
    )
    add_common_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seeds is None and args.config is None:
        parser.error("--input is required (or a --config that names the file as `seeds`)")
    if args.evolve_rounds is None and args.config is None:
        args.evolve_rounds = 4  # WizardLM's four rounds
    return cli(args, bootstrap=False)


if __name__ == "__main__":
    sys.exit(main())
