"""The medical domain's pure parts: the verifier's verdicts on plain strings (right answer, wrong
passage, invented dose, bad citations, diagnostic certainty, not covered, the judge), the number and
citation readers, the prompts and parsers, drafts, the dedup key, and `configure` on a real folder."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest

from generator.config import ConfigError
from generator.domains import medical_checks as checks
from generator.domains.medical import (
    DOMAIN,
    NOT_COVERED,
    AnswerMedical,
    JudgeSupport,
    Medical,
    MedicalVerifier,
    ProposeMedical,
    has_citations,
    needs_task,
    parse_judge,
    seed_kind,
)
from generator.domains.references import Passage
from generator.profiles import ANSWER_SAMPLING, JUDGE_SAMPLING
from generator.records import Instance, Record, SeedTask
from generator.teachers.base import TeacherResponse

PASSAGES = [
    Passage(
        id="P01",
        title="Paracetamol for adults",
        text="Adults can take 500 mg to 1 g of paracetamol every 4 to 6 hours, "
        "and no more than 4 g in 24 hours.",
    ),
    Passage(
        id="P02",
        title="Fever in adults",
        text="In adults a temperature of 38°C or above is a fever. See a doctor if a fever lasts more "
        "than 3 days.",
    ),
    Passage(
        id="P03",
        title="Stroke",
        text="Signs of a stroke include a face that droops on one side, weakness in one arm and slurred "
        "speech. Call emergency services straight away.",
    ),
    Passage(
        id="P04",
        title="Heart attack",
        text="Symptoms of a heart attack include chest pain or pressure that may spread to the arms, "
        "neck, jaw or back, shortness of breath and sweating. Call emergency services straight away.",
    ),
    Passage(
        id="P05",
        title="Pneumonia",
        text="Pneumonia is an infection of the lungs. Symptoms include a cough, fever and difficulty "
        "breathing.",
    ),
]
HEART_ATTACK = (
    "Chest pain or pressure that can spread to the arms, neck, jaw or back is a common symptom of a "
    "heart attack; call emergency services straight away [P04]."
)


def passage_facts(*ids: str) -> list[dict[str, str]]:
    return [p.model_dump() for p in PASSAGES if p.id in ids]


def item(answer: str | None, retrieved=("P01", "P02", "P03", "P04", "P05"), instruction="", **facts):
    instruction = instruction or "What are the symptoms of a heart attack?"
    return Record(
        id="med-r0-p0",
        instruction=instruction,
        origin="medical",
        instances=[] if answer is None else [Instance(output=answer)],
        facts={"passages": passage_facts(*retrieved), **facts},
    )


def verify(answer: str | None, check: str = "lexical", **kwargs):
    return MedicalVerifier(check, PASSAGES).verify(item(answer, **kwargs))


def cfg(tmp_path: Path | None = None, **overrides) -> SimpleNamespace:
    values = dict(
        seed=1,
        references=tmp_path,
        cache_path=(tmp_path or Path("/nonexistent")) / "cache" / "requests.sqlite",
        support_check="lexical",
        retrieve_k=2,
        passage_share=0.25,
        answer_params=ANSWER_SAMPLING,
        judge_params=JUDGE_SAMPLING,
        evolve_api="chat",
    )
    return SimpleNamespace(**(values | overrides))


# -- the verifier's verdicts ----------------------------------------------------------------------------


def test_a_right_answer_citing_the_right_passage_is_verified_with_its_citations():
    v = verify(HEART_ATTACK)
    assert (v.verdict, v.reason, v.method) == ("verified", None, "references")
    assert v.details["citations"] == [{"id": "P04", "title": "Heart attack"}]
    assert v.details["support"] >= 0.8


def test_a_right_sounding_answer_citing_a_passage_that_says_something_else_fails():
    v = verify(HEART_ATTACK.replace("[P04]", "[P03]"))
    assert (v.verdict, v.reason) == ("failed", "unsupported_claims")
    assert v.details["support"] < 0.8 and {"chest", "heart", "jaw"} <= set(v.details["missing"])


def test_an_invented_dose_fails_and_names_the_numbers():
    v = verify("Take 2 g every 2 hours [P01].", instruction="How much paracetamol can an adult take?")
    assert (v.verdict, v.reason) == ("failed", "unsupported_number")
    assert v.details["numbers"] == ["2 g", "2 hour"]
    right = (
        "Adults can take 500 mg to 1 g of paracetamol every 4 to 6 hours, no more than 4 g in 24 hours [P01]."
    )
    assert verify(right).verdict == "verified"


def test_citations_must_exist_be_retrieved_and_be_there_at_all():
    assert verify(HEART_ATTACK.replace("[P04]", "[P99]")).reason == "unknown_citation"
    v = verify(HEART_ATTACK, retrieved=("P01", "P03"))
    assert (v.verdict, v.reason, v.details["not_retrieved"]) == ("failed", "citation_not_retrieved", ["P04"])
    assert verify(HEART_ATTACK.replace(" [P04]", "")).reason == "no_citation"
    assert verify(HEART_ATTACK.replace("[P04]", "[P04, P99]")).details["unknown"] == ["P99"]


def test_a_certain_diagnosis_fails_only_in_an_answer_to_a_patient():
    answer = "You have pneumonia, an infection of the lungs [P05]."
    patient = verify(answer, instruction="I have a cough and a fever. What is wrong with me?")
    assert (patient.verdict, patient.reason) == ("failed", "diagnostic_certainty")
    assert patient.details["phrase"].lower().startswith("you have pneumonia")
    by_kind = verify(answer, instruction="What causes a cough with fever?", kind="patient_question")
    assert by_kind.reason == "diagnostic_certainty"
    clinician = verify(
        "Pneumonia is an infection of the lungs [P05].",
        instruction="Summarise pneumonia for a clinician.",
        kind="clinical_summary",
    )
    assert clinician.verdict == "verified"
    hedged = "If you have a cough, fever and difficulty breathing, it may be pneumonia, an infection of the lungs [P05]."
    assert verify(hedged, instruction="I have a cough. Is it pneumonia?").verdict == "verified"


def test_the_not_covered_sentence_is_kept_and_nothing_else_rides_on_it():
    for answer in (
        NOT_COVERED,
        "the references don't cover this question",
        "THE REFERENCES DO NOT COVER THIS QUESTION!",
    ):
        v = verify(answer)
        assert (v.verdict, v.details["not_covered"]) == ("verified", True)
    assert verify(f"{NOT_COVERED} Please ask your doctor or pharmacist.").verdict == "verified"
    assert verify(f"{NOT_COVERED} Take 2 g of paracetamol every 2 hours.").reason == "no_citation"
    assert verify(f"{NOT_COVERED} But garlic cures it.").reason == "no_citation"


def test_an_item_without_an_answer_is_unverifiable():
    assert (verify(None).verdict, verify(None).reason) == ("unverifiable", "no_answer")
    assert verify("   ").reason == "no_answer"


def test_the_judge_decides_when_configured_and_the_lexical_check_still_reports():
    yes = {"supported": True, "reason": "The passage lists these symptoms."}
    v = verify(HEART_ATTACK, "judge", judge=yes)
    assert (v.verdict, v.method, v.details["judge"]) == ("verified", "judge", yes)
    no = {"supported": False, "reason": "The passage is about stroke."}
    wrong = verify(HEART_ATTACK.replace("[P04]", "[P03]"), "judge", judge=no)
    assert (wrong.reason, wrong.details["judge"]["reason"]) == (
        "judge_unsupported",
        "The passage is about stroke.",
    )
    assert wrong.details["support"] < 0.8  # recorded, not decisive, under "judge" alone
    assert verify(HEART_ATTACK, "judge").reason == "judge_unreadable"
    both = verify(HEART_ATTACK.replace("[P04]", "[P03]"), "both", judge=yes)
    assert (both.method, both.reason) == ("references+judge", "unsupported_claims")
    assert verify(HEART_ATTACK, "both", judge=yes).verdict == "verified"


# -- reading answers ------------------------------------------------------------------------------------------


def test_citations_are_read_in_every_bracket_form():
    text = "A [P03]. B [P03, P07]; C [P08][P09] and [P10; first_aid#1]. Not [see above], [...] nor [a](http://x)."
    assert checks.cited_ids(text) == ["P03", "P07", "P08", "P09", "P10", "first_aid#1"]
    assert "P03" not in checks.strip_citations(text)


@pytest.mark.parametrize(
    ("answer", "passage", "missing"),
    [
        ("38 °C", "38°C or above", []),
        ("38°C", "38 degrees Celsius", []),
        ("4 grams", "no more than 4 g", []),
        ("4 g", "no more than 4000 mg", ["4 g"]),
        ("every 4 hours", "every 4 to 6 hours", []),
        ("1-2 tablets", "one or two tablets", []),
        ("for two days", "for 2 days", []),
        ("1,000 mg", "1000 mg", []),
        ("after 3 days", "after 3 weeks", ["3 day"]),
        ("about 38", "38°C", []),
        ("120 mmHg", "90 mmHg", ["120 mmhg"]),
        ("1. Rest\n2. Drink fluids", "Rest and drink fluids.", []),
    ],
)
def test_numbers_must_be_stated_with_their_unit(answer, passage, missing):
    assert checks.unsupported_numbers(answer, [passage]) == missing


def test_lexical_support_tolerates_plurals_and_suffixes_and_ignores_hedges():
    share, missing = checks.lexical_support(
        "Infections usually cause fevers; please ask your doctor [P01].", ["An infection can cause a fever."]
    )
    assert (share, missing) == (1.0, [])


# -- prompts and parsers --------------------------------------------------------------------------------------


def placeholder(**facts) -> Record:
    return Record(id="med-r0-p0", instruction="", origin="medical", facts={"needs_task": True, **facts})


def test_propose_prompts_show_examples_or_a_passage_and_carry_a_seed_per_item():
    task = ProposeMedical(ANSWER_SAMPLING, "chat", seed=7)
    row = placeholder(
        examples=["Can I take ibuprofen with food?", "Is a headache serious?"], kind="drug_info"
    )
    text = task.prompt(row).messages[-1][1]
    assert "Task 1: Can I take ibuprofen with food?" in text and "Task 2: Is a headache serious?" in text
    assert "drug information" in text and text.endswith("New task:")
    from_passage = task.prompt(placeholder(passage=PASSAGES[0].model_dump())).messages[-1][1]
    assert "[P01] Paracetamol for adults: Adults can take 500 mg" in from_passage
    assert from_passage.endswith("Question:")
    other = task.prompt(row.model_copy(update={"id": "med-r0-p1"}))
    assert task.prompt(row).params.seed == task.prompt(row).params.seed != other.params.seed
    assert ProposeMedical(ANSWER_SAMPLING, "completion", seed=7).prompt(row).prompt == text


def test_propose_parse_keeps_the_kind_and_drops_the_placeholder():
    task = ProposeMedical(ANSWER_SAMPLING, "chat", seed=7)
    row = placeholder(examples=["x", "y"], kind="triage")
    [out] = task.parse(row, TeacherResponse(text="**New task:** I have chest pain. Should I call 999?\n"))
    assert out.instruction == "I have chest pain. Should I call 999?" and out.facts == {"kind": "triage"}
    assert not needs_task(out) and needs_task(row)
    [asked] = task.parse(
        placeholder(passage=PASSAGES[1].model_dump()), TeacherResponse(text='Question: "Is 38C a fever?"')
    )
    assert asked.instruction == "Is 38C a fever?"
    assert asked.facts == {"kind": "patient_question", "source_passage": "P02"}
    assert task.parse(row, TeacherResponse(text="When should I", finish_reason="length")) is None
    assert task.parse(row, TeacherResponse(text=" \n")) is None


def test_the_answer_prompt_shows_the_retrieved_passages_with_ids_and_the_fixed_sentence():
    task = AnswerMedical(ANSWER_SAMPLING, "chat", seed=7)
    row = item(None, retrieved=("P01", "P02"), instruction="How much paracetamol can I take?")
    text = task.prompt(row).messages[-1][1]
    assert "[P01] Paracetamol for adults: Adults can take" in text and "[P02] Fever in adults:" in text
    assert "[P03]" not in text and "Stroke" not in text and NOT_COVERED in text
    assert text.endswith("Request:\nHow much paracetamol can I take?\n\nAnswer:")
    [out] = task.parse(row, TeacherResponse(text=" Take 1 g [P01]. \n"))
    assert out.instances == [Instance(input="", output="Take 1 g [P01].")]
    assert task.parse(row, TeacherResponse(text="Take 1", finish_reason="length")) is None
    assert task.parse(row, TeacherResponse(text="", error="boom")) is None


def test_the_judge_sees_only_the_cited_passages_and_reads_yes_or_no():
    task = JudgeSupport(JUDGE_SAMPLING, "chat", seed=7)
    row = item(HEART_ATTACK)
    text = task.prompt(row).messages[-1][1]
    assert "[P04] Heart attack:" in text and "[P03]" not in text and HEART_ATTACK in text
    [out] = task.parse(row, TeacherResponse(text="Yes. The passage lists these symptoms."))
    assert out.facts["judge"] == {"supported": True, "reason": "The passage lists these symptoms."}
    assert task.parse(row, TeacherResponse(text="no, it says", finish_reason="length")) is not None
    assert parse_judge("**No** - the passage says 4 g.") == {
        "supported": False,
        "reason": "the passage says 4 g.",
    }
    assert parse_judge("Verdict: yes")["supported"] is True
    # an unreadable verdict keeps the item, marked, for the verifier to call unverifiable
    [unread] = task.parse(row, TeacherResponse(text="It depends on many things."))
    assert unread.facts["judge"] is None and unread.instances == row.instances
    assert parse_judge("Not every claim is stated.") is None and parse_judge("Maybe.") is None


def test_has_citations_wants_a_retrieved_passage_cited():
    assert has_citations(item(HEART_ATTACK))
    assert not has_citations(item(HEART_ATTACK, retrieved=("P01",))) and not has_citations(item(NOT_COVERED))


def test_tasks_survive_pickling():
    for task in (ProposeMedical, AnswerMedical, JudgeSupport):
        copy = pickle.loads(pickle.dumps(task(ANSWER_SAMPLING, "chat", 3)))
        assert (copy.stage, copy.seed) == (task.stage, 3)


# -- the domain -------------------------------------------------------------------------------------------------


def seed(kind: str, i: int) -> SeedTask:
    return SeedTask(
        id=f"med_{kind}_{i}",
        name=f"{kind}_{i}",
        instruction=f"A {kind} task number {i}?",
        instances=[Instance(output="An answer [P01].")],
        is_classification=False,
        domain="medical",
        references=["P01"],
    )


SEEDS = [
    seed(kind, i)
    for kind in ("patient_question", "clinical_summary", "drug_info", "triage")
    for i in range(4)
]


def test_draft_is_fixed_by_seed_and_round_and_mixes_passages_by_share():
    domain = Medical(MedicalVerifier("lexical", PASSAGES), index=SimpleNamespace(passages=PASSAGES))
    first = domain.draft(cfg(), 0, 200, SEEDS)
    assert first == domain.draft(cfg(), 0, 200, SEEDS) and first != domain.draft(cfg(), 1, 200, SEEDS)
    assert [r.id for r in first[:2]] == ["med-r0-p0", "med-r0-p1"] and all(needs_task(r) for r in first)
    from_passages = [r for r in first if "passage" in r.facts]
    assert 0.15 < len(from_passages) / len(first) < 0.35
    for r in first:
        if "examples" in r.facts:
            kinds = {seed_kind(s) for s in SEEDS if f"seed:{s.id}" in r.parent_ids}
            assert kinds == {r.facts["kind"]} and 2 <= len(r.facts["examples"]) <= 3
    assert all("passage" in r.facts for r in domain.draft(cfg(passage_share=1.0), 0, 10, SEEDS))
    assert not any("passage" in r.facts for r in domain.draft(cfg(passage_share=0.0), 0, 10, SEEDS))


def test_dedup_key_ignores_case_punctuation_and_spacing():
    key = DOMAIN.dedup_key
    a = item(None, instruction="Can I take  ibuprofen with food?")
    assert key(a) == key(a.model_copy(update={"instruction": "can i take ibuprofen, with food"})) is not None
    assert key(a) != key(a.model_copy(update={"instruction": "Can I take paracetamol with food?"}))


def test_settle_records_the_cited_ids_and_titles_and_nothing_is_repaired():
    domain = Medical(MedicalVerifier("lexical", PASSAGES))
    kept = domain.settle(item(HEART_ATTACK.replace("[P04]", "[P04][P03]")))
    assert kept.facts["citations"] == [
        {"id": "P04", "title": "Heart attack"},
        {"id": "P03", "title": "Stroke"},
    ]
    assert kept.instances[0].output.startswith("Chest pain")
    assert domain.settle(item(NOT_COVERED)).facts["citations"] == []
    assert domain.repair(item(HEART_ATTACK)) is None


def write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(p.model_dump()) for p in PASSAGES]
    (folder / "passages.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_configure_opens_the_corpus_and_retrieves_before_the_answer(tmp_path):
    config = cfg(write_corpus(tmp_path / "refs"), cache_path=tmp_path / "cache" / "requests.sqlite")
    domain = DOMAIN.configure(config)
    assert domain.verifier.method == "references" and set(domain.verifier.passages) == {
        p.id for p in PASSAGES
    }
    steps = domain.steps(config)
    assert [s.task.stage for s in steps] == ["propose", "answer"] and steps[1].before is not None
    ready = steps[1].before(item(None, retrieved=(), instruction="What are the symptoms of a heart attack?"))
    assert ready.facts["passages"][0]["id"] == "P04" and len(ready.facts["passages"]) <= 2
    assert any((tmp_path / "cache").iterdir())  # the index is cached next to the request cache
    judged = DOMAIN.configure(cfg(tmp_path / "refs", cache_path=config.cache_path, support_check="both"))
    judge_steps = judged.steps(cfg(support_check="both"))
    assert judged.verifier.method == "references+judge" and judge_steps[-1].task.stage == "judge"
    assert judge_steps[-1].task.params.max_tokens >= 64


def test_configure_refuses_a_missing_or_empty_corpus(tmp_path):
    with pytest.raises(ConfigError, match="--references"):
        DOMAIN.configure(cfg(None))
    with pytest.raises(ConfigError, match="nowhere"):
        DOMAIN.configure(cfg(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty"):
        DOMAIN.configure(cfg(tmp_path / "empty"))
