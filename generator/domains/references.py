"""The medical domain's reference corpus: passages read from a user's folder, searched with BM25.

A medical answer is kept only when the passages it cites support it, so the passages are the ground
truth of the domain. This module reads them (`load_corpus`), names their content (`corpus_digest`)
and retrieves the ones a question needs (`ReferenceIndex.search`).

- **Reading.** `--references DIR` holds `.jsonl` files (one `{"id", "title", "text"}` per line),
  `.txt` files (one passage each) and `.md` files (one passage per `#`/`##` section). Any problem (a
  missing or empty folder, a bad line, a duplicate id, an empty text) is a `CorpusError` raised
  before any teacher call, naming the file (and line) at fault.
- **Indexing.** The BM25 index (the `bm25s` library: its tokenizer, English stopwords, the Snowball
  stemmer) is built once per corpus content and saved under `<cache dir>/bm25/<digest>/`, next to the
  request cache: a rerun on the same passages loads it, an edited corpus gets a new one.
- **Searching.** Scores every passage and returns the best, ties in corpus order, so the same
  question always retrieves the same passages (and the request cache answers a rerun).

Passage ids are what answers cite (`[P03]`), so an id holds no whitespace and no square brackets.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import shutil
import tempfile
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["CorpusError", "Passage", "ReferenceIndex", "corpus_digest", "load_corpus"]

log = logging.getLogger("synth_instruct")

SUFFIXES = (".jsonl", ".md", ".txt")
# Written next to a saved index; an index saved under other settings is rebuilt, not trusted.
INDEX_FORMAT = "bm25s/en-stopwords/snowball-english/title+text/v1"
_META = "passages.json"
_ID_UNSAFE = re.compile(r"[\s\[\]]+")
_HEADING = re.compile(r"^(#{1,2})\s+(.*?)\s*#*\s*$")


class CorpusError(ValueError):
    """A reference corpus that cannot be used; the message says which file (and line) and why."""


class Passage(BaseModel):
    """One reference passage: what an answer cites (`id`) and what it may claim (`text`)."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    id: str = Field(min_length=1, pattern=r"^[^\s\[\]]+$")
    title: str
    text: str = Field(min_length=1)


# --- reading ------------------------------------------------------------------------------------


def _file_id(path: Path) -> str:
    return _ID_UNSAFE.sub("_", path.stem)


def _file_title(path: Path) -> str:
    return re.sub(r"[_-]+", " ", path.stem).strip()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 (byte offset {exc.start})") from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot read: {exc.strerror}") from None


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg'].lower()}" for e in exc.errors()
    )


def _jsonl_passages(path: Path) -> list[Passage]:
    passages = []
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{where}: bad JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(row, dict):
            raise CorpusError(f"{where}: expected a JSON object with id, title, text")
        missing = {"id", "title", "text"} - set(row)
        if missing:
            raise CorpusError(f"{where}: missing field(s) {', '.join(sorted(missing))}")
        if isinstance(row["text"], str) and not row["text"].strip():
            raise CorpusError(f"{where}: empty text (passage {row['id']!r})")
        try:
            passage = Passage.model_validate(row)
        except ValidationError as exc:
            raise CorpusError(f"{where}: {_describe(exc)}") from None
        passages.append(
            passage.model_copy(update={"title": passage.title.strip(), "text": passage.text.strip()})
        )
    return passages


def _markdown_sections(text: str) -> list[tuple[str | None, str]]:
    """(heading or None, body) for the text before the first heading and each `#`/`##` section."""
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match:
            sections.append((match[2], []))
        else:
            sections[-1][1].append(line)
    return [(heading, "\n".join(body).strip()) for heading, body in sections]


def _file_passages(path: Path) -> list[Passage]:
    text = _read_text(path)
    if path.suffix.lower() == ".md":
        # A heading with no text under it (a document title above its `##` sections) is not a passage.
        sections = [(h, body) for h, body in _markdown_sections(text) if body]
        if not sections:
            raise CorpusError(f"{path}: empty text (no text under any heading)")
        if len(sections) > 1 or sections[0][0] is not None:
            return [
                Passage(id=f"{_file_id(path)}#{n}", title=heading or _file_title(path), text=body)
                for n, (heading, body) in enumerate(sections, start=1)
            ]
    if not text.strip():
        raise CorpusError(f"{path}: empty text")
    return [Passage(id=_file_id(path), title=_file_title(path), text=text.strip())]


def load_corpus(folder: Path) -> list[Passage]:
    """Every passage under `folder` (searched recursively), in path order then file order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"{folder}/: no such folder (--references must name a folder of passages)")
    # Hidden files and folders (.git, editor swap files) are not references.
    files = sorted(
        (
            p
            for p in folder.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        ),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    passages: list[Passage] = []
    first_seen: dict[str, Path] = {}
    for path in files:
        if path.suffix.lower() not in SUFFIXES:
            continue
        found = _jsonl_passages(path) if path.suffix.lower() == ".jsonl" else _file_passages(path)
        for passage in found:
            if passage.id in first_seen:
                raise CorpusError(
                    f"{path}: duplicate passage id {passage.id!r} (first in {first_seen[passage.id]})"
                )
            first_seen[passage.id] = path
            passages.append(passage)
    if not passages:
        others = [p.name for p in files if p.suffix.lower() not in SUFFIXES]
        ignored = f"; ignored {len(others)} other file(s), e.g. {others[0]}" if others else ""
        raise CorpusError(
            f"{folder}/: no passages found (.txt, .md or .jsonl files with id, title, text){ignored}"
        )
    return passages


def corpus_digest(passages: list[Passage]) -> str:
    """sha256 over the passages' ids, titles and texts, in order: what the cached index is keyed by."""
    payload = json.dumps([[p.id, p.title, p.text] for p in passages], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


# --- indexing and search ------------------------------------------------------------------------

_STEMMER = Stemmer.Stemmer("english")


def _tokens(texts: list[str]) -> list[list[str]]:
    tokens: list[list[str]] = bm25s.tokenize(
        texts, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False
    )
    return tokens


def build_index(passages: list[Passage]) -> bm25s.BM25:
    """A BM25 index over each passage's title and text (the title carries the topic's own words)."""
    retriever = bm25s.BM25()
    retriever.index(_tokens([f"{p.title}\n{p.text}" for p in passages]), show_progress=False)
    return retriever


def _meta(passages: list[Passage]) -> dict[str, object]:
    return {"format": INDEX_FORMAT, "ids": [p.id for p in passages]}


def _load_cached(folder: Path, passages: list[Passage]) -> bm25s.BM25 | None:
    try:
        meta = json.loads((folder / _META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta != _meta(passages):
        return None
    return bm25s.BM25.load(str(folder), show_progress=False)


def _save(retriever: bm25s.BM25, passages: list[Passage], final: Path) -> None:
    """Write the index to a temporary folder, then rename it into place, so a reader never sees half."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        retriever.save(str(tmp), show_progress=False)
        (tmp / _META).write_text(json.dumps(_meta(passages)), encoding="utf-8")
        if final.exists():  # stale (another format): replace it
            shutil.rmtree(final, ignore_errors=True)
        # Another process may have saved the same index first: theirs is as good as ours.
        with contextlib.suppress(OSError):
            tmp.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class ReferenceIndex:
    """The corpus and its BM25 index, opened once in the driver process."""

    def __init__(self, passages: list[Passage], retriever: bm25s.BM25, digest: str) -> None:
        self.passages = passages
        self.by_id = {p.id: p for p in passages}
        self.digest = digest
        self._retriever = retriever

    @classmethod
    def open(cls, folder: Path, cache_dir: Path) -> ReferenceIndex:
        """Read `folder`, then load its index from `cache_dir/bm25/<digest>/` or build and save it there."""
        passages = load_corpus(folder)
        digest = corpus_digest(passages)
        where = Path(cache_dir) / "bm25" / digest
        retriever = _load_cached(where, passages)
        if retriever is not None:
            log.info("references: loaded the BM25 index of %d passages from %s", len(passages), where)
        else:
            retriever = build_index(passages)
            _save(retriever, passages, where)
            log.info("references: built the BM25 index of %d passages, saved in %s", len(passages), where)
        return cls(passages, retriever, digest)

    def search(self, query: str, k: int) -> list[Passage]:
        """The top `k` passages for `query`, best first, ties in corpus order. Passages that share no
        word with the query are not returned, so an empty or stopword-only query finds nothing."""
        vocab = self._retriever.vocab_dict
        ids = [vocab[t] for t in _tokens([query])[0] if t in vocab]
        if k <= 0 or not ids:
            return []
        scores = np.asarray(self._retriever.get_scores(ids), dtype=np.float64)
        order = np.argsort(-scores, kind="stable")[:k]
        return [self.passages[i] for i in order if scores[i] > 0]
