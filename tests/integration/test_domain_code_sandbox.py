"""The code verifier with the real sandbox: every failure mode the issue names ends with its reason,
and every seed's reference solution passes its own tests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from generator.domains import code_checks
from generator.domains.code import CodeVerifier
from generator.records import Record
from generator.sandbox import Limits
from generator.seeds import load_seeds

pytestmark = pytest.mark.integration

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "code.jsonl"
VERIFIER = CodeVerifier(Limits(timeout_s=2.0, cpu_s=2))

SOLUTION = "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))"
TESTS = "assert clamp(5, 0, 3) == 3\nassert clamp(-1, 0, 3) == 0\nassert clamp(2, 0, 3) == 2"


def item(solution: str, tests: str, **facts) -> Record:
    return Record(
        id="code-r0-p0",
        instruction="Write clamp(x, lo, hi).",
        origin="code",
        facts={"solution": solution, "tests": tests, **facts},
    )


def test_a_correct_solution_with_its_tests_is_verified():
    verdict = VERIFIER.verify(item(SOLUTION, TESTS))
    assert (verdict.method, verdict.verdict, verdict.reason) == ("sandbox", "verified", None)
    assert verdict.details["status"] == "ok" and verdict.details["exit_code"] == 0
    assert verdict.details["tests_run"] == ["teacher"] and verdict.details["isolation"]


def test_an_off_by_one_solution_fails_its_tests():
    off_by_one = "def total(n):\n    return sum(range(1, n))"  # misses n itself
    verdict = VERIFIER.verify(item(off_by_one, "assert total(3) == 6\nassert total(1) == 1"))
    assert (verdict.verdict, verdict.reason) == ("failed", "test_failure")
    assert "AssertionError" in verdict.details["stderr_tail"]


def test_assert_true_is_rejected_as_trivial_even_for_wrong_code():
    verdict = VERIFIER.verify(item("def clamp(x, lo, hi):\n    return 42", "assert True"))
    assert (verdict.verdict, verdict.reason) == ("failed", "trivial_tests")


def test_code_that_passes_only_its_own_weak_tests_fails_the_reference_tests():
    weak = "def is_even(n):\n    return n in (0, 2, 4)"  # just enough for the teacher's tests
    reference = ["assert is_even(10) is True", "assert is_even(7) is False"]
    row = item(weak, "assert is_even(2)\nassert not is_even(3)", reference_tests=reference)
    verdict = VERIFIER.verify(row)
    assert (verdict.verdict, verdict.reason) == ("failed", "reference_tests_failed")
    assert verdict.details["tests_run"] == ["teacher", "reference"]
    fixed = row.model_copy(
        update={"facts": {**row.facts, "solution": "def is_even(n):\n    return n % 2 == 0"}}
    )
    assert VERIFIER.verify(fixed).verdict == "verified"


def test_an_infinite_loop_times_out():
    loop = "def spin(x):\n    while True:\n        x += 1"
    verdict = CodeVerifier(Limits(timeout_s=1.0, cpu_s=2)).verify(item(loop, "assert spin(1) == 2"))
    assert (verdict.verdict, verdict.reason) == ("failed", "timeout")
    assert verdict.details["status"] == "timeout"


def test_a_syntax_error_fails_without_running_anything():
    verdict = VERIFIER.verify(item("def clamp(x, lo, hi)\n    return x", TESTS))
    assert (verdict.verdict, verdict.reason) == ("failed", "syntax_error")
    assert "status" not in verdict.details  # no sandbox result: nothing ran


def test_an_exception_is_a_crash():
    raising = "def clamp(x, lo, hi):\n    return x / 0"
    verdict = VERIFIER.verify(item(raising, TESTS))
    assert (verdict.verdict, verdict.reason) == ("failed", "crash")
    assert "ZeroDivisionError" in verdict.details["stderr_tail"]


def test_every_seed_reference_solution_passes_its_tests():
    seeds = load_seeds(SEEDS)
    rows = [
        item(code_checks.python_blocks(s.instances[0].output)[0], "\n".join(s.tests or [])) for s in seeds
    ]
    verifier = CodeVerifier(Limits(timeout_s=10.0))
    with ThreadPoolExecutor(max_workers=8) as pool:  # each verify waits on its own sandbox process
        verdicts = list(pool.map(verifier.verify, rows))
    failed = {
        s.id: (v.reason, v.details.get("stderr_tail"))
        for s, v in zip(seeds, verdicts, strict=True)
        if v.verdict != "verified"
    }
    assert failed == {}
