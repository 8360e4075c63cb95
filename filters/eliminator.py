"""The Evol-Instruct eliminator: each rule is its own filter with its own drop reason.

The paper's four rules (Xu et al. 2023, §3; `shared/prior-art.md` §3.4):
  1. `evol_no_gain`        no information gain: the teacher judged the evolved prompt equal to the
                           original (the verdict is stored on the record by the judge task, so this
                           filter stays pure);
  2. `evol_hard_to_answer` the answer says "sorry" and is short (< 80 words);
  3. `evol_empty_answer`   the answer is only punctuation and stop words;
  4. `evol_prompt_leak`    the evolved prompt copies the rewriter template's own words.
h2o-wizardlm's cheap rules (`change_approved()`, §3.6), which need no teacher call:
  `evol_unchanged`, `evol_too_many_newlines`, `evol_too_many_items`, `evol_assistant_boilerplate`.

Each filter's `phase` says what must be on the record before it can judge, so the evolution stage runs
the cheap ones before it pays for the judge and the answer: "instruction" rules first, then "verdict",
then "answer".
"""

from __future__ import annotations

import re
import string

from filters.base import Filter, Judgement, register
from generator.records import Record


def _normalise(text: str) -> str:
    return " ".join(text.lower().split()).strip(string.punctuation + " ")


def _answer(item: Record) -> str:
    return item.instances[0].output if item.instances else ""


# -- rules on the evolved instruction (no teacher call) ---------------------------------------------


@register
class Unchanged(Filter):
    """The rewrite is the original again (case, spacing and end punctuation aside)."""

    name = "evol_unchanged"

    def filter(self, item: Record) -> Judgement:
        parent = item.parent_instruction
        if parent is not None and _normalise(parent) == _normalise(item.instruction):
            return False, "unchanged"
        return True


# Our templates' markers, and WizardLM's, which teachers trained on Evol data echo back.
LEAK_PHRASES = (
    "original prompt",
    "rewritten prompt",
    "new prompt",
    "given prompt",
    "created prompt",
    "#original",
    "#rewritten",
    "#new prompt",
    "#given",
)


@register
class PromptLeak(Filter):
    """Rule 4: the evolved prompt copies the rewriter template's own words (its markers)."""

    name = "evol_prompt_leak"

    def __init__(self, phrases: list[str] | tuple[str, ...] = LEAK_PHRASES) -> None:
        super().__init__()
        self.phrases = tuple(p.lower() for p in phrases)

    def filter(self, item: Record) -> Judgement:
        text = " ".join(item.instruction.lower().split())
        if any(p in text for p in self.phrases):
            return False, "prompt_leak"
        return True


@register
class TooManyNewlines(Filter):
    """More than `ratio` newlines per space: a list or fragment dump, not an instruction (h2o)."""

    name = "evol_too_many_newlines"

    def __init__(self, ratio: float = 2.0) -> None:
        super().__init__()
        self.ratio = ratio

    def filter(self, item: Record) -> Judgement:
        text = item.instruction
        if text.count("\n") > self.ratio * text.count(" "):
            return False, "too_many_newlines"
        return True


_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


@register
class TooManyItems(Filter):
    """More than `max_items` list items making up the whole text (one lead-in line allowed).

    h2o drops a prompt whose every line is a "- " item once there are more than 10; numbered and other
    bullets count too here. A long list inside a real instruction with prose around it is kept.
    """

    name = "evol_too_many_items"

    def __init__(self, max_items: int = 10) -> None:
        super().__init__()
        self.max_items = max_items

    def filter(self, item: Record) -> Judgement:
        lines = [line for line in item.instruction.splitlines() if line.strip()]
        items = sum(1 for line in lines if _LIST_ITEM.match(line))
        if items > self.max_items and items >= len(lines) - 1:
            return False, "too_many_list_items"
        return True


# The assistant talking about itself, or refusing, instead of writing a prompt. h2o also drops any
# mention of "ai assistant"; that would drop fair prompts such as "Design an AI assistant for ...".
BOILERPLATE_PHRASES = (
    "as an ai",
    "i am an ai",
    "i'm an ai",
    "as a language model",
    "ai language model",
    "how can i assist",
    "how may i assist",
    "i hope this helps",
)
_REFUSAL = re.compile(r"^\s*(?:i'm sorry|i am sorry|sorry,|i apologi[sz]e|i cannot|i can't)", re.IGNORECASE)


@register
class AssistantBoilerplate(Filter):
    """The rewrite is assistant talk ("As an AI ...", "How can I assist") or a refusal, not a prompt."""

    name = "evol_assistant_boilerplate"

    def __init__(self, phrases: list[str] | tuple[str, ...] = BOILERPLATE_PHRASES) -> None:
        super().__init__()
        self.phrases = tuple(p.lower() for p in phrases)

    def filter(self, item: Record) -> Judgement:
        text = " ".join(item.instruction.lower().split()).replace("’", "'")
        parent = (item.parent_instruction or "").lower()
        # A phrase the original already had is content, not boilerplate the rewriter added.
        if any(p in text and p not in parent for p in self.phrases):
            return False, "assistant_boilerplate"
        if _REFUSAL.match(text) and not _REFUSAL.match(parent):
            return False, "assistant_boilerplate"
        return True


# -- rule 1: the teacher's equality verdict -----------------------------------------------------------


@register
class NoInformationGain(Filter):
    """Rule 1: the judge found the evolved prompt equal to the original. No verdict: kept."""

    name = "evol_no_gain"
    phase = "verdict"

    def filter(self, item: Record) -> Judgement:
        if item.equal_to_parent is True:
            return False, "no_information_gain"
        return True


# -- rules 2 and 3: on the answer ---------------------------------------------------------------------


@register
class HardToAnswer(Filter):
    """Rule 2: the answer contains "sorry" and has fewer than `max_words` words."""

    name = "evol_hard_to_answer"
    phase = "answer"

    def __init__(self, max_words: int = 80) -> None:
        super().__init__()
        self.max_words = max_words

    def filter(self, item: Record) -> Judgement:
        answer = _answer(item)
        if re.search(r"\bsorry\b", answer, re.IGNORECASE) and len(answer.split()) < self.max_words:
            return False, "hard_to_answer"
        return True


# English function words (the usual stop-word list, as in NLTK's); an answer of only these says nothing.
_STOP_WORDS = """
    a about above after again against ain all am an and any are aren't as at be because been before being
    below between both but by can couldn't did didn't do does doesn't doing don't down during each few for
    from further had hadn't has hasn't have haven't having he her here hers herself him himself his how i
    if in into is isn't it it's its itself just ll m ma me mightn't more most mustn't my myself needn't no
    nor not now o of off on once only or other our ours ourselves out over own re s same shan't she she's
    should should've shouldn't so some such t than that that'll the their theirs them themselves then
    there these they this those through to too under until up ve very was wasn't we were weren't what when
    where which while who whom why will with won't wouldn't y you you'd you'll you're you've your yours
    yourself yourselves
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


@register
class EmptyAnswer(Filter):
    """Rule 3: the answer holds nothing but punctuation and stop words (or nothing at all)."""

    name = "evol_empty_answer"
    phase = "answer"

    def filter(self, item: Record) -> Judgement:
        words = _WORD.findall(_answer(item).lower().replace("’", "'"))
        if all(w in STOP_WORDS for w in words):
            return False, "empty_answer"
        return True
