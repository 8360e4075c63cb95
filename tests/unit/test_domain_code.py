"""The code domain's pure parts: prompts, parsers, the AST dedup key, trivial-test detection, the
verifier's reading of sandbox outcomes (with a stand-in sandbox), drafts and the seed file."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import pytest

from generator.domains import code_checks
from generator.domains.code import DOMAIN, Code, CodeVerifier, ProposeCode, SolveCode, needs_task
from generator.profiles import ANSWER_SAMPLING
from generator.records import Instance, Record, SeedTask
from generator.sandbox import Limits, SandboxResult
from generator.seeds import load_seeds
from generator.teachers.base import TeacherResponse

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "code.jsonl"
CFG = SimpleNamespace(seed=7, answer_params=ANSWER_SAMPLING, evolve_api="chat", sandbox_timeout=2.0)

SOLUTION = "def add(a, b):\n    return a + b"
TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0"


def fenced(*blocks: str) -> str:
    return "\n\n".join(f"```python\n{b}\n```" for b in blocks)


def item(**facts) -> Record:
    return Record(id="code-r0-p0", instruction="Write add(a, b).", origin="code", facts=facts)


def seed_task(i: int, tests: list[str] | None) -> SeedTask:
    return SeedTask(
        id=f"code_{i:03d}",
        name=f"task_{i}",
        instruction=f"Write a Python function `f{i}(x)` that returns x + {i}.",
        instances=[Instance(output=f"```python\ndef f{i}(x):\n    return x + {i}\n```")],
        is_classification=False,
        domain="code",
        tests=tests,
    )


# -- prompts and parsers ------------------------------------------------------------------------------


def test_propose_prompt_lists_the_examples_and_carries_a_seed_per_item():
    task = ProposeCode(ANSWER_SAMPLING, "chat", seed=7)
    row = item(needs_task=True, examples=["Write `a(x)` that doubles x.", "Write `b(s)` that reverses s."])
    request = task.prompt(row)
    text = request.messages[-1][1]
    assert request.kind == "chat"
    assert "Task 1: Write `a(x)` that doubles x." in text and "Task 2: Write `b(s)` that reverses s." in text
    assert text.endswith("New task:")
    other = task.prompt(row.model_copy(update={"id": "code-r0-p1"}))
    assert request.params.seed is not None and request.params.seed != other.params.seed
    assert task.prompt(row).params.seed == request.params.seed
    assert ProposeCode(ANSWER_SAMPLING, "completion", seed=7).prompt(row).prompt == text


def test_propose_parse_returns_the_task_and_clears_the_placeholder_facts():
    task = ProposeCode(ANSWER_SAMPLING, "chat", seed=7)
    row = item(needs_task=True, examples=["x"])
    out = task.parse(
        row, TeacherResponse(text="**New task:** Write a Python function `sq(x)` returning x*x.\n")
    )
    assert out is not None and len(out) == 1
    assert out[0].instruction == "Write a Python function `sq(x)` returning x*x."
    assert out[0].facts == {} and out[0].id == row.id
    assert row.facts == {"needs_task": True, "examples": ["x"]} and row.instruction == "Write add(a, b)."
    assert not needs_task(out[0])
    assert task.parse(row, TeacherResponse(text="Task 3: Write `g()`.")) is not None
    assert task.parse(row, TeacherResponse(text="Write `g()` that", finish_reason="length")) is None
    assert task.parse(row, TeacherResponse(text="  \n")) is None
    assert task.parse(row, TeacherResponse(text="Task:")) is None


def test_solve_prompt_states_the_format_and_the_task():
    request = SolveCode(ANSWER_SAMPLING, "completion", seed=7).prompt(item())
    assert request.kind == "completion" and request.prompt is not None
    assert request.prompt.endswith("Task:\nWrite add(a, b).")
    assert request.prompt.count("```python") == 2 and "assert" in request.prompt
    assert request.params.max_tokens == ANSWER_SAMPLING.max_tokens


def test_solve_parse_takes_the_first_block_as_solution_and_the_last_as_tests():
    task = SolveCode(ANSWER_SAMPLING, "chat", seed=7)
    row = item(reference_tests=["assert add(2, 2) == 4"], seed_id="code_001")
    text = "Here you go:\n" + fenced(SOLUTION, "print(add(1, 1))", TESTS) + "\nDone."
    out = task.parse(row, TeacherResponse(text=text))
    assert out is not None and len(out) == 1
    assert out[0].facts == {
        "reference_tests": ["assert add(2, 2) == 4"],
        "seed_id": "code_001",
        "solution": SOLUTION,
        "tests": TESTS,
    }
    assert out[0].instances == [Instance(input="", output=text.strip())]
    assert row.facts == {"reference_tests": ["assert add(2, 2) == 4"], "seed_id": "code_001"}
    assert row.instances == []


def test_solve_parse_refuses_missing_blocks_and_truncation_but_does_not_judge():
    task = SolveCode(ANSWER_SAMPLING, "chat", seed=7)
    assert task.parse(item(), TeacherResponse(text=fenced(SOLUTION))) is None
    assert task.parse(item(), TeacherResponse(text=SOLUTION + "\n" + TESTS)) is None
    assert task.parse(item(), TeacherResponse(text=fenced(SOLUTION, TESTS), finish_reason="length")) is None
    broken = task.parse(item(), TeacherResponse(text=fenced("def add(:", "assert True")))
    assert broken is not None and broken[0].facts == {"solution": "def add(:", "tests": "assert True"}
    py = task.parse(item(), TeacherResponse(text="```py\nx = 1\n```\n```Python3\nassert x\n```"))
    assert py is not None and py[0].facts == {"solution": "x = 1", "tests": "assert x"}


def test_tasks_survive_pickling_for_the_worker_actors():
    for task in (ProposeCode(ANSWER_SAMPLING, "chat", 7), SolveCode(ANSWER_SAMPLING, "chat", 7)):
        copy = pickle.loads(pickle.dumps(task))
        assert copy.prompt(item()) == task.prompt(item())


# -- dedup -------------------------------------------------------------------------------------------


def test_dedup_key_ignores_formatting_comments_and_docstrings():
    plain = "def add(a, b):\n    return a + b\n"
    noisy = '# adds\ndef add( a,b ):\n    """Sum."""\n\n    return (a +\n            b)  # done\n'
    assert DOMAIN.dedup_key(item(solution=plain)) == DOMAIN.dedup_key(item(solution=noisy))
    assert DOMAIN.dedup_key(item(solution=plain)) is not None


def test_dedup_key_tells_different_code_apart_and_skips_what_does_not_parse():
    base = DOMAIN.dedup_key(item(solution="def add(a, b):\n    return a + b"))
    assert base != DOMAIN.dedup_key(item(solution="def add(a, b):\n    return a - b"))
    assert base != DOMAIN.dedup_key(item(solution="def plus(a, b):\n    return a + b"))
    assert DOMAIN.dedup_key(item(solution="def add(a, b) return")) is None
    assert DOMAIN.dedup_key(item()) is None
    assert code_checks.normalised_key('"""only a docstring"""') == code_checks.normalised_key("pass")


# -- trivial tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tests",
    [
        "assert True",
        "assert 1 == 1",
        "x = 3\nassert x == 3",
        "assert add",  # names the function but never calls it
        "r = add(1, 2)\nassert True",  # calls it, but checks nothing about the result
        "def add(a, b):\n    return 3\nassert add(1, 2) == 3",  # tests their own stand-in
        "def check():\n    assert add(1, 2) == 3\nassert True",  # the real check never runs
        "import unittest\nclass T(unittest.TestCase):\n    def test_x(self):\n        self.assertTrue(True)",
    ],
)
def test_tests_that_cannot_fail_are_trivial(tests):
    assert not code_checks.exercises_solution(SOLUTION, tests)


@pytest.mark.parametrize(
    "tests",
    [
        "assert add(1, 2) == 3",
        "result = add(1, 2)\nassert result == 3",
        "for a, b, want in [(1, 2, 3)]:\n    assert add(a, b) == want",
        "def test_add():\n    assert add(1, 2) == 3",
        "def check(a, b, want):\n    assert add(a, b) == want\ncheck(1, 2, 3)",
        "import unittest\nclass T(unittest.TestCase):\n    def test_x(self):\n        self.assertEqual(add(1, 2), 3)",
        "import unittest\nclass T(unittest.TestCase):\n    def test_x(self):\n"
        "        with self.assertRaises(TypeError):\n            add(1, 'a')",
    ],
)
def test_tests_that_call_the_solution_count(tests):
    assert code_checks.exercises_solution(SOLUTION, tests)


def test_what_the_solution_imports_is_not_the_solution():
    solution = "import re\n\ndef words(text):\n    return re.findall(r'\\w+', text)"
    assert not code_checks.exercises_solution(solution, "assert re.match('a', 'a')")
    assert code_checks.exercises_solution(solution, "assert words('a b') == ['a', 'b']")
    shadowed = "from math import gcd\nassert gcd(4, 6) == 2"  # the tests' own gcd, not the solution's
    assert not code_checks.exercises_solution("def gcd(a, b):\n    return 1", shadowed)


def test_a_class_used_through_a_variable_counts():
    solution = (
        "class Box:\n    def __init__(self):\n        self.v = []\n    def get(self):\n        return self.v"
    )
    assert code_checks.exercises_solution(solution, "b = Box()\nassert b.get() == []")
    assert not code_checks.exercises_solution(solution, "b = [1]\nassert b == [1]")


def test_the_program_runs_test_functions_and_cases_nobody_calls():
    failing = "def test_add():\n    assert add(1, 2) == 4"
    program = code_checks.sandbox_program(SOLUTION, failing)
    with pytest.raises(AssertionError):
        exec(program, {})
    called = "def test_add():\n    assert add(1, 2) == 3\ntest_add()"
    assert code_checks.sandbox_program(SOLUTION, called) == SOLUTION + "\n\n" + called + "\n"
    case = "import unittest\nclass T(unittest.TestCase):\n    def test_x(self):\n        self.assertEqual(add(1, 2), 4)"
    with pytest.raises(AssertionError):
        exec(code_checks.sandbox_program(SOLUTION, case), {})
    exec(code_checks.sandbox_program(SOLUTION, case.replace("4)", "3)")), {})


# -- the verifier's reading of sandbox outcomes (a stand-in sandbox) ----------------------------------


class FakeSandbox:
    """Answers each run with the next scripted result and remembers the programs it was given."""

    def __init__(self, *results: SandboxResult) -> None:
        self.results, self.programs = list(results), []

    def __call__(self, source: str, limits: Limits) -> SandboxResult:
        self.programs.append(source)
        return self.results.pop(0)


def outcome(status="ok", stderr="", exit_code=0) -> SandboxResult:
    return SandboxResult(
        status=status, exit_code=exit_code, stdout="", stderr=stderr, duration_s=0.25, isolation="test"
    )


def test_syntax_errors_and_trivial_tests_fail_before_the_sandbox_runs():
    sandbox = FakeSandbox()
    verifier = CodeVerifier(Limits(), run=sandbox)
    bad = verifier.verify(item(solution="def add(a, b) return a", tests=TESTS))
    assert (bad.verdict, bad.reason, bad.details["part"]) == ("failed", "syntax_error", "solution")
    bad_tests = verifier.verify(item(solution=SOLUTION, tests="assert add(1, 2) ==="))
    assert (bad_tests.reason, bad_tests.details["part"]) == ("syntax_error", "tests")
    trivial = verifier.verify(item(solution=SOLUTION, tests="assert True"))
    assert (trivial.method, trivial.verdict, trivial.reason) == ("sandbox", "failed", "trivial_tests")
    assert verifier.verify(item(tests=TESTS)).reason == "no_solution"
    assert verifier.verify(item(tests=TESTS)).verdict == "unverifiable"
    assert sandbox.programs == []


@pytest.mark.parametrize(
    ("status", "stderr", "reason"),
    [
        ("error", "Traceback ...\n    assert add(1, 2) == 4\nAssertionError\n", "test_failure"),
        ("error", "Traceback ...\nZeroDivisionError: division by zero\n", "crash"),
        ("timeout", "", "timeout"),
        ("memory", "MemoryError", "memory"),
        ("output_limit", "", "output_limit"),
        ("killed", "", "crash"),
    ],
)
def test_a_failed_run_of_the_teachers_tests_says_why(status, stderr, reason):
    sandbox = FakeSandbox(outcome(status, stderr, exit_code=1))
    verdict = CodeVerifier(Limits(), run=sandbox).verify(item(solution=SOLUTION, tests=TESTS))
    assert (verdict.verdict, verdict.reason) == ("failed", reason)
    assert verdict.details["status"] == status and verdict.details["tests_run"] == ["teacher"]
    assert sandbox.programs == [SOLUTION + "\n\n" + TESTS + "\n"]


def test_reference_tests_run_after_the_teachers_and_can_fail_the_item():
    reference = ["assert add(2, 2) == 4", "assert add(0, 0) == 0"]
    row = item(solution=SOLUTION, tests=TESTS, reference_tests=reference)
    sandbox = FakeSandbox(outcome(), outcome("error", "AssertionError\n" + "x" * 5000, exit_code=1))
    verdict = CodeVerifier(Limits(), run=sandbox).verify(row)
    assert (verdict.verdict, verdict.reason) == ("failed", "reference_tests_failed")
    assert verdict.details["tests_run"] == ["teacher", "reference"]
    assert len(verdict.details["stderr_tail"]) == 2000 and verdict.details["duration_s"] == 0.5
    assert "assert add(0, 0) == 0" in sandbox.programs[1] and TESTS not in sandbox.programs[1]

    passed = CodeVerifier(Limits(), run=FakeSandbox(outcome(), outcome())).verify(row)
    assert (passed.verdict, passed.reason) == ("verified", None)
    assert passed.details["tests_run"] == ["teacher", "reference"] and passed.details["isolation"] == "test"


# -- the domain: configure, draft, steps, settle ------------------------------------------------------


def test_configure_gives_the_verifier_the_runs_timeout():
    configured = DOMAIN.configure(CFG)
    assert configured is not DOMAIN and configured.verifier.limits.timeout_s == 2.0
    assert DOMAIN.configure(SimpleNamespace(sandbox_timeout=60.0)).verifier.limits.cpu_s >= 60


def test_draft_is_fixed_by_the_seed_and_round():
    seeds = [seed_task(i, ["assert f(1) == 2"] if i % 2 else None) for i in range(6)]
    first = Code().draft(CFG, 0, 4, seeds)
    assert first == Code().draft(CFG, 0, 4, seeds)
    assert [r.id for r in first] == [
        "code-seed-code_001",
        "code-seed-code_003",
        "code-seed-code_005",
        "code-r0-p0",
        "code-r0-p1",
        "code-r0-p2",
        "code-r0-p3",
    ]
    assert all(r.origin == "code" and r.round == 0 for r in first)
    placeholders = [r for r in first if needs_task(r)]
    instructions = {s.instruction for s in seeds}
    for r in placeholders:
        assert r.facts is not None and 2 <= len(r.facts["examples"]) <= 3
        assert set(r.facts["examples"]) <= instructions
    assert first[0].instruction == seeds[1].instruction
    assert first[0].facts == {"reference_tests": ["assert f(1) == 2"], "seed_id": "code_001"}
    other_seed = Code().draft(SimpleNamespace(**{**vars(CFG), "seed": 8}), 0, 4, seeds)
    assert [r.facts for r in other_seed] != [r.facts for r in first]


def test_seed_tasks_are_drafted_as_problems_only_in_round_zero():
    seeds = [seed_task(i, ["assert f(1) == 2"]) for i in range(3)]
    later = Code().draft(CFG, 1, 2, seeds)
    assert [r.id for r in later] == ["code-r1-p0", "code-r1-p1"]
    assert all(needs_task(r) and r.round == 1 for r in later)


def test_steps_propose_only_for_placeholders_then_solve_everything():
    propose, solve = DOMAIN.steps(CFG)
    assert (propose.task.stage, solve.task.stage) == ("propose", "solve")
    seeds = [seed_task(1, ["assert f1(1) == 2"]), seed_task(2, None)]
    seed_problem, placeholder = Code().draft(CFG, 0, 1, seeds)
    assert propose.wants(placeholder) and not propose.wants(seed_problem)
    assert solve.wants(placeholder) and solve.wants(seed_problem)


def test_settle_keeps_the_solution_as_a_fenced_block():
    row = item(solution=SOLUTION, tests=TESTS).model_copy(update={"instances": [Instance(output="long")]})
    kept = DOMAIN.settle(row)
    assert kept.instances == [Instance(input="", output=f"```python\n{SOLUTION}\n```")]
    assert row.instances == [Instance(output="long")]


# -- the seed file -----------------------------------------------------------------------------------


def test_the_seed_file_has_enough_checked_tasks():
    seeds = load_seeds(SEEDS)
    assert len(seeds) >= 25 and len({s.name for s in seeds}) == len(seeds)
    for s in seeds:
        assert s.domain == "code" and not s.is_classification and s.tests is not None
        assert 3 <= len(s.tests) <= 6, s.id
        blocks = code_checks.python_blocks(s.instances[0].output)
        assert len(blocks) == 1 and code_checks.syntax_error(blocks[0]) is None, s.id
        assert code_checks.exercises_solution(blocks[0], "\n".join(s.tests)), s.id
