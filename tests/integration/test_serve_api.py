"""The REST service, as a real process on 127.0.0.1 driven over HTTP, with the OpenAI-compatible
test server as its teacher: every endpoint, auth, the fields a client may not set, streams that
break and resume, cancel, a failing and a stalled teacher."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_openai import FakeOpenAI
from tests.serve_process import ServiceProcess

pytestmark = pytest.mark.integration

A, B = "key-a-0123456789", "key-b-9876543210"


def headers(key: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **more}


@pytest.fixture(scope="module")
def teacher() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def service(teacher: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("serve")
    args = [
        "--data-dir", str(tmp / "data"), "--teacher", "openai", "--base-url", teacher.base_url,
        "--model", "fake", "--no-cache", "--max-retries", "0", "--concurrency", "2",
        "--generate-max-target", "20", "--max-target", "300", "--max-body-bytes", "20000",
        "--max-jobs-per-key", "3",
    ]  # fmt: skip
    with ServiceProcess(args, keys=[A, B], log=tmp / "serve.log") as svc:
        yield svc


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=120) as c:
        yield c


def wait_for(client: httpx.Client, job_id: str, key: str, until: Any, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers(key)).json()
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never got there: {job}")


def finished(job: dict[str, Any]) -> bool:
    return job["state"] not in ("queued", "running")


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


# -- health, auth ------------------------------------------------------------------------------------


def test_health_and_readiness(client: httpx.Client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] is True and ready["teacher"] == {"backend": "openai", "model": "fake"}


def test_auth_none_wrong_and_another_keys_job(client: httpx.Client):
    for h in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic " + A}):
        r = client.get("/v1/jobs", headers=h)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "API key" in r.json()["error"]
    r = client.post("/v1/jobs", json={"target": 3}, headers=headers(A))
    assert r.status_code == 202
    job_id = r.json()["id"]
    # another key's job does not exist for the caller: 404 on every route, never a 403
    for method, path in [
        ("GET", ""), ("GET", "/items"), ("GET", "/dataset"), ("GET", "/dropped"), ("DELETE", ""),
    ]:  # fmt: skip
        r = client.request(method, f"/v1/jobs/{job_id}{path}", headers=headers(B))
        assert r.status_code == 404, (method, path, r.text)
        assert job_id in r.json()["error"]
    assert job_id not in [j["id"] for j in client.get("/v1/jobs", headers=headers(B)).json()["jobs"]]
    wait_for(client, job_id, A, finished)


# -- what a request may set ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value",
    [
        ("teacher", "vllm"),
        ("base_url", "http://evil.example/v1"),
        ("model", "gpt-4"),
        ("api_key_env", "HOME"),
        ("out", "/tmp/x"),
        ("cache_path", "/tmp/c.sqlite"),
        ("ray_address", "auto"),
        ("run_name", "x"),
        ("teachers", {"big": {"model": "big"}}),
        ("route", {"answer": "default"}),
        ("answer_model", "gpt-4"),
        ("chat_template", "/etc/passwd"),
        ("personas", "/etc/passwd"),
    ],
)
def test_server_settings_are_a_422_naming_the_field(client: httpx.Client, field: str, value: Any):
    for path in ("/v1/generate", "/v1/jobs"):
        r = client.post(path, json={"target": 2, field: value}, headers=headers(A))
        assert r.status_code == 422, r.text
        body = r.json()
        assert body["error"].startswith(f"{field}: a server setting")
        assert body["detail"][0]["field"] == field


@pytest.mark.parametrize(
    "body,field",
    [
        ({"seeds": "../../etc/passwd"}, "seeds"),
        ({"seeds": "/etc/passwd"}, "seeds"),
        ({"seeds": "nope.jsonl"}, "seeds"),
        ({"target": 21}, "target"),  # over the generate limit
        ({"target": 0}, "target"),
        ({"profile": "unknown"}, "profile"),
        ({"dedup": [{"name": "rouge_l", "params": {"threshold": 7}}]}, "dedup"),
        ({"evolve_rounds": 11}, "evolve_rounds"),
        ({"prompts_per_round": 100000}, "prompts_per_round"),
        ({"answer_params": {"max_tokens": 100000}}, "answer_params.max_tokens"),
        ({"seeds": "175.jsonl", "seed_tasks": []}, "seeds"),
        ({"seed_tasks": []}, "seed_tasks"),
        ({"bogus": 1}, "bogus"),
        # this server's teacher is an OpenAI-compatible server started with no chat template
        ({"profile": "magpie"}, "profile: the magpie profile needs the chat template of fake"),
    ],
)
def test_bad_settings_are_a_422_that_says_what(client: httpx.Client, body: dict[str, Any], field: str):
    r = client.post("/v1/generate", json=body, headers=headers(A))
    assert r.status_code == 422, r.text
    assert r.json()["error"].startswith(field), r.json()


def test_malformed_and_oversized_bodies(client: httpx.Client):
    r = client.post(
        "/v1/jobs", content=b"{not json", headers=headers(A, **{"Content-Type": "application/json"})
    )
    assert r.status_code == 400 and r.json()["error"] == "the body is not valid JSON"  # as documented
    big = {
        "seed_tasks": [
            {
                "id": f"t{i}",
                "name": "n",
                "instruction": "x" * 500,
                "instances": [{"input": "", "output": "y"}],
                "is_classification": False,
            }
            for i in range(100)
        ]
    }
    r = client.post("/v1/jobs", json=big, headers=headers(A))
    assert r.status_code == 413 and "larger than 20000 bytes" in r.json()["error"]
    r = client.get("/v1/jobs?limit=0", headers=headers(A))
    assert r.status_code == 422 and r.json()["error"].startswith("query.limit")


# -- generate ----------------------------------------------------------------------------------------


def test_generate_returns_rows_and_stats(client: httpx.Client):
    r = client.post("/v1/generate", json={"target": 8, "seed": 7}, headers=headers(A))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["stats"]["counts"]["dataset_instructions"] == 8
    assert len(body["rows"]) == body["stats"]["counts"]["dataset_rows"] > 0
    assert all(set(row) == {"instruction", "input", "output"} for row in body["rows"])
    # the same settings make the same rows (the run is deterministic given its seed)
    again = client.post("/v1/generate", json={"target": 8, "seed": 7}, headers=headers(A)).json()
    assert again["rows"] == body["rows"] and again["job_id"] != body["job_id"]


def test_generate_with_inline_seed_tasks_and_alpaca_profile(client: httpx.Client):
    tasks = [
        {"id": f"t{i}", "name": f"t{i}", "instruction": f"Describe topic number {i} in two sentences.",
         "instances": [{"input": "", "output": "A description."}], "is_classification": False}
        for i in range(6)
    ]  # fmt: skip
    r = client.post(
        "/v1/generate", json={"target": 5, "seed_tasks": tasks, "profile": "alpaca"}, headers=headers(A)
    )
    assert r.status_code == 200, r.text
    assert r.json()["stats"]["counts"]["dataset_instructions"] == 5
    job = client.get(f"/v1/jobs/{r.json()['job_id']}", headers=headers(A)).json()
    assert job["kind"] == "generate" and job["state"] == "succeeded"
    assert job["request"]["profile"] == "alpaca" and len(job["request"]["seed_tasks"]) == 6


def test_seed_files(client: httpx.Client):
    assert {"175.jsonl", "arithmetic.jsonl", "code.jsonl"} <= set(
        client.get("/v1/seeds", headers=headers(A)).json()
    )


def test_generate_a_domain_dataset_with_checked_answers(client: httpx.Client):
    body = {"domain": "arithmetic", "seeds": "arithmetic.jsonl", "target": 6, "seed": 2}
    r = client.post("/v1/generate", json=body, headers=headers(A))
    assert r.status_code == 200, r.text
    stats = r.json()["stats"]
    assert len(r.json()["rows"]) == 6 and stats["domain"]["method"] == "computed"
    assert all(row["output"].splitlines()[-1].startswith("Answer: ") for row in r.json()["rows"])
    # another domain's seeds, or a domain nobody registered, is a 422 that names the field
    wrong = client.post("/v1/generate", json={**body, "domain": "code"}, headers=headers(A))
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"][-1] == "seeds"
    msg = wrong.json()["detail"][0]["msg"]  # it names the file, not where the server keeps it
    assert msg.startswith("arithmetic.jsonl: ") and "belongs to the arithmetic domain, not code" in msg
    unknown = client.post("/v1/generate", json={**body, "domain": "chemistry"}, headers=headers(A))
    assert unknown.status_code == 422 and "unknown domain" in unknown.text
    # a medical job needs the reference corpus the server was started with (--references): none here
    medical = client.post(
        "/v1/generate", json={**body, "domain": "medical", "seeds": "medical.jsonl"}, headers=headers(A)
    )
    assert medical.status_code == 422 and medical.json()["detail"][0]["loc"][-1] == "domain"
    assert "--references" in medical.json()["detail"][0]["msg"]
    # the server decides how many programs run at once, and which folders are corpora: a body names one
    folder = client.post("/v1/generate", json={**body, "references": "/etc"}, headers=headers(A))
    assert folder.status_code == 422 and folder.json()["detail"][0]["field"] == "references"
    unknown = client.post("/v1/generate", json={**body, "references": "etc"}, headers=headers(A))
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["field"] == "references"
    assert "not one of this server's references" in unknown.json()["error"]
    parallel = client.post("/v1/generate", json={**body, "sandbox_parallel": 8}, headers=headers(A))
    assert parallel.status_code == 422


# -- jobs, streams -------------------------------------------------------------------------------------


def test_job_lifecycle_streams_resume_with_no_gap_and_no_repeat(client: httpx.Client, teacher: FakeOpenAI):
    teacher.delay = 0.1  # slow enough that the streams start while the job runs
    try:
        r = client.post("/v1/jobs", json={"target": 60, "seed": 11}, headers=headers(A))
        assert r.status_code == 202
        job_id = r.json()["id"]
        assert r.headers["location"] == f"/v1/jobs/{job_id}"
        assert r.json()["state"] in ("queued", "running")

        # NDJSON: read 5 rows while it runs, drop the connection, resume with ?after=5
        first: list[dict[str, Any]] = []
        with client.stream("GET", f"/v1/jobs/{job_id}/items", headers=headers(A)) as s:
            assert s.headers["content-type"].startswith("application/x-ndjson")
            for line in s.iter_lines():
                first.append(json.loads(line))
                if len(first) == 5:
                    break
        state_then = client.get(f"/v1/jobs/{job_id}", headers=headers(A)).json()["state"]
        rest = [
            json.loads(line)
            for line in client.get(f"/v1/jobs/{job_id}/items?after=5", headers=headers(A)).iter_lines()
            if line
        ]

        # SSE: 7 events, then reconnect with Last-Event-ID
        events: list[dict[str, str]] = []
        with client.stream(
            "GET", f"/v1/jobs/{job_id}/items", headers=headers(A, Accept="text/event-stream")
        ) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            for event in sse_events(s.iter_lines()):
                events.append(event)
                if len(events) == 7:
                    break
        assert [e["id"] for e in events] == [str(i) for i in range(1, 8)]
        with client.stream(
            "GET",
            f"/v1/jobs/{job_id}/items",
            headers=headers(A, Accept="text/event-stream", **{"Last-Event-ID": "7"}),
        ) as s:
            later = list(sse_events(s.iter_lines()))
    finally:
        teacher.delay = 0.0

    job = wait_for(client, job_id, A, finished)
    assert job["state"] == "succeeded" and job["finished_at"] >= job["started_at"]
    assert state_then == "running", "the stream was meant to start while the job ran"
    assert job["progress"]["kept"] >= 60 and job["progress"]["rows"] == job["stats"]["counts"]["dataset_rows"]
    dataset = client.get(f"/v1/jobs/{job_id}/dataset", headers=headers(A)).json()
    assert first + rest == dataset  # no gap, no repeat
    assert later[-1]["event"] == "end" and json.loads(later[-1]["data"]) == {
        "state": "succeeded",
        "rows": len(dataset),
    }
    rows = [e for e in later if e["event"] == "row"]
    assert [e["id"] for e in rows] == [str(i) for i in range(8, len(dataset) + 1)]
    assert [json.loads(e["data"]) for e in events + rows] == dataset

    dropped = [
        json.loads(line)
        for line in client.get(f"/v1/jobs/{job_id}/dropped", headers=headers(A)).iter_lines()
        if line
    ]
    assert dropped and all(d["filter"] and d["reason"] for d in dropped)
    filters = job["stats"]["filters"]
    assert len(dropped) == sum(n for f in filters.values() for k, n in f.items() if k.startswith("dropped_"))

    # a finished job's stream ends at once; ?after past the end is an empty stream
    assert client.get(f"/v1/jobs/{job_id}/items?after={len(dataset)}", headers=headers(A)).text == ""


def test_jobs_list_newest_first_and_paged(client: httpx.Client):
    ids = [
        client.post("/v1/jobs", json={"target": 2, "seed": i}, headers=headers(B)).json()["id"]
        for i in range(3)
    ]
    page1 = client.get("/v1/jobs?limit=2", headers=headers(B)).json()
    page2 = client.get(f"/v1/jobs?limit=2&offset={page1['next_offset']}", headers=headers(B)).json()
    listed = [j["id"] for j in page1["jobs"] + page2["jobs"]]
    assert listed[:3] == ids[::-1] and page1["next_offset"] == 2
    for job_id in ids:
        wait_for(client, job_id, B, finished)


def test_cancel_keeps_what_was_accepted(client: httpx.Client, teacher: FakeOpenAI):
    teacher.delay = 0.2
    try:
        job_id = client.post("/v1/jobs", json={"target": 250}, headers=headers(A)).json()["id"]
        r = client.get(f"/v1/jobs/{job_id}/dataset", headers=headers(A))
        assert r.status_code == 409  # not finished
        wait_for(client, job_id, A, lambda j: j["progress"]["rows"] > 0)
        r = client.delete(f"/v1/jobs/{job_id}", headers=headers(A))
        assert r.status_code == 200 and r.json()["id"] == job_id
        job = wait_for(client, job_id, A, finished, timeout=60)
    finally:
        teacher.delay = 0.0
    assert job["state"] == "cancelled" and job["progress"]["kept"] < 250
    rows = [
        json.loads(line)
        for line in client.get(f"/v1/jobs/{job_id}/items", headers=headers(A)).iter_lines()
        if line
    ]
    assert len(rows) == job["progress"]["rows"] > 0
    assert client.get(f"/v1/jobs/{job_id}/dataset", headers=headers(A)).json() == rows


def test_a_jobs_report_page_is_rendered_while_it_runs(client: httpx.Client, teacher: FakeOpenAI):
    pytest.importorskip("matplotlib")
    job_id = client.post("/v1/jobs", json={"target": 250, "seed": 13}, headers=headers(A)).json()["id"]
    try:
        wait_for(client, job_id, A, lambda j: j["progress"]["rows"] > 0)
        teacher.hold()  # no more answers: the job is surely still running while its page renders
        early = client.get(f"/v1/jobs/{job_id}/report", headers=headers(A))
        assert client.get(f"/v1/jobs/{job_id}", headers=headers(A)).json()["state"] == "running"
        client.delete(f"/v1/jobs/{job_id}", headers=headers(A))
    finally:
        teacher.release()
    job = wait_for(client, job_id, A, finished, timeout=60)
    assert early.status_code == 200, early.text
    assert early.headers["content-type"].startswith("text/html") and "data:image/png;base64," in early.text
    assert job["state"] == "cancelled"
    late = client.get(f"/v1/jobs/{job_id}/report", headers=headers(A))
    assert late.status_code == 200 and "data:image/png;base64," in late.text
    assert client.get(f"/v1/jobs/{job_id}/report", headers=headers(B)).status_code == 404  # another key's


def test_a_failing_teacher_fails_the_job_with_its_reason(client: httpx.Client, teacher: FakeOpenAI):
    teacher.faults.extend(["500"] * 400)
    try:
        job_id = client.post(
            "/v1/jobs", json={"target": 5, "max_failed_rounds": 1}, headers=headers(A)
        ).json()["id"]
        job = wait_for(client, job_id, A, finished)
        r = client.post("/v1/generate", json={"target": 3, "max_failed_rounds": 1}, headers=headers(A))
    finally:
        teacher.faults.clear()
    assert job["state"] == "failed" and "teacher answered none" in job["error"]
    assert r.status_code == 502 and "teacher answered none" in r.json()["error"]


def test_a_stalled_teacher_leaves_the_service_responsive(client: httpx.Client, teacher: FakeOpenAI):
    teacher.delay = 30.0
    try:
        job_id = client.post("/v1/jobs", json={"target": 5}, headers=headers(A)).json()["id"]
        wait_for(client, job_id, A, lambda j: j["state"] == "running")
        for path in ("/healthz", "/metrics", "/v1/jobs", f"/v1/jobs/{job_id}"):
            started = time.monotonic()
            assert client.get(path, headers=headers(A), timeout=5).status_code == 200
            assert time.monotonic() - started < 5
        client.delete(f"/v1/jobs/{job_id}", headers=headers(A))
    finally:
        teacher.delay = 0.0
    assert wait_for(client, job_id, A, finished, timeout=120)["state"] == "cancelled"


def test_metrics(client: httpx.Client):
    client.post("/v1/generate", json={"target": 3}, headers=headers(A))
    text = client.get("/metrics").text
    assert 'synth_http_requests_total{method="POST",route="/v1/generate",status="200"}' in text
    assert 'synth_http_request_duration_seconds_count{method="POST",route="/v1/generate"}' in text
    assert 'synth_jobs{state="succeeded"}' in text and "synth_queue_depth" in text
    metrics = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert metrics['synth_teacher_total{what="requests"}'] > 0
    assert metrics['synth_teacher_tokens_total{kind="completion"}'] > 0
    assert metrics['synth_items_total{filter="rouge_l",outcome="kept",reason=""}'] > 0
    assert metrics['synth_items_total{filter="blacklist",outcome="dropped",reason="blacklist"}'] > 0
    assert "picture" not in text  # a drop's reason names its kind: a blacklist word is a tenant's text
    assert metrics['synth_jobs{state="succeeded"}'] >= 1


def test_no_auth_is_refused_off_loopback(tmp_path: Path):
    import subprocess
    import sys

    from tests.serve_process import REPO

    r = subprocess.run(
        [sys.executable, "-m", "serve", "--no-auth", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert r.returncode == 2 and "--no-auth is allowed only on a loopback address" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "serve", "--data-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={k: v for k, v in __import__("os").environ.items() if k != "SYNTH_API_KEYS"},
    )  # fmt: skip
    assert r.returncode == 2 and "no API keys" in r.stderr
