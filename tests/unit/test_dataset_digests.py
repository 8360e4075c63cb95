"""The datasets fixed runs make, pinned by digest: a refactor must not change a byte of them.

Each scenario is a fixed seed, config and teacher (the synthetic scripted teacher, which answers every
prompt this project sends), so `alpaca.json` is a function of the code alone. The digests were recorded
on the code before the stage-runner redesign (issue 12) and must never move unless the data is meant to
change; then re-record them with `python -m tests.unit.test_dataset_digests` and say why in the commit.
Issue 13 made the bootstrap sample round N from the pool after round N-4 (`--rounds-in-flight 4`), which
changed the bootstrap scenarios' data: those were re-recorded then, and the `one-round-in-flight`
scenarios keep the digests of before (the same runs with `--rounds-in-flight 1`). Issue 28 moved four:
every evolution now passes the run's instruction filters and dedup (the three evolution scenarios),
and rounds are planned from the measured yield (one scenario's last round, so its drops).

Beside the dataset, the drop decisions (which item each filter dropped, and why) are pinned too, read
from every `*dropped.jsonl` of the folder, so a change in what the filters decide shows even when the
dataset happens to stay the same.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from generator.config import RunConfig
from generator.run import run
from generator.teachers.scripted import ScriptedTeacher

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "seeds" / "175.jsonl"

# name -> RunConfig settings (besides seeds, out and the scripted teacher)
SCENARIOS: dict[str, dict[str, Any]] = {
    "self-instruct": {"profile": "self-instruct", "target": 60},
    # One round in flight samples every round from the pool of the round before, as the loop did
    # before issue 13: these keep the digests recorded then.
    "self-instruct-one-round-in-flight": {"profile": "self-instruct", "target": 60, "rounds_in_flight": 1},
    "self-instruct-two-dedups-one-round-in-flight": {
        "target": 40,
        "prompts_per_round": 3,
        "rounds_in_flight": 1,
        "dedup": [{"name": "minhash", "params": {"threshold": 0.6}}, {"name": "rouge_l"}],
    },
    "alpaca": {"profile": "alpaca", "target": 60},
    "self-instruct-two-dedups": {
        "target": 40,
        "prompts_per_round": 3,
        "dedup": [{"name": "minhash", "params": {"threshold": 0.6}}, {"name": "rouge_l"}],
    },
    "self-instruct+evolve": {"profile": "self-instruct", "target": 25, "evolve_rounds": 2},
    "alpaca+evolve-code-scored": {
        "profile": "alpaca",
        "target": 20,
        "evolve_rounds": 2,
        "evolve_profile": "code",
        "score_filter": {"name": "score", "params": {"key": "quality", "min_score": 4}},
    },
    "evolve-input": {"bootstrap": False, "evolve_rounds": 3, "seed": 7},
}

# recorded at c1d6cbb (before the redesign), two re-recorded at issue 13: alpaca.json, drop decisions
DIGESTS: dict[str, tuple[str, str]] = {
    "self-instruct": ("5f7d14bf4aa023f1", "3314e430fb9a9d9e"),  # issue 13: 4 rounds in flight
    "self-instruct-one-round-in-flight": ("bd7be3b65c52f5ec", "7e2fd9a603924f2b"),
    # issue 28: the round plan from the measured yield sends more proposals in the last round; the same
    # dataset, more drops
    "self-instruct-two-dedups-one-round-in-flight": ("aa148dacc6e2e120", "c3960ffe54d7271a"),
    "alpaca": ("3e3c4458ee109c14", "4f53cda18c2baa0c"),
    "self-instruct-two-dedups": ("397a35c8bb6f54a7", "2f765e8a24d0f352"),  # issue 13: 4 rounds in flight
    # issue 28: evolutions pass the run's instruction filters and dedup (the bootstrap's part is unchanged)
    "self-instruct+evolve": ("15e9c7eb9f700935", "95846f4bfd1b5267"),
    "alpaca+evolve-code-scored": ("060930af1ff38187", "48e8a2b9737e5dce"),  # issue 28: as above
    "evolve-input": ("1c757f738b39abbf", "a439a72f4b91f3e2"),  # issue 28: as above
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def drop_decisions(folder: Path) -> list[tuple[Any, ...]]:
    """(stage, round, item id, filter, reason) of every drop the run wrote, in a stable order."""
    out = []
    for path in sorted(folder.glob("*dropped.jsonl")):
        for line in path.read_text("utf-8").splitlines():
            d = json.loads(line)
            out.append((d["stage"], d["round"], d["item"]["id"], d["filter"], d["reason"]))
    return sorted(out)


def run_scenario(name: str, out: Path) -> tuple[str, str]:
    settings = dict(SCENARIOS[name])
    seeds = SEEDS
    if not settings.get("bootstrap", True):
        # evolve an Alpaca file: the first 30 seed tasks' first instances
        rows = [json.loads(line) for line in SEEDS.read_text("utf-8").splitlines()[:30]]
        seeds = out.parent / f"{name}-input.json"
        seeds.write_text(json.dumps([{"instruction": r["instruction"], **r["instances"][0]} for r in rows]))
    config = RunConfig(seeds=seeds, out=out, teacher="openai", model="scripted", cache=False, **settings)
    run(config, teacher=ScriptedTeacher)
    dataset = (out / "alpaca.json").read_bytes()
    return _sha(dataset), _sha(json.dumps(drop_decisions(out)).encode())


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_fixed_runs_make_the_recorded_datasets(ray_session, name: str, tmp_path: Path):
    assert name in DIGESTS, f"no digest recorded for {name}"
    assert run_scenario(name, tmp_path / name) == DIGESTS[name]


if __name__ == "__main__":  # print the digests of this code, to record them
    import tempfile

    import ray

    ray.init(
        address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False
    )
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in SCENARIOS if len(sys.argv) < 2 else sys.argv[1:]:
            print(f"    {scenario!r}: {run_scenario(scenario, Path(tmp) / scenario)!r},", flush=True)
    ray.shutdown()
