"""How fast does the pipeline itself go when the teacher costs nothing?

    .venv/bin/python benchmarks/pipeline_overhead.py [--targets 1000 10000]

A zero-latency synthetic teacher answers instantly, so every second measured is the pipeline's own:
Ray round trips, parsing, heuristic filters, ROUGE-L dedup in the pool actor, instance filters and
the fsynced writes. The figure is candidate instructions processed per second at 1K and 10K kept.

Baseline, measured in the same run on candidates from the same synthetic teacher: the original Self-Instruct loop
(parse, the same heuristics, then `rouge_scorer.score` against every seed and kept instruction,
serially; the original also started a process pool per candidate, which we spare it). It is run
for a fixed time budget, since at 10K kept it would take hours; the ratio is at the pool size it
reached. Goal: >= 2,000 candidates/s at 10K kept on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from filters.base import build_filters  # noqa: E402
from generator.config import RunConfig  # noqa: E402
from generator.profiles import SELF_INSTRUCT  # noqa: E402
from generator.records import Example  # noqa: E402
from generator.run import run  # noqa: E402
from generator.seeds import load_seeds  # noqa: E402
from generator.tasks.propose import ProposeRow, SelfInstructPropose  # noqa: E402
from generator.teachers.scripted import ScriptedTeacher  # noqa: E402

SEEDS = REPO / "seeds" / "175.jsonl"


def pipeline(target: int, workdir: Path) -> dict[str, float]:
    config = RunConfig(
        seeds=SEEDS, out=workdir / f"run{target}", teacher="openai", model="zero-latency",
        cache=False, target=target, prompts_per_round=64, num_workers=2,
    )  # fmt: skip
    summary = run(config, teacher=ScriptedTeacher)
    seconds = summary["wall_time_s"]  # the loop itself: Ray start-up and shutdown are not the pipeline's
    candidates = summary["counts"]["candidates"]
    print(f"  step seconds at {target} kept: {json.dumps(summary['step_seconds'])}", flush=True)
    return {"kept": summary["counts"]["accepted"], "candidates": candidates, "seconds": seconds,
            "candidates_per_s": candidates / seconds}  # fmt: skip


def self_instruct_baseline(budget_s: float) -> dict[str, float]:
    """The original's serial loop on the same synthetic stream, for `budget_s` seconds."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    heuristics = build_filters(SELF_INSTRUCT.instruction_filters)
    seeds = [t.instruction for t in load_seeds(SEEDS)]
    pool: list[str] = list(seeds)
    task = SelfInstructPropose(SELF_INSTRUCT.propose)
    teacher = ScriptedTeacher()
    candidates = 0
    start = time.perf_counter()
    round_ = 0
    while time.perf_counter() - start < budget_s:
        examples = [Example(f"s{i}", t) for i, t in enumerate(pool[-8:])]
        row = ProposeRow(round=round_, index=0, examples=examples, seed=round_)
        [response] = asyncio.run(teacher.generate([task.prompt(row)]))
        for record in task.parse(row, response):
            candidates += 1
            if not all(f.apply(record)[0] for f in heuristics):
                continue
            scores = [scorer.score(record.instruction, other)["rougeL"].fmeasure for other in pool]
            if max(scores) <= 0.7:
                pool.append(record.instruction)
        round_ += 1
    seconds = time.perf_counter() - start
    return {"kept": len(pool) - len(seeds), "candidates": candidates, "seconds": seconds,
            "candidates_per_s": candidates / seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--baseline-seconds", type=float, default=60.0)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.targets:
            results[f"pipeline_{target}"] = pipeline(target, Path(tmp))
            print(f"pipeline, {target} kept: {json.dumps(results[f'pipeline_{target}'])}", flush=True)
    results["baseline"] = self_instruct_baseline(args.baseline_seconds)
    print(
        f"baseline (Self-Instruct serial loop, {args.baseline_seconds:.0f}s budget): {json.dumps(results['baseline'])}"
    )
    base = results["baseline"]["candidates_per_s"]
    print("\n| run | kept | candidates | seconds | candidates/s | vs baseline |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        label = re.sub(r"pipeline_(\d+)", r"pipeline, \1 kept", name)
        print(f"| {label} | {r['kept']:.0f} | {r['candidates']:.0f} | {r['seconds']:.1f} | {r['candidates_per_s']:.0f} "
              f"| {r['candidates_per_s'] / base:.1f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
