"""The recorded candidate stream and its replay: exact with the run's own filters, cheap with others."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from generator.candidates import NoCandidates, read_candidates
from generator.config import ConfigError, RunConfig
from generator.dataset import dataset
from generator.replay import replay
from generator.run import run
from generator.stages.base import Progress
from generator.teachers.scripted import ScriptedTeacher
from generator.variants import Variant, apply, load_ablations, why_not_replayable

REPO = Path(__file__).resolve().parents[2]


def grown(tmp_path: Path, name: str, **kw: Any) -> tuple[Path, RunConfig]:
    settings: dict[str, Any] = {"seeds": REPO / "seeds" / "175.jsonl", "target": 40, "cache": False, **kw}
    cfg = RunConfig(out=tmp_path / name, **settings)
    run(cfg, teacher=ScriptedTeacher)
    return tmp_path / name, RunConfig.model_validate_json((tmp_path / name / "config.json").read_text())


def rows(records: list[Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    return [(r.instruction, [(i.input, i.output) for i in r.instances]) for r in records]


@pytest.mark.parametrize("profile", ["self-instruct", "alpaca"])
def test_replaying_a_run_with_its_own_filters_makes_its_dataset(ray_session, tmp_path: Path, profile: str):
    folder, cfg = grown(tmp_path, profile, profile=profile)
    stream = read_candidates(folder)
    assert [c.round for c in stream] == sorted(c.round for c in stream)  # in the order judged
    assert len({c.record["id"] for c in stream}) == len(stream)
    replayed = replay(folder, cfg)
    assert rows(replayed.records) == rows(dataset(folder).records())
    live = json.loads((folder / "stats.json").read_text())["filters"]
    assert replayed.filters == live  # every filter said the same, to the counter
    assert rows(replay(folder, cfg).records) == rows(replayed.records)  # and again


def test_a_variant_re_judges_the_same_candidates(ray_session, tmp_path: Path):
    folder, cfg = grown(tmp_path, "si")
    stream = read_candidates(folder)
    dropped_by_dedup = [c for c in stream if c.fate is not None and c.fate.step == "dedup"]
    assert dropped_by_dedup and all(c.record["instances"] is None for c in dropped_by_dedup)
    no_dedup = replay(folder, cfg.model_copy(update={"dedup": []}))
    # what dedup dropped is accepted now, but the run never asked the teacher for its instances
    assert no_dedup.counts["unanswered"] == len(dropped_by_dedup)
    assert "rouge_l" not in no_dedup.filters
    strict = replay(folder, apply(Variant(name="strict", params={"rouge_l": {"threshold": 0.3}}), cfg))
    assert strict.filters["rouge_l"]["dropped"] > len(dropped_by_dedup)
    assert strict.kept <= cfg.target


def test_a_domain_run_replays_with_verification_off(ray_session, tmp_path: Path):
    folder, cfg = grown(
        tmp_path, "arith", seeds=REPO / "seeds" / "arithmetic.jsonl", domain="arithmetic", target=20
    )
    replayed = replay(folder, cfg)
    assert rows(replayed.records) == rows(dataset(folder).records())
    unverified = replay(folder, cfg.model_copy(update={"verify": False}))
    teacher_wrote = {c.record["id"]: c.record["instances"][0]["output"] for c in read_candidates(folder)}
    assert all(r.instances[0].output == teacher_wrote[r.id] for r in unverified.records)
    assert unverified.filters["verify"].get("dropped", 0) == 0


def test_a_folder_from_before_the_stream_is_a_clear_error(ray_session, tmp_path: Path):
    folder, cfg = grown(tmp_path, "old", target=10)
    (folder / "candidates.jsonl").unlink()
    with pytest.raises(NoCandidates, match="made before runs recorded their candidate stream"):
        replay(folder, cfg)


def test_a_resumed_run_records_each_candidate_once(ray_session, tmp_path: Path):
    stop = threading.Event()

    def stop_now(p: Progress) -> None:
        stop.set()

    cfg = RunConfig(
        seeds=REPO / "seeds" / "175.jsonl", target=60, cache=False, out=tmp_path / "r", rounds_in_flight=1
    )
    run(cfg, teacher=ScriptedTeacher, on_progress=stop_now, stop=stop)
    # an interrupted round's lines, as a crash leaves them: cut on resume
    with open(tmp_path / "r" / "candidates.jsonl", "a") as f:
        f.write(json.dumps({"stage": "bootstrap", "round": 99, "record": {"id": "x"}, "fate": None}) + "\n")
    run(cfg, teacher=ScriptedTeacher)
    ids = [c.record["id"] for c in read_candidates(tmp_path / "r")]
    assert len(ids) == len(set(ids)) and "x" not in ids
    saved = RunConfig.model_validate_json((tmp_path / "r" / "config.json").read_text())
    assert rows(replay(tmp_path / "r", saved).records) == rows(dataset(tmp_path / "r").records())


def test_variants_apply_by_label_and_say_what_replay_cannot_judge(tmp_path: Path):
    base = RunConfig(seeds=REPO / "seeds" / "175.jsonl").resolved()
    off = apply(Variant(name="v", without=["word_count", "max_instances"]), base)
    assert "word_count" not in [s.key for s in off.instruction_filters or []]
    assert "max_instances" not in [s.key for s in off.instance_filters or []]
    loose = apply(Variant(name="v", params={"rouge_l": {"threshold": 0.9}}), base)
    assert loose.dedup is not None and loose.dedup[0].params == {"threshold": 0.9, "top_k": 10}
    assert why_not_replayable(loose, base) is None
    evolved = apply(Variant(name="e", set={"evolve_rounds": 2}), base)
    assert "evolve_rounds" in (why_not_replayable(evolved, base) or "")
    with pytest.raises(ConfigError, match="variant 'typo': no filter labelled wordcount"):
        apply(Variant(name="typo", without=["wordcount"]), base)
    shipped = load_ablations(REPO / "ablations" / "filters.yaml")
    assert shipped.variants[0].name == "baseline"
    from filters.base import REGISTRY

    # every filter of filters/ and every eliminator rule is varied by the shipped file
    named = json.dumps([v.model_dump() for v in shipped.variants])
    assert all(name in named for name in REGISTRY), [n for n in REGISTRY if n not in named]
    for variant in shipped.variants:
        apply(variant, base)  # and each one is a valid config


def test_a_tuned_models_eval_is_a_variants_downstream_score(tmp_path: Path):
    from generator.ablate import downstream

    assert downstream(tmp_path) is None  # no tune: no score
    (tmp_path / "finetune").mkdir()
    (tmp_path / "finetune" / "eval.json").write_text(
        json.dumps(
            {"score": 1.71, "score_kind": "perplexity_ratio", "base": {"loss": 1.9}, "tuned": {"loss": 1.3}}
        )
    )
    assert downstream(tmp_path) == {
        "score": 1.71,
        "score_kind": "perplexity_ratio",
        "base": {"loss": 1.9},
        "tuned": {"loss": 1.3},
    }
