#!/usr/bin/env bash
# Create .venv and install econ-eval with everything the tests need.
# On a machine without an NVIDIA GPU the CPU build of PyTorch is installed explicitly
# (an unpinned `torch` would pull several GB of CUDA wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade "pip>=24"

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found: installing torch==$TORCH_VERSION (CUDA build)"
    "${PIP[@]}" install -q "torch==$TORCH_VERSION"
  else
    echo "setup: no GPU: installing the CPU build torch==$TORCH_VERSION+cpu"
    # --no-deps: only torch itself comes from the CPU index (or a local wheel); its dependencies
    # are resolved from the default index in the next step.
    "${PIP[@]}" install -q --no-deps "torch==$TORCH_VERSION+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
  fi
fi

# constraints.txt pins every other package to the versions the test suite ran with.
"${PIP[@]}" install -q -c constraints.txt -e ".[all]"
echo "setup: done ($("$VENV/bin/python" -c 'import torch, lm_eval, transformers; print(f"torch {torch.__version__}, lm-eval {lm_eval.__version__}, transformers {transformers.__version__}")'))"
