"""A real HTTP server speaking the OpenAI API on 127.0.0.1, with injectable faults.

It answers `/v1/completions` and `/v1/chat/completions` with the synthetic teacher's text, so the real
`openai` client, real sockets and real retries are exercised. Faults are queued and consumed one per
request: `"500"`, `"429:<retry-after>"`, `"slow:<seconds>"`, `"garbage"` (200 with a non-JSON body),
`"empty"` (200 with no choices), `"truncated"` (finish_reason length, text cut short).

It is an asyncio server (`aiohttp.web`) running its own event loop in a background thread, with
HTTP/1.1 keep-alive and a listen backlog of 1024, so it holds hundreds of requests in flight, each
waiting its added latency in `asyncio.sleep`, on a machine with two cores. An answer is made (`answer`
is called) when its request arrives and sent when its delay is over, so that answers falling due
together cost little more than their sends.

Latency, set in the constructor or as attributes at any time (seconds; every answer but an injected
"500" or "429" waits it, plus a fault's `slow:<seconds>`):

- `delay` and `jitter`: a request waits `delay * (1 + jitter * (2u - 1))`, anywhere in
  [delay·(1-jitter), delay·(1+jitter)], with `u` in [0, 1) the first draw of a `random.Random` seeded
  by `zlib.crc32(json.dumps(body, sort_keys=True).encode(), seed & 0xFFFFFFFF)`: by the request body and
  `seed` (with `seed=0`, the crc32 of the body alone, as benchmarks/latency_bound.py drew it). The same
  request always waits the same time, on every run, while different requests finish in a shuffled
  order. With `jitter=0` (the default) every request waits exactly `delay`.
- `random_delay_max`: when > 0 a request waits, in addition, `random_delay_max * u2` (uniform in
  [0, random_delay_max)), `u2` the second draw of that same generator. This is the switch for
  "delay each answer by a seeded random time" without a fixed latency: `FakeOpenAI(random_delay_max=0.05)`.

`delay_for(body)` gives the wait a request body gets (without a fault's `slow:`).

Run on its own, for a benchmark that wants the server in another process:

    python -m tests.fake_openai --port 0 --delay 0.2 --jitter 0.5 --seed 1 [--random-delay-max S]

prints the base URL (`http://127.0.0.1:PORT/v1`) on the first line of stdout and serves until it gets
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import socket
import threading
import time
import zlib
from collections import deque
from types import FrameType
from typing import Any

from aiohttp import web

from generator.teachers.base import SamplingParams, TeacherRequest
from generator.teachers.scripted import synthetic_answer

_MODELS = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model"}]}).encode()
_JSON = {"Content-Type": "application/json"}
_BACKLOG = 1024  # a small backlog resets connections when a client opens 128 at once
_SHUTDOWN_GRACE_S = 0.1  # on exit, how long requests still waiting get before they are cancelled


class FakeOpenAI:
    def __init__(
        self,
        *,
        delay: float = 0.0,
        jitter: float = 0.0,
        seed: int = 0,
        random_delay_max: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.faults: deque[str] = deque()
        # `hold()`: completions wait (unanswered, not failed) until `release()`, so a test can freeze a
        # run mid-way without betting on how long anything takes
        self.gate = threading.Event()
        self.gate.set()
        self.delay = delay  # seconds added to every answer (to make a run slow enough to interrupt)
        self.jitter = jitter  # the delay is spread over [delay·(1-jitter), delay·(1+jitter)]
        self.seed = seed  # seeds the per-request random delays, with the request body
        self.random_delay_max = random_delay_max  # plus a seeded uniform [0, this) per request
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        # Bound now, so that `base_url` is known before the server starts; it listens on start.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="fake-openai", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        self._ready.wait()
        if self._error is not None:
            self.thread.join()
            raise RuntimeError("the fake OpenAI server did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and self.thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop has closed already
                loop.call_soon_threadsafe(stopping.set)
        if self.thread.ident is not None:
            self.thread.join()
        self._sock.close()

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

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

    def delay_for(self, body: Any) -> float:
        """Seconds this request body waits before its answer: `delay`, `jitter` and `random_delay_max`."""
        delay, jitter, spread = self.delay, self.jitter, self.random_delay_max
        if not jitter and spread <= 0:
            return max(delay, 0.0)
        canonical = json.dumps(body, sort_keys=True).encode()
        rng = random.Random(zlib.crc32(canonical, self.seed & 0xFFFFFFFF))
        u, u2 = rng.random(), rng.random()
        wait = delay * (1 + jitter * (2 * u - 1))
        if spread > 0:
            wait += spread * u2
        return max(wait, 0.0)

    # -- the server, in its own thread and event loop ------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:
            if not self._ready.is_set():
                self._error = e
                self._ready.set()
            else:
                raise

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=_SHUTDOWN_GRACE_S)
        await runner.setup()
        try:
            await web.SockSite(runner, self._sock, backlog=_BACKLOG).start()
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "GET":
            return _respond(200, _MODELS)
        if request.method != "POST":
            return _respond(405, b'{"error": {"message": "method not allowed"}}')
        body = json.loads(await request.read())
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        with self.lock:
            self.requests.append(body)
            self.times.append(time.monotonic())
        chat = request.path.endswith("/chat/completions")
        fault = self.next_fault()
        if fault == "500":
            return _respond(500, b'{"error": {"message": "injected failure"}}')
        if fault and fault.startswith("429"):
            retry_after = fault.split(":")[1] if ":" in fault else "1"
            return _respond(429, b'{"error": {"message": "slow down"}}', {"Retry-After": retry_after})
        wait = self.delay_for(body)
        if fault and fault.startswith("slow"):
            wait += float(fault.split(":")[1])
        if fault == "garbage":
            response = _respond(200, b"<html>this is not json</html>")
        else:
            response = _respond(200, self._completion(body, chat, fault))
        if wait > 0:
            await asyncio.sleep(wait)
        return response

    def _completion(self, body: dict[str, Any], chat: bool, fault: str | None) -> bytes:
        text = self.answer(body, chat)  # through the instance: a test may have replaced it
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
        return json.dumps(payload).encode()


def _respond(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, headers={**_JSON, **headers} if headers else _JSON)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.fake_openai", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0: any free port (the default)")
    p.add_argument("--delay", type=float, default=0.0, help="seconds added to every answer")
    p.add_argument("--jitter", type=float, default=0.0, help="spread the delay over delay·(1±jitter)")
    p.add_argument("--seed", type=int, default=0, help="seeds the per-request random delays")
    p.add_argument("--random-delay-max", type=float, default=0.0, help="plus a seeded uniform [0, this)")
    args = p.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = FakeOpenAI(
        delay=args.delay,
        jitter=args.jitter,
        seed=args.seed,
        random_delay_max=args.random_delay_max,
        host=args.host,
        port=args.port,
    )
    with server:
        print(server.base_url, flush=True)
        while not stop.wait(1.0):  # a timed wait, so a signal is always noticed promptly
            pass


if __name__ == "__main__":
    main()
