"""Run untrusted Python in a sandbox and say what happened: the code domain's verifier, and a CLI.

    python -m generator.sandbox FILE.py [--timeout S]     # prints one JSON verdict

A teacher's solution and tests are code nobody has read, so they run as a separate process, never in
ours: in a fresh temp dir (its cwd and HOME, deleted afterwards), with a scrubbed environment, rlimits
on CPU time, memory, file size and processes, and with bubblewrap no network and a read-only view of
the rest of the file system (`generator/sandbox_child.py` builds that process and says what each
isolation gives, and what is left where bubblewrap is missing). Here we
watch it: a wall-clock timeout kills its whole process group, stdout and stderr are read as they come
and the child is killed once either passes the output cap, so a program printing gigabytes costs
milliseconds and a bounded buffer. When the program ends, whatever it left running is killed too.

The verdict's status: ok (exit 0), error (nonzero exit: an exception, a failed assert), timeout (wall
clock or CPU limit), memory (MemoryError, or allocation failed), output_limit, killed (another signal:
a segfault, SIGKILL from elsewhere).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from generator import sandbox_child as child

__all__ = ["Limits", "SandboxResult", "isolation_available", "run_file", "run_many", "run_python"]

Status = Literal["ok", "error", "timeout", "memory", "output_limit", "killed"]

CHUNK = 1 << 16
TICK_S = 0.1  # how often a quiet child is checked for having exited or run out of time
DRAIN_S = 2.0  # after the kill, how long we wait for the rest of its output and its descendants
MB = 1 << 20
# how a Python (or C) program says an allocation failed under RLIMIT_AS
_OUT_OF_MEMORY = re.compile(r"^MemoryError\b|Cannot allocate memory|std::bad_alloc|[Oo]ut of memory", re.M)


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0  # wall clock; then the whole process group is killed -> "timeout"
    cpu_s: int = 10  # RLIMIT_CPU (SIGXCPU -> "timeout" too)
    memory_mb: int = 512  # RLIMIT_AS
    file_size_mb: int = 16  # RLIMIT_FSIZE (and the size of bwrap's private /tmp)
    processes: int = 64  # RLIMIT_NPROC, on top of what the child's uid already runs
    output_bytes: int = 64_000  # stdout and stderr each; more -> "output_limit" and the child is killed


class SandboxResult(BaseModel):
    status: Status
    exit_code: int | None  # the process's exit code, or -signal
    stdout: str  # cut to limits.output_bytes (utf-8, errors="replace")
    stderr: str
    duration_s: float
    isolation: str  # "bwrap", "unshare" or "none"


def isolation_available() -> str:
    """Which isolation this host gives: "bwrap", "unshare" or "none" (see sandbox_child)."""
    return child.best_isolation()


def run_python(source: str, limits: Limits = Limits(), *, isolation: str | None = None) -> SandboxResult:
    """Run `source` as main.py in a fresh temp dir."""
    return _run_fresh("main.py", source.encode(), limits, isolation)


def run_file(path: Path, limits: Limits = Limits(), *, isolation: str | None = None) -> SandboxResult:
    """Run a copy of the file at `path`, alone in a fresh temp dir (as the verifier runs its programs)."""
    return _run_fresh(Path(path).name, Path(path).read_bytes(), limits, isolation)


def run_many(
    sources: list[str],
    limits: Limits = Limits(),
    parallel: int | None = None,
    *,
    isolation: str | None = None,
) -> list[SandboxResult]:
    """Run each source as `run_python` does, up to `parallel` at a time (default: one per CPU); in order."""
    with ThreadPoolExecutor(max_workers=parallel or os.cpu_count() or 1) as pool:
        return list(pool.map(lambda source: run_python(source, limits, isolation=isolation), sources))


def classify(exit_code: int | None, stderr: str, stopped: str | None) -> Status:
    """The status of a finished run; `stopped` is why we killed it ("timeout", "output_limit"), if we did."""
    if stopped == "timeout":
        return "timeout"
    if stopped == "output_limit":
        return "output_limit"
    if exit_code == 0:
        return "ok"
    if _OUT_OF_MEMORY.search(stderr):
        return "memory"
    if exit_code == -signal.SIGXCPU:
        return "timeout"
    if exit_code is not None and exit_code < 0:
        return "killed"
    return "error"


# -- one run --------------------------------------------------------------------------------------


def _run_fresh(name: str, data: bytes, limits: Limits, isolation: str | None) -> SandboxResult:
    isolation = isolation or isolation_available()
    if not child.works(isolation):
        raise ValueError(f"isolation {isolation!r} does not work on this host")
    workdir = Path(tempfile.mkdtemp(prefix="synth-sandbox-"))
    try:
        script = workdir / name
        script.write_bytes(data)
        uid = child.child_uid(isolation)
        if uid >= 0:  # the child drops to this uid: its temp dir must be its own
            for path in (workdir, script):
                os.chown(path, uid, uid)
        processes = limits.processes + child.tasks_of(uid if uid >= 0 else os.getuid())
        rlimits = (limits.cpu_s, limits.memory_mb * MB, limits.file_size_mb * MB, processes)
        argv = child.command(isolation, workdir, script, rlimits)
        return _run(argv, workdir, limits, isolation)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(argv: list[str], workdir: Path, limits: Limits, isolation: str) -> SandboxResult:
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=workdir,
        env=child.child_env(workdir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, which the timeout kills whole
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    buffers = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
    cap = limits.output_bytes
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            selector.register(fd, selectors.EVENT_READ)
        stopped = _pump(selector, buffers, started + limits.timeout_s, cap, watch=proc.pid)
        # Kill the group even when the program ended well: what it left running must not outlive it.
        # The group's leader is not reaped yet, so its id cannot have been reused.
        _kill_group(proc.pid)
        proc.wait()
        # the rest of the output, until every process that held the pipes has died
        _pump(selector, buffers, time.monotonic() + DRAIN_S, cap, watch=None)
    proc.stdout.close()
    proc.stderr.close()
    if stopped != "timeout" and max(len(out), len(err)) > cap:
        stopped = "output_limit"
    code = child.exit_code(isolation, proc.returncode)
    stderr = _text(err, limits.output_bytes)
    return SandboxResult(
        status=classify(code, stderr, stopped),
        exit_code=code,
        stdout=_text(out, limits.output_bytes),
        stderr=stderr,
        duration_s=round(time.monotonic() - started, 4),
        isolation=isolation,
    )


def _pump(
    selector: selectors.BaseSelector,
    buffers: dict[int, bytearray],
    deadline: float,
    cap: int,
    watch: int | None,
) -> str | None:
    """Read the child's pipes into `buffers` (each keeps at most cap + 1 bytes) until both close.

    While the child runs (`watch` is its pid) it stops early, saying why: "timeout" at the deadline,
    "output_limit" when a buffer passes `cap`, "exited" when the child has ended but something it
    started still holds a pipe. Once the child is dead (`watch` None) it only drains, discarding
    what passes the cap, until the pipes close or the deadline passes.
    """
    while selector.get_map():
        now = time.monotonic()
        if now >= deadline:
            return "timeout"
        if watch is not None and _has_exited(watch):
            return "exited"
        for key, _ in selector.select(timeout=min(deadline - now, TICK_S)):
            chunk = os.read(key.fd, CHUNK)
            if not chunk:
                selector.unregister(key.fd)
                continue
            buffer = buffers[key.fd]
            buffer += chunk[: cap + 1 - len(buffer)]
            if len(buffer) > cap and watch is not None:
                return "output_limit"
    return None


def _has_exited(pid: int) -> bool:
    """Whether the child has ended, without reaping it (so its process group id stays ours)."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is gone: nothing left to kill
        os.killpg(pgid, signal.SIGKILL)


def _text(data: bytearray, cap: int) -> str:
    return bytes(data[:cap]).decode("utf-8", errors="replace")


# -- the CLI --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    d = Limits()
    p = argparse.ArgumentParser(
        prog="python -m generator.sandbox",
        description="Run one Python file in the sandbox the code domain's verifier uses, and print its "
        "verdict as one line of JSON (status, exit_code, stdout, stderr, duration_s, isolation).",
        epilog="Exit codes: 0 the program passed (status ok), 1 it did not, 2 bad usage.",
    )
    p.add_argument("file", type=Path, help="the Python file to run (a copy runs alone in a fresh temp dir)")
    p.add_argument(
        "--timeout", type=float, default=d.timeout_s, help="wall-clock seconds (default %(default)s)"
    )
    p.add_argument("--cpu", type=int, help=f"CPU seconds (default: {d.cpu_s}, or the timeout if longer)")
    p.add_argument("--memory-mb", type=int, default=d.memory_mb, help="address space (default %(default)s)")
    p.add_argument(
        "--file-size-mb", type=int, default=d.file_size_mb, help="largest file (default %(default)s)"
    )
    p.add_argument("--processes", type=int, default=d.processes, help="processes (default %(default)s)")
    p.add_argument(
        "--output-bytes", type=int, default=d.output_bytes, help="per stream (default %(default)s)"
    )
    p.add_argument("--isolation", choices=child.ISOLATIONS, help="default: the best this host has")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if not args.file.is_file():
        p.error(f"no such file: {args.file}")
    if args.timeout <= 0:
        p.error("--timeout must be positive")
    if args.isolation and not child.works(args.isolation):
        p.error(f"isolation {args.isolation} does not work on this host")
    limits = Limits(
        timeout_s=args.timeout,
        cpu_s=args.cpu or max(Limits.cpu_s, math.ceil(args.timeout)),
        memory_mb=args.memory_mb,
        file_size_mb=args.file_size_mb,
        processes=args.processes,
        output_bytes=args.output_bytes,
    )
    result = run_file(args.file, limits, isolation=args.isolation)
    print(result.model_dump_json())
    return 0 if result.status == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
