"""The REST service on the synthetic zero-latency teacher, for benchmarks/serve_load.py.

    .venv/bin/python benchmarks/serve_app.py --port 8123 --data-dir /tmp/d --concurrency 32

It is `python -m serve` with one difference: the teacher is `ScriptedTeacher` (the synthetic teacher of
the unit tests), which answers every request at once, so what the benchmark measures is the service and
the pipeline, not a model. No auth (loopback).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from generator.teachers.scripted import ScriptedTeacher
from serve.app import create_app
from serve.settings import ServerSettings


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args()
    settings = ServerSettings(
        port=args.port,
        data_dir=args.data_dir,
        auth=False,
        concurrency=args.concurrency,
        max_queued=1000,
        max_jobs_per_key=1000,
        run={"teacher": "openai", "model": "scripted", "cache": False},
    )
    uvicorn.run(
        create_app(settings, teacher=ScriptedTeacher), host="127.0.0.1", port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()
