"""Domain runs end to end through the real OpenAI-compatible test server (`--domain`).

The test server answers with the synthetic teacher, which gets arithmetic wrong about a third of the
time and writes code that fails its tests, cannot fail (`assert True`), crashes or never ends, so every
verifier has something to reject. Each test reads the run folder the way a user would.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from generator.config import RunConfig
from generator.run import run
from generator.sandbox import Limits, run_python
from generator.stages.base import Progress
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def config(server: FakeOpenAI, domain: str, out: Path, **kw: Any) -> RunConfig:
    settings: dict[str, Any] = {"seed": 3, "target": 30, "max_retries": 2, "sandbox_timeout": 2.0, **kw}
    return RunConfig(
        seeds=REPO / "seeds" / f"{domain}.jsonl",
        domain=domain,
        out=out,
        teacher="openai",
        base_url=server.base_url,
        model="fake",
        cache=False,
        **settings,
    )


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- an arithmetic answer, recomputed here with nothing of generator/domains ---------------------------


def exact(text: str) -> Fraction:
    """Python's own parser and Fraction arithmetic: +, -, *, / and parentheses on whole numbers."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return Fraction(node.value)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        assert isinstance(node, ast.BinOp), ast.dump(node)
        left, right = walk(node.left), walk(node.right)
        ops = {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}
        return ops[type(node.op)] if type(node.op) in ops else left / right

    return walk(ast.parse(text.replace("x", "*"), mode="eval").body)


def recomputed(facts: dict[str, Any]) -> str:
    expression = facts.get("story_expression") or facts["expression"]
    if facts.get("answer_form") == "quotient_remainder":
        a, b = (int(n) for n in expression.split("/"))
        return f"{a // b} R {a % b}"
    value = exact(expression)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def test_arithmetic_keeps_only_answers_that_recompute(ray_session, fake_openai: FakeOpenAI, tmp_path: Path):
    out = tmp_path / "arith"
    summary = run(config(fake_openai, "arithmetic", out, target=60))
    rows = json.loads((out / "alpaca.json").read_text())
    records = lines(out / "instructions.jsonl")[:60]
    assert len(rows) == 60 == summary["counts"]["dataset_rows"]
    for row, record in zip(rows, records, strict=True):
        assert row["instruction"] == record["instruction"]
        final = re.findall(r"^Answer: (.+)$", row["output"], flags=re.M)[-1]
        assert final == recomputed(record["facts"]), record
        v = record["verification"]
        assert v["method"] == "computed" and v["details"]["value"] == final
        if v["verdict"] != "verified":  # the teacher was wrong: its answer was replaced, not kept
            assert v["details"]["teacher_answer"] != final
            assert row["output"] != record["provenance"] and "Working it out" not in row["output"]
    # stories, words and symbols all reach the dataset, and so do problems the teacher got wrong
    assert {r["facts"]["phrasing"] for r in records} == {"story", "words", "symbols"}
    assert {r["verification"]["verdict"] for r in records} >= {"verified", "failed"}

    report = summary["domain"]
    v = report["verification"]
    assert report["verify"] is True and v["verified"] + v["repaired"] >= 60
    assert report["teacher_answers_rejected"] > v["repaired"] > 0
    # what is dropped is a word problem that does not add up: the teacher wrote the problem itself
    dropped = [d for d in lines(out / "dropped.jsonl") if d["filter"] == "verify"]
    assert len(dropped) == report["dropped"] > 0
    assert {d["reason"] for d in dropped} <= {
        "story_wrong_answer",
        "story_numbers_missing",
        "story_unparseable",
    }
    for d in dropped:
        details = d["item"]["verification"]["details"]
        assert d["item"]["facts"]["phrasing"] == "story" and details["stated_answer"]
    assert json.loads((out / "stats.json").read_text())["domain"] == report


def test_no_verify_keeps_the_teacher_answers_and_their_verdicts(
    ray_session, fake_openai: FakeOpenAI, tmp_path: Path
):
    out = tmp_path / "unverified"
    summary = run(config(fake_openai, "arithmetic", out, verify=False))
    records = lines(out / "instructions.jsonl")
    rows = json.loads((out / "alpaca.json").read_text())
    assert len(rows) == 30
    # the outputs are the teacher's own text, right or wrong, and each carries its verdict
    for row, record in zip(rows, records, strict=False):
        assert row["output"] == record["instances"][0]["output"]
        assert record["verification"]["verdict"] in {"verified", "failed", "unverifiable"}
    wrong = [r for r in records[:30] if r["verification"]["verdict"] != "verified"]
    assert wrong and summary["domain"]["teacher_answers_rejected"] >= len(wrong)
    assert summary["domain"]["verify"] is False
    assert not [d for d in lines(out / "dropped.jsonl") if d["filter"] == "verify"]


def test_code_keeps_only_solutions_that_pass_in_the_sandbox(
    ray_session, fake_openai: FakeOpenAI, tmp_path: Path
):
    out = tmp_path / "code"
    summary = run(config(fake_openai, "code", out, target=10))
    records = lines(out / "instructions.jsonl")[:10]
    rows = json.loads((out / "alpaca.json").read_text())
    assert len(rows) == 10
    for record in records:
        v = record["verification"]
        assert v["verdict"] == "verified" and v["method"] == "sandbox"
        # and again, here: the kept solution passes its tests
        facts = record["facts"]
        again = run_python(facts["solution"] + "\n\n" + facts["tests"], Limits(timeout_s=5))
        assert again.status == "ok", again
    reasons = {d["reason"] for d in lines(out / "dropped.jsonl") if d["filter"] == "verify"}
    # the seeds' own tests catch what passes only its own weak tests; `assert True` is no test
    assert {"reference_tests_failed", "trivial_tests", "test_failure"} <= reasons
    assert summary["domain"]["verification"]["failed"]["trivial_tests"] > 0


def test_an_interrupted_domain_run_resumes_to_the_same_dataset(
    ray_session, fake_openai: FakeOpenAI, tmp_path: Path
):
    fake_openai.delay = 0.01
    stop = threading.Event()
    seen: list[Progress] = []

    def stop_after_first(p: Progress) -> None:
        seen.append(p)
        stop.set()

    cfg = config(fake_openai, "arithmetic", tmp_path / "resumed", target=20)
    first = run(cfg, on_progress=stop_after_first, stop=stop)
    assert first.get("stopped") and len(seen) == 1 and seen[0].kept < 20
    again = run(cfg)
    whole = run(config(fake_openai, "arithmetic", tmp_path / "whole", target=20))
    assert (tmp_path / "resumed" / "alpaca.json").read_bytes() == (
        tmp_path / "whole" / "alpaca.json"
    ).read_bytes()
    ids = [r["id"] for r in lines(tmp_path / "resumed" / "instructions.jsonl")]
    assert len(ids) == len(set(ids)), "an item was written twice"
    assert again["domain"]["verification"] == whole["domain"]["verification"]


def test_the_cli_grows_a_domain_and_refuses_another_domains_seeds(fake_openai: FakeOpenAI, tmp_path: Path):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "generator.run",
                *args,
                "--teacher",
                "openai",
                "--base-url",
                fake_openai.base_url,
                "--model",
                "fake",
                "--no-cache",
                "--out",
                str(tmp_path / "cli"),
            ],
            cwd=REPO,
            env={**os.environ, "RAY_AUTH_MODE": "disabled"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )

    wrong = cli("--domain", "code", "--seeds", "seeds/arithmetic.jsonl", "-n", "3")
    assert wrong.returncode == 2 and "belongs to the arithmetic domain, not code" in wrong.stderr
    done = cli("--domain", "arithmetic", "--seeds", "seeds/arithmetic.jsonl", "-n", "6", "--no-verify")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "arithmetic (computed):" in done.stdout and "kept anyway (--no-verify)" in done.stdout
    again = cli("--domain", "arithmetic", "--seeds", "seeds/arithmetic.jsonl", "-n", "6")
    assert (
        again.returncode == 2 and "different settings (run_name, verify)" in again.stderr
    )  # another dataset
    assert len(json.loads((tmp_path / "cli" / "alpaca.json").read_text())) == 6
