"""A run works whatever Ray state the machine is in (issue 27), through `python -m generator.run`.

Every run here has its own Ray root (`RAY_TMPDIR`, where `ray start` records its address in
`ray/ray_current_cluster`), so no user's /tmp/ray is read or written, and a marker in its environment,
which every Ray process it starts inherits: "its own Ray processes" are the processes carrying it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.fake_openai import FakeOpenAI
from tests.serve_process import free_port

pytestmark = pytest.mark.integration

MARK = "SYNTH_TEST_RAY_MARK"


@pytest.fixture
def ray_root() -> Iterator[Path]:
    # short: Ray's socket paths under it must fit in 107 bytes
    root = Path(tempfile.mkdtemp(prefix="rs-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def env_for(root: Path, mark: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return (
        env
        | {"RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO), "RAY_TMPDIR": str(root), MARK: mark}
        | extra
    )


def cli(server: FakeOpenAI, seeds: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "generator.run", "--seeds", str(seeds), "--teacher", "openai",
        "--base-url", server.base_url, "--model", "fake", "--out", str(out), "--no-cache",
        "--seed", "3", "--prompts-per-round", "4", "--num-workers", "1", *extra,
    ]  # fmt: skip


def run(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def own_processes(root: Path, mark: str) -> list[str]:
    """Live processes carrying `MARK=mark`, or with a file (a log) open under the Ray root `root`: Ray's
    agents rename themselves with setproctitle, which can overwrite what /proc shows of their
    environment. Zombies and other users' processes cannot be read, and are skipped."""
    entry, prefix = f"{MARK}={mark}".encode(), f"{root}/"
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            proc = Path("/proc", pid)
            marked = entry in (proc / "environ").read_bytes().split(b"\0")
            if marked or any(_target(fd).startswith(prefix) for fd in (proc / "fd").iterdir()):
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{pid} {cmd[:100]}")
        except OSError:
            continue
    return found


def _target(fd: Path) -> str:
    with contextlib.suppress(OSError):
        return os.readlink(fd)
    return ""


def left_after(root: Path, mark: str, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while (found := own_processes(root, mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


@contextlib.contextmanager
def ray_head(root: Path, log: Path) -> Iterator[str]:
    """`ray start --head` in its own process group, stopped by killing that group (`ray stop` would
    stop every Ray of this user on the machine)."""
    port = free_port()
    while 10000 <= port < 20000:  # Ray keeps 10002-19999 for its workers
        port = free_port()
    args = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--port", str(port),
            "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"]  # fmt: skip
    head = subprocess.Popen(
        args, env=env_for(root, "head"), stdout=log.open("ab"), stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        address_file = root / "ray" / "ray_current_cluster"
        deadline = time.monotonic() + 120
        while not (address_file.exists() and _accepts(port)):
            assert head.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield address_file.read_text().strip()
        assert head.poll() is None, "the head must outlive the runs"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                head.wait(20)


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_running_cluster_is_left_alone_unless_asked_for(
    fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path, ray_root: Path
):
    with ray_head(ray_root, tmp_path / "head.log") as address:
        own = run(cli(fake_openai, small_seeds, tmp_path / "own", "-n", "4"), env_for(ray_root, "own"))
        assert own.returncode == 0, own.stderr
        assert f"not joining the Ray cluster at {address} (running;" in own.stderr
        joined = run(
            cli(fake_openai, small_seeds, tmp_path / "joined", "-n", "4", "--ray-address", "auto"),
            env_for(ray_root, "joined"),
        )
        assert joined.returncode == 0, joined.stderr
        assert f"joined the Ray cluster at {address}" in joined.stderr
    assert left_after(ray_root, "own", 5) == []


def test_a_stale_address_file_and_RAY_ADDRESS_are_ignored(
    fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path, ray_root: Path
):
    (ray_root / "ray").mkdir()
    stale, elsewhere = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"  # nothing listens there
    (ray_root / "ray" / "ray_current_cluster").write_text(stale)
    proc = run(
        cli(fake_openai, small_seeds, tmp_path / "o", "-n", "4"),
        env_for(ray_root, "stale", RAY_ADDRESS=elsewhere),
    )
    assert proc.returncode == 0, proc.stderr
    assert "done: 4 instructions" in proc.stdout
    assert f"ignoring RAY_ADDRESS={elsewhere} from the environment" in proc.stderr
    assert f"not joining the Ray cluster at {stale} (not answering" in proc.stderr
    assert left_after(ray_root, "stale", 5) == [], "Ray processes left after the run ended"


def _one_error_line(proc: subprocess.CompletedProcess[str], address: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the Ray cluster at"), proc.stderr
    assert address in lines[0]


def test_a_cluster_nothing_answers_at_is_one_line_and_exit_2(
    fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path, ray_root: Path
):
    port = free_port()  # closed again: nothing listens there
    started = time.monotonic()
    proc = run(
        cli(fake_openai, small_seeds, tmp_path / "o", "--ray-address", f"127.0.0.1:{port}"),
        env_for(ray_root, "x"),
    )
    _one_error_line(proc, f"127.0.0.1:{port}")
    assert time.monotonic() - started < 60
    # `auto` finds the address file of a head that died (no RAY_ADDRESS here), and names the address
    (ray_root / "ray").mkdir()
    (ray_root / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    proc = run(cli(fake_openai, small_seeds, tmp_path / "o", "--ray-address", "auto"), env_for(ray_root, "x"))
    _one_error_line(proc, f":{port} (--ray-address auto)")
    # the service the same
    serve = [sys.executable, "-m", "serve", "--no-auth", "--data-dir", str(tmp_path / "data"),
             "--port", str(free_port()), "--ray-address", f"127.0.0.1:{port}"]  # fmt: skip
    _one_error_line(run(serve, env_for(ray_root, "x")), f"127.0.0.1:{port}")
    assert fake_openai.requests == []


def test_two_runs_started_at_once_each_finish_on_a_ray_of_their_own(
    fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path, ray_root: Path
):
    def start(name: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            cli(fake_openai, small_seeds, tmp_path / name, "-n", "4"), cwd=REPO, env=env_for(ray_root, name),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip

    procs = [start("a"), start("b")]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "done: 4 instructions" in out
    sessions = {d.name for d in (ray_root / "ray").glob("session_2*")}
    assert len(sessions) == 2, sessions  # two runtimes, not one shared
    assert left_after(ray_root, "a", 5) == [] and left_after(ray_root, "b", 5) == []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_a_driver_killed_or_interrupted_mid_run_leaves_no_ray_behind(
    fake_openai: FakeOpenAI, small_seeds: Path, tmp_path: Path, ray_root: Path, sig: signal.Signals
):
    fake_openai.delay = 0.1  # a run of 500 lasts minutes: the signal lands mid-run
    out = tmp_path / "o"
    proc = subprocess.Popen(
        cli(fake_openai, small_seeds, out, "-n", "500"), cwd=REPO, env=env_for(ray_root, "victim"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        # as in a terminal: a suite started in the background inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not (out / "state.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run never committed a round"
            time.sleep(0.1)
        assert any("raylet" in p for p in own_processes(ray_root, "victim")), own_processes(
            ray_root, "victim"
        )
        proc.send_signal(sig)  # the driver alone, not its process group
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == (-9 if sig == signal.SIGKILL else 130), err
    assert left_after(ray_root, "victim", 10) == [], (
        "Ray processes of the run still running 5 s after it ended"
    )
    if sig == signal.SIGKILL:  # and what it left does not break the next run on this Ray root
        fake_openai.delay = 0.0
        after = run(cli(fake_openai, small_seeds, tmp_path / "next", "-n", "4"), env_for(ray_root, "next"))
        assert after.returncode == 0, after.stderr
        assert left_after(ray_root, "next", 5) == []
