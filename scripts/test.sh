#!/usr/bin/env bash
# Set up what the tests need, then run them: `bash scripts/test.sh [pytest args]`. .ci/run calls exactly this.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# tiktoken cannot download its BPE files offline; the workplace keeps cl100k_base beside the repo.
# Tests run git repos and hooks in tmp dirs, so the path must be absolute.
if [ -z "${TIKTOKEN_CACHE_DIR:-}" ] && [ -d "$repo/../shared/tiktoken" ]; then
  TIKTOKEN_CACHE_DIR="$(cd "$repo/../shared/tiktoken" && pwd)"
  export TIKTOKEN_CACHE_DIR
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# Reinstall only when the project's metadata changed since the last install.
stamp=".venv/.context-pack-installed"
wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]' >.venv/install.log 2>&1; then
    cat .venv/install.log >&2
    exit 1
  fi
  echo "$wanted" >"$stamp"
fi

# llama-cpp-python (the gguf tokenizer) has no wheel on PyPI here: built once, cached, installed from the cache.
bash scripts/ci_deps.sh .venv/bin/python

# The real llama.cpp server the backend tests start: built from the llama-cpp-python sdist on the first run
# (~6 minutes on two cores), then taken from the cache (~/.cache/ctxpack-ci, or $CTXPACK_CI_CACHE).
if [ -z "${CTXPACK_LLAMA_SERVER:-}" ]; then
  CTXPACK_LLAMA_SERVER="$(bash scripts/llama_server.sh)"
  export CTXPACK_LLAMA_SERVER
fi

.venv/bin/ruff check --quiet .
exec .venv/bin/python -m pytest "$@"
