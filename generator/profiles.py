"""Profiles: the published parameters of Self-Instruct (Wang et al. 2022), Stanford Alpaca and Magpie.

A profile fills every run setting the user left unset. Values follow `shared/prior-art.md` §1-2:
the originals' sampling, prompt mix, stop sequences and filters; the prompt wording is our own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from filters import heuristics
from filters.base import FilterSpec
from generator.tasks.rewrite import OPS
from generator.teachers.base import SamplingParams

SELF_INSTRUCT_BLACKLIST = list(heuristics.SELF_INSTRUCT_BLACKLIST)  # the lists live in filters/heuristics.py
ALPACA_BLACKLIST_EXTRA = list(heuristics.ALPACA_BLACKLIST_EXTRA)


class Profile(BaseModel):
    """A named set of published parameters; `register_profile` makes it a `--profile` choice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    api: Literal["completion", "chat"]  # which endpoint the proposal prompt is written for
    # how the teacher is asked for new tasks (generator/tasks/propose.py: PROPOSERS)
    proposal: Literal["numbered-list", "task-blocks", "pre-query"]
    seeds_in_prompt: int  # in-context instructions drawn from the seed tasks
    machine_in_prompt: int  # in-context instructions drawn from the machine pool (0: seeds only)
    tasks_per_request: int  # how far the numbered list may run
    propose: SamplingParams
    classify: SamplingParams | None  # None: no classification stage (Alpaca dropped it)
    instances: SamplingParams | None  # None: instances come with the proposal (Alpaca)
    max_instances: int
    instruction_filters: list[FilterSpec]
    dedup: list[FilterSpec]
    instance_filters: list[FilterSpec]
    # items one proposal is expected to bring, before a run has measured its own (round_plan.py)
    proposal_yield: float = 2.0

    @property
    def needs_seeds(self) -> bool:
        """Magpie's pre-query proposals need no seed tasks; the others show seeds in the prompt."""
        return self.proposal != "pre-query"


def _heuristics(blacklist: list[str]) -> list[FilterSpec]:
    return [
        FilterSpec(name="word_count", params={"min_words": 4, "max_words": 150}),
        FilterSpec(name="blacklist", params={"words": blacklist}),
        FilterSpec(name="bad_prefix", params={"prefixes": ["Write a program"]}),
        FilterSpec(name="leading_punctuation"),
        FilterSpec(name="non_ascii_start"),
    ]


def _instance_filters(max_instances: int) -> list[FilterSpec]:
    return [
        FilterSpec(name="instance_empty_output"),
        FilterSpec(name="instance_input_equals_output"),
        FilterSpec(name="instance_truncated"),
        FilterSpec(name="instance_repetition"),
        FilterSpec(name="instance_duplicate"),
        FilterSpec(name="instance_conflicting_outputs"),
        FilterSpec(name="max_instances", params={"k": max_instances}),
    ]


SELF_INSTRUCT = Profile(
    name="self-instruct",
    api="completion",
    proposal="numbered-list",
    seeds_in_prompt=6,
    machine_in_prompt=2,
    tasks_per_request=15,  # the list is numbered 1..8 in the prompt; the teacher continues to at most 15
    propose=SamplingParams(
        temperature=0.7,
        top_p=0.5,
        max_tokens=1024,
        presence_penalty=2.0,
        stop=("\n\n", "\n16", "16.", "16 ."),
    ),
    classify=SamplingParams(temperature=0.0, top_p=1.0, max_tokens=3, stop=("\n", "Task")),
    instances=SamplingParams(
        temperature=0.0, top_p=1.0, max_tokens=350, presence_penalty=1.5, stop=("Example 6", "Task:")
    ),
    max_instances=5,
    instruction_filters=_heuristics(SELF_INSTRUCT_BLACKLIST),
    dedup=[FilterSpec(name="rouge_l", params={"threshold": 0.7, "top_k": 10})],
    instance_filters=_instance_filters(5),
)

ALPACA = Profile(
    name="alpaca",
    api="completion",
    proposal="task-blocks",
    seeds_in_prompt=3,
    machine_in_prompt=0,  # "only sampling from the seed tasks"
    tasks_per_request=20,
    propose=SamplingParams(temperature=1.0, top_p=1.0, max_tokens=3072, stop=("\n20", "20.", "20 .")),
    classify=None,
    instances=None,
    max_instances=1,
    instruction_filters=_heuristics(SELF_INSTRUCT_BLACKLIST + ALPACA_BLACKLIST_EXTRA),
    dedup=[FilterSpec(name="rouge_l", params={"threshold": 0.7, "top_k": 10})],
    instance_filters=_instance_filters(1),
)

# Magpie (Xu et al. 2024): no seeds; the teacher completes its own chat template's user turn
# (generator/tasks/magpie.py). Queries: temperature 1, top_p 1, stopped at the turn's end or the first
# newline; responses greedy. Its own query filters first, then Self-Instruct's length window (a query
# may be a 2-word question) and blacklist, and the same ROUGE-L dedup.
MAGPIE = Profile(
    name="magpie",
    api="completion",
    proposal="pre-query",
    seeds_in_prompt=0,
    machine_in_prompt=0,
    tasks_per_request=1,
    propose=SamplingParams(temperature=1.0, top_p=1.0, max_tokens=256, stop=("\n",)),
    classify=None,
    # greedy, as published; a light repetition penalty, since a small model's greedy answer can loop
    # until max_tokens (instance_repetition drops one that still does)
    instances=SamplingParams(temperature=0.0, top_p=1.0, max_tokens=1024, repetition_penalty=1.1),
    max_instances=1,
    instruction_filters=[
        FilterSpec(name="query_empty"),
        FilterSpec(name="query_template_tokens"),
        FilterSpec(name="query_is_answer"),
        FilterSpec(name="query_repeats_system"),
        FilterSpec(name="word_count", params={"min_words": 2, "max_words": 150}),
        FilterSpec(name="blacklist", params={"words": SELF_INSTRUCT_BLACKLIST}),
    ],
    dedup=[FilterSpec(name="rouge_l", params={"threshold": 0.7, "top_k": 10})],
    instance_filters=_instance_filters(1),
    proposal_yield=1.0,  # one query per request, at best
)

PROFILES: dict[str, Profile] = {}


def register_profile(profile: Profile) -> Profile:
    """Make `profile` a choice of `--profile` (and of `profile:` in a run file), under its name."""
    if profile.name in PROFILES and PROFILES[profile.name] != profile:
        raise ValueError(f"two profiles are named {profile.name!r}")
    PROFILES[profile.name] = profile
    return profile


register_profile(SELF_INSTRUCT)
register_profile(ALPACA)
register_profile(MAGPIE)


# -- Evol-Instruct (Xu et al. 2023) and WizardCoder (Luo et al. 2023): prior-art §3 ---------------------

# WizardLM's openai_access.py: gpt-3.5-turbo, temperature 1, top_p 0.95, max_tokens 2048, used for both
# the evolution and the answer call.
EVOLVE_SAMPLING = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=2048)
ANSWER_SAMPLING = SamplingParams(temperature=1.0, top_p=0.95, max_tokens=2048)
# Judges answer a word or a number; greedy so a verdict repeats.
JUDGE_SAMPLING = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=16)


def evolve_profiles() -> list[str]:
    """The evolve op sets by name (`--evolve-profile`): general (WizardLM), code (WizardCoder)."""
    return list(OPS)


def evolve_ops(profile: str) -> dict[str, float]:
    """Equal weights, as WizardLM's `random.choice` over its prompts (complicate_input added, §3.2)."""
    return dict.fromkeys(OPS[profile], 1.0)


# The paper's four rules, the cheap h2o rules first so that they spend no judge or answer call.
ELIMINATOR = [
    FilterSpec(name=name)
    for name in (
        "evol_unchanged",
        "evol_prompt_leak",
        "evol_too_many_newlines",
        "evol_too_many_items",
        "evol_assistant_boilerplate",
        "evol_no_gain",
        "evol_hard_to_answer",
        "evol_empty_answer",
    )
]
