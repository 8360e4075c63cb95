"""The teacher interface: requests in, responses out, failures as values.

A backend implements one coroutine, `generate(requests) -> responses`, returning exactly one response
per request, in order. A request that fails for good (retries exhausted, timeout, garbage) comes back
as a response with `error` set, never as an exception: one bad call must not sink a batch
(distilabel's batch-of-None failure mode is what we avoid here).
"""

from __future__ import annotations

import hashlib
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class SamplingParams(BaseModel):
    """Decoding settings; all of them are part of the cache key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = Field(512, ge=1)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # >1 discourages repeating any token seen (vLLM's; sent to OpenAI-compatible servers only when set,
    # as vLLM's server takes it and hosted APIs may not); None: the backend's default
    repetition_penalty: float | None = Field(None, gt=0, le=2)


class TeacherRequest(BaseModel):
    """A chat (`messages`) or completion (`prompt`) request, plus sampling params."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["chat", "completion"]
    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] = ()  # (role, content) pairs: hashable, JSON friendly
    params: SamplingParams = Field(default_factory=SamplingParams)

    @classmethod
    def completion(cls, prompt: str, params: SamplingParams) -> TeacherRequest:
        return cls(kind="completion", prompt=prompt, params=params)

    @classmethod
    def chat(cls, user: str, params: SamplingParams, system: str | None = None) -> TeacherRequest:
        messages = ((("system", system),) if system else ()) + (("user", user),)
        return cls(kind="chat", messages=messages, params=params)

    def chat_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]

    def text(self) -> str:
        """The prompt as one string (for completion-only engines and token estimates)."""
        return self.prompt if self.prompt is not None else "\n\n".join(c for _, c in self.messages)

    def cache_key(self, backend: str, model: str) -> str:
        """Hash of everything that determines the response: backend, model, prompt/messages, params.

        The parser is deliberately not part of the key (curator's insight): changing how a response
        is parsed re-parses cached responses at no cost. Each field goes in length-prefixed, so no two
        requests share a key by running one field into the next; the prompt is hashed as it is (no
        JSON escaping of a few KB of text per request: that was most of the cost).
        """
        # a field added later goes in only when set, so the keys of requests made before stay the same
        unset = {"repetition_penalty"} if self.params.repetition_penalty is None else set()
        fields = [_KEY_FORMAT, backend, model, self.kind, self.params.model_dump_json(exclude=unset)]
        fields += ["-"] if self.prompt is None else ["+", self.prompt]
        fields += [str(len(self.messages)), *(part for message in self.messages for part in message)]
        blob = "".join(f"{len(f)}:{f}" for f in fields)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:32]


_KEY_FORMAT = "synth-instruct-request-v2"  # bump when the key's layout changes: old entries then miss


class TeacherResponse(BaseModel):
    """The teacher's answer to one request. `error` is set when the request failed for good."""

    text: str = ""
    finish_reason: str = "stop"  # stop | length | error
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False
    request_key: str = ""
    error: str | None = None
    attempts: int = 1
    rate_limited: int = 0  # 429 answers this request met before its final answer
    teacher: str = "default"  # the name of the run's teacher that answered (routing.py)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@runtime_checkable
class Teacher(Protocol):
    """Anything that turns a batch of requests into the same number of responses."""

    backend: str  # "openai", "vllm", "scripted" ...: part of the cache key
    model: str

    async def generate(self, requests: list[TeacherRequest]) -> list[TeacherResponse]: ...

    async def close(self) -> None: ...


def failed(request_key: str, error: str, attempts: int = 1, latency_s: float = 0.0) -> TeacherResponse:
    """A response standing for a request that could not be answered."""
    return TeacherResponse(
        finish_reason="error", error=error, request_key=request_key, attempts=attempts, latency_s=latency_s
    )
