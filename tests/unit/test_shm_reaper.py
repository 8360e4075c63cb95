"""Unit tests for the /dev/shm watchdog that cleans up after a killed vLLM engine actor."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from generator.teachers import shm_reaper


@pytest.mark.skipif(
    not Path("/dev/shm").is_dir() or not Path("/proc/self/stat").exists(), reason="Linux only"
)
def test_watchdog_cleans_up_after_a_killed_actor(tmp_path: Path) -> None:
    """A stand-in 'actor' and 'engine' process are SIGKILLed; the watchdog kills the engine and
    unlinks the segment the engine left, but not a segment some live process still maps."""
    actor = subprocess.Popen(["sleep", "60"])
    engine = subprocess.Popen(["sleep", "60"])
    leaked = Path("/dev/shm") / f"psm_synthtest_{uuid.uuid4().hex[:8]}"
    leaked.write_bytes(b"x" * 16)
    in_use = Path("/dev/shm") / f"psm_synthtest_{uuid.uuid4().hex[:8]}"
    in_use.write_bytes(b"x" * 16)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import mmap,time; f=open({str(in_use)!r},'r+b'); m=mmap.mmap(f.fileno(),16); time.sleep(60)",
        ]
    )
    state = tmp_path / "engine.state"
    start = shm_reaper.proc_starttime(engine.pid)
    state.write_text(f"pid {engine.pid} {start}\nshm {leaked.name}\nshm {in_use.name}\n")
    try:
        time.sleep(0.5)  # let the holder map its segment
        assert shm_reaper.launch_watchdog(actor.pid, str(state)) == 0
        actor.kill()
        actor.wait()
        deadline = time.monotonic() + 20
        while (leaked.exists() or engine.poll() is None) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert engine.poll() is not None, "the engine process outlived its actor"
        assert not leaked.exists(), "the segment was not unlinked"
        assert in_use.exists(), "a segment a live process maps was unlinked"
    finally:
        for p in (actor, engine, holder):
            p.kill()
            p.wait()
        for f in (leaked, in_use):
            if f.exists():
                os.unlink(f)


def watchdog_pids(state: Path) -> list[int]:
    """The pids of the watchdogs watching this state file (found by their command line)."""
    pids = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:  # the process ended
            continue
        if shm_reaper.WATCHDOG_MODULE.encode() in argv and str(state).encode() in argv:
            pids.append(int(entry))
    return pids


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux only")
def test_watchdog_exits_when_the_state_file_goes(tmp_path: Path) -> None:
    """After a clean shutdown the actor deletes the state file; the watchdog must then leave."""
    actor = subprocess.Popen(["sleep", "60"])
    state = tmp_path / "engine.state"
    state.write_text("")
    try:
        assert shm_reaper.launch_watchdog(actor.pid, str(state)) == 0
        # The launcher has exited: the process still running with this command line is its
        # detached child, the watchdog itself.
        deadline = time.monotonic() + 10
        while not (pids := watchdog_pids(state)) and time.monotonic() < deadline:
            time.sleep(0.1)
        (pid,) = pids
        state.unlink()
        deadline = time.monotonic() + 10
        while shm_reaper.proc_starttime(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert shm_reaper.proc_starttime(pid) is None, "the watchdog did not exit"
    finally:
        actor.kill()
        actor.wait()
