"""The medical domain's pure checks on answer text: no teacher, no index (`medical.py` uses them).

- `cited_ids` reads the passage ids an answer cites: `[P03]`, `[P03, P07]`, `[P03][P07]`;
- `is_not_covered` recognises the fixed "the references do not cover this question" answer, which the
  domain keeps rather than an invented one;
- `quantities` / `unsupported_numbers` read every number of an answer with its unit ("500 mg", "38 °C",
  "4 to 6 hours") and name those no cited passage states: an invented dose, duration or threshold;
- `states_certain_diagnosis` finds "you have X"-style certainty, which an answer to a patient must not
  give (a leaflet says what a symptom may mean and when to see someone, never what the reader has);
- `lexical_support` measures how much of an answer's wording the cited passages contain.

Everything here is a heuristic on words, and says so: it cannot see a negation flipped ("do not take"
against "take"), a claim assembled from words that each appear somewhere in a passage, or a number
written out as a word with no unit after it. The teacher as judge (`support_check: judge`) is the check
that reads meaning; these are the checks that cannot be talked round.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

__all__ = [
    "Quantity",
    "cited_ids",
    "content_stems",
    "is_not_covered",
    "is_patient_question",
    "lexical_support",
    "quantities",
    "states_certain_diagnosis",
    "strip_citations",
    "unsupported_numbers",
]


def _words(text: str) -> frozenset[str]:
    """A word list written as one string (easier to read and extend than a list of literals)."""
    return frozenset(text.split())


# -- citations ------------------------------------------------------------------------------------------

# A bracket whose parts (split at , or ;) all look like ids is a citation; "[see above]" and a markdown
# link's "[text](url)" are not.
_BRACKET = re.compile(r"\[([^\[\]\n]{1,200})\](?!\()")
# an id is what `references.Passage` allows (no whitespace or brackets: "P03", "first_aid#1"), less
# the separators, with a letter or digit in it ("[...]" is an ellipsis)
_ID = re.compile(r"(?=[^,;]*[A-Za-z0-9])[^\s\[\],;]+")


def _bracket_ids(inside: str) -> list[str] | None:
    parts = [part.strip() for part in re.split(r"[,;]", inside)]
    return parts if parts and all(_ID.fullmatch(part) for part in parts) else None


def cited_ids(text: str) -> list[str]:
    """The ids the answer cites, in order of first citation, each once."""
    found: list[str] = []
    for match in _BRACKET.finditer(text):
        for pid in _bracket_ids(match[1]) or []:
            if pid not in found:
                found.append(pid)
    return found


def strip_citations(text: str) -> str:
    """The answer without its citation markers (their ids hold digits that are not claims)."""
    return _BRACKET.sub(lambda m: " " if _bracket_ids(m[1]) is not None else m[0], text)


# -- "the references do not cover this question" ---------------------------------------------------------

_NOT_COVERED = re.compile(
    r"^(?:the )?(?:provided |given |available |cited )?references (?:do not|don t|does not) cover "
    r"(?:this|the|your) (?:question|request)"
)
# what may follow the sentence: a short pointer to someone who can answer, and nothing that claims
_REFERRAL = re.compile(r"\b(?:doctor|gp|pharmacist|nurse|clinician|midwife|health ?care|professional)s?\b")
REFERRAL_WORDS = 30


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", text.lower()).split())


def is_not_covered(text: str) -> bool:
    """Is the answer the fixed not-covered sentence (any case or punctuation), alone or followed by a
    short advice to ask a clinician (no numbers in it: a dose there would be an uncited claim)?"""
    plain = _plain(strip_citations(text))
    match = _NOT_COVERED.match(plain)
    if match is None:
        return False
    rest = plain[match.end() :].strip()
    if not rest:
        return True
    return len(rest.split()) <= REFERRAL_WORDS and not re.search(r"\d", rest) and bool(_REFERRAL.search(rest))


# -- numbers and their units --------------------------------------------------------------------------------

# unit spelling -> the one name it is compared by ("4 grams" states what "4 g" does; "4000 mg" does not)
_UNITS = {
    "mg/kg": ("mg/kg", "milligrams per kilogram", "milligram per kilogram"),
    "mmol/l": ("mmol/l", "millimoles per litre", "millimoles per liter"),
    "mg/dl": ("mg/dl",),
    "mmhg": ("mmhg", "mm hg"),
    "mcg": ("mcg", "µg", "μg", "micrograms", "microgram"),
    "mg": ("mg", "milligrams", "milligram", "milligrammes", "milligramme"),
    "kg": ("kg", "kilograms", "kilogram", "kilos", "kilo"),
    "g": ("g", "grams", "gram", "grammes", "gramme"),
    "ml": ("ml", "millilitres", "millilitre", "milliliters", "milliliter"),
    "l": ("l", "litres", "litre", "liters", "liter"),
    "°c": ("°c", "° c", "degrees celsius", "degrees c", "degree celsius", "celsius", "c"),
    "°f": ("°f", "° f", "degrees fahrenheit", "degrees f", "fahrenheit", "f"),
    "%": ("%", "percent", "per cent"),
    "iu": ("iu", "international units", "units", "unit"),
    "minute": ("minutes", "minute", "mins", "min"),
    "hour": ("hours", "hour", "hrs", "hr", "h"),
    "day": ("days", "day"),
    "week": ("weeks", "week", "wks"),
    "month": ("months", "month"),
    "year": ("years", "year", "yrs"),
    "times": ("times",),
    "tablet": ("tablets", "tablet"),
    "capsule": ("capsules", "capsule"),
    "puff": ("puffs", "puff"),
    "drop": ("drops", "drop"),
    "dose": ("doses", "dose"),
    "breath": ("breaths", "breath"),
    "beat": ("beats", "beat", "bpm"),
}
_ALIAS = {alias: unit for unit, aliases in _UNITS.items() for alias in aliases}
_ATTACHED_ONLY = {"c", "f"}  # "38C" is a temperature; in "38 C" or "5 f" the letter may be anything
_UNIT_RE = "|".join(re.escape(a) for a in sorted(_ALIAS, key=len, reverse=True))
_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
_WORD_VALUE = {word: str(n) for n, word in enumerate(_WORDS, start=1)}
# a number (1,000 and 0.5 too) or a number word, then maybe a unit ("5-day", "38°C", "4 g", "2 tablets")
_QUANTITY = re.compile(
    rf"(?<![\w.,])(?P<num>\d{{1,3}}(?:,\d{{3}})+(?!\d)|\d+(?:\.\d+)?|(?P<word>{'|'.join(_WORDS)}))"
    rf"(?:\s?-?\s?(?P<unit>{_UNIT_RE})(?![a-z]))?",
    re.IGNORECASE,
)
_RANGE_GAP = re.compile(r"\s*(?:-|–|—|,|to|or|and)\s*", re.IGNORECASE)  # "4 to 6 hours", "1-2 tablets"
_LIST_MARKER = re.compile(r"^\s*\d+[.)]\s+", re.MULTILINE)  # "1. Rest" numbers a list, not a claim


class Quantity(NamedTuple):
    value: str  # normalised: "1000" for "1,000", "1" for "1.0"
    unit: str | None  # normalised (see _UNITS); None for a number alone

    def __str__(self) -> str:
        return self.value if self.unit is None else f"{self.value} {self.unit}"


def _value(number: str) -> str:
    number = _WORD_VALUE.get(number.lower(), number).replace(",", "")
    try:
        return format(Decimal(number).normalize(), "f")
    except InvalidOperation:  # pragma: no cover - the regex admits only numbers
        return number


def quantities(text: str) -> list[Quantity]:
    """Every number of the text with its unit. The first number of a range takes the range's unit
    ("4 to 6 hours" states 4 hours and 6 hours). A number word counts only with a unit ("two tablets",
    "one or two tablets"): alone, "one" is rarely a number ("no one", "one of")."""
    text = _LIST_MARKER.sub(" ", strip_citations(text))
    matches = list(_QUANTITY.finditer(text))
    units: list[str | None] = []
    for m in matches:
        raw = (m["unit"] or "").lower()
        attached = m.end("num") == m.start("unit")
        units.append(_ALIAS[raw] if raw and (attached or raw not in _ATTACHED_ONLY) else None)
    for i in range(len(matches) - 2, -1, -1):  # right to left, so "1, 2 or 3 days" passes the unit along
        gap = text[matches[i].end() : matches[i + 1].start()]
        if units[i] is None and units[i + 1] is not None and _RANGE_GAP.fullmatch(gap):
            units[i] = units[i + 1]
    return [
        Quantity(_value(m["num"]), unit)
        for m, unit in zip(matches, units, strict=True)
        if unit or not m["word"]
    ]


def unsupported_numbers(answer: str, passages: Iterable[str]) -> list[str]:
    """The answer's numbers that no cited passage states: with a unit, the same number with the same
    unit; alone, the same number with any unit or none. Each listed once, as written normalised."""
    stated = [q for text in passages for q in quantities(text)]
    values = {q.value for q in stated}
    missing: list[str] = []
    for q in quantities(answer):
        ok = q in stated if q.unit is not None else q.value in values
        if not ok and str(q) not in missing:
            missing.append(str(q))
    return missing


# -- diagnostic certainty -----------------------------------------------------------------------------------

_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|me|my|myself|we|our)\b", re.IGNORECASE)
_CERTAIN = re.compile(
    r"\byou (?:definitely|certainly|clearly|obviously|surely) (?:have|are|suffer)\b"
    r"|\byou(?: are|'re) (?:suffering from|diagnosed with)\b"
    r"|\b(?:this|it|that)(?: is|'s) (?:definitely|certainly|clearly|obviously|undoubtedly|surely)\b"
    r"|\bthere is no doubt\b|\bwithout (?:a )?doubt\b|\byour diagnosis is\b",
    re.IGNORECASE,
)
_YOU_HAVE = re.compile(r"\byou(?: have|'ve got| have got|'ve)\s+(\w+)", re.IGNORECASE)
# "if you have a fever", "do you have", "any medicines you have": a condition, a question, a relative
_HEDGE_BEFORE = _words(
    "if when whenever whether unless while until once do does because since after before where who "
    "that which what any case long think feel suspect may might"
)
# "you have to", "you have been", "you have any": not a diagnosis
_NOT_A_CONDITION = _words(
    "to been had taken used tried already ever never any no questions question concerns just recently"
)


def is_patient_question(instruction: str, kind: str | None) -> bool:
    """Is this a patient's own question (the kind says so, or the patient writes in the first person)?"""
    return kind == "patient_question" or bool(_FIRST_PERSON.search(instruction))


def states_certain_diagnosis(answer: str) -> str | None:
    """The phrase that tells the reader what they have, as a certainty; None when there is none."""
    text = strip_citations(answer)
    strong = _CERTAIN.search(text)
    if strong:
        return strong[0]
    for m in _YOU_HAVE.finditer(text):
        clause = re.split(r"[.;:!?,\n]", text[: m.start()])[-1].lower().split()
        if m[1].lower() in _NOT_A_CONDITION or m[1].lower().endswith("ed") or _HEDGE_BEFORE & set(clause):
            continue
        return re.split(r"[.;:!?,\n]", text[m.start() :])[0][:80].strip()
    return None


# -- lexical support ------------------------------------------------------------------------------------------

_STOPWORDS = _words(
    "a about above after again against all am an and any are as at be because been before being below "
    "between both but by can cannot could did do does doing don down during each either else etc few for "
    "from further had has have having he her here hers him his how i if in into is it its itself just me "
    "more most much must my no nor not now of off on once only or other our ours out over own per same "
    "she should so some such than that the their theirs them then there these they this those through "
    "to too under until up upon very via was we were what when where whether which while who whom whose "
    "why will with within without would you your yours yourself s t re ve ll d m"
)
# Words that link, hedge or point to a clinician rather than claim something a passage must state: the
# answering prompt asks for hedged wording and advice to seek care, and neither should count against it.
_CONNECTIVES = _words(
    "also however therefore thus hence although though yet still even well overall additionally "
    "furthermore moreover instead rather especially particularly mainly mostly generally usually "
    "typically often sometimes may might likely possibly probably important note please according "
    "reference references passage passages cited based answer question information example including "
    "include includes like such first second finally shall way ways get gets need needs "
    "doctor gp pharmacist nurse clinician healthcare professional provider consult contact speak "
    "talk ask advice seek"
)
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def stem(word: str) -> str:
    """A crude suffix strip, applied alike to answer and passages ("infections"/"infected" ->
    "infect", "reduces"/"reducing" -> "reduc"); a real stemmer would add a dependency for little."""
    word = word.lower().removesuffix("'s")
    for suffix, keep in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4 and not word.endswith(("ss", "us", "is")):
            word = word[: -len(suffix)] + keep
            break
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


def content_stems(text: str) -> set[str]:
    """The text's content words, stemmed: no stopwords, connectives, numbers or citation ids."""
    words = _WORD.findall(strip_citations(text).lower())
    return {stem(w) for w in words if w not in _STOPWORDS and w not in _CONNECTIVES and len(w) > 1}


def _supported(word: str, stems: set[str]) -> bool:
    if word in stems:
        return True
    # "infect" vs "infection": one is the start of the other, and long enough not to be chance
    return len(word) >= 5 and any(s.startswith(word) or (len(s) >= 5 and word.startswith(s)) for s in stems)


def lexical_support(answer: str, passages: Iterable[str]) -> tuple[float, list[str]]:
    """The share of the answer's content words that the passages contain, and the missing ones (sorted).
    An answer with no content words at all is fully supported (there is nothing to check)."""
    words = content_stems(answer)
    stems = set().union(*(content_stems(text) for text in passages))
    missing = sorted(w for w in words if not _supported(w, stems))
    share = 1.0 if not words else (len(words) - len(missing)) / len(words)
    return round(share, 3), missing
