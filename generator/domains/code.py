"""The code domain (SelfCodeAlign-style): Python tasks whose answers are run, not judged.

A round drafts problems two ways. Most are placeholders: the teacher first proposes a new task in
the style of two or three seed tasks (`ProposeCode`), then solves it (`SolveCode`). In round 0 every
seed task that carries `tests` is also drafted as a problem to solve directly; those tests, written
by the project and not by the teacher, are how a solution that passes only its own weak tests is
caught.

The teacher answers with a solution and unit tests; `CodeVerifier` checks them in this order:
syntax (no sandbox), tests that cannot fail (`assert True`, asserts that never call the solution),
then the solution with the teacher's tests in the sandbox, then with the seed's reference tests.
Only a solution that passes all of it is verified; every other item keeps the reason it failed
(`syntax_error`, `trivial_tests`, `test_failure`, `crash`, `timeout`, `memory`, `output_limit`,
`reference_tests_failed`). The pure checks live in `code_checks.py`.
"""

from __future__ import annotations

import copy
import math
import random
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from generator.domains.base import DomainStep
from generator.domains.code_checks import (
    exercises_solution,
    normalised_key,
    python_blocks,
    sandbox_program,
    syntax_error,
)
from generator.profiles import ANSWER_SAMPLING
from generator.records import Instance, Record, SeedTask, Verification
from generator.sandbox import Limits, SandboxResult, run_python
from generator.seeding import derive_seed
from generator.tasks.base import request_for, template
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse

if TYPE_CHECKING:
    from generator.config import RunConfig

__all__ = ["DOMAIN", "Code", "CodeVerifier", "ProposeCode", "SolveCode", "needs_task"]

STDERR_TAIL = 2000  # characters of the sandbox's stderr kept as evidence


def needs_task(item: Record) -> bool:
    """Is this a placeholder the teacher must first write a task for? (Seed problems have one.)"""
    return bool((item.facts or {}).get("needs_task"))


# -- teacher steps (run in worker actors: module-level classes with plain attributes) -----------------


class ProposeCode:
    """Ask for one new, self-contained Python task in the style of the example tasks."""

    stage = "propose"

    def __init__(self, params: SamplingParams, api: str, seed: int) -> None:
        self.params, self.api, self.seed = params, api, seed

    def prompt(self, item: Record) -> TeacherRequest:
        examples = (item.facts or {}).get("examples") or []
        listed = "\n\n".join(f"Task {i}: {text.strip()}" for i, text in enumerate(examples, start=1))
        params = self.params.model_copy(update={"seed": derive_seed(self.seed, "code", self.stage, item.id)})
        return request_for(self.api, template("code_propose").format(examples=listed), params)

    def parse(self, item: Record, response: TeacherResponse) -> list[Record] | None:
        if not response.ok or response.truncated:  # a task cut off mid-sentence cannot be solved
            return None
        task = _LABEL.sub("", response.text.strip(), count=1).strip()
        if not task:
            return None
        return [item.model_copy(update={"instruction": task, "facts": {}}, deep=True)]


# A model often repeats the prompt's label ("New task:", "Task 4:", "**Task:**") before the task.
_LABEL = re.compile(r"^(?:#+\s*)?(?:\*\*)?(?:new\s+)?task(?:\s*\d+)?\s*:(?:\*\*)?\s*", re.IGNORECASE)


class SolveCode:
    """Ask for a solution and its unit tests, as two fenced ```python blocks (the template's format)."""

    stage = "solve"

    def __init__(self, params: SamplingParams, api: str, seed: int) -> None:
        self.params, self.api, self.seed = params, api, seed

    def prompt(self, item: Record) -> TeacherRequest:
        params = self.params.model_copy(update={"seed": derive_seed(self.seed, "code", self.stage, item.id)})
        return request_for(self.api, template("code_solve").format(instruction=item.instruction), params)

    def parse(self, item: Record, response: TeacherResponse) -> list[Record] | None:
        """The first block is the solution, the last the tests (a usage example between them is
        ignored). Whether they are any good is the verifier's question, not the parser's."""
        if not response.ok or response.truncated:
            return None
        blocks = python_blocks(response.text)
        if len(blocks) < 2:
            return None
        facts = {**copy.deepcopy(item.facts or {}), "solution": blocks[0], "tests": blocks[-1]}
        answer = Instance(input="", output=response.text.strip())
        return [item.model_copy(update={"instances": [answer], "facts": facts}, deep=True)]


# -- the verifier -------------------------------------------------------------------------------------

Runner = Callable[[str, Limits], SandboxResult]


class CodeVerifier:
    """Runs a solution with its tests in the sandbox; never raises for a bad answer.

    `run` is the sandbox entry point; tests swap it to check how outcomes are read.
    """

    method = "sandbox"

    def __init__(self, limits: Limits | None = None, run: Runner = run_python) -> None:
        self.limits = limits or Limits()
        self.run = run

    def verify(self, item: Record) -> Verification:
        facts = item.facts or {}
        solution, tests = facts.get("solution"), facts.get("tests") or ""
        if not solution:
            return self._verdict("unverifiable", "no_solution")
        for part, source in (("solution", solution), ("tests", tests)):
            error = syntax_error(source)
            if error is not None:
                return self._verdict("failed", "syntax_error", part=part, error=error)
        if not exercises_solution(solution, tests):
            return self._verdict("failed", "trivial_tests")
        reference = facts.get("reference_tests") or []
        reference = reference if isinstance(reference, str) else "\n".join(reference)
        reference_error = syntax_error(reference) if reference else None
        if reference_error is not None:  # the project's fault, not the teacher's
            return self._verdict("unverifiable", "bad_reference_tests", error=reference_error)

        evidence: dict[str, Any] = {"tests_run": [], "duration_s": 0.0}
        for which, suite in (("teacher", tests), ("reference", reference)):
            if not suite:
                continue
            result = self.run(sandbox_program(solution, suite), self.limits)
            evidence = _evidence(evidence, which, result)
            if result.status != "ok":
                reason = _failure(result) if which == "teacher" else "reference_tests_failed"
                return self._verdict("failed", reason, **evidence)
        return self._verdict("verified", None, **evidence)

    def _verdict(self, verdict: Any, reason: str | None, **details: Any) -> Verification:
        return Verification(method=self.method, verdict=verdict, reason=reason, details=details)


def _evidence(evidence: dict[str, Any], which: str, result: SandboxResult) -> dict[str, Any]:
    """What the sandbox said, for the record: the last run's outcome, every run's name and time."""
    return {
        "tests_run": [*evidence["tests_run"], which],
        "status": result.status,
        "exit_code": result.exit_code,
        "stderr_tail": result.stderr[-STDERR_TAIL:],
        "isolation": result.isolation,
        "duration_s": round(evidence["duration_s"] + result.duration_s, 3),
    }


_ASSERTION = re.compile(r"^AssertionError\b", re.MULTILINE)  # a traceback's last line, or unittest's report
_STATUS_REASON = {"timeout": "timeout", "memory": "memory", "output_limit": "output_limit", "killed": "crash"}


def _failure(result: SandboxResult) -> str:
    """Why the teacher's own tests did not pass: a failed assert, or the program died another way."""
    if result.status == "error":
        return "test_failure" if _ASSERTION.search(result.stderr) else "crash"
    return _STATUS_REASON.get(result.status, "crash")


# -- the domain ---------------------------------------------------------------------------------------


class Code:
    name = "code"

    def __init__(self, verifier: CodeVerifier | None = None) -> None:
        self.verifier = verifier or CodeVerifier()

    def configure(self, cfg: RunConfig) -> Code:
        """A copy whose sandbox allows the run's `sandbox_timeout`; the CPU limit grows with it, so a
        long wall-clock limit is not cut short by the default CPU one."""
        timeout = cfg.sandbox_timeout
        limits = Limits(timeout_s=timeout, cpu_s=max(Limits().cpu_s, math.ceil(timeout)))
        return Code(CodeVerifier(limits, self.verifier.run))

    def draft(self, cfg: RunConfig, round_: int, count: int, seeds: list[SeedTask]) -> list[Record]:
        rng = random.Random(derive_seed(cfg.seed, "code", round_))
        items: list[Record] = []
        if round_ == 0:  # seed problems first: dedup keeps the first of equal solutions, and these
            # carry reference tests, the stronger check
            items += [_seed_problem(seed) for seed in seeds if seed.tests]
        for i in range(count):
            shown = rng.sample(seeds, min(len(seeds), rng.randint(2, 3)))
            facts = {"needs_task": True, "examples": [seed.instruction for seed in shown]}
            parents = [f"seed:{seed.id}" for seed in shown]
            items.append(_record(f"code-r{round_}-p{i}", "", round_, facts, parent_ids=parents))
        return items

    def steps(self, cfg: RunConfig) -> list[DomainStep]:
        params = cfg.answer_params or ANSWER_SAMPLING
        return [
            DomainStep(ProposeCode(params, cfg.evolve_api, cfg.seed), wants=needs_task),
            DomainStep(SolveCode(params, cfg.evolve_api, cfg.seed)),
        ]

    def dedup_key(self, item: Record) -> str | None:
        """The solution's syntax tree, docstrings left out (`code_checks.normalised_key`)."""
        solution = (item.facts or {}).get("solution")
        return normalised_key(solution) if solution else None

    def settle(self, item: Record) -> Record:
        """The dataset keeps the verified solution alone, as a fenced block (not the tests)."""
        solution = (item.facts or {})["solution"]
        output = Instance(input="", output=f"```python\n{solution}\n```")
        return item.model_copy(update={"instances": [output]}, deep=True)

    def repair(self, item: Record) -> Record | None:
        """Code that fails has no other answer: the item is dropped with its failure."""
        return None


def _record(id_: str, instruction: str, round_: int, facts: dict[str, Any], **extra: Any) -> Record:
    return Record(id=id_, instruction=instruction, origin="code", round=round_, facts=facts, **extra)


def _seed_problem(seed: SeedTask) -> Record:
    """A seed task to solve as it is; its tests become the reference tests."""
    facts = {"reference_tests": list(seed.tests or []), "seed_id": seed.id}
    parent = f"seed:{seed.id}"
    return _record(f"code-seed-{seed.id}", seed.instruction, 0, facts, parent_ids=[parent], root_id=parent)


DOMAIN = Code()
