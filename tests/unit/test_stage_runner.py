"""The stage runner across stages: which stage wrote which rows, and a later stage redone when the
rows it started from change (scripted teacher, real Ray actors, real files)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from generator.config import RunConfig
from generator.dataset import dataset
from generator.run import run
from generator.stages.base import Progress
from generator.teachers.scripted import ScriptedTeacher


def config(seeds: Path, out: Path, **kw: Any) -> RunConfig:
    settings: dict[str, Any] = {"evolve_rounds": 1, **kw}
    return RunConfig(seeds=seeds, out=out, teacher="openai", model="scripted", cache=False, **settings)


def test_sources_say_which_stage_wrote_which_rows(ray_session, small_seeds: Path, tmp_path: Path):
    summary = run(config(small_seeds, tmp_path / "r", target=8), teacher=ScriptedTeacher)
    ds = dataset(tmp_path / "r")
    sources = ds.sources()
    assert [s["stage"] for s in sources] == ["bootstrap", "evolve"]
    assert sources[0]["instructions"] == 8 and sources[1]["instructions"] > 0
    assert sum(s["rows"] for s in sources) == len(ds) == summary["counts"]["dataset_rows"]
    assert summary["dataset"] == sources
    rows = json.loads((tmp_path / "r" / "alpaca.json").read_text())
    assert rows == [r.model_dump() for r in ds] == [r.model_dump() for r in ds.rows()]
    # the evolve part evolves the bootstrap part
    boot, evolved = ds.parts
    assert {r.root_id for r in evolved.records} <= {r.id for r in boot.records}


def test_a_grown_bootstrap_redoes_the_evolution(ray_session, small_seeds: Path, tmp_path: Path):
    run(config(small_seeds, tmp_path / "grown", target=6), teacher=ScriptedTeacher)
    first_roots = {r.id for r in dataset(tmp_path / "grown").parts[0].records}

    # Grow the bootstrap, stopping after its first round: the evolution it had no longer follows
    # from the bootstrap's part, so the dataset leaves it out until the evolution runs again.
    stop = threading.Event()
    seen: list[Progress] = []

    def stop_at_once(p: Progress) -> None:
        seen.append(p)
        stop.set()

    summary = run(
        config(small_seeds, tmp_path / "grown", target=40),
        teacher=ScriptedTeacher,
        on_progress=stop_at_once,
        stop=stop,
    )
    assert summary["stopped"] is True and [p.stage for p in seen] == ["bootstrap"]
    assert [s["stage"] for s in dataset(tmp_path / "grown").sources()] == ["bootstrap"]

    # resumed to the end: the same dataset as the same two runs without the stop (a run grown from 6
    # to 40 plans its first round for 6, so it is not the run that had 40 from the start)
    run(config(small_seeds, tmp_path / "grown", target=40), teacher=ScriptedTeacher)
    run(config(small_seeds, tmp_path / "straight", target=6), teacher=ScriptedTeacher)
    run(config(small_seeds, tmp_path / "straight", target=40), teacher=ScriptedTeacher)
    grown = (tmp_path / "grown" / "alpaca.json").read_bytes()
    assert grown == (tmp_path / "straight" / "alpaca.json").read_bytes()
    boot, evolved = dataset(tmp_path / "grown").parts
    assert [boot.stage, evolved.stage] == ["bootstrap", "evolve"] and len(boot.records) == 40
    assert {r.root_id for r in evolved.records} - first_roots, "the evolution was not redone on the new rows"


def test_progress_rows_add_up_to_the_dataset_across_stages_and_a_resume(
    ray_session, small_seeds: Path, tmp_path: Path
):
    # The REST service streams a job's rows from `Progress.rows`: after a stop and a resume, the rows
    # the folder held plus every later round's rows must be the dataset, in order, with no repeat.
    stop = threading.Event()
    before: list[Progress] = []

    def stop_after_two(p: Progress) -> None:
        before.append(p)
        if len(before) == 2:
            stop.set()

    cfg = config(small_seeds, tmp_path / "rows", target=30, prompts_per_round=3)
    assert run(cfg, teacher=ScriptedTeacher, on_progress=stop_after_two, stop=stop)["stopped"] is True
    held = [r.model_dump() for r in dataset(tmp_path / "rows").rows()]
    assert held == [row.model_dump() for p in before for row in p.rows] and held

    after: list[Progress] = []
    run(cfg, teacher=ScriptedTeacher, on_progress=after.append)
    streamed = held + [row.model_dump() for p in after for row in p.rows]
    assert streamed == json.loads((tmp_path / "rows" / "alpaca.json").read_text())
    assert {p.stage for p in after} == {"bootstrap", "evolve"}
    assert any(p.rows for p in after if p.stage == "evolve")


def test_runs_share_a_worker_pool_and_leave_it_running(ray_session, small_seeds: Path, tmp_path: Path):
    from generator.worker_pool import start_workers, teacher_settings

    pool = start_workers(teacher_settings(config(small_seeds, tmp_path / "x")), ScriptedTeacher)
    try:
        first = run(config(small_seeds, tmp_path / "a", target=5, evolve_rounds=0), workers=pool)
        actors = list(pool.workers())
        second = run(config(small_seeds, tmp_path / "b", target=5, evolve_rounds=0), workers=pool)
        assert pool.workers() == actors  # neither run stopped the pool, nor started its own
        import ray

        assert ray.get(actors[0].identity.remote()) == ("scripted", "scripted")  # still alive
        # the same workers answered both runs' requests
        window = pool.window_report()
        assert window is not None
        assert window["default"]["answers"] >= first["teacher"]["requests"] + second["teacher"]["requests"]
        assert first["counts"]["dataset_instructions"] == second["counts"]["dataset_instructions"] == 5
        assert (tmp_path / "a" / "alpaca.json").read_bytes() == (tmp_path / "b" / "alpaca.json").read_bytes()
        assert pool.identity() == ("scripted", "scripted")
    finally:
        pool.stop()
