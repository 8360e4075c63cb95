"""Benchmark: exact fast ROUGE-L dedup against the Alpaca loop, serial rouge-score and MinHash.

    .venv/bin/python benchmarks/dedup.py --markdown benchmarks/RESULTS-dedup.md

Streams are seeded synthetic instructions (20 templates whose slots take 1-2 words drawn from the
vocabulary of the published seed tasks; a quarter are mutated copies of earlier items, 2% exact
copies), offered after the 175 published seed instructions, which start the pool as in Self-Instruct.
Every measurement runs in a fresh process, so peak memory is its own. Baselines:

- Alpaca loop: `generate_instruction.py`'s dedup, pre-tokenized, a new `multiprocessing.Pool` per
  candidate mapping `rouge_scorer._score_lcs` over the pool. Measured on the first 2,000 items; the
  time at 500/1,000/1,500/2,000 items is fitted as a·offers + b·pairs and extrapolated.
- serial rouge-score: Self-Instruct's `scorer.score(pool_item, candidate)` for every pair, one process;
  measured and extrapolated the same way.
- exhaustive exact: rapidfuzz LCS against every pool item with rouge-score's formula (no index), the
  decision reference at sizes the baselines cannot reach.
- MinHash: `minhash` (LSH + estimated Jaccard) and `minhash_rouge_l` (LSH candidates, exact ROUGE-L).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dedup_measure import fit, load_average, measure, pairs_per_offer
from dedup_report import report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: Sequence[str] | None = None) -> int:
    default_seeds = ROOT / "seeds" / "175.jsonl"
    if not default_seeds.exists():
        default_seeds = ROOT.parent / "shared" / "data" / "self_instruct_seed_tasks.jsonl"
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=Path, default=default_seeds, help="Self-Instruct seed tasks (JSONL)")
    p.add_argument("--sizes", type=int, nargs="+", default=[2_000, 20_000, 52_000])
    p.add_argument("--baseline-size", type=int, default=2_000, help="items the slow baselines are timed on")
    p.add_argument("--large", type=int, default=1_000_000, help="the large stream (0 to skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markdown", type=Path, help="also write the results as Markdown here")
    args = p.parse_args(argv)

    started, start_load = time.strftime("%Y-%m-%d %H:%M"), load_average()
    print(f"dedup benchmark, {os.cpu_count()} CPUs, load average {start_load} at start", flush=True)
    res: dict[tuple[str, int], dict[str, Any]] = {}

    def run(method: str, n: int) -> dict[str, Any]:
        res[method, n] = measure(method, n, args.seeds, args.seed)
        return res[method, n]

    for n in args.sizes:
        for method in ("exact", "exact+stats", "exhaustive", "minhash", "minhash+rougel"):
            run(method, n)
    nb = args.baseline_size
    exact_b = res["exact", nb] if ("exact", nb) in res else run("exact", nb)
    seeds = exact_b["seeds"]
    fits: dict[tuple[str, int], tuple[float, float]] = {}  # (method, 0 wall / 1 CPU) -> (a, b)
    base_pairs = pairs_per_offer(exact_b["decisions"], seeds)
    for method in ("alpaca", "rouge-serial"):
        r = run(method, nb)
        for clock in (0, 1):
            fits[method, clock] = fit({k: v[clock] for k, v in r["marks"].items()}, base_pairs)
    if args.large:
        run("exact", args.large)
    finished_load = load_average()
    text = report(
        res,
        fits,
        sizes=args.sizes,
        nb=nb,
        large=args.large,
        seed=args.seed,
        seeds=seeds,
        started=started,
        start_load=start_load,
        finished_load=finished_load,
    )
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
