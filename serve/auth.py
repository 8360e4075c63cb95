"""Bearer API keys. A caller is known by a hash of its key (stored with its jobs); keys are compared in
constant time, every configured key each time, and never logged or stored.

Keys are compared as UTF-8 bytes: HTTP headers arrive as bytes, which Starlette decodes as Latin-1,
so the header is turned back into its bytes before comparing with the key's UTF-8 encoding (a
non-ASCII key from --keys-file then matches when a client sends it as UTF-8, as clients do)."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import HTTPException, Request

ANONYMOUS = "anonymous"  # the owner of every job when auth is off (loopback only)


def owner_of(key: str | bytes) -> str:
    raw = key if isinstance(key, bytes) else key.encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:24]


class ApiKeys:
    def __init__(self, keys: list[str], required: bool) -> None:
        self._keys = [k.encode("utf-8") for k in keys]
        self.required = required

    def __call__(self, request: Request) -> str:
        """The caller's owner id, or 401."""
        if not self.required:
            return ANONYMOUS
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HTTPException(
                401, "missing API key: send Authorization: Bearer <key>", {"WWW-Authenticate": "Bearer"}
            )
        raw = given.encode("latin-1")  # the header's own bytes (Starlette decoded them as Latin-1)
        found = False
        for key in self._keys:  # no early exit: the time does not say which key matched, or how far
            found |= hmac.compare_digest(raw, key)
        if not found:
            raise HTTPException(401, "unknown API key", {"WWW-Authenticate": "Bearer"})
        return owner_of(raw)
