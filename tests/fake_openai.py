"""A real HTTP server speaking the OpenAI API on 127.0.0.1, with injectable faults.

It answers `/v1/completions` and `/v1/chat/completions` with the synthetic teacher's text, so the real
`openai` client, real sockets and real retries are exercised. Faults are queued and consumed one per
request: `"500"`, `"429:<retry-after>"`, `"slow:<seconds>"`, `"garbage"` (200 with a non-JSON body),
`"empty"` (200 with no choices), `"truncated"` (finish_reason length, text cut short).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from generator.teachers.base import SamplingParams, TeacherRequest
from generator.teachers.scripted import synthetic_answer


class FakeOpenAI:
    def __init__(self) -> None:
        self.faults: deque[str] = deque()
        self.delay = 0.0  # seconds added to every answer (to make a run slow enough to interrupt)
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        handler = _make_handler(self)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def next_fault(self) -> str | None:
        with self.lock:
            return self.faults.popleft() if self.faults else None

    def answer(self, body: dict[str, Any], chat: bool) -> str:
        params = SamplingParams(seed=body.get("seed"))
        if chat:
            request = TeacherRequest.chat(body["messages"][-1]["content"], params)
        else:
            request = TeacherRequest.completion(body["prompt"], params)
        return synthetic_answer(request)


def _make_handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(
                200, json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()
            )

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            with fake.lock:
                fake.requests.append(body)
                fake.times.append(time.monotonic())
            chat = self.path.endswith("/chat/completions")
            fault = fake.next_fault()
            if fault == "500":
                return self._send(500, b'{"error": {"message": "injected failure"}}')
            if fault and fault.startswith("429"):
                retry_after = fault.split(":")[1] if ":" in fault else "1"
                return self._send(429, b'{"error": {"message": "slow down"}}', {"Retry-After": retry_after})
            if fake.delay:
                time.sleep(fake.delay)
            if fault and fault.startswith("slow"):
                time.sleep(float(fault.split(":")[1]))
            if fault == "garbage":
                return self._send(200, b"<html>this is not json</html>")
            text = fake.answer(body, chat)
            finish = "stop"
            if fault == "truncated":
                text, finish = text[: len(text) // 2], "length"
            choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice["text"] = text
            payload = {
                "id": "x",
                "object": "chat.completion" if chat else "text_completion",
                "created": 0,
                "model": body.get("model", "fake"),
                "choices": [] if fault == "empty" else [choice],
                "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split()), "total_tokens": 10},
            }
            return self._send(200, json.dumps(payload).encode())

    return Handler
