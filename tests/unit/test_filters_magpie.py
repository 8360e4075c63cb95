"""Magpie's query filters: what each keeps, what it drops and with which reason, built from specs."""

from __future__ import annotations

from typing import Any

import pytest

from filters.base import REGISTRY, build_filters, run_filters, validate_specs
from filters.magpie import ANSWER_OPENERS
from generator.records import Record

SMOLLM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
NAMES = ("query_empty", "query_is_answer", "query_template_tokens", "query_repeats_system")
GOOD = [
    "How do I reverse a linked list in Python?",
    "What are the main causes of the French Revolution?",
    "Can you explain how vaccines train the immune system?",
    "Surely there is a faster way to sort a million integers?",  # "Surely" is not "Sure"
    "I need help planning a 3-day trip to Kyoto. Where should I start?",
]


def rec(text: str) -> Record:
    return Record(id="x", instruction=text, origin="magpie", round=0)


def judge(name: str, text: str, **params: Any) -> tuple[bool, str | None]:
    (f,) = build_filters([{"name": name, "params": params}])
    return f.apply(rec(text))


def test_the_four_filters_are_registered_for_the_instruction_list() -> None:
    assert set(NAMES) <= set(REGISTRY)
    validate_specs([{"name": n} for n in NAMES], "instruction")


@pytest.mark.parametrize("text", GOOD)
@pytest.mark.parametrize("name", NAMES)
def test_real_queries_are_kept_by_all(name: str, text: str) -> None:
    params = {"system": SMOLLM} if name == "query_repeats_system" else {}
    assert judge(name, text, **params) == (True, None)


# -- query_empty ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "?", "...", " !? ", "“”", "¿…?"])
def test_empty_queries_are_dropped(text: str) -> None:
    assert judge("query_empty", text) == (False, "empty")


@pytest.mark.parametrize("text", ["Why?", "2+2", "?!x", "🙂"])
def test_anything_else_is_not_empty(text: str) -> None:
    assert judge("query_empty", text) == (True, None)


# -- query_is_answer ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Sure! Here is a poem about the sea:\n\nThe waves roll in...",
        "Certainly. The capital of France is Paris.",
        "Of course, I can help with that.",
        "Here's a Python function that reverses a list:",
        "  Here is a summary of the article.",
        "I'd be happy to help you plan your trip!",
        "I’d be happy to help!",  # a curly apostrophe
        "As an AI language model, I cannot browse the internet.",
        "I'm sorry, but I can't help with that request.",
        "Hello! How can I assist you today?",
        "Hi! How can I help?",
        "Great question! Photosynthesis is...",
        "Thank you for reaching out.",
        "sure, here you go",  # any case
        "Welcome to our support chat. How can I help you today?",  # an offer of help, anywhere
    ],
)
def test_answers_are_dropped(text: str) -> None:
    assert judge("query_is_answer", text) == (False, "answer")


def test_openers_are_configurable() -> None:
    assert "Sure" in ANSWER_OPENERS and "Here is" in ANSWER_OPENERS
    code = "Here is my code: why does it raise a KeyError?"
    assert judge("query_is_answer", code) == (False, "answer")
    assert judge("query_is_answer", code, openers=["Sure"]) == (True, None)
    assert judge("query_is_answer", "Sure thing, go on.", openers=["Sure"]) == (False, "answer")
    assert judge("query_is_answer", "Sure thing, go on.", openers=[]) == (True, None)


# -- query_template_tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "What is 2+2?<|im_end|>\n<|im_start|>assistant",
        "What is 2+2?<|eot_id|>",
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?",
        "<|user|>\nWhat is 2+2?",
        "Explain recursion. <|assistant|>",
        "[INST] Explain recursion. [/INST]",
        "Explain recursion.</s>",
        "<s> Explain recursion.",
        "Explain recursion.<end_of_turn>\n<start_of_turn>model",
        "What is 2+2?\nassistant\nThe answer is 4.",
        "What is 2+2?\n  Assistant:  \n4",
        "What is 2+2?\n\nUSER",
    ],
)
def test_template_tokens_are_dropped(text: str) -> None:
    assert judge("query_template_tokens", text) == (False, "template_tokens")


@pytest.mark.parametrize(
    "text",
    [
        "Is the assistant in a doctor's office a nurse?",  # a role word inside a sentence
        "How do I add a new user to a Linux group?",
        "Why does a | b in Python mean set union?",
        "In HTML, what is the difference between <b> and <strong>?",
    ],
)
def test_role_words_and_brackets_in_sentences_are_kept(text: str) -> None:
    assert judge("query_template_tokens", text) == (True, None)


def test_extra_tokens_are_literal() -> None:
    text = "Explain recursion.### Response:"
    assert judge("query_template_tokens", text) == (True, None)
    assert judge("query_template_tokens", text, tokens=["### Response:"]) == (False, "template_tokens")


# -- query_repeats_system -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "You are a helpful AI assistant named SmolLM",  # every word is the system prompt's
        "You are a helpful AI assistant named SmolLM, trained by Hugging Face.",
        # the whole prompt, verbatim (whitespace and case aside), inside a longer query
        "you are a helpful   AI assistant named SmolLM,\ntrained by Hugging Face. What is 2+2 and why?",
    ],
)
def test_echoes_of_the_system_prompt_are_dropped(text: str) -> None:
    assert judge("query_repeats_system", text, system=SMOLLM) == (False, "repeats_system")


def test_repeats_system_thresholds_and_limits() -> None:
    text = "Were you trained by Hugging Face to be a helpful coding tutor?"  # 7 of 12 words: 0.58
    assert judge("query_repeats_system", text, system=SMOLLM) == (True, None)
    assert judge("query_repeats_system", text, system=SMOLLM, threshold=0.5) == (False, "repeats_system")
    assert judge("query_repeats_system", "SmolLM assistant?", system=SMOLLM) == (True, None)  # < 3 words
    assert judge("query_repeats_system", "You are a helpful AI assistant") == (True, None)  # no system
    # a system prompt under 10 characters is not looked for verbatim, only by its words
    assert judge("query_repeats_system", "Be brief. Name three rivers in Africa.", system="Be brief.") == (
        True,
        None,
    )


@pytest.mark.parametrize("threshold", [0, -0.1, 1.5])
def test_a_bad_threshold_is_a_config_error(threshold: float) -> None:
    spec = {"name": "query_repeats_system", "params": {"system": SMOLLM, "threshold": threshold}}
    with pytest.raises(ValueError, match="filter 0 \\('query_repeats_system'\\): bad parameters"):
        validate_specs([spec], "instruction")


# -- together --------------------------------------------------------------------------------------


def test_a_magpie_chain_counts_each_reason() -> None:
    chain = build_filters(
        [
            {"name": "query_empty"},
            {"name": "query_is_answer"},
            {"name": "query_template_tokens"},
            {"name": "query_repeats_system", "params": {"system": SMOLLM}},
        ]
    )
    dropped: list[tuple[str, str]] = []
    for f in chain:
        f.on_drop = lambda item, label, reason: dropped.append((label, reason))
    texts = [
        "How do I reverse a linked list in Python?",
        " ",
        "Sure! Here is a poem about the sea...",
        "What is 2+2?<|im_end|>\n<|im_start|>assistant",
        "You are a helpful AI assistant named SmolLM",
    ]
    kept = run_filters(chain, [rec(t) for t in texts])
    assert [r.instruction for r in kept] == [texts[0]]
    assert dropped == [
        ("query_empty", "empty"),
        ("query_is_answer", "answer"),
        ("query_template_tokens", "template_tokens"),
        ("query_repeats_system", "repeats_system"),
    ]
    assert chain[0].stats == {"total": 5, "kept": 4, "dropped": 1, "dropped_empty": 1}
    assert chain[3].stats == {"total": 2, "kept": 1, "dropped": 1, "dropped_repeats_system": 1}
