"""The dedup benchmark's own methods: exact ROUGE-L (with and without stats), exhaustive LCS, MinHash.

Each takes the seed instructions and the stream and returns one keep/drop decision per stream item.
The slow baselines they are measured against are in dedup_baselines.py.
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.7


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


def minhash(seeds: list[str], stream: list[str], name: str = "minhash") -> list[bool]:
    from filters.base import build_dedup
    from generator.records import Record

    params = {"threshold": THRESHOLD} | (
        {"lsh_threshold": 0.5, "top_k": 0} if name == "minhash_rouge_l" else {}
    )
    (f,) = build_dedup([{"name": name, "params": params}])
    f.add_many(Record(id="seed", instruction=s, origin="seed") for s in seeds)
    return [f.apply(Record(id="c", instruction=t, origin="bench"))[0] for t in stream]
