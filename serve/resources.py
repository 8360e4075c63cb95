"""What a request may name on the server: eval sets, embedding models and reference corpora, by name.

A filter parameter that names a file, a folder or a model (a filter declares them in its `resources`,
filters/base.py) and the `references` field are paths on the server. A request body never gives a
path: it gives the name of something the server's operator offered (`--eval-set NAME=FILE`,
`--embedding-model NAME=PATH`, `--corpus NAME=DIR`, or `--references DIR` under its folder's name), and
the server puts its own path in its place. GET /v1/resources lists the names, never the paths.

Everything offered is checked once when the server starts (an eval set is read, so a bad file names
its file and line there), never in a request thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from filters.base import Filter, ResourceKind, known_filter
from filters.decontaminate import EvalSet
from filters.semantic import DEFAULT_MODEL
from generator.config import FILTER_KINDS

# RunConfig fields that hold filter specs, and whether the field is one spec or a list of them
FILTER_FIELDS = {**{field: True for field in FILTER_KINDS}, "score_filter": False}


class ResourceError(ValueError):
    """A resource a request names that the server does not offer; `field` is the body's field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def body_filters(fields: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], type[Filter]]]:
    """Every filter spec of a body's run fields (plain data) with where it sits (`dedup.0`) and its
    registered class; an unknown filter is a ResourceError naming the spec's `name`."""
    for field, is_list in FILTER_FIELDS.items():
        if fields.get(field) is None:
            continue
        specs = fields[field] if is_list else [fields[field]]
        for i, spec in enumerate(specs):
            where = f"{field}.{i}" if is_list else field
            try:
                yield where, spec, known_filter(spec["name"])
            except ValueError as exc:
                raise ResourceError(f"{where}.name", str(exc)) from None


class ServerResources(BaseModel):
    """Name -> path of everything a request may choose by name."""

    model_config = ConfigDict(extra="forbid")

    eval_sets: dict[str, Path] = Field(default_factory=dict, description="decontamination eval sets")
    embedding_models: dict[str, str] = Field(
        default_factory=lambda: {DEFAULT_MODEL: DEFAULT_MODEL},
        description="semantic dedup models: a local folder, or the packaged default by its name",
    )
    corpora: dict[str, Path] = Field(default_factory=dict, description="reference corpora (medical)")

    def of(self, kind: ResourceKind) -> dict[str, Any]:
        offered: dict[str, dict[str, Any]] = {
            "eval_sets": self.eval_sets,
            "embedding_models": self.embedding_models,
            "references": self.corpora,
        }
        return offered[kind]

    def listing(self) -> dict[str, list[str]]:
        """The names a body may use, by kind (GET /v1/resources): never a path."""
        return {
            "eval_sets": sorted(self.eval_sets),
            "embedding_models": sorted(self.embedding_models),
            "references": sorted(self.corpora),
        }

    def check(self) -> None:
        """Read everything offered once, at start-up: a missing or malformed file stops the server."""
        for name, path in self.eval_sets.items():
            if not path.is_file():  # a regular file: not a FIFO, a device or a folder
                raise ValueError(f"eval set {name!r}: {path} is not a regular file")
            EvalSet.from_file(path, 8)  # InputError (a ValueError) names the file and line
        for name, folder in self.corpora.items():
            if not folder.is_dir():
                raise ValueError(f"reference corpus {name!r}: {folder} is not a folder")
        for name, model in self.embedding_models.items():
            if model != DEFAULT_MODEL and not Path(model).is_dir():
                raise ValueError(f"embedding model {name!r}: {model} is not a model folder")

    def path_for(self, kind: ResourceKind, name: Any, field: str) -> Any:
        """The server's path for a name a body gave, or a ResourceError naming the field."""
        offered = self.of(kind)
        known = ", ".join(sorted(offered)) or "none on this server"
        if not isinstance(name, str) or name not in offered:
            shown = repr(name)[:80]
            raise ResourceError(
                field, f"{shown} is not one of this server's {kind.replace('_', ' ')} (names from "
                f"GET /v1/resources: {known})"
            )  # fmt: skip
        return str(offered[name])

    def resolve_filters(self, fields: dict[str, Any]) -> None:
        """Replace, in the body's run fields (a fresh dump of the body), every resource parameter's name
        with the server's path.

        The filter registry says which parameters those are, so a filter added later is covered as
        soon as it declares them (and `register` refuses one that does not)."""
        for where, spec, cls in body_filters(fields):
            params = spec.get("params") or {}
            for param, kind in cls.resources.items():
                if param not in params:
                    continue
                at = f"{where}.params.{param}"
                value = params[param]
                if isinstance(value, list):
                    params[param] = [self.path_for(kind, v, f"{at}.{j}") for j, v in enumerate(value)]
                else:
                    params[param] = self.path_for(kind, value, at)


def parse_named(values: list[str] | None, flag: str) -> dict[str, str]:
    """`NAME=VALUE` flags (repeatable) as a dict; a malformed one is a ValueError naming the flag."""
    found: dict[str, str] = {}
    for value in values or []:
        name, sep, target = value.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise ValueError(f"{flag} takes NAME=PATH, got {value!r}")
        found[name.strip()] = target.strip()
    return found
