"""Stop a private Ray's processes once the process that started them is gone, even after `kill -9`.

Ray ties gcs_server and raylet to the driver that starts them (PR_SET_PDEATHSIG), and the workers die
with raylet; but the dashboard and runtime-env agents that raylet starts outlive a killed driver by a
minute: each spends 60 s trying to report raylet's death to a GCS that is gone (measured with Ray 2.60).
So `tagged_start()` puts a token in the environment that every Ray process started inside it inherits,
and starts this file as a small watcher process holding the read end of a pipe. When the pipe closes
(the driver shut Ray down, or died), the watcher kills every process of this user that carries the token
and exits. Run as a script (`python -I ray_watch.py TOKEN DRIVER_PID`): it imports nothing of ours.
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

    def __init__(self, token: str) -> None:
        self.token = token
        read, self._write = os.pipe()  # not inheritable: only the driver holds the write end
        self.proc = subprocess.Popen(
            [sys.executable, "-I", __file__, token, str(os.getpid())],
            stdin=read,
            stdout=subprocess.DEVNULL,
            close_fds=True,
        )
        os.close(read)

    def close(self) -> None:
        """Reap what a clean `ray.shutdown()` left (usually nothing) and wait for the watcher."""
        if self._write >= 0:
            os.close(self._write)
            self._write = -1
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(_REAP_FOR_S + 5)


@contextlib.contextmanager
def tagged_start() -> Iterator[Watch | None]:
    """Inside the block, processes started (and the processes they start) carry a fresh token; the
    watcher is started first. None where /proc is missing (not Linux): Ray's own reaper covers that."""
    if not os.path.isdir("/proc/self"):
        yield None
        return
    watch = Watch(f"{os.getpid()}-{os.urandom(6).hex()}")
    os.environ[TOKEN_VAR] = watch.token
    try:
        yield watch
    except BaseException:
        watch.close()
        raise
    finally:
        # Only Ray's processes carry it: a tool the driver starts later must not be reaped with them.
        os.environ.pop(TOKEN_VAR, None)


def tagged(token: str, spare: set[int]) -> list[int]:
    """Live processes whose environment holds `TOKEN_VAR=token` (readable only for our own user)."""
    entry = f"{TOKEN_VAR}={token}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in spare:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if entry in f.read().split(b"\0"):
                    found.append(int(name))
        except OSError:  # gone, a zombie, or another user's
            continue
    return found


def _main(token: str, driver: int) -> None:
    # Ctrl+C and `kill` reach the whole terminal group: the driver handles them and this waits for it.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    while os.read(0, 4096):  # EOF: the driver closed its end, or died
        pass
    spare = {os.getpid(), driver}
    deadline = time.monotonic() + _REAP_FOR_S
    while (pids := tagged(token, spare)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


if __name__ == "__main__":
    _main(sys.argv[1], int(sys.argv[2]))
