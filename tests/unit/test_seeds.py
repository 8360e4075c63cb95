import json
from pathlib import Path

import pytest

from generator.seeds import SeedFileError, load_seeds
from tests.conftest import REPO, SHARED_SEEDS


def test_project_seeds_are_175_diverse_tasks():
    tasks = load_seeds(REPO / "seeds" / "175.jsonl")
    assert len(tasks) == 175
    assert len({t.id for t in tasks}) == 175
    assert sum(t.is_classification for t in tasks) >= 25
    assert all(t.instances and t.instances[0].output for t in tasks)


def test_reads_the_published_self_instruct_file_unchanged():
    if not SHARED_SEEDS.exists():
        pytest.skip("shared/ is not beside the checkout")
    tasks = load_seeds(SHARED_SEEDS)
    assert len(tasks) == 175
    assert sum(t.is_classification for t in tasks) == 26  # as the Self-Instruct README says


def test_reads_alpaca_json_and_jsonl(tmp_path: Path):
    rows = [
        {"instruction": "Add the numbers.", "input": "2, 3", "output": "5"},
        {"instruction": "Name a color.", "input": "", "output": "Blue"},
    ]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("a.json", "a.jsonl"):
        tasks = load_seeds(tmp_path / name)
        assert [t.instruction for t in tasks] == ["Add the numbers.", "Name a color."]
        assert tasks[0].instances[0].input == "2, 3"
        assert tasks[1].instances[0].output == "Blue"


GOOD = {
    "id": "t1",
    "name": "n1",
    "instruction": "Do it.",
    "instances": [{"input": "", "output": "ok"}],
    "is_classification": False,
}


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (json.dumps(GOOD) + "\n{not json\n", 2, "bad JSON"),
        (
            json.dumps(GOOD) + "\n" + json.dumps({k: v for k, v in GOOD.items() if k != "name"}) + "\n",
            2,
            "missing field(s) name",
        ),
        (json.dumps({**GOOD, "is_classification": "no"}) + "\n", 1, "is_classification"),
        (json.dumps({**GOOD, "instances": "x"}) + "\n", 1, "instances"),
        (json.dumps(GOOD) + "\n\n" + json.dumps(GOOD) + "\n", 3, "duplicate id 't1' (first on line 1)"),
        ("", 1, "empty file"),
        ("[1, 2]", 1, "expected a JSON object"),
        (json.dumps({"instruction": "x", "input": 3, "output": "y"}) + "\n", 1, "input: expected a string"),
        (json.dumps({"foo": 1}) + "\n", 1, "not a seed task"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path: Path, content: str, line: int, message: str):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(SeedFileError) as err:
        load_seeds(path)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert message in str(err.value)


def test_not_utf8_names_the_line(tmp_path: Path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + '{"id": "caf\xe9"}'.encode("latin-1") + b"\n")
    with pytest.raises(SeedFileError, match=r":2: not UTF-8"):
        load_seeds(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(SeedFileError, match="cannot read"):
        load_seeds(tmp_path / "nope.jsonl")


def test_domain_fields_load_and_unknown_fields_still_fail(tmp_path: Path):
    code = {**GOOD, "id": "c1", "domain": "code", "tests": ["assert add(2, 3) == 5"]}
    medical = {**GOOD, "id": "m1", "domain": "medical", "references": ["WHO fact sheet"]}
    path = tmp_path / "domains.jsonl"
    path.write_text(json.dumps(code) + "\n" + json.dumps(medical) + "\n")
    first, second = load_seeds(path)
    assert (first.domain, first.tests, first.references) == ("code", ["assert add(2, 3) == 5"], None)
    assert (second.domain, second.tests, second.references) == ("medical", None, ["WHO fact sheet"])
    path.write_text(json.dumps(code) + "\n" + json.dumps({**GOOD, "id": "x1", "difficulty": 3}) + "\n")
    with pytest.raises(SeedFileError) as err:
        load_seeds(path)
    assert str(err.value).startswith(f"{path}:2: ") and "difficulty" in str(err.value)
    path.write_text(json.dumps({**GOOD, "tests": "assert True"}) + "\n")  # a list, not a string
    with pytest.raises(SeedFileError, match=r":1: tests"):
        load_seeds(path)
