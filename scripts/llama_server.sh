#!/usr/bin/env bash
# Print the path of a llama-server binary built from the llama.cpp sources in the llama-cpp-python sdist
# (fixtures/llama_sdist.py), building it once per sdist version into the ctxpack CI cache
# (~/.cache/ctxpack-ci, or $CTXPACK_CI_CACHE). The build takes ~6 minutes on two cores; later calls only print.
#
#   bash scripts/llama_server.sh            # -> ~/.cache/ctxpack-ci/llama-server-0.3.36/bin/llama-server
#
# Build log: <cache>/llama-server-<version>-build/build.log. Progress goes to stderr, the path to stdout.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
if [ -x "$repo/.venv/bin/python" ]; then python="$repo/.venv/bin/python"; fi

cache="${CTXPACK_CI_CACHE:-$HOME/.cache/ctxpack-ci}"
version="$("$python" -c 'import sys; sys.path.insert(0, sys.argv[1]); import llama_sdist; print(llama_sdist.LLAMA_CPP_PYTHON_VERSION)' "$repo/fixtures")"
prefix="$cache/llama-server-$version"
binary="$prefix/bin/llama-server"

if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi

mkdir -p "$cache"
# The same lock file name as fixtures/llama_sdist.py's cache_lock("llama-server-build").
exec 9>"$cache/.llama-server-build.lock"
flock 9
if [ -x "$binary" ]; then  # another process built it while we waited
  echo "$binary"
  exit 0
fi

# The build tools, from Debian when they are missing (CI runs as root on a Debian machine).
if ! command -v cmake >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing cmake and a C++ compiler (apt-get) ..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ make; } >&2
  else
    echo "llama-server needs cmake and a C++ compiler: install them (e.g. apt-get install cmake g++)" >&2
    exit 1
  fi
fi

source_dir="$("$python" -c 'import sys; sys.path.insert(0, sys.argv[1]); import llama_sdist; print(llama_sdist.llama_cpp_source())' "$repo/fixtures")"
build="$cache/llama-server-$version-build"
mkdir -p "$build"
echo "building llama-server $version from $source_dir (log: $build/build.log) ..." >&2

generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
jobs="${CTXPACK_BUILD_JOBS:-2}"
start=$SECONDS
{
  # One static binary (no shared libs to copy beside it); GGML_NATIVE=OFF so a cached binary runs on any
  # x86-64 machine that restores the cache; no curl, no openssl, no web UI download: the build is offline.
  cmake -S "$source_dir" -B "$build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=OFF \
    -DLLAMA_CURL=OFF \
    -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_SERVER=ON \
    -DLLAMA_BUILD_TOOLS=ON \
    -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF
  cmake --build "$build" --target llama-server -j "$jobs"
} >"$build/build.log" 2>&1 || {
  tail -n 40 "$build/build.log" >&2
  echo "llama-server build failed; full log: $build/build.log" >&2
  exit 1
}

built="$(find "$build" -type f -name llama-server -perm -u+x | head -n 1)"
if [ -z "$built" ]; then
  echo "llama-server build finished but no binary found under $build" >&2
  exit 1
fi
# Copy then rename, so a half-written binary is never taken for a finished one.
mkdir -p "$prefix/bin"
cp "$built" "$binary.partial"
mv "$binary.partial" "$binary"
echo "built llama-server in $((SECONDS - start))s" >&2
echo "$binary"
