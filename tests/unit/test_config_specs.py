"""Every filter spec is checked when the config is read: `file: field: message`, exit 2, before Ray."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from generator.config import ConfigError, RunConfig, load_config
from tests.conftest import REPO

BAD_SPECS = [
    ("instruction_filters", [{"name": "nosuch"}], "unknown filter 'nosuch'"),
    ("dedup", [{"name": "rouge_l", "params": {"threshold": 7}}], "threshold"),
    ("dedup", [{"name": "word_count"}], "word_count"),
    ("instance_filters", [{"name": "instance_duplicate", "params": {"bogus": 1}}], "bogus"),
    ("instance_filters", [{"name": "blacklist"}], "blacklist"),
    ("instruction_filters", [{"name": "word_count"}, {"name": "word_count"}], "label"),
    ("evolve_filters", [{"name": "rouge_l"}], "rouge_l"),
    ("score_filter", {"name": "score", "params": {"key": "nope", "min_score": 3}}, "nope"),
    ("dedup", [{"name": "semantic", "params": {"threshold": 3}}], "threshold"),
]


@pytest.mark.parametrize(("field", "value", "says"), BAD_SPECS)
def test_a_bad_spec_names_its_file_and_field(tmp_path: Path, field: str, value: object, says: str):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"seeds": "seeds/175.jsonl", field: value}))
    with pytest.raises(ConfigError) as err:
        load_config(path, {})
    message = str(err.value)
    assert message.startswith(f"{path}: {field}: ") and says in message


def test_the_same_filter_twice_is_fine_with_labels():
    cfg = RunConfig(
        seeds=Path("seeds/175.jsonl"),
        instruction_filters=[
            {"name": "word_count", "params": {"min_words": 4}},
            {"name": "word_count", "label": "word_count_strict", "params": {"min_words": 8}},
        ],
    )
    assert [s.key for s in cfg.instruction_filters or []] == ["word_count", "word_count_strict"]


def test_the_cli_refuses_every_bad_spec_before_ray_starts(tmp_path: Path):
    files = []
    for i, (field, value, _) in enumerate(BAD_SPECS):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(yaml.safe_dump({"seeds": str(REPO / "seeds" / "175.jsonl"), field: value}))
        files.append(str(path))
    code = (
        "import json, sys, ray\n"
        "from generator.run import main\n"
        "codes = [main(['--config', f, '--out', f + '.out']) for f in sys.argv[1:]]\n"
        "print(json.dumps({'codes': codes, 'ray': ray.is_initialized()}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *files], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"codes": [2] * len(BAD_SPECS), "ray": False}
    for f in files:
        assert f"error: {f}: " in proc.stderr
        assert not Path(f + ".out").exists()  # nothing written either


def test_resume_checks_exactly_the_fields_that_change_data():
    # What the hand-kept OPERATIONAL set allowed to change before the fields said it themselves.
    operational = {"target", "max_rounds", "num_workers", "max_in_flight", "request_timeout", "max_retries"}
    operational |= {
        "ray_address",
        "cache",
        "cache_path",
        "out",
        "price_prompt_per_1m",
        "price_completion_per_1m",
    }
    operational |= {"max_failed_rounds", "api_key_env", "evolve_rounds"}
    operational |= {"sandbox_parallel"}  # how many programs run at once changes no verdict
    assert set(RunConfig.data_fields()) == set(RunConfig.model_fields) - operational


def test_profiles_are_registered_data(tmp_path: Path):
    from generator.profiles import PROFILES, SELF_INSTRUCT, register_profile

    with pytest.raises(ConfigError, match="unknown profile 'mine'"):
        load_config(None, {"seeds": "seeds/175.jsonl", "profile": "mine"})
    register_profile(SELF_INSTRUCT.model_copy(update={"name": "mine", "seeds_in_prompt": 4}))
    try:
        cfg = load_config(None, {"seeds": "seeds/175.jsonl", "profile": "mine"}).resolved()
        assert cfg.seeds_in_prompt == 4 and cfg.machine_in_prompt == 2
    finally:
        PROFILES.pop("mine")
