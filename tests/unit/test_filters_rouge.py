"""The rouge_l filter as the pipeline uses it: preload, counting, reasons, stats, resume."""

from __future__ import annotations

import random

import pytest
from rouge_score import rouge_scorer

from filters.base import build_filters
from filters.rouge import RougeLIndex, top_k_rows
from filters.rouge_filter import RougeLFilter
from generator.records import Record, Similar
from tests.words import VOCAB

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
SEEDS = [
    "Write a poem about the sea.",
    "Give three tips for staying healthy.",
    "Translate the sentence into French.",
]


def rec(text: str, rid: str = "x") -> Record:
    return Record(id=rid, instruction=text, origin="test")


def annotate(f: RougeLFilter) -> None:
    """Give the records kept since the last call their neighbours, as the driver does with the pool's."""
    for item, most_similar, avg in f.neighbours():
        item.most_similar = [Similar(text=text, score=score) for text, score in most_similar]
        item.avg_similarity = avg


def test_preloaded_seeds_are_compared_but_not_counted() -> None:
    f = RougeLFilter()
    for i, s in enumerate(SEEDS):
        f.add(rec(s, f"seed:{i}"))
    assert len(f) == 3 and f.stats == {}
    dup = rec("Write a poem about the blue sea.")
    assert f.apply(dup) == (False, "rouge_l>0.7")
    assert dup.near_duplicate is not None
    assert dup.near_duplicate.text == SEEDS[0]
    assert dup.near_duplicate.score == SCORER.score(SEEDS[0], dup.instruction)["rougeL"].fmeasure
    assert (dup.near_duplicate.id, dup.near_duplicate.filter, dup.near_duplicate.metric) == (
        "seed:0",
        "rouge_l",
        "rouge_l",
    )
    new = rec("List the planets of the solar system in order.")
    assert f.apply(new) == (True, None)
    assert len(f) == 4
    assert f.stats == {"total": 2, "kept": 1, "dropped": 1, "dropped_rouge_l>0.7": 1}


def test_kept_record_gets_top_k_and_average_like_self_instruct() -> None:
    f = RougeLFilter(top_k=2)
    f.add_many(rec(s) for s in SEEDS)
    r = rec("Write three tips for the sea.")
    assert f.filter(r) is True
    assert r.most_similar == []  # scored later, in a batch, off the decision path
    annotate(f)
    scores = [SCORER.score(s, r.instruction)["rougeL"].fmeasure for s in SEEDS]
    assert [(s.text, s.score) for s in r.most_similar] == sorted(
        zip(SEEDS, scores, strict=True), key=lambda p: -p[1]
    )[:2]
    assert r.avg_similarity == pytest.approx(sum(scores) / 3)


def test_similarity_can_be_switched_off() -> None:
    f = RougeLFilter(similarity=False)
    f.add(rec(SEEDS[0]))
    r = rec("Name five rivers in Africa.")
    assert f.filter(r) is True
    annotate(f)
    assert r.most_similar == [] and r.avg_similarity is None


def test_threshold_is_a_parameter_and_the_reason_says_it() -> None:
    (f,) = build_filters([{"name": "rouge_l", "params": {"threshold": 0.5}}])
    f.apply(rec("Write a poem about the sea."))
    assert f.apply(rec("Write a story about the sea.")) == (False, "rouge_l>0.5")
    with pytest.raises(ValueError):
        RougeLFilter(threshold=1.5)


def test_non_ascii_text_has_no_tokens_and_is_always_kept() -> None:
    """rouge-score drops non-ASCII, so Chinese instructions score 0: the oracle keeps every one."""
    f = RougeLFilter()
    assert all(f.apply(rec("写一首关于大海的诗。"))[0] for _ in range(3))


def random_texts(seed: int, n: int) -> list[str]:
    """Short texts over a small vocabulary, so that many pairs land near the threshold."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(VOCAB[:15], k=rng.randint(3, 9))) for _ in range(n)]


def test_resume_rebuilds_the_same_index() -> None:
    stream = random_texts(7, 400)
    whole = RougeLFilter()
    whole.add_many(rec(s) for s in SEEDS)
    decisions = [whole.apply(rec(t))[0] for t in stream]

    first = RougeLFilter()
    first.add_many(rec(s) for s in SEEDS)
    head = [first.apply(rec(t))[0] for t in stream[:200]]
    accepted = [t for t, ok in zip(stream[:200], head, strict=True) if ok]
    resumed = RougeLFilter()  # a new process: seeds, then the accepted items in their order
    resumed.add_many(rec(s) for s in [*SEEDS, *accepted])
    tail = [resumed.apply(rec(t))[0] for t in stream[200:]]
    assert head + tail == decisions


def test_top_k_breaks_ties_by_pool_order() -> None:
    import numpy as np

    scores = np.array([0.2, 0.5, 0.5, 0.1, 0.5, 0.0])
    assert top_k_rows([scores], 2) == [[1, 2]]
    assert top_k_rows([scores], 4) == [[1, 2, 4, 0]]
    assert top_k_rows([scores], 10) == [[1, 2, 4, 0, 3, 5]]
    assert top_k_rows([scores], 0) == [[]]


def test_index_scores_and_candidates_api() -> None:
    index = RougeLIndex()
    for s in SEEDS:
        index.add(s)
    got = index.scores("Write a poem about the moon.")
    want = [SCORER.score(s, "Write a poem about the moon.")["rougeL"].fmeasure for s in SEEDS]
    assert got.tolist() == want
    assert index.scores("Write a poem about the moon.", [2, 0]).tolist() == [want[2], want[0]]
    match = index.best_of("Write a poem about the sea!", [1, 0])
    assert match is not None and match.position == 0 and match.score == 1.0
    assert index.best_of("Write a poem about the sea!", [1, 2]) is None


def test_more_distinct_tokens_than_code_points_stay_exact() -> None:
    """Token ids past U+10FFFF fall back to int lists, which rapidfuzz compares the same way."""
    index = RougeLIndex()
    index._vocab = dict.fromkeys((f"pad{i}" for i in range(0x10FFF0 - 0x800)), 0)  # a huge vocabulary
    texts = [f"alpha{i} beta{i} gamma{i} delta{i} shared words here" for i in range(8)]
    for t in texts:
        index.add(t)
    assert any(isinstance(s, list) for s in index._seqs)
    probe = "alpha3 beta3 gamma3 delta3 shared words here too"
    want = max(SCORER.score(t, probe)["rougeL"].fmeasure for t in texts)
    match = index.check(probe)
    assert match is not None and match.score == want and index.texts[match.position] == texts[3]


def test_top_k_rows_equals_sorting_each_row() -> None:
    """The batched ranking (a segment bound, then a sort of what passes it) gives each row what a full
    sort by (-value, column) gives, with ties, short rows and rows far longer than k."""
    import numpy as np

    rng = np.random.default_rng(3)
    for _ in range(300):
        rows = [rng.integers(0, 4, size=rng.integers(0, 90)) / 7 for _ in range(rng.integers(1, 6))]
        k = int(rng.integers(0, 12))
        expected = [sorted(range(len(r)), key=lambda j, r=r: (-r[j], j))[:k] for r in rows]
        assert top_k_rows(rows, k) == expected


def test_neighbours_ranked_early_when_nobody_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past a memory budget the rows are ranked at once and the results kept: the same neighbours
    come out, and a chunk ranked half-way still gives its later members theirs."""
    import filters.rouge_rows

    stream = random_texts(5, 120)

    def neighbours(batch_size: int) -> list[tuple[str, list[tuple[str, float]], float | None]]:
        f = RougeLFilter(chunk=16)
        f.add_many(rec(s) for s in SEEDS)
        out = []
        for start in range(0, len(stream), batch_size):
            batch = [rec(t) for t in stream[start : start + batch_size]]
            f.offer(batch)
        out += [(r.instruction, top, avg) for r, top, avg in f.neighbours()]
        return out

    expected = neighbours(40)
    monkeypatch.setattr(filters.rouge_rows, "_MAX_HELD", 1)
    early = neighbours(40)
    assert len(expected) > 10
    assert [(t, top) for t, top, _ in early] == [(t, top) for t, top, _ in expected]
    # the mean is summed in another order: equal to the last bits
    assert [avg for *_, avg in early] == pytest.approx([avg for *_, avg in expected], abs=1e-15)


def test_renumbering_by_frequency_keeps_every_score() -> None:
    """Ranking token ids by frequency (common tokens below code point 256, where rapidfuzz is
    fastest) relabels the pool without changing any LCS, and new texts encode with the new ids."""
    rng = random.Random(11)
    words = [f"w{i}" for i in range(600)]
    pool = [" ".join(rng.choices(words, weights=[1 / (i + 1) for i in range(600)], k=8)) for _ in range(300)]
    index = RougeLIndex(prefix_index=False)
    for text in pool:
        index.add(text)
    probe = " ".join(rng.choices(words, k=8))
    before = index.scores(probe).tolist()
    index.renumber_by_frequency()
    assert index.scores(probe).tolist() == before
    assert index._vocab["w0"] == 1  # the most frequent token
    assert index.scores(pool[0])[0] == 1.0  # a pool text still matches itself
    with pytest.raises(RuntimeError):
        RougeLIndex().renumber_by_frequency()
