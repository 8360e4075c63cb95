"""The request cache is opened by every worker process at once; none of them may fail to open it."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from generator.teachers.base import TeacherResponse
from generator.teachers.cache import RequestCache


def _open_and_close(path: str) -> str:
    try:
        RequestCache(Path(path)).close()
    except Exception as error:  # reported to the parent, which asserts on it
        return repr(error)
    return "ok"


def test_many_processes_open_a_fresh_cache_file_at_once(tmp_path: Path):
    # Before the retrying open, about one race in ten between 8 processes ended in
    # "database is locked" (SQLite refuses the WAL switch at once to avoid a deadlock).
    context = multiprocessing.get_context("fork")
    with context.Pool(8) as pool:
        for trial in range(40):
            path = str(tmp_path / f"cache{trial}.sqlite")
            assert pool.map(_open_and_close, [path] * 8) == ["ok"] * 8


def test_a_response_put_by_one_connection_is_read_by_another(tmp_path: Path):
    path = tmp_path / "c.sqlite"
    writer, reader = RequestCache(path), RequestCache(path)
    response = TeacherResponse(text="hi", finish_reason="stop")
    writer.put_many([("k1", "openai", "m", response)])
    assert reader.get_many(["k1", "k2"]) == {"k1": response}
    assert len(reader) == 1
