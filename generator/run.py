"""Grow an instruction dataset from seed tasks.

    python -m generator.run --seeds seeds/175.jsonl -n 20                       # embedded teacher
    python -m generator.run --seeds seeds/175.jsonl -n 1000 --teacher openai \\
        --base-url http://127.0.0.1:8000/v1 --model my-model                     # any OpenAI-compatible server
    python -m generator.run --config run.yaml --ray-address auto                 # YAML config, Ray cluster
    python -m generator.run --seeds seeds/175.jsonl -n 100 --evolve-rounds 4 ... # then Evol-Instruct
    python -m generator.run --domain arithmetic --seeds seeds/arithmetic.jsonl   # checked answers

Rerunning the same command on the same --out folder resumes where the last run stopped.
Exit codes: 0 done, 1 the run failed (teacher unavailable, ...), 2 bad input (seeds, config, a run folder
another run holds, a --ray-address nothing answers at), 130 interrupted (the first Ctrl+C or SIGTERM stops after the round in flight commits).

`run()` below is the library entry point: `run(config, teacher=..., on_progress=..., stop=...)`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from generator.config import ConfigError, RunConfig, load_config
from generator.domains import check_domain_seeds, domain_for
from generator.errors import RayUnavailable, RunFolderBusy, TeacherUnavailable
from generator.evolve_report import format_evolve_stats
from generator.magpie import is_magpie, magpie_template
from generator.personas import load_personas
from generator.profiles import PROFILES, evolve_profiles
from generator.ray_runtime import ray_runtime
from generator.run_folder import RunFolder
from generator.runner import ProgressCallback, Runner, check_config
from generator.seeds import SeedFileError, load_seeds
from generator.worker_pool import Workers, default_teacher, teacher_settings
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
    add("--profile", "profile", choices=list(PROFILES))
    add("--prompts-per-round", "prompts_per_round", type=int)
    add("--rounds-in-flight", "rounds_in_flight", type=int)
    add("--max-rounds", "max_rounds", type=int)
    add("--evolve-rounds", "evolve_rounds", type=int)
    add("--personas", "personas", type=Path, metavar="FILE")
    add_domain_flags(p)
    add_common_flags(p)
    return p


def add_domain_flags(p: argparse.ArgumentParser) -> None:
    """Domains: `--domain arithmetic --seeds seeds/arithmetic.jsonl` grows a dataset of checked answers."""
    from generator.domains import domain_names

    add = _adder(p)
    add("--domain", "domain", choices=domain_names())
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_const",
        const=False,
        default=None,
        help="keep the teacher's answers even where the domain's verifier rejects them (each verdict "
        "is still recorded, for ablations)",
    )
    add("--sandbox-timeout", "sandbox_timeout", type=float, metavar="S")
    add("--references", "references", type=Path, metavar="DIR")
    add("--support-check", "support_check", choices=["lexical", "judge", "both"])
    add("--retrieve-k", "retrieve_k", type=int, metavar="K")
    add("--passage-share", "passage_share", type=float, metavar="F")
    add("--sandbox-parallel", "sandbox_parallel", type=int, metavar="N")


def _adder(p: argparse.ArgumentParser) -> Callable[..., None]:
    """`add(flag, field, ...)`: a flag whose destination and help come from the RunConfig field."""
    fields = RunConfig.model_fields

    def add(flag: str, field: str, **kw: Any) -> None:
        p.add_argument(flag, dest=field, default=None, help=fields[field].description, **kw)

    return add


def add_teacher_flags(p: argparse.ArgumentParser) -> None:
    """The teacher, its request cache, prices and Ray: flags of both CLIs and of the REST service."""
    add = _adder(p)
    add("--teacher", "teacher", choices=["vllm", "openai"])
    add("--base-url", "base_url")
    add("--model", "model")
    add("--api", "api", choices=["completion", "chat"])
    add("--api-key-env", "api_key_env")
    add("--max-in-flight", "max_in_flight", type=int)
    add("--request-timeout", "request_timeout", type=float)
    add("--max-retries", "max_retries", type=int)
    add("--replicas", "replicas", type=int)
    add("--tensor-parallel", "tensor_parallel", type=int)
    add("--num-workers", "num_workers", type=int)
    add("--ray-address", "ray_address")
    add("--cache-path", "cache_path", type=Path)
    add("--price-prompt", "price_prompt_per_1m", type=float)
    add("--price-completion", "price_completion_per_1m", type=float)
    add("--answer-model", "answer_model", metavar="MODEL")
    add("--judge-model", "judge_model", metavar="MODEL")
    add("--chat-template", "chat_template", metavar="FILE|TEMPLATE")
    p.add_argument(
        "--no-cache",
        dest="cache",
        action="store_const",
        const=False,
        default=None,
        help="send every request to the teacher (don't read or write the request cache)",
    )


def add_common_flags(p: argparse.ArgumentParser) -> None:
    """The flags of both CLIs (`generator.run`, `generator.evolve`): teacher, run folder, Ray, evolution."""
    add = _adder(p)
    add_teacher_flags(p)
    add("--out", "out", type=Path)
    add("--run-name", "run_name")
    add("--seed", "seed", type=int)
    add("--max-failed-rounds", "max_failed_rounds", type=int)
    # -- evolution (Evol-Instruct) --
    add("--evolve-profile", "evolve_profile", choices=evolve_profiles())
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


def run(
    config: RunConfig,
    *,
    teacher: TeacherFactory | None = None,
    on_progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    workers: Workers | None = None,
) -> dict[str, Any]:
    """Grow (and evolve) a dataset as `config` says; returns what stats.json holds.

    The library entry point, which the CLI and the REST service call too:

    - `teacher`: builds the teacher inside each worker actor (a class or any zero-argument callable;
      default: the one `config` names, behind the request cache);
    - `on_progress(p)` is called after every committed round with `p.stage`, `p.round`, `p.kept`,
      `p.target`, `p.stats` (stats.json so far) and `p.rows` (the dataset rows the round added);
    - `stop` (a `threading.Event`): once set, the run ends after the round in flight commits and
      writes the dataset so far (the summary says `"stopped": true`); run it again to resume;
    - `workers`: a started pool (`generator.worker_pool.start_workers`) shared with other runs, so
      they all use one teacher; it is left running at the end. `teacher` is then unused.

    Bad input (seeds, a config that does not match the folder's, a folder another run holds) raises
    before Ray or the teacher start. Runs in several threads of one process share one Ray runtime.
    """
    resolved = config.resolved()
    seeds = load_seeds(resolved.seeds)  # fail on bad seeds before starting anything
    load_personas(resolved.personas)  # a missing or empty persona file, too
    if is_magpie(resolved):
        magpie_template(resolved)  # a chat-only endpoint, or no chat template to be found
    if resolved.domain is not None:
        assert resolved.seeds is not None  # RunConfig: a domain run names its seed file
        check_domain_seeds(resolved.seeds, seeds, resolved.domain)
        domain_for(resolved)  # the domain's own settings (a corpus, sandbox limits), before anything starts
    if teacher is None and workers is None:
        resolved = teacher_settings(config)
        teacher = default_teacher(resolved)
    assert resolved.out is not None  # resolved() chooses it
    folder = RunFolder(resolved.out)
    folder.lock()  # before anything reads or writes the folder
    try:
        check_config(folder, resolved)
        with ray_runtime(resolved.ray_address):
            if workers is not None:  # shared with other runs: it stays up after this one
                return Runner(resolved, folder, workers, on_progress, stop, owns_workers=False).run()
            assert teacher is not None
            return Runner(resolved, folder, Workers(resolved, teacher), on_progress, stop).run()
    finally:
        folder.unlock()


class _StopOnSignal:
    """Ctrl+C or `kill` (SIGTERM): the first ends the run after the round in flight commits, as
    `stop` does for a library caller; a second one stops at once (actors stopped, Ray shut down)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def __call__(self, signum: int, frame: object) -> None:
        if self.stop.is_set():
            raise KeyboardInterrupt
        self.stop.set()
        print(
            "stopping after the round in flight commits (press Ctrl+C again to stop now)",
            file=sys.stderr,
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    return cli(build_parser().parse_args(argv))


def cli(args: argparse.Namespace, **fixed: object) -> int:
    """Run from parsed flags (plus `fixed` settings a CLI implies); log, report, map errors to exit codes."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _StopOnSignal(stop))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    overrides = {k: v for k, v in vars(args).items() if k not in {"config", "verbose"}} | fixed
    try:
        config = load_config(args.config, overrides)
        summary = run(config, stop=stop)
    except (ConfigError, SeedFileError, RunFolderBusy, RayUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TeacherUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: accepted items are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    if summary.get("stopped"):
        print("interrupted: accepted items are saved; rerun the same command to resume", file=sys.stderr)
        return 130
    counts = summary["counts"]
    teacher = summary["teacher"]
    out = config.resolved().out
    print(
        f"done: {counts.get('dataset_instructions', 0)} instructions, {counts.get('dataset_rows', 0)} rows "
        f"in {out}/alpaca.json; {teacher['requests']} teacher requests ({teacher['cache_hits']} cached, "
        f"{teacher['failed']} failed), {teacher['prompt_tokens']}+{teacher['completion_tokens']} tokens, "
        f"{summary['wall_time_s']:.1f}s, est. cost ${summary['cost_estimate_usd']:.4f}"
    )
    if len(summary.get("teachers", {})) > 1:
        print(format_teachers(summary["teachers"]))
    if "evolve" in summary:
        print(format_evolve_stats(summary["evolve"]))
    if "domain" in summary:
        print(format_domain_stats(summary["domain"]))
    return 0


def format_teachers(teachers: dict[str, Any]) -> str:
    """One line per teacher of a routed run: its model, stages, tokens, cost and latency."""
    lines = []
    for name, t in teachers.items():
        lines.append(
            f"teacher {name} ({t.get('backend', '?')}/{t.get('model', '?')}): "
            f"{', '.join(t.get('stages', {})) or 'no calls'}; {t.get('requests', 0)} requests "
            f"({t.get('failed', 0)} failed), {t.get('prompt_tokens', 0)}+{t.get('completion_tokens', 0)} "
            f"tokens, ${t.get('cost_usd', 0.0):.4f}, {t.get('mean_latency_s', 0.0):.2f}s per answer"
        )
    return "\n".join(lines)


def format_domain_stats(report: dict[str, Any]) -> str:
    """The verifier's account in one line: what it passed, and why it rejected the rest."""
    v = report["verification"]
    why = ", ".join(
        f"{reason} {n}" for verdict in ("failed", "unverifiable") for reason, n in v[verdict].items()
    )
    line = f"{report['name']} ({report['method']}): {v['verified']} teacher answers verified, "
    line += f"{report['teacher_answers_rejected']} rejected" + (f" ({why})" if why else "")
    if not report["verify"]:
        return line + ", kept anyway (--no-verify)"
    return line + f"; {v['repaired']} of them kept with the domain's own answer, {report['dropped']} dropped"


if __name__ == "__main__":
    sys.exit(main())
