"""The evolution's tables: the "evolve" section of stats.json and the lines the CLI prints."""

from __future__ import annotations

from collections import Counter
from typing import Any

from generator.state import EvolveRoundStats, EvolveState


def evolve_report(profile: str, state: EvolveState) -> dict[str, Any]:
    """stats.json's "evolve": the input, the per-round table and the totals."""
    rounds = state.rounds
    eliminated: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    ops: Counter[str] = Counter()
    for r in rounds:
        eliminated.update(r.eliminated)
        failed.update(r.failed)
        ops.update(r.ops)
    return {
        "profile": profile,
        "input": state.started_from.model_dump(),
        "rounds": [r.model_dump() for r in rounds],
        "total": {
            "evolved": sum(r.evolved for r in rounds),
            "failed": dict(failed),
            "eliminated": dict(eliminated),
            "kept": sum(r.kept for r in rounds),
            "ops": dict(ops),
        },
    }


def format_evolve_stats(evolve: dict[str, Any]) -> str:
    """The per-round table printed at the end of a run, from stats.json's "evolve"."""
    lines = [
        f"evolution ({evolve['profile']}): {evolve['input']['items']} items, avg {evolve['input']['avg_words']} words"
    ]
    lines += [f"  {round_line(EvolveRoundStats.model_validate(r))}" for r in evolve["rounds"]]
    return "\n".join(lines)


def round_line(r: EvolveRoundStats) -> str:
    def counts(c: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"

    words = "-" if r.avg_words is None else f"{r.avg_words:.1f}"
    tokens = "-" if r.avg_tokens is None else f"{r.avg_tokens:.1f}"
    return (
        f"round {r.round}: {r.evolved} evolved, {r.kept} kept, "
        f"{sum(r.failed.values())} failed; eliminated: {counts(r.eliminated)}; "
        f"avg {words} words / {tokens} tokens; ops: {counts(r.ops)}"
    )
