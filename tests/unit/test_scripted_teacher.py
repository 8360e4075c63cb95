"""The synthetic teacher answers from the request alone, on any thread (the test server uses several)."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

from generator.teachers.base import SamplingParams, TeacherRequest
from generator.teachers.scripted import synthetic_answer


def test_answers_from_many_threads_equal_the_serial_answers():
    requests = [
        TeacherRequest.completion(f"Here are tasks:\n1. Say hi {i}\n2.", SamplingParams(seed=1))
        for i in range(400)
    ]
    serial = [synthetic_answer(r) for r in requests]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so a shared generator would be caught mid-answer
    try:
        with ThreadPoolExecutor(8) as pool:
            threaded = list(pool.map(synthetic_answer, requests))
    finally:
        sys.setswitchinterval(interval)
    assert threaded == serial
