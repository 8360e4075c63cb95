"""Exports of a real run folder, read back by `datasets`, by the seed loader and as JSONL; the card's
numbers against the run's own stats.json and config.json; the CLI and its exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.config import RunConfig
from generator.dataset import dataset
from generator.export import SPLITS, split_records, split_rows
from generator.export.__main__ import main
from generator.export.write import export_run
from generator.records import AlpacaRow
from generator.run import run
from generator.seeds import load_seeds
from generator.teachers.scripted import ScriptedTeacher

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def grown(ray_session, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bootstrap and one evolution round, so the card has both stages' filters to report."""
    folder = tmp_path_factory.mktemp("export") / "run"
    cfg = RunConfig(seeds=REPO / "seeds" / "175.jsonl", target=30, cache=False, out=folder, evolve_rounds=1)
    run(cfg, teacher=ScriptedTeacher)
    return folder


def card(folder: Path) -> dict[str, Any]:
    text = (folder / "README.md").read_text("utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def triples(rows: list[AlpacaRow]) -> list[tuple[str, str, str]]:
    return [(r.instruction, r.input, r.output) for r in rows]


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_alpaca_export_reads_back_as_seeds(grown: Path):
    result = export_run(grown, "alpaca")
    assert result.folder == grown / "export" / "alpaca"
    expected = split_rows(grown)
    assert all(expected[s] for s in SPLITS)  # 0.9/0.05/0.05 of this run leaves no split empty
    for split in SPLITS:
        tasks = load_seeds(result.folder / f"{split}.json")
        got = [(t.instruction, t.instances[0].input, t.instances[0].output) for t in tasks]
        assert got == triples(expected[split])
    everything = [row for s in SPLITS for row in triples(expected[s])]
    assert Counter(everything) == Counter(triples(dataset(grown).rows()))


def test_chat_exports_hold_one_conversation_per_row(grown: Path):
    expected = split_rows(grown)
    sharegpt = export_run(grown, "sharegpt").folder
    chat = export_run(grown, "openai-chat", system="You are helpful.").folder
    for split in SPLITS:
        rows = expected[split]
        for line, row in zip(jsonl(sharegpt / f"{split}.jsonl"), rows, strict=True):
            human, gpt = line["conversations"]
            assert human["from"] == "human" and human["value"].startswith(row.instruction)
            assert (row.input in human["value"]) and gpt == {"from": "gpt", "value": row.output}
        for line, row in zip(jsonl(chat / f"{split}.jsonl"), rows, strict=True):
            roles = [m["role"] for m in line["messages"]]
            assert roles == ["system", "user", "assistant"]
            assert line["messages"][2]["content"] == row.output
            assert line["messages"][1]["content"] == (
                f"{row.instruction}\n\n{row.input}" if row.input else row.instruction
            )


def test_hf_export_loads_with_datasets_and_never_splits_an_instruction(grown: Path, tmp_path: Path):
    import datasets

    folder = export_run(grown, "hf", license="cc-by-4.0").folder
    expected = split_rows(grown)
    saved = datasets.load_from_disk(str(folder))
    assert isinstance(saved, datasets.DatasetDict) and list(saved) == list(SPLITS)
    assert set(saved["train"].column_names) == {"id", "instruction", "input", "output"}
    files = {s: str(folder / "data" / f"{s}.parquet") for s in SPLITS}
    parquet = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf"))
    by_card = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf"))  # the card's `configs`
    for split in SPLITS:
        want = triples(expected[split])
        for loaded in (saved, parquet, by_card):
            assert [(r["instruction"], r["input"], r["output"]) for r in loaded[split]] == want
    ids = {s: set(saved[s]["id"]) for s in SPLITS}
    assert not (ids["train"] & ids["validation"]) and not (ids["train"] & ids["test"])
    assert not (ids["validation"] & ids["test"])
    assert card(folder)["license"] == "cc-by-4.0"


@pytest.mark.parametrize("fmt", ["alpaca", "hf"])
def test_the_card_holds_the_runs_numbers(grown: Path, tmp_path: Path, fmt: str):
    folder = export_run(grown, fmt, out=tmp_path / fmt, ratios=(0.8, 0.1, 0.1), seed=3).folder
    stats = json.loads((grown / "stats.json").read_text())
    cfg = json.loads((grown / "config.json").read_text())
    meta = card(folder)
    si = meta["synth_instruct"]
    assert si["filters"] == stats["filters"]
    assert si["filters"]["rouge_l"]["total"] > 0 and "evol_no_gain" in si["filters"]
    assert si["evolve_rounds"] == cfg["evolve_rounds"] == 1
    assert (si["profile"], si["domain"], si["seed"]) == (cfg["profile"], cfg["domain"], cfg["seed"])
    assert si["seeds"]["file"] == cfg["seeds"] and len(si["seeds"]["sha256"]) == 64
    assert si["teacher"]["backend"] == cfg["teacher"] and si["teacher"]["answered_by"] == [
        "scripted (scripted)"
    ]
    assert si["run_name"] == cfg["run_name"] and si["license"] == meta["license"] == "other"
    assert si["split"] == {"by": "instruction", "ratios": [0.8, 0.1, 0.1], "seed": 3}
    assert si["total"] == {
        "instructions": stats["counts"]["dataset_instructions"],
        "rows": stats["counts"]["dataset_rows"],
    }
    parts = split_records(dataset(grown).records(), (0.8, 0.1, 0.1), seed=3)
    assert si["splits"] == {
        s: {"instructions": len(parts[s]), "rows": sum(len(r.instances) for r in parts[s])} for s in SPLITS
    }
    body = (folder / "README.md").read_text().split("---\n", 2)[2]
    assert f"| total | {si['total']['instructions']} | {si['total']['rows']} |" in body


def test_cli_writes_refuses_and_exits_2_on_bad_input(grown: Path, tmp_path: Path, capsys):
    out = tmp_path / "train-only"
    cmd = [sys.executable, "-m", "generator.export", str(grown), "--format", "sharegpt", "--split", "1/0/0"]
    done = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "train.jsonl"]
    assert len(jsonl(out / "train.jsonl")) == len(dataset(grown).rows())
    again = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert again.returncode == 2 and "not empty: pass --force" in again.stderr

    assert main([str(grown), "--format", "sharegpt", "--out", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "test.jsonl",
        "train.jsonl",
        "validation.jsonl",
    ]
    bad = {
        "not a run folder": [str(tmp_path), "--format", "alpaca"],
        "must sum to 1": [str(grown), "--format", "alpaca", "--split", "0.5/0.2/0.2"],
        "three ratios": [str(grown), "--format", "alpaca", "--split", "90-5-5"],
        "unknown format 'csv'": [str(grown), "--format", "csv"],
        "openai-chat only": [str(grown), "--format", "alpaca", "--system", "hi"],
    }
    for problem, argv in bad.items():
        capsys.readouterr()
        assert main(argv) == 2, problem
        assert problem in capsys.readouterr().err
    with pytest.raises(SystemExit) as help_exit:
        main(["--help"])
    assert help_exit.value.code == 0 and "--split" in capsys.readouterr().out


def test_a_domain_run_names_its_domain(ray_session, tmp_path: Path):
    folder = tmp_path / "arith"
    cfg = RunConfig(
        seeds=REPO / "seeds" / "arithmetic.jsonl", domain="arithmetic", target=12, cache=False, out=folder
    )
    run(cfg, teacher=ScriptedTeacher)
    meta = card(export_run(folder, "openai-chat").folder)["synth_instruct"]
    assert meta["domain"] == "arithmetic" and meta["verify"] is True
    assert meta["filters"] == json.loads((folder / "stats.json").read_text())["filters"]
