"""What every stage of a run shares: seeds per position, provenance, the config check, drop accounting.

The bootstrap (`generator/loop.py`) and the evolution stage (`generator/evolution.py`) both import
these, so the two stages derive seeds, stamp provenance and guard a run folder the same way.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import ray

from generator.config import ConfigError, RunConfig
from generator.output import CONFIG, RunFolder, read_json, write_json_atomic
from generator.records import Provenance, Record
from generator.teachers.base import TeacherResponse

log = logging.getLogger("synth_instruct")

# Settings that may change between a run and its resumption without changing the data it makes.
# `evolve_rounds` is one: raising it evolves a finished run further, like raising `target`.
OPERATIONAL = {"target", "max_rounds", "num_workers", "max_in_flight", "request_timeout", "max_retries"}
OPERATIONAL |= {"ray_address", "cache", "cache_path", "out", "price_prompt_per_1m", "price_completion_per_1m"}
OPERATIONAL |= {"max_failed_rounds", "api_key_env", "evolve_rounds"}


class TeacherUnavailable(RuntimeError):
    """Every request of several rounds in a row failed: the teacher is down or misconfigured."""


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from the run seed and a position (stage, round, slot)."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def provenance(stage: str, identity: tuple[str, str], r: TeacherResponse) -> Provenance:
    return Provenance(
        stage=stage,
        backend=identity[0],
        model=identity[1],
        request_key=r.request_key,
        finish_reason=r.finish_reason,
        prompt_tokens=r.prompt_tokens,
        completion_tokens=r.completion_tokens,
        latency_s=round(r.latency_s, 4),
        cached=r.cached,
    )


def check_config(folder: RunFolder, config: RunConfig) -> None:
    """Refuse to mix two different runs in one folder; record the config of a new one."""
    path = folder.file(CONFIG)
    current = config.model_dump(mode="json")
    if path.exists():
        before = read_json(path)
        changed = sorted(k for k in current if k not in OPERATIONAL and before.get(k) != current[k])
        if changed:
            raise ConfigError(
                f"{folder.path} holds a run with different settings ({', '.join(changed)}); "
                "use another --out, or the same settings to resume it"
            )
    write_json_atomic(path, current)


def brief(record: Record) -> dict[str, Any]:
    """What dropped.jsonl keeps of a dropped item (`Record.brief`): enough to read why."""
    return record.brief()


def dataset_records(accepted: list[Record], target: int) -> list[Record]:
    """The bootstrap's dataset: the first `target` accepted instructions that have instances."""
    return [r for r in accepted if r.instances][:target]


def stop_actors(workers: list[Any], *others: Any) -> None:
    """Close teachers (engines release their memory), then kill the actors; never hang on the way out."""
    try:
        ray.get([w.close.remote() for w in workers], timeout=30)
    except Exception as exc:  # an interrupted or crashed run still has to stop its actors
        log.warning("closing the teachers failed: %s", exc)
    for actor in [*workers, *others]:
        ray.kill(actor)
