"""The arithmetic domain: drafted problems, the safe evaluator, the verifier's verdicts, and the proof
that every kept answer is right (recomputed here with the test's own evaluator, not the domain's)."""

from __future__ import annotations

import ast
import operator
import pickle
import random
import re
import types
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from generator.domains.arithmetic import DOMAIN, ArithmeticVerifier, is_story, numbers_in_text
from generator.domains.arithmetic_tasks import AnswerArithmetic, StoryTask, parse_story
from generator.domains.exact_math import (
    ExpressionError,
    answer_of,
    canonical,
    check_solution,
    evaluate,
    read_answer,
    write_solution,
)
from generator.profiles import ANSWER_SAMPLING
from generator.records import Instance, Record
from generator.seeding import derive_seed
from generator.seeds import load_seeds
from generator.teachers.base import TeacherResponse

SEEDS_FILE = Path(__file__).resolve().parents[2] / "seeds" / "arithmetic.jsonl"
SEEDS = load_seeds(SEEDS_FILE)
QR = "quotient_remainder"


def cfg(seed: int = 1, api: str = "chat") -> types.SimpleNamespace:
    return types.SimpleNamespace(seed=seed, answer_params=ANSWER_SAMPLING, evolve_api=api)


# -- the test's own exact arithmetic: Python's ast walked with Fractions, independent of exact_math --------

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def exact(expression: str) -> Fraction:
    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        raise AssertionError(f"unexpected node in {expression!r}: {ast.dump(node)}")

    return walk(ast.parse(expression, mode="eval").body)


def expected_answer(expression: str, form: str) -> str:
    if form == QR:
        a, b = (int(x) for x in expression.split(" / "))
        return f"{a // b} R {a % b}"
    v = exact(expression)
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


def final_answer(output: str) -> str:
    last = output.strip().splitlines()[-1]
    assert last.startswith("Answer: "), output
    return last.removeprefix("Answer: ")


def item(
    expression: str, output: str | None, kind: str = "add", form: str = "value", **facts: object
) -> Record:
    return Record(
        id="arith-r0-0",
        instruction=f"Compute {expression}.",
        origin="arithmetic",
        facts={"kind": kind, "expression": expression, "phrasing": "symbols", "answer_form": form, **facts},
        instances=[] if output is None else [Instance(output=output)],
    )


def story(problem: str, expression: str, stated: str, output: str) -> Record:
    base = item(expression, output, phrasing="story", story_expression=expression, stated_answer=stated)
    return base.model_copy(update={"instruction": problem})


# -- seeds ------------------------------------------------------------------------------------------------


def test_the_seed_file_is_big_enough_and_every_seed_answer_is_right():
    assert len(SEEDS) >= 25
    assert len({s.id for s in SEEDS}) == len(SEEDS)
    stories = [s for s in SEEDS if s.name.startswith(("word_problem", "remainder_problem"))]
    assert len(stories) >= 12
    for seed in SEEDS:
        assert seed.domain == "arithmetic" and not seed.is_classification
        output = seed.instances[0].output
        lines = output.splitlines()
        expression, value = (part.strip() for part in lines[0].split("=", 1))
        form = QR if " R " in value else "value"
        assert (
            value == final_answer(output) == answer_of(expression, form) == expected_answer(expression, form)
        )
        assert check_solution(output, expression, form) == [], seed.id
    for seed in stories:  # a word problem states every number its expression uses
        expression = seed.instances[0].output.split("=")[0]
        used = {Fraction(n) for n in re.findall(r"\d+", expression)}
        assert used <= numbers_in_text(seed.instruction), seed.id


# -- the evaluator ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("48213 * 7", Fraction(337491)),
        ("48213 x 7", Fraction(337491)),
        ("12 × 3 ÷ 8", Fraction(9, 2)),
        ("1,234 + 5", Fraction(1239)),
        ("-(3 - 5) * 2", Fraction(4)),
        ("7 / 4 + 5 / 6", Fraction(31, 12)),
        ("9999999999999999 + 1", Fraction(10**16)),
    ],
)
def test_evaluate_is_exact(text: str, value: Fraction):
    assert evaluate(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a + 1",
        "abs(-3)",
        "(1).real",
        "2 ** 10",
        "7 // 2",
        "2.5 * 2",
        "__import__('os').system('echo hi')",
        "[1, 2]",
        "1 if 1 else 2",
        "(1 + 2",
        "1 / 0",
        "5 / (3 - 3)",
        "9" * 10_000,
        "1" + " + 1" * 1000,
        "(" * 300 + "1" + ")" * 300,
    ],
)
def test_evaluate_refuses_anything_but_small_arithmetic(text: str):
    with pytest.raises(ExpressionError):
        evaluate(text)


def test_canonical_spelling_ignores_spaces_symbols_and_redundant_parentheses():
    assert canonical("(3+4)*5") == canonical("( 3 + 4 ) x 5") == "(3 + 4) * 5"
    assert canonical("(1 + 2) + 3") == "1 + 2 + 3"
    assert canonical("10 - (4 - 1)") == "10 - (4 - 1)"
    assert evaluate(canonical("10 - (4 - 1)")) == 7


@pytest.mark.parametrize(
    ("text", "form", "answer"),
    [
        ("Answer: 1,234", "value", Fraction(1234)),
        ("**Answer:** 42.", "value", Fraction(42)),
        ("Final answer: $\\frac{7}{3}$", "value", Fraction(7, 3)),
        ("The answer is 42, which is even.", "value", Fraction(42)),
        ("Answer: -5", "value", Fraction(-5)),
        ("So 10-4 leaves 6", "value", Fraction(6)),
        ("Answer: 6887 R 4", QR, (6887, 4)),
        ("Answer: quotient 6,887, remainder 4", QR, (6887, 4)),
        ("It goes 6887 times with a remainder of 4.", QR, (6887, 4)),
        ("Answer: 6887", QR, (6887, None)),
        ("I am not sure.", "value", None),
        ("Answer: none of these", "value", None),
        ("Answer: 5/0", "value", None),
        ("Answer: " + "7" * 10_000, "value", None),  # a runaway reply is unreadable, never a crash
        ("Answer: " + "7" * 10_000 + " R 3", QR, None),
    ],
)
def test_read_answer(text: str, form: str, answer: object):
    assert read_answer(text, form) == answer


# -- the verifier: adversarial answers --------------------------------------------------------------------

VERIFY = ArithmeticVerifier().verify


@pytest.mark.parametrize(
    ("expression", "kind", "form", "output", "verdict", "reason"),
    [
        ("12000 + 345", "add", "value", "Answer: 12345", "verified", None),
        ("12000 + 345", "add", "value", "Answer: 12354", "failed", "wrong_answer"),  # digits swapped
        ("1000 + 234", "add", "value", "The answer is 12345.", "failed", "wrong_answer"),  # 1234 inside 12345
        ("12000 + 345", "add", "value", "12345 has 1234 in it.\nAnswer: 1234", "failed", "wrong_answer"),
        # the right number appears, but it is not the final answer
        ("48213 * 7", "mul_n1", "value", "48213 * 7 = 337491\nPlus a carry: 337492\nAnswer: 337492", "failed", "wrong_answer"),
        ("48213 * 7", "mul_n1", "value", "Answer: 337491\nOn second thought,\nAnswer: 337490", "failed", "wrong_answer"),
        ("48213 * 7", "mul_n1", "value", "First I got 337491, but correcting a carry gives 337481", "failed", "wrong_answer"),
        ("48213 * 7", "mul_n1", "value", "So the product is 337,491.", "verified", None),
        ("15 - 42", "sub", "value", "Answer: 27", "failed", "wrong_answer"),
        ("15 - 42", "sub", "value", "Answer: -27", "verified", None),
        ("7 / 4 + 5 / 6", "mixed", "value", "Answer: 31/12", "verified", None),
        ("7 / 4 + 5 / 6", "mixed", "value", "Answer: 2.5833", "failed", "wrong_answer"),
        ("6 / 4", "mixed", "value", "Answer: 1.5", "verified", None),
        # division: off-by-one remainders, a remainder as large as the divisor, a missing remainder
        ("48213 / 7", "div", QR, "Answer: 6887 R 4", "verified", None),
        ("48213 / 7", "div", QR, "quotient 6887 remainder 4", "verified", None),
        ("48213 / 7", "div", QR, "Answer: 6887 R 3", "failed", "wrong_remainder"),
        ("48213 / 7", "div", QR, "Answer: 6887 R 5", "failed", "wrong_remainder"),
        ("48213 / 7", "div", QR, "Answer: 6886 R 11", "failed", "wrong_answer"),
        ("48213 / 7", "div", QR, "Answer: 6888 R 4", "failed", "wrong_answer"),
        ("48213 / 7", "div", QR, "Answer: 6887", "failed", "wrong_remainder"),
        ("48216 / 7", "div", QR, "Answer: 6888", "verified", None),  # no remainder to give
        ("48213 / 7", "div", QR, "Let me think about it.", "unverifiable", "no_answer"),
        ("48213 * 7", "mul_n1", "value", None, "unverifiable", "no_answer"),
    ],
)  # fmt: skip
def test_verifier_verdicts(expression, kind, form, output, verdict, reason):
    result = VERIFY(item(expression, output, kind, form))
    assert (result.method, result.verdict, result.reason) == ("computed", verdict, reason)
    assert result.details["expression"] == expression
    assert result.details["value"] == expected_answer(expression, form)
    assert "teacher_answer" in result.details


def test_a_word_problem_is_judged_by_its_own_expression_and_stated_answer():
    problem = "Maria had 85 stickers and gave 27 to her brother. How many are left?"
    good = VERIFY(story(problem, "85 - 27", "58", "85 - 27 = 58\nAnswer: 58"))
    assert (good.verdict, good.details["value"], good.details["stated_answer"]) == ("verified", "58", "58")
    # the story states a wrong answer: dropped even though the teacher's own answer is right
    wrong = VERIFY(story(problem, "85 - 27", "62", "Answer: 58"))
    assert (wrong.verdict, wrong.reason) == ("failed", "story_wrong_answer")
    missing = VERIFY(story(problem, "85 - 27 - 3", "55", "Answer: 55"))
    assert (missing.verdict, missing.reason, missing.details["missing"]) == (
        "failed",
        "story_numbers_missing",
        ["3"],
    )
    unreadable = VERIFY(story(problem, "eighty-five minus 27", "58", "Answer: 58"))
    assert (unreadable.verdict, unreadable.reason) == ("failed", "story_unparseable")
    no_story = VERIFY(
        item("85 - 27", "Answer: 58", phrasing="story").model_copy(update={"instruction": problem})
    )
    assert (no_story.verdict, no_story.reason) == ("failed", "story_unparseable")
    words = VERIFY(story("Three friends split 96 dollars. How much each?", "96 / 3", "32", "Answer: 32"))
    assert words.verdict == "verified"  # "Three" states the 3


# -- settling: the computed solution, every line checked --------------------------------------------------


def test_settle_keeps_the_computed_solution_not_the_teachers_text():
    answered = item("48213 * 37", "I think it is 1783881 because reasons.\nAnswer: 1783881", "mul_nm")
    kept = DOMAIN.settle(answered)
    output = kept.instances[0].output
    assert output == write_solution("48213 * 37")
    assert output.splitlines()[:2] == ["48213 * 37 = 48213 * (30 + 7)", "= 48213 * 30 + 48213 * 7"]
    assert final_answer(output) == "1783881" and "reasons" not in output
    assert answered.instances[0].output.startswith("I think")  # the input row is untouched
    division = DOMAIN.settle(item("48213 / 7", "Answer: 6887 R 4", "div", QR)).instances[0].output
    assert "48213 - 7 * 6000 = 48213 - 42000 = 6213" in division and final_answer(division) == "6887 R 4"


def test_check_solution_finds_every_tampered_line():
    solution = write_solution("48213 * 37")
    assert check_solution(solution, "48213 * 37") == []
    lines = solution.splitlines()
    for index, line in enumerate(lines):
        digits = [i for i, ch in enumerate(line) if ch.isdigit()]
        at = digits[len(digits) // 2]
        bad = line[:at] + str((int(line[at]) + 1) % 10) + line[at + 1 :]
        tampered = "\n".join([*lines[:index], bad, *lines[index + 1 :]])
        assert check_solution(tampered, "48213 * 37"), bad
    assert "the last line is not 'Answer: ...'" in check_solution("48213 * 37 = 1783881", "48213 * 37")
    division = write_solution("48213 / 7", QR)
    assert check_solution(division.replace("= 6213", "= 6212"), "48213 / 7", QR)
    assert check_solution("48213 / 7 = 6887 R 5\nAnswer: 6887 R 4", "48213 / 7", QR)
    assert check_solution("48213 / 7 = 6887 R 4\nAnswer: 6887 R 4", "48213 / 7", QR) == []


# -- the proof: every kept answer is right ----------------------------------------------------------------


def fake_story(record: Record, rng: random.Random) -> tuple[str, str]:
    """A teacher's story reply, and what the verifier should make of it."""
    a, sign, b = record.facts["expression"].split(" ")
    truth = expected_answer(f"{a} {sign} {b}", "value")
    roll = rng.random()
    text = f"Problem: Sam has {a} cards and a box of {b} cards. How many cards?\nExpression: {a} {sign} {b}\nAnswer: "
    if roll < 0.15:
        return text + str(int(truth) + 1), "story_wrong_answer"
    if roll < 0.25:
        return text.replace(
            f"Expression: {a} {sign} {b}", f"Expression: {a} {sign} {b} + 1"
        ) + truth, "numbers"
    return text + truth, "ok"


def fake_answer(record: Record, rng: random.Random) -> tuple[str, bool | None]:
    """A teacher's answer (right, wrong or unreadable) and whether it is right (None: unreadable)."""
    expression = record.facts.get("story_expression") or record.facts["expression"]
    truth = expected_answer(expression, record.facts["answer_form"] if not is_story(record) else "value")
    roll = rng.random()
    if roll < 0.5:
        return f"Let me work it out.\n{expression} gives the result.\nAnswer: {truth}", True
    if roll < 0.85:
        q, _, r = truth.partition(" R ")
        wrong = f"{q} R {int(r) + 1}" if r else str(Fraction(truth) + rng.choice((1, -1, 10)))
        return f"Answer: {wrong}", False
    return "This one is too hard for me.", None


@pytest.mark.parametrize("run_seed", [1, 2, 3])
def test_every_kept_answer_is_right(run_seed: int):
    rng = random.Random(run_seed)
    story_task, answer_task = (step.task for step in DOMAIN.steps(cfg(run_seed)))
    kept = Counter[str]()
    for round_ in range(40):
        for record in DOMAIN.draft(cfg(run_seed), round_, 25, SEEDS):
            expect_story = "ok"
            if is_story(record):
                text, expect_story = fake_story(record, rng)
                (record,) = story_task.parse(record, TeacherResponse(text=text))
            reply, right = fake_answer(record, rng)
            (record,) = answer_task.parse(record, TeacherResponse(text=reply))
            verdict = DOMAIN.verifier.verify(record)
            if expect_story != "ok":
                assert verdict.verdict == "failed" and verdict.reason.startswith("story_"), (record, verdict)
            elif right is None:
                assert (verdict.verdict, verdict.reason) == ("unverifiable", "no_answer"), record
            else:
                assert verdict.verdict == ("verified" if right else "failed"), (record, verdict)
            kept[verdict.verdict] += 1
            kept[f"story {verdict.verdict}"] += is_story(record)
            if verdict.verdict != "verified":
                continue
            row = DOMAIN.settle(record)
            expression = row.facts.get("story_expression") or row.facts["expression"]
            form = "value" if is_story(row) else row.facts["answer_form"]
            assert final_answer(row.instances[0].output) == expected_answer(expression, form), row
    assert kept["verified"] > 400 and kept["failed"] > 300 and kept["unverifiable"] > 100
    assert kept["story verified"] > 50 and kept["story failed"] > 50


# -- drafting: strata, phrasings, determinism -------------------------------------------------------------


def drafted(seed: int = 7, rounds: int = 80) -> list[Record]:
    return [r for round_ in range(rounds) for r in DOMAIN.draft(cfg(seed), round_, 25, SEEDS)]


def test_drafts_cover_every_stratum_within_its_bounds():
    problems = drafted()
    by_kind: dict[str, list[list[int]]] = {}
    for p in problems:
        if p.facts["kind"] != "mixed":
            a, _, b = p.facts["expression"].split(" ")
            by_kind.setdefault(p.facts["kind"], []).append([int(a), int(b)])
    assert set(Counter(p.facts["kind"] for p in problems)) == {
        "add",
        "sub",
        "mul_n1",
        "mul_nm",
        "div",
        "mixed",
    }
    for kind in ("add", "sub"):
        assert {len(str(x)) for pair in by_kind[kind] for x in pair} == set(range(1, 17))
    assert {len(str(a)) for a, _ in by_kind["mul_n1"]} == set(range(1, 17))
    assert {b for _, b in by_kind["mul_n1"]} == set(range(2, 10))
    product_lengths = {len(str(a * b)) for a, b in by_kind["mul_nm"]}
    assert max(product_lengths) == 12 and min(product_lengths) <= 4
    assert all(a >= 10 and b >= 10 for a, b in by_kind["mul_nm"])
    assert {len(str(a // b)) for a, b in by_kind["div"]} == set(range(1, 8))
    assert {a % b for a, b in by_kind["div"]} != {0} and all(b >= 2 for _, b in by_kind["div"])
    mixed = [exact(p.facts["expression"]) for p in problems if p.facts["kind"] == "mixed"]
    assert any(v.denominator > 1 for v in mixed) and any(v.denominator == 1 for v in mixed)
    phrasings = Counter(p.facts["phrasing"] for p in problems)
    assert set(phrasings) == {"symbols", "words", "story"}
    assert 0.15 < phrasings["story"] / len(problems) < 0.25
    assert any(" x " in p.instruction for p in problems) and any(
        "the sum of" in p.instruction for p in problems
    )
    assert any(re.search(r"\d,\d{3}", p.instruction) for p in problems)


def test_drafted_records_are_well_formed():
    problems = DOMAIN.draft(cfg(3), 5, 200, SEEDS)
    assert [p.id for p in problems] == [f"arith-r5-{i}" for i in range(200)]
    for p in problems:
        assert (p.origin, p.round, p.instances, p.is_classification) == ("arithmetic", 5, [], False)
        assert p.facts["answer_form"] == (QR if p.facts["kind"] == "div" else "value")
        assert canonical(p.facts["expression"]) == p.facts["expression"]
        if p.facts["phrasing"] in ("symbols", "story"):  # a story shows the symbols until it is written
            assert p.facts["expression"] in p.instruction.replace(" x ", " * ")
        else:
            numbers = re.findall(r"\d+", p.instruction.replace(",", ""))
            assert sorted(numbers) == sorted(re.findall(r"\d+", p.facts["expression"]))
        if is_story(p):
            assert p.facts["kind"] in ("add", "sub", "mul_n1")
            assert len(p.facts["story_examples"]) == 2
            assert all(set(ex) == {"problem", "expression", "answer"} for ex in p.facts["story_examples"])


def test_drafts_depend_only_on_the_run_seed_and_the_round():
    first = [r.model_dump() for r in DOMAIN.draft(cfg(1), 3, 25, SEEDS)]
    assert first == [r.model_dump() for r in DOMAIN.draft(cfg(1), 3, 25, list(reversed(SEEDS)))]
    assert [r["facts"] for r in first] != [r.facts for r in DOMAIN.draft(cfg(2), 3, 25, SEEDS)]
    assert [r["facts"] for r in first] != [r.facts for r in DOMAIN.draft(cfg(1), 4, 25, SEEDS)]
    assert DOMAIN.draft(cfg(1), 3, 10, SEEDS) == DOMAIN.draft(cfg(1), 3, 25, SEEDS)[:10]  # a prefix
    assert all(p.facts.get("story_examples") in (None, []) for p in DOMAIN.draft(cfg(1), 3, 25, []))


def test_every_drafted_problem_settles_with_a_solution_that_checks():
    for p in drafted(seed=11, rounds=20):
        if is_story(p):
            continue
        output = DOMAIN.settle(p).instances[0].output
        assert check_solution(output, p.facts["expression"], p.facts["answer_form"]) == []
        assert final_answer(output) == expected_answer(p.facts["expression"], p.facts["answer_form"])


def test_dedup_keys_match_the_same_problem_however_it_is_worded():
    a = item("48213 * 7", None).model_copy(update={"instruction": "Compute 48213 x 7."})
    b = item("48213 * 7", None).model_copy(update={"instruction": "What is 48213 * 7?"})
    assert DOMAIN.dedup_key(a) == DOMAIN.dedup_key(b) == "symbols:48213 * 7"
    assert DOMAIN.dedup_key(item("48213 * 8", None)) != DOMAIN.dedup_key(a)
    one = story("Sam has 5 cats and 3 dogs.", "5 + 3", "8", "Answer: 8")
    other = story("Ann has 5 pens and 3 pencils.", "5+3", "8", "Answer: 8")
    assert DOMAIN.dedup_key(one) != DOMAIN.dedup_key(other)
    assert DOMAIN.dedup_key(one) == DOMAIN.dedup_key(
        one.model_copy(update={"instruction": "Sam has  5 cats and 3 DOGS."})
    )


# -- the teacher steps ------------------------------------------------------------------------------------


def test_steps_write_stories_only_for_story_problems_and_are_picklable():
    story_step, answer_step = DOMAIN.steps(cfg())
    assert (story_step.task.stage, answer_step.task.stage) == ("story", "answer")
    problems = DOMAIN.draft(cfg(), 0, 25, SEEDS)
    assert [story_step.wants(p) for p in problems] == [p.facts["phrasing"] == "story" for p in problems]
    assert all(answer_step.wants(p) for p in problems)
    for step in (story_step, answer_step):
        clone = pickle.loads(pickle.dumps(step.task))
        assert clone.prompt(problems[0]) == step.task.prompt(problems[0])


def test_story_prompt_shows_the_expression_the_examples_and_the_format():
    record = next(p for p in DOMAIN.draft(cfg(), 0, 25, SEEDS) if is_story(p))
    task = StoryTask(ANSWER_SAMPLING, "chat", 1)
    request = task.prompt(record)
    text = request.messages[-1][1]
    assert request.kind == "chat"
    assert request.params.seed == derive_seed(1, "arithmetic", "story", record.id)
    assert f"the value of this expression: {record.facts['expression']}\n" in text
    for example in record.facts["story_examples"]:
        assert f"Problem: {example['problem']}\nExpression: {example['expression']}\n" in text
    assert text.endswith("Problem: <a short word problem whose answer is the value of the expression>\n"
                         "Expression: <the arithmetic expression that solves it, using only numbers in the problem>\n"
                         "Answer: <the number>")  # fmt: skip
    assert StoryTask(ANSWER_SAMPLING, "completion", 1).prompt(record).kind == "completion"


def test_story_parse_reads_the_three_lines_and_never_mutates_the_row():
    record = next(p for p in DOMAIN.draft(cfg(), 0, 25, SEEDS) if is_story(p))
    before = record.model_dump()
    reply = "**Problem:** Ann has 12 apples\nand buys 5 more. How many?\n**Expression:** 12 + 5 = 17\n**Answer:** 17"
    (out,) = StoryTask(ANSWER_SAMPLING, "chat", 1).parse(record, TeacherResponse(text=reply))
    assert out.instruction == "Ann has 12 apples and buys 5 more. How many?"
    assert (out.facts["story_expression"], out.facts["stated_answer"]) == ("12 + 5", "17")
    assert out.facts["expression"] == record.facts["expression"] and record.model_dump() == before
    task = StoryTask(ANSWER_SAMPLING, "chat", 1)
    assert task.parse(record, TeacherResponse(text="Problem: Ann has 12 apples.\nAnswer: 17")) is None
    assert task.parse(record, TeacherResponse(text=reply, finish_reason="length")) is None
    assert parse_story("Problem: a\nExpression: 1 + 1\nAnswer: 2\nProblem: b\nExpression: 2\nAnswer: 2") == (
        "a",
        "1 + 1",
        "2",
    )


def test_answer_prompt_asks_for_the_final_line_and_parse_keeps_the_text():
    task = AnswerArithmetic(ANSWER_SAMPLING, "chat", 9)
    division = item("48213 / 7", None, "div", QR)
    text = task.prompt(division).messages[-1][1]
    assert "\nAnswer: <quotient> R <remainder>\n" in text and text.endswith("Problem: Compute 48213 / 7.")
    assert "\nAnswer: <number>\n" in task.prompt(item("1 + 2", None)).messages[-1][1]
    assert task.prompt(division).params.seed == derive_seed(9, "arithmetic", "answer", division.id)
    (out,) = task.parse(division, TeacherResponse(text="  work\nAnswer: 6887 R 4\n"))
    assert out.instances == [Instance(input="", output="work\nAnswer: 6887 R 4")] and division.instances == []
    assert task.parse(division, TeacherResponse(text="Answer: 6887 R", finish_reason="length")) is None
    assert task.parse(division, TeacherResponse(text="   ")) is None
    assert task.parse(division, TeacherResponse(error="timeout", finish_reason="error")) is None
