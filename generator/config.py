"""RunConfig: the one source of truth for CLI flags, YAML run files and (later) REST bodies.

Unset profile-dependent fields (`None`) are filled from the chosen profile by `resolved()`, and the
resolved config is what `config.json` records, so a run can always be read back exactly.

A field that changes what a run makes says so (`json_schema_extra=CHANGES_DATA`): resuming a run folder
with another value of such a field is refused, while the others (target, workers, timeouts, prices...)
may change between a run and its resumption. Every filter spec is checked here, before anything starts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonDict

from filters.base import FilterKind, FilterSpec, validate_specs
from generator.profiles import (
    ANSWER_SAMPLING,
    ELIMINATOR,
    EVOLVE_SAMPLING,
    JUDGE_SAMPLING,
    PROFILES,
    evolve_ops,
    evolve_profiles,
)
from generator.teachers.base import SamplingParams
from generator.teachers.routing import DEFAULT, TeacherSpec, check_route

CHANGES_DATA: JsonDict = {"changes_data": True}  # on a field: another value makes another dataset
# Data fields added after run folders were made, with the value those folders were made with: a
# config.json without the field compares as if it had that value (issue 13's lag: one round in flight).
ADDED_LATER: dict[str, object] = {
    "rounds_in_flight": 1,
    "domain": None,  # issue 15: domains
    "verify": True,
    "sandbox_timeout": 10.0,
    "references": None,  # issue 16: the medical domain
    "retrieve_k": 3,
    "passage_share": 0.25,
    "support_check": "lexical",
    "teachers": {},  # issue 19: per-stage teachers, Magpie, personas
    "route": {},
    "answer_model": None,
    "judge_model": None,
    "chat_template": None,
    "personas": None,
}


def default_cache_dir() -> Path:
    """Root of synth-instruct's per-user cache: `SYNTH_INSTRUCT_CACHE`, else `$XDG_CACHE_HOME` or
    ~/.cache, then `synth-instruct` (the request cache and the converted embedded model live here)."""
    env = os.environ.get("SYNTH_INSTRUCT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "synth-instruct"


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # -- what to grow --------------------------------------------------------------------------------
    seeds: Path | None = Field(
        None,
        description="seed task file (Self-Instruct JSONL, or Alpaca JSON/JSONL); the magpie profile "
        "needs none",
        json_schema_extra=CHANGES_DATA,
    )
    target: int = Field(100, ge=1, description="stop once this many instructions with >= 1 instance are kept")
    profile: str = Field(
        "self-instruct", description="published parameters to reproduce", json_schema_extra=CHANGES_DATA
    )
    seed: int = Field(
        42,
        description="seed for every random choice (prompt mixes, sampling seeds)",
        json_schema_extra=CHANGES_DATA,
    )
    out: Path | None = Field(None, description="output folder (default out/<run-name>)")
    run_name: str | None = Field(
        None, description="name of the run (default <profile>-seed<seed>)", json_schema_extra=CHANGES_DATA
    )

    # -- the teacher ---------------------------------------------------------------------------------
    teacher: Literal["vllm", "openai"] = Field(
        "vllm",
        description="in-process vLLM (the embedded model unless --model), or an OpenAI-compatible API",
        json_schema_extra=CHANGES_DATA,
    )
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1",
        json_schema_extra=CHANGES_DATA,
    )
    model: str | None = Field(
        None, description="model name (openai) or HF folder / hub id (vllm)", json_schema_extra=CHANGES_DATA
    )
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    api: Literal["completion", "chat"] | None = Field(
        None, description="endpoint kind (default: the profile's)", json_schema_extra=CHANGES_DATA
    )
    max_in_flight: int | None = Field(
        None,
        ge=1,
        description="teacher requests in flight at once, the ceiling of an adaptive window that halves on "
        "429s (default: 32 over HTTP, 64 per vLLM engine)",
    )
    request_timeout: float = Field(120.0, gt=0, description="seconds before one request is abandoned")
    max_retries: int = Field(5, ge=0, description="retries on timeouts, connection errors, 429 and 5xx")
    replicas: int = Field(1, ge=1, description="vLLM engines (data parallel)", json_schema_extra=CHANGES_DATA)
    tensor_parallel: int = Field(1, ge=1, description="GPUs per vLLM engine", json_schema_extra=CHANGES_DATA)
    cache: bool = Field(True, description="reuse identical teacher requests from the SQLite cache")
    cache_path: Path | None = Field(None, description="request cache file (default ~/.cache/synth-instruct)")
    price_prompt_per_1m: float = Field(
        0.0, ge=0, description="price per 1M prompt tokens, for the cost estimate"
    )
    price_completion_per_1m: float = Field(0.0, ge=0, description="price per 1M completion tokens")

    # -- per-stage teachers (generator/teachers/routing.py) ------------------------------------------
    teachers: dict[str, TeacherSpec] = Field(
        default_factory=dict,
        description="more teachers by name (backend, base_url, model, api, max_in_flight, prices); the "
        "run's own teacher is named default",
        json_schema_extra=CHANGES_DATA,
    )
    route: dict[str, str] = Field(
        default_factory=dict,
        description="stage -> teacher name, for propose, classify, instances, evolve, answer, judge (a "
        "stage left out uses the run's own teacher)",
        json_schema_extra=CHANGES_DATA,
    )
    answer_model: str | None = Field(
        None,
        description="write instances and answers with this model, on the run's own backend and endpoint",
        json_schema_extra=CHANGES_DATA,
    )
    judge_model: str | None = Field(
        None,
        description="judge (eliminator equality, scores, medical support) with this model, on the run's "
        "own backend and endpoint",
        json_schema_extra=CHANGES_DATA,
    )

    # -- diversity sources ---------------------------------------------------------------------------
    chat_template: str | None = Field(
        None,
        description="the teacher's chat template (a .jinja file, a tokenizer_config.json, a model folder "
        "or the template itself), for the magpie profile over HTTP (in-process vLLM reads its model's)",
        json_schema_extra=CHANGES_DATA,
    )
    personas: Path | None = Field(
        None,
        description="file of personas, one per line (Persona Hub): each proposal prompt is written for "
        "one, sampled per request (seeds/personas.txt ships with the project)",
        json_schema_extra=CHANGES_DATA,
    )

    # -- the loop ------------------------------------------------------------------------------------
    prompts_per_round: int = Field(
        8,
        ge=1,
        description="proposal requests per round (a round is one batch; fewer near the target)",
        json_schema_extra=CHANGES_DATA,
    )
    rounds_in_flight: int = Field(
        4,
        ge=1,
        description="bootstrap rounds in flight at once (default 4), so a slow teacher stays busy: round "
        "N samples its in-context examples from the pool as it stood after round N-4 (with 1: after "
        "the round before, as Self-Instruct did)",
        json_schema_extra=CHANGES_DATA,
    )
    num_workers: int = Field(2, ge=1, description="Ray worker actors making teacher calls")
    ray_address: str | None = Field(None, description="join this Ray cluster instead of starting a local one")
    max_rounds: int | None = Field(None, ge=1, description="stop after this many rounds even below target")
    max_failed_rounds: int = Field(5, ge=1, description="stop when this many rounds in a row get no response")
    evolve_rounds: int = Field(0, ge=0, description="Evol-Instruct rounds after the bootstrap")

    # -- domains (generator/domains/: answers checked by a program or a sandbox) --------------------
    domain: str | None = Field(
        None,
        description="grow a domain dataset whose answers are checked (arithmetic: computed; code: run in "
        "a sandbox) from the domain's seed file, instead of the Self-Instruct bootstrap",
        json_schema_extra=CHANGES_DATA,
    )
    verify: bool = Field(
        True,
        description="keep only the domain items the verifier passes (false: keep the teacher's answers, "
        "still recording each verdict)",
        json_schema_extra=CHANGES_DATA,
    )
    sandbox_timeout: float = Field(
        10.0,
        gt=0,
        le=600,
        description="seconds one sandboxed program may run (code domain)",
        json_schema_extra=CHANGES_DATA,
    )
    references: Path | None = Field(
        None,
        description="folder of reference passages (.jsonl with id, title, text; .md; .txt) the medical "
        "domain's answers must cite; indexed once with BM25",
        json_schema_extra=CHANGES_DATA,
    )
    retrieve_k: int = Field(
        3,
        ge=1,
        le=20,
        description="passages retrieved for each answer (medical)",
        json_schema_extra=CHANGES_DATA,
    )
    passage_share: float = Field(
        0.25,
        ge=0,
        le=1,
        description="share of medical proposals written from a reference passage instead of seed examples",
        json_schema_extra=CHANGES_DATA,
    )
    support_check: Literal["lexical", "judge", "both"] = Field(
        "lexical",
        description="how the medical verifier checks that the cited passages support an answer: their "
        "words (lexical), the teacher as judge, or both",
        json_schema_extra=CHANGES_DATA,
    )
    sandbox_parallel: int | None = Field(
        None, ge=1, le=64, description="sandboxed programs run at once (default: the CPU count)"
    )

    # -- profile settings (None: take the profile's published value) -------------------------------
    seeds_in_prompt: int | None = Field(None, ge=0, json_schema_extra=CHANGES_DATA)
    machine_in_prompt: int | None = Field(None, ge=0, json_schema_extra=CHANGES_DATA)
    tasks_per_request: int | None = Field(None, ge=1, json_schema_extra=CHANGES_DATA)
    max_instances: int | None = Field(None, ge=1, json_schema_extra=CHANGES_DATA)
    propose_params: SamplingParams | None = Field(None, json_schema_extra=CHANGES_DATA)
    classify_params: SamplingParams | None = Field(None, json_schema_extra=CHANGES_DATA)
    instance_params: SamplingParams | None = Field(None, json_schema_extra=CHANGES_DATA)
    instruction_filters: list[FilterSpec] | None = Field(None, json_schema_extra=CHANGES_DATA)
    dedup: list[FilterSpec] | None = Field(None, json_schema_extra=CHANGES_DATA)
    instance_filters: list[FilterSpec] | None = Field(None, json_schema_extra=CHANGES_DATA)

    # -- evolution (Evol-Instruct, generator/stages/evolution.py; None: the published defaults) ------------
    bootstrap: bool = Field(
        True,
        description="grow from the seeds first; false: evolve the seed file's rows as they are",
        json_schema_extra=CHANGES_DATA,
    )
    evolve_profile: str = Field(
        "general",
        description="general: WizardLM's depth and breadth ops; code: WizardCoder's ops",
        json_schema_extra=CHANGES_DATA,
    )
    evolve_ops: dict[str, float] | None = Field(
        None,
        description="op -> weight; one op is drawn per evolution (default: the profile's, equal)",
        json_schema_extra=CHANGES_DATA,
    )
    evolve_api: Literal["completion", "chat"] = Field(
        "chat",
        description="endpoint kind for the evolve, answer and judge prompts (and a domain's prompts)",
        json_schema_extra=CHANGES_DATA,
    )
    evolve_params: SamplingParams | None = Field(None, json_schema_extra=CHANGES_DATA)
    answer_params: SamplingParams | None = Field(None, json_schema_extra=CHANGES_DATA)
    judge_params: SamplingParams | None = Field(None, json_schema_extra=CHANGES_DATA)
    evolve_filters: list[FilterSpec] | None = Field(
        None,
        description="eliminator rules, in order (default: the paper's four and h2o's cheap ones)",
        json_schema_extra=CHANGES_DATA,
    )
    evolve_scores: bool = Field(
        True,
        description="have the teacher score complexity and answer quality (1-6) of each evolution",
        json_schema_extra=CHANGES_DATA,
    )
    score_filter: FilterSpec | None = Field(
        None,
        description="keep evolutions by score, e.g. quality>=4 or deita:top=0.5",
        json_schema_extra=CHANGES_DATA,
    )

    @classmethod
    def data_fields(cls) -> list[str]:
        """The fields that change a run's data (resume refuses another value of these)."""
        return [
            name
            for name, f in cls.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("changes_data")
        ]

    @field_validator("profile")
    @classmethod
    def _profile_known(cls, name: str) -> str:
        if name not in PROFILES:
            raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
        return name

    @field_validator("domain")
    @classmethod
    def _domain_known(cls, name: str | None) -> str | None:
        from generator.domains import domain_names  # the registry imports tasks, which import config

        if name is not None and name not in domain_names():
            raise ValueError(f"unknown domain {name!r}; known: {', '.join(domain_names())}")
        return name

    @field_validator("evolve_profile")
    @classmethod
    def _evolve_profile_known(cls, name: str) -> str:
        if name not in evolve_profiles():
            raise ValueError(f"unknown evolve profile {name!r}; known: {', '.join(evolve_profiles())}")
        return name

    @classmethod
    def stored(cls, data: object) -> RunConfig:
        """A run folder's config.json as it was written: typed, but its filters are not built again
        (building one may read a file that has moved since; reading a finished run must not fail)."""
        return cls.model_validate(data, context={"stored": True})

    @field_validator("instruction_filters", "dedup", "instance_filters", "evolve_filters")
    @classmethod
    def _filter_specs_build(
        cls, specs: list[FilterSpec] | None, info: ValidationInfo
    ) -> list[FilterSpec] | None:
        # A bad name or parameter fails now, with the field's name, not after Ray and the teacher started.
        if specs is not None and not (info.context or {}).get("stored"):
            validate_specs(specs, FILTER_KINDS[info.field_name or ""])
        return specs

    @field_validator("score_filter")
    @classmethod
    def _score_filter_builds(cls, spec: FilterSpec | None, info: ValidationInfo) -> FilterSpec | None:
        if spec is not None and not (info.context or {}).get(
            "stored"
        ):  # checked with the eliminator it joins: labels must not collide
            validate_specs([*(info.data.get("evolve_filters") or ELIMINATOR), spec], "evolve")
        return spec

    @model_validator(mode="after")
    def _openai_needs_endpoint(self) -> RunConfig:
        if self.teacher == "openai" and not self.model:
            raise ValueError("--teacher openai needs --model (and usually --base-url)")
        return self

    @model_validator(mode="after")
    def _seeds_given(self) -> RunConfig:
        if self.seeds is None and PROFILES[self.profile].needs_seeds:
            raise ValueError(f"the {self.profile} profile grows from seed tasks: give --seeds FILE")
        if self.seeds is None and (self.domain is not None or not self.bootstrap):
            raise ValueError("a domain run, or evolving a file's rows (bootstrap=false), needs --seeds FILE")
        return self

    @model_validator(mode="after")
    def _routes_known(self) -> RunConfig:
        if DEFAULT in self.teachers:
            raise ValueError(f"teachers: {DEFAULT!r} is the run's own teacher; name the others otherwise")
        for name, spec in self.teachers.items():
            if spec.teacher == "openai" and not spec.model:
                raise ValueError(f"teachers.{name}: an openai teacher needs a model")
        for flag, name in (("answer_model", "answer"), ("judge_model", "judge")):
            model = getattr(self, flag)
            if model is not None and name in self.teachers and self.teachers[name].model != model:
                raise ValueError(f"--{flag.replace('_', '-')} names a teacher {name!r}: teachers has one")
        check_route(self.route, list(self.teachers))
        return self

    @model_validator(mode="after")
    def _evolve_ops_known(self) -> RunConfig:
        if self.evolve_ops is not None:
            known = evolve_ops(self.evolve_profile)
            unknown = sorted(set(self.evolve_ops) - set(known))
            if unknown:
                raise ValueError(
                    f"unknown evolve op(s) {', '.join(unknown)} for the {self.evolve_profile} profile; "
                    f"known: {', '.join(known)}"
                )
            if any(w < 0 for w in self.evolve_ops.values()) or not any(self.evolve_ops.values()):
                raise ValueError("evolve op weights must be >= 0 and at least one must be > 0")
        if self.domain is not None and (self.evolve_rounds or not self.bootstrap):
            # Evolved answers would not be checked by the domain's verifier: refuse rather than mix them.
            raise ValueError(
                "a domain run grows from its seeds and verifies every answer: it takes no "
                "--evolve-rounds (and no bootstrap=false)"
            )
        if self.score_filter is not None and not self.evolve_scores:
            raise ValueError("a score filter needs the scores: drop --no-evolve-scores")
        return self

    def for_teacher(self, name: str) -> RunConfig:
        """The run's settings as teacher `name` sees them: its backend, endpoint, limits and prices."""
        if name == DEFAULT:
            return self
        spec = self.teachers[name]
        return self.model_copy(
            update={
                "teacher": spec.teacher,
                "base_url": spec.base_url,
                "model": spec.model,
                "api_key_env": spec.api_key_env or self.api_key_env,
                "max_in_flight": spec.max_in_flight or (64 if spec.teacher == "vllm" else 32),
                "request_timeout": spec.request_timeout or self.request_timeout,
                "max_retries": self.max_retries if spec.max_retries is None else spec.max_retries,
                "replicas": spec.replicas,
                "tensor_parallel": spec.tensor_parallel,
                "price_prompt_per_1m": spec.price_prompt_per_1m,
                "price_completion_per_1m": spec.price_completion_per_1m,
                "teachers": {},
                "route": {},
            }
        )

    def teacher_names(self) -> list[str]:
        """`default` and the named teachers a route uses (a teacher no stage uses is never started)."""
        return [DEFAULT, *(name for name in self.teachers if name in self.route.values())]

    def _routed(self) -> tuple[dict[str, TeacherSpec], dict[str, str]]:
        """`teachers` and `route` with `--answer-model` and `--judge-model` folded in."""
        teachers, route = dict(self.teachers), dict(self.route)
        own: dict[str, object] = {  # the run's own backend, endpoint, engines and prices
            "teacher": self.teacher,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,
            "replicas": self.replicas,
            "tensor_parallel": self.tensor_parallel,
            "price_prompt_per_1m": self.price_prompt_per_1m,
            "price_completion_per_1m": self.price_completion_per_1m,
        }
        if self.answer_model is not None:
            teachers["answer"] = TeacherSpec.model_validate({**own, "model": self.answer_model})
            route.setdefault("instances", "answer")
            route.setdefault("answer", "answer")
        if self.judge_model is not None:
            teachers["judge"] = TeacherSpec.model_validate({**own, "model": self.judge_model})
            route.setdefault("judge", "judge")
        return teachers, route

    def resolved(self) -> RunConfig:
        """A copy with every profile-dependent field filled in and the output folder chosen."""
        p = PROFILES[self.profile]
        teachers, route = self._routed()
        default = (
            f"{self.profile}-seed{self.seed}"
            if self.bootstrap
            else f"evolve-{self.seeds.stem if self.seeds else 'seeds'}-seed{self.seed}"
        )
        if self.domain is not None:
            default = f"{self.domain}-seed{self.seed}" + ("" if self.verify else "-unverified")
        name = self.run_name or default
        return self.model_copy(
            update={
                "run_name": name,
                "out": self.out or Path("out") / re.sub(r"[^\w.-]+", "_", name),
                "api": self.api or p.api,
                # A local engine batches continuously and wants many requests. Over HTTP, 32 keeps the 4
                # rounds of 8 proposals in flight busy (benchmarks/latency_bound.py); a hosted API that
                # rate-limits sees the window halve on its 429s.
                "max_in_flight": self.max_in_flight or (64 if self.teacher == "vllm" else 32),
                "cache_path": self.cache_path or default_cache_dir() / "requests.sqlite",
                "seeds_in_prompt": p.seeds_in_prompt
                if self.seeds_in_prompt is None
                else self.seeds_in_prompt,
                "machine_in_prompt": p.machine_in_prompt
                if self.machine_in_prompt is None
                else self.machine_in_prompt,
                "tasks_per_request": self.tasks_per_request or p.tasks_per_request,
                "max_instances": self.max_instances or p.max_instances,
                "propose_params": self.propose_params or p.propose,
                "classify_params": self.classify_params or p.classify,
                "instance_params": self.instance_params or p.instances,
                "instruction_filters": p.instruction_filters
                if self.instruction_filters is None
                else self.instruction_filters,
                "dedup": p.dedup if self.dedup is None else self.dedup,
                "instance_filters": p.instance_filters
                if self.instance_filters is None
                else self.instance_filters,
                "evolve_ops": self.evolve_ops or evolve_ops(self.evolve_profile),
                "evolve_params": self.evolve_params or EVOLVE_SAMPLING,
                "answer_params": self.answer_params or ANSWER_SAMPLING,
                "judge_params": self.judge_params or JUDGE_SAMPLING,
                "evolve_filters": ELIMINATOR if self.evolve_filters is None else self.evolve_filters,
                "teachers": teachers,
                "route": route,
            }
        )


# The fields `resolved()` fills from the profile: a variant that switches profile clears them first.
PROFILE_FIELDS = (
    "api",
    "seeds_in_prompt",
    "machine_in_prompt",
    "tasks_per_request",
    "max_instances",
    "propose_params",
    "classify_params",
    "instance_params",
    "instruction_filters",
    "dedup",
    "instance_filters",
)


# which kind of filter each list of specs holds (filters/base.py validates a spec against its kind)
FILTER_KINDS: dict[str, FilterKind] = {
    "instruction_filters": "instruction",
    "dedup": "dedup",
    "instance_filters": "instances",
    "evolve_filters": "evolve",
}


def data_values(config: dict[str, object]) -> dict[str, object]:
    """The fields of a dumped config that change a run's data, as resume compares them (of a named
    teacher, only what changes its answers: not its limits or prices)."""
    values = {k: config.get(k) for k in RunConfig.data_fields()}
    teachers = values.get("teachers") or {}
    assert isinstance(teachers, dict)
    values["teachers"] = {
        name: TeacherSpec.model_validate(spec).data_view() for name, spec in teachers.items()
    }
    return values


class ConfigError(ValueError):
    """A run file or flag combination that does not validate; the message says what and where."""


def load_config(path: Path | None, overrides: dict[str, object]) -> RunConfig:
    """YAML file (optional) overlaid with explicit flags, validated by RunConfig."""
    data: dict[str, object] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text("utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: cannot read run config: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a run config is a mapping of settings, got {type(loaded).__name__}")
        data.update({k.replace("-", "_"): v for k, v in (loaded or {}).items()})
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        lines = [
            f"{where}{'.'.join(str(p) for p in e['loc']) or 'config'}: {str(e['msg']).removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise ConfigError("\n".join(lines)) from None
