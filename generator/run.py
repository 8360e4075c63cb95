"""Grow an instruction dataset from seed tasks.

    python -m generator.run --seeds seeds/175.jsonl -n 20                       # embedded teacher
    python -m generator.run --seeds seeds/175.jsonl -n 1000 --teacher openai \\
        --base-url http://127.0.0.1:8000/v1 --model my-model                     # any OpenAI-compatible server
    python -m generator.run --config run.yaml --ray-address auto                 # YAML config, Ray cluster
    python -m generator.run --seeds seeds/175.jsonl -n 100 --evolve-rounds 4 ... # then Evol-Instruct

Rerunning the same command on the same --out folder resumes where the last run stopped.
Exit codes: 0 done, 1 the run failed (teacher unavailable, ...), 2 bad input (seeds, config), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from generator.config import ConfigError, RunConfig, load_config
from generator.seeds import SeedFileError, load_seeds
from generator.teachers.base import Teacher
from generator.workers import TeacherFactory

log = logging.getLogger("synth_instruct")


def build_parser() -> argparse.ArgumentParser:
    fields = RunConfig.model_fields
    p = argparse.ArgumentParser(
        prog="python -m generator.run",
        description="Grow an Alpaca-style instruction dataset from seed tasks with a teacher LLM "
        "(Self-Instruct / Alpaca bootstrap on Ray actors, optionally Evol-Instruct after it). "
        "Flags override the YAML --config.",
        epilog="Outputs in --out: alpaca.json, instructions.jsonl, dropped.jsonl, stats.json, config.json "
        "(and evolved.jsonl, evolve_dropped.jsonl with --evolve-rounds). "
        "Exit codes: 0 done, 1 run failed, 2 bad input, 130 interrupted.",
    )
    add = _adder(p)
    add("--seeds", "seeds", type=Path)
    p.add_argument("-n", "--target", type=int, default=None, help=fields["target"].description)
    add("--profile", "profile", choices=["self-instruct", "alpaca"])
    add("--prompts-per-round", "prompts_per_round", type=int)
    add("--max-rounds", "max_rounds", type=int)
    add("--evolve-rounds", "evolve_rounds", type=int)
    add_common_flags(p)
    return p


def _adder(p: argparse.ArgumentParser) -> Callable[..., None]:
    """`add(flag, field, ...)`: a flag whose destination and help come from the RunConfig field."""
    fields = RunConfig.model_fields

    def add(flag: str, field: str, **kw: Any) -> None:
        p.add_argument(flag, dest=field, default=None, help=fields[field].description, **kw)

    return add


def add_common_flags(p: argparse.ArgumentParser) -> None:
    """The flags of both CLIs (`generator.run`, `generator.evolve`): teacher, run folder, Ray, evolution."""
    add = _adder(p)
    add("--teacher", "teacher", choices=["vllm", "openai"])
    add("--base-url", "base_url")
    add("--model", "model")
    add("--api", "api", choices=["completion", "chat"])
    add("--api-key-env", "api_key_env")
    add("--out", "out", type=Path)
    add("--run-name", "run_name")
    add("--seed", "seed", type=int)
    add("--max-in-flight", "max_in_flight", type=int)
    add("--request-timeout", "request_timeout", type=float)
    add("--max-retries", "max_retries", type=int)
    add("--replicas", "replicas", type=int)
    add("--tensor-parallel", "tensor_parallel", type=int)
    add("--num-workers", "num_workers", type=int)
    add("--max-failed-rounds", "max_failed_rounds", type=int)
    add("--ray-address", "ray_address")
    add("--cache-path", "cache_path", type=Path)
    add("--price-prompt", "price_prompt_per_1m", type=float)
    add("--price-completion", "price_completion_per_1m", type=float)
    p.add_argument(
        "--no-cache",
        dest="cache",
        action="store_const",
        const=False,
        default=None,
        help="send every request to the teacher (don't read or write the request cache)",
    )
    # -- evolution (Evol-Instruct) --
    add("--evolve-profile", "evolve_profile", choices=["general", "code"])
    p.add_argument(
        "--evolve-op",
        dest="evolve_ops",
        action=_OpWeight,
        default=None,
        metavar="OP=WEIGHT",
        help="weight of one evolve op (repeat the flag; ops left out get weight 0), "
        "e.g. --evolve-op add_constraints=2 --evolve-op breadth=1",
    )
    add("--evolve-api", "evolve_api", choices=["completion", "chat"])
    p.add_argument(
        "--no-evolve-scores",
        dest="evolve_scores",
        action="store_const",
        const=False,
        default=None,
        help="don't have the teacher score complexity and answer quality of evolved items",
    )
    add("--score-filter", "score_filter", type=score_filter_arg, metavar="SPEC")
    p.add_argument(
        "--config", type=Path, default=None, help="YAML run file with the same settings as the flags"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every dropped item and retry")


class _OpWeight(argparse.Action):
    """Collect repeated `--evolve-op OP=WEIGHT` flags into one {op: weight} dict."""

    def __call__(
        self, parser: argparse.ArgumentParser, ns: argparse.Namespace, value: Any, flag: Any = None
    ) -> None:
        op, sep, weight = str(value).partition("=")
        try:
            number = float(weight) if sep else 1.0
        except ValueError:
            parser.error(f"{flag}: expected OP=WEIGHT, got {value!r}")
        ops = dict(getattr(ns, self.dest) or {})
        ops[op.strip()] = number
        setattr(ns, self.dest, ops)


def score_filter_arg(text: str) -> dict[str, Any]:
    """`quality>=4` (threshold) or `deita:top=0.3` (top fraction) as a `score` filter spec."""
    key, sep, value = text.partition(">=")
    try:
        if sep:
            return {"name": "score", "params": {"key": key.strip(), "min_score": float(value)}}
        key, sep, value = text.partition(":top=")
        if sep:
            return {"name": "score", "params": {"key": key.strip(), "top_fraction": float(value)}}
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"expected KEY>=MIN or KEY:top=FRACTION (KEY: complexity, quality, deita), got {text!r}"
    )


def init_ray(address: str | None) -> None:
    """Start (or join) Ray with settings that suit a small machine."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file for a local, single-user cluster
    if address:
        # A cluster's workers need our code: ship the two packages with the job.
        import filters
        import generator

        ray.init(address=address, runtime_env={"py_modules": [generator, filters]}, log_to_driver=False)
        return
    ray.init(
        num_cpus=os.cpu_count() or 2,
        include_dashboard=False,
        object_store_memory=256 * 1024**2,  # the default (30% of /dev/shm) is far more than records need
        log_to_driver=False,
        configure_logging=False,
    )


def run(config: RunConfig, make_teacher: TeacherFactory | None = None) -> dict[str, Any]:
    """Programmatic entry point: grow a dataset with Ray started (or joined) and stopped around it."""
    import ray

    resolved = config.resolved()
    load_seeds(resolved.seeds)  # fail on bad seeds before starting anything
    if make_teacher is None:
        # One worker is enough for vLLM: the engine actors themselves keep many requests in flight.
        workers = 1 if resolved.teacher == "vllm" else resolved.num_workers
        resolved = resolved.model_copy(update={"num_workers": workers})
        assert resolved.max_in_flight is not None  # resolved() sets it per backend
        per_worker = -(-resolved.max_in_flight // workers)
        teacher_factory: TeacherFactory = partial(_teacher, resolved, per_worker)
    else:
        teacher_factory = make_teacher
    started_here = not ray.is_initialized()
    if started_here:
        init_ray(resolved.ray_address)
    try:
        if not resolved.bootstrap:  # python -m generator.evolve: the seed file's rows are what evolves
            from generator.evolution import evolve_input

            return evolve_input(resolved, teacher_factory)
        from generator.loop import grow

        summary = grow(resolved, teacher_factory)
        if resolved.evolve_rounds > 0:
            from generator.evolution import evolve_bootstrap

            summary = evolve_bootstrap(resolved, teacher_factory)
        return summary
    finally:
        if started_here:
            ray.shutdown()


def _teacher(config: RunConfig, max_in_flight: int) -> Teacher:
    from generator.teachers.factory import make_teacher

    return make_teacher(config, max_in_flight)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    return cli(build_parser().parse_args(argv))


def cli(args: argparse.Namespace, **fixed: object) -> int:
    """Run from parsed flags (plus `fixed` settings a CLI implies); log, report, map errors to exit codes."""
    # `kill` (SIGTERM) gets the same clean shutdown as Ctrl+C: actors stopped, Ray shut down.
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    overrides = {k: v for k, v in vars(args).items() if k not in {"config", "verbose"}} | fixed
    try:
        config = load_config(args.config, overrides)
        summary = run(config)
    except (ConfigError, SeedFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: accepted items are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        from generator.common import TeacherUnavailable

        if isinstance(exc, TeacherUnavailable):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
    counts = summary["counts"]
    teacher = summary["teacher"]
    out = config.resolved().out
    print(
        f"done: {counts.get('dataset_instructions', 0)} instructions, {counts.get('dataset_rows', 0)} rows "
        f"in {out}/alpaca.json; {teacher['requests']} teacher requests ({teacher['cache_hits']} cached, "
        f"{teacher['failed']} failed), {teacher['prompt_tokens']}+{teacher['completion_tokens']} tokens, "
        f"{summary['wall_time_s']:.1f}s, est. cost ${summary['cost_estimate_usd']:.4f}"
    )
    if "evolve" in summary:
        from generator.evolution import format_evolve_stats

        print(format_evolve_stats(summary["evolve"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
