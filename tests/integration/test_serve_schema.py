"""schemathesis over the service's own /openapi.json: every route, generated bodies, parameters and
headers (and stateful sequences through the links it infers), bounded in examples and time. Nothing
it sends may get a 5xx, and every answer must match what the schema documents (status codes, content
types, bodies, headers).

Two checks are left out, on purpose: `positive_data_acceptance` (a schema-valid body may still name a
filter that does not exist, or a target over this server's limit: a 422 that says so is right) and
`use_after_free` (DELETE cancels a job, whose accepted rows stay readable, as the API documents).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI
from tests.serve_process import REPO, ServiceProcess

pytestmark = pytest.mark.integration

KEY = "schema-key"


def test_schemathesis_finds_no_server_error(tmp_path: Path):
    with FakeOpenAI() as teacher:
        args = [
            "--data-dir", str(tmp_path / "data"), "--teacher", "openai", "--base-url", teacher.base_url,
            "--model", "fake", "--no-cache", "--max-target", "20", "--max-queued", "4",
            "--max-jobs-per-key", "100",
        ]  # fmt: skip
        with ServiceProcess(args, keys=[KEY], log=tmp_path / "serve.log") as svc:
            run = subprocess.run(
                [
                    sys.executable, "-m", "schemathesis.cli", "run", f"{svc.url}/openapi.json",
                    "-H", f"Authorization: Bearer {KEY}", "--checks", "all",
                    "--exclude-checks", "positive_data_acceptance,use_after_free",
                    "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "15",
                    "--request-timeout", "60", "--seed", "20261206", "--workers", "1",
                    # a job's report page renders figures and parses every instruction: seconds, by design
                    "--max-response-time", "60",
                ],
                cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
                env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
            )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout
    assert "14/14" in run.stdout  # every operation was tested
