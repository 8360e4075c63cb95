"""Filters: small blocks with one method, `filter(item) -> bool | (bool, reason)` (the protocol, dedup's
included, is in `filters/base.py`).

Importing the package registers every built-in filter by name (see `filters.base.build_filters`).
The semantic filter registers too, but loads its model (torch, sentence-transformers) only when built.
"""

from filters import (  # noqa: F401  (imported to register their filters)
    decontaminate,
    eliminator,
    heuristics,
    instances,
    magpie,
    minhash,
    quality,
    rouge,
    rouge_filter,
    semantic,
)
