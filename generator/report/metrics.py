"""The numbers of a dataset: one pure function, `metrics(records, seeds, stats)`, and its helpers.

What a variant of a run is judged on (issue 17): how many rows it kept and what each filter dropped
and why; how diverse its instructions are (the ROUGE-L of each instruction against its most similar
seed, as in the Self-Instruct paper's Figure 3, and against its most similar other kept instruction;
distinct-1/2; the distinct root verbs and verb-object pairs, as in its Figure 2); how long
instructions, inputs and outputs are; what the teacher cost per kept row; how many teacher answers a
domain's verifier passed; and, once the fine-tuning stage exists, a downstream score.

Nothing here reads files or starts anything: the report (`generator/report/render.py`) and the ablation
runner pass the records, seeds and stats.json in. The per-item numbers (`Measured`) are kept apart from
the summaries so the figures draw the same values the tables summarise, computed once.

Nearest-neighbour ROUGE-L uses the dedup's exact scorer (`filters/rouge.py`: rouge-score's tokens, the
LCS in rapidfuzz's C code, rouge-score's float formula), a block of rows at a time.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq
from tqdm import tqdm

from filters.rouge import RougeLIndex, rouge_f_many
from generator.records import Record, SeedTask
from generator.report.verbs import Parse, verb_counts

Seeds = Sequence[SeedTask] | Sequence[Record]  # only `.instruction` is read: seed tasks or seed records
ROUGE_BINS = 20  # histogram bins of width 0.05 over [0, 1]
_CELLS = 4_000_000  # pairs scored per rapidfuzz call: a few float64 arrays of this size at once (~150 MB)
_WORD = re.compile(r"\w+")


# -- per-item numbers ------------------------------------------------------------------------------


def nearest_rouge(
    queries: Sequence[str], pool: Sequence[str] | None = None, desc: str = "ROUGE-L"
) -> list[float]:
    """For each query, the highest ROUGE-L F against the pool (0.0 for an empty pool).

    `pool=None` scores the queries against each other, each against every *other* query (a text
    identical to another still scores 1.0 with it, never with itself).
    """
    against_self = pool is None
    # The index lends its tokenizer and vocabulary (one code point per token), numbered by frequency:
    # rapidfuzz compares code points below 256 through a table, about 3x faster than the rest.
    index = RougeLIndex(prefix_index=False)
    for text in [*queries, *(pool or ())]:
        index.add(text)
    index.renumber_by_frequency()
    q_encs = [index.encode_new(t) for t in queries]
    p_encs = q_encs if against_self else [index.encode_new(t) for t in pool or ()]
    if not q_encs or not p_encs or (against_self and len(q_encs) < 2):
        return [0.0] * len(q_encs)
    p_seqs = [e.seq for e in p_encs]
    p_lens = np.array([len(e.ids) for e in p_encs], dtype=np.float64)
    best = np.zeros(len(q_encs))
    size = max(1, min(256, _CELLS // len(p_encs)))
    starts = range(0, len(q_encs), size)
    for start in tqdm(starts, desc=desc, unit="block", delay=1.0, leave=False):
        block = q_encs[start : start + size]
        lcs = process.cdist(
            [e.seq for e in block], p_seqs, scorer=LCSseq.similarity, dtype=np.int32, workers=-1
        )
        m = np.array([len(e.ids) for e in block], dtype=np.float64)[:, None]
        f = rouge_f_many(lcs, m, p_lens[None, :])
        if against_self:
            rows = np.arange(len(block))
            f[rows, start + rows] = -1.0  # never its own nearest neighbour
        best[start : start + len(block)] = f.max(axis=1)
    return [float(x) for x in best]


def words(text: str) -> int:
    """Whitespace-separated words: the unit every length in the report is counted in."""
    return len(text.split())


@dataclass(frozen=True)
class Measured:
    """The per-item values the summaries and the figures are made of."""

    rouge_vs_seed: list[float]  # per instruction: F against its most similar seed
    rouge_vs_kept: list[float]  # per instruction: F against its most similar other kept instruction
    instruction_words: list[int]  # per instruction
    input_words: list[int]  # per row (an instance)
    output_words: list[int]  # per row
    parses: list[Parse] | None  # per instruction: (root verb, direct object); None when not parsed


def measure(records: Sequence[Record], seeds: Seeds, parses: Sequence[Parse] | None = None) -> Measured:
    texts = [r.instruction for r in records]
    rows = [i for r in records for i in r.instances]
    return Measured(
        # no seeds (a seed file that could not be read): no scores, rather than a misleading 0 for each
        rouge_vs_seed=nearest_rouge(texts, [s.instruction for s in seeds], desc="ROUGE-L vs seeds")
        if seeds
        else [],
        rouge_vs_kept=nearest_rouge(texts, desc="ROUGE-L vs kept"),
        instruction_words=[words(t) for t in texts],
        input_words=[words(i.input) for i in rows],
        output_words=[words(i.output) for i in rows],
        parses=None if parses is None else list(parses),
    )


# -- summaries -------------------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float] | None:
    """n, mean, median, 10th and 90th percentiles (numpy's linear interpolation), min and max."""
    if not values:
        return None
    a = np.asarray(values, dtype=np.float64)
    stats = {
        "mean": a.mean(),
        "median": np.median(a),
        "p10": np.percentile(a, 10),
        "p90": np.percentile(a, 90),
        "min": a.min(),
        "max": a.max(),
    }
    return {"n": len(a), **{k: round(float(v), 4) for k, v in stats.items()}}


def rouge_histogram(scores: Sequence[float]) -> list[int]:
    """Counts in ROUGE_BINS equal bins over [0, 1] (the last bin holds 1.0)."""
    counts, _ = np.histogram(np.asarray(scores, dtype=np.float64), bins=ROUGE_BINS, range=(0.0, 1.0))
    return [int(c) for c in counts]


def tokens(text: str) -> list[str]:
    """Lowercased word tokens (`\\w+`) for distinct-n: punctuation is not a token."""
    return _WORD.findall(text.lower())


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct n-grams over all n-grams of the texts (Li et al. 2016); n-grams never cross texts."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        toks = tokens(text)
        grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def filter_drops(filters: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, Any]]:
    """stats.json's per-filter counters as {label: {total, kept, dropped, reasons: {reason: n}}}.

    Only the `dropped_<reason>` counters are reasons; a filter's other counters (the verifier's
    verdicts, say) are not drops.
    """
    out: dict[str, dict[str, Any]] = {}
    for label, c in filters.items():
        reasons = {k.removeprefix("dropped_"): int(v) for k, v in c.items() if k.startswith("dropped_") and v}
        out[label] = {
            "total": int(c.get("total", 0)),
            "kept": int(c.get("kept", 0)),
            "dropped": int(c.get("dropped", 0)),
            "reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
    return out


def teacher_cost(stats: Mapping[str, Any], rows: int) -> dict[str, Any]:
    """Teacher tokens and estimated cost, in all and per kept row (None without rows)."""
    t = stats.get("teacher", {})
    prompt, completion = int(t.get("prompt_tokens", 0)), int(t.get("completion_tokens", 0))
    cost = float(stats.get("cost_estimate_usd", 0.0))
    return {
        "requests": int(t.get("requests", 0)),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "tokens": prompt + completion,
        "cost_usd": cost,
        "tokens_per_row": round((prompt + completion) / rows, 2) if rows else None,
        "cost_per_row_usd": round(cost / rows, 8) if rows else None,
        # a routed run's teachers, each with its own tokens and cost (stats.json "teachers")
        "teachers": {
            name: {
                "tokens": int(a.get("prompt_tokens", 0)) + int(a.get("completion_tokens", 0)),
                "cost_usd": float(a.get("cost_usd", 0.0)),
            }
            for name, a in stats.get("teachers", {}).items()
            if a.get("requests")
        },
    }


def verification(stats: Mapping[str, Any], records: Sequence[Record]) -> dict[str, Any] | None:
    """The domain verifier's pass rate over the teacher's answers (stats.json's "domain"), and the
    verdicts on the kept records; None when no domain ran."""
    domain = stats.get("domain")
    if not domain:
        return None
    v = domain["verification"]
    failed, unverifiable = v.get("failed", {}), v.get("unverifiable", {})
    verified = int(v.get("verified", 0))
    checked = verified + sum(failed.values()) + sum(unverifiable.values())
    kept = Counter(r.verification.verdict for r in records if r.verification is not None)
    return {
        "domain": domain.get("name"),
        "method": domain.get("method"),
        "checked": checked,
        "verified": verified,
        "failed": dict(failed),
        "unverifiable": dict(unverifiable),
        "repaired": int(v.get("repaired", 0)),
        "pass_rate": round(verified / checked, 4) if checked else None,
        "kept_verdicts": dict(sorted(kept.items())),
    }


SCORE_KINDS = ("complexity", "quality")


def score_counts(records: Sequence[Record]) -> dict[int, dict[str, dict[int, int]]]:
    """Evolved records' judge scores: {round: {"complexity"|"quality": {score: count}}}, rounds sorted."""
    out: dict[int, dict[str, Counter[int]]] = {}
    for r in records:
        for kind in SCORE_KINDS:
            if kind in r.scores:
                out.setdefault(r.round, {k: Counter() for k in SCORE_KINDS})[kind][round(r.scores[kind])] += 1
    return {rnd: {k: dict(sorted(c.items())) for k, c in kinds.items()} for rnd, kinds in sorted(out.items())}


def _mean_score(counts: Mapping[int, int]) -> float | None:
    n = sum(counts.values())
    return round(sum(s * c for s, c in counts.items()) / n, 4) if n else None


# -- the one table ----------------------------------------------------------------------------------


def metrics(
    records: Sequence[Record],
    seeds: Seeds,
    stats: Mapping[str, Any],
    *,
    parses: Sequence[Parse] | None = None,
    measured: Measured | None = None,
    downstream: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every metric of one dataset (a run's, or a variant's), as a JSON-ready dict.

    `parses`: each record's (root verb, direct object) from `verbs.root_verb_objects`; without them the
    verb counts are None. `measured`: the per-item values, when the caller computed them already
    (for the figures). `downstream`: the fine-tuning stage's scores, passed through.
    """
    m = measured or measure(records, seeds, parses)
    rows = sum(len(r.instances) for r in records)
    texts = [r.instruction for r in records]
    verbs, pairs = verb_counts(m.parses) if m.parses is not None else (None, None)
    scores = score_counts(records)
    return {
        "kept": {"instructions": len(records), "rows": rows},
        "drops": filter_drops(stats.get("filters", {})),
        "diversity": {
            "rouge_vs_seed": summary(m.rouge_vs_seed),
            "rouge_vs_seed_histogram": rouge_histogram(m.rouge_vs_seed),
            "rouge_vs_kept": summary(m.rouge_vs_kept if len(records) > 1 else []),
            "rouge_vs_kept_histogram": rouge_histogram(m.rouge_vs_kept if len(records) > 1 else []),
            "distinct_1": round(distinct_n(texts, 1), 4),
            "distinct_2": round(distinct_n(texts, 2), 4),
            "root_verbs": None if verbs is None else len(verbs),
            "verb_object_pairs": None if pairs is None else len(pairs),
            # the personas the kept instructions were written for (--personas; 0 without)
            "personas": len({r.persona for r in records if r.persona}),
        },
        "lengths": {
            "instruction_words": summary(m.instruction_words),
            "input_words": summary(m.input_words),
            "output_words": summary(m.output_words),
            "empty_inputs": sum(1 for n in m.input_words if n == 0),
        },
        "teacher": teacher_cost(stats, rows),
        "verification": verification(stats, records),
        "evolve": {
            str(rnd): {
                "counts": kinds,
                **{f"mean_{k}": _mean_score(kinds[k]) for k in SCORE_KINDS},
            }
            for rnd, kinds in scores.items()
        }
        or None,
        "downstream": dict(downstream) if downstream else None,
    }
