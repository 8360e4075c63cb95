"""The evolution stage with a scripted teacher: real Ray actors, real files, no network."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import ray.cloudpickle

from generator.config import RunConfig
from generator.run import run
from generator.teachers.base import TeacherRequest
from generator.teachers.scripted import ScriptedTeacher

# Ray workers cannot import a test module by name: ship this module's functions (the script) by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

ROWS = [
    {"instruction": "Explain how tides work.", "input": "", "output": "The Moon pulls the sea."},
    {
        "instruction": "Summarize the text.",
        "input": "Bees dance to share where food is.",
        "output": "Bee dance.",
    },
    {"instruction": "stubborn: name a colour.", "input": "", "output": "Blue."},  # never evolves well
    {"instruction": "apologetic: name a planet.", "input": "", "output": "Mars."},  # answers are refusals
    {"instruction": "plain: name a tree.", "input": "", "output": "Oak."},  # judged equal to its parent
]


def script(request: TeacherRequest) -> str:
    """Recognises the stage's prompts by their last line and answers by what the item says."""
    text = request.text().rstrip()
    if text.endswith(("#Rewritten Prompt#:", "#New Prompt#:")):
        original = text.split("#Original Prompt#:")[-1].rsplit("#", 2)[0].strip()
        if original.startswith("stubborn"):
            return original  # -> evol_unchanged, every round
        if original.startswith("stock"):  # a teacher that answers rewrites with one stock paragraph
            return "#Rewritten Prompt#: Describe the importance of teamwork in a modern workplace setting."
        if original.startswith("eager"):
            return "#Rewritten Prompt#: Sure! Here is a more complex version of your request for you."
        # the item's text, then new words (more each round): harder means longer, and no two alike
        base, _, suffix = original.partition(" || ")
        words = " ".join(f"w{request.params.seed}n{i}" for i in range(6 + len(suffix.split()) * 3 // 2))
        return f"#Rewritten Prompt#: {base} || {words}"
    if text.endswith("Verdict:"):
        return "Equal" if "plain:" in text.split("Second prompt:")[-1] else "Not Equal"
    if text.endswith("(1-6):"):
        return "5" if "Summarize" in text else "3"
    if "apologetic" in text:
        return "Sorry, I cannot answer that."  # -> evol_hard_to_answer
    return f"A careful answer to: {text[:60]}"


def make_teacher() -> ScriptedTeacher:
    return ScriptedTeacher(script)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(ROWS))
    return path


def evolve_config(seeds: Path, out: Path, **kw: Any) -> RunConfig:
    kw.setdefault("evolve_rounds", 3)
    return RunConfig(
        seeds=seeds, out=out, teacher="openai", model="scripted", cache=False, bootstrap=False, **kw
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        for p in row["provenance"]:
            p.pop("latency_s")
    return rows


def test_rounds_lineage_eliminator_and_dataset(ray_session, dataset: Path, tmp_path: Path):
    out = tmp_path / "run"
    summary = run(evolve_config(dataset, out), teacher=make_teacher)
    evolved = read_jsonl(out / "evolved.jsonl")

    # only the two well-behaved items evolve, each round on top of the last
    assert [r["id"] for r in evolved] == [
        "e1-seed:alpaca_0",
        "e1-seed:alpaca_1",
        "e2-e1-seed:alpaca_0",
        "e2-e1-seed:alpaca_1",
        "e3-e2-e1-seed:alpaca_0",
        "e3-e2-e1-seed:alpaca_1",
    ]
    last = evolved[-1]
    assert last["root_id"] == "seed:alpaca_1" and last["parent_ids"] == ["e2-e1-seed:alpaca_1"]
    assert last["round"] == 3 and last["origin"] == f"evol:{last['op']}"
    assert last["instruction"].startswith("Summarize the text.\nBees dance")  # the input was folded in
    assert last["instances"] == [{"input": "", "output": last["instances"][0]["output"]}]
    assert last["scores"] == {"complexity": 5.0, "quality": 5.0, "deita": 25.0}
    assert [p["stage"] for p in last["provenance"]] == [
        "evolve",
        "judge",
        "answer",
        "score_complexity",
        "score_quality",
    ]
    assert last["parent_instruction"] is None and last["equal_to_parent"] is False

    # each failure is written down with its rule; the parent stays in the pool and is evolved again
    dropped = read_jsonl(out / "evolve_dropped.jsonl")
    by_rule = {(d["item"]["id"], d["filter"], d["reason"]) for d in dropped}
    for r in (1, 2, 3):
        assert (f"e{r}-seed:alpaca_2", "evol_unchanged", "unchanged") in by_rule
        assert (f"e{r}-seed:alpaca_3", "evol_hard_to_answer", "hard_to_answer") in by_rule
        assert (f"e{r}-seed:alpaca_4", "evol_no_gain", "no_information_gain") in by_rule
    assert len(dropped) == 9
    state = json.loads((out / "state.json").read_text())["evolve"]
    assert state["round"] == 3 and state["pool"] == [
        "e3-e2-e1-seed:alpaca_0",
        "e3-e2-e1-seed:alpaca_1",
        "seed:alpaca_2",
        "seed:alpaca_3",
        "seed:alpaca_4",
    ]

    # the dataset: the input rows as they were, then the evolved rows round by round
    data = json.loads((out / "alpaca.json").read_text())
    assert data[:5] == ROWS and len(data) == 11
    assert [d["instruction"] for d in data[5:]] == [r["instruction"] for r in evolved]

    # per-round stats, in stats.json and in the returned summary
    stats = json.loads((out / "stats.json").read_text())
    assert stats == summary
    rounds = stats["evolve"]["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    for r in rounds:
        assert r["evolved"] == 5 and r["kept"] == 2 and r["failed"] == {}
        assert r["eliminated"] == {"evol_unchanged": 1, "evol_hard_to_answer": 1, "evol_no_gain": 1}
        assert sum(r["ops"].values()) == 5 and sum(r["kept_ops"].values()) == 2
        assert r["avg_words"] > stats["evolve"]["input"]["avg_words"] and r["avg_tokens"] > 0
    assert rounds[2]["avg_words"] > rounds[0]["avg_words"]  # harder means longer here
    assert stats["counts"]["dataset_rows"] == 11 and stats["counts"]["evolve_kept"] == 6
    assert stats["filters"]["evol_no_gain"]["dropped_no_information_gain"] == 3
    # the judge only sees what the cheap rules let through; answers only what the judge let through
    assert stats["stages"]["evolve"]["requests"] == 15
    assert stats["stages"]["judge"]["requests"] == 12
    assert stats["stages"]["answer"]["requests"] == 9
    assert stats["stages"]["score_quality"]["requests"] == 6


def test_the_runs_dedup_and_instruction_filters_judge_every_evolution(ray_session, tmp_path: Path):
    """Two items whose rewrites are the same stock paragraph: the first is kept, the second is dropped
    by the run's dedup naming the first, and its parent stays in the pool; an "instruction" that
    reads as an answer is dropped by the run's instruction checks; an evolution that copies another
    kept instruction is dropped too."""
    rows = [
        {"instruction": "stock: list three fruits.", "input": "", "output": "Apple, pear, plum."},
        {"instruction": "stock: name two rivers.", "input": "", "output": "Nile, Amazon."},
        {"instruction": "eager: name a bird.", "input": "", "output": "Robin."},
        {
            "instruction": "Describe the importance of teamwork in a modern workplace setting.",
            "input": "",
            "output": "It matters.",
        },
    ]
    data = tmp_path / "in.json"
    data.write_text(json.dumps(rows))
    out = tmp_path / "run"
    run(evolve_config(data, out, evolve_rounds=1), teacher=make_teacher)
    dropped = read_jsonl(out / "evolve_dropped.jsonl")
    by_id = {d["item"]["id"]: d for d in dropped}
    # the stock paragraph is already in the dataset (row 4): both rewrites duplicate it
    for item in ("e1-seed:alpaca_0", "e1-seed:alpaca_1"):
        assert by_id[item]["filter"] == "evolve:rouge_l" and by_id[item]["reason"] == "rouge_l>0.7"
        assert by_id[item]["item"]["near_duplicate"]["id"] == "seed:alpaca_3"
        assert by_id[item]["item"]["near_duplicate"]["score"] == 1.0
    assert by_id["e1-seed:alpaca_2"]["filter"] == "evolve:query_is_answer"
    state = json.loads((out / "state.json").read_text())["evolve"]
    assert state["pool"][:3] == ["seed:alpaca_0", "seed:alpaca_1", "seed:alpaca_2"]  # parents stay
    instructions = [r["instruction"] for r in json.loads((out / "alpaca.json").read_text())]
    assert len(instructions) == len(set(instructions))
    stats = json.loads((out / "stats.json").read_text())
    # the teamwork row's own rewrite adds 6 words to its 10: a near-duplicate of its parent (F 0.77)
    assert by_id["e1-seed:alpaca_3"]["item"]["near_duplicate"]["id"] == "seed:alpaca_3"
    assert stats["filters"]["evolve:rouge_l"]["dropped_rouge_l>0.7"] == 3
    assert stats["filters"]["evolve:query_is_answer"]["dropped_answer"] == 1


def test_resume_keeps_lineage_and_matches_an_uninterrupted_run(ray_session, dataset: Path, tmp_path: Path):
    straight = tmp_path / "straight"
    run(evolve_config(dataset, straight, evolve_rounds=3), teacher=make_teacher)

    resumed = tmp_path / "resumed"
    run(evolve_config(dataset, resumed, evolve_rounds=1, num_workers=1), teacher=make_teacher)
    # a crash in round 2: a cut-off line and a line from the uncommitted round
    with open(resumed / "evolved.jsonl", "a") as f:
        f.write(
            json.dumps({**read_jsonl(straight / "evolved.jsonl")[2], "instruction": "half-written"}) + "\n"
        )
        f.write('{"id": "e2-cut')
    with open(resumed / "evolve_dropped.jsonl", "a") as f:
        f.write(json.dumps(read_jsonl(straight / "evolve_dropped.jsonl")[-1]) + "\n")
    run(evolve_config(dataset, resumed, evolve_rounds=3, num_workers=3), teacher=make_teacher)

    assert without_timing(read_jsonl(resumed / "evolved.jsonl")) == without_timing(
        read_jsonl(straight / "evolved.jsonl")
    )
    assert read_jsonl(resumed / "evolve_dropped.jsonl") == read_jsonl(straight / "evolve_dropped.jsonl")
    assert (resumed / "alpaca.json").read_text() == (straight / "alpaca.json").read_text()
    a = json.loads((straight / "stats.json").read_text())["evolve"]["rounds"]
    b = json.loads((resumed / "stats.json").read_text())["evolve"]["rounds"]
    assert a == b  # per-round stats survive the resume


def test_op_weights_and_the_code_profile(ray_session, dataset: Path, tmp_path: Path):
    seen: list[str] = []

    def recording(request: TeacherRequest) -> str:
        seen.append(request.text())
        return script(request)

    out = tmp_path / "code"
    summary = run(
        evolve_config(
            dataset,
            out,
            evolve_rounds=2,
            evolve_profile="code",
            evolve_ops={"code_erroneous_reference": 1.0, "code_complexity": 0.0},
            num_workers=1,
        ),
        teacher=lambda: ScriptedTeacher(recording),
    )
    ops = summary["evolve"]["total"]["ops"]
    assert ops == {"code_erroneous_reference": 10}
    assert {r["op"] for r in read_jsonl(out / "evolved.jsonl")} == {"code_erroneous_reference"}


def test_score_filter_drops_low_scores_and_keeps_the_parent(ray_session, dataset: Path, tmp_path: Path):
    out = tmp_path / "scored"
    summary = run(
        evolve_config(
            dataset, out, evolve_rounds=2, score_filter={"name": "score", "params": {"min_score": 4}}
        ),
        teacher=make_teacher,
    )
    evolved = read_jsonl(out / "evolved.jsonl")
    assert [r["id"] for r in evolved] == ["e1-seed:alpaca_1", "e2-e1-seed:alpaca_1"]  # quality 5 vs 3
    assert all(r["scores"]["quality"] >= 4 for r in evolved)
    assert summary["evolve"]["rounds"][0]["eliminated"]["score"] == 1
    dropped = read_jsonl(out / "evolve_dropped.jsonl")
    assert {(d["item"]["id"], d["reason"]) for d in dropped if d["filter"] == "score"} == {
        ("e1-seed:alpaca_0", "below_threshold"),
        ("e2-seed:alpaca_0", "below_threshold"),  # the root was evolved again, not its dropped child
    }


def test_bootstrap_then_evolve(ray_session, small_seeds: Path, tmp_path: Path):
    out = tmp_path / "both"
    summary = run(
        RunConfig(
            seeds=small_seeds,
            out=out,
            teacher="openai",
            model="scripted",
            cache=False,
            target=6,
            evolve_rounds=2,
        ),
        teacher=ScriptedTeacher,
    )
    bootstrap = [r for r in read_jsonl(out / "instructions.jsonl") if r["instances"]][:6]
    evolved = read_jsonl(out / "evolved.jsonl")
    assert evolved and {r["root_id"] for r in evolved} <= {r["id"] for r in bootstrap}
    data = json.loads((out / "alpaca.json").read_text())
    n_boot = sum(len(r["instances"]) for r in bootstrap)
    assert [d["instruction"] for d in data[n_boot:]] == [r["instruction"] for r in evolved]
    assert "propose" in summary["stages"] and "evolve" in summary["stages"]
    assert summary["counts"]["dataset_rows"] == len(data)
    # rerunning the finished run changes nothing
    again = run(
        RunConfig(
            seeds=small_seeds,
            out=out,
            teacher="openai",
            model="scripted",
            cache=False,
            target=6,
            evolve_rounds=2,
        ),
        teacher=ScriptedTeacher,
    )
    assert json.loads((out / "alpaca.json").read_text()) == data
    assert again["evolve"]["rounds"] == summary["evolve"]["rounds"]
