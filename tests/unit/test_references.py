"""The medical reference corpus: reading passages, the cached BM25 index, retrieval, and the demo data
(`seeds/medical_references/`, `seeds/medical.jsonl`) the medical domain and its tests rely on."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest

from generator.domains import references
from generator.domains.references import CorpusError, Passage, ReferenceIndex, corpus_digest, load_corpus
from generator.seeds import load_seeds

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "seeds" / "medical_references"
SEEDS = ROOT / "seeds" / "medical.jsonl"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*rows: dict) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory) -> ReferenceIndex:
    return ReferenceIndex.open(DEMO, tmp_path_factory.mktemp("cache"))


# --- reading ------------------------------------------------------------------------------------


def test_jsonl_passages_in_file_order_extra_fields_ignored(tmp_path: Path) -> None:
    write(
        tmp_path / "refs.jsonl",
        jsonl(
            {"id": "B2", "title": "Second", "text": "  Beta text.  ", "url": "https://example.org"},
            {"id": "A1", "title": "First", "text": "Alpha text."},
        )
        + "\n",
    )
    passages = load_corpus(tmp_path)
    assert passages == [
        Passage(id="B2", title="Second", text="Beta text."),
        Passage(id="A1", title="First", text="Alpha text."),
    ]


def test_txt_file_is_one_passage_titled_by_its_name(tmp_path: Path) -> None:
    write(tmp_path / "hand-washing_basics.txt", "Wash hands for 20 seconds.\n")
    assert load_corpus(tmp_path) == [
        Passage(id="hand-washing_basics", title="hand washing basics", text="Wash hands for 20 seconds.")
    ]


def test_markdown_sections_become_passages(tmp_path: Path) -> None:
    text = (
        "# Guide\n\n"  # a title with no text under it is not a passage
        "## Burns\nCool the burn.\n### Not a split\nStill burns.\n\n"
        "## Nosebleeds ##\nLean forward.\n"
        "# Sprains\nRest it.\n"
    )
    write(tmp_path / "first_aid.md", text)
    passages = load_corpus(tmp_path)
    assert [(p.id, p.title) for p in passages] == [
        ("first_aid#1", "Burns"),
        ("first_aid#2", "Nosebleeds"),
        ("first_aid#3", "Sprains"),
    ]
    assert passages[0].text == "Cool the burn.\n### Not a split\nStill burns."


def test_markdown_text_before_the_first_heading_is_a_section(tmp_path: Path) -> None:
    write(tmp_path / "notes.md", "Intro text.\n\n## Part\nPart text.\n")
    assert [(p.id, p.title, p.text) for p in load_corpus(tmp_path)] == [
        ("notes#1", "notes", "Intro text."),
        ("notes#2", "Part", "Part text."),
    ]


def test_markdown_without_headings_is_one_passage(tmp_path: Path) -> None:
    write(tmp_path / "sun_safety.md", "Use SPF 30.\n")
    assert load_corpus(tmp_path) == [Passage(id="sun_safety", title="sun safety", text="Use SPF 30.")]


def test_files_sorted_by_path_others_ignored(tmp_path: Path) -> None:
    write(tmp_path / "b.txt", "B.")
    write(tmp_path / "a" / "z.txt", "Z.")
    write(tmp_path / "a.jsonl", jsonl({"id": "J", "title": "j", "text": "J."}))
    write(tmp_path / "paper.pdf", "%PDF-1.4")
    write(tmp_path / ".hidden.txt", "hidden")
    write(tmp_path / ".git" / "notes.txt", "hidden")
    assert [p.id for p in load_corpus(tmp_path)] == ["J", "z", "b"]  # a.jsonl, a/z.txt, b.txt


def test_file_ids_never_hold_whitespace_or_brackets(tmp_path: Path) -> None:
    write(tmp_path / "chest pain [adult].txt", "Call for help.")
    (passage,) = load_corpus(tmp_path)
    assert passage.id == "chest_pain_adult_"
    assert passage.title == "chest pain [adult]"


def test_demo_corpus_loads() -> None:
    passages = load_corpus(DEMO)
    ids = {p.id for p in passages}
    assert {f"P{n:02d}" for n in range(1, 31)} <= ids
    assert {"first_aid#1", "first_aid#2", "first_aid#3"} <= ids
    assert all(p.title and p.text for p in passages)


# --- errors -------------------------------------------------------------------------------------


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"nope/: no such folder"):
        load_corpus(tmp_path / "nope")


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(
        CorpusError, match=r"no passages found \(\.txt, \.md or \.jsonl files with id, title, text\)"
    ):
        load_corpus(tmp_path)


def test_folder_with_only_other_files_says_what_was_ignored(tmp_path: Path) -> None:
    write(tmp_path / "leaflet.pdf", "%PDF-1.4")
    with pytest.raises(
        CorpusError, match=r"no passages found .*ignored 1 other file\(s\), e\.g\. leaflet\.pdf"
    ):
        load_corpus(tmp_path)


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "refs.jsonl", jsonl({"id": "A", "title": "a", "text": "A."}) + "\n{not json\n")
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(path))}:3: bad JSON"):
        load_corpus(tmp_path)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "A", "text": "A."}, r"refs\.jsonl:1: missing field\(s\) title"),
        ({"id": 7, "title": "a", "text": "A."}, r"refs\.jsonl:1: id: input should be a valid string"),
        ({"id": "P 1", "title": "a", "text": "A."}, r"refs\.jsonl:1: id: string should match pattern"),
        ({"id": "A", "title": "a", "text": "   "}, r"refs\.jsonl:1: empty text \(passage 'A'\)"),
        (["A", "a", "A."], r"refs\.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_jsonl_rows(tmp_path: Path, row: object, message: str) -> None:
    write(tmp_path / "refs.jsonl", json.dumps(row) + "\n")
    with pytest.raises(CorpusError, match=message):
        load_corpus(tmp_path)


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    write(tmp_path / "a.jsonl", jsonl({"id": "burns", "title": "Burns", "text": "Cool it."}))
    write(tmp_path / "burns.txt", "Cool it for 20 minutes.")
    with pytest.raises(
        CorpusError, match=r"burns\.txt: duplicate passage id 'burns' \(first in .*a\.jsonl\)"
    ):
        load_corpus(tmp_path)


@pytest.mark.parametrize(("name", "text"), [("empty.txt", " \n\n"), ("titles.md", "# Only\n## Headings\n")])
def test_empty_text_file(tmp_path: Path, name: str, text: str) -> None:
    write(tmp_path / name, text)
    with pytest.raises(CorpusError, match=rf"{re.escape(name)}: empty text"):
        load_corpus(tmp_path)


def test_corpus_error_is_a_value_error() -> None:
    assert issubclass(CorpusError, ValueError)


# --- digest -------------------------------------------------------------------------------------


def test_digest_follows_content_not_files(tmp_path: Path) -> None:
    path = write(tmp_path / "a" / "refs.txt", "Rest and fluids.")
    before = corpus_digest(load_corpus(tmp_path / "a"))
    os.utime(path, (1_000_000, 1_000_000))
    assert corpus_digest(load_corpus(tmp_path / "a")) == before
    write(tmp_path / "b" / "refs.txt", "Rest and fluids.")  # same content elsewhere: same key
    assert corpus_digest(load_corpus(tmp_path / "b")) == before
    path.write_text("Rest and more fluids.", encoding="utf-8")
    assert corpus_digest(load_corpus(tmp_path / "a")) != before


def test_digest_covers_ids_titles_and_texts() -> None:
    base = [Passage(id="A", title="t", text="x")]
    changed = [
        [Passage(id="B", title="t", text="x")],
        [Passage(id="A", title="u", text="x")],
        [Passage(id="A", title="t", text="y")],
        [*base, Passage(id="B", title="t", text="x")],
    ]
    digests = {corpus_digest(base), *(corpus_digest(c) for c in changed)}
    assert len(digests) == 5
    assert re.fullmatch(r"[0-9a-f]{64}", corpus_digest(base))


# --- search -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("how much paracetamol can an adult take", "P01"),
        ("what is the usual ibuprofen dose", "P02"),
        ("my nose is bleeding and will not stop", "P15"),
        ("what SPF sunscreen should I use", "P22"),
        ("face drooping and slurred speech", "P06"),
        ("someone is choking", "first_aid#1"),
        ("how long does a common cold last", "P17"),
        ("I burned my hand on the stove", "P14"),
    ],
)
def test_search_finds_the_obvious_passage_first(
    demo_index: ReferenceIndex, query: str, expected: str
) -> None:
    assert demo_index.search(query, 3)[0].id == expected


def test_search_k(demo_index: ReferenceIndex) -> None:
    query = "fever, pain and paracetamol"
    assert len(demo_index.search(query, 1)) == 1
    assert demo_index.search(query, 2) == demo_index.search(query, 5)[:2]
    everything = demo_index.search(query, 1000)
    assert 2 < len(everything) <= len(demo_index.passages)
    assert demo_index.search(query, 0) == []


@pytest.mark.parametrize("query", ["", "   ", "the and of it", "xyzzy qwertyuiop"])
def test_search_without_usable_words_finds_nothing(demo_index: ReferenceIndex, query: str) -> None:
    assert demo_index.search(query, 5) == []


def test_search_ties_keep_corpus_order(tmp_path: Path) -> None:
    same = "Drink water when thirsty."
    write(tmp_path / "refs" / "r.jsonl", jsonl(*({"id": i, "title": "Water", "text": same} for i in "CAB")))
    index = ReferenceIndex.open(tmp_path / "refs", tmp_path / "cache")
    assert [p.id for p in index.search("water", 3)] == ["C", "A", "B"]


def test_index_exposes_passages_by_id(demo_index: ReferenceIndex) -> None:
    assert demo_index.by_id["P01"].title == "Paracetamol for adults"
    assert list(demo_index.by_id) == [p.id for p in demo_index.passages]
    assert demo_index.digest == corpus_digest(demo_index.passages)


# --- the cached index ---------------------------------------------------------------------------


def test_second_open_loads_the_cached_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    refs = tmp_path / "refs"
    write(
        refs / "r.jsonl", jsonl({"id": "A", "title": "Sleep", "text": "Adults need 7 to 9 hours of sleep."})
    )
    write(refs / "b.txt", "Wash your hands with soap for 20 seconds.")
    builds = []
    real_build = references.build_index
    monkeypatch.setattr(references, "build_index", lambda ps: builds.append(ps) or real_build(ps))
    caplog.set_level(logging.INFO, logger="synth_instruct")

    first = ReferenceIndex.open(refs, tmp_path / "cache")
    folder = tmp_path / "cache" / "bm25" / corpus_digest(first.passages)
    assert folder.is_dir() and any(folder.iterdir())
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left
    assert "built the BM25 index of 2 passages" in caplog.text

    second = ReferenceIndex.open(refs, tmp_path / "cache")
    assert len(builds) == 1
    assert "loaded the BM25 index of 2 passages" in caplog.text
    assert second.search("hands soap", 2) == first.search("hands soap", 2) == [second.by_id["b"]]

    write(refs / "c.txt", "Sunscreen of SPF 30.")
    third = ReferenceIndex.open(refs, tmp_path / "cache")
    assert len(builds) == 2
    assert len(list(folder.parent.iterdir())) == 2
    assert third.search("sunscreen", 1) == [third.by_id["c"]]


def test_a_cached_index_for_other_settings_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "refs" / "a.txt", "Cool a burn under running water.")
    index = ReferenceIndex.open(tmp_path / "refs", tmp_path / "cache")
    monkeypatch.setattr(references, "INDEX_FORMAT", "another tokenizer")
    builds = []
    real_build = references.build_index
    monkeypatch.setattr(references, "build_index", lambda ps: builds.append(ps) or real_build(ps))
    again = ReferenceIndex.open(tmp_path / "refs", tmp_path / "cache")
    assert len(builds) == 1
    assert again.search("burn", 1) == index.search("burn", 1)
    assert len(list((tmp_path / "cache" / "bm25").iterdir())) == 1


# --- the medical seeds --------------------------------------------------------------------------

NUMBER = re.compile(r"\d+(?:[./]\d+)?")
CITATION = re.compile(r"\[([^\[\]\s]+)\]")


def test_medical_seeds_cite_passages_that_state_their_numbers() -> None:
    seeds = load_seeds(SEEDS)
    by_id = {p.id: p for p in load_corpus(DEMO)}
    assert len(seeds) >= 25
    for seed in seeds:
        assert seed.domain == "medical" and not seed.is_classification, seed.id
        assert seed.references and all(ref in by_id for ref in seed.references), seed.id
        output = seed.instances[0].output
        assert set(CITATION.findall(output)) == set(seed.references), seed.id
        cited = " ".join(by_id[ref].text for ref in seed.references)
        claimed = NUMBER.findall(CITATION.sub(" ", output))
        assert set(claimed) <= set(NUMBER.findall(cited)), seed.id


def test_medical_seeds_cover_each_kind_of_task() -> None:
    names = [s.name for s in load_seeds(SEEDS)]
    for kind in ("patient_question_", "clinical_summary_", "drug_info_", "triage_"):
        assert any(name.startswith(kind) for name in names), kind
    # the four kinds are the only ones: the name prefix says which a seed is
    assert all(
        name.startswith(("patient_question_", "clinical_summary_", "drug_info_", "triage_")) for name in names
    )
