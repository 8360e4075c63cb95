"""Unit tests for the embedded model: none of them needs vLLM.

The conversion itself is replaced by a fake that writes the two files a finished conversion has, so
these tests check what wraps it: resolution rules, the one-time atomic write under a lock, and failure
cleanup. The vLLM teacher's plumbing is tested beside this file: test_vllm_requests.py (request and
engine settings), test_vllm_teacher.py (replica spreading) and test_shm_reaper.py (the watchdog).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from generator.config import RunConfig
from generator.teachers import embedded
from generator.teachers.embedded import EmbeddedModelError, embedded_model_path, resolve_model


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SYNTH_INSTRUCT_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "pkg" / "model.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("SYNTH_INSTRUCT_EMBEDDED_GGUF", str(gguf))
    return tmp_path / "cache"


def fake_convert(calls: list[Path], delay: float = 0.0) -> Any:
    def convert(gguf: Path, out_dir: Path) -> None:
        calls.append(out_dir)
        time.sleep(delay)
        (out_dir / "config.json").write_text("{}")
        (out_dir / "tokenizer_config.json").write_text("{}")

    return convert


def test_first_use_converts_once_into_the_cache(
    cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(embedded, "convert_gguf", fake_convert(calls))
    with caplog.at_level(logging.WARNING):
        path = embedded_model_path()
    assert path == str(cache / "models" / "SmolLM2-135M-Instruct")
    assert (Path(path) / "config.json").is_file()
    assert "one time" in caplog.text and "converting" in caplog.text
    assert embedded_model_path() == path  # second call: no conversion
    assert len(calls) == 1
    # converted into a temporary sibling, then renamed: nothing else is left in models/
    assert calls[0].parent == Path(path).parent and calls[0] != Path(path)
    assert sorted(p.name for p in Path(path).parent.iterdir() if not p.name.endswith(".lock")) == [
        "SmolLM2-135M-Instruct"
    ]


def test_concurrent_callers_convert_once(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(embedded, "convert_gguf", fake_convert(calls, delay=0.3))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(embedded_model_path())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(set(results)) == 1 and len(results) == 4


def test_failed_conversion_leaves_nothing_behind(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(gguf: Path, out_dir: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setattr(embedded, "convert_gguf", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        embedded_model_path()
    models = cache / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def test_incomplete_folder_is_replaced(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = cache / "models" / "SmolLM2-135M-Instruct"
    target.mkdir(parents=True)
    (target / "model.safetensors").write_text("half")  # no config.json: not a finished conversion
    calls: list[Path] = []
    monkeypatch.setattr(embedded, "convert_gguf", fake_convert(calls))
    assert embedded_model_path() == str(target)
    assert len(calls) == 1 and not (target / "model.safetensors").exists()


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SYNTH_INSTRUCT_CACHE", str(tmp_path))
    monkeypatch.delenv("SYNTH_INSTRUCT_EMBEDDED_GGUF", raising=False)
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddedModelError, match=r"install_vllm\.sh"):
        embedded_model_path()


def test_find_gguf_in_package_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SYNTH_INSTRUCT_EMBEDDED_GGUF", raising=False)
    (tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")

    class Spec:
        def __init__(self) -> None:
            self.submodule_search_locations = [str(tmp_path)]

    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: Spec())
    assert embedded.find_gguf() == tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_cache_dir_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SYNTH_INSTRUCT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert embedded.embedded_model_dir() == tmp_path / "synth-instruct" / "models" / embedded.EMBEDDED_NAME
    # the request cache sits in the same root as the converted model
    seeds = Path(__file__).resolve().parents[2] / "seeds" / "175.jsonl"
    config = RunConfig(seeds=seeds, teacher="openai", model="m").resolved()
    assert config.cache_path == tmp_path / "synth-instruct" / "requests.sqlite"
    monkeypatch.setenv("SYNTH_INSTRUCT_CACHE", "~/elsewhere")
    assert embedded.embedded_model_dir().parent.parent == Path.home() / "elsewhere"


@pytest.mark.parametrize("model", [None, "", "  ", "embedded", "SmolLM2-135M-Instruct"])
def test_resolve_model_embedded(model: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "embedded_model_path", lambda: "/cache/embedded")
    assert resolve_model(model) == "/cache/embedded"


def test_resolve_model_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    assert resolve_model(str(folder)) == str(folder.resolve())
    monkeypatch.chdir(tmp_path)
    assert resolve_model("my-model") == str(folder.resolve())  # relative folder
    assert resolve_model("./my-model") == str(folder.resolve())


def test_resolve_model_hub_id_passes_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_model("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert resolve_model(" gpt2 ") == "gpt2"


@pytest.mark.parametrize("model", ["/no/such/folder", "./missing", "~/surely-not-here-7f3a"])
def test_resolve_model_missing_path_is_an_error(model: str) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        resolve_model(model)


def test_resolve_model_file_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "model.gguf"
    f.write_bytes(b"GGUF")
    with pytest.raises(FileNotFoundError):
        resolve_model(str(f))
