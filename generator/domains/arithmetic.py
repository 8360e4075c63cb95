"""The arithmetic domain (Goat-style): problems drawn by code, answers computed exactly, never trusted.

A round draws its problems from the run's seed: the kind (addition and subtraction up to 16 digits,
n×1 and n×m multiplication with products up to 12 digits, division with a quotient up to 7 digits and
a remainder, mixed expressions over small numbers), digit lengths uniformly over each kind's range (so
short and long sums are equally common), and a phrasing: symbols ("Compute 48213 x 7."), words ("Find
the sum of ... and ..."), or a story the teacher writes. The teacher answers every problem, and
`ArithmeticVerifier` compares that answer with the exact value (a story must first prove itself: its
expression must parse, use only the story's numbers and equal the answer it states). A verified item
keeps the *computed* step-by-step solution (`exact_math.write_solution`), not the teacher's text, so
every kept answer is right by construction and each of its lines is re-checked before it is kept.
"""

from __future__ import annotations

import random
import re
from contextlib import suppress
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from generator.domains.arithmetic_tasks import AnswerArithmetic, StoryTask
from generator.domains.base import DomainStep
from generator.domains.exact_math import (
    QUOTIENT_REMAINDER,
    VALUE,
    Answer,
    ExpressionError,
    Node,
    Num,
    Op,
    answer_of,
    canonical,
    check_solution,
    divmod_of,
    format_answer,
    literals,
    parse,
    read_answer,
    render,
    value,
    write_solution,
)
from generator.profiles import ANSWER_SAMPLING
from generator.records import Instance, Record, SeedTask, Verification
from generator.seeding import derive_seed
from generator.tasks.base import collapse_ws

if TYPE_CHECKING:
    from generator.config import RunConfig

Verdict = Literal["verified", "failed", "unverifiable"]

KINDS = ("add", "sub", "mul_n1", "mul_nm", "div", "mixed")
STORY_KINDS = ("add", "sub", "mul_n1")  # small counts make sense in a story; long division does not
STORY_SHARE = 0.2
TIMES_AS_X = 0.3  # instruction noise: "48213 x 7" for "48213 * 7"
WITH_COMMAS = 0.3  # worded problems sometimes write 48,213

SYMBOLS = ("Compute {expr}.", "What is {expr}?", "Calculate {expr}.", "{expr} = ?", "Work out {expr}.")
SYMBOLS_EXACT = ("Evaluate {expr}. Give the exact value.", "What is the exact value of {expr}?")
SYMBOLS_DIV = (
    "Compute {expr} and give the quotient and the remainder.",
    "What is {expr}? Answer with the quotient and the remainder.",
    "Find the quotient and remainder of {expr}.",
)
WORDS = {
    "add": (
        "What is {a} plus {b}?",
        "Find the sum of {a} and {b}.",
        "Add {a} and {b}.",
        "What is {b} added to {a}?",
    ),
    "sub": (
        "What is {a} minus {b}?",
        "Subtract {b} from {a}.",
        "Calculate {a} minus {b}.",
        "How much is {a} minus {b}?",
    ),
    "mul": (
        "What is {a} times {b}?",
        "Find the product of {a} and {b}.",
        "Multiply {a} by {b}.",
        "What is {a} multiplied by {b}?",
    ),
    "div": (
        "Divide {a} by {b}. Give the quotient and the remainder.",
        "What are the quotient and the remainder when {a} is divided by {b}?",
        "How many times does {b} go into {a}, and what is left over?",
    ),
}


# -- drafting ---------------------------------------------------------------------------------------------


def _number(rng: random.Random, digits: int, least: int = 0) -> int:
    """A number with exactly `digits` digits (one digit: `least`-9)."""
    return rng.randint(10 ** (digits - 1) if digits > 1 else least, 10**digits - 1)


def draw_expression(rng: random.Random, kind: str, small: bool = False) -> str:
    """One problem of `kind` as a canonical expression; `small` keeps numbers story-sized."""
    top = 4 if small else 16
    if kind in ("add", "sub"):
        least = 1 if small else 0  # no story adds nothing
        a, b = _number(rng, rng.randint(1, top), least), _number(rng, rng.randint(1, top), least)
        if kind == "sub" and small and b > a:  # a story never takes away more than there is
            a, b = b, a
        return f"{a} {'+' if kind == 'add' else '-'} {b}"
    if kind == "mul_n1":
        return f"{_number(rng, rng.randint(1, 3 if small else 16), 1)} * {rng.randint(2, 9)}"
    if kind == "mul_nm":  # n + m <= 12 digits: the product has at most 12
        n = rng.randint(2, 10)
        return f"{_number(rng, n)} * {_number(rng, rng.randint(2, 12 - n))}"
    if kind == "div":
        divisor = max(2, _number(rng, rng.randint(1, 4)))
        quotient = max(1, _number(rng, rng.randint(1, 7)))
        return f"{quotient * divisor + rng.randrange(divisor)} / {divisor}"
    if kind == "mixed":
        while True:
            node = _tree(rng, rng.choice((3, 4)))
            try:
                value(node)
            except ExpressionError:  # a zero divisor, as in 5 / (3 - 3): draw again
                continue
            return render(node)
    raise ValueError(f"unknown arithmetic kind {kind!r}")


def _tree(rng: random.Random, leaves: int) -> Node:
    if leaves == 1:
        return Num(Fraction(rng.randint(1, 50)))
    left = rng.randint(1, leaves - 1)
    return Op(rng.choice("+-*/"), _tree(rng, left), _tree(rng, leaves - left))


def phrase(rng: random.Random, kind: str, expression: str, phrasing: str) -> str:
    """The problem as the dataset's instruction reads it."""
    shown = expression.replace(" * ", " x ") if rng.random() < TIMES_AS_X else expression
    if phrasing == "words":
        a, _, b = expression.split(" ")
        if rng.random() < WITH_COMMAS:
            a, b = f"{int(a):,}", f"{int(b):,}"
        group = "mul" if kind.startswith("mul") else kind
        return rng.choice(WORDS[group]).format(a=a, b=b)
    templates = {"div": SYMBOLS_DIV, "mixed": SYMBOLS_EXACT}.get(kind, SYMBOLS)
    return rng.choice(templates).format(expr=shown)


def story_examples(seeds: list[SeedTask]) -> list[dict[str, str]]:
    """The seed word problems (named `word_problem_*`) as story examples: problem, expression, answer."""
    examples = []
    for seed in sorted(seeds, key=lambda s: s.id):
        lines = seed.instances[0].output.strip().splitlines()
        if seed.name.startswith("word_problem") and "=" in lines[0] and lines[-1].startswith("Answer:"):
            answer = lines[-1].removeprefix("Answer:").strip()
            examples.append(
                {"problem": seed.instruction, "expression": lines[0].split("=")[0].strip(), "answer": answer}
            )
    return examples


def draft_problems(run_seed: int, round_: int, count: int, seeds: list[SeedTask]) -> list[Record]:
    """The round's `count` problems; the same run seed and round always draw the same ones."""
    rng = random.Random(derive_seed(run_seed, "arithmetic", round_))
    examples = story_examples(seeds)
    problems = []
    for index in range(count):
        story = rng.random() < STORY_SHARE
        kind = rng.choice(STORY_KINDS if story else KINDS)
        expression = draw_expression(rng, kind, small=story)
        phrasing = "story" if story else "symbols" if kind == "mixed" else rng.choice(("symbols", "words"))
        facts: dict[str, Any] = {"kind": kind, "expression": expression, "phrasing": phrasing}
        facts["answer_form"] = QUOTIENT_REMAINDER if kind == "div" else VALUE
        if story:
            facts["story_examples"] = rng.sample(examples, min(2, len(examples)))
        instruction = phrase(rng, kind, expression, "symbols" if story else phrasing)
        problems.append(
            Record(
                id=f"arith-r{round_}-{index}",
                instruction=instruction,
                origin="arithmetic",
                round=round_,
                is_classification=False,
                facts=facts,
            )
        )
    return problems


# -- verifying ----------------------------------------------------------------------------------------

# Number words a story may use instead of digits ("half" and "twice" state a 2 too).
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
)
_WORD_NUMBERS = {word: n for n, word in enumerate(_ONES.split(" "))}
_WORD_NUMBERS |= {"seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20}
_WORD_NUMBERS |= {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80}
_WORD_NUMBERS |= {"ninety": 90, "hundred": 100, "thousand": 1000, "dozen": 12}
_WORD_NUMBERS |= {"twice": 2, "double": 2, "half": 2, "triple": 3}


def numbers_in_text(text: str) -> set[Fraction]:
    """The numbers a problem states: in digits (48,213 too), or as a small number word."""
    found = {
        Fraction(m.replace(",", "")) for m in re.findall(r"\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:\.\d+)?", text)
    }
    words = re.findall(r"[a-z]+", text.lower())
    return found | {Fraction(_WORD_NUMBERS[w]) for w in words if w in _WORD_NUMBERS}


def _verdict(verdict: Verdict, reason: str | None, **details: Any) -> Verification:
    return Verification(method="computed", verdict=verdict, reason=reason, details=details)


class ArithmeticVerifier:
    """The truth is computed from the expression; the teacher's final answer must equal it.

    A story is checked first, as the teacher wrote it: its expression must parse, use only numbers the
    problem states, and equal the answer it states; else it fails with that reason.
    """

    method = "computed"

    def verify(self, item: Record) -> Verification:
        story = is_story(item)
        expression, form = truth_of(item)
        given = read_answer(item.instances[0].output, form) if item.instances else None
        details: dict[str, Any] = {
            "expression": expression,
            "value": None,
            "teacher_answer": format_answer(given),
        }
        try:
            details["expression"] = expression = canonical(expression)
            details["value"] = truth = answer_of(expression, form)
        except ExpressionError as exc:
            if story:
                return _verdict("failed", "story_unparseable", **details, error=str(exc))
            return _verdict("unverifiable", "bad_expression", **details, error=str(exc))
        if story:
            missing = set(literals(parse(expression))) - numbers_in_text(item.instruction)
            if missing:
                return _verdict(
                    "failed", "story_numbers_missing", **details, missing=sorted(map(str, missing))
                )
            details["stated_answer"] = format_answer(
                read_answer(str((item.facts or {}).get("stated_answer")), form)
            )
            if details["stated_answer"] != truth:
                return _verdict("failed", "story_wrong_answer", **details)
        if given is None:
            return _verdict("unverifiable", "no_answer", **details)
        if format_answer(_with_remainder(given)) == truth:
            return _verdict("verified", None, **details)
        return _verdict("failed", _wrong(given, expression, form), **details)


def _with_remainder(given: Answer) -> Answer:
    """A bare quotient states no remainder: right only where there is none ("6888" for 48216 / 7)."""
    return (given[0], 0) if isinstance(given, tuple) and given[1] is None else given


def _wrong(given: Answer, expression: str, form: str) -> str:
    """wrong_remainder when the quotient is right and only the remainder is off (or missing)."""
    if form == QUOTIENT_REMAINDER and isinstance(given, tuple) and given[0] == divmod_of(expression)[0]:
        return "wrong_remainder"
    return "wrong_answer"


def truth_of(item: Record) -> tuple[str, str]:
    """The expression whose value is the right answer, and the answer's form: a story's own
    expression once the teacher has written one, else the drafted one."""
    facts = item.facts or {}
    if facts.get("phrasing") == "story":
        return str(facts.get("story_expression", "")), VALUE
    return str(facts.get("expression", "")), str(facts.get("answer_form", VALUE))


# -- the domain -------------------------------------------------------------------------------------------


def is_story(item: Record) -> bool:
    return (item.facts or {}).get("phrasing") == "story"


class Arithmetic:
    name = "arithmetic"
    verifier = ArithmeticVerifier()

    def draft(self, cfg: RunConfig, round_: int, count: int, seeds: list[SeedTask]) -> list[Record]:
        return draft_problems(cfg.seed, round_, count, seeds)

    def steps(self, cfg: RunConfig) -> list[DomainStep]:
        params = cfg.answer_params or ANSWER_SAMPLING
        return [
            DomainStep(StoryTask(params, cfg.evolve_api, cfg.seed), wants=is_story),
            DomainStep(AnswerArithmetic(params, cfg.evolve_api, cfg.seed)),
        ]

    def dedup_key(self, item: Record) -> str | None:
        """Same phrasing, same expression: a duplicate (a story also needs the same text)."""
        facts = item.facts or {}
        expression, _ = truth_of(item)
        with suppress(ExpressionError):  # an unreadable story expression keys by its raw text
            expression = canonical(expression)
        if is_story(item):
            return f"story:{expression}:{collapse_ws(item.instruction).lower()}"
        return f"{facts.get('phrasing')}:{expression}"

    def settle(self, item: Record) -> Record:
        """The item with the computed, line-by-line checked solution as its only output."""
        expression, form = truth_of(item)
        solution = write_solution(expression, form)
        problems = check_solution(solution, expression, form)
        if problems:  # a bug in the writer: never keep it
            raise ValueError(f"{item.id}: the computed solution does not check: {problems}")
        given = item.instances[0].input if item.instances else ""
        return item.model_copy(update={"instances": [Instance(input=given, output=solution)]}, deep=True)

    def repair(self, item: Record) -> Record | None:
        """A wrong or unreadable answer costs nothing: the computed solution takes its place (Goat
        takes no answer from a model). A word problem that does not add up is dropped: the teacher wrote
        the problem itself, and its numbers or its stated answer are wrong."""
        reason = item.verification.reason if item.verification else None
        if reason is None or reason.startswith("story_") or reason == "bad_expression":
            return None
        return self.settle(item)


DOMAIN = Arithmetic()
