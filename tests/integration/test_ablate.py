"""`python -m generator.ablate`: replay a recorded run, and generate again through the test server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from generator.ablate import main
from generator.config import RunConfig
from generator.dataset import dataset
from generator.run import run
from generator.teachers.scripted import ScriptedTeacher
from tests.fake_openai import FakeOpenAI

pytest.importorskip("matplotlib")
pytest.importorskip("spacy")

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def variants(path: Path, base: dict[str, Any], *items: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"base": base, "variants": list(items)}))  # JSON is YAML
    return path


def test_replay_compares_variants_of_a_recorded_run(
    ray_session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    folder = tmp_path / "run"
    run(
        RunConfig(seeds=REPO / "seeds" / "175.jsonl", target=30, out=folder, cache=False),
        teacher=ScriptedTeacher,
    )
    config = variants(
        tmp_path / "v.yaml",
        {},
        {"name": "no_dedup", "set": {"dedup": []}},
        {"name": "strict_rouge", "params": {"rouge_l": {"threshold": 0.3}}},
        {"name": "evolved", "set": {"evolve_rounds": 2}},
    )
    out = tmp_path / "ablation"
    assert main(["--config", str(config), "--out", str(out), "--replay", str(folder)]) == 0
    result = json.loads((out / "ablation.json").read_text())
    by_name = {v["name"]: v for v in result["variants"]}
    assert result["mode"] == "replay" and list(by_name) == ["baseline", "no_dedup", "strict_rouge", "evolved"]
    run_kept = dataset(folder)
    assert by_name["baseline"]["metrics"]["kept"] == {
        "instructions": len(run_kept.records()),
        "rows": len(run_kept.rows()),
    }
    assert (
        by_name["strict_rouge"]["metrics"]["drops"]["rouge_l"]["dropped"]
        > (by_name["baseline"]["metrics"]["drops"]["rouge_l"]["dropped"])
    )
    assert "full mode" in by_name["evolved"]["skipped"] and "metrics" not in by_name["evolved"]
    assert "| baseline |" in (out / "ablation.md").read_text() and "no_dedup" in capsys.readouterr().out
    assert (out / "report.html").read_text().count("data:image/png;base64,") >= 2


def test_a_run_without_a_candidate_stream_is_a_clear_error(
    ray_session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    folder = tmp_path / "old"
    run(
        RunConfig(seeds=REPO / "seeds" / "175.jsonl", target=5, out=folder, cache=False),
        teacher=ScriptedTeacher,
    )
    (folder / "candidates.jsonl").unlink()
    config = variants(tmp_path / "v.yaml", {}, {"name": "no_dedup", "set": {"dedup": []}})
    assert main(["--config", str(config), "--out", str(tmp_path / "a"), "--replay", str(folder)]) == 2
    assert "cannot be replayed" in capsys.readouterr().err


def test_full_mode_generates_each_variant_on_one_request_cache(
    ray_session, fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path
):
    # a setting of the file's base that a teacher flag could also set: the file's value holds
    base = {
        "seeds": str(small_seeds),
        "target": 8,
        "prompts_per_round": 3,
        "seed": 9,
        "price_prompt_per_1m": 2.0,
    }
    config = variants(
        tmp_path / "v.yaml", base, {"name": "loose_rouge", "params": {"rouge_l": {"threshold": 0.9}}}
    )
    out = tmp_path / "full"
    flags = ["--teacher", "openai", "--base-url", fake_openai.base_url, "--model", "fake"]
    cache = ["--cache-path", str(tmp_path / "cache.sqlite")]
    assert main(["--config", str(config), "--out", str(out), *flags, *cache]) == 0
    result = json.loads((out / "ablation.json").read_text())
    baseline, loose = result["variants"]
    assert result["mode"] == "full" and Path(loose["run"]).name == "loose_rouge"
    assert (out / "runs" / "baseline" / "alpaca.json").exists()
    assert json.loads((out / "runs" / "baseline" / "config.json").read_text())["price_prompt_per_1m"] == 2.0
    assert baseline["metrics"]["teacher"]["cost_usd"] > 0
    # the variant asks what the baseline asked first, from the shared cache
    assert baseline["metrics"]["shared_requests"] == 0 < loose["metrics"]["shared_requests"]
