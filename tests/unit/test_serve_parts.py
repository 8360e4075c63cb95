"""The service's pure parts: request bodies to run configs, the row log, keys, metrics."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from pydantic import ValidationError

from generator.config import RunConfig
from serve.auth import ANONYMOUS, ApiKeys, owner_of
from serve.bodies import CLIENT_FIELDS, JobRequest
from serve.metrics import MAX_REASONS, Metrics
from serve.requests import BadRequest, build_config, validation_error_body
from serve.rows import RowLog
from serve.settings import SERVER_FIELDS, ServerSettings


@pytest.fixture
def settings(tmp_path: Path, small_seeds: Path) -> ServerSettings:
    seeds_dir = tmp_path / "seeds"
    seeds_dir.mkdir()
    (seeds_dir / "small.jsonl").write_text(small_seeds.read_text())
    (seeds_dir / "broken.jsonl").write_text('{"id": "x"}\n')
    (tmp_path / "outside.jsonl").write_text(small_seeds.read_text())
    return ServerSettings(
        data_dir=tmp_path / "data",
        seeds_dir=seeds_dir,
        default_seeds="small.jsonl",
        api_keys=["k"],
        run={"teacher": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1", "target": 500},
    )


def build(settings: ServerSettings, body: dict, limit: int = 50) -> RunConfig:
    """The job's config as the service builds it, with the body's schema refusals as 422s too."""
    try:
        request = JobRequest.model_validate(body)
    except ValidationError as exc:
        raise BadRequest(422, validation_error_body(exc.errors()).error) from None
    return build_config(request, settings, settings.base_config(), limit)[0]


def test_every_runconfig_field_is_either_the_clients_or_the_servers():
    assert set(CLIENT_FIELDS) | SERVER_FIELDS | {"seeds"} == set(RunConfig.model_fields)
    assert not set(CLIENT_FIELDS) & SERVER_FIELDS


def test_a_body_sets_runconfig_fields_over_the_servers_defaults(settings: ServerSettings):
    cfg = build(settings, {"target": 7, "profile": "alpaca", "evolve_rounds": 1, "seed": 3})
    assert (cfg.target, cfg.profile, cfg.evolve_rounds, cfg.seed) == (7, "alpaca", 1, 3)
    assert (cfg.teacher, cfg.model) == ("openai", "m")  # the server's teacher
    assert cfg.seeds == settings.seeds_dir / "small.jsonl"
    # no target: the server's default, capped by the request's limit
    assert build(settings, {}).target == 50 and build(settings, {}, limit=1000).target == 500


@pytest.mark.parametrize(
    "body,message",
    [
        ({"seeds": "../outside.jsonl"}, "seeds: '../outside.jsonl' is not a seed file name"),
        (
            {"seeds": "missing.jsonl"},
            "seeds: no seed file 'missing.jsonl' on this server; known: broken.jsonl, small.jsonl",
        ),
        ({"seeds": "broken.jsonl"}, "seeds: "),
        ({"target": 51}, "target: at most 50"),
        (
            {"propose_params": {"max_tokens": 5000}},
            "propose_params.max_tokens: Input should be less than or equal to 4096",
        ),
        ({"instruction_filters": [{"name": "nope"}]}, "instruction_filters.0.name: unknown filter"),
        (
            {
                "score_filter": {"name": "score", "params": {"key": "quality", "min_score": 4}},
                "evolve_scores": False,
            },
            "body: a score filter needs the scores",
        ),
    ],
)
def test_refusals_name_the_field(settings: ServerSettings, body: dict, message: str):
    with pytest.raises(BadRequest) as err:
        build(settings, body)
    assert err.value.status == 422 and err.value.message.startswith(message), err.value.message


def test_the_servers_bounds_are_in_the_body_schema():
    schema = JobRequest.model_json_schema()["properties"]
    assert {"maximum": 64, "minimum": 1, "type": "integer"} in schema["rounds_in_flight"]["anyOf"]
    with pytest.raises(ValidationError) as err:
        JobRequest.model_validate({"rounds_in_flight": 65})
    assert err.value.errors()[0]["loc"] == ("rounds_in_flight",)


def test_inline_seed_tasks(settings: ServerSettings):
    task = {
        "id": "a",
        "name": "a",
        "instruction": "Do a.",
        "instances": [{"input": "", "output": "b"}],
        "is_classification": False,
    }
    body = JobRequest.model_validate({"seed_tasks": [task, task | {"id": "b"}]})
    _, tasks = build_config(body, settings, settings.base_config(), 50)
    assert tasks is not None and [t.id for t in tasks] == ["a", "b"]
    with pytest.raises(BadRequest, match=r"seed_tasks\.1\.id: duplicate id 'a'"):
        build(settings, {"seed_tasks": [task, task]})


def test_server_fields_are_not_body_fields():
    for name in SERVER_FIELDS:
        with pytest.raises(ValidationError) as err:
            JobRequest.model_validate({name: "x"})
        assert err.value.errors()[0]["type"] == "extra_forbidden"


def test_no_auth_only_on_loopback(tmp_path: Path):
    for host in ("127.0.0.1", "::1", "localhost"):
        ServerSettings(host=host, auth=False, data_dir=tmp_path)
    with pytest.raises(ValidationError, match="only on a loopback address"):
        ServerSettings(host="0.0.0.0", auth=False, data_dir=tmp_path)
    with pytest.raises(ValidationError, match="no API keys"):
        ServerSettings(data_dir=tmp_path)
    assert "secret" not in repr(ServerSettings(api_keys=["secret"], data_dir=tmp_path))


def test_keys(monkeypatch):
    class Req:
        def __init__(self, value: str | None) -> None:
            self.headers = {"authorization": value} if value else {}

    keys = ApiKeys(["alpha", "beta"], required=True)
    assert keys(Req("Bearer beta")) == owner_of("beta") != owner_of("alpha")
    assert "beta" not in owner_of("beta")
    for bad in (None, "Bearer", "Bearer gamma", "Basic beta", "Bearer alph"):
        with pytest.raises(Exception) as err:
            keys(Req(bad))
        assert getattr(err.value, "status_code", None) == 401
    assert ApiKeys([], required=False)(Req(None)) == ANONYMOUS


def test_row_log_wakes_readers_and_resumes_by_index():
    async def scenario() -> list:
        log = RowLog([{"n": 0}])
        got = []
        assert await log.after(0) == ([{"n": 0}], False)
        waiter = asyncio.create_task(log.after(1, timeout=10))
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, log.extend, [{"n": 1}, {"n": 2}])  # from another thread
        got.append(await waiter)
        got.append(await log.after(2))
        ender = asyncio.create_task(log.after(3, timeout=10))
        await asyncio.sleep(0.01)
        await loop.run_in_executor(None, log.finish)
        got.append(await ender)
        got.append(await log.after(0, timeout=0.01))
        return got

    got = asyncio.run(scenario())
    assert got[0] == ([{"n": 1}, {"n": 2}], False)
    assert got[1] == ([{"n": 2}], False)
    assert got[2] == ([], True)
    assert got[3] == ([{"n": 0}, {"n": 1}, {"n": 2}], True)


def test_metrics_count_what_each_round_adds():
    m = Metrics(lambda: {"running": 1})
    stats = {
        "teacher": {
            "requests": 10,
            "cache_hits": 2,
            "failed": 1,
            "prompt_tokens": 100,
            "completion_tokens": 50,
        },
        "filters": {"rouge_l": {"total": 9, "kept": 7, "dropped": 2, "dropped_rouge_l>0.7": 2}},
    }
    seen = m.job_started({"teacher": {"requests": 4}, "filters": {}})  # counted by an earlier process
    m.job_progress(seen, stats)
    m.job_progress(seen, stats)  # nothing new
    value = m.registry.get_sample_value
    assert value("synth_teacher_total", {"what": "requests"}) == 6
    assert value("synth_teacher_tokens_total", {"kind": "prompt"}) == 100
    assert value("synth_items_total", {"filter": "rouge_l", "outcome": "dropped", "reason": "rouge_l"}) == 2
    assert value("synth_items_total", {"filter": "rouge_l", "outcome": "kept", "reason": ""}) == 7
    assert value("synth_jobs", {"state": "running"}) == 1 and value("synth_jobs", {"state": "failed"}) == 0
    assert json.dumps(stats)  # untouched


def test_metrics_labels_are_the_servers_names_and_their_series_are_bounded():
    m = Metrics(lambda: {})
    # 2000 word_count filters, each with a client's label, each dropping for a client's word
    filters = {
        f"secret-tenant-label-{i}": {"kept": 1, f"dropped_blacklist:word{i}": 1, f"dropped_x{i}>0.{i}": 1}
        for i in range(2000)
    }
    names = {label: "word_count" for label in filters}
    m.job_progress(m.job_started(None), {"filters": filters}, names)
    text = generate_latest(m.registry).decode()
    assert "secret-tenant-label" not in text and "word1" not in text
    series = [line for line in text.splitlines() if line.startswith("synth_items_total{")]
    assert len(series) <= 2 + MAX_REASONS  # kept, the reasons, and "other"
    value = m.registry.get_sample_value
    assert value("synth_items_total", {"filter": "word_count", "outcome": "kept", "reason": ""}) == 2000
    assert (
        value("synth_items_total", {"filter": "word_count", "outcome": "dropped", "reason": "blacklist"})
        == 2000
    )


def test_a_store_from_before_the_config_column_is_upgraded(tmp_path: Path):
    import sqlite3

    from serve.jobs import JobStore

    old = sqlite3.connect(tmp_path / "jobs.sqlite")
    old.executescript(
        "CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, owner TEXT NOT NULL,"
        " kind TEXT NOT NULL, state TEXT NOT NULL, request TEXT NOT NULL, created_at REAL NOT NULL,"
        " started_at REAL, finished_at REAL, error TEXT, progress TEXT NOT NULL DEFAULT '{}');"
        " INSERT INTO jobs (id, owner, kind, state, request, created_at) VALUES ('old', 'o', 'job', 'running', '{}', 1);"
    )
    old.commit()
    old.close()
    store = JobStore(tmp_path / "jobs.sqlite")
    store.create("new", "o", "job", {"target": 1}, '{"seeds": "x"}')
    assert store.get("new")["config"] == '{"seeds": "x"}'
    assert store.get("old")["config"] == ""  # the executor fails it with "cannot resume" at start
    assert [r["id"] for r in store.active()] == ["old", "new"]
    store.close()
