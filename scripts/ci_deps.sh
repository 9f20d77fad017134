#!/usr/bin/env bash
# Install into a Python environment what the tests need beyond `pip install -e '.[test]'`:
# llama-cpp-python, for the gguf tokenizer (the `context-pack[gguf]` extra).
#
# PyPI has no wheel of it for this machine, so installing it compiles llama.cpp from the sdist (about
# 4 minutes on two cores). The wheel is built once and kept in $CTXPACK_CI_CACHE/wheels (by default
# ~/.cache/ctxpack-ci/wheels), named by version; later runs install it from there in seconds. A machine
# without that cache builds it the same way, only slower.
#
#   bash scripts/ci_deps.sh .venv/bin/python
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${1:?usage: ci_deps.sh PYTHON}"

# One version for the whole project: the one whose sdist fixtures/llama_sdist.py uses.
version="$(sed -n 's/^LLAMA_CPP_PYTHON_VERSION = "\(.*\)"$/\1/p' "$repo/fixtures/llama_sdist.py")"
cache="${CTXPACK_CI_CACHE:-$HOME/.cache/ctxpack-ci}"
wheels="$cache/wheels"

installed="$("$python" -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))' 2>/dev/null || true)"
if [ "$installed" = "$version" ]; then
  exit 0
fi

find_wheel() {
  find "$wheels" -maxdepth 1 -name "llama_cpp_python-$version-*.whl" 2>/dev/null | sort | head -n 1
}

mkdir -p "$wheels"
wheel="$(find_wheel)"
if [ -z "$wheel" ]; then
  exec 9>"$cache/.wheel-llama-cpp-python.lock"
  flock 9  # another test run may be building it right now
  wheel="$(find_wheel)"
  if [ -z "$wheel" ]; then
    archive="$("$python" "$repo/fixtures/llama_sdist.py" archive)"
    log="$wheels/build-llama_cpp_python-$version.log"
    echo "ci_deps: building llama-cpp-python $version from its sdist, once (a few minutes; log: $log)" >&2
    work="$(mktemp -d "$wheels/.partial.XXXXXX")"  # beside the cache, so the move below is a rename
    # CPU only, portable (the cached wheel may serve another CPU), without the multimodal library,
    # examples, tools or tests: the tokenizer needs libllama alone.
    if ! CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}" \
        CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \
        "$python" -m pip wheel --no-deps --disable-pip-version-check -w "$work" "$archive" >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      rm -rf "$work"
      exit 1
    fi
    mv "$work"/llama_cpp_python-"$version"-*.whl "$wheels"/
    rm -rf "$work"
    wheel="$(find_wheel)"
  fi
  flock -u 9
fi

log="$(mktemp)"
if ! "$python" -m pip install --quiet --disable-pip-version-check "$wheel" >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  exit 1
fi
rm -f "$log"
