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
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from teacher_hf import part_hf
from teacher_host import cpu_model, has_gpu
from teacher_report import markdown
from teacher_vllm import part_in_process, part_raw_vllm, part_server
from teacher_workload import REPO, kept_instructions, workload

sys.path.insert(0, str(REPO))


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
    # Ray's worker processes import `generator` too, and `teacher_vllm` for the teacher factories
    # they unpickle (from this folder): they inherit this environment.
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), here, os.environ.get("PYTHONPATH")]))
    ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False, object_store_memory=256 * 1024**2,
             log_to_driver=False, configure_logging=False)  # fmt: skip
    try:
        return part_in_process(args, model) if part == "b" else part_server(args, model)
    finally:
        ray.shutdown()


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
        "host": f"{os.cpu_count()} CPUs, {cpu_model()}",
        "model": args.model or "SmolLM2-135M-Instruct (embedded)",
        "dtype": "GPU default" if has_gpu() else cpu_dtype(),
    }
    table = markdown(results, args, info)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps({"info": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
