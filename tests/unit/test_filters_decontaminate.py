"""Decontamination against user-supplied evaluation prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from filters.base import build_filters
from filters.decontaminate import DecontaminateFilter, EvalSet
from filters.textio import InputError
from generator.records import Instance, Record

EVAL = [
    "Write a limerick about a cat who learned to play the violin in Vienna.",
    {"instruction": "Summarize the article below in two sentences for a busy reader.", "input": "Text"},
    {"prompt": "Tell me a joke"},  # shorter than n: matched as a whole
    {"question": "Hi there"},  # under 4 words: ignored
]


@pytest.fixture
def eval_file(tmp_path: Path) -> Path:
    path = tmp_path / "mt_bench.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in EVAL) + "\n")
    return path


def rec(text: str, *inputs: str) -> Record:
    return Record(
        id="x", instruction=text, origin="test", instances=[Instance(input=i, output="o") for i in inputs]
    )


def test_leaked_prompt_is_dropped_with_the_set_name(eval_file: Path) -> None:
    (f,) = build_filters([{"name": "decontaminate", "params": {"eval_file": str(eval_file)}}])
    leaked = rec("Please write a LIMERICK about a cat who learned to play the violin in Vienna, thanks!")
    assert f.apply(leaked) == (False, "contaminated:mt_bench")
    assert leaked.contamination is not None and leaked.contamination.set == "mt_bench"
    assert f.apply(rec("Write a limerick about a dog who learned to cook pasta in Rome."))[0]
    assert f.apply(rec("Tell me a joke about penguins.")) == (False, "contaminated:mt_bench")
    assert f.apply(rec("Tell me a story about a joke."))[0]
    assert f.apply(rec("Say hi there to everyone in the room."))[0]  # the 2-word prompt is ignored
    assert f.stats["dropped_contaminated:mt_bench"] == 2


def test_partial_overlap_against_threshold(eval_file: Path) -> None:
    # 6 of the prompt's 7 8-grams occur in the item (all but the one ending in Vienna)
    item = rec("Write a limerick about a cat who learned to play the violin in Paris, please.")
    assert DecontaminateFilter(eval_file, threshold=0.5).apply(item)[0] is False
    assert DecontaminateFilter(eval_file, threshold=0.95).apply(item)[0] is True
    score = EvalSet.from_file(eval_file, 8).overlap(item.instruction)
    assert 0.5 <= score < 0.95


def test_instance_inputs_are_checked_with_the_instruction(eval_file: Path) -> None:
    f = DecontaminateFilter(eval_file, name="evalset")
    item = rec("Summarize the article below", "in two sentences for a busy reader. Text")
    assert f.apply(item) == (False, "contaminated:evalset")


def test_several_files_are_several_sets(eval_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "gsm.jsonl"
    other.write_text(json.dumps({"question": "Natalia sold clips to 48 of her friends in April"}) + "\n")
    f = DecontaminateFilter([eval_file, other])
    assert f.apply(rec("Natalia sold clips to 48 of her friends in April. How many?")) == (
        False,
        "contaminated:gsm",
    )
    with pytest.raises(ValueError, match="names one"):
        DecontaminateFilter([eval_file, other], name="x")


def test_bad_eval_file_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine prompt here ok"}\n{"answer": 3}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: no prompt text"):
        DecontaminateFilter(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "fine"}\n{"prompt": \n')
    with pytest.raises(InputError, match=r"broken.jsonl:2: bad JSON"):
        DecontaminateFilter(broken)
