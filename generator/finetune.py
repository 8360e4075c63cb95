"""`python -m generator.finetune --data out/<run> [--model PATH] [--lora] [--epochs N] [--out DIR]`

Supervised fine-tuning of a student on a grown dataset, then its evaluation (`generator.evaluate`).

- The rows of the dataset's "train" split (`generator.export.split_rows`, by instruction; the trainer
  evaluates on "validation", `generator.evaluate` on the held-out "test") in TRL's prompt-completion
  form: the Alpaca prompt template, or the model's chat template with `--chat-template`
  (`generator/prompting.py`), the output + end-of-sequence token as the completion. The loss is on the
  completion only, as Self-Instruct tuned GPT-3 with a prompt loss weight of 0.
- TRL's `SFTTrainer`: full fine-tuning, or a peft LoRA adapter with `--lora` (r 8, alpha 16 on the
  attention projections). The default model is the embedded SmolLM2-135M-Instruct (the HF folder the
  embedded teacher converts into the per-user cache); `--model` takes any local HF folder. On a GPU the
  same command trains in bf16; on the CPU in fp32 (a 135M LoRA tune of a small dataset takes minutes).
- Checkpoints every `--save-steps` in DIR/checkpoint-N (the last two kept): a rerun with the same DIR
  resumes from the last one, with the trainer's step, optimizer and scheduler state, and says so; a
  larger `--max-steps` or `--epochs` continues a finished tune. DIR holding another tune's
  checkpoints (another model, data, format, split or LoRA shape) is refused.
- DIR/finetune_config.json: the resolved config (model path, data folder, split, seed, hyperparameters,
  LoRA, device, library versions), rewritten with the result at the end.

What DIR (default RUN/finetune) holds at the end: with `--lora`, the adapter (adapter_config.json names the base model's path;
`generator.evaluate` loads the base and puts the adapter on it) and, with `--merge`, the merged model
in DIR/merged (an ordinary HF folder, e.g. for `--model` of a teacher); without `--lora`, the full
model. Beside it the tokenizer, trainer_state.json, eval.json and eval.md.

No `trust_remote_code`, and no hub traffic (local files only, HF_HUB_OFFLINE) unless `--allow-download`.
Exit codes: 0 done, 1 the judge's teacher failed, 2 bad input or the `finetune` extra missing.

This module drives the trainer; `finetune_config.py` holds the settings and the resume rule,
`student.py` loads models and scores them, `prompting.py` builds the prompts.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from generator.config import ConfigError
from generator.eval_judge import judge_config
from generator.evaluate import EvalSettings, add_eval_flags, held_out, run_cli, setup_logging
from generator.export import DEFAULT_SPLIT
from generator.finetune_config import (
    DEFAULT_SPLIT_TEXT,
    EXTRA_HINT,
    FINETUNE_CONFIG,
    ExtraMissing,
    attention_modules,
    check_resume,
    require_extra,
    split_arg,
    tune_config,
)
from generator.prompting import PromptFormat, prompt_completions
from generator.run_folder import CONFIG, write_json_atomic
from generator.student import device_and_dtype, load_student, offline
from generator.workers import TeacherFactory

log = logging.getLogger("synth_instruct.finetune")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator.finetune",
        description="Fine-tune a model on a run folder's dataset (TRL SFT, loss on the completions), then "
        "evaluate it on the held-out split (generator.evaluate).",
        epilog=f"Needs the finetune extra ({EXTRA_HINT}). Exit codes: 0 done, 1 the judge's teacher "
        "failed, 2 bad input or the extra missing.",
    )
    p.add_argument("--data", type=Path, required=True, metavar="RUN", help="the run folder (out/<run>)")
    p.add_argument(
        "--model",
        default=None,
        metavar="PATH",
        help="a local HF model folder (default: the embedded SmolLM2-135M-Instruct)",
    )
    p.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="where the model goes (default RUN/finetune)"
    )
    p.add_argument("--lora", action="store_true", help="train a LoRA adapter instead of every weight")
    p.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default 8)")
    p.add_argument("--lora-alpha", type=int, default=16, help="LoRA alpha (default 16)")
    p.add_argument(
        "--merge", action="store_true", help="with --lora, also write the merged model to DIR/merged"
    )
    p.add_argument(
        "--chat-template", action="store_true", help="prompt with the model's chat template, not Alpaca's"
    )
    p.add_argument("--epochs", type=float, default=3.0, help="passes over the train split (default 3)")
    p.add_argument(
        "--max-steps", type=int, default=-1, help="stop after N optimizer steps (overrides --epochs)"
    )
    p.add_argument(
        "--learning-rate", type=float, default=None, help="peak learning rate (default 2e-4 LoRA, 2e-5 full)"
    )
    p.add_argument("--batch-size", type=int, default=4, help="rows per step and device (default 4)")
    p.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps (default 1)")
    p.add_argument(
        "--max-length", type=int, default=512, help="tokens per example, the rest cut (default 512)"
    )
    p.add_argument("--save-steps", type=int, default=50, help="checkpoint every N steps (default 50)")
    p.add_argument(
        "--eval-steps", type=int, default=None, help="validation loss every N steps (default: --save-steps)"
    )
    p.add_argument(
        "--logging-steps", type=int, default=5, help="log the training loss every N steps (default 5)"
    )
    p.add_argument("--seed", type=int, default=42, help="training seed: shuffling, adapter init (default 42)")
    p.add_argument(
        "--split",
        type=split_arg,
        default=DEFAULT_SPLIT,
        metavar="TRAIN/VAL/TEST",
        help=f"shares of the instructions, as the export's --split (default {DEFAULT_SPLIT_TEXT})",
    )
    p.add_argument(
        "--split-seed", type=int, default=42, help="the split's seed (default 42, as the export's)"
    )
    p.add_argument("--allow-download", action="store_true", help="let --model be a hub id that may download")
    p.add_argument("--no-eval", dest="eval", action="store_false", help="skip the evaluation at the end")
    add_eval_flags(p)
    return p  # fmt: skip


def sft_config(config: dict[str, Any], out: Path, validate: bool) -> Any:
    from trl import SFTConfig

    h = config["hyperparameters"]
    cuda = config["device"] == "cuda"
    bf16 = config["precision"] == "bf16"
    return SFTConfig(
        output_dir=str(out),
        num_train_epochs=h["epochs"],
        max_steps=h["max_steps"],
        per_device_train_batch_size=h["batch_size"],
        per_device_eval_batch_size=h["batch_size"],
        gradient_accumulation_steps=h["grad_accum"],
        learning_rate=h["learning_rate"],
        lr_scheduler_type=h["scheduler"],
        warmup_steps=h["warmup_ratio"],  # a float below 1 is a share of the steps
        optim=h["optimizer"],
        max_length=h["max_length"],
        completion_only_loss=True,
        packing=False,
        logging_steps=h["logging_steps"],
        logging_first_step=True,
        eval_strategy="steps" if validate else "no",
        eval_steps=h["eval_steps"],
        save_strategy="steps",
        save_steps=h["save_steps"],
        save_total_limit=2,
        bf16=bf16,  # TRL defaults to bf16 even on the CPU, where it is slow or unsupported
        fp16=False,
        gradient_checkpointing=False,  # a small model does not need it, and it slows the CPU down
        use_cpu=not cuda,
        dataloader_pin_memory=cuda,
        seed=config["seed"],
        data_seed=config["seed"],
        report_to="none",
        disable_tqdm=False,  # the progress bar: step, loss, ETA
    )


def _eval_loss_logger() -> Any:
    from transformers import TrainerCallback

    class EvalLossLog(TrainerCallback):  # type: ignore[misc]
        def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any) -> None:
            if metrics and "eval_loss" in metrics:
                log.info("step %d: validation loss %.4f", state.global_step, metrics["eval_loss"])

    return EvalLossLog()


def train(
    config: dict[str, Any], out: Path, splits: dict[str, Any], resume: Path | None, merge: bool
) -> dict[str, Any]:
    """Train, save the model (adapter or full) and trainer state into `out`; the result summary."""
    from datasets import Dataset
    from trl import SFTTrainer

    model, tokenizer = load_student(config["model"], config)
    fmt: PromptFormat = config["format"]
    data = {
        s: Dataset.from_list(prompt_completions(splits[s], fmt, tokenizer, tokenizer.eos_token))
        for s in ("train", "validation")
        if splits[s]
    }
    peft_config = None
    if config["lora"]:
        from peft import LoraConfig

        targets = attention_modules([name for name, _ in model.named_modules()])
        config["lora"]["target_modules"] = targets
        lora = config["lora"]
        peft_config = LoraConfig(
            r=lora["r"],
            lora_alpha=lora["alpha"],
            lora_dropout=lora["dropout"],
            target_modules=targets,
            task_type="CAUSAL_LM",
        )
    trainer = SFTTrainer(
        model=model,
        args=sft_config(config, out, "validation" in data),
        train_dataset=data["train"],
        eval_dataset=data.get("validation"),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[_eval_loss_logger()],
    )
    if resume is not None:
        step = json.loads((resume / "trainer_state.json").read_text())["global_step"]
        log.info("resuming from %s (step %d)", resume.name, step)
    start = time.monotonic()
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    trainer.save_model(str(out))
    trainer.save_state()
    result = {
        "global_step": trainer.state.global_step,
        "train_loss": round(float(output.training_loss), 6),
        "train_runtime_s": round(time.monotonic() - start, 1),
        "resumed_from": resume.name if resume else None,
        "saved": "adapter" if config["lora"] else "full model",
        "merged": None,
    }
    if merge and config["lora"]:
        peft_model: Any = trainer.model
        merged = peft_model.merge_and_unload()
        merged.save_pretrained(str(out / "merged"))
        tokenizer.save_pretrained(str(out / "merged"))
        result["merged"] = str((out / "merged").resolve())
    del trainer, model
    gc.collect()
    return result


def main(argv: list[str] | None = None, teacher: TeacherFactory | None = None) -> int:
    """The CLI; `teacher` (a zero-argument factory) replaces the judge's teacher, for tests."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.merge and not args.lora:
        parser.error("--merge merges a LoRA adapter: it needs --lora")
    setup_logging()
    try:
        require_extra()
    except ExtraMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not (args.data / CONFIG).is_file():
        print(f"error: {args.data} is not a run folder (no {CONFIG})", file=sys.stderr)
        return 2
    offline(args.allow_download)
    from generator.teachers.embedded import resolve_model

    out: Path = args.out or args.data / "finetune"
    try:
        model_path = resolve_model(args.model)
        splits = held_out(args.data, args.split, args.split_seed)
        if not splits["train"]:
            raise ConfigError(f"{args.data} has no rows to train on")
        if args.eval and not splits["test"]:
            raise ConfigError(f"the held-out split of {args.data} is empty: give --split a larger test share")
        device, dtype = device_and_dtype()
        precision = "bf16" if "bfloat16" in str(dtype) else "fp32"
        config = tune_config(args, model_path, device, precision, {k: len(v) for k, v in splits.items()})
        resume = check_resume(out, config)
        if args.judge:
            judge_config(args.data, args)  # a bad --judge-* flag fails now, not after the training
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    rows = config["split"]["rows"]
    log.info(
        "fine-tuning %s (%s) on %d rows (%d validation, %d held out) from %s on %s, into %s",
        model_path,
        f"LoRA r={args.lora_r}" if args.lora else "all weights",
        rows["train"],
        rows["validation"],
        rows["test"],
        args.data,
        device,
        out,
    )
    write_json_atomic(out / FINETUNE_CONFIG, config)  # before training: a resumed run checks against it
    config["result"] = train(config, out, splits, resume, args.merge)
    write_json_atomic(out / FINETUNE_CONFIG, config)
    log.info(
        "trained to step %d (loss %.4f); model in %s",
        config["result"]["global_step"],
        config["result"]["train_loss"],
        out,
    )
    if not args.eval:
        return 0
    s = EvalSettings(
        model=str(out),
        base=model_path,
        data=str(args.data),
        format=config["format"],
        split=args.split,
        split_seed=args.split_seed,
        max_length=args.max_length,
        samples=args.samples,
        max_new_tokens=args.max_new_tokens,
        allow_download=args.allow_download,
    )
    return run_cli(s, args, teacher)


if __name__ == "__main__":
    sys.exit(main())
