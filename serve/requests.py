"""From a request body to a job's RunConfig, with every refusal a 4xx that says what is wrong.

The body's settings are laid over the server's run file (the defaults), the seed file is found by
name in the server's seed folder (a name is never a path), and the result is validated by `RunConfig`
itself, so a setting means the same here as in a YAML file or on the command line. Some settings are
bounded (`bodies.BOUNDS` and `bodies.LIMITS`, in the body's schema): a request must not be able to ask
the shared teacher for unbounded work. A filter's parameters are checked strictly against its
constructor's types, and the ones that name a file or a model get the server's path for the name the
body gave (serve/resources.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from filters.base import params_model
from generator.config import ConfigError, RunConfig
from generator.domains import check_domain_seeds, domain_for
from generator.magpie import is_magpie, magpie_template
from generator.records import SeedTask
from generator.seeds import SeedFileError, load_seeds
from serve.bodies import SEED_NAME, ErrorBody, JobRequest
from serve.resources import ResourceError, body_filters
from serve.settings import SERVER_FIELDS, ServerSettings


class BadRequest(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        detail: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.detail, self.headers = status, message, detail, headers


def _field(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


def validation_error_body(errors: Sequence[Any]) -> ErrorBody:
    """A 422's body: one line naming every field that is wrong, and the per-field list."""
    detail = []
    for e in errors:
        field = _field(e.get("loc", ()))
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        if e.get("type") == "extra_forbidden" and field in SERVER_FIELDS:
            msg = "a server setting: the server decides the teacher, its endpoint, model and key, the cache, the output folder, the Ray address, the reference corpus and how many sandboxed programs run at once"
        elif e.get("type") == "extra_forbidden":
            msg = "not a setting a request may give"
        detail.append(
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "field": field,
                "msg": msg,
                "type": str(e.get("type", "")),
            }
        )
    summary = "; ".join(f"{d['field']}: {d['msg']}" for d in detail) or "invalid request"
    return ErrorBody(error=summary, detail=detail)


def _bad(field: str, msg: str) -> BadRequest:
    return BadRequest(
        422, f"{field}: {msg}", [{"loc": ["body", field], "field": field, "msg": msg, "type": "value_error"}]
    )


def _seed_file(name: str, settings: ServerSettings) -> Path:
    known = sorted(p.name for p in settings.seeds_dir.glob("*.json*"))
    if not SEED_NAME.match(name):
        raise _bad("seeds", f"{name!r} is not a seed file name (a name from GET /v1/seeds, not a path)")
    path = settings.seeds_dir / name
    if not path.is_file() or path.resolve().parent != settings.seeds_dir.resolve():
        raise _bad("seeds", f"no seed file {name!r} on this server; known: {', '.join(known)}")
    return path


@functools.lru_cache(maxsize=64)
def _seed_file_problem(path: Path, mtime_ns: int, size: int) -> str | None:
    """What is wrong with a seed file, checked once per version of the file (every request names one)."""
    try:
        load_seeds(path)
    except SeedFileError as exc:
        return str(exc)
    return None


def _check_filter_params(fields: dict[str, Any]) -> None:
    """Each filter spec's parameters against the filter's own types, strictly (no "5" for an int)."""
    for where, spec, cls in body_filters(fields):
        try:
            params_model(cls).model_validate(spec.get("params") or {})
        except ValidationError as exc:
            e = exc.errors()[0]
            at = ".".join(str(p) for p in (where, "params", *e["loc"]))
            raise _bad(at, str(e["msg"])) from None


def _check_inline(tasks: list[SeedTask]) -> None:
    if not tasks:
        raise _bad("seed_tasks", "empty: give at least one seed task")
    seen: set[str] = set()
    for i, task in enumerate(tasks):
        if task.id in seen:
            raise _bad(f"seed_tasks.{i}.id", f"duplicate id {task.id!r}")
        seen.add(task.id)


def build_config(
    body: JobRequest, settings: ServerSettings, base: RunConfig, target_limit: int
) -> tuple[RunConfig, list[SeedTask] | None]:
    """The job's RunConfig (its folder not yet set) and its inline seed tasks, or a 422."""
    if body.seeds is not None and body.seed_tasks is not None:
        raise _bad("seeds", "give `seeds` (a file name) or `seed_tasks` (inline), not both")
    fields = body.run_fields()
    try:
        _check_filter_params(fields)
        settings.resources.resolve_filters(fields)
        if "references" in fields:
            fields["references"] = settings.resources.path_for(
                "references", fields["references"], "references"
            )
    except ResourceError as exc:
        raise _bad(exc.field, str(exc)) from None
    if body.seed_tasks is not None:
        _check_inline(body.seed_tasks)
        seeds = base.seeds  # stands in until the job's folder holds the inline file
    else:
        seeds = _seed_file(body.seeds or settings.default_seeds, settings)
        stat = seeds.stat()
        problem = _seed_file_problem(seeds, stat.st_mtime_ns, stat.st_size)
        if problem:
            raise _bad("seeds", problem)
    data = {**settings.run, **fields, "seeds": seeds}
    if "target" not in fields:
        data["target"] = min(int(data.get("target", base.target)), target_limit)
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(
            422, validation_error_body(exc.errors()).error, validation_error_body(exc.errors()).detail
        ) from None
    if config.domain is not None:  # a domain's seeds, not another domain's (the error names the file only)
        assert seeds is not None
        tasks = body.seed_tasks if body.seed_tasks is not None else load_seeds(seeds)
        try:
            check_domain_seeds(Path(seeds.name), tasks, config.domain)
        except SeedFileError as exc:
            raise _bad("seeds", str(exc)) from None
        try:
            domain_for(config.resolved())  # the domain's own settings: the corpus it cites, ...
        except ConfigError as exc:
            raise _bad("domain", str(exc)) from None
    if is_magpie(config):
        try:
            magpie_template(config.resolved())  # the server's teacher must speak completions, with a template
        except ConfigError as exc:
            raise _bad("profile", str(exc)) from None
    if config.target > target_limit:
        raise _bad("target", f"at most {target_limit} for this request on this server, got {config.target}")
    return config, body.seed_tasks
