"""The student model: loaded for training or evaluation, scored on completions, asked for answers.

`generator.finetune` trains it and `generator.evaluate` measures it with these functions, so both load
models the same way (never remote code; local files only unless a download is allowed) and the held-out
loss is computed on exactly the tokens training puts its loss on (`generator/prompting.py`). torch and
transformers are imported inside the functions: importing this module needs neither.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from generator.prompting import completion_labels


def device_and_dtype() -> tuple[str, Any]:
    """The GPU when there is one, in bf16 where it has bf16 (Ampere on); else the CPU, in fp32 (bf16
    matmuls are slow on most CPUs)."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return "cpu", torch.float32


def load_model(
    path: str, dtype: Any, device: str, allow_download: bool = False, base_model: Any = None
) -> tuple[Any, Any]:
    """(model, tokenizer) from a full model folder, or a LoRA adapter folder on top of `base_model` (a
    loaded base, which the adapter wraps in place). Never remote code; the hub only if allowed."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = not allow_download
    folder = Path(path)
    model: Any
    if (folder / "adapter_config.json").is_file():
        from peft import PeftModel

        if base_model is None:
            raise ValueError(f"{path} holds a LoRA adapter: its base model is needed (--base)")
        model = PeftModel.from_pretrained(base_model, path, is_trainable=False)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=dtype, local_files_only=local, trust_remote_code=False
        )
        model.to(device)
    has_tokenizer = (folder / "tokenizer_config.json").is_file() or not folder.is_dir()
    source = path if has_tokenizer else str(getattr(model, "name_or_path", path))
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def completion_loss(
    model: Any, tokenizer: Any, pairs: Sequence[dict[str, str]], max_length: int | None, batch_size: int = 4
) -> tuple[float, int]:
    """(mean cross-entropy per completion token, completion tokens) over prompt-completion pairs, the
    pairs tokenized and masked as SFTTrainer does for training."""
    import torch
    import torch.nn.functional as F

    examples = []
    for p in pairs:
        prompt_ids = tokenizer(text=p["prompt"])["input_ids"]
        full_ids = tokenizer(text=p["prompt"] + p["completion"])["input_ids"]
        ids, labels = completion_labels(prompt_ids, full_ids, max_length)
        if any(label != -100 for label in labels):  # TRL drops examples truncation left without loss
            examples.append((ids, labels))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in batch], device=device)
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch], device=device)
        targets = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch], device=device)
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
        shifted = targets[:, 1:]
        loss = F.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            shifted.reshape(-1),
            ignore_index=-100,
            reduction="sum",
        )
        total += float(loss)
        count += int((shifted != -100).sum())
    if count == 0:
        raise ValueError("no held-out completion tokens to score")
    return total / count, count


def generate(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
    """Greedy answers, one prompt at a time (no padding to get wrong), up to the end-of-sequence token."""
    import torch

    device = next(model.parameters()).device
    answers = []
    for prompt in prompts:
        enc = tokenizer(text=prompt, return_tensors="pt").to(device)
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        answers.append(
            tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        )
    return answers


def offline(allow_download: bool) -> None:
    """No hub traffic unless asked: set before transformers is imported, so every loader sees it."""
    if not allow_download:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_student(path: str, config: dict[str, Any]) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = not config["allow_download"]
    # A LoRA tune on the GPU keeps the frozen base in bf16; full tuning keeps fp32 master weights and
    # trains in bf16 autocast (bf16=True), the usual mixed precision.
    dtype = torch.bfloat16 if config["precision"] == "bf16" and config["lora"] else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, local_files_only=local, trust_remote_code=False
    )
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
