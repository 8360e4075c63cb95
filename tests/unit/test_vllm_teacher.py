"""Unit tests for VLLMTeacher without engines: fake actor handles stand in for EngineActors.

They check request/response mapping, order, failures, replica spreading and the per-replica limit.
"""

from __future__ import annotations

import asyncio
from typing import Any

from generator.teachers import vllm_teacher
from generator.teachers.base import SamplingParams, TeacherRequest


class FakeMethod:
    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def remote(self, *args: Any) -> Any:
        return self.fn(*args)


class FakeActor:
    """Stands in for an EngineActor handle: `.generate_one.remote(req)` is awaitable."""

    def __init__(self, name: str, fail_on: str = "", raise_on: str = "") -> None:
        self.name = name
        self.seen: list[str] = []
        self.in_flight = 0
        self.peak = 0

        async def generate_one(req: dict[str, Any]) -> dict[str, Any]:
            text = req["prompt"] or req["messages"][-1]["content"]
            self.seen.append(text)
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                await asyncio.sleep(0.01)
                if raise_on and raise_on in text:
                    raise RuntimeError("actor died")
                if fail_on and fail_on in text:
                    return {"error": "ValueError: prompt too long", "latency_s": 0.1}
                return {
                    "text": f"{self.name}:{text}",
                    "finish_reason": "length" if "long" in text else "stop",
                    "prompt_tokens": 3,
                    "completion_tokens": 5,
                    "latency_s": 0.01,
                }
            finally:
                self.in_flight -= 1

        async def shutdown() -> bool:
            return True

        self.generate_one = FakeMethod(generate_one)
        self.shutdown = FakeMethod(shutdown)


def fake_teacher(actors: list[FakeActor], max_in_flight: int = 64) -> vllm_teacher.VLLMTeacher:
    teacher = object.__new__(vllm_teacher.VLLMTeacher)
    teacher.model = "fake"
    teacher.model_path = "/fake"
    teacher.replicas = len(actors)
    teacher.tensor_parallel = 1
    teacher.max_in_flight = max_in_flight
    teacher.gpu = False
    teacher._placement_groups = []
    teacher._actors = list(actors)
    teacher._load = [0] * len(actors)
    teacher._sems = {}
    teacher._closed = False
    teacher.engine_info = []
    return teacher


def test_generate_keeps_order_and_maps_responses() -> None:
    a, b = FakeActor("a"), FakeActor("b")
    teacher = fake_teacher([a, b])
    params = SamplingParams(max_tokens=5)
    requests = [TeacherRequest.completion(f"p{i}", params) for i in range(10)]
    requests.append(TeacherRequest.chat("long one", params))
    responses = asyncio.run(teacher.generate(requests))
    assert [r.text.split(":", 1)[1] for r in responses] == [f"p{i}" for i in range(10)] + ["long one"]
    assert all(r.ok and r.completion_tokens == 5 and r.prompt_tokens == 3 for r in responses)
    assert responses[-1].finish_reason == "length" and responses[0].finish_reason == "stop"
    assert responses[0].request_key == requests[0].cache_key("vllm", "fake")
    assert abs(len(a.seen) - len(b.seen)) <= 1  # spread over both replicas


def test_failures_come_back_as_responses() -> None:
    teacher = fake_teacher([FakeActor("a", fail_on="bad", raise_on="boom")])
    params = SamplingParams()
    requests = [TeacherRequest.completion(t, params) for t in ("ok", "bad", "boom", "ok2")]
    responses = asyncio.run(teacher.generate(requests))
    assert [r.ok for r in responses] == [True, False, False, True]
    assert responses[1].finish_reason == "error" and "prompt too long" in (responses[1].error or "")
    assert "actor died" in (responses[2].error or "")
    assert responses[2].request_key == requests[2].cache_key("vllm", "fake")


def test_max_in_flight_is_per_replica() -> None:
    a, b = FakeActor("a"), FakeActor("b")
    teacher = fake_teacher([a, b], max_in_flight=3)
    requests = [TeacherRequest.completion(f"p{i}", SamplingParams()) for i in range(40)]
    asyncio.run(teacher.generate(requests))
    assert a.peak + b.peak <= 6 and a.peak >= 2 and b.peak >= 2


def test_closed_teacher_fails_requests_and_close_is_idempotent() -> None:
    teacher = fake_teacher([FakeActor("a")])
    asyncio.run(teacher.close())
    asyncio.run(teacher.close())
    (response,) = asyncio.run(teacher.generate([TeacherRequest.completion("x", SamplingParams())]))
    assert not response.ok and "closed" in (response.error or "")


def test_teacher_can_be_driven_from_two_event_loops() -> None:
    teacher = fake_teacher([FakeActor("a")], max_in_flight=1)
    for _ in range(2):
        rs = asyncio.run(
            teacher.generate([TeacherRequest.completion(f"{i}", SamplingParams()) for i in range(3)])
        )
        assert all(r.ok for r in rs)
