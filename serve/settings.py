"""What the server decides: where it keeps its state, who may call it, its limits, and its teacher.

The teacher, the request cache, the run folders and the Ray address belong to the machine, so they are
server settings, taken from the same flags and YAML run file as `generator.run`. A request body may
set the other `RunConfig` fields (serve/bodies.py); the server's run file gives their defaults.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from generator.config import RunConfig, default_cache_dir
from serve.ceilings import Ceilings
from serve.resources import ServerResources

PROJECT_SEEDS = Path(__file__).resolve().parent.parent / "seeds"

# RunConfig fields that touch the machine: set by the server (flags, --config), never by a request.
SERVER_FIELDS = frozenset(
    {
        "teacher",
        "base_url",
        "model",
        "api_key_env",
        "api",
        "evolve_api",
        "max_in_flight",
        "request_timeout",
        "max_retries",
        "replicas",
        "tensor_parallel",
        "num_workers",
        "cache",
        "cache_path",
        "ray_address",
        "out",
        "run_name",
        "price_prompt_per_1m",
        "price_completion_per_1m",
        "sandbox_parallel",  # processes the server runs at once
        "teachers",  # the server's teachers and routes: one worker pool serves every job
        "route",
        "answer_model",
        "judge_model",
        "chat_template",  # the server's teacher's
        "personas",  # a file on the server
    }
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=lambda: default_cache_dir() / "serve")
    seeds_dir: Path = PROJECT_SEEDS
    default_seeds: str = "175.jsonl"
    # who may call: bearer keys (SYNTH_API_KEYS or --keys-file); no keys and no auth only on loopback
    auth: bool = True
    api_keys: list[str] = Field(default_factory=list, repr=False)
    # limits
    generate_max_target: int = Field(50, ge=1, description="largest `target` of POST /v1/generate")
    max_target: int = Field(20_000, ge=1, description="largest `target` of one job, per key")
    max_jobs_per_key: int = Field(4, ge=1, description="queued and running jobs a key may have at once")
    concurrency: int = Field(2, ge=1, description="jobs that run at once (they share the teacher)")
    max_queued: int = Field(32, ge=0, description="jobs waiting for a slot; beyond it, 429")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="largest request body in bytes (413 beyond)")
    # every job is bounded, whatever its body asks: one that reaches a ceiling ends failed, saying which
    max_job_rounds: int = Field(2000, ge=1, description="committed rounds of one job")
    max_job_requests: int = Field(100_000, ge=1, description="teacher requests of one job")
    max_job_seconds: float = Field(24 * 3600.0, gt=0, description="wall time of one job, in seconds")
    max_idle_rounds: int = Field(
        25, ge=1, description="rounds in a row that add no row to a job's dataset before it ends"
    )
    shutdown_timeout: float = Field(
        30.0, gt=0, description="seconds SIGTERM waits for running jobs before the server exits anyway"
    )
    on_restart: Literal["resume", "interrupt"] = "resume"
    # eval sets, embedding models and reference corpora a body may name (serve/resources.py)
    resources: ServerResources = Field(default_factory=ServerResources)
    # the teacher and the rest of the base run config (RunConfig fields, as the run file and flags set them)
    run: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _auth_or_loopback(self) -> ServerSettings:
        if not self.auth and not is_loopback(self.host):
            raise ValueError(
                f"--no-auth is allowed only on a loopback address (127.0.0.1, ::1, localhost), not {self.host}: "
                "anyone who can reach the port could use the teacher"
            )
        if self.auth and not self.api_keys:
            raise ValueError(
                "no API keys: set SYNTH_API_KEYS (comma-separated) or --keys-file, "
                "or --no-auth on a loopback address"
            )
        return self

    def base_config(self) -> RunConfig:
        """The server's run config (its teacher and the defaults of request fields), for the default seeds."""
        return RunConfig.model_validate({"seeds": self.seeds_dir / self.default_seeds, **self.run})

    def ceilings(self) -> Ceilings:
        return Ceilings(
            max_rounds=self.max_job_rounds,
            max_requests=self.max_job_requests,
            max_seconds=self.max_job_seconds,
            max_idle_rounds=self.max_idle_rounds,
        )

    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    def db_path(self) -> Path:
        return self.data_dir / "jobs.sqlite"


def read_keys(path: Path | None, env: str | None) -> list[str]:
    """API keys from a file (one per line, # comments) and/or a comma-separated variable."""
    keys: list[str] = []
    if env:
        keys += [k.strip() for k in env.split(",") if k.strip()]
    if path is not None:
        for line in path.read_text("utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keys.append(line)
    return keys
