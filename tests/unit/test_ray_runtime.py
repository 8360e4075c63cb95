"""One Ray runtime for every run of a process: the last run out shuts down only a Ray a run started."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = r"""
import json, threading
import ray
from generator.ray_runtime import ray_runtime

seen = {}
inside = threading.Barrier(2)
leave_first = threading.Event()

def run(name, wait):
    with ray_runtime(None):
        inside.wait()            # both runs are inside the same runtime
        seen[name + "_inside"] = ray.is_initialized()
        if wait:
            leave_first.wait()   # the other run leaves first...
            seen["after_other_left"] = ray.is_initialized()  # ...and Ray is still up for this one
    if not wait:
        leave_first.set()

a = threading.Thread(target=run, args=("a", True))
b = threading.Thread(target=run, args=("b", False))
a.start(); b.start(); a.join(); b.join()
seen["after_both"] = ray.is_initialized()   # the last one out shut down the Ray they started

ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)  # someone else's Ray
with ray_runtime(None):
    pass
seen["foreign_kept"] = ray.is_initialized()
print(json.dumps(seen))
"""


def test_runs_share_one_runtime_and_the_last_out_shuts_it_down():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {
        "a_inside": True,
        "b_inside": True,
        "after_other_left": True,
        "after_both": False,
        "foreign_kept": True,
    }
