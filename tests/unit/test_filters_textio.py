"""JSON / JSONL reading with file:line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from filters.textio import InputError, read_rows, text_field


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_rows_carry_their_line_and_skip_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "a.jsonl", '{"a": 1}\n\n{"a": 2}\n"plain"\n')
    assert list(read_rows(path)) == [(1, {"a": 1}), (3, {"a": 2}), (4, "plain")]


def test_json_array_rows_carry_the_line_they_start_on(tmp_path: Path) -> None:
    path = write(tmp_path, "a.json", '[\n  {"a": 1},\n  {"a":\n   2},\n  {"a": "é"}\n]\n')
    assert list(read_rows(path)) == [(2, {"a": 1}), (3, {"a": 2}), (5, {"a": "é"})]
    assert list(read_rows(write(tmp_path, "e.json", " [ ] "))) == []


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("bad.jsonl", '{"a": 1}\n{"a": }\n', "bad.jsonl:2: bad JSON"),
        ("bad.json", '[\n {"a": 1},\n {"a": 2\n]', "bad.json:4: bad JSON"),
        ("comma.json", '[{"a": 1}\n {"a": 2}]', "comma.json:2: bad JSON: expected ',' or ']'"),
        ("open.json", '[{"a": 1},\n', "open.json:2: bad JSON: the array is not closed"),
        ("tail.json", '[{"a": 1}]\n{"b": 2}', "tail.json:1: bad JSON: extra data"),
    ],
)
def test_bad_json_names_the_line(tmp_path: Path, name: str, text: str, where: str) -> None:
    with pytest.raises(InputError) as err:
        list(read_rows(write(tmp_path, name, text)))
    assert str(err.value).startswith(str(tmp_path / where))


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        list(read_rows(tmp_path / "missing.jsonl"))
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="cannot read"):
        list(read_rows(binary))


def test_text_field_errors() -> None:
    assert text_field({"instruction": "x"}, "instruction", "f:1") == "x"
    with pytest.raises(InputError, match="f:3: missing field 'instruction'"):
        text_field({"text": "x"}, "instruction", "f:3")
    with pytest.raises(InputError, match="f:4: field 'instruction' is int, not a string"):
        text_field({"instruction": 4}, "instruction", "f:4")
    with pytest.raises(InputError, match="f:5: expected a JSON object"):
        text_field(["x"], "instruction", "f:5")
