"""The export's pure parts: the split by instruction, the row formats, the dataset card."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from generator.export import DEFAULT_SPLIT, SPLITS, SplitError, parse_split, split_records
from generator.export.card import ExportFacts, SplitCount, TeacherFacts, metadata, render_card, size_category
from generator.export.formats import (
    alpaca_item,
    hf_items,
    openai_item,
    owned_paths,
    prompt,
    remove_owned,
    sharegpt_item,
)
from generator.export.splits import cut
from generator.records import AlpacaRow, Instance, Record


def record(i: int, instances: int = 2, text: str | None = None) -> Record:
    return Record(
        id=f"r{i}",
        instruction=text or f"Instruction number {i}.",
        origin="self-instruct",
        instances=[Instance(input=f"in {i}.{k}", output=f"out {i}.{k}") for k in range(instances)],
    )


RATIOS = st.sampled_from(
    [DEFAULT_SPLIT, (1.0, 0.0, 0.0), (0.8, 0.1, 0.1), (0.5, 0.5, 0.0), (0.34, 0.33, 0.33)]
)


@given(n=st.integers(0, 300), ratios=RATIOS)
def test_cut_hands_out_every_instruction_and_starves_no_split(n: int, ratios: tuple[float, float, float]):
    counts = cut(n, ratios)
    assert sum(counts) == n and all(c >= 0 for c in counts)
    for count, ratio in zip(counts, ratios, strict=True):
        if ratio == 0:
            assert count == 0
        elif n >= 3:
            assert count >= 1
        assert abs(count - ratio * n) <= 2  # close to the ratio, up to the at-least-one rule


def test_cut_rounds_the_default_split():
    assert cut(100, DEFAULT_SPLIT) == [90, 5, 5]
    assert cut(3, DEFAULT_SPLIT) == [1, 1, 1]
    assert cut(2, DEFAULT_SPLIT) == [2, 0, 0]  # too few to give every split one
    assert cut(10, (1.0, 0.0, 0.0)) == [10, 0, 0]


def test_split_keeps_an_instructions_instances_together_and_is_deterministic():
    records = [record(i, instances=1 + i % 3) for i in range(60)]
    parts = split_records(records, DEFAULT_SPLIT, seed=7)
    assert list(parts) == list(SPLITS)
    assert [len(parts[s]) for s in SPLITS] == [54, 3, 3]
    ids = [r.id for s in SPLITS for r in parts[s]]
    assert sorted(ids) == sorted(r.id for r in records)  # every record once, whole
    for s in SPLITS:  # each split in dataset order
        assert [r.id for r in parts[s]] == [r.id for r in records if r in parts[s]]
    assert split_records(records, DEFAULT_SPLIT, seed=7) == parts
    assert split_records(records, DEFAULT_SPLIT, seed=8) != parts


def test_records_with_one_text_are_one_instruction_and_empty_records_are_skipped():
    records = [record(i) for i in range(20)]
    records += [record(100 + i, text=records[i].instruction) for i in range(5)]  # same text, other id
    records.append(record(200, instances=0))
    parts = split_records(records, (0.5, 0.25, 0.25), seed=1)
    where = {r.id: s for s in SPLITS for r in parts[s]}
    assert "r200" not in where
    assert all(where[f"r{100 + i}"] == where[f"r{i}"] for i in range(5))
    assert sum(len(p) for p in parts.values()) == 25


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0.9/0.05", "has 3 ratios"),
        ("0.9/0.2/0.1", "must sum to 1"),
        ("1/-0.5/0.5", ">= 0"),
        ("ninety/5/5", "three ratios TRAIN/VALIDATION/TEST"),
        ("nan/0/1", "finite"),
    ],
)
def test_a_bad_split_string_says_what_is_wrong(text: str, problem: str):
    with pytest.raises(SplitError, match=problem):
        parse_split(text)


def test_split_strings_parse():
    assert parse_split("0.9/0.05/0.05") == DEFAULT_SPLIT
    assert parse_split("1/0/0") == parse_split("1,0,0") == (1.0, 0.0, 0.0)
    with pytest.raises(SplitError):
        split_records([record(1)], (0.5, 0.5, 0.5))


def test_rows_in_each_format():
    plain = AlpacaRow(instruction="Name a colour.", output="Blue.")
    given_input = AlpacaRow(instruction="Translate to French.", input="cat", output="chat")
    assert prompt(plain) == "Name a colour."
    assert prompt(given_input) == "Translate to French.\n\ncat"
    assert alpaca_item(given_input) == {
        "instruction": "Translate to French.",
        "input": "cat",
        "output": "chat",
    }
    assert sharegpt_item(given_input) == {
        "conversations": [
            {"from": "human", "value": "Translate to French.\n\ncat"},
            {"from": "gpt", "value": "chat"},
        ]
    }
    assert openai_item(plain) == {
        "messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]
    }
    assert openai_item(plain, system="Be brief.")["messages"][0] == {"role": "system", "content": "Be brief."}
    assert hf_items([record(3, instances=2)])[1] == {
        "id": "r3",
        "instruction": "Instruction number 3.",
        "input": "in 3.1",
        "output": "out 3.1",
    }


def test_force_replaces_only_what_an_export_writes(tmp_path: Path):
    for name in ["train.json", "test.json", "README.md", "notes.txt"]:
        (tmp_path / name).write_text("x")
    (tmp_path / "train").mkdir()  # an hf split folder is not an alpaca export's
    remove_owned(tmp_path, "alpaca")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "train"]
    remove_owned(tmp_path, "hf")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert "README.md" in owned_paths("sharegpt")


def facts(**kw: object) -> ExportFacts:
    base: dict[str, object] = {
        "format": "alpaca",
        "run_name": "self-instruct-seed42",
        "seeds": "seeds/175.jsonl",
        "seeds_sha256": "ab" * 32,
        "seed": 42,
        "teacher": TeacherFacts(backend="vllm", model="SmolLM2-135M-Instruct", embedded=True),
        "profile": "self-instruct",
        "domain": None,
        "verify": True,
        "evolve_rounds": 2,
        "filters": {"rouge_l": {"total": 10, "kept": 7, "dropped": 3, "dropped_rouge_l>0.7": 3}},
        "ratios": DEFAULT_SPLIT,
        "split_seed": 42,
        "splits": {"train": SplitCount(instructions=9, rows=20), "test": SplitCount(instructions=1, rows=2)},
        "stages": [{"stage": "bootstrap", "instructions": 10, "rows": 22}],
        "license": "other",
    }
    return ExportFacts.model_validate(base | kw)


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_the_card_records_the_run():
    card = render_card(facts())
    meta = front_matter(card)
    assert meta == metadata(facts())
    assert meta["license"] == "other" and "terms of use" in meta["license_details"]
    assert meta["task_categories"] == ["text-generation"] and meta["language"] == ["en"]
    assert meta["size_categories"] == ["n<1K"]
    assert "configs" not in meta  # only the hf folder has parquet files to point at
    si = meta["synth_instruct"]
    assert si["filters"]["rouge_l"]["dropped_rouge_l>0.7"] == 3
    assert si["splits"] == {"train": {"instructions": 9, "rows": 20}, "test": {"instructions": 1, "rows": 2}}
    assert si["total"] == {"instructions": 10, "rows": 22}
    assert si["evolve_rounds"] == 2 and si["seeds"]["file"] == "seeds/175.jsonl"
    assert si["teacher"]["model"] == "SmolLM2-135M-Instruct" and si["exporter_version"] >= 1
    body = card.split("---\n", 2)[2]
    assert "| train | 9 | 20 |" in body and "| total | 10 | 22 |" in body
    assert "| rouge_l | 10 | 7 | 3 | rouge_l>0.7 3 |" in body
    assert "135M" in body  # the limits of the embedded teacher are said


def test_the_card_of_an_hf_export_points_at_its_parquet_files():
    meta = front_matter(render_card(facts(format="hf", license="cc-by-4.0")))
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [
                {"split": "train", "path": "data/train.parquet"},
                {"split": "test", "path": "data/test.parquet"},
            ],
        }
    ]
    assert meta["license"] == "cc-by-4.0" and "license_name" not in meta


def test_a_real_teacher_gets_no_135m_warning_and_a_replaced_one_is_named():
    real = TeacherFacts(backend="openai", model="gpt-4o-mini", embedded=False, answered_by=["x (scripted)"])
    card = render_card(facts(teacher=real, domain="arithmetic"))
    assert "135M" not in card and "answered by `x (scripted)`" in card and "Domain `arithmetic`" in card


@pytest.mark.parametrize(
    ("rows", "bucket"),
    [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (52_002, "10K<n<100K"), (10**6, "1M<n<10M")],
)
def test_size_categories(rows: int, bucket: str):
    assert size_category(rows) == bucket
