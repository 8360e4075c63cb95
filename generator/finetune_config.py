"""A fine-tune's settings and folder: what finetune_config.json holds, when a rerun may resume, the flags
and files both CLIs share (`generator.finetune`, `generator.evaluate`).

A tune folder (`--out DIR`) holds the model (a LoRA adapter or a full model), `checkpoint-N/` folders
(the last two), finetune_config.json (written before training, rewritten with the result after it),
trainer_state.json, eval.json and eval.md. A rerun into the same DIR resumes from its newest complete
checkpoint, unless the checkpoints belong to another tune: the fields in `IDENTITY` must match, while
hyperparameters such as the step count may change (that is how a tune is continued).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

from generator.config import ConfigError
from generator.export import DEFAULT_SPLIT

EXTRA_HINT = "pip install -e '.[finetune]'"
FINETUNE_CONFIG, EVAL_JSON, EVAL_MD = "finetune_config.json", "eval.json", "eval.md"
DEFAULT_SPLIT_TEXT = "/".join(f"{r:g}" for r in DEFAULT_SPLIT)
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")  # Llama-style names (SmolLM2, Qwen, Mistral ...)
IDENTITY = ("model", "data", "format", "split", "lora")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


class ExtraMissing(RuntimeError):
    """The `finetune` extra (trl, peft) is not installed."""


def require_extra() -> None:
    missing = [
        m for m in ("torch", "transformers", "datasets", "trl", "peft") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise ExtraMissing(
            f"{', '.join(missing)} not installed: run {EXTRA_HINT} (or scripts/install.sh --dev)"
        )


def split_arg(text: str) -> tuple[float, float, float]:
    """`0.9/0.05/0.05` (or with commas): the train, validation and test shares of the instructions,
    as the export takes them (non-negative, adding up to 1, and a test share to evaluate on)."""
    try:
        parts = tuple(float(x) for x in text.replace(",", "/").split("/"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or abs(sum(parts) - 1) > 1e-6 or parts[2] <= 0:
        raise argparse.ArgumentTypeError(
            f"expected TRAIN/VALIDATION/TEST shares adding up to 1, the test share above 0; got {text!r}"
        )
    return parts[0], parts[1], parts[2]


def attention_modules(module_names: list[str]) -> list[str] | str:
    """The attention projections LoRA adapts, by the names the model uses; every linear layer
    ("all-linear") for an architecture that names them otherwise."""
    leaves = {name.rsplit(".", 1)[-1] for name in module_names}
    found = [name for name in ATTENTION if name in leaves]
    return found or "all-linear"


def tune_config(
    args: argparse.Namespace, model_path: str, device: str, precision: str, rows: dict[str, int]
) -> dict[str, Any]:
    """What finetune_config.json holds before training: everything that decides the tune."""
    lora = {"r": args.lora_r, "alpha": args.lora_alpha, "dropout": 0.05} if args.lora else None
    lr = args.learning_rate if args.learning_rate is not None else (2e-4 if args.lora else 2e-5)
    return {
        "model": model_path,
        "data": str(args.data.resolve()),
        "format": "chat" if args.chat_template else "alpaca",
        "split": {"ratios": list(args.split), "seed": args.split_seed, "rows": rows},
        "seed": args.seed,
        "lora": lora,
        "hyperparameters": {
            "epochs": args.epochs,
            "max_steps": args.max_steps,
            "learning_rate": lr,
            "scheduler": "linear",
            "warmup_ratio": 0.03,
            "optimizer": "adamw_torch",
            "batch_size": args.batch_size,
            "grad_accum": args.grad_accum,
            "max_length": args.max_length,
            "save_steps": args.save_steps,
            "eval_steps": args.eval_steps or args.save_steps,
            "logging_steps": args.logging_steps,
            "loss": "completion only",
        },
        "device": device,
        "precision": precision,
        "allow_download": args.allow_download,
        "versions": {m: version(m) for m in ("torch", "transformers", "trl", "peft", "datasets")},
    }


def last_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint in `out` (one whose trainer state was written), if any."""
    found = [
        (int(m.group(1)), p)
        for p in (out.iterdir() if out.is_dir() else [])
        if (m := _CHECKPOINT.match(p.name)) and (p / "trainer_state.json").is_file()
    ]
    return max(found)[1] if found else None


def check_resume(out: Path, config: dict[str, Any]) -> Path | None:
    """The checkpoint to resume from; a ConfigError when DIR's checkpoints belong to another tune."""
    checkpoint = last_checkpoint(out)
    saved_file = out / FINETUNE_CONFIG
    if checkpoint is None or not saved_file.is_file():
        return checkpoint
    saved = json.loads(saved_file.read_text(encoding="utf-8"))
    changed = [k for k in IDENTITY if _identity(saved.get(k)) != _identity(config.get(k))]
    if changed:
        raise ConfigError(
            f"{out} holds checkpoints of another tune ({', '.join(changed)} differ): "
            "pick another --out, or delete it to start over"
        )
    return checkpoint


def _identity(value: Any) -> Any:
    if isinstance(value, dict):  # the split's row counts and LoRA's targets follow from the rest
        return {k: v for k, v in value.items() if k not in ("rows", "target_modules")}
    return value
