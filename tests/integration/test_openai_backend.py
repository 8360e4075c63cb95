"""The OpenAI-compatible backend against a real HTTP server, through its real aiohttp client."""

from __future__ import annotations

import asyncio
import time

import pytest

from generator.teachers.base import SamplingParams, TeacherRequest
from generator.teachers.cache import CachedTeacher
from generator.teachers.openai_api import OpenAITeacher
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.integration

PARAMS = SamplingParams(temperature=0.0, max_tokens=64, seed=1)


def teacher(server: FakeOpenAI, **kw) -> OpenAITeacher:
    kw = {"timeout": 2.0, "max_retries": 3, "backoff_base": 0.01, **kw}
    return OpenAITeacher(model="fake", base_url=server.base_url, **kw)


def ask(t, requests):
    async def go():
        try:
            return await t.generate(requests)
        finally:
            await t.close()

    return asyncio.run(go())


def completion(i: int = 0) -> TeacherRequest:
    return TeacherRequest.completion(f"Here are tasks:\n1. Say hi {i}\n2.", PARAMS)


def test_completion_and_chat_round_trip(fake_openai: FakeOpenAI):
    chat = TeacherRequest.chat("Task: Sort numbers.\nIs it classification?", PARAMS)
    out = ask(teacher(fake_openai), [completion(), chat])
    assert all(r.ok for r in out)
    assert out[0].text.startswith(" ") and out[1].text.strip() in {"Yes", "No"}
    assert out[0].completion_tokens > 0 and out[0].prompt_tokens == 10
    # The two requests are in flight together, so they may reach the server in either order.
    [sent_completion] = [body for body in fake_openai.requests if "prompt" in body]
    [sent_chat] = [body for body in fake_openai.requests if "messages" in body]
    assert sent_completion["seed"] == 1 and sent_completion["max_tokens"] == 64
    assert sent_chat["messages"][-1]["content"].startswith("Task: Sort numbers.")


def test_retries_500_then_succeeds(fake_openai: FakeOpenAI):
    fake_openai.faults.extend(["500", "500"])
    [r] = ask(teacher(fake_openai), [completion()])
    assert r.ok and r.attempts == 3
    assert len(fake_openai.requests) == 3


def test_honours_retry_after_on_429(fake_openai: FakeOpenAI):
    fake_openai.faults.append("429:1")
    [r] = ask(teacher(fake_openai), [completion()])
    assert r.ok and r.attempts == 2
    gap = fake_openai.times[1] - fake_openai.times[0]
    assert gap >= 0.95, f"retried after {gap:.2f}s, before Retry-After: 1"


def test_timeout_is_retried(fake_openai: FakeOpenAI):
    fake_openai.faults.append("slow:1.5")
    [r] = ask(teacher(fake_openai, timeout=0.5), [completion()])
    assert r.ok and r.attempts == 2


def test_garbage_and_empty_bodies_are_retried_then_counted_not_raised(fake_openai: FakeOpenAI):
    fake_openai.faults.extend(["garbage", "empty", "garbage", "empty"])
    [r] = ask(teacher(fake_openai, max_retries=3), [completion()])
    assert not r.ok and r.finish_reason == "error" and r.attempts == 4
    assert "unparseable" in (r.error or "")


def test_one_failure_does_not_sink_the_batch(fake_openai: FakeOpenAI):
    fake_openai.faults.extend(["500"] * 10)
    out = ask(teacher(fake_openai, max_retries=0, max_in_flight=1), [completion(i) for i in range(12)])
    assert sum(not r.ok for r in out) == 10 and sum(r.ok for r in out) == 2
    assert [r.request_key for r in out] == [completion(i).cache_key("openai", "fake") for i in range(12)]


def test_truncated_response_reports_length(fake_openai: FakeOpenAI):
    fake_openai.faults.append("truncated")
    [r] = ask(teacher(fake_openai), [completion()])
    assert r.ok and r.truncated


def test_unreachable_server_fails_cleanly():
    t = OpenAITeacher(
        model="x", base_url="http://127.0.0.1:9/v1", timeout=0.5, max_retries=1, backoff_base=0.01
    )
    [r] = ask(t, [completion()])
    assert not r.ok and "connection" in (r.error or "")


def test_requests_in_flight_are_bounded(fake_openai: FakeOpenAI):
    fake_openai.faults.extend(["slow:0.3"] * 8)
    start = time.monotonic()
    ask(teacher(fake_openai, max_in_flight=4), [completion(i) for i in range(8)])
    assert time.monotonic() - start >= 0.55  # 8 slow requests, 4 at a time: two waves


def test_cache_makes_a_rerun_free(fake_openai: FakeOpenAI, tmp_path):
    requests = [completion(i) for i in range(5)]
    first = ask(CachedTeacher(teacher(fake_openai), tmp_path / "c.sqlite"), requests)
    assert len(fake_openai.requests) == 5 and not any(r.cached for r in first)
    second = ask(CachedTeacher(teacher(fake_openai), tmp_path / "c.sqlite"), requests)
    assert len(fake_openai.requests) == 5, "a cached rerun must send nothing"
    assert all(r.cached for r in second) and [r.text for r in second] == [r.text for r in first]
    other = completion(0).model_copy(update={"params": PARAMS.model_copy(update={"seed": 2})})
    ask(CachedTeacher(teacher(fake_openai), tmp_path / "c.sqlite"), [other])
    assert len(fake_openai.requests) == 6, "a different sampling seed is a different request"


def test_failures_are_not_cached(fake_openai: FakeOpenAI, tmp_path):
    fake_openai.faults.append("500")
    [r] = ask(CachedTeacher(teacher(fake_openai, max_retries=0), tmp_path / "c.sqlite"), [completion()])
    assert not r.ok
    [r] = ask(CachedTeacher(teacher(fake_openai, max_retries=0), tmp_path / "c.sqlite"), [completion()])
    assert r.ok and not r.cached
