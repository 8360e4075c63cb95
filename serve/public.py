"""What a client may read of a failure: the reason in words, without the server's insides.

A job's `error` and a response's message are read by every holder of the key, and a teacher's address,
a path on the server or a traceback tells them about the machine. The whole error goes to the
server's log; the client gets the reason, scrubbed of URLs, host:port pairs and absolute paths.
"""

from __future__ import annotations

import re

from generator.config import ConfigError
from generator.errors import RunFolderBusy, TeacherUnavailable
from generator.seeds import SeedFileError

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
_HOST_PORT = re.compile(
    r"\b(?:localhost|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|[\w-]+(?:\.[\w-]+)+):\d{1,5}\b"
)
_IP = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_PATH = re.compile(r"(?<![\w.])(?:~|\.{1,2})?/(?:[^\s/:'\"]+/)*[^\s/:'\",;)]*")


def scrub(text: str) -> str:
    """`text` with URLs, host:port pairs, IP addresses and absolute paths replaced by placeholders,
    and cut at a traceback."""
    text = text.split("Traceback (most recent call last)")[0].strip()
    text = _URL.sub("<url>", text)
    text = _HOST_PORT.sub("<host>", text)
    text = _IP.sub("<host>", text)
    text = _PATH.sub(lambda m: "<path>" if len(m.group(0)) > 1 else m.group(0), text)
    return " ".join(text.split())[:500]


def public_error(exc: BaseException) -> str:
    """A job's `error` for an exception that ended it."""
    if isinstance(exc, TeacherUnavailable):
        reason = str(exc).split("; last error")[0]
        return scrub(reason) + "; the server's log has the last error"
    if isinstance(exc, RunFolderBusy):
        return "the job's run folder is held by another process"
    if isinstance(exc, ConfigError | SeedFileError):
        return scrub(str(exc))
    return f"internal error ({type(exc).__name__}); the server's log has the details"
