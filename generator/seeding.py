"""Every random choice of a run comes from a seed derived from the run seed and a position.

A position is the stage, the round and the slot (or item id), so a resumed run, or one whose teacher
answers in another order, draws the same mixes, ops and sampling seeds.
"""

from __future__ import annotations

import hashlib


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from the run seed and a position (stage, round, slot)."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF
