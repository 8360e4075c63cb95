"""Measuring one dedup method in a fresh process, and fitting the baselines' checkpoints."""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from dedup_baselines import alpaca_loop, cpu_seconds, rouge_serial
from dedup_methods import exact, exact_with_stats, exhaustive, minhash
from dedup_stream import seed_instructions, seed_vocabulary, synthetic_stream

METHODS: dict[str, Callable[..., list[bool]]] = {
    "exact": exact,
    "exact+stats": exact_with_stats,
    "exhaustive": exhaustive,
    "alpaca": alpaca_loop,
    "rouge-serial": rouge_serial,
    "minhash": minhash,
    "minhash+rougel": partial(minhash, name="minhash_rouge_l"),
}


def _measure(method: str, n: int, seeds_path: str, seed: int) -> dict[str, Any]:
    """Runs in a fresh process: build the stream, then time one method on it."""
    path = Path(seeds_path)
    seeds = seed_instructions(path)
    stream = synthetic_stream(n, seed_vocabulary(path), seed)
    import rouge_score.rouge_scorer  # noqa: F401

    import filters  # noqa: F401  (imports outside the timed part)

    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    marks: dict[int, tuple[float, float]] = {}
    fn = METHODS[method]
    kwargs = {"marks": marks} if method in ("alpaca", "rouge-serial") else {}
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), cpu_seconds()
    decisions = fn(seeds, stream, **kwargs)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "method": method,
        "n": n,
        "seconds": wall,
        "cpu_seconds": cpu,
        "peak_mb": peak_kb / 1024,
        "delta_mb": (peak_kb - base_kb) / 1024,
        "kept": sum(decisions),
        "decisions": np.packbits(np.array(decisions, dtype=bool)).tobytes(),
        "marks": marks,
        "seeds": len(seeds),
        "load": (load + os.getloadavg()[0]) / 2,
    }


def measure(method: str, n: int, seeds_path: Path, seed: int) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        result = ex.submit(_measure, method, n, str(seeds_path), seed).result()
    bits = np.unpackbits(np.frombuffer(result["decisions"], dtype=np.uint8))[:n]
    result["decisions"] = bits.astype(bool)
    print(
        f"  {method:15s} n={n:>9,}  {result['seconds']:9.2f} s (cpu {result['cpu_seconds']:.2f})  "
        f"peak {result['peak_mb']:7.1f} MB (+{result['delta_mb']:.1f})  kept {result['kept']:,}  "
        f"load {result['load']:.1f}",
        flush=True,
    )
    return result


def pairs_per_offer(decisions: np.ndarray, seeds: int) -> np.ndarray:
    """How many pool items each offer is compared with (seeds + items kept before it)."""
    kept_before = np.concatenate([[0], np.cumsum(decisions)[:-1]])
    return seeds + kept_before


def fit(marks: dict[int, float], pairs: np.ndarray) -> tuple[float, float]:
    """Least squares time = a·offers + b·pairs over the cumulative checkpoints, a and b >= 0.

    On a shared machine noise can push one coefficient below zero; then that term is dropped and the
    other refitted alone.
    """
    rows = sorted(marks)
    x = np.array([[k, pairs[:k].sum()] for k in rows], dtype=float)
    y = np.array([marks[k] for k in rows])
    (a, b), *_ = np.linalg.lstsq(x, y, rcond=None)
    if a < 0 or b < 0:
        keep = 1 if a < 0 else 0
        coef = float(x[:, keep] @ y / (x[:, keep] @ x[:, keep]))
        a, b = (0.0, coef) if keep == 1 else (coef, 0.0)
    return float(a), float(b)


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())
