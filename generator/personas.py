"""Personas (Persona Hub, Ge et al. 2024): a diversity source. Each proposal prompt is written for one
persona, drawn per request from a file of one persona per line, so the same seeds and teacher are
asked for what many different people would need.

A persona is drawn by the run seed, round and slot (like every other random choice), so a rerun or a
resumed run draws the same ones; the record keeps its persona (`Record.persona`).
"""

from __future__ import annotations

import random
from pathlib import Path

from generator.config import ConfigError
from generator.seeding import derive_seed

SHIPPED = Path(__file__).resolve().parent.parent / "seeds" / "personas.txt"


def load_personas(path: Path | None) -> list[str]:
    """The personas in `path` (blank lines and `#` comments skipped); [] for no file. Raises
    ConfigError naming the file when it cannot be read or holds none."""
    if path is None:
        return []
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--personas {path}: cannot read: {exc}") from None
    personas = [" ".join(line.split()) for line in text.splitlines()]
    personas = [p for p in personas if p and not p.startswith("#")]
    if not personas:
        raise ConfigError(f"--personas {path}: no personas (one per line)")
    return personas


def persona_for(personas: list[str], run_seed: int, round_: int, slot: int) -> str | None:
    """The persona proposal `slot` of `round_` is written for (None without personas)."""
    if not personas:
        return None
    return random.Random(derive_seed(run_seed, "persona", round_, slot)).choice(personas)
