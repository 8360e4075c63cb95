"""A run folder has one owner: a second run on it is refused (exit 2), and the first is unharmed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from generator.errors import RunFolderBusy
from generator.run_folder import RunFolder
from tests.conftest import REPO
from tests.fake_openai import FakeOpenAI
from tests.integration.test_pipeline import cli, read_jsonl, run_cli, start_cli

pytestmark = pytest.mark.integration


def test_second_cli_run_on_a_folder_is_refused_and_the_first_is_unharmed(
    fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path
):
    out = tmp_path / "shared"
    fake_openai.delay = 0.05
    args = cli(fake_openai, small_seeds, out, tmp_path / "c.sqlite", "-n", "40")
    first = start_cli(args, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "state.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before the second could start"

    second = run_cli(args, timeout=120)
    assert second.returncode == 2, second.stderr
    assert str(out) in second.stderr and f"pid {first.pid}" in second.stderr

    _, stderr = first.communicate(timeout=240)
    assert first.returncode == 0, stderr
    records = read_jsonl(out / "instructions.jsonl")
    assert len({r["id"] for r in records}) == len(records)  # nothing written twice
    assert len(json.loads((out / "alpaca.json").read_text())) >= 40


def test_the_lock_is_per_open_file_and_dies_with_its_holder(tmp_path: Path):
    folder = RunFolder(tmp_path / "f")
    folder.lock()
    with pytest.raises(RunFolderBusy, match=rf"pid {os.getpid()}"):
        RunFolder(tmp_path / "f").lock()  # two runs in one process conflict too
    folder.unlock()
    RunFolder(tmp_path / "f").lock()  # released: anyone may take it

    # a holder killed with -9 leaves no stale lock: the kernel drops it with the process
    code = "import sys, time; from generator.run_folder import RunFolder; from pathlib import Path; "
    code += "RunFolder(Path(sys.argv[1])).lock(); print('locked', flush=True); time.sleep(60)"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "g")], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunFolderBusy, match=rf"pid {holder.pid}"):
        RunFolder(tmp_path / "g").lock()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    RunFolder(tmp_path / "g").lock()
