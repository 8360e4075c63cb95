"""Build the teachers a run config asks for, each wrapped in the request cache unless `--no-cache`."""

from __future__ import annotations

import os

from generator.config import RunConfig
from generator.teachers.base import Teacher
from generator.teachers.cache import CachedTeacher


def make_teachers(config: RunConfig) -> dict[str, Teacher]:
    """One worker's teachers by name (`default` first), each with the worker's share of its limit.

    Names whose in-process vLLM settings are the same share one teacher: one engine per model. Before
    any engine starts, the engines are checked against the machine or cluster, so two models that do
    not fit fail at once with what each needs rather than wait on Ray for resources that never come.
    """
    settings = {name: config.for_teacher(name) for name in config.teacher_names()}
    # One engine per model: names with the same in-process settings share it (the first name's).
    engine_of: dict[str, str] = {}  # teacher name -> the name whose engine it uses
    first_with: dict[tuple[str | None, int, int], str] = {}
    for name, c in settings.items():
        if c.teacher == "vllm":
            engine_of[name] = first_with.setdefault((c.model, c.replicas, c.tensor_parallel), name)
    shares: dict[str, float] = {}
    engines = sorted(set(engine_of.values()))
    if len(engines) > 1:
        from generator.teachers.vllm_placement import check_engines_fit

        shares = check_engines_fit({n: (settings[n].replicas, settings[n].tensor_parallel) for n in engines})
    made: dict[str, Teacher] = {}
    for name, c in settings.items():
        owner = engine_of.get(name, name)
        if owner not in made:
            assert c.max_in_flight is not None
            share = -(-c.max_in_flight // config.num_workers)
            made[owner] = make_teacher(c, share, gpu_share=shares.get(owner) or 1.0)
    return {name: made[engine_of.get(name, name)] for name in settings}


def make_teacher(config: RunConfig, max_in_flight: int | None = None, gpu_share: float = 1.0) -> Teacher:
    """`config` is resolved (`RunConfig.resolved()` picks the in-flight default per backend);
    `max_in_flight` overrides it, e.g. with one worker's share. `gpu_share`: of a GPU per vLLM shard."""
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
            gpu_share=gpu_share,
        )
    if config.cache and config.cache_path is not None:
        teacher = CachedTeacher(teacher, config.cache_path)
    return teacher
