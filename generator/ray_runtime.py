"""One Ray runtime for every run in a process.

Several runs may share a process (the REST service runs each job in a thread). Each run enters
`ray_runtime()`; the first starts Ray (or joins `--ray-address`) unless the caller already did, and the
last one out shuts down only a Ray that a run started. A Ray started by someone else (a test fixture,
a notebook) is never shut down here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import ray

_lock = threading.Lock()
_users = 0  # runs inside a Ray that `ray_runtime` started
_started_here = False


def init_ray(address: str | None) -> None:
    """Start (or join) Ray with settings that suit a small machine."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file for a local, single-user cluster
    if address:
        # A cluster's workers need our code: ship the two packages with the job.
        import filters
        import generator

        ray.init(address=address, runtime_env={"py_modules": [generator, filters]}, log_to_driver=False)
        return
    ray.init(
        num_cpus=os.cpu_count() or 2,
        include_dashboard=False,
        object_store_memory=256 * 1024**2,  # the default (30% of /dev/shm) is far more than records need
        log_to_driver=False,
        configure_logging=False,
    )


@contextmanager
def ray_runtime(address: str | None) -> Iterator[None]:
    """Ray is up inside the block; it is shut down after the last run that needed it to start it."""
    global _users, _started_here
    with _lock:
        if not ray.is_initialized():
            init_ray(address)
            _started_here = True
        if _started_here:
            _users += 1
        counted = _started_here
    try:
        yield
    finally:
        if counted:
            with _lock:
                _users -= 1
                if _users == 0 and _started_here:
                    ray.shutdown()
                    _started_here = False
