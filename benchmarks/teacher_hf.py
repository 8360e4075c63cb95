"""The teacher benchmark's part (d): Hugging Face transformers `generate` with the same sampling."""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from teacher_host import loadavg
from teacher_workload import result, workload


def part_hf(args: argparse.Namespace, model: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList

    from generator.teachers.vllm_requests import cpu_dtype

    class PresencePenalty(LogitsProcessor):
        """vLLM's presence penalty: subtract `penalty` once from every token already generated."""

        def __init__(self, penalty: float, prompt_len: int) -> None:
            self.penalty, self.prompt_len = penalty, prompt_len

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> Any:
            generated = input_ids[:, self.prompt_len :]
            if generated.shape[1] == 0 or not self.penalty:
                return scores
            present = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, generated, True)
            return scores - self.penalty * present.to(scores.dtype)

    _, _, requests = workload(args.prompts, args.max_tokens)
    # The thread count vLLM's CPU worker uses (its auto binding keeps one core for the scheduler).
    # torch's default, one thread per core, collapsed to 0.5 tokens/s on a busy 2-core host
    # (OpenMP threads spinning against other processes), 15x slower than one thread.
    threads = args.hf_threads or max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(threads)
    dtype = getattr(torch, cpu_dtype()) if not torch.cuda.is_available() else torch.bfloat16
    started = time.monotonic()
    tok: Any = AutoTokenizer.from_pretrained(model, padding_side="left")
    lm: Any = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
    lm.eval()
    init_s = time.monotonic() - started
    params = requests[0].params
    texts: list[str] = []
    finish: list[str] = []
    tokens = 0
    load = loadavg()
    started = time.monotonic()
    for i in range(0, len(requests), args.hf_batch):
        batch = requests[i : i + args.hf_batch]
        torch.manual_seed(batch[0].params.seed or 0)
        enc = tok([r.prompt for r in batch], return_tensors="pt", padding=True)
        prompt_len = enc["input_ids"].shape[1]
        with torch.no_grad():
            out = lm.generate(
                **enc, do_sample=True, temperature=params.temperature, top_p=params.top_p,
                max_new_tokens=params.max_tokens, stop_strings=list(params.stop), tokenizer=tok,
                logits_processor=LogitsProcessorList([PresencePenalty(params.presence_penalty, prompt_len)]),
                pad_token_id=tok.pad_token_id,
            )  # fmt: skip
        for row in out[:, prompt_len:]:
            ids = row.tolist()
            # generation ends at EOS or a stop string; what follows is padding
            n = ids.index(tok.eos_token_id) + 1 if tok.eos_token_id in ids else len(ids)
            text = str(tok.decode(ids[:n], skip_special_tokens=True))
            cut = min((text.find(s) for s in params.stop if s in text), default=-1)
            texts.append(text[:cut] if cut >= 0 else text)
            finish.append("stop" if n < params.max_tokens or cut >= 0 else "length")
            tokens += n
    seconds = time.monotonic() - started
    return result(f"(d) transformers generate, batch {args.hf_batch}, {threads} thread(s)", texts, finish,
                  tokens, seconds, init_s=round(init_s, 1), load=load)  # fmt: skip
