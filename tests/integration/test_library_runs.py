"""The library entry point: `generator.run.run(config, teacher=, on_progress=, stop=)`.

Two runs at once in one process (threads), through the real OpenAI-compatible test server, sharing
one Ray runtime; one is stopped by its event after its first progress call, then resumed, and must end
with the dataset an uninterrupted run makes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from generator.config import RunConfig
from generator.dataset import dataset
from generator.run import run
from generator.stages.base import Progress
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.integration


def config(server: FakeOpenAI, seeds: Path, out: Path, **kw: Any) -> RunConfig:
    """A run against the test server, no request cache; `kw` adds or overrides settings."""
    settings: dict[str, Any] = {"seed": 5, "prompts_per_round": 3, "max_retries": 2, **kw}
    return RunConfig(
        seeds=seeds,
        out=out,
        teacher="openai",
        base_url=server.base_url,
        model="fake",
        cache=False,
        **settings,
    )


def test_two_runs_in_one_process_one_stopped_and_resumed(
    ray_session, fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path
):
    fake_openai.delay = 0.02
    events: dict[str, list[Progress]] = {"full": [], "stopped": []}
    stop = threading.Event()

    def stop_after_first(p: Progress) -> None:
        events["stopped"].append(p)
        stop.set()

    results: dict[str, Any] = {}

    def start(name: str, **kw: Any) -> threading.Thread:
        def target() -> None:
            try:
                results[name] = run(config(fake_openai, small_seeds, tmp_path / name, target=30), **kw)
            except BaseException as exc:  # surfaced by the assertions below
                results[name] = exc

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    threads = [
        start("full", on_progress=events["full"].append),
        start("stopped", on_progress=stop_after_first, stop=stop),
    ]
    for t in threads:
        t.join(timeout=300)
    assert not isinstance(results["full"], BaseException), results["full"]
    assert not isinstance(results["stopped"], BaseException), results["stopped"]

    # the uninterrupted run reported every committed round, in order, with its counts
    full = events["full"]
    assert [p.round for p in full] == list(range(len(full))) and len(full) > 1
    assert all(p.stage == "bootstrap" and p.target == 30 for p in full)
    assert [p.kept for p in full] == sorted(p.kept for p in full) and full[-1].kept >= 30
    assert full[-1].stats["counts"]["rounds"] == len(full)
    assert "stopped" not in results["full"]

    # the stopped one ended after the round in flight committed: one round, and says so
    assert len(events["stopped"]) == 1 and events["stopped"][0].round == 0
    assert results["stopped"]["stopped"] is True
    assert results["stopped"]["counts"]["rounds"] == 1
    partial = dataset(tmp_path / "stopped")
    assert 0 < len(partial.records()) < 30

    # Ray is still up for the rest of the session (neither run started it, so neither stopped it)
    import ray

    assert ray.is_initialized()

    # resumed: the same dataset as the uninterrupted run, byte for byte
    resumed = run(config(fake_openai, small_seeds, tmp_path / "stopped", target=30))
    assert "stopped" not in resumed
    assert (tmp_path / "stopped" / "alpaca.json").read_bytes() == (
        tmp_path / "full" / "alpaca.json"
    ).read_bytes()
    assert resumed["counts"]["rounds"] == results["full"]["counts"]["rounds"]
    assert dataset(tmp_path / "stopped").sources() == [
        {"stage": "bootstrap", "instructions": 30, "rows": len(dataset(tmp_path / "full").rows())}
    ]
