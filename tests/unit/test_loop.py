"""The loop with a scripted teacher: real Ray actors, real files, no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator.config import ConfigError, RunConfig
from generator.run import run
from generator.teachers.scripted import ScriptedTeacher


def config(seeds: Path, out: Path, **kw) -> RunConfig:
    return RunConfig(seeds=seeds, out=out, teacher="openai", model="scripted", cache=False, **kw)


def test_alpaca_profile_keeps_the_instance_that_came_with_the_task(
    ray_session, small_seeds: Path, tmp_path: Path
):
    summary = run(config(small_seeds, tmp_path / "a", profile="alpaca", target=10), teacher=ScriptedTeacher)
    rows = json.loads((tmp_path / "a" / "alpaca.json").read_text())
    assert summary["counts"]["dataset_instructions"] == 10 and len(rows) == 10
    assert all(r["output"].startswith("Here is a") for r in rows)
    assert "classify" not in summary["stages"] and "instances" not in summary["stages"]


def test_worker_count_does_not_change_the_dataset(ray_session, small_seeds: Path, tmp_path: Path):
    run(config(small_seeds, tmp_path / "one", target=15, num_workers=1), teacher=ScriptedTeacher)
    run(config(small_seeds, tmp_path / "three", target=15, num_workers=3), teacher=ScriptedTeacher)
    one = (tmp_path / "one" / "alpaca.json").read_text()
    assert one == (tmp_path / "three" / "alpaca.json").read_text()


def test_garbage_responses_are_counted_not_fatal(ray_session, small_seeds: Path, tmp_path: Path):
    summary = run(
        config(small_seeds, tmp_path / "g", target=20, max_rounds=2),
        teacher=lambda: ScriptedTeacher(lambda r: "\x00<<garbage"),
    )
    assert summary["counts"].get("dataset_instructions", 0) == 0
    # round 1 is planned while round 0 is in flight: counting 2 items per proposal of round 0 leaves
    # 20 - 16 = 4 to find, so it gets 2 proposals
    assert summary["stages"]["propose"]["requests"] == 8 + 2
    assert summary["filters"]["word_count"]["dropped_too_short"] > 0


def test_out_folder_of_another_run_is_refused(ray_session, small_seeds: Path, tmp_path: Path):
    run(config(small_seeds, tmp_path / "x", target=3), teacher=ScriptedTeacher)
    with pytest.raises(ConfigError, match="different settings"):
        run(config(small_seeds, tmp_path / "x", target=3, seed=7), teacher=ScriptedTeacher)


def test_a_folder_from_before_rounds_in_flight_resumes_with_one_round_in_flight(
    ray_session, small_seeds: Path, tmp_path: Path
):
    """Folders made before --rounds-in-flight existed were made with one round in flight: resuming
    them with the new default would change their data, so it is refused, and 1 resumes them."""
    out = tmp_path / "old"
    run(config(small_seeds, out, target=5, rounds_in_flight=1), teacher=ScriptedTeacher)
    saved = json.loads((out / "config.json").read_text())
    del saved["rounds_in_flight"]  # as config.json was written before the field existed
    (out / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match=r"different settings \(rounds_in_flight\)"):
        run(config(small_seeds, out, target=8), teacher=ScriptedTeacher)
    summary = run(config(small_seeds, out, target=8, rounds_in_flight=1), teacher=ScriptedTeacher)
    assert summary["counts"]["dataset_instructions"] == 8


def test_raising_the_target_extends_a_finished_run(ray_session, small_seeds: Path, tmp_path: Path):
    run(config(small_seeds, tmp_path / "e", target=5), teacher=ScriptedTeacher)
    before = [
        json.loads(line)["id"] for line in (tmp_path / "e" / "instructions.jsonl").read_text().splitlines()
    ]
    run(config(small_seeds, tmp_path / "e", target=60), teacher=ScriptedTeacher)
    after = [
        json.loads(line)["id"] for line in (tmp_path / "e" / "instructions.jsonl").read_text().splitlines()
    ]
    assert after[: len(before)] == before and len(after) > len(before)
    assert len(json.loads((tmp_path / "e" / "alpaca.json").read_text())) >= 60


def test_records_carry_their_neighbours_and_drops_say_what_they_duplicated(
    ray_session, small_seeds: Path, tmp_path: Path
):
    """Neighbours are scored in the pool actor after the round's decisions, in one batch; each kept
    record must still get the top-10 and mean ROUGE-L against the pool as it stood when it was kept."""
    from rouge_score import rouge_scorer

    from generator.seeds import load_seeds

    run(config(small_seeds, tmp_path / "n", target=40), teacher=ScriptedTeacher)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = [t.instruction for t in load_seeds(small_seeds)]
    for line in (tmp_path / "n" / "instructions.jsonl").read_text().splitlines():
        record = json.loads(line)
        scores = [scorer.score(prev, record["instruction"])["rougeL"].fmeasure for prev in pool]
        assert record["avg_similarity"] == pytest.approx(sum(scores) / len(scores), abs=1e-12)
        # approx: two pool items may tie at 0.4 and 0.4000000000000001, in either order
        expected = sorted(scores, reverse=True)[:10]
        assert [s["score"] for s in record["most_similar"]] == pytest.approx(expected, abs=1e-12)
        pool.append(record["instruction"])
    drops = [
        json.loads(line)
        for line in (tmp_path / "n" / "dropped.jsonl").read_text().splitlines()
        if '"stage":"dedup"' in line
    ]
    assert drops, "the synthetic teacher echoes in-context tasks now and then"
    for drop in drops:
        near = drop["item"]["near_duplicate"]
        assert near["text"] in pool and near["score"] > 0.7
