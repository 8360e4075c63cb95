"""End to end: `python -m generator.evolve` on a small Alpaca file against a real OpenAI-compatible server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI
from tests.integration.test_pipeline import read_jsonl, run_cli

pytestmark = pytest.mark.integration

ROWS = [
    {"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat, sleep, move."},
    {
        "instruction": "Summarize the text.",
        "input": "The Moon's pull makes two tides a day.",
        "output": "Tides.",
    },
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    {"instruction": "Explain what a volcano is.", "input": "", "output": "A mountain that erupts."},
    {"instruction": "Write a haiku about rain.", "input": "", "output": "Soft rain on the roof..."},
    {"instruction": "List two prime numbers.", "input": "", "output": "2 and 3."},
]


def evolve_cli(server: FakeOpenAI, data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "generator.evolve", "--input", str(data), "--out", str(out),
        "--teacher", "openai", "--base-url", server.base_url, "--model", "fake",
        "--cache-path", str(cache), "--seed", "3", "--max-retries", "2", *extra,
    ]  # fmt: skip


def test_evolving_an_alpaca_file_writes_the_dataset_lineage_and_stats(
    fake_openai: FakeOpenAI, tmp_path: Path
):
    data = tmp_path / "alpaca.json"
    data.write_text(json.dumps(ROWS))
    cache = tmp_path / "c.sqlite"
    out = tmp_path / "evol"
    proc = run_cli(evolve_cli(fake_openai, data, out, cache, "--rounds", "2"))
    assert proc.returncode == 0, proc.stderr

    for name in ("alpaca.json", "evolved.jsonl", "evolve_dropped.jsonl", "stats.json", "config.json"):
        assert (out / name).exists(), name
    assert not (out / "instructions.jsonl").exists()  # nothing was bootstrapped

    evolved = read_jsonl(out / "evolved.jsonl")
    dataset = json.loads((out / "alpaca.json").read_text())
    assert dataset[: len(ROWS)] == ROWS  # the input rows first, unchanged
    assert [d["instruction"] for d in dataset[len(ROWS) :]] == [r["instruction"] for r in evolved]
    assert all(set(d) == {"instruction", "input", "output"} and d["output"] for d in dataset)
    assert evolved, "the synthetic teacher's evolutions mostly pass the eliminator"
    ids = {r["id"] for r in evolved} | {f"seed:alpaca_{i}" for i in range(len(ROWS))}
    for r in evolved:
        assert r["parent_ids"][0] in ids and r["root_id"].startswith("seed:alpaca_")
        assert r["id"] == f"e{r['round']}-{r['parent_ids'][0]}" and r["origin"] == f"evol:{r['op']}"
        assert set(r["scores"]) == {"complexity", "quality", "deita"}

    stats = json.loads((out / "stats.json").read_text())
    rounds = stats["evolve"]["rounds"]
    assert [r["round"] for r in rounds] == [1, 2]
    for r in rounds:
        failed, eliminated = sum(r["failed"].values()), sum(r["eliminated"].values())
        assert r["evolved"] == len(ROWS) == failed + eliminated + r["kept"]
    dropped = read_jsonl(out / "evolve_dropped.jsonl")
    assert len(dropped) == sum(sum(r["failed"].values()) + sum(r["eliminated"].values()) for r in rounds)
    assert stats["counts"]["dataset_rows"] == len(dataset)
    config = json.loads((out / "config.json").read_text())
    assert config["bootstrap"] is False and config["evolve_rounds"] == 2
    assert config["evolve_params"]["top_p"] == 0.95 and config["evolve_filters"]

    # the per-round table at the end of the run
    assert "done:" in proc.stdout and "evolution (general): 6 items" in proc.stdout
    assert "round 1:" in proc.stdout and "round 2:" in proc.stdout and "ops:" in proc.stdout

    # the same command elsewhere, with the same cache: no teacher call, the same dataset
    sent = len(fake_openai.requests)
    again = run_cli(evolve_cli(fake_openai, data, tmp_path / "again", cache, "--rounds", "2"))
    assert again.returncode == 0, again.stderr
    assert len(fake_openai.requests) == sent
    assert (tmp_path / "again" / "alpaca.json").read_text() == (out / "alpaca.json").read_text()


def test_bad_input_exits_2_before_any_teacher_call(fake_openai: FakeOpenAI, tmp_path: Path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"instruction": "a", "input": "", "output": "b"}\n{"instruction": "c", "input": ""}\n')
    proc = run_cli(evolve_cli(fake_openai, data, tmp_path / "o", tmp_path / "c.sqlite"))
    assert proc.returncode == 2
    assert f"{data}:2: missing field(s) output" in proc.stderr and "Traceback" not in proc.stderr
    assert fake_openai.requests == []

    proc = run_cli(
        evolve_cli(fake_openai, tmp_path / "bad.jsonl", tmp_path / "o", tmp_path / "c", "--evolve-op", "x=1")
    )
    assert proc.returncode == 2 and "unknown evolve op(s) x" in proc.stderr


def test_help_names_the_evolve_flags():
    proc = run_cli([sys.executable, "-m", "generator.evolve", "--help"])
    assert proc.returncode == 0
    for flag in [
        "--input",
        "--rounds",
        "--out",
        "--evolve-profile",
        "--evolve-op",
        "--score-filter",
        "--model",
    ]:
        assert flag in proc.stdout
