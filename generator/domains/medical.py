"""The medical domain: answers kept only when reference passages the user trusts support them.

`--domain medical --references DIR` names a folder of passages (`references.py` reads and indexes
it with BM25, once per corpus content). A round drafts placeholders; the teacher writes each a task,
either in the style of two or three seed tasks of one kind (patient questions, clinical summaries,
drug information, triage) or, for `--passage-share` of them, a question that one passage answers
(`ProposeMedical`). Before the answer step the driver retrieves the task's top `--retrieve-k` passages
(`Medical.retrieve`); the teacher answers from them alone, citing passage ids (`AnswerMedical`), or says
that they do not cover the question. With `--support-check judge|both` the teacher then judges whether
the cited passages state every claim (`JudgeSupport`).

`MedicalVerifier` checks, in this order: an answer exists; the not-covered sentence is kept as it is;
the citations exist and were retrieved; every number (dose, duration, threshold) is stated in a cited
passage; an answer to a patient states no diagnosis as certain; the cited passages contain the answer's
words (lexical) and/or the judge said yes. A medical answer has no source but the teacher, so a failed
one is dropped, never repaired. The teacher steps live in `medical_tasks.py`, the text checks in
`medical_checks.py`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from generator.domains.base import DomainStep
from generator.domains.medical_checks import (
    cited_ids,
    is_not_covered,
    is_patient_question,
    lexical_support,
    states_certain_diagnosis,
    unsupported_numbers,
)
from generator.domains.medical_tasks import (
    NOT_COVERED,
    AnswerMedical,
    JudgeSupport,
    ProposeMedical,
    answer_of,
    has_citations,
    needs_task,
    parse_judge,
    retrieved,
)
from generator.profiles import ANSWER_SAMPLING, JUDGE_SAMPLING
from generator.records import Record, SeedTask, Verification
from generator.seeding import derive_seed
from generator.tasks.base import collapse_ws

if TYPE_CHECKING:
    from generator.config import RunConfig
    from generator.domains.references import ReferenceIndex

__all__ = [
    "DOMAIN",
    "NOT_COVERED",
    "AnswerMedical",
    "JudgeSupport",
    "Medical",
    "MedicalVerifier",
    "ProposeMedical",
    "has_citations",
    "needs_task",
    "parse_judge",
    "seed_kind",
]

# A paraphrase keeps most of its source's words but adds some of its own ("common", "straight"); a
# claim borrowed from a passage about something else shares few. With 4 in 5 content words required,
# a faithful answer of twenty content words may bring four of its own, while an answer citing the
# wrong passage (the unit tests' heart attack answer citing the stroke passage) falls far below.
SUPPORT_THRESHOLD = 0.8
JUDGE_MAX_TOKENS = 64  # "yes" or "no" and one sentence of reason
KINDS = ("patient_question", "clinical_summary", "drug_info", "triage")  # seed name prefixes
SupportCheck = Literal["lexical", "judge", "both"]


class PassageLike(Protocol):
    """What the verifier reads of a passage (`references.Passage`; frozen, so read-only here)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...


def seed_kind(seed: SeedTask) -> str:
    """A seed's kind is its name's prefix (`patient_question_03` is a patient question)."""
    return next((kind for kind in KINDS if seed.name.startswith(f"{kind}_")), "general")


# -- the verifier -------------------------------------------------------------------------------------

METHODS = {"lexical": "references", "judge": "judge", "both": "references+judge"}


class MedicalVerifier:
    """Checks an answer against the corpus passages it cites; never raises for a bad answer."""

    def __init__(self, support_check: SupportCheck = "lexical", passages: Sequence[PassageLike] = ()) -> None:
        self.support_check = support_check
        self.method = METHODS[support_check]
        self.passages: dict[str, PassageLike] = {p.id: p for p in passages}

    def verify(self, item: Record) -> Verification:
        answer = answer_of(item).strip()
        if not answer:
            return self._verdict("unverifiable", "no_answer")
        if is_not_covered(answer):
            return self._verdict("verified", None, not_covered=True, citations=[])
        cited = cited_ids(answer)
        if not cited:
            return self._verdict("failed", "no_citation")
        unknown = [pid for pid in cited if pid not in self.passages]
        if unknown:
            return self._verdict("failed", "unknown_citation", cited=cited, unknown=unknown)
        shown = {p["id"] for p in retrieved(item)}
        if not_shown := [pid for pid in cited if pid not in shown]:
            return self._verdict("failed", "citation_not_retrieved", cited=cited, not_retrieved=not_shown)
        citations = [{"id": pid, "title": self.passages[pid].title} for pid in cited]
        texts = [f"{self.passages[pid].title}\n{self.passages[pid].text}" for pid in cited]

        if numbers := unsupported_numbers(answer, texts):
            return self._verdict("failed", "unsupported_number", citations=citations, numbers=numbers)
        facts = item.facts or {}
        patient = is_patient_question(item.instruction, facts.get("kind"))
        if patient and (phrase := states_certain_diagnosis(answer)):
            return self._verdict("failed", "diagnostic_certainty", citations=citations, phrase=phrase)
        share, missing = lexical_support(answer, texts)
        evidence: dict[str, Any] = {"citations": citations, "support": share}
        if self.support_check in ("lexical", "both") and share < SUPPORT_THRESHOLD:
            return self._verdict("failed", "unsupported_claims", **evidence, missing=missing)
        if self.support_check in ("judge", "both"):
            judge = facts.get("judge")
            if not isinstance(judge, dict) or "supported" not in judge:
                return self._verdict("unverifiable", "judge_unreadable", **evidence)
            evidence["judge"] = judge
            if not judge["supported"]:
                return self._verdict("failed", "judge_unsupported", **evidence)  # the reason is in "judge"
        return self._verdict("verified", None, **evidence)

    def _verdict(self, verdict: Any, reason: str | None, **details: Any) -> Verification:
        return Verification(method=self.method, verdict=verdict, reason=reason, details=details)


# -- the domain ---------------------------------------------------------------------------------------


class Medical:
    name = "medical"

    def __init__(
        self, verifier: MedicalVerifier | None = None, index: ReferenceIndex | None = None, k: int = 3
    ) -> None:
        self.verifier = verifier or MedicalVerifier()
        self.index, self.k = index, k

    def configure(self, cfg: RunConfig) -> Medical:
        """A copy with the corpus opened (its BM25 index loaded or built); a missing or unusable corpus
        is a ConfigError naming the folder, raised before any teacher call."""
        from generator.config import ConfigError, default_cache_dir
        from generator.domains.references import CorpusError, ReferenceIndex  # bm25s: only when used

        if cfg.references is None:
            raise ConfigError(
                "--domain medical needs --references DIR: a folder of reference passages "
                "(.jsonl with id, title, text; .md; .txt) that answers must cite"
            )
        cache_dir = Path(cfg.cache_path).parent if cfg.cache_path else default_cache_dir()
        try:
            index = ReferenceIndex.open(Path(cfg.references), cache_dir)
        except CorpusError as exc:
            raise ConfigError(f"--references {cfg.references}: {exc}") from None
        verifier = MedicalVerifier(cfg.support_check, index.passages)
        return Medical(verifier, index, cfg.retrieve_k)

    def retrieve(self, item: Record) -> Record:
        """The item with its top-k passages in `facts["passages"]` (runs in the driver: see steps)."""
        assert self.index is not None, "Medical.configure(cfg) opens the corpus first"
        found = [p.model_dump() for p in self.index.search(item.instruction, self.k)]
        return item.model_copy(update={"facts": {**(item.facts or {}), "passages": found}}, deep=True)

    def draft(self, cfg: RunConfig, round_: int, count: int, seeds: list[SeedTask]) -> list[Record]:
        """`count` placeholders: a share shows one corpus passage, the rest 2-3 seed tasks of one kind."""
        rng = random.Random(derive_seed(cfg.seed, "medical", round_))
        passages = self.index.passages if self.index is not None else []
        by_kind: dict[str, list[SeedTask]] = {}
        for seed in sorted(seeds, key=lambda s: s.id):
            by_kind.setdefault(seed_kind(seed), []).append(seed)
        items = []
        for i in range(count):
            facts: dict[str, Any] = {"needs_task": True}
            from_passage = rng.random() < cfg.passage_share
            if passages and (from_passage or not by_kind):
                facts["passage"] = rng.choice(passages).model_dump()
                parents = [f"passage:{facts['passage']['id']}"]
            elif by_kind:
                kind = rng.choice(sorted(by_kind))
                shown = rng.sample(by_kind[kind], min(len(by_kind[kind]), rng.randint(2, 3)))
                facts |= {"examples": [_example(seed) for seed in shown], "kind": kind}
                parents = [f"seed:{seed.id}" for seed in shown]
            else:
                raise ValueError("the medical domain drafts from seed tasks or passages, and has neither")
            items.append(
                Record(
                    id=f"med-r{round_}-p{i}",
                    instruction="",
                    origin="medical",
                    round=round_,
                    is_classification=False,
                    parent_ids=parents,
                    facts=facts,
                )
            )
        return items

    def steps(self, cfg: RunConfig) -> list[DomainStep]:
        params = cfg.answer_params or ANSWER_SAMPLING
        judge = cfg.judge_params or JUDGE_SAMPLING
        judge = judge.model_copy(update={"max_tokens": max(judge.max_tokens, JUDGE_MAX_TOKENS)})
        steps = [
            DomainStep(ProposeMedical(params, cfg.evolve_api, cfg.seed), wants=needs_task),
            DomainStep(AnswerMedical(params, cfg.evolve_api, cfg.seed), before=self.retrieve),
        ]
        if cfg.support_check in ("judge", "both"):
            steps.append(DomainStep(JudgeSupport(judge, cfg.evolve_api, cfg.seed), wants=has_citations))
        return steps

    def dedup_key(self, item: Record) -> str | None:
        """The instruction, lowercased, without punctuation, whitespace collapsed."""
        key = collapse_ws(re.sub(r"[^\w\s]", " ", item.instruction.lower()))
        return key or None

    def settle(self, item: Record) -> Record:
        """The answer as the teacher wrote it, with the ids and titles of the passages it cites."""
        titles = {p["id"]: p["title"] for p in retrieved(item)}
        titles |= {pid: p.title for pid, p in self.verifier.passages.items()}
        cited = [] if is_not_covered(answer_of(item)) else cited_ids(answer_of(item))
        citations = [{"id": pid, "title": titles.get(pid, "")} for pid in cited]
        return item.model_copy(update={"facts": {**(item.facts or {}), "citations": citations}}, deep=True)

    def repair(self, item: Record) -> Record | None:
        """A medical answer has no source but the teacher: one that fails is dropped."""
        return None


def _example(seed: SeedTask) -> str:
    """A seed task as the proposal prompt shows it: its instruction, and its input when it has one."""
    given = seed.instances[0].input.strip()
    return f"{seed.instruction}\n{given}" if given else seed.instruction


DOMAIN = Medical()  # unconfigured: `configure(cfg)` opens the corpus and gives the usable one
