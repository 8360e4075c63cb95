"""The eliminator: each rule drops exactly its own cases, with its own reason, and keeps near-misses."""

from __future__ import annotations

import pytest

from filters.base import REGISTRY, build_filters
from filters.quality import ScoreFilter
from generator.profiles import ELIMINATOR
from generator.records import Instance, Record

PARENT = "Explain how tides work."
GOOD_ANSWER = "Tides are the regular rise and fall of the sea, driven mostly by the Moon's gravity."


def item(
    instruction: str = "Explain how tides work, and say why there are two high tides a day.",
    *,
    parent: str = PARENT,
    answer: str = GOOD_ANSWER,
    equal: bool | None = False,
) -> Record:
    return Record(
        id="e1-x",
        instruction=instruction,
        origin="evol:deepen",
        round=1,
        instances=[Instance(output=answer)],
        parent_instruction=parent,
        equal_to_parent=equal,
    )


LIST_13 = "\n".join(f"- item {i}" for i in range(13))

# rule -> (reason, items it must drop, near-misses it must keep)
CASES: dict[str, tuple[str, list[Record], list[Record]]] = {
    "evol_unchanged": (
        "unchanged",
        [item(PARENT), item("  explain how TIDES work "), item("Explain how tides work")],
        [item("Explain how tides work on Mars."), item("Explain how the tides work.")],
    ),
    "evol_prompt_leak": (
        "prompt_leak",
        [
            item("#Rewritten Prompt#: Explain how tides work on Mars."),
            item("Rewrite the given prompt so it covers tides on Mars."),
            item("Explain tides. (This is the new  prompt.)"),
            item("In the original prompt, tides were explained; now cover Mars."),
        ],
        [
            item("Write a prompt for an image model that shows tides."),
            item("Explain how a prompt response in psychology experiments works."),
        ],
    ),
    "evol_too_many_newlines": (
        "too_many_newlines",
        [item("tides\n\n\nmoon\n\n\nsun"), item("a b\n\n\n\n\n")],
        [item("Explain tides.\n\nUse the table:\n| hour | height |\n| 1 | 2.3 m |")],
    ),
    "evol_too_many_items": (
        "too_many_list_items",
        [
            item(LIST_13),
            item("Rank these:\n" + LIST_13),
            item("\n".join(f"{i}. step {i}" for i in range(1, 13))),
        ],
        [
            item("Rank these:\n" + "\n".join(f"- item {i}" for i in range(10))),  # 10 is not more than 10
            item(
                "Rank these tide tables.\n" + LIST_13 + "\nThen explain the order you chose in a paragraph."
            ),
        ],
    ),
    "evol_assistant_boilerplate": (
        "assistant_boilerplate",
        [
            item("As an AI, I would explain tides like this."),
            item("Sure! How can I assist you with tides today?"),
            item("I'm sorry, but I cannot rewrite this prompt."),
            item("I’m sorry, but that is not possible."),
        ],
        [
            item("Design an AI assistant that explains tides to sailors."),
            item("Write an apology letter that begins with 'I'm sorry' for a missed tide."),
            # the phrase was in the original: content, not boilerplate
            item(
                "Explain, as an AI tutor would, how tides work.",
                parent="Explain, as an AI tutor would, tides.",
            ),
        ],
    ),
    "evol_no_gain": (
        "no_information_gain",
        [item(equal=True)],
        [item(equal=False), item(equal=None)],  # no verdict (unreadable): kept
    ),
    "evol_hard_to_answer": (
        "hard_to_answer",
        [item(answer="Sorry, I can't help with that."), item(answer="I am SORRY. " + "word " * 70)],
        [
            item(answer="Sorry for the long answer: " + "tide " * 80),  # sorry, but 80+ words
            item(answer="I cannot say."),  # short, but no "sorry"
            item(answer="The sorrowful sea rises twice daily."),  # "sorrowful" is not "sorry"
        ],
    ),
    "evol_empty_answer": (
        "empty_answer",
        [item(answer=""), item(answer="..."), item(answer="It is what it is."), item(answer="No, not that.")],
        [item(answer="Paris."), item(answer="42"), item(answer="It is the Moon.")],
    ),
}


def test_defaults_are_every_rule_cheapest_first():
    names = [s.name for s in ELIMINATOR]
    assert set(names) == set(CASES)
    order = ["instruction", "verdict", "answer"]
    phases = [f.phase for f in build_filters(ELIMINATOR)]
    assert phases == sorted(phases, key=order.index)
    assert all(REGISTRY[name].name == name for name in names)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_each_rule_drops_its_cases_with_its_reason(rule: str):
    reason, drops, keeps = CASES[rule]
    [f] = build_filters([{"name": rule}])
    for record in drops:
        assert f.apply(record) == (False, reason), record.instruction
    for record in keeps:
        assert f.apply(record) == (True, None), record.instruction
    assert f.stats["dropped"] == len(drops) and f.stats[f"dropped_{reason}"] == len(drops)
    assert f.stats["kept"] == len(keeps)


@pytest.mark.parametrize("rule", sorted(CASES))
def test_no_other_rule_drops_a_rules_cases(rule: str):
    _, drops, keeps = CASES[rule]
    others = build_filters([{"name": name} for name in CASES if name != rule])
    for record in [*drops, *keeps]:
        assert [f.name for f in others if not f.apply(record)[0]] == [], record


def test_rules_take_parameters():
    [short] = build_filters([{"name": "evol_hard_to_answer", "params": {"max_words": 5}}])
    assert short.apply(item(answer="Sorry, " + "word " * 6))[0]
    [items] = build_filters([{"name": "evol_too_many_items", "params": {"max_items": 2}}])
    assert not items.apply(item("- a\n- b\n- c"))[0]
    [leak] = build_filters([{"name": "evol_prompt_leak", "params": {"phrases": ["tides"]}}])
    assert not leak.apply(item())[0]


def scored(i: int, quality: float | None, complexity: float = 3.0) -> Record:
    scores = {"complexity": complexity} if quality is None else {"complexity": complexity, "quality": quality}
    return Record(id=f"e1-{i}", instruction=f"task {i}", origin="evol:deepen", scores=scores)


def test_score_threshold_keeps_the_threshold_itself():
    f = ScoreFilter(key="quality", min_score=4)
    assert f.apply(scored(0, 4.0)) == (True, None)
    assert f.apply(scored(1, 3.0)) == (False, "below_threshold")
    assert f.apply(scored(2, None)) == (False, "unscored")
    assert ScoreFilter(key="quality", min_score=4, keep_unscored=True).apply(scored(3, None))[0]


def test_top_fraction_keeps_the_best_of_the_batch_ties_in_order():
    batch = [scored(0, 2.0), scored(1, 5.0), scored(2, 4.0), scored(3, 5.0), scored(4, 4.0)]
    f = ScoreFilter(key="quality", top_fraction=0.6)  # ceil(0.6 * 5) = 3
    kept = [r.id for r in f.apply_batch(batch)]
    assert kept == ["e1-1", "e1-2", "e1-3"]  # 5, 5, then the first of the two 4s
    assert f.stats["dropped_below_top_fraction"] == 2


def test_deita_key_and_bad_parameters():
    f = ScoreFilter(key="deita", min_score=12)
    record = scored(0, 4.0)
    record.scores["deita"] = 12.0
    assert f.apply(record)[0]
    with pytest.raises(TypeError):
        ScoreFilter(key="fluency", min_score=3)
    with pytest.raises(TypeError):
        ScoreFilter(key="quality")
    with pytest.raises(TypeError):
        ScoreFilter(key="quality", top_fraction=1.5)
    with pytest.raises(RuntimeError, match="filter_batch"):
        ScoreFilter(key="quality", top_fraction=0.5).apply(scored(0, 5.0))
