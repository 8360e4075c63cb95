"""The dedup benchmark's baselines: the Alpaca loop and Self-Instruct's serial rouge-score.

Both return one keep/drop decision per stream item and fill `marks` with (wall, CPU) seconds at every
500 items, which dedup_measure.fit extrapolates from.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
from functools import partial

import numpy as np
from dedup_methods import THRESHOLD


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the Alpaca loop's pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _alpaca_scores(pool_tokens: list[list[str]], tokens: list[str], processes: int) -> list[float]:
    from rouge_score import rouge_scorer

    with mp.get_context("fork").Pool(processes) as p:  # a new pool per candidate, as Alpaca does
        scores = p.map(partial(rouge_scorer._score_lcs, tokens), pool_tokens)
    return [s.fmeasure for s in scores]


def alpaca_loop(seeds: list[str], stream: list[str], marks: dict[int, tuple[float, float]]) -> list[bool]:
    """stanford_alpaca generate_instruction.py's dedup; `marks` gets (wall, CPU) seconds per 500 items."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = list(seeds)
    pool_tokens = [scorer._tokenizer.tokenize(s) for s in seeds]
    processes = os.cpu_count() or 1
    out, start, cpu = [], time.perf_counter(), cpu_seconds()
    for i, text in enumerate(stream, 1):
        tokens = scorer._tokenizer.tokenize(text)
        scores = _alpaca_scores(pool_tokens, tokens, processes)
        _most_similar = {pool[j]: scores[j] for j in np.argsort(scores)[-10:][::-1]}
        keep = max(scores) <= THRESHOLD
        if keep:
            pool.append(text)
            pool_tokens.append(tokens)
        out.append(keep)
        if i % 500 == 0:
            marks[i] = (time.perf_counter() - start, cpu_seconds() - cpu)
    return out


def rouge_serial(seeds: list[str], stream: list[str], marks: dict[int, tuple[float, float]]) -> list[bool]:
    """Self-Instruct's scoring without its process pool: `scorer.score` for every pair."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = list(seeds)
    out, start, cpu = [], time.perf_counter(), cpu_seconds()
    for i, text in enumerate(stream, 1):
        scores = [scorer.score(p, text)["rougeL"].fmeasure for p in pool]
        _avg, _top = float(np.mean(scores)), np.argsort(scores)[-10:]
        keep = max(scores) <= THRESHOLD
        if keep:
            pool.append(text)
        out.append(keep)
        if i % 500 == 0:
            marks[i] = (time.perf_counter() - start, cpu_seconds() - cpu)
    return out
