"""A teacher behind any OpenAI-compatible server (vLLM serve, hosted APIs), over plain aiohttp.

Why aiohttp and not the official `openai` SDK: the SDK cost about 2.7 ms of CPU per request on a
2-core machine (httpx's connection pool scans every connection per request, plus request transforms
and pydantic parsing of the answer), so one worker process topped out near 370 requests/s. A raw
aiohttp client costs about 0.3 ms per request, and the two endpoints we use are two JSON POSTs.
vLLM's own serving benchmark talks to OpenAI-compatible servers with aiohttp for the same reason.

Reliability lives here and nowhere else: N requests in flight (a semaphore, and a connection pool of
the same size kept alive), a per-request timeout, and retries with exponential backoff plus jitter on
timeouts, connection errors, 429 (honouring `Retry-After`) and 5xx; any other 4xx fails at once. A
request that still fails, or whose body is garbage, comes back as a failed response: it is counted by
the loop and never ends a run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import aiohttp

from generator.teachers.base import TeacherRequest, TeacherResponse, failed

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The server's `Retry-After` (seconds form), if it sent one."""
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def error_message(body: bytes) -> str:
    """What an error body says: `error.message` of an OpenAI-style JSON error, else the text itself."""
    text = body.decode("utf-8", "replace").strip()
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return text[:500] or "(empty body)"
    return str(message)


def _failed(key: str, error: str, attempts: int, latency_s: float, rate_limited: int) -> TeacherResponse:
    return failed(key, error, attempts, latency_s).model_copy(update={"rate_limited": rate_limited})


def env_proxy(url: str) -> str | None:
    """The HTTP(S)_PROXY for `url` unless NO_PROXY covers it, as the official client honoured them.

    Read once: aiohttp's `trust_env` reads the environment in a thread on every request.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.hostname and urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


class _Connection:
    """What one event loop needs: a session (its connection pool) and the in-flight semaphore."""

    def __init__(self, loop: asyncio.AbstractEventLoop, teacher: OpenAITeacher) -> None:
        self.loop = loop
        self.semaphore = asyncio.Semaphore(teacher.max_in_flight)
        self.session = aiohttp.ClientSession(
            # The pool is as large as the window, so no request ever waits in it (the timeout counts
            # from inside the semaphore); connections are kept alive between requests.
            connector=aiohttp.TCPConnector(limit=teacher.max_in_flight, keepalive_timeout=60),
            headers={
                "Authorization": f"Bearer {teacher.api_key}",
                "Content-Type": "application/json",
            },
            timeout=aiohttp.ClientTimeout(total=teacher.timeout),
        )


class OpenAITeacher:
    backend = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        max_in_flight: int = 8,
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
    ) -> None:
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key or "EMPTY"
        self.proxy = env_proxy(self.base_url)
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        # One session per event loop, made on first use: aiohttp sessions and asyncio semaphores are
        # bound to the loop they first run on, and a teacher may be driven from several (tests).
        self._connections: dict[int, _Connection] = {}

    async def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        return list(await asyncio.gather(*(self._generate_one(r) for r in requests)))

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            if connection.loop is loop:
                await connection.session.close()
            # A session of a loop that has ended can no longer be closed; its sockets go with it.

    def _connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        connection = self._connections.get(id(loop))
        if connection is None or connection.loop is not loop:
            self._connections = {k: c for k, c in self._connections.items() if not c.loop.is_closed()}
            connection = self._connections[id(loop)] = _Connection(loop, self)
        return connection

    def _backoff(self, attempt: int) -> float:
        # Full jitter (AWS architecture blog): spreads retries of many clients hitting one server.
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))

    async def _generate_one(self, request: TeacherRequest) -> TeacherResponse:
        connection = self._connection()
        started = time.monotonic()
        key, url, body = "", "", b""
        error = "no attempt made"
        rate_limited = 0
        for attempt in range(1, self.max_retries + 2):
            delay: float | None = None
            try:
                async with connection.semaphore:
                    if not key:
                        # Prepared in the first slot, not up front: a batch of thousands would
                        # otherwise hash and encode them all before sending its first request.
                        key = request.cache_key(self.backend, self.model)
                        url, body = self._request(request)
                    t0 = time.monotonic()
                    async with connection.session.post(url, data=body, proxy=self.proxy) as http:
                        status, headers, raw = http.status, http.headers, await http.read()
                    latency = time.monotonic() - t0
                if 200 <= status < 300:
                    return self._to_response(json.loads(raw), key, attempt, latency, rate_limited)
                if status == 429:
                    rate_limited += 1
                    error = f"429 rate limited: {error_message(raw)}"
                    delay = retry_after_seconds(headers)
                elif status >= 500:
                    error = f"{status} server error: {error_message(raw)}"
                    delay = retry_after_seconds(headers)
                else:  # 4xx other than 429: the request itself is wrong, don't retry
                    error = f"{status}: {error_message(raw)}"
                    return _failed(key, error, attempt, time.monotonic() - started, rate_limited)
            except asyncio.TimeoutError:  # before ClientError: aiohttp's timeout errors are both
                error = "timed out"
            except aiohttp.ClientError as exc:
                error = f"connection error: {type(exc).__name__}: {exc}"
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                error = f"unparseable response: {type(exc).__name__}: {exc}"
            if attempt > self.max_retries:
                break
            wait = max(delay or 0.0, self._backoff(attempt))
            log.info(
                "teacher request %s failed (%s); retry %d/%d in %.1fs",
                key[:8],
                error,
                attempt,
                self.max_retries,
                wait,
            )
            await asyncio.sleep(wait)
        log.warning("teacher request %s gave up after %d attempts: %s", key[:8], self.max_retries + 1, error)
        return _failed(key, error, self.max_retries + 1, time.monotonic() - started, rate_limited)

    def _request(self, request: TeacherRequest) -> tuple[str, bytes]:
        """The endpoint and JSON body of one request (the same bytes for every attempt)."""
        p = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "presence_penalty": p.presence_penalty,
            "frequency_penalty": p.frequency_penalty,
        }
        if p.stop:
            body["stop"] = list(p.stop)
        if p.seed is not None:
            body["seed"] = p.seed
        if p.repetition_penalty is not None:  # vLLM's server takes it; only sent when asked for
            body["repetition_penalty"] = p.repetition_penalty
        if request.kind == "chat":
            body["messages"] = request.chat_messages()
            return f"{self.base_url}/chat/completions", json.dumps(body).encode()
        body["prompt"] = request.prompt or ""
        return f"{self.base_url}/completions", json.dumps(body).encode()

    def _to_response(
        self, body: Any, key: str, attempt: int, latency: float, rate_limited: int
    ) -> TeacherResponse:
        # Anything malformed raises ValueError, KeyError, IndexError or TypeError: handled as unparseable.
        choice = body["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        if not isinstance(text, str):
            raise TypeError(f"response text is {type(text).__name__}, not a string")
        usage = body.get("usage") or {}
        return TeacherResponse(
            text=text,
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0,
            latency_s=latency,
            request_key=key,
            attempts=attempt,
            rate_limited=rate_limited,
        )
