"""The sandbox against hostile code: each containment is proved by its effect, under every isolation
this host has (bwrap, unshare, none); a test that needs what an isolation does not give skips, naming
what is missing."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from generator import sandbox_child as child
from generator.sandbox import Limits, run_many, run_python

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QUICK = Limits(timeout_s=3.0)


def _isolations(*needs: str) -> list[object]:
    return [
        pytest.param(
            i, marks=pytest.mark.skipif(not child.works(i), reason=f"{i} does not work on this host")
        )
        for i in child.ISOLATIONS
        if i in needs or not needs
    ]


def _unprivileged(isolation: str) -> bool:
    """Whether the child runs as a uid the limits bind (not root): nobody when we are root."""
    return os.geteuid() != 0 or child.child_uid(isolation) >= 0


def _needs_unprivileged(isolation: str, what: str) -> None:
    if not _unprivileged(isolation):
        pytest.skip(
            f"under {isolation} the child stays root here (this Python is hidden from nobody): {what}"
        )


def _needs_file_protection(isolation: str) -> None:
    if isolation != "bwrap" and not (os.geteuid() == 0 and child.child_uid(isolation) >= 0):
        pytest.skip(f"{isolation} gives no read-only view, and the child runs as a uid that owns files here")


def _leftovers(marker: str) -> list[int]:
    """Processes whose command line carries `marker` (the test's own hostile programs)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(entry.path, "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry.name))
    return found


@pytest.fixture
def visible_dir() -> Iterator[Path]:
    """A directory outside /tmp (bwrap hides /tmp) that others may enter: the child sees into it."""
    base = "/var/tmp" if os.path.isdir("/var/tmp") else None
    path = Path(tempfile.mkdtemp(prefix="sandbox-test-", dir=base))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- the basics -----------------------------------------------------------------------------------


@pytest.mark.parametrize("isolation", _isolations())
def test_a_passing_program_is_ok_with_its_output(isolation: str) -> None:
    r = run_python("import sys\nprint('hello')\nprint('warn', file=sys.stderr)", QUICK, isolation=isolation)
    assert (r.status, r.exit_code, r.stdout, r.stderr) == ("ok", 0, "hello\n", "warn\n")
    assert r.isolation == isolation


@pytest.mark.parametrize("isolation", _isolations())
def test_an_exception_is_an_error_with_the_programs_own_traceback(isolation: str) -> None:
    r = run_python("def f():\n    assert 1 + 1 == 3, 'math'\nf()\n", QUICK, isolation=isolation)
    assert (r.status, r.exit_code) == ("error", 1)
    assert r.stderr.splitlines()[-1] == "AssertionError: math"
    assert "main.py" in r.stderr and "_sandbox_main" not in r.stderr


@pytest.mark.parametrize("isolation", _isolations())
def test_exit_codes_and_signals_are_reported(isolation: str) -> None:
    exited = run_python("import sys\nsys.exit(3)", QUICK, isolation=isolation)
    assert (exited.status, exited.exit_code) == ("error", 3)
    killed = run_python("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", QUICK, isolation=isolation)
    assert (killed.status, killed.exit_code) == ("killed", -signal.SIGKILL)


@pytest.mark.parametrize("isolation", _isolations())
def test_the_program_runs_as_main_in_a_writable_fresh_dir_with_a_fixed_hash_seed(isolation: str) -> None:
    source = (
        "import os, sys\n"
        "open('scratch.txt', 'w').write('x')\n"
        "print(__name__, sorted(os.listdir('.')), hash('abc'), os.getcwd() == os.environ['HOME'])\n"
    )
    first, second = (run_python(source, QUICK, isolation=isolation) for _ in range(2))
    assert first.status == "ok", first.stderr
    assert first.stdout.split(" ", 1)[0] == "__main__"
    assert "['main.py', 'scratch.txt']" in first.stdout and first.stdout.endswith("True\n")
    assert first.stdout == second.stdout  # a fresh dir each time (no scratch.txt left) and one hash


def test_run_many_keeps_the_order_of_its_sources() -> None:
    results = run_many([f"print({i})" for i in range(6)], QUICK, parallel=2)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(6)]


# -- hostile code ---------------------------------------------------------------------------------


@pytest.mark.parametrize("isolation", _isolations())
def test_an_infinite_loop_is_stopped_by_the_wall_clock(isolation: str) -> None:
    r = run_python("while True:\n    pass", Limits(timeout_s=1.0), isolation=isolation)
    assert r.status == "timeout"
    assert r.exit_code == -signal.SIGKILL


@pytest.mark.parametrize("isolation", _isolations())
def test_the_cpu_limit_stops_a_busy_program_before_the_wall_clock(isolation: str) -> None:
    r = run_python("while True:\n    pass", Limits(timeout_s=30.0, cpu_s=1), isolation=isolation)
    assert r.status == "timeout"
    assert r.exit_code == -signal.SIGXCPU  # the CPU limit's signal, not our kill


@pytest.mark.parametrize("isolation", _isolations())
def test_a_memory_hog_hits_the_memory_limit(isolation: str) -> None:
    hog = "hoard = []\nwhile True:\n    hoard.append(bytearray(10_000_000))\n"
    r = run_python(hog, Limits(timeout_s=10.0, memory_mb=256), isolation=isolation)
    assert r.status == "memory"
    assert r.stderr.rstrip().endswith("MemoryError")


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
@pytest.mark.parametrize("isolation", _isolations())
def test_printing_gigabytes_is_cut_at_the_output_cap(isolation: str, stream: str) -> None:
    flood = f"import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(10_000):\n    sys.{stream}.write(chunk)\n"
    r = run_python(flood, Limits(timeout_s=10.0, output_bytes=10_000), isolation=isolation)
    assert r.status == "output_limit"  # killed at the cap, long before 10 GB or the timeout
    assert len(getattr(r, stream)) == 10_000


@pytest.mark.parametrize("isolation", _isolations())
def test_a_fork_bomb_is_held_to_the_process_limit_and_leaves_nothing(isolation: str) -> None:
    _needs_unprivileged(isolation, "root is exempt from the process limit")
    marker = f"sandbox-bomb-{secrets.token_hex(6)}"
    # A tree of forks, 4 wide and 4 deep, so it stays bounded (341 processes) even if the limit failed;
    # every process announces the first fork refused, then sleeps until the sandbox kills it.
    bomb = (
        "import os, time\n"
        "def spawn(depth):\n"
        "    for _ in range(4):\n"
        "        try:\n"
        "            pid = os.fork()\n"
        "        except OSError as e:\n"
        "            print('fork refused', e.errno, flush=True)\n"
        "            return\n"
        "        if pid == 0:\n"
        "            if depth < 4:\n"
        "                spawn(depth + 1)\n"
        "            time.sleep(60)\n"
        "            os._exit(0)\n"
        "spawn(1)\n"
        "time.sleep(60)\n"
    )
    # exec'd with the marker in its argv, which every fork inherits: that is how we find leftovers
    source = f"import os, sys\nos.execv(sys.executable, [sys.executable, '-c', {bomb!r}, {marker!r}])\n"
    r = run_python(source, Limits(timeout_s=2.0, processes=8), isolation=isolation)
    assert r.status in {"timeout", "killed", "error"}
    assert "fork refused" in r.stdout, r.stderr  # the limit stopped it, not only the clock
    assert _leftovers(marker) == []


@pytest.mark.parametrize("isolation", _isolations())
def test_what_a_program_leaves_running_is_killed_when_it_ends(isolation: str) -> None:
    marker = f"sandbox-orphan-{secrets.token_hex(6)}"
    source = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}])\n"
        "print('started')\n"
    )
    r = run_python(source, QUICK, isolation=isolation)
    assert (r.status, r.stdout) == ("ok", "started\n"), r.stderr
    assert _leftovers(marker) == []


@pytest.mark.parametrize("isolation", _isolations())
def test_writing_outside_the_temp_dir_fails(isolation: str, tmp_path: Path, visible_dir: Path) -> None:
    _needs_file_protection(isolation)
    targets = [tmp_path / "escaped.txt", visible_dir / "escaped.txt"]
    source = (
        f"for path in {[str(t) for t in targets]!r}:\n"
        "    try:\n"
        "        open(path, 'w').write('escaped')\n"
        "        print('wrote', path)\n"
        "    except OSError as e:\n"
        "        print('refused', e.errno)\n"
    )
    r = run_python(source, QUICK, isolation=isolation)
    assert r.status == "ok", r.stderr
    assert r.stdout.count("refused") == 2 and "wrote" not in r.stdout
    assert not any(t.exists() for t in targets)


@pytest.mark.parametrize("isolation", _isolations())
def test_deleting_outside_the_temp_dir_fails(isolation: str, tmp_path: Path, visible_dir: Path) -> None:
    _needs_file_protection(isolation)
    targets = [tmp_path / "keep.txt", visible_dir / "keep.txt"]
    for t in targets:
        t.write_text("precious")
        t.chmod(0o644)
    source = (
        "import os\n"
        f"for path in {[str(t) for t in targets]!r}:\n"
        "    try:\n"
        "        os.remove(path)\n"
        "        print('deleted', path)\n"
        "    except OSError as e:\n"
        "        print('refused', e.errno)\n"
    )
    r = run_python(source, QUICK, isolation=isolation)
    assert r.status == "ok", r.stderr
    assert r.stdout.count("refused") == 2 and "deleted" not in r.stdout
    assert all(t.read_text() == "precious" for t in targets)


def test_bwrap_shows_the_rest_of_the_file_system_read_only(visible_dir: Path) -> None:
    if not child.works("bwrap"):
        pytest.skip("bwrap does not work on this host")
    source = (
        "import errno, os\n"
        f"print(os.listdir({str(visible_dir)!r}))\n"
        "try:\n"
        f"    open({str(visible_dir / 'x')!r}, 'w')\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n"
    )
    (visible_dir / "seen.txt").write_text("")
    r = run_python(source, QUICK, isolation="bwrap")
    assert r.stdout == "['seen.txt']\nEROFS\n", r.stderr  # it sees the file, and may not write beside it


@pytest.mark.parametrize("isolation", _isolations())
def test_the_parents_environment_secrets_are_not_visible(
    isolation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, value = f"SYNTH_SECRET_{secrets.token_hex(4).upper()}", secrets.token_hex(16)
    monkeypatch.setenv(name, value)
    source = (
        "import json, os\n"
        "print(json.dumps(dict(os.environ)))\n"
        "try:\n"
        f"    print(open('/proc/{os.getpid()}/environ', 'rb').read().decode(errors='replace'))\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
    )
    r = run_python(source, QUICK, isolation=isolation)
    assert r.status == "ok", r.stderr
    env = json.loads(r.stdout.splitlines()[0])
    assert name not in env and "PATH" in env  # the child did print its environment
    if isolation != "none" or child.child_uid(isolation) >= 0:  # else it may read our /proc/PID/environ
        assert name not in r.stdout and value not in r.stdout


@pytest.mark.parametrize("isolation", _isolations("bwrap", "unshare"))
def test_a_socket_to_localhost_does_not_connect(isolation: str) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        source = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'hi')\n"
            "    print('connected')\n"
            "except OSError as e:\n"
            "    print('refused', e.errno)\n"
        )
        r = run_python(source, QUICK, isolation=isolation)
        assert r.status == "ok", r.stderr
        assert r.stdout.startswith("refused")
        server.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing ever reached the server
            server.accept()


# -- the CLI --------------------------------------------------------------------------------------


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "generator.sandbox", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_prints_one_json_verdict(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text("print(6 * 7)\n")
    bad.write_text("assert 6 * 7 == 43\n")
    ok = _cli(good, "--timeout", "2")
    assert ok.returncode == 0, ok.stderr
    [line] = ok.stdout.splitlines()
    verdict = json.loads(line)
    assert (verdict["status"], verdict["exit_code"], verdict["stdout"]) == ("ok", 0, "42\n")
    assert verdict["isolation"] in child.ISOLATIONS
    failed = _cli(bad, "--timeout", "2")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["status"] == "error"
    assert "bad.py" in json.loads(failed.stdout)["stderr"]


def test_the_cli_times_a_program_out(tmp_path: Path) -> None:
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(60)\n")
    done = _cli(slow, "--timeout", "1")
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "timeout"


def test_the_cli_refuses_a_missing_file(tmp_path: Path) -> None:
    done = _cli(tmp_path / "nope.py", "--timeout", "2")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "no such file" in done.stderr and "nope.py" in done.stderr


def test_a_python_that_lives_under_tmp_runs_in_the_sandbox(tmp_path: Path):
    """A checkout made with mktemp keeps its virtualenv under /tmp, which the sandbox replaces with its
    own empty /tmp: the interpreter's folders must be bound back (a fresh clone in CI found this)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    program = tmp_path / "hello.py"
    program.write_text("import json, os\nprint(json.dumps({'cwd_is_tmp': os.getcwd().startswith('/tmp')}))\n")
    repo = Path(__file__).resolve().parents[2]
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), *site])}
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "generator.sandbox", str(program), "--timeout", "10"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    verdict = json.loads(proc.stdout)
    assert verdict["status"] == "ok", verdict
    assert json.loads(verdict["stdout"]) == {"cwd_is_tmp": True}
