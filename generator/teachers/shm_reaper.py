"""What a vLLM engine leaves in /dev/shm and in the process table, and the watchdog that reaps it.

When Ray kills an engine actor (ray.kill, the driver exiting without close(), an OOM kill) it
SIGKILLs it and its direct children: no atexit, no signal handler, so vLLM cannot unlink its /dev/shm
segments (167 MB + 252 MB for the embedded model, engine-notes A) or its multiprocessing semaphores.

- `EngineTracker`, inside the actor: notes the engine's processes and the /dev/shm names they map or
  create, keeps them in a state file, starts the watchdog, and after a clean engine shutdown unlinks
  what is left and deletes the state file.
- The watchdog, this module run as a program (plain python: stdlib only, no vllm import):

      python -m generator.teachers.shm_reaper <actor pid> <state file>

  It double-forks into its own session so it outlives the actor and polls the actor; once the actor
  is gone it kills the engine's processes still running and unlinks the segments the engine had
  mapped that no live process maps any more. When the state file disappears (the actor shut its
  engine down cleanly) it just exits.

State file lines: "pid <pid> <starttime>" and "shm <name>" (a name under /dev/shm).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sized
from pathlib import Path

WATCHDOG_MODULE = "generator.teachers.shm_reaper"
# The folder `generator` is imported from (a checkout, site-packages or Ray's copy of py_modules):
# the watchdog runs from it, so `-m` finds the very code the actor runs.
_IMPORT_ROOT = str(Path(__file__).resolve().parents[2])
POLL_S = 1.0  # how often the watchdog looks at the actor

# What vLLM's processes leave in /dev/shm: multiprocessing.shared_memory blocks (message queues) and
# multiprocessing's named semaphores. Ray's own files (plasma*) and others' are never touched.
_SHM_PREFIXES = ("psm_", "sem.mp-", "sem.loky-")


# -- /proc and /dev/shm ---------------------------------------------------------------------------------


def proc_starttime(pid: int, *, running: bool = False) -> str | None:
    """Field 22 of /proc/<pid>/stat: with the pid, it identifies one process for its whole life.

    `running=True` also says None for a zombie (a process that has ended counts as gone).
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if running and fields[0] == "Z" else fields[19]
    except (OSError, IndexError):
        return None


def _maps_entries(pids: Iterable[int | str]) -> set[str]:
    """What follows "/dev/shm/" in these processes' memory maps, as the kernel writes it."""
    names: set[str] = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as f:
                names.update(line.split("/dev/shm/", 1)[1].strip() for line in f if "/dev/shm/" in line)
        except OSError:
            continue
    return names


def _mapped_shm(pids: list[int]) -> set[str]:
    """Names under /dev/shm that these processes have mapped (vLLM's queues and semaphores)."""
    return {n.removesuffix(" (deleted)") for n in _maps_entries(pids) if "/" not in n}


def _loky_semaphores(pids: Iterable[int]) -> list[str]:
    """joblib/loky semaphores carry their creator's pid: "sem.loky-<pid>-<random>"."""
    prefixes = tuple(f"sem.loky-{pid}-" for pid in pids)
    return [n for n in os.listdir("/dev/shm") if n.startswith(prefixes)]


def _unlink_quietly(paths: Iterable[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


# -- inside the actor ---------------------------------------------------------------------------------


class EngineTracker:
    """The processes and /dev/shm names of one engine, kept in the watchdog's state file.

    `record` is cumulative (a process or name seen once stays listed; the watchdog re-checks each
    before acting). `close` ends the recording for good: no record after it can bring the state
    file back.
    """

    def __init__(self) -> None:
        self.closed = False
        self.state_file = ""
        self.shm: set[str] = set()  # /dev/shm names this engine mapped or created
        self.pids: list[int] = []  # the actor's descendants seen so far
        self._tracked_names: set[str] = set()
        self._pid_starts: dict[int, str] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the watchdog on this process and note multiprocessing's names from now on."""
        self._start_watchdog()
        self._track_mp_resources()

    def _start_watchdog(self) -> None:
        import tempfile

        fd, self.state_file = tempfile.mkstemp(prefix="synth-instruct-engine-", suffix=".state")
        os.close(fd)
        launch_watchdog(os.getpid(), self.state_file)

    def _track_mp_resources(self) -> None:
        """Note every named semaphore / shared-memory block multiprocessing creates in this process.

        glibc maps a semaphore under a temporary name before linking it to its real one, so
        /proc/<pid>/maps cannot attribute `sem.mp-*` files; multiprocessing's resource tracker
        registration can (the tracker process would unlink them, but Ray kills it with the actor).
        """
        from multiprocessing import resource_tracker

        original = resource_tracker.register

        def register(name: Sized, rtype: str) -> None:
            self._tracked_names.add(str(name))
            original(name, rtype)

        resource_tracker.register = register

    @staticmethod
    def _descendants() -> list[int]:
        try:
            import psutil

            return [p.pid for p in psutil.Process().children(recursive=True)]
        except Exception:
            return []

    def record(self) -> None:
        """Tell the watchdog which processes and /dev/shm names belong to this engine."""
        with self._lock:
            if self.closed:
                return
            pids = self._descendants()
            for pid in pids:
                if pid not in self._pid_starts and (start := proc_starttime(pid)):
                    self._pid_starts[pid] = start
            self.pids = sorted(self._pid_starts)
            tracked = {
                ("sem." if name.lstrip("/").startswith("mp-") else "") + name.lstrip("/")
                for name in self._tracked_names
            }
            mapped = _mapped_shm([os.getpid(), *pids])
            self.shm |= {n for n in mapped | tracked if n.startswith(_SHM_PREFIXES)}
            lines = [f"pid {pid} {start}" for pid, start in sorted(self._pid_starts.items())]
            lines += [f"shm {name}" for name in sorted(self.shm)]
            tmp = self.state_file + ".tmp"
            with contextlib.suppress(OSError):
                with open(tmp, "w") as f:
                    f.write("\n".join(lines) + "\n")
                os.replace(tmp, self.state_file)  # the watchdog never reads a half-written file

    def close(self) -> bool:
        """Stop recording; False if it already was (the caller's shutdown has run, or is running)."""
        with self._lock:  # after this no record() can bring the state file back
            if self.closed:
                return False
            self.closed = True
            return True

    def reap(self) -> None:
        """After the engine's shutdown: unlink what it left and delete the state file.

        vLLM unlinks its segments on a clean shutdown; if a worker crashed it may not have. Only
        names this engine mapped, and only once no process maps them (other engines on this host
        have their own).
        """
        still_mapped = _mapped_shm([int(p) for p in os.listdir("/proc") if p.isdigit()])
        with contextlib.suppress(OSError):
            self.shm |= set(_loky_semaphores([os.getpid(), *self.pids]))
        _unlink_quietly(os.path.join("/dev/shm", name) for name in self.shm - still_mapped)
        if self.state_file:  # its disappearance tells the watchdog to exit
            _unlink_quietly((self.state_file + ".tmp", self.state_file))


# -- the watchdog -------------------------------------------------------------------------------------


def launch_watchdog(actor: int, state: str) -> int:
    """Start a watchdog on process `actor`; returns the launcher's exit status (0: it is running)."""
    launcher = subprocess.Popen(
        [sys.executable, "-m", WATCHDOG_MODULE, str(actor), state],
        cwd=_IMPORT_ROOT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # out of the actor's process group: Ctrl+C and group kills miss it
    )
    return launcher.wait(timeout=30)  # the launcher forks the watchdog and exits at once


def watch(actor: int, state: str) -> None:
    """Wait for the actor to end, then reap what its engine left (nothing if the state file went)."""
    actor_start = proc_starttime(actor, running=True)
    while actor_start is not None and proc_starttime(actor, running=True) == actor_start:
        if not os.path.exists(state):
            return
        time.sleep(POLL_S)
    try:
        with open(state) as f:
            lines = f.read().splitlines()
    except OSError:
        return
    pids = [(int(line.split()[1]), line.split()[2]) for line in lines if line.startswith("pid ")]
    names = [line[4:] for line in lines if line.startswith("shm ")]
    names += _loky_semaphores([*(pid for pid, _ in pids), actor])
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, start in pids:
            if proc_starttime(pid, running=True) == start:  # the same process, not a recycled pid
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
        time.sleep(1.0)
    mapped = _maps_entries(entry for entry in os.listdir("/proc") if entry.isdigit())
    _unlink_quietly(os.path.join("/dev/shm", n) for n in names if n not in mapped and "/" not in n)
    _unlink_quietly((state, state + ".tmp"))


def main(argv: list[str] | None = None) -> None:
    if os.fork():
        os._exit(0)  # the launcher exits at once; the orphaned child lives on outside the actor's tree
    args = sys.argv[1:] if argv is None else argv
    watch(int(args[0]), args[1])


if __name__ == "__main__":
    main()
