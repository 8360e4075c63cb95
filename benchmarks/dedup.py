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
import json
import multiprocessing as mp
import os
import random
import re
import resource
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THRESHOLD = 0.7

# -- the synthetic stream --------------------------------------------------------------------------

TEMPLATES = [
    "Write a {adj} {genre} about {w} and {w}.",
    "Explain how {w} affects {w} in simple terms.",
    "Give me {num} tips for {activity} with {w}.",
    "Summarize the following {doc} about {w} in {num} sentences.",
    "Classify each {w} as {adj} or {adj}.",
    "Translate the {doc} about {w} into {lang}.",
    "What is the difference between {w} and {w}?",
    "Generate a list of {num} {w} related to {w}.",
    "Rewrite the {doc} about {w} to sound more {adj}.",
    "Suggest a {adj} name for a {w} that sells {w}.",
    "Find the {w} in the given {doc} and explain why it is {adj}.",
    "Describe a {adj} day in the life of a {person} who studies {w}.",
    "Compose an email to a {person} asking about {w} and {w}.",
    "Create a {num} step plan for {w} on a {adj} budget.",
    "Is it a good idea to {verb} the {w} before {activity}?",
    "Tell me a {adj} story about a {w} who loves {w}.",
    "List the pros and cons of {w} for a {person}.",
    "How would you {verb} a {w} without any {w}?",
    "Identify the main {w} of the {doc} and explain its {w}.",
    "Design a {adj} {genre} for people interested in {w} and {w}.",
]
SLOTS = {
    "adj": "funny short formal polite creative simple detailed positive negative useful strange modern "
    "classic quiet bright honest gentle bold clever rapid calm serious casual boring complex vague neutral "
    "ancient loud dark friendly curious elegant fragile generous lazy lucky nervous proud rare rich shy "
    "smooth soft spicy sweet tiny tough warm wild wise young",
    "genre": "poem story essay song joke riddle review speech letter article haiku limerick slogan tweet "
    "dialogue monologue ballad fable sonnet",
    "num": "two three four five six seven eight nine ten eleven twelve fifteen twenty",
    "doc": "paragraph article email sentence report tweet poem contract recipe speech review abstract "
    "letter memo essay",
    "lang": "French Spanish German Italian Japanese Korean Hindi Swahili Portuguese Dutch Russian Arabic",
    "person": "teacher nurse pilot farmer student chef lawyer artist child grandparent doctor engineer "
    "musician scientist athlete writer plumber librarian tourist soldier",
    "verb": "clean repair store paint fold sell measure wash recycle wrap freeze sharpen polish test",
    "activity": "running|cooking|studying|saving money|hiking|moving house|learning guitar|painting|"
    "swimming|gardening|writing a novel|training a dog|planning a wedding|starting a business",
}


def seed_instructions(path: Path) -> list[str]:
    return [json.loads(line)["instruction"] for line in path.read_text().splitlines() if line.strip()]


def seed_vocabulary(path: Path) -> list[str]:
    """Words of 4+ letters from the seed tasks (instructions and instances): the slot fillers."""
    words: set[str] = set()
    for line in path.read_text().splitlines():
        if line.strip():
            task = json.loads(line)
            text = (
                task["instruction"]
                + " "
                + " ".join(i["input"] + " " + i["output"] for i in task["instances"])
            )
            words.update(w.lower() for w in re.findall(r"[A-Za-z]{4,}", text))
    return sorted(words)


def synthetic_stream(n: int, vocabulary: Sequence[str], seed: int = 0) -> list[str]:
    """n instructions: fresh template fills, 25% copies with 1-3 word edits, 2% exact copies."""
    rng = random.Random(seed)
    slots = {k: v.split("|") if "|" in v else v.split() for k, v in SLOTS.items()}

    def fill(template: str) -> str:
        def one(m: re.Match[str]) -> str:
            key = m.group(1)
            if key == "w":
                return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 2)))
            return rng.choice(slots[key])

        return re.sub(r"\{(\w+)\}", one, template)

    def mutate(text: str) -> str:
        words = text.split()
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            if op < 0.4:
                words[rng.randrange(len(words))] = rng.choice(vocabulary)
            elif op < 0.7:
                words.insert(rng.randrange(len(words) + 1), rng.choice(vocabulary))
            elif op < 0.85 and len(words) > 1:
                del words[rng.randrange(len(words))]
            elif len(words) > 1:
                i = rng.randrange(len(words) - 1)
                words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)

    out: list[str] = []
    for _ in range(n):
        r = rng.random()
        if out and r < 0.25:
            out.append(mutate(rng.choice(out)))
        elif out and r < 0.27:
            out.append(rng.choice(out))
        else:
            out.append(fill(rng.choice(TEMPLATES)))
    return out


# -- the methods: each returns one keep/drop decision per stream item ---------------------------


def exact(seeds: list[str], stream: list[str]) -> list[bool]:
    from filters.rouge import RougeLIndex

    index = RougeLIndex(THRESHOLD)
    for s in seeds:
        index.add(s)
    return [index.offer(t) is None for t in stream]


def exact_with_stats(seeds: list[str], stream: list[str]) -> list[bool]:
    """The pipeline's filter: Records in, top-10 most similar and mean F for each kept record."""
    from filters.rouge_filter import RougeLFilter
    from generator.records import Record

    f = RougeLFilter(THRESHOLD, top_k=10)
    f.add_many(Record(id="seed", instruction=s, origin="seed") for s in seeds)
    decisions: list[bool] = []
    for start in range(0, len(stream), 320):  # as the pool actor offers them: a round at a time
        batch = [Record(id="c", instruction=t, origin="bench") for t in stream[start : start + 320]]
        decisions += f.offer(batch)
        f.neighbours()
    return decisions


def exhaustive(seeds: list[str], stream: list[str]) -> list[bool]:
    """Exact LCS against every pool item (no index): the reference for large streams."""
    from rapidfuzz import process
    from rapidfuzz.distance import LCSseq

    from filters.rouge import rouge_f_many, rouge_tokens

    vocab: dict[str, int] = {}

    def enc(text: str) -> str:
        return "".join(chr(vocab.setdefault(w, len(vocab) + 1)) for w in rouge_tokens(text))

    pool = [enc(s) for s in seeds]
    lens = [len(p) for p in pool]
    out = []
    for text in stream:
        q = enc(text)
        keep = True
        if q and pool:
            lcs = process.cdist([q], pool, scorer=LCSseq.similarity, dtype=np.int32)[0]
            keep = bool(rouge_f_many(lcs, len(q), np.asarray(lens)).max() <= THRESHOLD)
        if keep:
            pool.append(q)
            lens.append(len(q))
        out.append(keep)
    return out


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
    out, start, cpu = [], time.perf_counter(), _cpu_seconds()
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
            marks[i] = (time.perf_counter() - start, _cpu_seconds() - cpu)
    return out


def rouge_serial(seeds: list[str], stream: list[str], marks: dict[int, tuple[float, float]]) -> list[bool]:
    """Self-Instruct's scoring without its process pool: `scorer.score` for every pair."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = list(seeds)
    out, start, cpu = [], time.perf_counter(), _cpu_seconds()
    for i, text in enumerate(stream, 1):
        scores = [scorer.score(p, text)["rougeL"].fmeasure for p in pool]
        _avg, _top = float(np.mean(scores)), np.argsort(scores)[-10:]
        keep = max(scores) <= THRESHOLD
        if keep:
            pool.append(text)
        out.append(keep)
        if i % 500 == 0:
            marks[i] = (time.perf_counter() - start, _cpu_seconds() - cpu)
    return out


def minhash(seeds: list[str], stream: list[str], name: str = "minhash") -> list[bool]:
    from filters.base import build_dedup
    from generator.records import Record

    params = {"threshold": THRESHOLD} | (
        {"lsh_threshold": 0.5, "top_k": 0} if name == "minhash_rouge_l" else {}
    )
    (f,) = build_dedup([{"name": name, "params": params}])
    f.add_many(Record(id="seed", instruction=s, origin="seed") for s in seeds)
    return [f.apply(Record(id="c", instruction=t, origin="bench"))[0] for t in stream]


METHODS: dict[str, Callable[..., list[bool]]] = {
    "exact": exact,
    "exact+stats": exact_with_stats,
    "exhaustive": exhaustive,
    "alpaca": alpaca_loop,
    "rouge-serial": rouge_serial,
    "minhash": minhash,
    "minhash+rougel": partial(minhash, name="minhash_rouge_l"),
}


# -- measuring -----------------------------------------------------------------------------------


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
    wall, cpu = time.perf_counter(), _cpu_seconds()
    decisions = fn(seeds, stream, **kwargs)
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
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


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the Alpaca loop's pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


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


def agreement(a: np.ndarray, b: np.ndarray) -> str:
    same = int((a == b).sum())
    return "identical" if same == len(a) else f"{same / len(a):.2%} ({len(a) - same:,} differ)"


def load_average() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


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

    def baseline(method: str, clock: int, n: int, pairs: float) -> float:
        """Measured at the baseline size, fitted elsewhere."""
        if n == nb:
            return float(res[method, nb]["seconds" if clock == 0 else "cpu_seconds"])
        a, b = fits[method, clock]
        return a * n + b * pairs

    # -- report ----------------------------------------------------------------------------------
    lines = [
        "# Dedup benchmark",
        "",
        f"Run {started} on {os.cpu_count()} CPUs, load average {start_load} at the start and "
        f"{finished_load} at the end: other work shared the machine, so wall times are noisy; CPU times "
        "(the process and its child processes) are steadier, and every speedup is given on both.",
        "",
        "Command: `.venv/bin/python benchmarks/dedup.py --markdown benchmarks/RESULTS-dedup.md`",
        "",
        f"Streams: seeded synthetic instructions (seed {args.seed}): 20 templates whose slots take words "
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
    for n in args.sizes:
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
    for n in args.sizes:
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
    for n in args.sizes:
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
    if args.large:
        big = res["exact", args.large]
        big_pairs = float(pairs_per_offer(big["decisions"], seeds).sum())
        lines += [
            "",
            f"## A {args.large:,}-item stream",
            "",
            f"Exact ROUGE-L decisions (no top-10/mean F): {_clock(big)}, {big['kept']:,} kept, peak RSS "
            f"{big['peak_mb']:.0f} MB (+{big['delta_mb']:.0f} MB during the run; the stream itself is in the "
            f"baseline). The loop would score {big_pairs:,.0f} pairs: the Alpaca-loop fit puts that at "
            f"{_duration(baseline('alpaca', 0, args.large, big_pairs))}.",
        ]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
