"""`python -m filters.dedup` end to end, in a subprocess, against the rouge-score loop."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from tests.words import VOCAB

ROOT = Path(__file__).resolve().parents[2]
WORDS = [*VOCAB, "café", "写"]  # non-ASCII too: rouge-score drops it, and so must the CLI


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "filters.dedup", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def rows(n: int = 250) -> list[dict[str, str]]:
    rng = random.Random(5)
    texts: list[str] = []
    for _ in range(n):
        if texts and rng.random() < 0.4:
            words = rng.choice(texts).split()
            words[rng.randrange(len(words))] = rng.choice(WORDS)
            if rng.random() < 0.3:
                rng.shuffle(words)
            texts.append(" ".join(words))
        else:
            texts.append(" ".join(rng.choices(WORDS, k=rng.randint(3, 10))))
    texts += ["", "!!!", "写一首诗", texts[0]]
    return [{"instruction": t, "input": "", "output": str(i)} for i, t in enumerate(texts)]


def oracle(data: list[dict[str, str]], seeds: list[str] = ()) -> list[dict[str, str]]:  # type: ignore[assignment]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool, kept = list(seeds), []
    for row in data:
        cand = row["instruction"]
        if not pool or max(scorer.score(p, cand)["rougeL"].fmeasure for p in pool) <= 0.7:
            pool.append(cand)
            kept.append(row)
    return kept


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("suffix", ["jsonl", "json"])
def test_rougel_keeps_exactly_the_rows_the_rouge_score_loop_keeps(tmp_path: Path, suffix: str) -> None:
    data = rows()
    src = tmp_path / f"in.{suffix}"
    if suffix == "json":
        src.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data))
    out, dropped = tmp_path / "sub" / "out.jsonl", tmp_path / "dropped.jsonl"
    res = run(src, "--out", out, "--dropped", dropped)
    assert res.returncode == 0, res.stderr
    kept = read_jsonl(out)
    assert kept == oracle(data)
    drops = read_jsonl(dropped)
    assert len(kept) + len(drops) == len(data)
    assert f"read {len(data)} rows" in res.stdout and f"kept {len(kept)}, dropped {len(drops)}" in res.stdout
    assert f"rouge_l>0.7: {len(drops)}" in res.stdout
    first = drops[0]
    assert first["reason"] == "rouge_l>0.7" and first["filter"] == "rouge_l"
    assert first["duplicate_of"]["score"] > 0.7 and first["row"] in data
    assert first["duplicate_of"]["text"] in {r["instruction"] for r in kept}
    assert first["duplicate_of"]["metric"] == "rouge_l" and first["duplicate_of"]["filter"] == "rouge_l"
    if suffix == "jsonl":  # one row per line: the id is the duplicated row's line
        assert data[int(first["duplicate_of"]["id"]) - 1]["instruction"] == first["duplicate_of"]["text"]


def test_threshold_field_and_seeds(tmp_path: Path) -> None:
    data = [{"text": r["instruction"]} for r in rows(120)]
    seeds = [{"text": "write a poem about the sea"}, {"text": "five tips for cats"}]
    src, seed_file, out = tmp_path / "in.jsonl", tmp_path / "seeds.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in data))
    seed_file.write_text("".join(json.dumps(r) + "\n" for r in seeds))
    res = run(src, "--out", out, "--field", "text", "--threshold", "0.5", "--seeds", seed_file)
    assert res.returncode == 0, res.stderr
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool, want = [s["text"] for s in seeds], []
    for r in data:
        if max(scorer.score(p, r["text"])["rougeL"].fmeasure for p in pool) <= 0.5:
            pool.append(r["text"])
            want.append(r)
    assert read_jsonl(out) == want


@pytest.mark.parametrize("method", ["minhash", "minhash+rougel"])
def test_minhash_methods(tmp_path: Path, method: str) -> None:
    data = rows()
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in data))
    res = run(src, "--out", out, "--method", method, "--num-perm", "64")
    assert res.returncode == 0, res.stderr
    kept = read_jsonl(out)
    assert 0 < len(kept) < len(data)
    assert kept == [r for r in data if r in kept]  # input order, first occurrence
    if method == "minhash+rougel":  # never drops a row exact ROUGE-L would keep
        assert len(kept) >= len(oracle(data))


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ('{"instruction": "a"}\n{"input": "b"}\n', (), "in.jsonl:2: missing field 'instruction'"),
        ('{"instruction": "a"}\n\n{"instruction": \n', (), "in.jsonl:3: bad JSON"),
        ('{"instruction": 7}\n', (), "in.jsonl:1: field 'instruction' is int, not a string"),
        ('["a"]\n', (), "in.jsonl:1: expected a JSON object"),
        ('{"instruction": "a"}\n', ("--threshold", "2"), "threshold must be in [0, 1]"),
    ],
)
def test_bad_input_exits_2_with_file_and_line(
    tmp_path: Path, content: str, args: tuple[str, ...], message: str
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(content)
    res = run(src, "--out", tmp_path / "out.jsonl", *args)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_unreadable_file_and_bad_arguments_exit_2(tmp_path: Path) -> None:
    res = run(tmp_path / "missing.jsonl", "--out", tmp_path / "o.jsonl")
    assert res.returncode == 2 and "missing.jsonl: cannot read" in res.stderr
    res = run(tmp_path / "missing.jsonl", "--out", tmp_path / "o.jsonl", "--method", "exact")
    assert res.returncode == 2 and "invalid choice" in res.stderr
