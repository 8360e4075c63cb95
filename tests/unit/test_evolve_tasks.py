"""Evol-Instruct tasks: the exact prompt each op builds, robust parsing, the judges' readers."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from generator.records import Instance, Record
from generator.tasks.answer import AnswerRow, AnswerTask
from generator.tasks.base import template
from generator.tasks.judge import EqualityJudge, ScoreTask, parse_equality, parse_score
from generator.tasks.rewrite import (
    CODE_OPS,
    DATA_FORMATS,
    GENERAL_OPS,
    EvolveRow,
    EvolveTask,
    draw_op,
    methods,
    parse_evolved,
    prompt_text,
)
from generator.teachers.base import SamplingParams, TeacherResponse

PARAMS = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=2048)
ROOT = Record(
    id="seed:a1",
    instruction="Summarize the text.",
    origin="seed",
    root_id="seed:a1",
    instances=[Instance(input="Tides rise twice a day.", output="Tides.")],
)


def row(op: str, **kw: object) -> EvolveRow:
    return EvolveRow(parent=ROOT, op=op, round=2, seed=7, **kw)  # type: ignore[arg-type]


def test_every_op_has_a_method_or_a_template_of_its_own():
    assert set(methods()) == (set(GENERAL_OPS) | set(CODE_OPS)) - {"breadth", "complicate_input"}


@pytest.mark.parametrize("op", ["add_constraints", "deepen", "concretize", "increase_reasoning"])
def test_depth_ops_put_their_method_into_the_depth_template(op: str):
    request = EvolveTask(PARAMS).prompt(row(op))
    text = request.messages[-1][1]
    assert request.kind == "chat" and request.params.seed == 7 and request.params.temperature == 1.0
    assert text == template("evolve_depth").format(method=methods()[op], prompt=prompt_text(ROOT))
    assert methods()[op] in text
    # the original comes with its input folded in (WizardLM's instruction + "\r\n" + input)
    assert "#Original Prompt#:\nSummarize the text.\nTides rise twice a day.\n\n#Rewritten Prompt#:" in text
    others = set(methods()) - {op}
    assert not any(methods()[o] in text for o in others)


@pytest.mark.parametrize("fmt", DATA_FORMATS)
def test_complicate_input_asks_for_data_in_the_drawn_format(fmt: str):
    text = EvolveTask(PARAMS).prompt(row("complicate_input", data_format=fmt)).text()
    assert f"comes with input data written as {fmt}:" in text
    assert text.endswith("#Rewritten Prompt#:")


def test_breadth_asks_for_a_rarer_prompt_in_the_same_domain():
    text = EvolveTask(PARAMS).prompt(row("breadth")).text()
    assert "same domain about something rarer" in text and text.endswith("#New Prompt#:")
    assert not any(m in text for m in methods().values())


@pytest.mark.parametrize("op", CODE_OPS)
def test_code_ops_use_the_wizardcoder_template(op: str):
    text = EvolveTask(PARAMS).prompt(row(op)).text()
    assert text.startswith("You make programming tasks a little harder.")
    assert methods()[op] in text and text.endswith("#Rewritten Prompt#:")


def test_completion_api_sends_the_same_text_as_a_prompt():
    chat = EvolveTask(PARAMS, api="chat").prompt(row("deepen"))
    completion = EvolveTask(PARAMS, api="completion").prompt(row("deepen"))
    assert completion.kind == "completion" and completion.prompt == chat.text()


def test_parse_builds_the_child_with_its_lineage():
    child = EvolveTask(PARAMS).parse(row("deepen"), TeacherResponse(text="  Summarize the text in 3 steps. "))
    assert child is not None
    assert child.id == "e2-seed:a1" and child.instruction == "Summarize the text in 3 steps."
    assert (child.origin, child.op, child.round) == ("evol:deepen", "deepen", 2)
    assert child.parent_ids == ["seed:a1"] and child.root_id == "seed:a1"
    assert child.parent_instruction == "Summarize the text.\nTides rise twice a day."
    grandchild = EvolveTask(PARAMS).parse(
        EvolveRow(parent=child, op="breadth", round=3), TeacherResponse(text="Explain neap tides.")
    )
    assert grandchild is not None
    assert grandchild.id == "e3-e2-seed:a1" and grandchild.root_id == "seed:a1"
    assert grandchild.parent_ids == ["e2-seed:a1"]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("#Rewritten Prompt#:\nList three causes of tides.", "List three causes of tides."),
        ("#Original Prompt#: x\n#Rewritten Prompt#: List three causes.", "List three causes."),
        ("#New Prompt#: Explain rogue waves.", "Explain rogue waves."),
        ("Rewritten prompt: Explain rogue waves.", "Explain rogue waves."),
        ("Here is the new prompt: Explain rogue waves.", "Explain rogue waves."),
        ('"Explain rogue waves."', "Explain rogue waves."),
        ("Use this table:\n| a | b |\n| 1 | 2 |", "Use this table:\n| a | b |\n| 1 | 2 |"),  # lines kept
        ('Say "hi" and "bye".', 'Say "hi" and "bye".'),  # inner quotes are content
        ("   ", None),
        ("#Rewritten Prompt#:", None),
    ],
)
def test_parse_evolved_strips_echoed_labels_only(response: str, expected: str | None):
    assert parse_evolved(response) == expected


def test_a_truncated_or_empty_rewrite_is_no_instruction():
    task = EvolveTask(PARAMS)
    assert task.parse(row("deepen"), TeacherResponse(text="Summarize the", finish_reason="length")) is None
    assert task.parse(row("deepen"), TeacherResponse(text="\n")) is None


def test_draw_op_follows_the_weights_and_is_seeded():
    weights = {"add_constraints": 3.0, "breadth": 1.0, "deepen": 0.0}
    draws = Counter(draw_op(random.Random(i), weights, "general") for i in range(2000))
    assert set(draws) == {"add_constraints", "breadth"}  # weight 0 and unlisted ops are never drawn
    assert 2.5 < draws["add_constraints"] / draws["breadth"] < 3.6
    reordered = {"breadth": 1.0, "deepen": 0.0, "add_constraints": 3.0}
    assert [draw_op(random.Random(i), weights, "general") for i in range(50)] == [
        draw_op(random.Random(i), reordered, "general") for i in range(50)
    ]


def test_answer_task_sends_the_instruction_and_drops_cut_answers():
    evolved = Record(id="e1-x", instruction="Explain neap tides.", origin="evol:breadth", round=1)
    task = AnswerTask(PARAMS)
    request = task.prompt(AnswerRow(record=evolved, seed=3))
    assert request.messages == (("user", "Explain neap tides."),) and request.params.seed == 3
    assert (
        "### Instruction:\nExplain neap tides.\n\n### Response:"
        in AnswerTask(PARAMS, api="completion").prompt(AnswerRow(record=evolved)).text()
    )
    assert (
        task.parse(AnswerRow(record=evolved), TeacherResponse(text=" Neap tides are... "))
        == "Neap tides are..."
    )
    assert task.parse(AnswerRow(record=evolved), TeacherResponse(text="Neap", finish_reason="length")) is None


def test_equality_judge_compares_parent_and_child():
    child = Record(
        id="e1-x",
        instruction="Summarize the text in 3 steps.",
        origin="evol:deepen",
        parent_instruction="Summarize the text.",
    )
    text = EqualityJudge(SamplingParams(temperature=0)).prompt(child).text()
    assert "First prompt:\nSummarize the text.\n\nSecond prompt:\nSummarize the text in 3 steps." in text
    assert text.endswith("Verdict:")


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("Equal", True),
        (" equal.", True),
        ("They are the same.", True),
        ("Not Equal", False),
        ("NOT EQUAL", False),
        ("not the same", False),
        ("Unequal", False),
        ("They are different", False),
        ("I cannot tell", None),
        ("", None),
    ],
)
def test_parse_equality(answer: str, verdict: bool | None):
    assert parse_equality(answer) is verdict


@pytest.mark.parametrize(
    ("answer", "score"),
    [("5", 5.0), (" 3.", 3.0), ("Score: 6/6", 6.0), ("1", 1.0), ("0", None), ("7", None), ("high", None)],
)
def test_parse_score_reads_the_1_to_6_scale(answer: str, score: float | None):
    assert parse_score(answer) == score


def test_score_prompts():
    item = Record(
        id="e1-x",
        instruction="Explain neap tides.",
        origin="evol:breadth",
        instances=[Instance(output="Moon.")],
    )
    complexity = ScoreTask("complexity", SamplingParams(temperature=0)).prompt(item).text()
    quality = ScoreTask("quality", SamplingParams(temperature=0)).prompt(item).text()
    assert "Instruction:\nExplain neap tides." in complexity and "Moon." not in complexity
    assert complexity.endswith("Complexity score (1-6):")
    assert "Response:\nMoon." in quality and quality.endswith("Quality score (1-6):")
