"""A teacher behind any OpenAI-compatible server (vLLM serve, hosted APIs), via the official client.

Reliability lives here and nowhere else: N requests in flight (a semaphore), a per-request timeout,
and retries with exponential backoff plus jitter on timeouts, connection errors, 429 (honouring
`Retry-After`) and 5xx. A request that still fails, or whose body is garbage, comes back as a failed
response: it is counted by the loop and never ends a run.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import openai

from generator.teachers.base import TeacherRequest, TeacherResponse, failed

log = logging.getLogger(__name__)


def retry_after_seconds(exc: openai.APIStatusError) -> float | None:
    """The server's `Retry-After` (seconds form), if it sent one."""
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


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
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._max_in_flight = max_in_flight
        self._semaphore: asyncio.Semaphore | None = None
        # The client's own retries are off: we retry here so every attempt is logged and counted.
        self._client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=0
        )

    async def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]:
        return list(await asyncio.gather(*(self._generate_one(r) for r in requests)))

    async def close(self) -> None:
        await self._client.close()

    def _backoff(self, attempt: int) -> float:
        # Full jitter (AWS architecture blog): spreads retries of many clients hitting one server.
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))

    async def _generate_one(self, request: TeacherRequest) -> TeacherResponse:
        if self._semaphore is None:  # created lazily so it binds to the running event loop
            self._semaphore = asyncio.Semaphore(self._max_in_flight)
        key = request.cache_key(self.backend, self.model)
        started = time.monotonic()
        error = "no attempt made"
        for attempt in range(1, self.max_retries + 2):
            delay: float | None = None
            try:
                async with self._semaphore:
                    t0 = time.monotonic()
                    response = await self._call(request)
                    latency = time.monotonic() - t0
                return self._to_response(response, key, attempt, latency)
            except openai.RateLimitError as exc:
                error, delay = f"429 rate limited: {exc.message}", retry_after_seconds(exc)
            except openai.APIStatusError as exc:
                if exc.status_code < 500:  # 4xx other than 429: the request itself is wrong, don't retry
                    return failed(
                        key, f"{exc.status_code}: {exc.message}", attempt, time.monotonic() - started
                    )
                error, delay = f"{exc.status_code} server error: {exc.message}", retry_after_seconds(exc)
            except openai.APITimeoutError:
                error = "timed out"
            except openai.APIConnectionError as exc:
                error = f"connection error: {exc}"
            except (openai.APIResponseValidationError, ValueError, KeyError, IndexError, TypeError) as exc:
                error = f"unparseable response: {exc}"
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
        return failed(key, error, self.max_retries + 1, time.monotonic() - started)

    async def _call(self, request: TeacherRequest) -> Any:
        p = request.params
        common: dict[str, Any] = {
            "model": self.model,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "presence_penalty": p.presence_penalty,
            "frequency_penalty": p.frequency_penalty,
        }
        if p.stop:
            common["stop"] = list(p.stop)
        if p.seed is not None:
            common["seed"] = p.seed
        if request.kind == "chat":
            return await self._client.chat.completions.create(messages=request.chat_messages(), **common)  # type: ignore[call-overload,arg-type]
        return await self._client.completions.create(prompt=request.prompt or "", **common)  # type: ignore[call-overload]

    def _to_response(self, response: Any, key: str, attempt: int, latency: float) -> TeacherResponse:
        choice = response.choices[0]  # IndexError on an empty list: handled as unparseable
        text = choice.message.content if hasattr(choice, "message") else choice.text
        if not isinstance(text, str):
            raise TypeError(f"response text is {type(text).__name__}, not a string")
        usage = response.usage
        return TeacherResponse(
            text=text,
            finish_reason=choice.finish_reason or "stop",
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            latency_s=latency,
            request_key=key,
            attempts=attempt,
        )
