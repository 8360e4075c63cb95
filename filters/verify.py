"""The two filters of a domain round: a duplicate check by the domain's key, and the verifier.

Both are plain `Filter`s, so their counters and drops reach stats.json and dropped.jsonl the way every
other filter's do. Neither is chosen by name in a config: the domain supplies the key and the verifier.

- `KeyDedup` drops an item whose key (arithmetic: the expression and phrasing; code: the solution's
  normalised AST) an earlier item already had. It runs before the verifier, so the sandbox never runs
  the same program twice.
- `Verify` asks the domain's verifier about each item (in parallel: a sandboxed program is a process
  that mostly waits) and writes the verdict on the item. It keeps what the verifier passes, and what
  failed but the domain can `repair` (arithmetic computes the answer instead); with `keep_all`
  (`--no-verify`) it drops nothing but still counts the verdicts, so an ablation can compare.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from filters.base import Filter, Judgement
from generator.domains.base import Domain, Verifier
from generator.records import Record, Verification


class KeyDedup(Filter):
    name = "domain_dedup"
    phase = "answer"

    def __init__(self, key: Callable[[Record], str | None], seen: set[str] | None = None) -> None:
        super().__init__()
        self.key = key
        self.seen: set[str] = set(seen or ())

    def filter(self, item: Record) -> Judgement:
        key = self.key(item)
        if key is None:
            return True
        if key in self.seen:
            return False, "duplicate"
        self.seen.add(key)
        return True


class Verify(Filter):
    name = "verify"
    phase = "answer"

    def __init__(
        self,
        verifier: Verifier,
        keep_all: bool = False,
        parallel: int = 1,
        repairable: Callable[[Record], bool] | None = None,
    ) -> None:
        super().__init__()
        self.verifier, self.keep_all, self.parallel = verifier, keep_all, parallel
        self.repairable = repairable or (lambda item: False)

    def filter(self, item: Record) -> Judgement:
        return self._judge(item, self._verify(item))

    def filter_batch(self, items: Sequence[Record]) -> list[Judgement]:
        if self.parallel <= 1 or len(items) <= 1:
            return [self.filter(item) for item in items]
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="verify") as pool:
            verdicts = list(pool.map(self._verify, items))  # in item order, whatever finishes first
        return [self._judge(item, v) for item, v in zip(items, verdicts, strict=True)]

    def _verify(self, item: Record) -> Verification:
        try:
            return self.verifier.verify(item)
        except Exception as exc:  # a verifier bug costs one item, never the run
            return Verification(
                method=self.verifier.method,
                verdict="unverifiable",
                reason="verifier_error",
                details={"error": f"{type(exc).__name__}: {exc}"},
            )

    def _judge(self, item: Record, v: Verification) -> Judgement:
        item.verification = v
        # the verdicts, kept or not: stats.json's "verification" counts (see `verification_counts`)
        self.stats[f"verdict_{v.verdict}"] += 1
        if v.verdict != "verified":
            self.stats[f"{v.verdict}_{v.reason or 'unknown'}"] += 1
        if self.keep_all or v.verdict == "verified":
            return True
        if self.repairable(item):
            self.stats["repaired"] += 1
            return True
        return False, v.reason or v.verdict


def domain_filters(
    domain: Domain, seen: set[str], verifier: Verifier, keep_all: bool, parallel: int = 1
) -> list[Filter]:
    """A domain round's filters, in order: the duplicate check against `seen` (the keys of the items
    kept before), then the verifier (`verifier`: the domain's own, or the verdicts a run recorded)."""
    return [
        KeyDedup(domain.dedup_key, seen),
        Verify(verifier, keep_all, parallel, repairable=lambda r: domain.repair(r) is not None),
    ]


def verification_counts(counters: dict[str, int]) -> dict[str, object]:
    """`Verify`'s counters as stats.json shows them: verified, and failed / unverifiable by reason."""
    out: dict[str, object] = {
        "verified": counters.get("verdict_verified", 0),
        "repaired": counters.get("repaired", 0),  # failed, and kept with the domain's own answer
    }
    for verdict in ("failed", "unverifiable"):
        prefix = f"{verdict}_"
        out[verdict] = {
            k[len(prefix) :]: n for k, n in sorted(counters.items()) if k.startswith(prefix) and n
        }
    return out
