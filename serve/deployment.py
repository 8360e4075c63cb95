"""The same app as a Ray Serve deployment, for a Ray cluster.

    python -m serve --ray-address auto [flags]         # joins the cluster, deploys, serves until Ctrl+C
    serve run serve.deployment:build_app data_dir=/srv/synth run='{"teacher": "openai", ...}'

One replica: jobs and their queue are state of the process that runs them (the SQLite store and the
run folders live on its node's disk), and every job in it shares one teacher. The replica builds the
app with `create_app` when it starts, so nothing of it is pickled; Serve runs its lifespan (the teacher
loads, left-over jobs resume) and routes HTTP from its proxy to it. The teacher's engines and the
workers are ordinary Ray actors, placed by the cluster.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # job progress is in job states and logs, not bars

from ray import serve
from ray.serve import Application

from serve.app import create_app
from serve.settings import ServerSettings


@serve.ingress()
class SynthInstruct:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = ServerSettings.model_validate(settings)

    def __serve_build_asgi_app__(self) -> Any:
        return create_app(self.settings)


# The replica runs job threads that wait on Ray; its requests are mostly short reads and streams.
Deployment = serve.deployment(name="synth-instruct", num_replicas=1, max_ongoing_requests=256)(SynthInstruct)


def build_app(args: dict[str, Any]) -> Application:
    """`serve run serve.deployment:build_app key=value ...`: ServerSettings fields as arguments; a
    list or mapping (`api_keys`, `run`) is given as JSON (`api_keys='["k1"]'`)."""
    parsed = {k: json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v for k, v in args.items()}
    return Deployment.bind(ServerSettings.model_validate(parsed).model_dump(mode="json"))


def serve_on_ray(settings: ServerSettings) -> int:
    """Join the cluster (`--ray-address`), deploy the app behind Serve's proxy on --host/--port, wait."""
    import serve as service
    from generator.ray_runtime import init_ray

    # A cluster's nodes need our code: the service travels with the job, as generator and filters do.
    # A cluster nothing answers at raises RayUnavailable (one line, exit code 2 in __main__).
    init_ray(settings.run["ray_address"], modules=[service])
    serve.start(http_options={"host": settings.host, "port": settings.port})
    # Inside the replica Ray is already up: the jobs join it rather than another cluster.
    job_settings = settings.model_copy(
        update={"run": {k: v for k, v in settings.run.items() if k != "ray_address"}}
    )
    serve.run(build_app(job_settings.model_dump(mode="json")), name="synth-instruct", route_prefix="/")
    print(f"synth-instruct on Ray Serve at http://{settings.host}:{settings.port}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    return 0
