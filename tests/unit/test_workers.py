"""A worker chains classify and instances per row: the second prompt follows the first answer."""

from __future__ import annotations

import asyncio

from generator.profiles import SELF_INSTRUCT
from generator.records import Record, as_task
from generator.tasks.instances import ClassifyTask, InstancesTask, with_classification
from generator.teachers.base import TeacherRequest
from generator.teachers.scripted import ScriptedTeacher
from generator.workers import Chain, Worker


def test_chain_feeds_each_classify_answer_into_that_rows_instance_prompt():
    prompts: list[str] = []

    def script(request: TeacherRequest) -> str:
        text = request.text()
        prompts.append(text)
        if text.rstrip().endswith("Is it classification?"):
            last_task = text.rsplit("Task:", 1)[1]
            return " Yes" if "sentiment" in last_task else " maybe"  # the second answer is unreadable
        if "Class label:" in text:
            return "Class label: Positive\nI loved it"
        return "\nInput: 2+2\nOutput: 4"

    chain = Chain(
        ClassifyTask(SELF_INSTRUCT.classify),
        InstancesTask(SELF_INSTRUCT.instances),
        with_classification,
    )
    records = [
        Record(id="a", instruction="Classify the sentiment of the review.", origin="self-instruct"),
        Record(id="b", instruction="Add the two numbers.", origin="self-instruct"),
    ]
    rows = [as_task(r) for r in records]
    worker = Worker(lambda: ScriptedTeacher(script))
    results = asyncio.run(worker.run_chain(chain, rows))

    assert [clf for (_, clf), _ in results] == [True, None]
    assert [[(i.input, i.output) for i in parsed] for _, (_, parsed) in results] == [
        [("I loved it", "Positive")],
        [("2+2", "4")],
    ]
    # each row's instance prompt went out after its own classify answer, and got its own kind
    asked = [(p.rstrip().endswith("Is it classification?"), p) for p in prompts]
    for instruction, output_first in [
        ("Classify the sentiment of the review.", True),
        ("Add the two numbers.", False),
    ]:
        [classify_at] = [
            i for i, (clf, p) in enumerate(asked) if clf and instruction in p.rsplit("Task:", 1)[1]
        ]
        [write_at] = [i for i, (clf, p) in enumerate(asked) if not clf and instruction in p]
        assert classify_at < write_at
        assert asked[write_at][1].endswith("Example 1\n") is not output_first
    assert rows[0].is_classification is None, "the caller's rows are not changed"
