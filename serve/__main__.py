"""Start the REST service.

    python -m serve                                    # 127.0.0.1:8000, the embedded vLLM teacher
    SYNTH_API_KEYS=k1,k2 python -m serve --host 0.0.0.0 --teacher openai \\
        --base-url http://127.0.0.1:8001/v1 --model my-model
    python -m serve --no-auth                          # loopback only
    python -m serve --ray-address auto                 # a Ray Serve deployment on a running cluster

The teacher and the request cache take the same flags (and YAML run file, --config) as
`python -m generator.run`. Exit codes: 0 stopped, 2 bad settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

# A job's progress is in its state (GET /v1/jobs/{id}) and in the log, not in a progress bar per job
# on the server's terminal. tqdm reads this when it is first imported, below.
os.environ.setdefault("TQDM_DISABLE", "1")

from pydantic import ValidationError

from generator.config import ConfigError, load_config
from generator.run import add_teacher_flags
from serve.resources import ServerResources, parse_named
from serve.settings import PROJECT_SEEDS, ServerSettings, read_keys

# Settings of the server's run file that a job sets for itself.
_PER_JOB = {"seeds", "out", "run_name"}


def build_parser() -> argparse.ArgumentParser:
    defaults = ServerSettings.model_fields
    p = argparse.ArgumentParser(
        prog="python -m serve",
        description="The synth-instruct REST service: POST /v1/generate for small requests, /v1/jobs for "
        "long runs whose rows stream as NDJSON or SSE. Docs at /docs, schema at /openapi.json.",
        epilog="API keys: SYNTH_API_KEYS (comma-separated) and/or --keys-file; clients send "
        "'Authorization: Bearer <key>'. Teacher flags are those of python -m generator.run.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the service's state: jobs.sqlite and one run folder per job (default <cache root>/serve)",
    )
    p.add_argument(
        "--seeds-dir",
        type=Path,
        default=PROJECT_SEEDS,
        help="folder of seed files a request may name in `seeds` (default: the project's seeds/)",
    )
    p.add_argument("--keys-file", type=Path, default=None, help="API keys, one per line")
    p.add_argument(
        "--no-auth",
        dest="auth",
        action="store_false",
        help="no API keys (only on a loopback --host; every caller shares one owner)",
    )
    for flag, name in [
        ("--generate-max-target", "generate_max_target"),
        ("--max-target", "max_target"),
        ("--max-jobs-per-key", "max_jobs_per_key"),
        ("--concurrency", "concurrency"),
        ("--max-queued", "max_queued"),
        ("--max-body-bytes", "max_body_bytes"),
        ("--max-job-rounds", "max_job_rounds"),
        ("--max-job-requests", "max_job_requests"),
        ("--max-job-seconds", "max_job_seconds"),
        ("--max-idle-rounds", "max_idle_rounds"),
        ("--shutdown-timeout", "shutdown_timeout"),
    ]:
        p.add_argument(
            flag,
            dest=name,
            type=float if name in ("max_job_seconds", "shutdown_timeout") else int,
            default=None,
            help=f"{defaults[name].description or name.replace('_', ' ')} (default {defaults[name].default})",
        )
    p.add_argument(
        "--on-restart",
        choices=["resume", "interrupt"],
        default="resume",
        help="jobs a stopped or killed server left running: resume them (default), or mark them interrupted",
    )
    add_teacher_flags(p)
    p.add_argument(
        "--references",
        type=Path,
        default=None,
        metavar="DIR",
        help="the reference corpus medical-domain jobs cite by default (offered under its folder's name)",
    )
    named = [
        ("--eval-set", "eval_sets", "NAME=FILE", "a decontamination eval set a request may name"),
        ("--embedding-model", "embedding_models", "NAME=PATH", "a semantic dedup model folder"),
        ("--corpus", "corpora", "NAME=DIR", "another reference corpus a request may name"),
    ]
    for flag, dest, metavar, what in named:
        p.add_argument(
            flag, dest=dest, action="append", metavar=metavar,
            help=f"{what} (repeatable); requests give the NAME, GET /v1/resources lists them",
        )  # fmt: skip
    p.add_argument(
        "--config", type=Path, default=None, help="YAML run file: the teacher, and defaults for jobs"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


SERVER_FLAGS = {
    "host",
    "port",
    "data_dir",
    "seeds_dir",
    "keys_file",
    "auth",
    "generate_max_target",
    "max_target",
    "max_jobs_per_key",
    "concurrency",
    "max_queued",
    "max_body_bytes",
    "max_job_rounds",
    "max_job_requests",
    "max_job_seconds",
    "max_idle_rounds",
    "shutdown_timeout",
    "eval_sets",
    "embedding_models",
    "corpora",
    "on_restart",
    "config",
    "verbose",
}


def offered(args: argparse.Namespace, references: Path | None) -> ServerResources:
    """What a body may name (`--eval-set`, `--embedding-model`, `--corpus`; `--references` under its
    folder's name), read once here: a bad file stops the server before it starts."""

    def paths(values: list[str] | None, flag: str) -> dict[str, Path]:
        return {name: Path(target).resolve() for name, target in parse_named(values, flag).items()}

    resources = ServerResources(
        eval_sets=paths(args.eval_sets, "--eval-set"),
        corpora=paths(args.corpora, "--corpus"),
    )
    models = paths(args.embedding_models, "--embedding-model")
    resources.embedding_models.update({name: str(path) for name, path in models.items()})
    if references is not None:
        folder = Path(references).resolve()
        resources.corpora.setdefault(folder.name, folder)
    resources.check()
    return resources


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """Server settings from the flags; the run config part is checked the way generator.run checks it."""
    flags = vars(args)
    overrides = {k: v for k, v in flags.items() if k not in SERVER_FLAGS}
    seeds_dir = Path(args.seeds_dir).resolve()
    config = load_config(args.config, {**overrides, "seeds": seeds_dir / "175.jsonl"})
    run = {k: v for k, v in config.model_dump(exclude_unset=True).items() if k not in _PER_JOB}
    named = {"eval_sets", "embedding_models", "corpora"}
    data: dict[str, Any] = {
        k: flags[k]
        for k in SERVER_FLAGS - {"keys_file", "config", "verbose", "data_dir", *named}
        if flags.get(k) is not None
    }
    data["resources"] = offered(args, config.references)
    if args.data_dir is not None:
        data["data_dir"] = Path(args.data_dir).resolve()
    data["seeds_dir"] = seeds_dir
    data["api_keys"] = read_keys(args.keys_file, os.environ.get("SYNTH_API_KEYS"))
    data["run"] = run
    return ServerSettings.model_validate(data)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:  # before ValueError: pydantic's is one
        print(
            "error: " + "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()),
            file=sys.stderr,
        )
        return 2
    except (ConfigError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if settings.run.get("ray_address"):
        from generator.errors import RayUnavailable
        from serve.deployment import serve_on_ray

        try:
            return serve_on_ray(settings)
        except RayUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    import uvicorn

    from serve.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=max(1, int(settings.shutdown_timeout)),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
