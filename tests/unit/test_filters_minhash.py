"""MinHash LSH dedup: standalone and as a pre-pass verified by exact ROUGE-L; resume."""

from __future__ import annotations

import random

import pytest
from datasketch import MinHash
from rouge_score import rouge_scorer

from filters.minhash import MinHashFilter, MinHashIndex, MinHashRougeLFilter, shingles
from filters.rouge import RougeLIndex
from generator.records import Record
from tests.words import VOCAB

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rec(text: str) -> Record:
    return Record(id="x", instruction=text, origin="test")


def stream(n: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.4:
            words = rng.choice(out).split()
            words[rng.randrange(len(words))] = rng.choice(VOCAB)
            out.append(" ".join(words))
        else:
            out.append(" ".join(rng.choices(VOCAB, k=rng.randint(5, 10))))
    return out


def test_shingles() -> None:
    assert sorted(shingles("Write a POEM, a poem!")) == [b"a", b"poem", b"write"]
    assert sorted(shingles("a b c", ngram=2)) == [b"a b", b"b c"]
    assert shingles("a b", ngram=3) == [b"a b"]  # shorter than one n-gram: the whole text
    assert shingles("写诗") == [] and shingles("") == []
    assert sorted(shingles("Ab  c", "char", 2)) == [b" c", b"ab", b"b "]
    with pytest.raises(ValueError):
        shingles("x", "sentence")  # type: ignore[arg-type]


def test_signatures_are_those_of_minhash_bulk() -> None:
    index = MinHashIndex(num_perm=64, seed=5)
    texts = ["write a poem", "five tips for cats", "写诗"]
    sigs = index.signatures(texts)
    bulk = MinHash.bulk([shingles(t) for t in texts[:2]], num_perm=64, seed=5)
    assert [s.hashvalues.tolist() for s in sigs[:2] if s is not None] == [b.hashvalues.tolist() for b in bulk]
    assert sigs[2] is None


def test_standalone_drops_copies_and_keeps_unrelated_text() -> None:
    f = MinHashFilter(threshold=0.7)
    f.add(rec("Give me five tips for keeping cats happy at home"))
    copy = rec("give me five tips for keeping cats happy at home!")
    assert f.apply(copy) == (False, "minhash>0.7")
    assert copy.near_duplicate is not None
    assert (copy.near_duplicate.metric, copy.near_duplicate.score) == ("jaccard", 1.0)
    assert f.apply(rec("Explain the causes of summer rain in the tropics"))[0]
    assert f.apply(rec("写一首诗"))[0] and f.apply(rec("写一首诗"))[0]  # no shingles: never a duplicate
    assert len(f) == 4


def test_minhash_rouge_l_only_drops_what_rouge_l_drops() -> None:
    """Every drop is a real ROUGE-L > 0.7 pair; the only difference allowed is a missed candidate."""
    texts = stream(300)
    exact = RougeLIndex(0.7)
    f = MinHashRougeLFilter(threshold=0.7, lsh_threshold=0.3)
    pool: list[str] = []
    for t in texts:
        r = rec(t)
        kept, reason = f.apply(r)
        if not kept:
            assert reason == "rouge_l>0.7"
            assert r.near_duplicate is not None
            assert r.near_duplicate.text in pool
            assert SCORER.score(r.near_duplicate.text, t)["rougeL"].fmeasure > 0.7
        else:
            pool.append(t)
        exact.offer(t)
    # with a low LSH threshold the pre-pass finds nearly all of exact ROUGE-L's duplicates
    assert len(exact) <= len(f) <= len(exact) * 1.1


def test_index_survives_a_resume() -> None:
    texts = stream(240, seed=11)
    for make in (lambda: MinHashFilter(threshold=0.6), lambda: MinHashRougeLFilter(lsh_threshold=0.4)):
        whole = make()
        decisions = [whole.apply(rec(t))[0] for t in texts]
        first = make()
        head = [first.apply(rec(t))[0] for t in texts[:120]]
        resumed = make()
        resumed.add_many(rec(t) for t, ok in zip(texts[:120], head, strict=True) if ok)
        tail = [resumed.apply(rec(t))[0] for t in texts[120:]]
        assert head + tail == decisions
