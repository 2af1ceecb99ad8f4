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
    # --no-deps: only torch itself comes from a local wheel or the CPU index; its dependencies are
    # resolved from the default index in the next step. A machine whose pip already finds the CPU build
    # (a local wheel folder) is not sent to the CPU index at all.
    "${PIP[@]}" install -q --no-deps "torch==$TORCH_VERSION+cpu" 2>/dev/null ||
      "${PIP[@]}" install -q --no-deps "torch==$TORCH_VERSION+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
  fi
fi

# The llama.cpp judge server (llama-cpp-python) is compiled from source. pip's default build uses
# -march=native: a wheel built on one CPU crashes on another (on CPUs with AMX the server dies with
# SIGSEGV on the first chat completion). We build it portably, ONCE per flag set, into our own wheel
# folder (never pip's cache, which may hold a native wheel from an earlier build), and install that.
LLAMA_CPP_VERSION=$(sed -n 's/^llama_cpp_python==//p' constraints.txt)
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
LLAMA_BUILD_ID=$(printf '%s %s' "$LLAMA_CPP_VERSION" "$LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-12)
WHEEL_DIR="${ECON_EVAL_HOME:-$HOME/.cache/econ-eval}/wheels/llama-cpp-python-$LLAMA_BUILD_ID"
MARKER="$VENV/.llama-cpp-portable"
if [ "$(cat "$MARKER" 2>/dev/null)" != "$LLAMA_BUILD_ID" ]; then
  if ! ls "$WHEEL_DIR"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "setup: building llama-cpp-python==$LLAMA_CPP_VERSION portably (no -march=native, no AVX-512/AMX; about 8 min on 2 cores, once)"
    rm -rf "$WHEEL_DIR.partial"
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS" FORCE_CMAKE=1 "${PIP[@]}" wheel -q --no-deps --no-cache-dir \
      --no-binary llama-cpp-python -w "$WHEEL_DIR.partial" "llama-cpp-python==$LLAMA_CPP_VERSION"
    mv "$WHEEL_DIR.partial" "$WHEEL_DIR"
  fi
  "${PIP[@]}" install -q -c constraints.txt --force-reinstall --no-deps "$WHEEL_DIR"/llama_cpp_python-*.whl
  echo "$LLAMA_BUILD_ID" > "$MARKER"
fi

# constraints.txt pins every other package to the versions the test suite ran with.
"${PIP[@]}" install -q -c constraints.txt -e ".[all]"
echo "setup: done ($("$VENV/bin/python" -c 'import torch, lm_eval, transformers; print(f"torch {torch.__version__}, lm-eval {lm_eval.__version__}, transformers {transformers.__version__}")'))"
