"""Shared fixtures: one local Ray for the session, small seed files, the fake OpenAI server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fake_openai import FakeOpenAI

REPO = Path(__file__).resolve().parent.parent
SHARED_SEEDS = REPO.parent / "shared" / "data" / "self_instruct_seed_tasks.jsonl"


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """Ray started once (about 3 s) with settings for a 2-core CI machine."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(
        address="local",  # never a cluster named by RAY_ADDRESS or a `ray start` on this machine
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024**2,
        log_to_driver=False,
        configure_logging=False,
    )
    yield
    ray.shutdown()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def small_seeds(tmp_path: Path) -> Path:
    """Twelve seed tasks (three classification) in the Self-Instruct schema."""
    rows = []
    topics = ["volcanoes", "tax forms", "chess openings", "sourdough", "rain gardens", "comets"]
    for i, topic in enumerate(topics):
        rows.append(
            {
                "id": f"s{i}",
                "name": f"explain_{i}",
                "instruction": f"Explain {topic} to a curious teenager.",
                "instances": [{"input": "", "output": f"{topic} explained."}],
                "is_classification": False,
            }
        )
        rows.append(
            {
                "id": f"c{i}",
                "name": f"label_{i}",
                "instruction": f"Is this sentence about {topic}? Answer yes or no.",
                "instances": [{"input": f"A sentence on {topic}.", "output": "yes"}],
                "is_classification": True,
            }
        )
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
