"""The medical domain end to end through the real OpenAI-compatible test server (`--domain medical`).

The test server's synthetic teacher answers from the passages it is shown, and now and then cites a
passage that says something else, invents a dose, cites a passage that does not exist, cites nothing,
or tells a patient what they "have". The run must keep only answers whose cited passages say what they
claim, and store the citations; a missing or empty corpus stops the run before any teacher call.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from generator.config import RunConfig
from generator.domains.medical import NOT_COVERED
from generator.domains.references import load_corpus
from generator.run import run
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "seeds" / "medical_references"


def config(server: FakeOpenAI, out: Path, **kw: Any) -> RunConfig:
    settings: dict[str, Any] = {"seed": 4, "target": 16, "max_retries": 2, **kw}
    return RunConfig(
        seeds=REPO / "seeds" / "medical.jsonl",
        domain="medical",
        references=CORPUS,
        out=out,
        teacher="openai",
        base_url=server.base_url,
        model="fake",
        cache=False,
        cache_path=out.parent / "cache" / "requests.sqlite",  # the BM25 index is built beside it
        **settings,
    )


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_kept_row_cites_passages_that_state_what_it_claims(
    ray_session, fake_openai: FakeOpenAI, tmp_path: Path
):
    out = tmp_path / "medical"
    summary = run(config(fake_openai, out))
    corpus = {p.id: p for p in load_corpus(CORPUS)}
    rows = json.loads((out / "alpaca.json").read_text())
    records = lines(out / "instructions.jsonl")[:16]
    assert len(rows) == 16
    cited_anything = 0
    for row, record in zip(rows, records, strict=True):
        assert record["verification"]["verdict"] == "verified"
        answer = row["output"]
        if answer == NOT_COVERED:
            assert record["facts"]["citations"] == [] and record["verification"]["details"]["not_covered"]
            continue
        ids = re.findall(r"\[([^\]\s]+)\]", answer)
        assert ids and all(i in corpus for i in ids), answer
        # the citations are stored with their titles, as the corpus has them
        assert record["facts"]["citations"] == [
            {"id": i, "title": corpus[i].title} for i in dict.fromkeys(ids)
        ]
        cited = " ".join(f"{corpus[i].title}: {corpus[i].text}" for i in ids)
        claim = re.sub(r"\s*\[[^\]]+\]", "", answer).strip().rstrip(".")
        assert claim in cited, (claim, ids)  # the teacher's claim, word for word, in what it cites
        for number in re.findall(r"\d+(?:\.\d+)?", claim):
            assert number in cited
        cited_anything += 1
    assert cited_anything >= 8

    report = summary["domain"]
    assert report["method"] == "references" and report["teacher_answers_rejected"] > 0
    reasons = {d["reason"] for d in lines(out / "dropped.jsonl") if d["filter"] == "verify"}
    # an invented dose, a certain diagnosis and a claim its passage does not make are all dropped
    assert {"unsupported_number", "diagnostic_certainty"} <= reasons
    assert reasons & {"unsupported_claims", "no_citation", "unknown_citation"}


def test_the_teacher_as_judge(ray_session, fake_openai: FakeOpenAI, tmp_path: Path):
    out = tmp_path / "judged"
    summary = run(config(fake_openai, out, support_check="judge", target=8))
    assert summary["domain"]["method"] == "judge" and summary["stages"]["judge"]["requests"] > 0
    for record in lines(out / "instructions.jsonl")[:8]:
        details = record["verification"]["details"]
        assert details.get("not_covered") or details["judge"]["supported"] is True


def test_a_missing_or_empty_corpus_stops_before_any_teacher_call(fake_openai: FakeOpenAI, tmp_path: Path):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "generator.run", "--domain", "medical", "--seeds", "seeds/medical.jsonl",
             "-n", "3", "--teacher", "openai", "--base-url", fake_openai.base_url, "--model", "fake",
             "--no-cache", "--out", str(tmp_path / "run"), *args],
            cwd=REPO, env={**os.environ, "RAY_AUTH_MODE": "disabled"}, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.pdf").write_bytes(b"%PDF-1.4")
    missing = cli()
    assert missing.returncode == 2 and "--references" in missing.stderr
    none_there = cli("--references", str(tmp_path / "nowhere"))
    assert none_there.returncode == 2 and "no such folder" in none_there.stderr
    nothing = cli("--references", str(empty))
    assert nothing.returncode == 2 and "no passages found" in nothing.stderr
    assert fake_openai.requests == []  # not one teacher call
