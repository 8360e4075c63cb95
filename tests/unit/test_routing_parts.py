"""Per-stage teachers, piece by piece: roles, config, engine plans, per-teacher accounts, the worker."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from generator.config import ConfigError, RunConfig, data_values, load_config
from generator.state import SavedStats
from generator.stats import RunStats
from generator.teachers.base import SamplingParams, TeacherRequest, TeacherResponse
from generator.teachers.routing import role_of, teacher_for
from generator.teachers.scripted import ScriptedTeacher
from generator.teachers.vllm_placement import EnginesDoNotFit, engine_bundles, plan_gpu_shares
from generator.workers import Worker

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "175.jsonl"


def test_every_task_stage_plays_a_role():
    assert role_of("propose") == "propose" and role_of("story") == "propose"
    assert role_of("solve") == "answer" and role_of("answer") == "answer"
    assert role_of("score_quality") == role_of("audit") == role_of("eval_judge") == "judge"
    assert role_of("something_new") is None
    route = {"judge": "big", "propose": "small"}
    assert teacher_for(route, "score_complexity") == "big"
    assert teacher_for(route, "classify") == "default"  # left out of the route: the run's own


def test_answer_and_judge_model_fold_into_teachers_and_route():
    cfg = RunConfig(
        seeds=SEEDS, teacher="openai", model="cheap", base_url="http://h/v1", answer_model="strong"
    )
    resolved = cfg.resolved()
    assert resolved.route == {"instances": "answer", "answer": "answer"}
    assert resolved.teachers["answer"].model == "strong"
    assert resolved.teachers["answer"].base_url == "http://h/v1"
    assert resolved.teacher_names() == ["default", "answer"]
    # what a folder records validates again (resume reads config.json back)
    again = RunConfig.model_validate(resolved.model_dump(mode="json"))
    assert again.resolved().route == resolved.route
    # an explicit route wins over the flag's
    routed = RunConfig(
        seeds=SEEDS,
        teacher="openai",
        model="m",
        judge_model="referee",
        teachers={"tiny": {"model": "tiny"}},
        route={"judge": "tiny"},
    ).resolved()
    assert routed.route == {"judge": "tiny"}


def test_for_teacher_gives_its_own_endpoint_limits_and_prices():
    cfg = RunConfig(
        seeds=SEEDS,
        teacher="openai",
        model="m",
        request_timeout=30,
        teachers={
            "big": {"model": "big", "base_url": "http://b/v1", "max_in_flight": 3, "price_prompt_per_1m": 5}
        },
        route={"answer": "big"},
    ).resolved()
    big = cfg.for_teacher("big")
    assert (big.model, big.base_url, big.max_in_flight, big.price_prompt_per_1m) == (
        "big",
        "http://b/v1",
        3,
        5,
    )
    assert big.request_timeout == 30  # left out: the run's own
    assert cfg.for_teacher("default") is cfg


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"route": {"answer": "nobody"}}, "route.answer: unknown teacher 'nobody'"),
        ({"route": {"writer": "default"}}, "unknown stage 'writer'"),
        ({"teachers": {"default": {"model": "x"}}}, "'default' is the run's own teacher"),
        ({"teachers": {"t": {"teacher": "openai"}}}, "teachers.t: an openai teacher needs a model"),
        ({"teachers": {"t": {"model": "x", "colour": "red"}}}, "teachers.t.colour"),
    ],
)
def test_bad_routing_is_a_clear_config_error(data: dict, message: str):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(None, {"seeds": SEEDS, **data})


def test_resume_compares_a_teachers_model_not_its_limits_or_prices():
    def values(**spec: object) -> dict:
        cfg = RunConfig(seeds=SEEDS, teachers={"big": {"model": "big", **spec}}, route={"answer": "big"})
        return data_values(cfg.model_dump(mode="json"))

    assert values() == values(max_in_flight=2, price_completion_per_1m=9.0, request_timeout=5)
    assert values() != values(model="bigger")
    assert values() != values(base_url="http://elsewhere/v1")


def test_single_gpu_engines_share_gpus_and_larger_ones_must_fit():
    assert plan_gpu_shares({"a": (1, 1), "b": (1, 1)}, gpus=2) == {"a": 1.0, "b": 1.0}
    assert plan_gpu_shares({"a": (1, 1), "b": (1, 1)}, gpus=1) == {"a": 0.5, "b": 0.5}
    assert plan_gpu_shares({"a": (2, 1), "b": (1, 1)}, gpus=1) == {"a": 0.33, "b": 0.33}
    assert plan_gpu_shares({"a": (1, 2), "b": (1, 4)}, gpus=8) == {"a": 1.0, "b": 1.0}
    with pytest.raises(EnginesDoNotFit, match=r"need 6 GPUs \(a: 1 engine\(s\) x 2 GPU\(s\), b: 1 engine"):
        plan_gpu_shares({"a": (1, 2), "b": (1, 4)}, gpus=4)
    with pytest.raises(EnginesDoNotFit, match="the cluster has none"):
        plan_gpu_shares({"a": (1, 1), "b": (1, 1)}, gpus=0)
    assert engine_bundles(1, 0.5) == [{"CPU": 1.0}, {"GPU": 0.5}]


def _response(
    teacher: str, prompt: int, completion: int, latency: float, cached: bool = False
) -> TeacherResponse:
    return TeacherResponse(
        text="x",
        prompt_tokens=prompt,
        completion_tokens=completion,
        latency_s=latency,
        cached=cached,
        teacher=teacher,
    )


def test_accounts_per_teacher_and_stage_with_each_teachers_prices():
    stats = RunStats()
    stats.teacher_call("propose", [_response("small", 100, 50, 0.2), _response("small", 100, 50, 0.4)])
    stats.teacher_call(
        "instances", [_response("big", 1000, 500, 2.0), _response("big", 1000, 500, 0, cached=True)]
    )
    summary = stats.summary({"default": (0, 0), "small": (1.0, 2.0), "big": (10.0, 30.0)})
    small, big = summary["teachers"]["small"], summary["teachers"]["big"]
    assert small["requests"] == 2 and small["cost_usd"] == pytest.approx((200 * 1 + 100 * 2) / 1e6)
    assert small["mean_latency_s"] == pytest.approx(0.3)
    assert big["cost_usd"] == pytest.approx((2000 * 10 + 1000 * 30) / 1e6)  # cached tokens are priced too
    assert big["mean_latency_s"] == pytest.approx(2.0)  # a cached answer took no time
    assert summary["teachers"]["default"]["requests"] == 0
    assert summary["cost_estimate_usd"] == pytest.approx(small["cost_usd"] + big["cost_usd"])
    assert summary["stages"]["instances"]["mean_latency_s"] == pytest.approx(2.0)
    # saved and restored (resume) they add up the same
    again = RunStats(stats.to_state())
    assert again.summary({"small": (1.0, 2.0), "big": (10.0, 30.0)})["teachers"]["big"] == big


def test_stats_saved_before_teachers_were_counted_belong_to_the_run_teacher():
    saved = SavedStats(stages={"propose": {"requests": 3, "prompt_tokens": 30, "unparseable": 1}})
    summary = RunStats(saved).summary({"default": (1.0, 0.0)})
    assert summary["teachers"]["default"]["requests"] == 3
    assert summary["teachers"]["default"]["cost_usd"] == pytest.approx(30 / 1e6)


class _Stage:
    def __init__(self, stage: str) -> None:
        self.stage = stage

    def prompt(self, row: str) -> TeacherRequest:
        return TeacherRequest.completion(row, SamplingParams())

    def parse(self, row: str, response: TeacherResponse) -> str:
        return response.text


class _Recording(ScriptedTeacher):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.model, self.seen = name, []

    async def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        self.seen.extend(requests)
        return [TeacherResponse(text=self.model) for _ in requests]


def test_a_worker_sends_each_stage_to_its_teacher_and_chat_only_ones_get_messages():
    teachers = {"default": _Recording("d"), "big": _Recording("b"), "chatty": _Recording("c")}
    worker = Worker(
        lambda: teachers,
        {"default": 2, "big": 1, "chatty": 1},
        route={"instances": "big", "judge": "chatty"},
        chat_only=frozenset({"chatty"}),
    )

    async def ask(stage: str) -> tuple[str, str]:
        [(response, parsed)] = await worker.run(_Stage(stage), ["hello"])
        return response.teacher, parsed or ""

    assert asyncio.run(ask("instances")) == ("big", "b")
    assert asyncio.run(ask("score_quality")) == ("chatty", "c")
    assert asyncio.run(ask("propose")) == ("default", "d")
    assert teachers["chatty"].seen[0].kind == "chat" and teachers["chatty"].seen[0].chat_messages() == [
        {"role": "user", "content": "hello"}
    ]
    assert teachers["big"].seen[0].kind == "completion"
    assert worker.window_report()["big"]["answers"] == 1


def test_names_with_one_in_process_model_share_one_engine_and_two_models_are_checked(monkeypatch):
    from generator.teachers import factory, vllm_placement

    made: list[tuple[str | None, float]] = []

    def fake_make(
        config: RunConfig, max_in_flight: int | None = None, gpu_share: float = 1.0
    ) -> ScriptedTeacher:
        made.append((config.model, gpu_share))
        return ScriptedTeacher(model=config.model or "embedded")

    checked: list[dict[str, tuple[int, int]]] = []

    def fake_fit(engines: dict[str, tuple[int, int]], weights_gib: dict[str, float] | None = None):
        checked.append(engines)
        return dict.fromkeys(engines, 0.5)

    monkeypatch.setattr(factory, "make_teacher", fake_make)
    monkeypatch.setattr(vllm_placement, "check_engines_fit", fake_fit)
    same = RunConfig(
        seeds=SEEDS, teachers={"judge": {"teacher": "vllm"}}, route={"judge": "judge"}
    ).resolved()
    teachers = factory.make_teachers(same)
    assert teachers["default"] is teachers["judge"] and made == [(None, 1.0)] and checked == []

    made.clear()
    two = RunConfig(
        seeds=SEEDS, teachers={"big": {"teacher": "vllm", "model": "/models/big"}}, route={"answer": "big"}
    ).resolved()
    teachers = factory.make_teachers(two)
    assert teachers["default"] is not teachers["big"]
    assert checked == [{"default": (1, 1), "big": (1, 1)}]
    assert made == [(None, 0.5), ("/models/big", 0.5)]
    # an HTTP teacher beside them is not an engine
    made.clear()
    checked.clear()
    mixed = RunConfig(
        seeds=SEEDS, teachers={"api": {"model": "gpt", "base_url": "http://h/v1"}}, route={"judge": "api"}
    ).resolved()
    factory.make_teachers(mixed)
    assert checked == [] and [m for m, _ in made] == [None, "gpt"]


def test_cpu_engines_that_do_not_fit_the_machine_are_refused_with_what_they_need(monkeypatch):
    import ray

    from generator.teachers import vllm_placement

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    monkeypatch.setattr(vllm_placement, "_available_gib", lambda: 20.0)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    assert vllm_placement.check_engines_fit({"a": (1, 1), "b": (1, 1)}) == {"a": 0.0, "b": 0.0}
    with pytest.raises(EnginesDoNotFit, match=r"need 3 CPUs .*this machine has 2"):
        vllm_placement.check_engines_fit({"a": (1, 1), "b": (2, 1)})
    monkeypatch.setattr(vllm_placement, "_available_gib", lambda: 5.0)
    with pytest.raises(
        EnginesDoNotFit, match=r"need about 6.0 GiB .*2 GiB of KV cache each.*5.0 GiB is free"
    ):
        vllm_placement.check_engines_fit({"a": (1, 1), "b": (1, 1)})
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 1.0})
    assert vllm_placement.check_engines_fit({"a": (1, 1), "b": (1, 1)}) == {"a": 0.5, "b": 0.5}
