"""Ablation variants: one base run config, changed a little (`ablations/filters.yaml`).

    base:                         # the run to vary (replay: the recorded run's own config instead)
      seeds: seeds/175.jsonl
      target: 200
    variants:
      - name: no_word_count
        without: [word_count]                  # a filter off, by its label, from whichever list has it
      - name: rouge_l_0.5
        params: {rouge_l: {threshold: 0.5}}    # a threshold
      - name: minhash
        set: {dedup: [{name: minhash}]}        # any RunConfig field

A variant named `baseline` (no change) always comes first. Each variant is validated by RunConfig, so a
misspelt filter or field fails before anything runs, naming the variant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from generator.config import PROFILE_FIELDS, ConfigError, RunConfig
from generator.profiles import PROFILES

FILTER_LISTS = ("instruction_filters", "dedup", "instance_filters", "evolve_filters")
# What a replay can re-judge from a recorded candidate stream; any other change needs a new generation.
REPLAYABLE = {*FILTER_LISTS[:3], "verify", "target"}
NAMES_ONLY = {"out", "run_name"}  # differ per variant, change nothing else


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    set: dict[str, Any] = Field(default_factory=dict)
    without: list[str] = Field(default_factory=list)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)


class AblationFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any] = Field(default_factory=dict)
    variants: list[Variant] = Field(default_factory=list)


BASELINE = Variant(name="baseline", description="the run's own config")


class NotInBase(ConfigError):
    """A variant names a filter the base run does not have (a replay of another profile's run skips it)."""


def load_ablations(path: Path) -> AblationFile:
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
        loaded = AblationFile.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    names = [v.name for v in loaded.variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{path}: variant names must be unique: {', '.join(duplicates)}")
    if "baseline" not in names:
        loaded.variants.insert(0, BASELINE)
    return loaded


def apply(variant: Variant, base: RunConfig) -> RunConfig:
    """`base` (resolved) with the variant's changes; ConfigError naming the variant if they do not fit."""
    data = base.model_dump(mode="json")
    profile = variant.set.get("profile", data["profile"])
    if profile != data["profile"] and profile in PROFILES:
        # another profile's published settings, not the base's as it resolved them (its filter lists
        # filled in, so that `without` and `params` can name its filters)
        data.update(dict.fromkeys(PROFILE_FIELDS))
        published = RunConfig.model_validate({**data, "profile": profile}).resolved()
        data.update({f: published.model_dump(mode="json")[f] for f in FILTER_LISTS})
    data.update(variant.set)
    found: set[str] = set()
    for field in FILTER_LISTS:
        specs = data.get(field) or []
        kept = []
        for spec in specs:
            label = spec.get("label") or spec["name"]
            if label in variant.without:
                found.add(label)
                continue
            if label in variant.params:
                found.add(label)
                spec = {**spec, "params": {**spec.get("params", {}), **variant.params[label]}}
            kept.append(spec)
        data[field] = kept
    missing = sorted((set(variant.without) | set(variant.params)) - found)
    if missing:
        raise NotInBase(f"variant {variant.name!r}: no filter labelled {', '.join(missing)} in the base run")
    try:
        return RunConfig.model_validate(data).resolved()
    except ValidationError as exc:
        raise ConfigError(f"variant {variant.name!r}: {exc}") from None


def changes(variant_cfg: RunConfig, base: RunConfig) -> dict[str, Any]:
    """The settings the variant changes, as JSON."""
    a, b = variant_cfg.model_dump(mode="json"), base.model_dump(mode="json")
    return {k: a[k] for k in a if a[k] != b.get(k) and k not in NAMES_ONLY}


def why_not_replayable(variant_cfg: RunConfig, base: RunConfig) -> str | None:
    """None when a replay can judge the variant; else what needs a new generation (full mode)."""
    other = sorted(set(changes(variant_cfg, base)) - REPLAYABLE)
    if other:
        return f"changes {', '.join(other)}: the teacher would be asked other things (use full mode)"
    return None
