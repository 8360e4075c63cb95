"""Prompts are exactly what the profiles say; parsers read the teacher's text the way the originals did."""

from generator.profiles import ALPACA, SELF_INSTRUCT
from generator.records import Instance, Record, as_example
from generator.tasks.instances import ClassifyTask, InstancesTask, parse_input_first, parse_output_first
from generator.tasks.propose import AlpacaPropose, ProposeRow, SelfInstructPropose
from generator.teachers.base import TeacherResponse


def rec(i: int, text: str, **kw) -> Record:
    return Record(id=f"seed:{i}", instruction=text, origin="seed", **kw)


EXAMPLES = [as_example(rec(i, f"Task number {i}  with   spaces:")) for i in range(8)]


def test_self_instruct_prompt_is_a_numbered_list_ending_in_the_next_number():
    task = SelfInstructPropose(SELF_INSTRUCT.propose)
    request = task.prompt(ProposeRow(round=0, index=0, examples=EXAMPLES, seed=7))
    assert request.kind == "completion"
    assert request.prompt is not None
    lines = request.prompt.splitlines()
    assert lines[1] == "1. Task number 0 with spaces"  # whitespace collapsed, trailing ':' stripped
    assert lines[8] == "8. Task number 7 with spaces"
    assert lines[-1] == "9."
    p = request.params
    assert (p.temperature, p.top_p, p.presence_penalty, p.seed) == (0.7, 0.5, 2.0, 7)
    assert p.stop == ("\n\n", "\n16", "16.", "16 .")


def test_self_instruct_parse_splits_numbered_items_and_drops_truncated():
    task = SelfInstructPropose(SELF_INSTRUCT.propose)
    row = ProposeRow(round=3, index=2, examples=EXAMPLES)
    text = " write a haiku about rain.\n10. Name three   prime numbers.\n11 . Sort the list."
    items = task.parse(row, TeacherResponse(text=text))
    assert [i.instruction for i in items] == [
        "Write a haiku about rain.",
        "Name three prime numbers.",
        "Sort the list.",
    ]
    assert (
        items[0].id == "r3-p2-0" and items[0].round == 3 and items[0].parent_ids == [e.id for e in EXAMPLES]
    )
    assert task.parse(row, TeacherResponse(text=text, finish_reason="length")) == []


def test_chat_api_sends_the_same_text_as_a_user_message():
    task = SelfInstructPropose(SELF_INSTRUCT.propose, api="chat")
    request = task.prompt(ProposeRow(round=0, index=0, examples=EXAMPLES))
    assert request.kind == "chat" and request.messages[-1][0] == "user"
    assert request.messages[-1][1].endswith("\n9.")


def test_alpaca_prompt_and_parse():
    seeds = [
        as_example(rec(i, f"Seed {i}", instances=[Instance(input="" if i else "in", output=f"out {i}")]))
        for i in range(3)
    ]
    task = AlpacaPropose(ALPACA.propose, tasks_per_request=20)
    request = task.prompt(ProposeRow(round=0, index=0, examples=seeds))
    assert request.prompt is not None
    assert "set of 20 varied task instructions" in request.prompt
    assert "1. Input:\nin\n1. Output:\nout 0" in request.prompt
    assert "2. Input:\n<noinput>" in request.prompt
    assert request.prompt.endswith("###\n4. Instruction:")
    assert request.params.temperature == 1.0
    text = (
        " Give a synonym for happy.\n4. Input:\n<noinput>\n4. Output:\nJoyful\n###\n"
        "5. Instruction: Add the numbers.\n5. Input:\n2 and 3\n5. Output:\n5\n###\n"
        "6. Instruction: Broken item without parts\n###\n7. Instruction: Cut"
    )
    items = task.parse(
        ProposeRow(round=1, index=0, examples=seeds), TeacherResponse(text=text, finish_reason="length")
    )
    assert [(i.instruction, i.instances[0].input, i.instances[0].output) for i in items] == [
        ("Give a synonym for happy.", "", "Joyful"),
        ("Add the numbers.", "2 and 3", "5"),
    ]


def test_classify_prompt_and_answers():
    task = ClassifyTask(SELF_INSTRUCT.classify)  # type: ignore[arg-type]
    r = rec(0, "Is the review positive or negative?")
    assert task.prompt(r).prompt.endswith("Task: Is the review positive or negative?\nIs it classification?")  # type: ignore[union-attr]
    assert task.parse(r, TeacherResponse(text=" Yes")) is True
    assert task.parse(r, TeacherResponse(text=" no.")) is False
    assert task.parse(r, TeacherResponse(text=" maybe")) is None


def test_instances_prompt_is_output_first_for_classification_only():
    task = InstancesTask(SELF_INSTRUCT.instances, max_instances=5)  # type: ignore[arg-type]
    clf = task.prompt(rec(0, "Label the tweet as angry or calm.", is_classification=True)).prompt
    gen = task.prompt(rec(1, "Write a limerick about cats.", is_classification=False)).prompt
    assert clf is not None and gen is not None
    assert "first write the label" in clf and clf.endswith("Task: Label the tweet as angry or calm.\n")
    assert gen.endswith("Task: Write a limerick about cats.\nExample 1\n")


def test_parse_input_first_and_output_first():
    text = (
        "Input: 2 + 2\nOutput: 4\nExample 2\nInput:\nOutput: 7\nExample 3\nInput: no output here\nTask: next"
    )
    assert parse_input_first(text) == [Instance(input="2 + 2", output="4"), Instance(input="", output="7")]
    text = "Class label: Angry\nTweet: I hate waiting!\nClass label: Calm\nTweet: Lovely day.\nTask: other"
    assert parse_output_first(text) == [
        Instance(input="Tweet: I hate waiting!", output="Angry"),
        Instance(input="Tweet: Lovely day.", output="Calm"),
    ]


def test_instances_drop_the_last_when_truncated_and_cap_at_max():
    task = InstancesTask(SELF_INSTRUCT.instances, max_instances=2)  # type: ignore[arg-type]
    r = rec(0, "Add.", is_classification=False)
    text = "Input: a\nOutput: 1\nExample 2\nInput: b\nOutput: 2\nExample 3\nInput: c\nOutput: 3"
    assert [i.output for i in task.parse(r, TeacherResponse(text=text))] == ["1", "2"]
    assert [
        i.output
        for i in task.parse(
            r,
            TeacherResponse(
                text="Input: a\nOutput: 1\nExample 2\nInput: b\nOutput: 2", finish_reason="length"
            ),
        )
    ] == ["1"]
