"""`python -m generator.evaluate --model DIR [--base PATH] [--data RUN] [--samples N] [--judge ...]`

How much did a fine-tune learn? On the held-out ("test") split of the dataset, which training never saw:

- the loss of the base and of the tuned model on the completions (prompt tokens masked, the prompts
  built exactly as in training, `generator/prompting.py`), and perplexity = exp(mean token loss);
- greedy generations of both for the first `--samples` held-out instructions, side by side;
- with `--judge`, the teacher comparing the two answers pairwise, positions swapped
  (`generator/eval_judge.py`): the tuned model's win rate.

Writes DIR/eval.json and DIR/eval.md (`generator/eval_page.py`). `eval.json["score"]` is the one number
the ablation runner reads as a variant's downstream score: the judge's win rate when there is one,
else base perplexity / tuned perplexity (above 1: the tune helped); `score_kind` says which.

DIR is what `generator.finetune` wrote: a LoRA adapter (adapter_config.json; evaluated on its base) or
a full model folder. Its finetune_config.json supplies the base model, the data folder, the prompt
format, the split and max length, so `--model DIR` alone evaluates exactly the held-out rows that
training excluded; flags override. Exit codes: 0 done, 1 the judge's teacher failed, 2 bad input or
the `finetune` extra missing.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from generator.config import ConfigError, RunConfig
from generator.errors import RayUnavailable, TeacherUnavailable
from generator.eval_judge import add_judge_flags, judge_config, judge_samples
from generator.eval_page import render
from generator.export import DEFAULT_SPLIT, SPLITS, split_rows
from generator.finetune_config import (
    DEFAULT_SPLIT_TEXT,
    EVAL_JSON,
    EVAL_MD,
    FINETUNE_CONFIG,
    ExtraMissing,
    require_extra,
    split_arg,
)
from generator.prompting import PromptFormat, prompt_completions
from generator.records import AlpacaRow
from generator.run_folder import CONFIG, write_json_atomic
from generator.student import completion_loss, device_and_dtype, generate, load_model, offline
from generator.workers import TeacherFactory

log = logging.getLogger("synth_instruct.evaluate")


def held_out(data: Path, ratios: Sequence[float], seed: int) -> dict[str, list[AlpacaRow]]:
    """The dataset's rows split by instruction, as the export splits them (so the splits agree)."""
    ratios = (ratios[0], ratios[1], ratios[2])
    splits = split_rows(data, ratios, seed)
    return {name: splits[name] for name in SPLITS}


def score(
    base: dict[str, float], tuned: dict[str, float], judge: dict[str, Any] | None
) -> tuple[float | None, str]:
    """The ablation runner's number: the judge's win rate, else base / tuned perplexity."""
    if judge is not None and judge.get("win_rate") is not None:
        return judge["win_rate"], "win_rate"
    return round(base["perplexity"] / tuned["perplexity"], 6), "perplexity_ratio"


@dataclass(frozen=True)
class EvalSettings:
    model: str  # the tuned model (adapter or full folder)
    base: str
    data: str
    format: PromptFormat = "alpaca"
    split: tuple[float, float, float] = DEFAULT_SPLIT
    split_seed: int = 42
    max_length: int | None = 512
    samples: int = 5
    max_new_tokens: int = 128
    allow_download: bool = False


def measure(
    model: Any, tokenizer: Any, rows: Sequence[AlpacaRow], s: EvalSettings
) -> tuple[dict[str, float], int, list[str]]:
    """({"loss", "perplexity"}, completion tokens, answers to the first `s.samples` rows) of one model."""
    pairs = prompt_completions(rows, s.format, tokenizer, tokenizer.eos_token)
    loss, tokens = completion_loss(model, tokenizer, pairs, s.max_length)
    answers = generate(model, tokenizer, [p["prompt"] for p in pairs[: s.samples]], s.max_new_tokens)
    return {"loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 700.0)), 4)}, tokens, answers


def evaluate(
    s: EvalSettings,
    judge: RunConfig | None = None,
    teacher: TeacherFactory | None = None,
    judge_api: str | None = None,
) -> dict[str, Any]:
    """Evaluate, write eval.json and eval.md into the model folder, return what eval.json holds.

    `judge`: the judge's RunConfig (None: no judge); `teacher` replaces its teacher, for tests."""
    from generator.teachers.embedded import resolve_model

    test = held_out(Path(s.data), s.split, s.split_seed)["test"]
    if not test:
        raise ConfigError(
            f"the held-out split of {s.data} is empty: grow more rows or give --split a larger test share"
        )
    device, dtype = device_and_dtype()
    base_path = resolve_model(s.base)
    log.info("evaluating on %d held-out rows (%s, %s): base %s", len(test), device, s.format, base_path)
    base_model, tokenizer = load_model(base_path, dtype, device, s.allow_download)
    base, tokens, base_answers = measure(base_model, tokenizer, test, s)
    log.info("base:  loss %.4f, perplexity %.2f", base["loss"], base["perplexity"])
    # a LoRA adapter goes onto the loaded base; a full model is loaded on its own, the base freed first
    under = base_model if (Path(s.model) / "adapter_config.json").is_file() else None
    del base_model
    model, tokenizer = load_model(s.model, dtype, device, s.allow_download, base_model=under)
    del under
    tuned, _, tuned_answers = measure(model, tokenizer, test, s)
    log.info("tuned: loss %.4f, perplexity %.2f", tuned["loss"], tuned["perplexity"])
    del model  # before the judge's teacher starts
    gc.collect()
    samples = [
        {"instruction": r.instruction, "input": r.input, "reference": r.output, "base": b, "tuned": t}
        for r, b, t in zip(test, base_answers, tuned_answers, strict=False)
    ]
    verdicts = judge_samples(samples, judge, teacher, judge_api) if judge is not None and samples else None
    value, kind = score(base, tuned, verdicts)
    result = {
        "models": {"base": base_path, "tuned": str(Path(s.model).resolve())},
        "data": str(Path(s.data).resolve()),
        "format": s.format,
        "held_out": {
            "split": "test",
            "ratios": list(s.split),
            "seed": s.split_seed,
            "rows": len(test),
            "tokens": tokens,
        },
        "device": device,
        "base": base,
        "tuned": tuned,
        "samples": samples,
        "judge": verdicts,
        "score": value,
        "score_kind": kind,
        "settings": asdict(s),
    }
    write_json_atomic(Path(s.model) / EVAL_JSON, result)
    (Path(s.model) / EVAL_MD).write_text(render(result), encoding="utf-8")
    return result


def add_eval_flags(p: argparse.ArgumentParser) -> None:
    """The flags `generator.finetune` shares: samples, generation length, the judge."""
    p.add_argument(
        "--samples", type=int, default=5, help="held-out instructions answered side by side (default 5)"
    )
    p.add_argument("--max-new-tokens", type=int, default=128, help="greedy tokens per answer (default 128)")
    add_judge_flags(p)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator.evaluate",
        description="Held-out loss and perplexity of a base and a fine-tuned model, their answers side by "
        "side and, with --judge, the teacher's pairwise win rate; writes eval.json and eval.md into --model.",
        epilog="Exit codes: 0 done, 1 the judge's teacher failed, 2 bad input or the finetune extra missing.",
    )
    p.add_argument(
        "--model", type=Path, required=True, metavar="DIR", help="the tuned model: what finetune wrote"
    )
    p.add_argument(
        "--base", default=None, metavar="PATH", help="the base model (default: from DIR/finetune_config.json)"
    )
    p.add_argument(
        "--data", type=Path, default=None, metavar="RUN", help="the run folder (default: from the config)"
    )
    p.add_argument("--chat-template", action="store_true", default=None, help="prompt with the chat template")
    p.add_argument(
        "--split",
        type=split_arg,
        default=None,
        metavar="TRAIN/VAL/TEST",
        help=f"the split's shares (default: the tune's, else {DEFAULT_SPLIT_TEXT})",
    )
    p.add_argument("--split-seed", type=int, default=None, help="the split's seed (default 42)")
    p.add_argument("--max-length", type=int, default=None, help="tokens per example, as in training (512)")
    p.add_argument(
        "--allow-download", action="store_true", help="let a hub id download (off: local files only)"
    )
    add_eval_flags(p)
    return p


def settings_from(args: argparse.Namespace) -> EvalSettings:
    """Flags over DIR/finetune_config.json over the defaults."""
    saved: dict[str, Any] = {}
    config_file = args.model / FINETUNE_CONFIG
    if config_file.is_file():
        saved = json.loads(config_file.read_text(encoding="utf-8"))
    base = args.base or saved.get("model")
    data = args.data or saved.get("data")
    if base is None or data is None:
        raise ConfigError(f"{args.model} has no {FINETUNE_CONFIG}: pass --base and --data")
    split = saved.get("split", {})
    return EvalSettings(
        model=str(args.model),
        base=str(base),
        data=str(data),
        format="chat" if args.chat_template or saved.get("format") == "chat" else "alpaca",
        split=args.split or split_arg("/".join(map(str, split.get("ratios", DEFAULT_SPLIT)))),
        split_seed=args.split_seed if args.split_seed is not None else split.get("seed", 42),
        max_length=args.max_length or saved.get("hyperparameters", {}).get("max_length", 512),
        samples=args.samples,
        max_new_tokens=args.max_new_tokens,
        allow_download=args.allow_download or saved.get("allow_download", False),
    )


def run_cli(s: EvalSettings, args: argparse.Namespace, teacher: TeacherFactory | None) -> int:
    """Evaluate as the CLI does (shared with `generator.finetune`): errors become exit codes."""
    try:
        judge = judge_config(Path(s.data), args) if args.judge else None
        result = evaluate(s, judge, teacher, args.judge_api)
    except (ConfigError, OSError, ValueError, RayUnavailable) as exc:  # OSError: a model that is not there
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TeacherUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print((Path(s.model) / EVAL_MD).read_text(encoding="utf-8"))
    print(
        f"score {result['score']} ({result['score_kind']}); wrote {Path(s.model) / EVAL_JSON}",
        file=sys.stderr,
    )
    return 0


def setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    for name in ("synth_instruct", "generator"):
        logging.getLogger(name).setLevel(logging.INFO)


def main(argv: list[str] | None = None, teacher: TeacherFactory | None = None) -> int:
    """The CLI; `teacher` (a zero-argument factory) replaces the judge's teacher, for tests."""
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        require_extra()
    except ExtraMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.model.is_dir():
        print(f"error: --model {args.model} is not a folder", file=sys.stderr)
        return 2
    try:
        s = settings_from(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not (Path(s.data) / CONFIG).is_file():
        print(f"error: {s.data} is not a run folder (no {CONFIG})", file=sys.stderr)
        return 2
    offline(s.allow_download)
    return run_cli(s, args, teacher)


if __name__ == "__main__":
    sys.exit(main())
