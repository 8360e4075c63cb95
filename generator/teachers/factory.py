"""Build the teacher a run config asks for, wrapped in the request cache unless `--no-cache`."""

from __future__ import annotations

import os

from generator.config import RunConfig
from generator.teachers.base import Teacher
from generator.teachers.cache import CachedTeacher


def make_teacher(config: RunConfig, max_in_flight: int | None = None) -> Teacher:
    """`config` is resolved (`RunConfig.resolved()` picks the in-flight default per backend);
    `max_in_flight` overrides it, e.g. with one worker's share."""
    max_in_flight = max_in_flight or config.max_in_flight
    assert max_in_flight is not None, "make_teacher takes a resolved config"
    teacher: Teacher
    if config.teacher == "openai":
        from generator.teachers.openai_api import OpenAITeacher

        assert config.model is not None  # RunConfig validates this
        teacher = OpenAITeacher(
            model=config.model,
            base_url=config.base_url,
            api_key=os.environ.get(config.api_key_env),
            max_in_flight=max_in_flight,
            timeout=config.request_timeout,
            max_retries=config.max_retries,
        )
    else:
        from generator.teachers.vllm_teacher import VLLMTeacher

        teacher = VLLMTeacher(
            model=config.model,
            replicas=config.replicas,
            tensor_parallel=config.tensor_parallel,
            max_in_flight=max_in_flight,
        )
    if config.cache and config.cache_path is not None:
        teacher = CachedTeacher(teacher, config.cache_path)
    return teacher
