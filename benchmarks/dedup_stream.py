"""The dedup benchmark's synthetic stream: seeded template fills over the seed tasks' vocabulary.

20 templates whose slots take 1-2 words drawn from the vocabulary of the published seed tasks; a
quarter of the items are mutated copies of earlier ones, 2% exact copies.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

TEMPLATES = [
    "Write a {adj} {genre} about {w} and {w}.",
    "Explain how {w} affects {w} in simple terms.",
    "Give me {num} tips for {activity} with {w}.",
    "Summarize the following {doc} about {w} in {num} sentences.",
    "Classify each {w} as {adj} or {adj}.",
    "Translate the {doc} about {w} into {lang}.",
    "What is the difference between {w} and {w}?",
    "Generate a list of {num} {w} related to {w}.",
    "Rewrite the {doc} about {w} to sound more {adj}.",
    "Suggest a {adj} name for a {w} that sells {w}.",
    "Find the {w} in the given {doc} and explain why it is {adj}.",
    "Describe a {adj} day in the life of a {person} who studies {w}.",
    "Compose an email to a {person} asking about {w} and {w}.",
    "Create a {num} step plan for {w} on a {adj} budget.",
    "Is it a good idea to {verb} the {w} before {activity}?",
    "Tell me a {adj} story about a {w} who loves {w}.",
    "List the pros and cons of {w} for a {person}.",
    "How would you {verb} a {w} without any {w}?",
    "Identify the main {w} of the {doc} and explain its {w}.",
    "Design a {adj} {genre} for people interested in {w} and {w}.",
]
SLOTS = {
    "adj": "funny short formal polite creative simple detailed positive negative useful strange modern "
    "classic quiet bright honest gentle bold clever rapid calm serious casual boring complex vague neutral "
    "ancient loud dark friendly curious elegant fragile generous lazy lucky nervous proud rare rich shy "
    "smooth soft spicy sweet tiny tough warm wild wise young",
    "genre": "poem story essay song joke riddle review speech letter article haiku limerick slogan tweet "
    "dialogue monologue ballad fable sonnet",
    "num": "two three four five six seven eight nine ten eleven twelve fifteen twenty",
    "doc": "paragraph article email sentence report tweet poem contract recipe speech review abstract "
    "letter memo essay",
    "lang": "French Spanish German Italian Japanese Korean Hindi Swahili Portuguese Dutch Russian Arabic",
    "person": "teacher nurse pilot farmer student chef lawyer artist child grandparent doctor engineer "
    "musician scientist athlete writer plumber librarian tourist soldier",
    "verb": "clean repair store paint fold sell measure wash recycle wrap freeze sharpen polish test",
    "activity": "running|cooking|studying|saving money|hiking|moving house|learning guitar|painting|"
    "swimming|gardening|writing a novel|training a dog|planning a wedding|starting a business",
}


def seed_instructions(path: Path) -> list[str]:
    return [json.loads(line)["instruction"] for line in path.read_text().splitlines() if line.strip()]


def seed_vocabulary(path: Path) -> list[str]:
    """Words of 4+ letters from the seed tasks (instructions and instances): the slot fillers."""
    words: set[str] = set()
    for line in path.read_text().splitlines():
        if line.strip():
            task = json.loads(line)
            text = (
                task["instruction"]
                + " "
                + " ".join(i["input"] + " " + i["output"] for i in task["instances"])
            )
            words.update(w.lower() for w in re.findall(r"[A-Za-z]{4,}", text))
    return sorted(words)


def synthetic_stream(n: int, vocabulary: Sequence[str], seed: int = 0) -> list[str]:
    """n instructions: fresh template fills, 25% copies with 1-3 word edits, 2% exact copies."""
    rng = random.Random(seed)
    slots = {k: v.split("|") if "|" in v else v.split() for k, v in SLOTS.items()}

    def fill(template: str) -> str:
        def one(m: re.Match[str]) -> str:
            key = m.group(1)
            if key == "w":
                return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 2)))
            return rng.choice(slots[key])

        return re.sub(r"\{(\w+)\}", one, template)

    def mutate(text: str) -> str:
        words = text.split()
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            if op < 0.4:
                words[rng.randrange(len(words))] = rng.choice(vocabulary)
            elif op < 0.7:
                words.insert(rng.randrange(len(words) + 1), rng.choice(vocabulary))
            elif op < 0.85 and len(words) > 1:
                del words[rng.randrange(len(words))]
            elif len(words) > 1:
                i = rng.randrange(len(words) - 1)
                words[i], words[i + 1] = words[i + 1], words[i]
        return " ".join(words)

    out: list[str] = []
    for _ in range(n):
        r = rng.random()
        if out and r < 0.25:
            out.append(mutate(rng.choice(out)))
        elif out and r < 0.27:
            out.append(rng.choice(out))
        else:
            out.append(fill(rng.choice(TEMPLATES)))
    return out
