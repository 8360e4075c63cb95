"""The dedup benchmark's Markdown report: exact ROUGE-L, the baselines and their fits, MinHash."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from dedup_measure import pairs_per_offer
from dedup_methods import THRESHOLD


def agreement(a: np.ndarray, b: np.ndarray) -> str:
    same = int((a == b).sum())
    return "identical" if same == len(a) else f"{same / len(a):.2%} ({len(a) - same:,} differ)"


def report(
    res: dict[tuple[str, int], dict[str, Any]],
    fits: dict[tuple[str, int], tuple[float, float]],
    *,
    sizes: list[int],
    nb: int,
    large: int,
    seed: int,
    seeds: int,
    started: str,
    start_load: str,
    finished_load: str,
) -> str:
    """The Markdown text: `res` by (method, items), `fits` by (method, 0 wall / 1 CPU) -> (a, b)."""

    def baseline(method: str, clock: int, n: int, pairs: float) -> float:
        """Measured at the baseline size, fitted elsewhere."""
        if n == nb:
            return float(res[method, nb]["seconds" if clock == 0 else "cpu_seconds"])
        a, b = fits[method, clock]
        return a * n + b * pairs

    lines = [
        "# Dedup benchmark",
        "",
        f"Run {started} on {os.cpu_count()} CPUs, load average {start_load} at the start and "
        f"{finished_load} at the end: other work shared the machine, so wall times are noisy; CPU times "
        "(the process and its child processes) are steadier, and every speedup is given on both.",
        "",
        "Command: `.venv/bin/python benchmarks/dedup.py --markdown benchmarks/RESULTS-dedup.md`",
        "",
        f"Streams: seeded synthetic instructions (seed {seed}): 20 templates whose slots take words "
        f"from the seed tasks' vocabulary, a quarter mutated copies, 2% exact copies; offered after the "
        f"{seeds} published seed instructions, which start the pool. Drop when max ROUGE-L F > {THRESHOLD}. "
        "Times cover the dedup alone; memory is the peak RSS of the measuring process (a fresh one per "
        "measurement) and, in brackets, its growth during the run.",
        "",
        "## Exact ROUGE-L (filters/rouge.py; with top-10 + mean F, filters/rouge_rows.py)",
        "",
        "| items | kept | pairs the loop scores | decisions only | with top-10 + mean F per kept item "
        "| exhaustive exact LCS | decisions |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        e, es, ex = res["exact", n], res["exact+stats", n], res["exhaustive", n]
        pairs = pairs_per_offer(e["decisions"], seeds).sum()
        same = f"= exhaustive: {agreement(e['decisions'], ex['decisions'])}"
        if n == nb:
            same = (
                f"= Alpaca loop: {agreement(e['decisions'], res['alpaca', nb]['decisions'])}; "
                f"= rouge-score loop: {agreement(e['decisions'], res['rouge-serial', nb]['decisions'])}; {same}"
            )
        lines.append(
            f"| {n:,} | {e['kept']:,} | {pairs:,} | {_clock(e)}, {e['peak_mb']:.0f} MB (+{e['delta_mb']:.0f}) "
            f"| {_clock(es)}, {es['peak_mb']:.0f} MB (+{es['delta_mb']:.0f}) | {_clock(ex)} | {same} |"
        )
    lines += [
        "",
        "## Against the Alpaca loop and serial rouge-score",
        "",
        f"Both baselines are measured on {nb:,} items and fitted as a·offers + b·pairs at 500-item "
        "checkpoints; larger sizes are the fit (the pairs are those the loop scores, from the decisions "
        "above).",
        "",
        "| items | Alpaca loop (wall / CPU) | serial rouge-score (wall / CPU) | exact vs Alpaca, decisions "
        "(wall / CPU) | exact vs Alpaca, with top-10 + mean F (wall / CPU) | exact vs serial rouge-score "
        "(wall / CPU) |",
        "|---|---|---|---|---|---|",
    ]
    for n in sizes:
        e, es = res["exact", n], res["exact+stats", n]
        pairs = float(pairs_per_offer(e["decisions"], seeds).sum())
        al = [baseline("alpaca", c, n, pairs) for c in (0, 1)]
        se = [baseline("rouge-serial", c, n, pairs) for c in (0, 1)]
        tag = "" if n == nb else " (fit)"
        ew, ec = e["seconds"], e["cpu_seconds"]
        sw, sc = es["seconds"], es["cpu_seconds"]
        lines.append(
            f"| {n:,} | {_duration(al[0])} / {_duration(al[1])}{tag} | {_duration(se[0])} / {_duration(se[1])}{tag} "
            f"| {al[0] / ew:,.0f}× / {al[1] / ec:,.0f}× | {al[0] / sw:,.0f}× / {al[1] / sc:,.0f}× "
            f"| {se[0] / ew:,.0f}× / {se[1] / ec:,.0f}× |"
        )
    fa, fs = fits["alpaca", 1], fits["rouge-serial", 1]
    lines += [
        "",
        f"CPU fits: Alpaca loop {fa[0] * 1e3:.1f} ms per offer (a new pool of {os.cpu_count()} processes each) "
        f"+ {fa[1] * 1e6:.1f} µs per pair; serial rouge-score {fs[0] * 1e3:.2f} ms per offer + "
        f"{fs[1] * 1e6:.1f} µs per pair.",
        "",
        "## MinHash (filters/minhash.py; LSH at 0.7 standalone, at 0.5 as the pre-pass of exact ROUGE-L)",
        "",
        "| items | method | wall / CPU | peak MB | kept | decisions = exact | exact drops caught "
        "| exact keeps dropped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        e = res["exact", n]["decisions"]
        for method in ("minhash", "minhash+rougel"):
            r = res[method, n]
            d = r["decisions"]
            caught = int((~d & ~e).sum()) / max(1, int((~e).sum()))
            wrong = int((~d & e).sum()) / max(1, int(e.sum()))
            lines.append(
                f"| {n:,} | {method} | {_clock(r)} | {r['peak_mb']:.0f} | {r['kept']:,} "
                f"| {agreement(d, e)} | {caught:.1%} | {wrong:.1%} |"
            )
    lines += [
        "",
        "minhash+rougel only drops pairs whose exact F is above the threshold, but each duplicate LSH "
        "misses stays in its pool, so later items can be compared with a different pool: that is where "
        'its "exact keeps dropped" come from.',
    ]
    if large:
        big = res["exact", large]
        big_pairs = float(pairs_per_offer(big["decisions"], seeds).sum())
        lines += [
            "",
            f"## A {large:,}-item stream",
            "",
            f"Exact ROUGE-L decisions (no top-10/mean F): {_clock(big)}, {big['kept']:,} kept, peak RSS "
            f"{big['peak_mb']:.0f} MB (+{big['delta_mb']:.0f} MB during the run; the stream itself is in the "
            f"baseline). The loop would score {big_pairs:,.0f} pairs: the Alpaca-loop fit puts that at "
            f"{_duration(baseline('alpaca', 0, large, big_pairs))}.",
        ]
    return "\n".join(lines) + "\n"


def _clock(r: dict[str, Any]) -> str:
    return f"{r['seconds']:.2f} s / {r['cpu_seconds']:.2f} s CPU"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
