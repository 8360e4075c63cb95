"""How the sandbox starts its child: the isolation wrapper, the child's environment and its bootstrap.

`generator/sandbox.py` runs untrusted Python (a teacher's solution and tests) and reads the outcome;
this module decides what the child process *is*. The layers, outermost first:

- isolation: `bwrap` (bubblewrap) gives the child new network, pid, ipc and uts namespaces, a
  read-only view of the whole file system except its own temp dir, a private /tmp capped in size and
  a /proc that shows only its own processes; when the sandbox dies, everything inside it dies.
  Without bwrap, `unshare` gives the namespaces (no network, own pids and /proc) but not the
  read-only view. Without either ("none"), only the layers below remain, and no network isolation.
- user: when we are root the child drops to `nobody` (uid 65534) before any untrusted code runs, so
  the file system's own permissions protect it and the process-count limit applies (root is exempt
  from RLIMIT_NPROC, even inside a user namespace mapped to root). bwrap can show nobody a Python
  installed where nobody may not look (a pyenv under /root); unshare and "none" cannot, so with such
  a Python they leave the child root, and say so once. Not root, the child keeps our uid.
- rlimits: CPU time, address space, file size, process count, no core dumps. They are set by the
  bootstrap, a few lines of Python that run first in the child interpreter, so no `preexec_fn` runs
  between fork and exec in a threaded parent (which can deadlock) and no extra process is started.
  RLIMIT_NPROC counts every process of the child's uid, so the child may start its allowance on top
  of what that uid runs when it starts (`tasks_of`).

The environment is scrubbed by handing the child a fixed one (`child_env`), whatever the isolation.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

ISOLATIONS = ("bwrap", "unshare", "none")  # best first
NOBODY = 65534
PATH = "/usr/local/bin:/usr/bin:/bin"

# The child's first code: set the limits, drop root, then run the file as `python FILE` would (as
# `__main__`, its directory first on sys.path). Tracebacks start at the file: the bootstrap's frame is
# cut, so a failed assert reads the same as outside the sandbox. Everything lives inside a function
# so the user's `__main__` namespace starts empty.
BOOTSTRAP = """\
def _sandbox_main():
    import os, resource, sys
    cpu, memory, file_size, processes, uid = (int(v) for v in sys.argv[1:6])
    path = sys.argv[6]
    for which, soft, hard in (
        (resource.RLIMIT_CPU, cpu, cpu + 1),  # SIGXCPU at the limit, SIGKILL a second later
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_FSIZE, file_size, file_size),
        (resource.RLIMIT_NPROC, processes, processes),
        (resource.RLIMIT_CORE, 0, 0),
    ):
        resource.setrlimit(which, (soft, hard))
    if uid >= 0:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    main = sys.modules["__main__"]
    for name in [n for n in vars(main) if not n.startswith("__")]:
        delattr(main, name)
    main.__file__ = path
    sys.argv = [path]
    sys.path[0] = os.path.dirname(path)
    try:
        with open(path, "rb") as f:
            code = compile(f.read(), path, "exec")
        exec(code, vars(main))
    except SystemExit:
        raise
    except BaseException as e:
        e = e.with_traceback(e.__traceback__.tb_next)
        sys.excepthook(type(e), e, e.__traceback__)
        sys.exit(1)
_sandbox_main()
"""


def child_env(workdir: Path) -> dict[str, str]:
    """The child's whole environment: nothing of the parent's (its secrets) gets through."""
    return {
        "PATH": PATH,
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",  # set and dict order the same on every run: verdicts are reproducible
    }


def child_uid(isolation: str) -> int:
    """The uid the child runs as: nobody when we are root, else our own (-1: no change).

    Root stays root only without bwrap and with a Python that nobody cannot read (one under /root):
    it would fail at its first import. bwrap shows nobody such a Python (`_reveal`); the others can't.
    """
    if os.geteuid() != 0:
        return -1
    if isolation == "bwrap" or not _hidden():
        return NOBODY
    _warn_root()
    return -1


@functools.cache
def _warn_root() -> None:
    logger.warning(
        "sandbox: this Python (%s) is not readable by nobody, so without bwrap the child runs as root: "
        "no process-count limit and no file system protection",
        sys.base_prefix,
    )


def interpreter_paths() -> list[Path]:
    """What the child's Python reads: its installation, its virtualenv, its import path."""
    found = {sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix, *sys.path}
    found.add(os.path.dirname(os.path.realpath(sys.executable)))
    dirs = {Path(os.path.realpath(p)) for p in found if p and os.path.isdir(p)}
    return sorted(d for d in dirs if not any(parent in dirs for parent in d.parents))


def hidden_from_others(path: Path) -> Path | None:
    """The topmost directory on the way to `path` that others may not enter (None: all can)."""
    for parent in reversed(path.parents):
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return parent
    return None


@functools.cache
def _hidden() -> dict[Path, list[Path]]:
    """Each directory that hides part of this Python from nobody, with the parts it hides."""
    hidden: dict[Path, list[Path]] = {}
    for path in interpreter_paths():
        top = hidden_from_others(path)
        if top is not None and not _in_tmp(top):  # under /tmp: `_under_tmp` binds it back
            hidden.setdefault(top, []).append(path)
    return hidden


def _in_tmp(path: Path) -> bool:
    tmp = Path("/tmp").resolve()
    return path == tmp or tmp in path.parents


def _under_tmp() -> list[str]:
    """bwrap arguments that bind back, read-only, the parts of this Python that live under /tmp (a
    virtualenv in a checkout made with mktemp): the sandbox's own empty /tmp would hide them."""
    args: list[str] = []
    for part in interpreter_paths():
        if _in_tmp(part) and part != Path("/tmp").resolve():
            between = [d for d in reversed(part.parents) if _in_tmp(d) and d != Path("/tmp").resolve()]
            for directory in between:  # open to nobody, whatever the real ones are (mktemp's are 0700)
                args += ["--perms", "0755", "--dir", str(directory)]
            args += ["--ro-bind", str(part), str(part)]
    return args


def _reveal() -> list[str]:
    """bwrap arguments that let nobody read this Python where a directory hides it (a pyenv under
    /root): an empty tmpfs over the hiding directory, then its Python parts bound back, read-only."""
    args: list[str] = []
    for top in _hidden():
        args += ["--perms", "0755", "--tmpfs", str(top)]
    for top, parts in _hidden().items():
        for part in parts:
            between = [d for d in reversed(part.parents) if top in d.parents]
            for directory in between:  # made by bwrap, they would be 0700: closed to nobody
                args += ["--perms", "0755", "--dir", str(directory)]
            args += ["--ro-bind", str(part), str(part)]
    return args


def wrapper(isolation: str, workdir: Path, tmp_bytes: int) -> list[str]:
    """The command that puts the child in its namespaces (empty for "none")."""
    if isolation == "bwrap":
        return [
            "bwrap",
            *("--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"),
            *("--size", str(tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp"),
            *_under_tmp(),
            *(_reveal() if os.geteuid() == 0 else []),
            *("--bind", str(workdir), str(workdir), "--chdir", str(workdir)),
            *("--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"),
            # when bwrap is killed (our timeout kills its process group) the whole sandbox dies with
            # it; a new session keeps the child off our terminal (TIOCSTI)
            *("--die-with-parent", "--new-session", "--"),
        ]
    if isolation == "unshare":
        # --kill-child: when unshare dies, its child (pid 1 of the new pid namespace) is killed, and
        # with it every process in the namespace, even one that left our process group
        user = ["--map-root-user"] if os.geteuid() != 0 else []
        namespaces = ["--net", "--pid", "--ipc", "--uts", "--mount", "--mount-proc"]
        # pid 1 of a namespace ignores signals it has no handler for, SIGXCPU from the CPU limit
        # included, so a shell is pid 1 and Python its child; it exits 128 + N when Python dies of N
        init = ["sh", "-c", '"$@"; exit $?', "sh"]
        return ["unshare", *user, *namespaces, "--fork", "--kill-child", "--", *init]
    if isolation == "none":
        return []
    raise ValueError(f"unknown isolation {isolation!r}: one of {', '.join(ISOLATIONS)}")


def command(isolation: str, workdir: Path, script: Path, rlimits: tuple[int, int, int, int]) -> list[str]:
    """The child's whole argv: the wrapper, then this interpreter running the bootstrap on `script`.

    `rlimits` is (cpu seconds, address space bytes, file size bytes, processes). The interpreter gets
    `-s` (no user site-packages), not `-I`: isolated mode also ignores PYTHONHASHSEED, and the
    environment it would guard against is already ours.
    """
    cpu, memory, file_size, processes = rlimits
    limits = [str(v) for v in (cpu, memory, file_size, processes, child_uid(isolation))]
    return [
        *wrapper(isolation, workdir, file_size),
        sys.executable,
        "-s",
        "-c",
        BOOTSTRAP,
        *limits,
        str(script),
    ]


def exit_code(isolation: str, returncode: int) -> int:
    """The child's own exit code: bwrap and unshare's shell report death by signal N as 128 + N."""
    if isolation != "none" and 128 < returncode < 128 + 65:
        return -(returncode - 128)
    return returncode


def tasks_of(uid: int) -> int:
    """How many processes and threads `uid` runs now (RLIMIT_NPROC counts them all).

    The child's process limit is this many plus its own allowance, so what the user (or nobody)
    already runs does not eat a sandbox's allowance, and a sandbox's fork bomb stops near it.
    """
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:  # the process ended while we looked
                continue
    return count


@functools.cache
def works(isolation: str) -> bool:
    """Whether this host can run a child under `isolation` (tried once per process)."""
    if isolation == "none":
        return True
    argv = wrapper(isolation, Path("/"), 1 << 20)
    if shutil.which(argv[0]) is None:
        return False
    try:
        done = subprocess.run([*argv, "true"], capture_output=True, timeout=30, env={"PATH": PATH})
    except (OSError, subprocess.TimeoutExpired):
        return False
    if done.returncode != 0:
        logger.info("%s does not work here: %s", isolation, done.stderr.decode(errors="replace").strip())
    return done.returncode == 0


@functools.cache
def best_isolation() -> str:
    """The strongest isolation that works here; warns once when there is none."""
    found = next(i for i in ISOLATIONS if works(i))
    if found == "none":
        logger.warning(
            "sandbox: neither bwrap nor unshare works here; untrusted code runs with rlimits, a temp "
            "dir and a scrubbed environment only (no network isolation, no read-only file system). "
            "Install bubblewrap (apt-get install bubblewrap) for full isolation."
        )
    return found
