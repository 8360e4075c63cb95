"""Which bootstrap rounds go out, and with how many proposals: fixed by the rounds' results alone.

A slow teacher is kept busy by having several rounds of proposals in flight at once. Round N's
in-context examples are sampled from the pool as it stood after round N - lag's dedup, where `lag` is
`--rounds-in-flight`: round N goes out as soon as round N - lag is decided, while rounds
N - lag + 1 .. N - 1 are still being answered. With lag 1 this is the loop of Self-Instruct (each
round sees the pool of the round before); with lag 4, the newest three rounds' items are not yet
candidates for the in-context examples of the round going out. Dedup is unchanged: every candidate is
still judged against every item kept before it, in round order.

How many proposals a round gets is planned the same way, from the run's own measured *yield*: the
items a proposal brings, measured over the rounds decided so far, with the profile's value as the prior
(`Profile.proposal_yield`: 2 for Self-Instruct's lists, 1 for Magpie's one query; it weighs as
`PRIOR_WEIGHT` proposals). Round N is planned from the items accepted up to round N - lag plus the
yield for each proposal of the rounds in between, and asks for what is still missing divided by the
yield, so a run near its target sends enough to finish in one round, whatever its teacher's yield
(a fixed 2 per proposal made low-yield runs crawl to their target one or two items a round). When that
plan says the target is met but the rounds, once completed, fall short, the next round is planned from
what they really kept, at the yield of kept items. Every input to these decisions is a count fixed by
the rounds before, never by timing, so the requests (and the dataset) are the same whatever order the
teacher answers in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PRIOR_WEIGHT = 2  # the profile's yield counts as this many proposals already measured
MIN_YIELD = 0.05  # a run that keeps (almost) nothing still plans at most `per_round` proposals


@dataclass
class RoundPlan:
    target: int
    per_round: int  # --prompts-per-round
    lag: int  # --rounds-in-flight
    max_rounds: int | None
    prior: float = 2.0  # the profile's items per proposal, before any round is measured
    slots: list[int] = field(default_factory=list)  # proposals of each round planned so far, by round
    accepted: list[int] = field(default_factory=list)  # items each decided round's dedup accepted

    @property
    def next_round(self) -> int:
        return len(self.slots)

    def sees(self, round_: int) -> int:
        """The last round whose kept items round `round_` may show as in-context examples."""
        return round_ - self.lag

    def decided(self, round_: int, accepted: int) -> None:
        assert round_ == len(self.accepted), "rounds are decided in order"
        self.accepted.append(accepted)

    def by_plan(self) -> int | None:
        """Proposals for the next round, if the plan sends it now; None: not yet, or not by plan."""
        round_ = self.next_round
        seen = self.sees(round_)
        if seen >= len(self.accepted):
            return None  # the round it samples from is not decided yet
        decided = max(seen + 1, 0)
        accepted = sum(self.accepted[:decided])
        rate = self.yield_of(accepted, sum(self.slots[:decided]))
        expected = accepted + rate * sum(self.slots[decided:round_])
        return self._slots(round_, expected, rate)

    def after_drain(self, kept: int) -> int | None:
        """Proposals for the next round once every round before it has committed with `kept` items."""
        return self._slots(self.next_round, kept, self.yield_of(kept, sum(self.slots)))

    def yield_of(self, items: int, proposals: int) -> float:
        """Items per proposal: what `proposals` brought, with the profile's prior mixed in."""
        return max(MIN_YIELD, (items + self.prior * PRIOR_WEIGHT) / (proposals + PRIOR_WEIGHT))

    def _slots(self, round_: int, expected: float, rate: float) -> int | None:
        if expected >= self.target or (self.max_rounds is not None and round_ >= self.max_rounds):
            return None
        return min(self.per_round, max(1, math.ceil((self.target - expected) / rate - 1e-9)))

    def send(self, slots: int) -> int:
        """Record that the next round goes out with `slots` proposals; returns its number."""
        self.slots.append(slots)
        return len(self.slots) - 1
