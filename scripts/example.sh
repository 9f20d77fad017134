#!/usr/bin/env bash
# Install ctxpack into .venv and pack an example repository: `bash scripts/example.sh [BUDGET]`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
if [ -z "${TIKTOKEN_CACHE_DIR:-}" ] && [ -d "$repo/../shared/tiktoken" ]; then  # offline machines
  TIKTOKEN_CACHE_DIR="$(cd "$repo/../shared/tiktoken" && pwd)"
  export TIKTOKEN_CACHE_DIR
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e . >.venv/install.log 2>&1 \
  || { cat .venv/install.log >&2; exit 1; }
example="$(mktemp -d)/example-repo"
.venv/bin/python fixtures/make_repo.py "$example" >/dev/null
echo "ctxpack build $example --budget ${1:-2k} --query 'bulk discount'" >&2
.venv/bin/ctxpack build "$example" --budget "${1:-2k}" --query "bulk discount" --verbose
