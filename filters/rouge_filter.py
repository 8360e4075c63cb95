"""`rouge_l`: the Self-Instruct / Alpaca dedup filter, with the neighbours the originals store.

Drop an instruction whose ROUGE-L F (rouge-score's value) against a seed or kept instruction is above
the threshold. A kept one gets its top-k most similar pool items and its mean F over the pool before
it. Two ways to decide, the same decisions (tests/unit/test_rouge_property.py):

- `similarity=True` (the pipeline): every kept item needs its full row against the pool anyway, so
  the decision is read off that row (`filters/rouge_rows.py`). A batch `offer`ed at once is scored a
  chunk at a time in C; the neighbours are ranked later, together, in `neighbours()`, off the decision
  path.
- `similarity=False` (decisions only, e.g. the dedup CLI): the prefix index (`filters/rouge.py`)
  scores a few hundred pairs per candidate instead of the whole pool.
"""

from __future__ import annotations

from collections.abc import Sequence

from filters.base import Dedup, Judgement, Neighbourhood, reason_for, register
from filters.rouge import RougeLIndex
from filters.rouge_rows import PoolRows
from generator.records import Record


@register
class RougeLFilter(Dedup):
    """Drop an instruction whose ROUGE-L F against a seed or kept instruction is above `threshold`.

    Args:
        threshold: reject when max F > threshold (Self-Instruct and Alpaca: 0.7).
        top_k: how many most-similar pool items a kept record stores (the originals keep 10).
        similarity: rank each kept record's `most_similar` and `avg_similarity` (`neighbours()`).
            Costs one exact LCS per pool item per candidate; switch off when only the decisions matter.
        chunk: candidates scored together (one `cdist` matrix of chunk x pool).
    """

    name = "rouge_l"
    metric = "rouge_l"

    def __init__(
        self, threshold: float = 0.7, top_k: int = 10, similarity: bool = True, chunk: int = 256
    ) -> None:
        super().__init__()
        self.index = RougeLIndex(threshold, prefix_index=not similarity)
        self.rows = PoolRows(self.index, top_k, chunk) if similarity else None
        self.threshold = threshold
        self.top_k = top_k
        self.reason = reason_for(self.name, threshold)

    def __len__(self) -> int:
        return len(self.index)

    def add(self, record: Record) -> None:
        self.index.add(record.instruction, record.id)

    def offer(self, records: Sequence[Record]) -> list[bool]:
        if self.rows is not None:
            self.rows.prepare(records)  # their rows are scored a chunk at a time
        return super().offer(records)

    def filter(self, item: Record) -> Judgement:
        index = self.index
        if self.rows is None:
            enc = index.encode_new(item.instruction)
            match = index.check_encoded(enc)
        else:
            enc, match = self.rows.best_above(item)
        if match is not None:
            # the dropped item says what it duplicated (written to dropped.jsonl with the reason)
            j = match.position
            item.near_duplicate = self.duplicate_of(index.texts[j], index.ids[j], match.score)
            return False, self.reason
        index.add_encoded(item.instruction, enc, item.id)
        if self.rows is not None:
            self.rows.joined(item)
        return True

    def neighbours(self) -> list[Neighbourhood]:
        """Top-k `(text, F)` and mean F of each record kept since the last call, against the pool before
        it (plain tuples: the pool actor sends them on without building models).

        The ranking uses LCS/(m+n), so equal F values (as fractions) tie exactly and the earliest pool
        item wins a tie whatever rouge-score's last-bit rounding does; the reported scores are
        rouge-score's own values (`rouge_f`).
        """
        return [] if self.rows is None else self.rows.neighbours()
