"""Deduplicate an existing dataset: `python -m filters.dedup IN.(json|jsonl) --out OUT.jsonl`.

Rows are read in order and the first occurrence wins, exactly as in the Self-Instruct/Alpaca loop:
each row is compared with the rows kept before it (and with `--seeds`, if given). With `--method rougel`
the kept rows are the very rows the rouge-score loop keeps. Kept rows are written unchanged; with
`--dropped`, every dropped row is written with its line, reason and the row it duplicated
(`duplicate_of`: its text, the score, and its id: its line, or `seed:<line>` for a seed).

Exit codes: 0 done, 2 bad input or arguments (the message names file:line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from filters.base import build_dedup
from filters.textio import read_rows, text_field
from generator.records import Record

METHODS = {
    "rougel": "rouge_l",
    "minhash": "minhash",
    "minhash+rougel": "minhash_rouge_l",
    "semantic": "semantic",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m filters.dedup",
        description="Drop near-duplicate rows of a JSON or JSONL dataset, keeping the first occurrence.",
    )
    p.add_argument("input", type=Path, help="dataset: a JSON array (alpaca_data.json) or JSONL file")
    p.add_argument("--out", type=Path, required=True, help="kept rows, JSONL, in input order")
    p.add_argument(
        "--method",
        choices=list(METHODS),
        default="rougel",
        help="rougel: exact ROUGE-L as Self-Instruct (default); minhash: MinHash LSH on its own; "
        "minhash+rougel: LSH candidates verified by exact ROUGE-L; semantic: embedding cosine "
        "(needs the optional packages)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="drop above this similarity (default 0.7; 0.9 for semantic)",
    )
    p.add_argument("--field", default="instruction", help="the text field to compare (default: instruction)")
    p.add_argument("--dropped", type=Path, help="write dropped rows here (JSONL) with line, reason and match")
    p.add_argument("--seeds", type=Path, help="a file of rows to compare against first (never written)")
    p.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (minhash methods)")
    p.add_argument("--shingle", choices=["word", "char"], default="word", help="MinHash shingles")
    p.add_argument("--ngram", type=int, default=1, help="MinHash shingle length")
    p.add_argument("--lsh-threshold", type=float, default=0.5, help="LSH threshold for minhash+rougel")
    return p


def _params(args: argparse.Namespace) -> dict[str, Any]:
    threshold = args.threshold
    if args.method == "semantic":
        return {"threshold": 0.9 if threshold is None else threshold}
    params: dict[str, Any] = {"threshold": 0.7 if threshold is None else threshold}
    if args.method == "rougel":
        params["similarity"] = False  # only the decisions are written
    if args.method in ("minhash", "minhash+rougel"):
        params |= {"num_perm": args.num_perm, "shingle": args.shingle, "ngram": args.ngram}
    if args.method == "minhash+rougel":
        params |= {"lsh_threshold": args.lsh_threshold, "top_k": 0}
    return params


def _load(path: Path, field: str) -> list[tuple[int, Any, str]]:
    return [(line, row, text_field(row, field, f"{path}:{line}")) for line, row in read_rows(path)]


def _write_jsonl(path: Path, rows: Sequence[Any]) -> None:
    """Write atomically: a crash never leaves half a file where a finished one was expected."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    try:
        rows = _load(args.input, args.field)
        seeds = _load(args.seeds, args.field) if args.seeds else []
        (dedup,) = build_dedup([{"name": METHODS[args.method], "params": _params(args)}])
    except (ValueError, ImportError) as exc:  # InputError (file:line), bad parameters, missing packages
        print(f"error: {exc}", file=sys.stderr)
        return 2

    why: dict[str, str] = {}  # record id -> why it was dropped
    dedup.on_drop = lambda item, label, reason: why.__setitem__(item.id, reason)
    dedup.add_many(Record(id=f"seed:{line}", instruction=text, origin="seed") for line, _, text in seeds)
    records = [Record(id=str(line), instruction=text, origin="input") for line, _, text in rows]
    kept: list[Any] = []
    dropped: list[dict[str, Any]] = []
    for (line, row, _), record, ok in zip(rows, records, dedup.offer(records), strict=True):
        if ok:
            kept.append(row)
            continue
        entry = {"line": line, "filter": dedup.label, "reason": why[record.id]}
        if record.near_duplicate is not None:
            entry["duplicate_of"] = record.near_duplicate.model_dump()
        dropped.append(entry | {"row": row})

    _write_jsonl(args.out, kept)
    if args.dropped:
        _write_jsonl(args.dropped, dropped)
    reasons = {k.removeprefix("dropped_"): v for k, v in dedup.stats.items() if k.startswith("dropped_")}
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items()))
    print(
        f"read {len(rows)} rows from {args.input}; kept {len(kept)}, dropped {len(dropped)}"
        + (f" ({detail})" if detail else "")
        + f"; {args.method} in {time.perf_counter() - started:.2f} s; wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
