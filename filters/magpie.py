"""Magpie's query filters (Xu et al. 2024, seedless generation), one filter per failure mode.

Magpie has no seeds. It sends an aligned chat model only the pre-query template (the system prompt and
the user-turn header) and keeps whatever the model writes as the user's query. The model does not always
write a query, so these filters judge `record.instruction` (that query) and drop:

- `query_empty`: nothing to answer. The model ended the turn at once, or wrote only punctuation.
- `query_is_answer`: an answer rather than a request. The model wrote an assistant turn ("Sure! Here
  is...", "Hello! How can I help you today?") where the user's turn should be.
- `query_template_tokens`: the query runs into chat-template tokens or role headers (`<|im_end|>`,
  `[INST]`, a line that says only `assistant`). The model went on past the end of its turn.
- `query_repeats_system`: the query echoes the system prompt it was given instead of asking something.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable

from filters.base import Filter, register
from generator.records import Record

ANSWER_OPENERS: tuple[str, ...] = (
    "Sure",
    "Certainly",
    "Of course",
    "Absolutely",
    "Here is",
    "Here's",
    "Here are",
    "I'd be happy",
    "I would be happy",
    "As an AI",
    "I'm sorry",
    "I am sorry",
    "Hello! How can I",
    "Hi! How can I",
    "Great question",
    "Thank you for",
)
"""How an assistant turn starts. A query that starts like this is an answer (any case, whole words)."""

# the assistant offering help, anywhere in the text
OFFER_OF_HELP = re.compile(r"\bhow (?:can|may) i (?:help|assist) you\b", re.IGNORECASE)

# chat-template special tokens and role headers of the common templates
TEMPLATE_TOKENS = re.compile(
    r"<\|[^|<>\s]+\|>"  # ChatML, Llama 3, Phi: <|im_start|>, <|eot_id|>, <|user|>, <|assistant|>
    r"|\[/?INST\]|<</?SYS>>"  # Llama 2, Mistral
    r"|</?s>"  # sentence start/end tokens
    r"|<(?:start|end)_of_turn>"  # Gemma
    r"|^[ \t]*(?:assistant|user|system|model|human)[ \t]*:?[ \t]*$",  # a line that is only a role word
    re.IGNORECASE | re.MULTILINE,
)


def _is_blank(char: str) -> bool:
    return char.isspace() or char in string.punctuation or unicodedata.category(char).startswith("P")


@register
class QueryEmptyFilter(Filter):
    """Drop empty queries: nothing, or only whitespace and punctuation ("", "?", "...").

    Magpie's model often ends the user turn at once, leaving the query empty.
    """

    name = "query_empty"

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        if all(_is_blank(c) for c in item.instruction):
            return False, "empty"
        return True


@register
class QueryIsAnswerFilter(Filter):
    """Drop queries that are answers: they start with an assistant's opener ("Sure", "Here is", "I'm
    sorry", ...) or offer help ("How can I help you").

    An aligned model is trained to write the assistant's turn, so it often writes one in the user's
    turn too. Some real queries start this way as well ("Here is my code: why does it fail?"): pass
    `openers` to narrow the list.

    Args:
        openers: the openers; None means `ANSWER_OPENERS`.
    """

    name = "query_is_answer"

    def __init__(self, openers: list[str] | None = None) -> None:
        super().__init__()
        self.openers = [o for o in (ANSWER_OPENERS if openers is None else openers) if o.strip()]
        alternatives = "|".join(re.escape(o.strip()) for o in self.openers)
        # an opener must end at a word's end: "Sure!" is one, "Surely" is not
        self._opener = re.compile(rf"(?:{alternatives})(?!\w)", re.IGNORECASE) if self.openers else None

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        text = item.instruction.strip().replace("\u2019", "'")  # a curly apostrophe reads as a straight one
        if (self._opener is not None and self._opener.match(text)) or OFFER_OF_HELP.search(text):
            return False, "answer"
        return True


@register
class QueryTemplateTokensFilter(Filter):
    """Drop queries holding chat-template special tokens or role headers (`TEMPLATE_TOKENS`).

    The model wrote past the end of the user turn, into the template: an end-of-turn token, the next
    role's header, often the start of its own answer.

    Args:
        tokens: more literal strings to look for (case-sensitive), e.g. another template's tokens.
    """

    name = "query_template_tokens"

    def __init__(self, tokens: Iterable[str] = ()) -> None:
        super().__init__()
        self.tokens = [t for t in tokens if t]

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        text = item.instruction
        if TEMPLATE_TOKENS.search(text) or any(t in text for t in self.tokens):
            return False, "template_tokens"
        return True


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


@register
class QueryRepeatsSystemFilter(Filter):
    """Drop queries that repeat the system prompt the model was given.

    With a system prompt in the pre-query template the model often echoes it ("You are a helpful AI
    assistant named ...") instead of asking something. A query is dropped when it holds the whole system
    prompt (whitespace collapsed, any case, if the prompt has at least 10 characters), or when it has at
    least 3 words and a share of at least `threshold` of them are words of the system prompt.

    The system prompt is `system` or, left empty, the one the query was written under, as the Magpie
    proposer records it on the item (`facts["system"]`: a persona's, or the template's default).

    Args:
        system: the system prompt used when generating (empty: the item's own).
        threshold: the share of the query's words, in (0, 1].
    """

    name = "query_repeats_system"

    def __init__(self, system: str = "", threshold: float = 0.6) -> None:
        super().__init__()
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], not {threshold}")
        self.system = system
        self.threshold = threshold

    def filter(self, item: Record) -> bool | tuple[bool, str]:
        system = self.system or str((item.facts or {}).get("system") or "")
        prompt = " ".join(system.split()).lower()
        if not prompt:
            return True
        query = " ".join(item.instruction.split()).lower()
        if len(prompt) >= 10 and prompt in query:
            return False, "repeats_system"
        words, vocabulary = _words(query), set(_words(system))
        if len(words) >= 3 and sum(w in vocabulary for w in words) / len(words) >= self.threshold:
            return False, "repeats_system"
        return True
