"""The synthetic teacher's answers to the domain prompts (`generator/domains/`), right and wrong.

A test teacher for the domain stage has to make the mistakes a real one makes, so the verifiers have
something to reject: arithmetic answers that are off by a little, wrong remainders, word problems whose
stated answer does not follow; code whose tests fail, tests that cannot fail (`assert True`), syntax
errors, crashes and endless loops. Each answer is drawn from the request's own seeded generator, so a
run's dataset is a function of its config alone.
"""

from __future__ import annotations

import random
import re
from fractions import Fraction

# -- code ------------------------------------------------------------------------------------------------

_TASKS = (
    ("scale", "Write a Python function `{name}(x)` that returns x multiplied by {k} plus {m}."),
    (
        "count",
        "Write a Python function `{name}(text)` that returns how many times the letter '{c}' occurs in text.",
    ),
    (
        "clip",
        "Write a Python function `{name}(values)` that returns a new list with every number above {k} replaced by {k}.",
    ),
)
_RIGHT = {
    "scale": "def {name}(x):\n    return x * {k} + {m}\n",
    "count": "def {name}(text):\n    return text.count({c!r})\n",
    "clip": "def {name}(values):\n    return [min(v, {k}) for v in values]\n",
}
_OFF_BY_ONE = {
    "scale": "def {name}(x):\n    return x * {k} + {m} + 1\n",
    "count": "def {name}(text):\n    return text.count({c!r}) + 1\n",
    "clip": "def {name}(values):\n    return [min(v, {k} - 1) for v in values]\n",
}


def _expected(kind: str, arg: object, k: int, m: int, c: str) -> object:
    if kind == "scale":
        assert isinstance(arg, int)
        return arg * k + m
    if kind == "count":
        assert isinstance(arg, str)
        return arg.count(c)
    assert isinstance(arg, list)
    return [min(v, k) for v in arg]


def code_task(rng: random.Random) -> str:
    kind, text = rng.choice(_TASKS)
    k, m, c = rng.randint(2, 999), rng.randint(0, 99), rng.choice("aeiou")
    return text.format(name=f"{kind}_{k}_{m}{c}", k=k, m=m, c=c)


def code_solution(task: str, rng: random.Random) -> str:
    """Two fenced blocks, solution then tests; about half of them right."""
    found = re.search(r"`((scale|count|clip)_(\d+)_(\d+)([aeiou]))\(", task)
    if found is None:  # a task it does not know (a seed's): a guess that only passes its own weak test
        called = re.search(r"`(\w+)\(", task)
        fn = called.group(1) if called else "solve"
        return _blocks(f"def {fn}(*args):\n    return None\n", f"assert {fn}() is None\n")
    name, kind = found.group(1), found.group(2)
    k, m, c = int(found.group(3)), int(found.group(4)), found.group(5)
    cases: dict[str, list[object]] = {
        "scale": [0, 3, -2],
        "count": ["", f"{c}b{c}", "xyz"],
        "clip": [[], [k + 5, 1], [k]],
    }
    args = cases[kind]
    tests = "".join(f"assert {name}({a!r}) == {_expected(kind, a, k, m, c)!r}\n" for a in args)
    right = _RIGHT[kind].format(name=name, k=k, m=m, c=c)
    roll = rng.random()
    if roll < 0.5:
        return _blocks(right, tests)
    if roll < 0.65:  # off by one, against right tests: the tests catch it
        return _blocks(_OFF_BY_ONE[kind].format(name=name, k=k, m=m, c=c), tests)
    if roll < 0.75:
        return _blocks(right, "assert True\n")  # a test that cannot fail
    if roll < 0.82:
        return _blocks(right.replace("):", ")", 1), tests)  # a syntax error
    if roll < 0.9:
        return _blocks(f"def {name}(*args):\n    raise RuntimeError('not done')\n", tests)  # a crash
    if roll < 0.93:
        return _blocks(f"def {name}(*args):\n    while True:\n        pass\n", tests)  # never ends
    return "Here is how I would approach it: first read the task carefully."  # no code at all


def _blocks(solution: str, tests: str) -> str:
    return f"```python\n{solution}```\n\n```python\n{tests}```\n"


def code_answer(text: str, rng: random.Random) -> str | None:
    """Answers to the code domain's prompts (templates code_propose, code_solve); None for others."""
    if text.rstrip().endswith("New task:") and "Python programming course" in text:
        return code_task(rng)
    if text.startswith("Solve the Python programming task below"):
        return code_solution(text.rsplit("Task:", 1)[-1], rng)
    return None


# -- arithmetic --------------------------------------------------------------------------------------------

_STORIES = {
    "+": "A farm has {a} sheep and buys {b} more. How many sheep does it have now?",
    "-": "A library had {a} books and lent out {b} of them. How many books are left?",
    "*": "Each of {a} boxes holds {b} pencils. How many pencils are there in all?",
}
_OPS = (
    ("+", ("+", "plus", "sum", "added", "add ", "more")),
    ("-", (" - ", "minus", "subtract", "difference", "left")),
    ("*", ("*", " x ", "×", "times", "product", "multipl", "each")),
    ("/", ("/", "÷", "divide", "quotient", "go into")),
)
_SPAN = re.compile(r"[\d(][\d\s+\-*/()x×,]*[\d)]")


def arithmetic_story(expression: str, rng: random.Random) -> str:
    """A word problem for `a op b`, its expression and answer, now and then inconsistent."""
    from generator.domains.exact_math import evaluate, format_value

    found = re.fullmatch(r"\s*(\d+)\s*([-+*])\s*(\d+)\s*", expression)
    if found is None:
        return "Problem: Think of a number.\nExpression: 1\nAnswer: 1"
    a, op, b = found.groups()
    value = evaluate(expression)
    roll = rng.random()
    stated = value + 1 if roll < 0.15 else value  # the story's own answer does not follow from it
    written = f"{a} {op} {b}" if roll < 0.25 or roll >= 0.3 else f"{a} {op} {int(b) + 1}"  # numbers not in it
    return f"Problem: {_STORIES[op].format(a=a, b=b)}\nExpression: {written}\nAnswer: {format_value(stated)}"


def arithmetic_answer(problem: str, remainder: bool, rng: random.Random) -> str:
    """The answer a middling student gives: computed from what it reads, wrong about a third of the time."""
    from generator.domains.exact_math import ExpressionError, evaluate, format_value, normalise

    value = None
    for span in sorted(_SPAN.findall(problem), key=len, reverse=True):
        if any(sign in normalise(span) for sign in "+-*/"):
            try:
                value = evaluate(span)
            except (ExpressionError, ZeroDivisionError):
                continue
            break
    lowered = f" {problem.lower()} "
    numbers = [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", problem)]
    if remainder or (value is None and len(numbers) >= 2):
        sign = next((s for s, words in _OPS if any(w in lowered for w in words)), "+")
        a, b = numbers[:2] if len(numbers) >= 2 else (numbers[0], 1) if numbers else (0, 1)
        if " from " in lowered or "go into" in lowered:
            a, b = b, a
        if remainder and b:
            q, r = divmod(a, b)
            roll = rng.random()
            r = r + 1 if roll < 0.2 else r  # an off-by-one remainder
            q = q + 1 if 0.2 <= roll < 0.3 else q
            return f"{a} divided by {b} gives {q} with {r} left over.\nAnswer: {q} R {r}"
        value = evaluate(f"{a} {sign} {b}") if b or sign != "/" else Fraction(0)
    if value is None or rng.random() < 0.05:
        return "It is a big number, I am not sure."
    roll = rng.random()
    if roll < 0.15:
        value += 1
    elif roll < 0.25:
        value *= 10  # a slipped digit: looks right, is not
    return f"Working it out step by step.\nAnswer: {format_value(value)}"


def domain_answer(text: str, rng: random.Random) -> str | None:
    """Answers to the domain prompts (templates code_*, arithmetic_*); None for any other prompt."""
    code = code_answer(text, rng)
    if code is not None:
        return code
    if text.startswith("Solve this arithmetic problem exactly"):
        problem = text.rsplit("Problem:", 1)[-1].strip()
        return arithmetic_answer(problem, "R <remainder>" in text, rng)
    if text.startswith("You write short word problems for arithmetic practice"):
        expression = re.search(r"value of this expression: (.+)", text)
        return arithmetic_story(expression.group(1) if expression else "", rng)
    audit = audit_answer(text, rng)
    if audit is not None:
        return audit
    verdict = eval_judge_answer(text, rng)
    if verdict is not None:
        return verdict
    return medical_domain_answer(text, rng)


# -- the report's audit ------------------------------------------------------------------------------------


def audit_answer(text: str, rng: random.Random) -> str | None:
    """A judge's three yes/no answers to the report's audit prompt (template report_audit), about as
    often yes as a lenient judge says it, now and then unreadable; None for any other prompt."""
    if not text.startswith("You are auditing one example of instruction-tuning data"):
        return None
    if rng.random() < 0.05:
        return "I cannot tell from this example."
    answers = ["yes" if rng.random() < p else "no" for p in (0.9, 0.8, 0.6)]
    return "\n".join(f"{i}. {a}" for i, a in enumerate(answers, start=1))


def eval_judge_answer(text: str, rng: random.Random) -> str | None:
    """A judge's verdict on the fine-tune evaluation's pairwise prompt (template eval_judge): A or B as
    often, now and then a tie or an unreadable reply; None for any other prompt."""
    if not text.startswith("You are comparing two answers to the same instruction"):
        return None
    roll = rng.random()
    if roll < 0.05:
        return "I cannot decide between them."
    if roll < 0.15:
        return "tie"
    return rng.choice(["A", "Answer B is better."])


# -- medical -----------------------------------------------------------------------------------------------

_TOPICS = (
    "paracetamol", "ibuprofen", "dehydration", "a fever", "chest pain", "a stroke", "hand washing",
    "sleep", "blood pressure", "type 2 diabetes", "an asthma inhaler", "an allergic reaction", "a burn",
    "a nosebleed", "a sprained ankle", "a cold", "antibiotics", "heat exhaustion", "sunscreen", "a migraine",
    "heartburn", "food poisoning", "choking", "a cut", "an insect sting",
)  # fmt: skip
_ASKS = (
    "What should I know about {t}?",
    "When should someone with {t} see a doctor?",
    "How is {t} usually managed at home?",
    "What are the warning signs to watch for with {t}?",
    "Can you give brief patient information about {t}?",
    "What does the guidance say about {t} for adults?",
)
# `[P05] Title: text`; a title may hold a colon too ("Chest pain: when to call"), a text starts a sentence
_BLOCK = re.compile(r"^\[([^\]\s]+)\] (.*): ([A-Z0-9].*)$", re.M)


def medical_answer(prompt: str, rng: random.Random) -> str:
    """An answer from the passages shown, now and then wrong the ways a real teacher is."""
    from generator.domains.medical import NOT_COVERED

    passages = _BLOCK.findall(prompt.split("Request:")[0])
    if not passages:
        return NOT_COVERED
    first_id, _, first_text = passages[0]
    sentence = re.split(r"(?<=\.)\s", first_text.strip())[0].rstrip(".")
    roll = rng.random()
    if roll < 0.55:
        return f"{sentence} [{first_id}]."
    if roll < 0.65 and len(passages) > 1:  # right-sounding, but the cited passage says something else
        return f"{sentence} [{passages[-1][0]}]."
    if roll < 0.75:
        return f"{sentence}. Take 2 g every 2 hours until it is gone [{first_id}]."  # an invented dose
    if roll < 0.8:
        return f"{sentence} [P999]."  # a passage that does not exist
    if roll < 0.85:
        return f"{sentence}."  # no citation at all
    if roll < 0.9:
        return f"You have pneumonia and need antibiotics [{first_id}]."  # certainty no passage gives
    return NOT_COVERED


def medical_judge(prompt: str) -> str:
    """yes when every word of the answer is in the passages it cites (a crude but honest judge)."""
    passages, _, answer = prompt.partition("Answer:\n")
    answer = answer.split("\n\nIs every claim")[0]
    words = set(re.findall(r"[a-z0-9]+", re.sub(r"\[[^\]]*\]", "", answer.lower())))
    missing = words - set(re.findall(r"[a-z0-9]+", passages.lower()))
    if not missing:
        return "yes. Every statement is in the cited passage."
    return f"no. The passages do not state: {', '.join(sorted(missing)[:5])}."


def medical_domain_answer(text: str, rng: random.Random) -> str | None:
    """Answers to the medical domain's prompts (templates medical_*); None for any other prompt."""
    if text.startswith("You write instruction data for a careful medical information assistant"):
        return rng.choice(_ASKS).format(t=rng.choice(_TOPICS))
    if text.startswith("Here is a passage from a medical reference"):
        title = _BLOCK.search(text)
        return f"What should I know about {title.group(2).lower() if title else 'this'}?"
    if text.startswith("You are a careful medical information assistant. Answer the request"):
        return medical_answer(text, rng)
    if text.startswith("You check an answer against the reference passages it cites"):
        return medical_judge(text)
    return None
