"""End to end: `python -m generator.run` against a real OpenAI-compatible HTTP server.

These run the CLI as a subprocess (real Ray, real SQLite, real sockets), including a `kill -9` in the
middle of a run and the resume that follows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.integration


def cli(server: FakeOpenAI, seeds: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "generator.run", "--seeds", str(seeds), "--teacher", "openai",
        "--base-url", server.base_url, "--model", "fake", "--out", str(out), "--cache-path", str(cache),
        "--seed", "3", "--prompts-per-round", "4", "--max-retries", "2", *extra,
    ]  # fmt: skip


def cli_env() -> dict[str, str]:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}


def run_cli(args: list[str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def start_cli(args: list[str], **popen: object) -> subprocess.Popen[str]:
    """The CLI in the background, its output captured (for runs that are interrupted or raced)."""
    return subprocess.Popen(
        args, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_writes_the_dataset_and_its_accounts(fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path):
    fake_openai.faults.extend(["500", "429:0.2", "garbage", "truncated"])  # a flaky teacher, never fatal
    out = tmp_path / "run"
    proc = run_cli(
        cli(
            fake_openai,
            small_seeds,
            out,
            tmp_path / "c.sqlite",
            "-n",
            "12",
            "--price-prompt",
            "1",
            "--price-completion",
            "2",
            # one round in flight: else a fault can land in a round abandoned at the target (never committed)
            "--rounds-in-flight",
            "1",
        )
    )
    assert proc.returncode == 0, proc.stderr
    assert "done: 12 instructions" in proc.stdout

    dataset = json.loads((out / "alpaca.json").read_text())
    assert dataset and all(set(row) == {"instruction", "input", "output"} for row in dataset)
    records = read_jsonl(out / "instructions.jsonl")
    with_instances = [r for r in records if r["instances"]]
    assert len(with_instances) >= 12
    assert len({r["instruction"] for r in records}) == len(records)
    first = with_instances[0]
    assert [p["stage"] for p in first["provenance"]] == ["propose", "classify", "instances"]
    assert first["provenance"][0]["model"] == "fake" and first["provenance"][0]["request_key"]
    assert len(first["most_similar"]) == 10 and first["avg_similarity"] is not None

    stats = json.loads((out / "stats.json").read_text())
    assert stats["counts"]["dataset_instructions"] == 12
    assert stats["teacher"]["requests"] >= 4 and stats["teacher"]["prompt_tokens"] > 0
    assert stats["stages"]["propose"]["retries"] >= 3
    assert stats["cost_estimate_usd"] > 0
    assert "rouge_l" in stats["filters"]
    config = json.loads((out / "config.json").read_text())
    assert config["propose_params"]["top_p"] == 0.5 and config["seeds_in_prompt"] == 6

    dropped = read_jsonl(out / "dropped.jsonl")
    assert dropped and all(
        d["filter"] and d["reason"] and d["item"]["instruction"] is not None for d in dropped
    )
    assert sum(stats["filters"][name].get("dropped", 0) for name in stats["filters"]) == len(dropped)


def test_same_config_and_cache_reruns_with_zero_teacher_calls(
    fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path
):
    cache = tmp_path / "c.sqlite"
    assert run_cli(cli(fake_openai, small_seeds, tmp_path / "a", cache, "-n", "8")).returncode == 0
    sent = len(fake_openai.requests)
    proc = run_cli(cli(fake_openai, small_seeds, tmp_path / "b", cache, "-n", "8"))
    assert proc.returncode == 0, proc.stderr
    assert len(fake_openai.requests) == sent, "the rerun must be served from the cache"
    assert (tmp_path / "a" / "alpaca.json").read_text() == (tmp_path / "b" / "alpaca.json").read_text()
    stats = json.loads((tmp_path / "b" / "stats.json").read_text())
    assert stats["teacher"]["sent"] == 0 and stats["teacher"]["cache_hits"] == stats["teacher"]["requests"]


def test_kill_9_mid_run_then_resume_loses_and_duplicates_nothing(
    fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path
):
    target = ["-n", "80", "--num-workers", "2"]
    # The reference: one uninterrupted run with its own cache.
    assert (
        run_cli(cli(fake_openai, small_seeds, tmp_path / "ref", tmp_path / "ref.sqlite", *target)).returncode
        == 0
    )

    out = tmp_path / "killed"
    args = cli(fake_openai, small_seeds, out, tmp_path / "killed.sqlite", *target)
    fake_openai.delay = 0.1  # slow enough to land the kill in the middle of a round
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = out / "state.json"
        if state.exists() and json.loads(state.read_text())["bootstrap"]["round"] >= 1:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the run never committed a round")
    # At once: the next rounds are in flight already (with 4 rounds in flight, 0.3 s more could see
    # the run through to its end)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the CLI and its Ray processes
    proc.wait()
    assert not (out / "alpaca.json").exists(), "the run was meant to be cut short"
    fake_openai.delay = 0.0

    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    records = read_jsonl(out / "instructions.jsonl")
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), "an accepted item was written twice"
    ref_records = read_jsonl(tmp_path / "ref" / "instructions.jsonl")
    assert ids == [r["id"] for r in ref_records], "an accepted item was lost or changed"
    assert (out / "alpaca.json").read_text() == (tmp_path / "ref" / "alpaca.json").read_text()
    # A round found but not committed when the kill came (its candidates, drops, requests) is counted
    # once, by the resumed run that found it again.
    ref, got = (json.loads((d / "stats.json").read_text()) for d in (tmp_path / "ref", out))
    assert got["counts"] == ref["counts"] and got["filters"] == ref["filters"]
    assert read_jsonl(out / "dropped.jsonl") == read_jsonl(tmp_path / "ref" / "dropped.jsonl")
    assert {k: v["requests"] for k, v in got["stages"].items()} == {
        k: v["requests"] for k, v in ref["stages"].items()
    }


def test_bad_seed_file_exits_2_before_any_teacher_call(fake_openai: FakeOpenAI, tmp_path: Path):
    seeds = tmp_path / "bad.jsonl"
    seeds.write_text('{"instruction": "a", "input": "", "output": "b"}\n{"instruction": 5}\n')
    proc = run_cli(cli(fake_openai, seeds, tmp_path / "o", tmp_path / "c.sqlite", "-n", "3"))
    assert proc.returncode == 2
    assert f"{seeds}:2:" in proc.stderr and "Traceback" not in proc.stderr
    assert fake_openai.requests == []


def test_teacher_down_stops_with_a_clear_error(small_seeds: Path, tmp_path: Path):
    args = [
        sys.executable, "-m", "generator.run", "--seeds", str(small_seeds), "--teacher", "openai",
        "--base-url", "http://127.0.0.1:9/v1", "--model", "x", "--out", str(tmp_path / "o"),
        "--max-retries", "0", "--max-failed-rounds", "2", "--request-timeout", "1", "--no-cache",
    ]  # fmt: skip
    proc = run_cli(args)
    assert proc.returncode == 1
    assert "answered none of the last 2 rounds" in proc.stderr and "Traceback" not in proc.stderr


def test_help_explains_every_flag():
    proc = run_cli([sys.executable, "-m", "generator.run", "--help"])
    assert proc.returncode == 0
    for flag in [
        "--seeds",
        "-n",
        "--profile",
        "--teacher",
        "--base-url",
        "--model",
        "--out",
        "--config",
        "--seed",
        "--no-cache",
        "--ray-address",
    ]:
        assert flag in proc.stdout
    assert "Exit codes" in proc.stdout


def _session_processes(sid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split()[1] == str(sid)]


def test_ctrl_c_stops_cleanly_without_orphans(fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path):
    out = tmp_path / "int"
    fake_openai.delay = 0.1
    args = cli(fake_openai, small_seeds, out, tmp_path / "c.sqlite", "-n", "500")
    proc = start_cli(
        args,
        start_new_session=True,
        # As in a terminal: a suite started in the background (`cmd &` in a script) inherits SIGINT
        # ignored, and Python then installs no Ctrl+C handler in the child.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (out / "state.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "rerun the same command to resume" in stderr
    deadline = time.monotonic() + 15
    while _session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _session_processes(proc.pid) == [], "processes left behind after Ctrl+C"
