"""The pipelined run loop (issue 13) keeps its promise: one dataset whatever the timing.

The bootstrap keeps `--rounds-in-flight` rounds of proposals out, every worker sends its requests
through an AIMD window, and the evolve stage moves items on in batches. None of that may show in the
data: for a fixed seed, config and teacher, `alpaca.json` is byte-identical whatever the latency, the
`--max-in-flight` limit or the order the answers come back in, a `kill -9` while rounds are in flight
resumes to the dataset an uninterrupted run makes, and 429s only shrink the window.

The answer order is shuffled by the fake server's seeded random delays (`random_delay_max`): another
server seed, another order, so each run below really sees its answers in a different order.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from generator.config import RunConfig
from generator.run import run
from tests.fake_openai import FakeOpenAI
from tests.integration.test_library_runs import config as library_config
from tests.integration.test_pipeline import cli, read_jsonl, run_cli, start_cli

pytestmark = pytest.mark.integration

# What a record's provenance says about timing, which differs between runs by design.
TIMING = ("latency_s", "cached")
PROPOSE = "Here is a numbered list of varied tasks"  # how a proposal prompt starts (self-instruct)


def config(server: FakeOpenAI, seeds: Path, out: Path, **kw: Any) -> RunConfig:
    return library_config(server, seeds, out, seed=11, prompts_per_round=4, num_workers=2, **kw)


def records_without_timing(path: Path) -> list[dict[str, Any]]:
    """A JSONL file's records with the provenance timing fields removed."""
    records = read_jsonl(path)
    for record in records:
        for p in record.get("provenance", []):
            for key in TIMING:
                p.pop(key, None)
    return records


def first_difference(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> str:
    """Where two lists of records part (for the failure message): the index and both records."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return (
                f"record {i} differs:\n  {json.dumps(x, sort_keys=True)}\n  {json.dumps(y, sort_keys=True)}"
            )
    return f"one has {len(a)} records, the other {len(b)}"


def bodies(server: FakeOpenAI) -> list[str]:
    """The request bodies the server received, in arrival order, each as canonical JSON."""
    with server.lock:
        return [json.dumps(body, sort_keys=True) for body in server.requests]


def test_dataset_is_byte_identical_at_1_8_and_64_in_flight_whatever_the_answer_order(
    ray_session: None, small_seeds: Path, tmp_path: Path
) -> None:
    # About 18 instructions a round: five or more bootstrap rounds, so round 4 and later sample from
    # a pool that rounds still in flight did not see (the lag that --rounds-in-flight sets).
    target = 80
    limits = (1, 8, 64)
    sent: dict[int, list[str]] = {}
    summaries: dict[int, dict[str, Any]] = {}
    for server_seed, limit in enumerate(limits, start=1):
        with FakeOpenAI(random_delay_max=0.03, seed=server_seed) as server:
            out = tmp_path / f"in-flight-{limit}"
            summaries[limit] = run(
                config(server, small_seeds, out, target=target, evolve_rounds=1, max_in_flight=limit)
            )
            sent[limit] = bodies(server)

    folders = {limit: tmp_path / f"in-flight-{limit}" for limit in limits}
    reference = folders[limits[0]]
    assert summaries[limits[0]]["counts"]["rounds"] >= 5, "too few rounds to exercise the lag"
    assert summaries[limits[0]]["counts"]["evolve_kept"] > 0, "the evolve stage kept nothing"
    for limit in limits[1:]:
        folder = folders[limit]
        assert (folder / "alpaca.json").read_bytes() == (reference / "alpaca.json").read_bytes(), (
            f"alpaca.json at {limit} in flight differs from the one at {limits[0]}"
        )
        for name in ("instructions.jsonl", "evolved.jsonl"):
            got, want = records_without_timing(folder / name), records_without_timing(reference / name)
            assert got == want, f"{name} at {limit} in flight: {first_difference(want, got)}"
        for name in ("dropped.jsonl", "evolve_dropped.jsonl"):
            got, want = read_jsonl(folder / name), read_jsonl(reference / name)
            assert got == want, f"{name} at {limit} in flight: {first_difference(want, got)}"
        assert summaries[limit]["counts"] == summaries[limits[0]]["counts"]
    # each run's windows add up to the limit asked for (at 1, one worker holds the one slot)
    for limit in limits:
        assert summaries[limit]["teacher"]["in_flight"]["limit"] == limit

    # Not vacuous: the servers saw the requests they all got in different orders. (The sets are not
    # equal: a run with more in flight sends more of the rounds it abandons once the target is met.)
    common = Counter(sent[limits[0]])
    for limit in limits[1:]:
        common &= Counter(sent[limit])
    assert sum(common.values()) >= 0.8 * min(len(s) for s in sent.values())
    orders = {limit: [b for b in sent[limit] if b in common] for limit in limits}
    for a, b in [(1, 8), (8, 64), (1, 64)]:
        assert Counter(orders[a]) == Counter(orders[b])
        assert orders[a] != orders[b], f"the servers at {a} and {b} in flight saw the same order"


def test_kill_9_mid_pipelined_run_resumes_to_the_uninterrupted_dataset(
    fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "requests.sqlite"  # one request cache, shared by both folders
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    target = ["-n", "80", "--num-workers", "2"]  # the default --rounds-in-flight (4)
    args = cli(fake_openai, small_seeds, killed, cache, *target)

    fake_openai.delay, fake_openai.random_delay_max = 0.05, 0.05  # slow enough to land the kill
    proc = start_cli(args, start_new_session=True)
    state = killed / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text())["bootstrap"]["round"] >= 1:
            break
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed:\n{proc.communicate()[1]}")
        time.sleep(0.02)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the run never committed a round")
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the CLI and its Ray processes, rounds in flight
    proc.communicate()
    assert not (killed / "alpaca.json").exists(), "the run was meant to be cut short"
    committed = json.loads(state.read_text())["bootstrap"]["round"]
    # rounds 0..committed hold at most 4 proposals each: more were out, so rounds were in flight
    proposals = sum(PROPOSE in b for b in bodies(fake_openai))
    assert proposals > 4 * (committed + 1), f"{proposals} proposals sent, {committed + 1} rounds committed"
    fake_openai.delay = 0.0

    resumed = run_cli(args)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    assert json.loads(state.read_text())["bootstrap"]["round"] > committed, "nothing was left to resume"

    uninterrupted = run_cli(cli(fake_openai, small_seeds, straight, cache, *target))
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert "resuming" not in uninterrupted.stderr

    assert (killed / "alpaca.json").read_bytes() == (straight / "alpaca.json").read_bytes(), (
        "the resumed dataset differs from the uninterrupted run's"
    )
    ids = [r["id"] for r in read_jsonl(killed / "instructions.jsonl")]
    assert len(ids) == len(set(ids)), "an accepted item was written twice"
    want = [r["id"] for r in read_jsonl(straight / "instructions.jsonl")]
    assert ids == want, "an accepted item was lost, added or moved"
    got_records = records_without_timing(killed / "instructions.jsonl")
    want_records = records_without_timing(straight / "instructions.jsonl")
    assert got_records == want_records, first_difference(want_records, got_records)
    assert read_jsonl(killed / "dropped.jsonl") == read_jsonl(straight / "dropped.jsonl")
    # what the rounds found, counted once: by the resumed run for the rounds the kill cut short
    got, ref = (json.loads((d / "stats.json").read_text()) for d in (killed, straight))
    assert got["counts"] == ref["counts"]


def test_429s_shrink_the_window_and_the_run_completes(
    ray_session: None, fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path
) -> None:
    faults = 12
    fake_openai.faults.extend(["429:0"] * faults)
    fake_openai.random_delay_max = 0.01
    out = tmp_path / "limited"
    # Target 80: five rounds or more commit, so the first four rounds' proposals (16, sent at once,
    # which meet every 429 the server gives) all commit. A request of a round abandoned at the target
    # is cancelled, and the 429s it met are counted nowhere, neither by the window nor by the stages.
    summary = run(config(fake_openai, small_seeds, out, target=80, max_in_flight=8))

    assert summary["counts"]["dataset_instructions"] >= 80
    assert len(json.loads((out / "alpaca.json").read_text())) >= 80
    consumed = faults - len(fake_openai.faults)
    assert consumed >= 6, f"only {consumed} of the 429s were answered"

    stats = json.loads((out / "stats.json").read_text())
    window = stats["teacher"]["in_flight"]
    assert window["limit"] == 8
    assert window["rate_limited"] >= consumed, window
    assert window["decreases"] >= 1 and window["lowest"] < window["limit"], window
    # Every 429 costs its request a retry, but a request's third (max_retries=2): it fails instead.
    stages = {s: stats["stages"][s] for s in ("propose", "classify", "instances")}
    retries = sum(s["retries"] for s in stages.values())
    failed = sum(s["failed"] for s in stages.values())
    assert retries + failed >= consumed, stages
