"""Classification identification and instance generation (Self-Instruct stages 2 and 3).

Classification tasks get instances *output first* (label, then an input for it), which avoids the
label imbalance the original paper saw when inputs came first; other tasks get *input first*.
"""

from __future__ import annotations

import re
from typing import Protocol

from generator.records import Instance, TaskRow
from generator.tasks.base import collapse_ws, request_for, template
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse


class AboutTask(Protocol):
    """What the classify and instance prompts read of a task: a `TaskRow`, or a `Record`."""

    @property
    def instruction(self) -> str: ...

    @property
    def is_classification(self) -> bool | None: ...


class ClassifyTask:
    """Yes/No: is this a classification task with a finite label set?"""

    stage = "classify"

    def __init__(self, params: SamplingParams, api: str = "completion") -> None:
        self.params, self.api = params, api

    def prompt(self, row: AboutTask) -> TeacherRequest:
        text = template("classify").format(instruction=collapse_ws(row.instruction))
        return request_for(self.api, text, self.params)

    def parse(self, row: AboutTask, response: TeacherResponse) -> bool | None:
        answer = response.text.strip().lower()
        if answer.startswith("yes"):
            return True
        if answer.startswith("no"):
            return False
        return None  # unreadable: the loop treats it as "not classification" and counts it


def with_classification(row: TaskRow, is_classification: bool | None) -> TaskRow:
    """The row for the instance prompt, given the classify answer (unreadable counts as "no")."""
    return row._replace(is_classification=bool(is_classification))


class InstancesTask:
    """Write up to `max_instances` input/output examples for one instruction."""

    stage = "instances"

    def __init__(self, params: SamplingParams, max_instances: int = 5, api: str = "completion") -> None:
        self.params, self.max_instances, self.api = params, max_instances, api

    def prompt(self, row: AboutTask) -> TeacherRequest:
        name = "instances_output_first" if row.is_classification else "instances_input_first"
        text = template(name).format(instruction=collapse_ws(row.instruction))
        # Open the first example so the teacher starts writing one right away.
        text += "\n" if row.is_classification else "\nExample 1\n"
        return request_for(self.api, text, self.params)

    def parse(self, row: AboutTask, response: TeacherResponse) -> list[Instance]:
        parse = parse_output_first if row.is_classification else parse_input_first
        instances = parse(response.text)
        if response.truncated and instances:  # the last example may be cut short
            instances = instances[:-1]
        return instances[: self.max_instances]


def parse_input_first(text: str) -> list[Instance]:
    """`Input: ... Output: ...` blocks separated by `Example N` headers."""
    out = []
    for block in re.split(r"Example\s?\d*\.?", text):
        block = block.split("\nTask:")[0]  # the teacher may start a new task: stop there
        parts = re.split(r"Output\s*\d*\s*:", block, maxsplit=1)
        if len(parts) != 2:
            continue
        task_input = re.sub(r"^\s*Input\s*\d*\s*:", "", parts[0]).strip()
        out.append(Instance(input=task_input, output=parts[1].strip()))
    return out


def parse_output_first(text: str) -> list[Instance]:
    """`Class label: X` followed by an input for that label."""
    out = []
    for block in text.split("Class label:")[1:]:
        block = block.split("\nTask:")[0]
        label, _, task_input = block.strip().partition("\n")
        if label.strip():
            out.append(Instance(input=task_input.strip(), output=label.strip()))
    return out
