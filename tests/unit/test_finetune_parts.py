"""The pure parts of fine-tuning and its evaluation: prompts, masks, the judge's verdicts and win rate,
the page, flags, resume checks and the missing-extra exit. No model, torch or Ray here."""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from generator import evaluate, finetune
from generator import finetune_config as tune
from generator.eval_judge import (
    JudgePair,
    PairJudge,
    add_judge_flags,
    judge_config,
    outcome,
    parse_verdict,
    summarize,
    swapped_pairs,
)
from generator.eval_page import cell, render
from generator.prompting import (
    alpaca_prompt,
    common_prefix_length,
    completion_labels,
    prompt_completions,
    user_message,
)
from generator.records import AlpacaRow
from generator.teachers.base import TeacherResponse
from generator.teachers.scripted import ScriptedTeacher, synthetic_answer
from generator.teachers.scripted_domains import eval_judge_answer


def row(instruction: str, input: str, output: str) -> AlpacaRow:
    return AlpacaRow(instruction=instruction, input=input, output=output)


# -- prompts ------------------------------------------------------------------------------------------------


def test_alpaca_prompt_with_and_without_input():
    with_input = alpaca_prompt(row("Sum the numbers.", "1, 2", "3"))
    assert with_input.startswith("Below is an instruction that describes a task, paired with an input")
    assert with_input.endswith("### Instruction:\nSum the numbers.\n\n### Input:\n1, 2\n\n### Response:\n")
    bare = alpaca_prompt(row("Name a colour.", "  ", "Red"))
    assert "### Input" not in bare and "paired with an input" not in bare
    assert bare.endswith("### Instruction:\nName a colour.\n\n### Response:\n")


class ChatTokenizer:
    """Enough of a tokenizer for the chat format: a ChatML-like template."""

    chat_template = "chatml"
    eos_token = "<|end|>"

    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool
    ) -> str:
        assert not tokenize and add_generation_prompt
        return "".join(f"<{m['role']}>{m['content']}<|end|>" for m in messages) + "<assistant>"


def test_prompt_completions_in_both_formats():
    rows = [row("Translate to French.", "cat", "chat"), row("Say hi.", "", "Hi!")]
    alpaca = prompt_completions(rows, "alpaca", None, "</s>")
    assert [p["completion"] for p in alpaca] == ["chat</s>", "Hi!</s>"]
    assert alpaca[0]["prompt"] == alpaca_prompt(rows[0])
    chat = prompt_completions(rows, "chat", ChatTokenizer(), "<|end|>")
    assert chat[0]["prompt"] == "<user>Translate to French.\n\ncat<|end|><assistant>"
    assert chat[1] == {"prompt": "<user>Say hi.<|end|><assistant>", "completion": "Hi!<|end|>"}
    assert user_message(rows[1]) == "Say hi."
    no_template = ChatTokenizer()
    no_template.chat_template = ""
    with pytest.raises(ValueError, match="no chat template"):
        prompt_completions(rows, "chat", no_template, "<|end|>")


def test_completion_labels_mask_the_prompt_and_cut_the_end():
    assert common_prefix_length([1, 2, 3], [1, 2, 4, 5]) == 2
    ids, labels = completion_labels([1, 2, 3], [1, 2, 3, 7, 8, 9], None)
    assert ids == [1, 2, 3, 7, 8, 9] and labels == [-100, -100, -100, 7, 8, 9]
    # a token merged across the boundary: the completion starts where the two tokenizations part
    ids, labels = completion_labels([1, 2, 3], [1, 2, 30, 8], None)
    assert labels == [-100, -100, 30, 8]
    ids, labels = completion_labels([1, 2, 3], [1, 2, 3, 7, 8, 9], 4)  # keep the start, as TRL does
    assert ids == [1, 2, 3, 7] and labels == [-100, -100, -100, 7]


# -- the judge ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("A", "A"),
        (" b.", "B"),
        ("Answer A is better.", "A"),
        ("**B**", "B"),
        ("Tie", "tie"),
        ("equal", "tie"),
        ("I prefer answer B here", "B"),
        ("Neither: answer A and answer B both fail", None),
        ("I cannot decide between them.", None),
        ("", None),
    ],
)
def test_parse_verdict(text: str, verdict: str | None):
    assert parse_verdict(text) == verdict


def test_each_sample_is_asked_in_both_orders():
    samples = [{"instruction": "Do it.", "input": "", "base": "base says", "tuned": "tuned says"}]
    first, second = swapped_pairs(samples)
    assert (first.first, first.second) == ("base says", "tuned says")
    assert (second.first, second.second) == ("tuned says", "base says")
    request = PairJudge(api="completion").prompt(first)
    assert request.kind == "completion" and request.params.temperature == 0.0
    text = request.text()
    assert "Answer A:\nbase says\n\nAnswer B:\ntuned says" in text and "Input:\n(empty)" in text
    assert text.rstrip().endswith("Better answer:")


def test_outcomes_from_the_tuned_side():
    assert outcome("B", tuned_first=False) == "win" and outcome("A", tuned_first=False) == "loss"
    assert outcome("A", tuned_first=True) == "win" and outcome("B", tuned_first=True) == "loss"
    assert outcome("tie", tuned_first=True) == "tie" and outcome(None, tuned_first=False) is None


def test_a_judge_that_always_says_a_gives_one_half():
    """Position bias cancels: "A" every time is one win and one loss per sample."""
    result = summarize(["A"] * 8)
    assert (result["wins"], result["losses"], result["win_rate"], result["consistent"]) == (4, 4, 0.5, 0)
    assert result["first_preferred"] == 8 and result["samples"] == 4


def test_win_rate_counts_ties_half_and_leaves_out_unreadable():
    # sample 1: tuned wins twice; sample 2: tie, then unreadable; sample 3: base wins twice
    result = summarize(["B", "A", "tie", None, "A", "B"])
    assert (result["wins"], result["losses"], result["ties"], result["unreadable"]) == (2, 2, 1, 1)
    assert result["comparisons"] == 5 and result["asked"] == 6
    assert result["win_rate"] == pytest.approx((2 + 0.5) / 5, abs=1e-4)
    assert result["consistent"] == 2
    assert summarize([None, None])["win_rate"] is None


def test_scripted_teacher_answers_the_judge_prompt_only():
    text = PairJudge().prompt(JudgePair("Do it.", "", "one", "two")).text()
    verdicts = {parse_verdict(eval_judge_answer(text + str(i), random.Random(i)) or "") for i in range(60)}
    assert {"A", "B", "tie", None} <= verdicts
    rng = random.Random(1)
    state = rng.getstate()
    assert eval_judge_answer("Explain volcanoes.", rng) is None and rng.getstate() == state
    reply = asyncio.run(ScriptedTeacher().generate([PairJudge().prompt(JudgePair("Do it.", "", "a", "b"))]))
    assert reply[0].text == synthetic_answer(PairJudge().prompt(JudgePair("Do it.", "", "a", "b")))


def test_judge_parse_reads_the_response():
    response = TeacherResponse(text=" B\n", request_key="k")
    assert PairJudge().parse(JudgePair("i", "", "a", "b"), response) == "B"


def test_judge_flags_carry_every_teacher_flag_under_a_prefix(tmp_path: Path):
    p = argparse.ArgumentParser()
    p.add_argument("--model")  # the student's: no clash
    add_judge_flags(p)
    args = p.parse_args(
        [
            "--model",
            "DIR",
            "--judge",
            "--judge-teacher",
            "openai",
            "--judge-model",
            "gpt-x",
            "--judge-no-cache",
        ]
    )
    assert args.judge and args.model == "DIR" and args.judge_model == "gpt-x" and args.judge_cache is False
    args = p.parse_args(["--judge-max-in-flight", "3", "--judge-base-url", "http://h/v1"])
    assert args.judge_max_in_flight == 3
    (tmp_path / "config.json").write_text(json.dumps({"seeds": "seeds.jsonl", "teacher": "vllm", "seed": 7}))
    cfg = judge_config(tmp_path, p.parse_args(["--judge-teacher", "openai", "--judge-model", "m"]))
    assert (cfg.teacher, cfg.model, cfg.seed) == ("openai", "m", 7)


# -- the page, the score ------------------------------------------------------------------------------------


def eval_result(judge: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "models": {"base": "/models/base", "tuned": "/out/tune"},
        "data": "/out/run",
        "format": "alpaca",
        "held_out": {"rows": 3, "tokens": 40},
        "base": {"loss": 2.5, "perplexity": 12.18},
        "tuned": {"loss": 1.5, "perplexity": 4.48},
        "samples": [
            {
                "instruction": "Add | numbers",
                "input": "1\n2",
                "reference": "3",
                "base": "three\nor so",
                "tuned": "",
            }
        ],
        "judge": judge,
        "score": 2.72,
        "score_kind": "perplexity_ratio",
    }


def test_page_shows_losses_and_answers_side_by_side():
    page = render(eval_result())
    assert "| base | 2.5000 | 12.18 |" in page and "| tuned | 1.5000 | 4.48 |" in page
    assert "### 1. Add \\| numbers" in page and "Input: 1<br>2" in page
    assert "| three<br>or so | *(empty)* |" in page and "## Judge" not in page
    assert "perplexity ratio): **2.720**" in page
    judge = summarize(["B", "A", "tie", None])
    page = render(eval_result({"teacher": "scripted (scripted)", **judge}))
    assert "## Judge: scripted (scripted)" in page and "| 0.833 | 2 | 0 | 1 | 1 | 1 of 2 | 1 / 1 |" in page
    assert cell("a|b\nc") == "a\\|b<br>c"


def test_score_is_the_win_rate_when_the_judge_read_anything():
    base, tuned = {"loss": 2.0, "perplexity": 8.0}, {"loss": 1.0, "perplexity": 2.0}
    assert evaluate.score(base, tuned, None) == (4.0, "perplexity_ratio")
    assert evaluate.score(base, tuned, {"win_rate": 0.625}) == (0.625, "win_rate")
    assert evaluate.score(base, tuned, {"win_rate": None}) == (4.0, "perplexity_ratio")


# -- flags, resume, the extra -------------------------------------------------------------------------------


def test_split_flag():
    assert tune.split_arg("0.8/0.1/0.1") == (0.8, 0.1, 0.1)
    assert tune.split_arg("0.9,0.05,0.05") == (0.9, 0.05, 0.05)
    for bad in ("0.9/0.1", "0.5/0.5/0.5", "1/0/0", "a/b/c", "-0.1/0.6/0.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            tune.split_arg(bad)


def test_lora_targets_the_attention_projections():
    names = [
        "model.layers.0.self_attn.q_proj",
        "model.layers.0.self_attn.v_proj",
        "model.layers.0.mlp.up_proj",
    ]
    assert tune.attention_modules(names) == ["q_proj", "v_proj"]
    assert tune.attention_modules(["transformer.h.0.attn.c_attn"]) == "all-linear"


def tune_args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    return finetune.build_parser().parse_args(["--data", str(tmp_path / "run"), *extra])


def saved_tune(tmp_path: Path, *extra: str) -> tuple[Path, dict[str, Any]]:
    """A tune folder with one checkpoint and the finetune_config.json it was made with."""
    out = tmp_path / "tune"
    (out / "checkpoint-3").mkdir(parents=True)
    (out / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3}')
    (out / "checkpoint-6").mkdir()  # a checkpoint whose save was cut off: no trainer state
    config = tune.tune_config(tune_args(tmp_path, "--lora", *extra), "/m", "cpu", "fp32", {"train": 5})
    config["lora"]["target_modules"] = ["q_proj"]  # written at the end of a tune
    (out / tune.FINETUNE_CONFIG).write_text(json.dumps(config))
    return out, config


def test_resume_picks_the_last_complete_checkpoint(tmp_path: Path):
    out, _ = saved_tune(tmp_path)
    again = tune.tune_config(
        tune_args(tmp_path, "--lora", "--max-steps", "50"), "/m", "cpu", "fp32", {"train": 5}
    )
    assert tune.check_resume(out, again) == out / "checkpoint-3"
    assert tune.last_checkpoint(tmp_path / "nothing-here") is None


@pytest.mark.parametrize(
    ("extra", "model", "what"),
    [(("--lora", "--lora-r", "16"), "/m", "lora"), (("--lora",), "/other", "model"), ((), "/m", "lora")],
)
def test_resume_refuses_another_tunes_checkpoints(
    tmp_path: Path, extra: tuple[str, ...], model: str, what: str
):
    out, _ = saved_tune(tmp_path)
    other = tune.tune_config(tune_args(tmp_path, *extra), model, "cpu", "fp32", {"train": 5})
    with pytest.raises(tune.ConfigError, match=what):
        tune.check_resume(out, other)


def test_defaults_follow_the_brief(tmp_path: Path):
    config = tune.tune_config(tune_args(tmp_path, "--lora"), "/m", "cpu", "fp32", {"train": 5})
    assert config["lora"] == {"r": 8, "alpha": 16, "dropout": 0.05}
    h = config["hyperparameters"]
    assert (h["learning_rate"], h["max_length"], h["batch_size"], h["epochs"]) == (2e-4, 512, 4, 3.0)
    assert config["split"]["ratios"] == [0.9, 0.05, 0.05] and config["precision"] == "fp32"
    full = tune.tune_config(tune_args(tmp_path), "/m", "cuda", "bf16", {"train": 5})
    assert (
        full["lora"] is None
        and full["hyperparameters"]["learning_rate"] == 2e-5
        and full["precision"] == "bf16"
    )


def test_without_the_extra_both_commands_exit_2_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    real = tune.importlib.util.find_spec
    monkeypatch.setattr(
        tune.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("trl", "peft") else real(name, *a),
    )
    assert finetune.main(["--data", str(tmp_path)]) == 2
    assert "pip install -e '.[finetune]'" in capsys.readouterr().err
    assert evaluate.main(["--model", str(tmp_path)]) == 2
    assert "trl, peft not installed" in capsys.readouterr().err
