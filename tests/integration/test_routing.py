"""Per-stage teachers end to end: one run routed across two OpenAI-compatible servers on two ports.

The CLI runs as a subprocess (real Ray, real sockets, real SQLite); each server records what it was
asked, so the test sees which stage went where, and checks stats.json's per-teacher accounts and the
records' provenance against what the servers saw.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fake_openai import FakeOpenAI
from tests.integration.test_pipeline import read_jsonl, run_cli

pytestmark = pytest.mark.integration


def stage_of(body: dict[str, Any]) -> str:
    """Which of the bootstrap's and evolution's prompts a request body carries (by its wording)."""
    text = body.get("prompt") or "\n".join(m["content"] for m in body.get("messages", []))
    if text.startswith("Here is a numbered list of varied tasks"):
        return "propose"
    if text.startswith("Decide whether each task is a classification task"):
        return "classify"
    if text.startswith(("Write examples for the task below", "Each task below sorts its input")):
        return "instances"
    if text.startswith(("You rewrite prompts", "You write new prompts")):
        return "evolve"
    if text.startswith(("Compare two prompts", "Rate the quality", "Rate how complex")):
        return "judge"
    return "answer"  # the evolution's answers are the bare instruction


def routed_run_file(small: FakeOpenAI, big: FakeOpenAI, path: Path, **extra: Any) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "teachers": {
                    "small": {
                        "teacher": "openai",
                        "base_url": small.base_url,
                        "model": "small",
                        "price_prompt_per_1m": 1.0,
                        "price_completion_per_1m": 2.0,
                    },
                    "big": {
                        "teacher": "openai",
                        "base_url": big.base_url,
                        "model": "big",
                        "max_in_flight": 4,
                        "price_prompt_per_1m": 10.0,
                        "price_completion_per_1m": 30.0,
                    },
                },
                "route": {"propose": "small", "classify": "small", "instances": "big"},
                **extra,
            }
        )
    )
    return path


def cli(run_file: Path, seeds: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    # The run's own teacher is a third endpoint no stage is routed to: it must see nothing.
    return [
        sys.executable, "-m", "generator.run", "--config", str(run_file), "--seeds", str(seeds),
        "--teacher", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "unused",
        "--out", str(out), "--cache-path", str(cache), "--seed", "5", "--prompts-per-round", "4",
        "--max-retries", "1", *extra,
    ]  # fmt: skip


def test_stages_go_to_their_teachers_and_costs_add_up_per_teacher(small_seeds: Path, tmp_path: Path):
    with FakeOpenAI() as small, FakeOpenAI() as big:
        run_file = routed_run_file(small, big, tmp_path / "run.yaml")
        out = tmp_path / "out"
        proc = run_cli(cli(run_file, small_seeds, out, tmp_path / "c.sqlite", "-n", "12"))
        assert proc.returncode == 0, proc.stderr
        assert {stage_of(b) for b in small.requests} == {"propose", "classify"}
        assert {stage_of(b) for b in big.requests} == {"instances"}
        assert {b["model"] for b in small.requests} == {"small"}
        assert {b["model"] for b in big.requests} == {"big"}

    stats = json.loads((out / "stats.json").read_text())
    teachers = stats["teachers"]
    assert set(teachers) == {"default", "small", "big"}
    assert teachers["default"]["requests"] == 0 and teachers["default"]["stages"] == {}  # no stage routed
    assert teachers["small"]["model"] == "small" and teachers["big"]["model"] == "big"
    assert set(teachers["small"]["stages"]) == {"propose", "classify"}
    assert set(teachers["big"]["stages"]) == {"instances"}
    # each server saw exactly what its teacher's window answered (rounds abandoned at the target
    # included: those are not in the stage counters); the counters are those of the committed rounds
    assert teachers["small"]["in_flight"]["answers"] == len(small.requests)
    assert teachers["big"]["in_flight"]["answers"] == len(big.requests)
    committed = stats["stages"]["propose"]["requests"] + stats["stages"]["classify"]["requests"]
    assert teachers["small"]["requests"] == committed <= len(small.requests)
    assert teachers["big"]["requests"] == stats["stages"]["instances"]["requests"] <= len(big.requests)
    # each teacher's tokens at its own prices; the run's cost is their sum
    for name, (p, c) in {"small": (1.0, 2.0), "big": (10.0, 30.0)}.items():
        t = teachers[name]
        assert t["cost_usd"] == pytest.approx(t["prompt_tokens"] * p / 1e6 + t["completion_tokens"] * c / 1e6)
        assert t["prompt_tokens"] > 0 and t["mean_latency_s"] >= 0
        assert sum(s["cost_usd"] for s in t["stages"].values()) == pytest.approx(t["cost_usd"], abs=1e-5)
    assert stats["cost_estimate_usd"] == pytest.approx(
        teachers["small"]["cost_usd"] + teachers["big"]["cost_usd"], abs=1e-5
    )
    assert teachers["big"]["in_flight"]["limit"] == 4  # its own window

    # provenance names the model of every call
    for record in read_jsonl(out / "instructions.jsonl"):
        models = {p["stage"]: p["model"] for p in record["provenance"]}
        assert models["propose"] == "small" and models["classify"] == "small", models
        assert models["instances"] == "big", models
    assert "teacher small (openai/small): classify, propose" in proc.stdout


def test_a_routed_run_resumes_to_the_same_dataset(small_seeds: Path, tmp_path: Path):
    with FakeOpenAI() as small, FakeOpenAI() as big:
        run_file = routed_run_file(small, big, tmp_path / "run.yaml")
        ref = run_cli(cli(run_file, small_seeds, tmp_path / "ref", tmp_path / "ref.sqlite", "-n", "40"))
        assert ref.returncode == 0, ref.stderr
        # the same run, stopped after its first rounds and then resumed with a higher budget
        out, cache = tmp_path / "cut", tmp_path / "cut.sqlite"
        first = run_cli(cli(run_file, small_seeds, out, cache, "-n", "40", "--max-rounds", "1"))
        assert first.returncode == 0, first.stderr
        assert len(read_jsonl(out / "instructions.jsonl")) < len(
            read_jsonl(tmp_path / "ref" / "instructions.jsonl")
        )
        # a teacher's limits and prices may change between a run and its resumption; its model may not
        cheaper = routed_run_file(small, big, tmp_path / "cheaper.yaml")
        text = yaml.safe_load(cheaper.read_text())
        text["teachers"]["big"]["price_completion_per_1m"] = 1.0
        text["teachers"]["big"]["max_in_flight"] = 2
        cheaper.write_text(yaml.safe_dump(text))
        resumed = run_cli(cli(cheaper, small_seeds, out, cache, "-n", "40"))
        assert resumed.returncode == 0, resumed.stderr
        assert "resuming" in resumed.stderr
        assert (out / "alpaca.json").read_text() == (tmp_path / "ref" / "alpaca.json").read_text()
        ids = [r["id"] for r in read_jsonl(out / "instructions.jsonl")]
        assert ids == [r["id"] for r in read_jsonl(tmp_path / "ref" / "instructions.jsonl")]

        other = routed_run_file(small, big, tmp_path / "other.yaml")
        text = yaml.safe_load(other.read_text())
        text["teachers"]["big"]["model"] = "bigger"
        other.write_text(yaml.safe_dump(text))
        refused = run_cli(cli(other, small_seeds, out, cache, "-n", "50"))
        assert refused.returncode == 2 and "teachers" in refused.stderr


def test_an_unknown_teacher_in_a_route_is_a_clear_error(small_seeds: Path, tmp_path: Path):
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump({"route": {"answer": "strong"}}))
    proc = run_cli(cli(run_file, small_seeds, tmp_path / "o", tmp_path / "c.sqlite", "-n", "3"))
    assert proc.returncode == 2
    assert "route.answer: unknown teacher 'strong'; the run's teachers: default" in proc.stderr
    run_file.write_text(yaml.safe_dump({"route": {"anwser": "default"}}))
    proc = run_cli(cli(run_file, small_seeds, tmp_path / "o", tmp_path / "c.sqlite", "-n", "3"))
    assert proc.returncode == 2 and "unknown stage 'anwser'" in proc.stderr


def test_answer_and_judge_model_flags_route_the_evolution(small_seeds: Path, tmp_path: Path):
    with FakeOpenAI() as server:
        out = tmp_path / "out"
        args = [
            sys.executable, "-m", "generator.run", "--seeds", str(small_seeds), "--teacher", "openai",
            "--base-url", server.base_url, "--model", "cheap", "--answer-model", "strong",
            "--judge-model", "referee", "--out", str(out), "--cache-path", str(tmp_path / "c.sqlite"),
            "-n", "6", "--prompts-per-round", "4", "--evolve-rounds", "1",
        ]  # fmt: skip
        proc = run_cli(args)
        assert proc.returncode == 0, proc.stderr
        by_model: dict[str, set[str]] = {}
        for body in server.requests:
            by_model.setdefault(body["model"], set()).add(stage_of(body))
    assert by_model["cheap"] >= {"propose", "classify", "evolve"}
    assert "instances" not in by_model["cheap"]
    assert by_model["strong"] == {"instances", "answer"}
    assert by_model["referee"] == {"judge"}
    stats = json.loads((out / "stats.json").read_text())
    assert set(stats["teachers"]) == {"default", "answer", "judge"}
    assert set(stats["teachers"]["answer"]["stages"]) == {"instances", "answer"}
    assert set(stats["teachers"]["judge"]["stages"]) == {"judge", "score_complexity", "score_quality"}
    assert {
        p["model"]
        for r in read_jsonl(out / "evolved.jsonl")
        for p in r["provenance"]
        if p["stage"] == "answer"
    } == {"strong"}
