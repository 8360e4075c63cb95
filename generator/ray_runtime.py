"""One Ray runtime for every run in a process.

Several runs may share a process (the REST service runs each job in a thread). Each run enters
`ray_runtime()`; the first starts Ray (or joins `--ray-address`) unless the caller already did, and the
last one out shuts down only a Ray that a run started. A Ray started by someone else (a test fixture,
a notebook) is never shut down here.

Without an address a run starts a private local Ray whatever else is on the machine: plain
`ray.init()` would join the cluster named by `RAY_ADDRESS` or by `ray start`'s address file (running or
left behind by a killed head) and then refuse our `num_cpus`. Two runs at once each have their own.
A private Ray's processes die with the driver, even after `kill -9`: Ray ties gcs_server and raylet to
it and `generator/ray_watch.py` stops the agents that would outlive it by a minute. With an address, a
cluster nothing answers at is one line (`RayUnavailable`, exit code 2) in a few seconds, not Ray's
traceback after a long wait.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

import ray

from generator.errors import RayUnavailable
from generator.ray_watch import Watch, tagged_start

log = logging.getLogger("synth_instruct")

_lock = threading.Lock()
_users = 0  # runs inside a Ray that `ray_runtime` started
_started_here = False
_watch: Watch | None = None  # the watcher of the private Ray this process started, if any
PROBE_TIMEOUT_S = 5.0  # a cluster's GCS answers a TCP connect at once; a firewall drops it silently


def init_ray(address: str | None, modules: Sequence[ModuleType] = ()) -> None:
    """Start a private local Ray (`address` None) or join a cluster, with settings for a small machine.

    `modules`: packages a cluster's workers need besides `generator` and `filters` (the service's)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file for a local, single-user cluster
    if address:
        _join(address, modules)
    else:
        _start_private()


def _start_private() -> None:
    """A new local Ray of this process's own, saying what it did not join."""
    from ray._private.utils import get_ray_address_file, read_ray_address

    # Popped, not just overridden: the Ray processes and workers started below inherit the environment.
    ignored = os.environ.pop("RAY_ADDRESS", None)
    if ignored:
        log.info(
            "ignoring RAY_ADDRESS=%s from the environment: this run starts its own Ray "
            "(--ray-address %s joins that cluster)",
            ignored,
            ignored,
        )
    recorded = read_ray_address(None)
    if recorded:
        state = "running" if _answers(recorded, 1.0) is None else "not answering, left by a head that died"
        log.info(
            "not joining the Ray cluster at %s (%s; recorded in %s): this run starts its own Ray "
            "(--ray-address auto joins that cluster)",
            recorded,
            state,
            get_ray_address_file(None),
        )
    global _watch
    with tagged_start(os.path.dirname(ray.__file__)) as watch:  # see ray_watch.py
        context = ray.init(
            address="local",  # never RAY_ADDRESS or the address file: see the module's docstring
            num_cpus=os.cpu_count() or 2,
            include_dashboard=False,
            object_store_memory=256 * 1024**2,  # the default (30% of /dev/shm) is far more than we need
            log_to_driver=False,
            configure_logging=False,
        )
    if watch is not None:
        watch.tell(context.address_info["session_dir"])  # type: ignore[attr-defined]  # a RayContext
    _watch = watch


def _join(address: str, modules: Sequence[ModuleType]) -> None:
    """Join the cluster at `address` (`auto`: the one on this machine), or raise `RayUnavailable`."""
    import filters
    import generator

    concrete = _auto(address) if address == "auto" else address
    target = _gcs_address(concrete)
    named = concrete if target == concrete else f"{target} (--ray-address {address})"
    reason = _answers(target, PROBE_TIMEOUT_S)
    if reason is None and not concrete.startswith("ray://"):
        reason = _gcs_answers(target)
    if reason is not None:
        raise RayUnavailable(f"cannot reach the Ray cluster at {named}: {reason}")
    try:
        # A cluster's workers need our code: ship the packages with the job.
        ray.init(
            address=concrete,
            runtime_env={"py_modules": [generator, filters, *modules]},
            log_to_driver=False,
        )
    except ConnectionError as exc:  # it went away between the check and the join
        raise RayUnavailable(f"cannot join the Ray cluster at {named}: {exc}") from None
    log.info("joined the Ray cluster at %s", named)


def _auto(address: str) -> str:
    """`auto`: RAY_ADDRESS, else the address `ray start --head` recorded on this machine. Not Ray's own
    last resort, any GCS process running here: that may be another run's private Ray, gone with it."""
    from ray._private.utils import get_ray_address_file, read_ray_address

    found = os.environ.get("RAY_ADDRESS") or read_ray_address(None)
    if not found:
        raise RayUnavailable(
            f"--ray-address auto: no Ray cluster recorded on this machine (no RAY_ADDRESS, no "
            f"{get_ray_address_file(None)}): start one with `ray start --head`, or name its host:port"
        )
    return found


def _gcs_address(address: str) -> str:
    """host:port to probe for `address` (host:port or ray://host:port)."""
    from ray._private.services import canonicalize_bootstrap_address

    if address.startswith("ray://"):
        return address.removeprefix("ray://").rstrip("/")
    try:
        found = canonicalize_bootstrap_address(address)  # Ray's spelling: localhost becomes the node's IP
    except ValueError:
        raise RayUnavailable(
            f"--ray-address {address}: not an address (host:port, ray://host:port or auto)"
        ) from None
    return found or address


def _answers(target: str, timeout: float) -> str | None:
    """None when something accepts a TCP connection at host:port `target`, else why not."""
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except ValueError:
        return "not a host:port address"
    except TimeoutError:
        return f"no answer in {timeout:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


def _gcs_answers(target: str) -> str | None:
    """None when a Ray GCS answers at `target`. Something else listening there (a wrong port) would
    keep `ray.init` retrying for many minutes; this gives up after about 13 s."""
    try:
        # Ray's own GCS client, with a timeout of our choosing (plain GcsClient's is Ray's, and long)
        from ray._raylet import InnerGcsClient  # type: ignore[attr-defined]
    except ImportError:  # another Ray version: ray.init's own (long) wait is left
        return None
    try:
        InnerGcsClient.standalone(target, None, int(PROBE_TIMEOUT_S * 1000))
    except Exception:  # RpcError: no GCS; the message is Ray's generic "timed out"
        return "something answers there, but not a Ray cluster's GCS"
    return None


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
                    _stop_watch()


def _stop_watch() -> None:
    """After `ray.shutdown()`: the watcher kills what the shutdown left behind, and exits."""
    global _watch
    if _watch is not None:
        _watch.close()
        _watch = None
