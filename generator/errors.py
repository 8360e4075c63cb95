"""The errors a run reports to its caller, each with the exit code the CLI gives it.

Bad input (`ConfigError` in `generator/config.py`, `SeedFileError` in `generator/seeds.py`, a busy run
folder, a `--ray-address` nothing answers at) is exit code 2 and happens before anything starts; a
teacher that answers nothing for several rounds in a row is exit code 1 and keeps what the run has
committed.
"""

from __future__ import annotations


class TeacherUnavailable(RuntimeError):
    """Every request of several rounds in a row failed: the teacher is down or misconfigured."""


class RunFolderBusy(RuntimeError):
    """Another live run holds the run folder's lock; the message names the folder and its pid."""


class RayUnavailable(RuntimeError):
    """`--ray-address` names a cluster that cannot be reached (exit code 2, before anything starts);
    the message is one line that names the address."""
