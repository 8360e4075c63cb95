"""A teacher that answers from a Python function: for unit tests and the pipeline benchmark.

It goes through the same interface as the real backends, so everything downstream of the teacher
(parsing, filters, the pool, the writer) is exercised unchanged. It is never a default in a real run.
"""

from __future__ import annotations

import random
import re
import threading
import zlib
from collections.abc import Callable
from itertools import accumulate

from generator.teachers.base import TeacherRequest, TeacherResponse
from generator.teachers.scripted_domains import domain_answer

Script = Callable[[TeacherRequest], "str | TeacherResponse"]


class ScriptedTeacher:
    backend = "scripted"

    def __init__(self, script: Script | None = None, model: str = "scripted") -> None:
        self.script = script or synthetic_answer
        self.model = model
        self.calls = 0

    async def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        out = []
        for request in requests:
            self.calls += 1
            answer = self.script(request)
            key = request.cache_key(self.backend, self.model)
            if isinstance(answer, str):
                answer = TeacherResponse(
                    text=answer,
                    prompt_tokens=len(request.text().split()),
                    completion_tokens=len(answer.split()),
                    request_key=key,
                )
            else:
                answer = answer.model_copy(update={"request_key": key})
            out.append(answer)
        return out

    async def close(self) -> None:
        return None


# -- a synthetic teacher: plausible text for each kind of prompt, from a seeded vocabulary -------------

_VERBS = "Write Explain Summarize List Describe Compare Classify Suggest Rewrite Translate Outline Draft Plan"
_VERBS += " Evaluate Identify Create Design Propose Analyze Convert Estimate Rank Critique Generate Recommend"
_ADJS = "short detailed formal casual persuasive friendly technical simple creative concise balanced critical"
_ADJS += " historical scientific practical humorous polite neutral surprising careful modern classic rural"
_NOUNS = "email poem recipe story plan review summary essay letter report speech slogan riddle lesson quiz"
_NOUNS += " budget schedule itinerary checklist headline tweet proposal argument dialogue outline definition"
_TOPICS = "gardening taxes volcanoes chess startups nutrition jazz recycling astronomy bicycles coffee robots"
_TOPICS += " elections sleep insurance tides bees marathons origami vaccines bridges deserts libraries trains"
_AUDIENCES = [
    "a child",
    "a manager",
    "a tourist",
    "a nurse",
    "a student",
    "a farmer",
    "a retiree",
    "an engineer",
]


def _vocabulary(size: int = 3000) -> tuple[list[str], list[float]]:
    """Pseudo-words with Zipf weights, like the long tail of words in real instructions."""
    rng = random.Random(0)
    syllables = [
        "ba",
        "ko",
        "ri",
        "mu",
        "te",
        "sa",
        "lo",
        "vi",
        "ne",
        "du",
        "pa",
        "gi",
        "fo",
        "ze",
        "ha",
        "mi",
        "ru",
        "to",
        "ka",
        "ly",
    ]
    words = list(dict.fromkeys("".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(size * 2)))
    words = (_ADJS + " " + _NOUNS + " " + _TOPICS).split() + words[:size]
    return words, [1.0 / (rank + 10) for rank in range(len(words))]


_WORDS, _WEIGHTS = _vocabulary()
_CUM_WEIGHTS = list(accumulate(_WEIGHTS))  # what `choices(weights=...)` would rebuild on every call


class _PerThread(threading.local):
    """One generator per thread, reseeded for every answer, so an answer depends on its request alone.

    Shared between threads (the test server answers on several), one thread's reseed would land
    between another's draws.
    """

    def __init__(self) -> None:
        self.rng = random.Random()


_PER_THREAD = _PerThread()


def synthetic_instruction(rng: random.Random) -> str:
    """A random but well-formed instruction; distinct draws rarely overlap by ROUGE-L > 0.7.

    Few fixed words: a shared template would make every pair look alike to ROUGE-L.
    """
    body = " ".join(rng.choices(_WORDS, cum_weights=_CUM_WEIGHTS, k=rng.randint(5, 10)))
    return f"{rng.choice(_VERBS.split())} the {body} for {rng.choice(_AUDIENCES)}"


def _flawed(rng: random.Random, shown: list[str]) -> str | None:
    """Now and then, the mistakes real teachers make: echo an example, write too little, off-limits asks."""
    roll = rng.random()
    if roll < 0.08 and shown:
        return rng.choice(shown)  # a near-copy of an in-context task: ROUGE-L drops it
    if roll < 0.12:
        return "Say hello."  # too short
    if roll < 0.15:
        return f"Draw a picture of {rng.choice(_TOPICS.split())} for a school poster"  # blacklisted words
    return None


# The end of a chat template's pre-query text (Magpie): ChatML, Llama 3, Mistral, Gemma user turns.
_USER_TURN = re.compile(
    r"(<\|im_start\|>user|<\|start_header_id\|>user<\|end_header_id\|>|\[INST\]|<start_of_turn>user)\s*$"
)
_SYSTEM_TURN = re.compile(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", re.S)


def _magpie_query(text: str, rng: random.Random) -> str | None:
    """A user query for a Magpie pre-query prompt, now and then with a flaw Magpie's filters catch."""
    if not _USER_TURN.search(text):
        return None
    roll = rng.random()
    if roll < 0.05:
        return ""  # the model closed the turn at once
    if roll < 0.10:
        return f"Sure! Here is a {rng.choice(_ADJS.split())} answer about {rng.choice(_TOPICS.split())}."
    if roll < 0.14:
        return f"{synthetic_instruction(rng)}?<|im_end|>\n<|im_start|>assistant"  # ran past its turn
    system = _SYSTEM_TURN.search(text)
    if roll < 0.18 and system:
        return system.group(1).strip()  # echoes its system prompt
    return f"Could you {synthetic_instruction(rng).lower()}?"


def synthetic_answer(request: TeacherRequest) -> str:
    """Answer any prompt this project sends, deterministically from the prompt and its seed."""
    text = request.text()
    # Seeded by a checksum of the prompt: a fresh `Random(text)` costs about 25 us (it hashes the
    # prompt with SHA-512 and builds a new generator), more than the rest of the answer.
    rng = _PER_THREAD.rng
    rng.seed(zlib.crc32(f"|{request.params.seed}".encode(), zlib.crc32(text.encode())))
    tail = text.rstrip()
    query = _magpie_query(text, rng)
    if query is not None:
        return query
    domain = domain_answer(text, rng)  # first: a domain's judge prompt also ends in "Verdict:"
    if domain is not None:
        return domain
    evolved = _evolve_answer(tail, rng)
    if evolved is not None:
        return evolved
    if tail.endswith("Is it classification?"):
        return rng.choice([" Yes", " No"])
    if tail.endswith("Instruction:"):  # Alpaca: continue "N. Instruction:" blocks
        first = int(re.findall(r"(\d+)\. Instruction:$", tail)[0])
        blocks = []
        for idx in range(first, first + rng.randint(3, 8)):
            blocks.append(
                f"{idx}. Instruction: {synthetic_instruction(rng)}\n{idx}. Input:\n<noinput>\n"
                f"{idx}. Output:\nHere is a {rng.choice(_ADJS.split())} answer."
            )
        return " " + "\n###\n".join(b.split(" ", 2)[2] if i == 0 else b for i, b in enumerate(blocks))
    if re.search(r"\n\d+\.$", tail):  # Self-Instruct: continue the numbered list
        first = int(re.findall(r"(\d+)\.$", tail)[0])
        shown = re.findall(r"^\d+\. (.+)$", tail, flags=re.M)
        items = [_flawed(rng, shown) or synthetic_instruction(rng) for _ in range(rng.randint(3, 7))]
        return " " + "\n".join(f"{first + i}. {item}" if i else item for i, item in enumerate(items))
    if "Class label:" in text:
        return "Class label: Yes\nText: a sample input\nClass label: No\nText: another sample input"
    n = rng.randint(1, 3)
    return "".join(
        f"{'' if i == 0 else f'Example {i + 1}'}\nInput: sample input {rng.randint(0, 10**6)}\n"
        f"Output: sample output {rng.randint(0, 10**6)}\n"
        for i in range(n)
    )


# -- Evol-Instruct prompts (generator/tasks/rewrite.py, answer.py, judge.py) --------------------------------------

_CONSTRAINTS = (
    "Answer in at most 120 words.",
    "Give two concrete examples.",
    "Explain each step of your reasoning.",
    "Compare at least three options before choosing one.",
    "Use a table with one row per option.",
    "Mention one common mistake and how to avoid it.",
)


def _evolve_answer(tail: str, rng: random.Random) -> str | None:
    """Answers to the rewrite, equality and score prompts; None for any other prompt."""
    if tail.endswith("#Rewritten Prompt#:"):  # in depth: the original plus one more demand
        original = tail.split("#Original Prompt#:")[-1].rsplit("#Rewritten Prompt#:", 1)[0].strip()
        return f"{original} {rng.choice([c for c in _CONSTRAINTS if c not in original] or _CONSTRAINTS)}"
    if tail.endswith("#New Prompt#:"):  # in breadth: a fresh instruction
        return synthetic_instruction(rng)
    if tail.endswith("Verdict:"):
        return rng.choice(["Not Equal", "Not Equal", "Not Equal", "Equal"])
    if tail.endswith("(1-6):"):
        return str(rng.randint(2, 6))
    return None
