"""Stop a private Ray's processes once the process that started them is gone, even after `kill -9`.

Ray ties gcs_server and raylet to the driver that starts them (PR_SET_PDEATHSIG), and the workers die
with raylet; but the dashboard and runtime-env agents that raylet starts outlive a killed driver by a
minute: each spends 60 s trying to report raylet's death to a GCS that is gone (measured with Ray 2.60).
So `tagged_start()` starts this file as a small watcher process holding the read end of a pipe, and
puts a token in the environment that the Ray processes started inside it inherit; the driver then
tells the watcher its session folder. When the pipe closes (the driver shut Ray down, or died), the
watcher kills every process of this user that carries the token, or that is one of Ray's (`ray::...`
or a program in Ray's package) with a file open in that session folder: the agents rename themselves
with setproctitle, which can overwrite what /proc shows of their environment. Then it exits.
Run as a script (`python -I ray_watch.py TOKEN DRIVER_PID RAY_DIR`): it imports nothing of ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

TOKEN_VAR = "SYNTH_INSTRUCT_RAY_RUN"
_REAP_FOR_S = 5.0  # a raylet dying as we look may still start a worker: look again until none is left


class Watch:
    """The driver's end of a watcher: `close()` (or the driver's death) makes it reap and exit."""

    def __init__(self, token: str, ray_dir: str) -> None:
        self.token = token
        read, self._write = os.pipe()  # not inheritable: only the driver holds the write end
        self.proc = subprocess.Popen(
            [sys.executable, "-I", __file__, token, str(os.getpid()), ray_dir],
            stdin=read,
            stdout=subprocess.DEVNULL,
            close_fds=True,
        )
        os.close(read)

    def tell(self, session_dir: str) -> None:
        """The Ray session's folder, whose open files mark Ray processes the token may not."""
        if self._write >= 0:
            os.write(self._write, os.fsencode(session_dir) + b"\n")

    def close(self) -> None:
        """Reap what a clean `ray.shutdown()` left (usually nothing) and wait for the watcher."""
        if self._write >= 0:
            os.close(self._write)
            self._write = -1
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(_REAP_FOR_S + 5)


@contextlib.contextmanager
def tagged_start(ray_dir: str) -> Iterator[Watch | None]:
    """Inside the block, processes started (and the processes they start) carry a fresh token; the
    watcher is started first. None where /proc is missing (not Linux): Ray's own reaper covers that."""
    if not os.path.isdir("/proc/self"):
        yield None
        return
    watch = Watch(f"{os.getpid()}-{os.urandom(6).hex()}", ray_dir)
    os.environ[TOKEN_VAR] = watch.token
    try:
        yield watch
    except BaseException:
        watch.close()
        raise
    finally:
        # Only Ray's processes carry it: a tool the driver starts later must not be reaped with them.
        os.environ.pop(TOKEN_VAR, None)


def leftovers(token: str, session_dir: bytes | None, ray_dir: bytes, spare: set[int]) -> list[int]:
    """Live processes (of our user: only theirs can be read) carrying the token, or Ray's own with a
    file open in `session_dir`."""
    entry = f"{TOKEN_VAR}={token}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in spare:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if entry in f.read().split(b"\0"):
                    found.append(int(name))
                    continue
            if session_dir and _is_ray(name, ray_dir) and _uses(name, session_dir):
                found.append(int(name))
        except OSError:  # gone, a zombie, or another user's
            continue
    return found


def _is_ray(pid: str, ray_dir: bytes) -> bool:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    return argv[0].startswith(b"ray::") or any(arg.startswith(ray_dir) for arg in argv)


def _uses(pid: str, folder: bytes) -> bool:
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(os.fsencode(f"/proc/{pid}/fd/{fd}")).startswith(folder):
                return True
    return False


def _main(token: str, driver: int, ray_dir: str) -> None:
    # Ctrl+C and `kill` reach the whole terminal group: the driver handles them and this waits for it.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    told = b""
    while chunk := os.read(0, 4096):  # EOF: the driver closed its end, or died
        told += chunk
    lines = told.split(b"\n")
    session_dir = (lines[-2] + b"/") if len(lines) > 1 else None
    spare, ray_path = {os.getpid(), driver}, os.fsencode(ray_dir)
    deadline = time.monotonic() + _REAP_FOR_S
    while (pids := leftovers(token, session_dir, ray_path, spare)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


if __name__ == "__main__":
    _main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
