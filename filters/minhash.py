"""MinHash LSH dedup (datasketch), on its own or as a candidate pre-pass for exact ROUGE-L.

MinHash estimates the Jaccard similarity of two shingle sets; LSH banding finds the pairs likely to be
above a threshold without comparing every pair. On short instructions it is a coarse proxy for ROUGE-L
(engine notes §C: unigram MinHash caught 64% of ROUGE-L's drops and dropped 24% of its keeps), so:

- `minhash` drops an item when an LSH candidate's estimated Jaccard is above `threshold`;
- `minhash_rouge_l` asks LSH (at a lower `lsh_threshold`) for candidates and drops the item only when
  one of them has exact ROUGE-L F above `threshold`. Each drop is one ROUGE-L would make; pairs LSH does
  not propose are missed, which is the price of not scoring every pair.

Signatures are computed as `MinHash.bulk` does (one seeded prototype, copied per text); `add_many`
preloads seeds, or rebuilds the index on resume from the accepted items in their original order, which
gives the very same index (MinHash is seeded).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from filters.base import Dedup, Judgement, Match, Neighbourhood, reason_for, register
from filters.rouge import RougeLIndex, rouge_tokens, top_k_rows
from generator.records import Record

if TYPE_CHECKING:  # datasketch pulls in scipy (about 0.5 s): imported when an index is built
    from datasketch import MinHash

Shingle = Literal["word", "char"]
_SPACES = re.compile(r"\s+")


def shingles(text: str, shingle: Shingle = "word", ngram: int = 1) -> list[bytes]:
    """The shingle set of `text` as bytes, as MinHash wants it.

    word: n-grams of rouge-score tokens (lowercase a-z0-9 runs), the unit ROUGE-L compares;
    char: character n-grams of the lowercased text with whitespace collapsed.
    A text shorter than one n-gram is a single shingle; a text with no tokens has none.
    """
    if ngram < 1:
        raise ValueError(f"ngram must be at least 1, got {ngram}")
    if shingle == "word":
        units: Sequence[str] = rouge_tokens(text)
        joiner = " "
    elif shingle == "char":
        units = _SPACES.sub(" ", text.lower()).strip()
        joiner = ""
    else:
        raise ValueError(f"shingle must be 'word' or 'char', got {shingle!r}")
    if not units:
        return []
    if len(units) <= ngram:
        return [joiner.join(units).encode()]
    return list({joiner.join(units[i : i + ngram]).encode() for i in range(len(units) - ngram + 1)})


class MinHashIndex:
    """A pool of MinHash signatures with an LSH index; positions are pool order, as in RougeLIndex."""

    def __init__(
        self,
        threshold: float = 0.7,
        num_perm: int = 128,
        shingle: Shingle = "word",
        ngram: int = 1,
        seed: int = 1,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle: Shingle = shingle
        self.ngram = ngram
        self.seed = seed
        from datasketch import MinHash, MinHashLSH

        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        # MinHash.bulk builds one seeded MinHash (its permutations are the costly part) and copies it
        # per text; keeping that prototype lets single offers skip the set-up as well.
        self._prototype = MinHash(num_perm=num_perm, seed=seed)
        self._signatures = np.zeros((1024, num_perm), dtype=np.uint32)  # grown by doubling
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def signatures(self, texts: Iterable[str]) -> list[MinHash | None]:
        """Signatures in bulk; None for a text without shingles (it can match nothing)."""
        out: list[MinHash | None] = []
        for text in texts:
            units = shingles(text, self.shingle, self.ngram)
            sig = None
            if units:
                sig = self._prototype.copy()
                sig.update_batch(units)
            out.append(sig)
        return out

    def add_many(self, texts: Iterable[str]) -> None:
        for sig in self.signatures(texts):
            self.insert(sig)

    def add(self, text: str) -> None:
        self.add_many([text])

    def insert(self, sig: MinHash | None) -> int:
        pos = self._size
        if pos == len(self._signatures):
            self._signatures = np.concatenate([self._signatures, np.zeros_like(self._signatures)])
        if sig is not None:
            self._signatures[pos] = sig.hashvalues
            self.lsh.insert(pos, sig)
        self._size += 1
        return pos

    def candidates(self, sig: MinHash | None) -> list[int]:
        """Pool positions LSH proposes for `sig`, in pool order."""
        return sorted(self.lsh.query(sig)) if sig is not None else []

    def jaccard(self, sig: MinHash, positions: Sequence[int]) -> np.ndarray:
        """Estimated Jaccard of `sig` against the pool items at `positions`."""
        rows = self._signatures[np.asarray(positions, dtype=np.int64)]
        return (rows == sig.hashvalues).mean(axis=1)

    def check_signature(self, sig: MinHash | None) -> Match | None:
        """The LSH candidate with the highest estimated Jaccard above the threshold, or None."""
        cand = self.candidates(sig)
        if sig is None or not cand:
            return None
        est = self.jaccard(sig, cand)
        best = int(np.argmax(est))  # argmax takes the first (earliest) of tied items
        return Match(cand[best], float(est[best])) if est[best] > self.threshold else None

    def offer(self, text: str) -> Match | None:
        """Check, then add when no duplicate was found."""
        (sig,) = self.signatures([text])
        match = self.check_signature(sig)
        if match is None:
            self.insert(sig)
        return match


@register
class MinHashFilter(Dedup):
    """Drop an instruction whose estimated Jaccard with a seed or kept one is above `threshold`.

    Args:
        threshold: LSH threshold and the estimated-Jaccard cut.
        num_perm: MinHash permutations (signature length).
        shingle: "word" (rouge-score tokens) or "char".
        ngram: shingle length in words or characters.
        seed: MinHash seed (same seed, same signatures: needed for resume).
    """

    name = "minhash"
    metric = "jaccard"

    def __init__(
        self,
        threshold: float = 0.7,
        num_perm: int = 128,
        shingle: Shingle = "word",
        ngram: int = 1,
        seed: int = 1,
    ) -> None:
        super().__init__()
        self.index = MinHashIndex(threshold, num_perm, shingle, ngram, seed)
        self.texts: list[str] = []
        self.ids: list[str | None] = []  # the pool items' ids, beside their texts
        self.reason = reason_for(self.name, threshold)

    def __len__(self) -> int:
        return len(self.index)

    def add(self, record: Record) -> None:
        self.add_many([record])

    def add_many(self, records: Iterable[Record]) -> None:
        records = list(records)
        self.index.add_many(r.instruction for r in records)
        self.texts.extend(r.instruction for r in records)
        self.ids.extend(r.id for r in records)

    def filter(self, item: Record) -> Judgement:
        match = self.index.offer(item.instruction)
        if match is not None:
            j = match.position
            item.near_duplicate = self.duplicate_of(self.texts[j], self.ids[j], match.score)
            return False, self.reason
        self.texts.append(item.instruction)
        self.ids.append(item.id)
        return True


@register
class MinHashRougeLFilter(Dedup):
    """MinHash LSH proposes candidates; exact ROUGE-L F above `threshold` among them drops the item.

    Args:
        threshold: the ROUGE-L F threshold (Self-Instruct: 0.7).
        lsh_threshold: the Jaccard level LSH is tuned for; lower finds more of ROUGE-L's duplicates.
        num_perm, shingle, ngram, seed: as for `minhash`.
        top_k: kept records' `neighbours()` are ranked among the verified candidates (a subset of the
            pool, so it is a lower bound on the true top-k); the mean similarity is left empty, since
            computing it needs every pair, which is what this filter avoids.
    """

    name = "minhash_rouge_l"
    metric = "rouge_l"

    def __init__(
        self,
        threshold: float = 0.7,
        lsh_threshold: float = 0.5,
        num_perm: int = 128,
        shingle: Shingle = "word",
        ngram: int = 1,
        seed: int = 1,
        top_k: int = 10,
    ) -> None:
        super().__init__()
        self.minhash = MinHashIndex(lsh_threshold, num_perm, shingle, ngram, seed)
        self.rouge = RougeLIndex(threshold, prefix_index=False)
        self.top_k = top_k
        self.reason = reason_for("rouge_l", threshold)
        self._kept: list[Neighbourhood] = []  # kept since the last `neighbours()`, with their top k

    def __len__(self) -> int:
        return len(self.rouge)

    def add(self, record: Record) -> None:
        self.add_many([record])

    def add_many(self, records: Iterable[Record]) -> None:
        records = list(records)
        self.minhash.add_many(r.instruction for r in records)
        for r in records:
            self.rouge.add(r.instruction, r.id)

    def filter(self, item: Record) -> Judgement:
        text, rouge = item.instruction, self.rouge
        (sig,) = self.minhash.signatures([text])
        cand = self.minhash.candidates(sig)
        match = rouge.best_of(text, cand) if cand else None
        if match is not None:
            j = match.position
            item.near_duplicate = self.duplicate_of(rouge.texts[j], rouge.ids[j], match.score)
            return False, self.reason
        if self.top_k > 0:
            similar: list[tuple[str, float]] = []
            if cand:
                scores = rouge.scores(text, cand)
                top = top_k_rows([scores], self.top_k)[0]
                similar = [(rouge.texts[cand[i]], float(scores[i])) for i in top]
            self._kept.append((item, similar, None))
        self.minhash.insert(sig)
        rouge.add(text, item.id)
        return True

    def neighbours(self) -> list[Neighbourhood]:
        kept, self._kept = self._kept, []
        return kept
