#!/usr/bin/env bash
# Builds `llama-server` from the llama.cpp sources vendored inside the
# llama-cpp-python source distribution on PyPI, into a cache directory outside
# the repository. Idempotent: does nothing when the binary already exists.
#
# Environment:
#   CHORUS_BENCH_CACHE   cache dir (default: $HOME/.cache/chorus-bench)
#   LLAMA_CPP_PYTHON_VERSION  pin the sdist version (default: latest on PyPI)
#   BUILD_JOBS           parallel compile jobs (default: 2)
#
#   LLAMA_SERVER_CFLAGS  extra C/C++ flags (default: "-mno-amx-tile -mno-amx-int8
#                        -mno-amx-bf16" where -march=native enables AMX, see below)
#
# Prints the path of the built binary on the last line of stdout.
set -euo pipefail

CACHE="${CHORUS_BENCH_CACHE:-$HOME/.cache/chorus-bench}"
JOBS="${BUILD_JOBS:-2}"
SRC_ROOT="$CACHE/llama-cpp-python"
BIN_LINK="$CACHE/bin/llama-server"

# GGML_NATIVE=ON compiles for -march=native. On CPUs with AMX (Sapphire Rapids and
# later) that turns on ggml's AMX matmul for Q4_0, which dies with SIGILL
# (`tilezero` in ggml_backend_amx_mul_mat) on the benchmark model here, although AMX
# itself works on this machine. Keep every other native instruction set extension
# (AVX-512, VNNI, BF16, ...) and leave AMX out.
if [[ -z "${LLAMA_SERVER_CFLAGS+set}" ]]; then
  LLAMA_SERVER_CFLAGS=""
  native_isa="$(cc -march=native -Q --help=target 2>/dev/null || true)"
  if grep -qE -- '-mamx-int8[[:space:]]+\[enabled\]' <<<"$native_isa"; then
    LLAMA_SERVER_CFLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  fi
fi
config="GGML_NATIVE=ON cflags=[$LLAMA_SERVER_CFLAGS] version=${LLAMA_CPP_PYTHON_VERSION:-latest}"

if [[ -x "$BIN_LINK" && "$(cat "$BIN_LINK.config" 2>/dev/null)" == "$config" ]]; then
  echo "llama-server already built: $BIN_LINK ($config)" >&2
  echo "$BIN_LINK"
  exit 0
fi

mkdir -p "$CACHE/sdist" "$CACHE/bin"

spec="llama-cpp-python"
if [[ -n "${LLAMA_CPP_PYTHON_VERSION:-}" ]]; then
  spec="llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}"
fi

sdist="$(ls "$CACHE"/sdist/llama_cpp_python-*.tar.gz 2>/dev/null | sort -V | tail -n1 || true)"
if [[ -z "$sdist" ]]; then
  echo "downloading $spec sdist into $CACHE/sdist" >&2
  python3 -m pip download --no-deps --no-binary :all: --dest "$CACHE/sdist" "$spec" >&2
  sdist="$(ls "$CACHE"/sdist/llama_cpp_python-*.tar.gz | sort -V | tail -n1)"
fi
echo "sdist: $sdist" >&2

name="$(basename "$sdist" .tar.gz)"
src="$SRC_ROOT/$name"
if [[ ! -d "$src/vendor/llama.cpp" ]]; then
  mkdir -p "$SRC_ROOT"
  tar -xzf "$sdist" -C "$SRC_ROOT"
fi
llama="$src/vendor/llama.cpp"
build="$llama/build-chorus-bench${LLAMA_SERVER_CFLAGS:+-$(echo "$LLAMA_SERVER_CFLAGS" | md5sum | cut -c1-8)}"

# Record which llama.cpp the sdist carries (no .git inside an sdist, so use the
# build number the CMake scripts fall back to, plus the ggml version).
{
  echo "sdist=$name"
  grep -m1 -E '^__version__' "$src/llama_cpp/__init__.py" 2>/dev/null || true
  grep -m1 -E 'LLAMA_BUILD_NUMBER|BUILD_NUMBER' "$llama/CMakeLists.txt" 2>/dev/null || true
  grep -m3 -E 'GGML_VERSION_(MAJOR|MINOR|PATCH)' "$llama/ggml/CMakeLists.txt" 2>/dev/null || true
} > "$CACHE/llama-server.version" || true

cmake -S "$llama" -B "$build" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS="$LLAMA_SERVER_CFLAGS" \
  -DCMAKE_CXX_FLAGS="$LLAMA_SERVER_CFLAGS" \
  -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF \
  -DGGML_NATIVE=ON \
  -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
  -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TOOLS=ON \
  -DLLAMA_BUILD_COMMON=ON \
  -DLLAMA_OPENSSL=OFF \
  -DLLAMA_LLGUIDANCE=OFF >&2

cmake --build "$build" --config Release --target llama-server -j "$JOBS" >&2

bin="$(find "$build" -type f -name llama-server -perm -u+x | head -n1)"
if [[ -z "$bin" ]]; then
  echo "llama-server binary not found under $build" >&2
  exit 1
fi
ln -sf "$bin" "$BIN_LINK"
echo "$config" > "$BIN_LINK.config"
echo "$BIN_LINK"
