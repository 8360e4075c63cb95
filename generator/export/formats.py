"""The export formats: how one Alpaca row becomes a line of each, and the files of each format.

    alpaca       <split>.json    a JSON list of {instruction, input, output} (what alpaca.json holds)
    sharegpt     <split>.jsonl   {"conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}
    openai-chat  <split>.jsonl   {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}, the
                                 OpenAI fine-tuning format, with an optional system message first
    hf           a `datasets.DatasetDict` saved with `save_to_disk`, plus data/<split>.parquet

The chat formats have no input field, so the prompt is the instruction, then a blank line and the
input when there is one (the Alpaca template without its preamble). `datasets` is imported only by
the hf writer: it is slow to import and the other formats do not need it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal, get_args

from tqdm import tqdm

from generator.export.splits import SPLITS
from generator.records import AlpacaRow, Record, alpaca_rows

Format = Literal["alpaca", "sharegpt", "openai-chat", "hf"]
FORMATS: tuple[str, ...] = get_args(Format)
CARD = "README.md"
PROGRESS_MIN = 5000  # rows: below this a progress bar is noise


def prompt(row: AlpacaRow) -> str:
    """The user turn of a chat format: the instruction, plus the input after a blank line."""
    return f"{row.instruction}\n\n{row.input}" if row.input.strip() else row.instruction


def alpaca_item(row: AlpacaRow) -> dict[str, str]:
    return {"instruction": row.instruction, "input": row.input, "output": row.output}


def sharegpt_item(row: AlpacaRow) -> dict[str, Any]:
    return {"conversations": [{"from": "human", "value": prompt(row)}, {"from": "gpt", "value": row.output}]}


def openai_item(row: AlpacaRow, system: str | None = None) -> dict[str, Any]:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": prompt(row)}, {"role": "assistant", "content": row.output}]
    return {"messages": messages}


def hf_items(records: Iterable[Record]) -> list[dict[str, str]]:
    """The hf columns: the Alpaca fields and the id of the row's instruction (to check the splits)."""
    return [{"id": r.id, **alpaca_item(row)} for r in records for row in alpaca_rows(r)]


def owned_paths(fmt: str) -> list[str]:
    """Every path an export of `fmt` may write in its folder (what --force replaces, and only that)."""
    if fmt == "alpaca":
        files = [f"{s}.json" for s in SPLITS]
    elif fmt == "hf":
        files = ["dataset_dict.json", "data", *SPLITS]
    else:
        files = [f"{s}.jsonl" for s in SPLITS]
    return [*files, CARD]


def remove_owned(folder: Path, fmt: str) -> None:
    for name in owned_paths(fmt):
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _bar(rows: list[AlpacaRow], desc: str) -> Iterator[AlpacaRow]:
    return iter(tqdm(rows, desc=desc, unit="rows", disable=len(rows) < PROGRESS_MIN))


def write_alpaca(folder: Path, splits: dict[str, list[AlpacaRow]]) -> None:
    for name, rows in splits.items():
        items = [alpaca_item(row) for row in _bar(rows, name)]
        (folder / f"{name}.json").write_text(json.dumps(items, ensure_ascii=False, indent=2) + "\n", "utf-8")


def write_jsonl(
    folder: Path, splits: dict[str, list[AlpacaRow]], item: Callable[[AlpacaRow], dict[str, Any]]
) -> None:
    for name, rows in splits.items():
        with open(folder / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for row in _bar(rows, name):
                f.write(json.dumps(item(row), ensure_ascii=False) + "\n")


def write_hf(folder: Path, splits: dict[str, list[Record]], license: str, description: str) -> None:
    """save_to_disk's arrow folders (for `load_from_disk`) and data/<split>.parquet (for
    `load_dataset("parquet", ...)` and for the Hub, which the card's `configs` point at)."""
    import datasets

    features = datasets.Features(
        {c: datasets.Value("string") for c in ("id", "instruction", "input", "output")}
    )
    parts = {
        name: datasets.Dataset.from_list(
            hf_items(records),
            features=features,
            info=datasets.DatasetInfo(description=description, license=license, features=features),
        )
        for name, records in splits.items()
    }
    rows = sum(len(d) for d in parts.values())
    quiet = rows < PROGRESS_MIN and datasets.is_progress_bar_enabled()
    if quiet:  # datasets draws a bar per split and per step, even for ten rows
        datasets.disable_progress_bars()
    try:
        datasets.DatasetDict(parts).save_to_disk(str(folder))
        (folder / "data").mkdir(exist_ok=True)
        for name, part in parts.items():
            part.to_parquet(str(folder / "data" / f"{name}.parquet"))
    finally:
        if quiet:
            datasets.enable_progress_bars()
