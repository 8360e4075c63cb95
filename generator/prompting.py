"""The student's view of a row: the prompt a fine-tuned model is trained and evaluated on, and its completion.

`generator.finetune` trains on these pairs with the loss on the completion only (Self-Instruct tuned
GPT-3 with a prompt loss weight of 0), and `generator.evaluate` scores and prompts the models with the
very same text, so the held-out loss measures what training optimised.

Two formats:

- `alpaca` (the default): the Stanford Alpaca prompt template, with or without its Input block. Any
  causal LM can learn it, base or instruct, and it needs no chat template.
- `chat`: the tokenizer's own chat template for one user message (the instruction, then the input),
  ending with the assistant's turn opened (`add_generation_prompt=True`), for instruct models.

The completion is the row's output followed by the tokenizer's end-of-sequence token, so a tuned model
learns where to stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from generator.records import AlpacaRow

PromptFormat = Literal["alpaca", "chat"]

# Stanford Alpaca's two templates, word for word (train.py, PROMPT_DICT).
ALPACA_PROMPT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def alpaca_prompt(row: AlpacaRow) -> str:
    """The Alpaca prompt for a row: the no-input variant when its input is empty."""
    if row.input.strip():
        return ALPACA_PROMPT.format(instruction=row.instruction, input=row.input)
    return ALPACA_PROMPT_NO_INPUT.format(instruction=row.instruction)


def user_message(row: AlpacaRow) -> str:
    """The instruction and, after a blank line, the input: one user turn for the chat format."""
    return f"{row.instruction}\n\n{row.input}" if row.input.strip() else row.instruction


def chat_prompt(row: AlpacaRow, tokenizer: Any) -> str:
    """The tokenizer's chat template for the row as one user message, the assistant's turn opened."""
    messages = [{"role": "user", "content": user_message(row)}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return str(text)


def prompt_text(row: AlpacaRow, fmt: PromptFormat, tokenizer: Any = None) -> str:
    if fmt == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("--chat-template: this tokenizer has no chat template")
        return chat_prompt(row, tokenizer)
    return alpaca_prompt(row)


def prompt_completions(
    rows: Sequence[AlpacaRow], fmt: PromptFormat, tokenizer: Any, eos_token: str
) -> list[dict[str, str]]:
    """TRL's prompt-completion form of the rows: `{"prompt": ..., "completion": output + eos}`."""
    return [{"prompt": prompt_text(r, fmt, tokenizer), "completion": r.output + eos_token} for r in rows]


def common_prefix_length(ids: Sequence[int], other: Sequence[int]) -> int:
    """How many leading tokens two sequences share. The completion starts where the tokenized prompt and
    the tokenized prompt + completion part (tokens may merge across the boundary), as TRL 1.16 decides."""
    n = 0
    for a, b in zip(ids, other, strict=False):
        if a != b:
            break
        n += 1
    return n


def completion_labels(
    prompt_ids: Sequence[int], full_ids: Sequence[int], max_length: int | None
) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one pair as SFTTrainer builds them: prompt tokens masked with -100, then
    the first `max_length` tokens kept (TRL's `keep_start`)."""
    start = common_prefix_length(prompt_ids, full_ids)
    ids = list(full_ids)
    labels = [-100] * start + ids[start:]
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    return ids, labels
