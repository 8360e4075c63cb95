"""The request cache key: equal for equal requests, different when anything that shapes the answer differs."""

from __future__ import annotations

from generator.teachers.base import SamplingParams, TeacherRequest

PARAMS = SamplingParams(temperature=0.7, top_p=0.5, max_tokens=64, stop=("\n\n",), seed=1)


def key(request: TeacherRequest, backend: str = "openai", model: str = "m") -> str:
    return request.cache_key(backend, model)


def test_equal_requests_share_a_key_and_every_field_counts():
    base = TeacherRequest.completion("List three fruits.", PARAMS)
    assert key(base) == key(TeacherRequest.completion("List three fruits.", PARAMS.model_copy()))
    variants = [
        key(base, backend="vllm"),
        key(base, model="other"),
        key(TeacherRequest.completion("List three fruits!", PARAMS)),
        key(TeacherRequest.chat("List three fruits.", PARAMS)),
        *(
            key(TeacherRequest.completion("List three fruits.", PARAMS.model_copy(update={name: value})))
            for name, value in [
                ("temperature", 0.8),
                ("top_p", 0.6),
                ("max_tokens", 65),
                ("presence_penalty", 2.0),
                ("frequency_penalty", 1.0),
                ("stop", ("\n",)),
                ("seed", 2),
            ]
        ),
    ]
    assert len(set(variants)) == len(variants) and key(base) not in variants


def test_fields_cannot_run_into_each_other():
    two = TeacherRequest(kind="chat", messages=(("system", "a"), ("user", "b")), params=PARAMS)
    one = TeacherRequest(kind="chat", messages=(("system", "a1:user1:b"),), params=PARAMS)
    split = TeacherRequest(kind="chat", messages=(("system", "ab"), ("user", "")), params=PARAMS)
    assert len({key(two), key(one), key(split)}) == 3
    empty = TeacherRequest(kind="completion", prompt="", params=PARAMS)
    missing = TeacherRequest(kind="completion", prompt=None, params=PARAMS)
    assert key(empty) != key(missing)
    assert key(TeacherRequest.completion("caf\u00e9 \ud83d", PARAMS))  # odd text still hashes
