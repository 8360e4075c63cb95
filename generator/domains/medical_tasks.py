"""The medical domain's teacher steps: propose a task, answer it from retrieved passages, judge support.

They run in worker actors, so each is a module-level class with plain attributes and needs nothing but
the item: the examples or the passage to propose from, and the retrieved passages to answer from, ride
in `item.facts` (`generator/domains/medical.py` puts them there). Wording is in
`generator/tasks/templates/medical_*.txt`.
"""

from __future__ import annotations

import re
from typing import Any

from generator.domains.medical_checks import cited_ids
from generator.records import Instance, Record
from generator.seeding import derive_seed
from generator.tasks.base import collapse_ws, request_for, template
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse

NOT_COVERED = "The references do not cover this question."
KIND_TEXT = {
    "patient_question": "patient question (a patient or carer asking in their own words)",
    "clinical_summary": "clinical summary (a clinician asking for a short, factual summary)",
    "drug_info": "drug information question (what a medicine is for, how it is taken, its cautions)",
    "triage": "triage question (symptoms described, asking how urgently to seek care and where)",
    "general": "medical question",
}


def needs_task(item: Record) -> bool:
    """Is this a placeholder the teacher must first write a task for?"""
    return bool((item.facts or {}).get("needs_task"))


def answer_of(item: Record) -> str:
    return item.instances[0].output if item.instances else ""


def retrieved(item: Record) -> list[dict[str, str]]:
    return list((item.facts or {}).get("passages") or [])


def has_citations(item: Record) -> bool:
    """Does the answer cite a passage it was shown? (Only such answers are worth the judge's call.)"""
    shown = {p["id"] for p in retrieved(item)}
    return any(pid in shown for pid in cited_ids(answer_of(item)))


def _seeded(params: SamplingParams, run_seed: int, step: str, item: Record) -> SamplingParams:
    return params.model_copy(update={"seed": derive_seed(run_seed, "medical", step, item.id)})


def _blocks(passages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"[{p['id']}] {p['title']}: {p['text']}" for p in passages) or "(none)"


# -- teacher steps (run in worker actors: module-level classes with plain attributes) -----------------

# A model often repeats the prompt's label ("New task:", "**Question:**") or quotes its answer.
_LABEL = re.compile(r"^(?:#+\s*)?(?:\*\*)?(?:new\s+)?(?:task|question)(?:\s*\d+)?\s*:(?:\*\*)?\s*", re.I)


class ProposeMedical:
    """One new task like the examples (same kind), or one question that the shown passage answers."""

    stage = "propose"

    def __init__(self, params: SamplingParams, api: str, seed: int) -> None:
        self.params, self.api, self.seed = params, api, seed

    def prompt(self, item: Record) -> TeacherRequest:
        facts = item.facts or {}
        if "passage" in facts:
            text = template("medical_propose_passage").format(passage=_blocks([facts["passage"]]))
        else:
            listed = "\n\n".join(f"Task {i}: {t.strip()}" for i, t in enumerate(facts["examples"], start=1))
            kind = KIND_TEXT.get(facts.get("kind", "general"), KIND_TEXT["general"])
            text = template("medical_propose").format(examples=listed, kind=kind)
        return request_for(self.api, text, _seeded(self.params, self.seed, self.stage, item))

    def parse(self, item: Record, response: TeacherResponse) -> list[Record] | None:
        if not response.ok or response.truncated:  # a question cut off mid-sentence cannot be answered
            return None
        task = _LABEL.sub("", response.text.strip(), count=1).strip().strip('"“”').strip()
        if not task:
            return None
        facts = item.facts or {}
        new: dict[str, Any] = {"kind": "patient_question" if "passage" in facts else facts.get("kind")}
        if "passage" in facts:
            new["source_passage"] = facts["passage"]["id"]
        return [item.model_copy(update={"instruction": task, "facts": new}, deep=True)]


class AnswerMedical:
    """An answer from the retrieved passages alone, every claim cited, or the not-covered sentence."""

    stage = "answer"

    def __init__(self, params: SamplingParams, api: str, seed: int) -> None:
        self.params, self.api, self.seed = params, api, seed

    def prompt(self, item: Record) -> TeacherRequest:
        text = template("medical_answer").format(
            passages=_blocks(retrieved(item)), not_covered=NOT_COVERED, instruction=item.instruction
        )
        return request_for(self.api, text, _seeded(self.params, self.seed, self.stage, item))

    def parse(self, item: Record, response: TeacherResponse) -> list[Record] | None:
        answer = response.text.strip()
        if not response.ok or response.truncated or not answer:
            return None
        return [item.model_copy(update={"instances": [Instance(input="", output=answer)]}, deep=True)]


_VERDICT_LABEL = re.compile(r"^[\s*_`>#-]*(?:verdict|answer|reply)?[\s*_`]*:?[\s*_`]*", re.I)


def parse_judge(text: str) -> dict[str, Any] | None:
    """{"supported": bool, "reason": str} from "Yes. ..." / "No, ..."; None when neither leads."""
    body = _VERDICT_LABEL.sub("", text.strip(), count=1)
    match = re.match(r"(yes|no)\b[\s*_`.,:;!-]*", body, re.IGNORECASE)
    if match is None:
        return None
    return {"supported": match[1].lower() == "yes", "reason": collapse_ws(body[match.end() :])}


class JudgeSupport:
    """The teacher as judge: does every claim of the answer appear in the passages it cites?"""

    stage = "judge"

    def __init__(self, params: SamplingParams, api: str, seed: int) -> None:
        self.params, self.api, self.seed = params, api, seed

    def prompt(self, item: Record) -> TeacherRequest:
        cited = set(cited_ids(answer_of(item)))
        passages = [p for p in retrieved(item) if p["id"] in cited]
        text = template("medical_judge").format(passages=_blocks(passages), answer=answer_of(item))
        return request_for(self.api, text, _seeded(self.params, self.seed, self.stage, item))

    def parse(self, item: Record, response: TeacherResponse) -> list[Record] | None:
        # A reason cut short still follows a readable verdict, so a truncated reply is read too. An
        # unreadable one is kept as None: the verifier calls it `judge_unreadable`, and --no-verify
        # keeps the answer all the same.
        verdict = parse_judge(response.text) if response.ok else None
        facts = {**(item.facts or {}), "judge": verdict}
        return [item.model_copy(update={"facts": facts}, deep=True)]
