"""The sandbox's pure parts: how an outcome is read, and what the child is given (no process runs)."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest

from generator import sandbox_child as child
from generator.sandbox import classify


@pytest.mark.parametrize(
    ("exit_code", "stderr", "stopped", "status"),
    [
        (0, "", None, "ok"),
        (0, "", "exited", "ok"),  # ended well, something it left behind was killed
        (1, "Traceback ...\nAssertionError\n", None, "error"),
        (2, "", None, "error"),
        (1, "Traceback ...\nMemoryError\n", None, "memory"),
        (-signal.SIGABRT, "terminate called after throwing an instance of 'std::bad_alloc'", None, "memory"),
        (1, "print('MemoryError') is not one", None, "error"),
        (-signal.SIGXCPU, "", None, "timeout"),
        (-signal.SIGKILL, "", "timeout", "timeout"),
        (-signal.SIGKILL, "x" * 10, "output_limit", "output_limit"),
        (0, "", "output_limit", "output_limit"),  # it finished, but said too much
        (-signal.SIGSEGV, "", None, "killed"),
        (-signal.SIGKILL, "", None, "killed"),
    ],
)
def test_classify(exit_code: int, stderr: str, stopped: str | None, status: str) -> None:
    assert classify(exit_code, stderr, stopped) == status


def test_wrapped_deaths_by_signal_read_as_signals() -> None:
    assert child.exit_code("bwrap", 128 + signal.SIGXCPU) == -signal.SIGXCPU
    assert child.exit_code("unshare", 128 + signal.SIGKILL) == -signal.SIGKILL
    assert child.exit_code("bwrap", 3) == 3
    assert child.exit_code("none", 137) == 137  # nothing wraps it: a plain exit code
    assert child.exit_code("none", -signal.SIGKILL) == -signal.SIGKILL


def test_the_child_environment_is_fixed_whatever_ours_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    env = child.child_env(Path("/tmp/work"))
    assert set(env) == {"PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED"}
    assert env["HOME"] == "/tmp/work"


def test_hidden_from_others_finds_the_topmost_closed_directory() -> None:
    if not os.path.isdir("/var/tmp"):
        pytest.skip("needs /var/tmp, a directory everyone may enter")
    base = Path(tempfile.mkdtemp(dir="/var/tmp"))  # pytest's tmp_path sits in a closed directory
    try:
        top, deep = base / "home", base / "home" / "a" / "b"
        deep.mkdir(parents=True)
        base.chmod(0o755)
        top.chmod(0o700)
        (top / "a").chmod(0o700)
        assert child.hidden_from_others(deep) == top
        top.chmod(0o755)
        assert child.hidden_from_others(deep) == top / "a"
        (top / "a").chmod(0o755)
        assert child.hidden_from_others(deep) is None
    finally:
        shutil.rmtree(base)


def test_interpreter_paths_keep_only_the_outermost_of_nested_dirs() -> None:
    paths = child.interpreter_paths()
    assert paths
    assert not any(other in p.parents for p in paths for other in paths)
    assert any(Path(os.path.realpath(sys.executable)).is_relative_to(p) for p in paths)


def test_the_bwrap_command_isolates_and_runs_this_python_on_the_script(tmp_path: Path) -> None:
    argv = child.command("bwrap", tmp_path, tmp_path / "main.py", (5, 1 << 28, 1 << 24, 64))
    joined = " ".join(argv)
    for flag in ("--ro-bind / /", "--unshare-net", "--unshare-pid", "--die-with-parent", "--new-session"):
        assert flag in joined
    assert f"--bind {tmp_path} {tmp_path}" in joined
    limits = ["5", str(1 << 28), str(1 << 24), "64", str(child.child_uid("bwrap"))]
    assert argv[-6:-1] == limits
    assert argv[-1] == str(tmp_path / "main.py")
    assert argv[argv.index("-c") + 1] == child.BOOTSTRAP


def test_an_unknown_isolation_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown isolation"):
        child.wrapper("chroot", tmp_path, 1)
