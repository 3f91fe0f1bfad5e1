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
#   LLAMA_SERVER_MARCH   instruction set, as gcc's -march (default: x86-64-v3, the
#                        target-cpu chorus builds for in .cargo/config.toml)
#
# Prints the path of the built binary on the last line of stdout.
set -euo pipefail

CACHE="${CHORUS_BENCH_CACHE:-$HOME/.cache/chorus-bench}"
JOBS="${BUILD_JOBS:-2}"
SRC_ROOT="$CACHE/llama-cpp-python"
BIN_LINK="$CACHE/bin/llama-server"

# llama-server must run the same llama.cpp kernels as chorus, so it is compiled
# for the instruction set chorus is: llama-cpp-sys-2 turns `-C target-cpu=CPU` into
# GGML_NATIVE=OFF, -march=CPU, and one GGML_<FEATURE>=ON per Rust target feature
# (avx, avx2, bmi2, f16c, fma, sse4.2 for x86-64-v3). The same is done here from
# gcc's view of -march. With LLAMA_SERVER_MARCH=native, GGML_NATIVE=ON as llama.cpp's
# own default, minus AMX: on Sapphire Rapids in this VM, ggml's AMX matmul for Q4_0
# died with SIGILL (`tilezero` in ggml_backend_amx_mul_mat).
MARCH="${LLAMA_SERVER_MARCH:-x86-64-v3}"
isa="$(cc -march="$MARCH" -Q --help=target 2>/dev/null || true)"
enabled() { grep -qE -- "-m$1[[:space:]]+\[enabled\]" <<<"$isa"; }
CFLAGS_ISA=()
GGML_ISA=()
if [[ "$MARCH" == native ]]; then
  GGML_ISA+=(-DGGML_NATIVE=ON)
  if enabled amx-int8; then CFLAGS_ISA+=(-mno-amx-tile -mno-amx-int8 -mno-amx-bf16); fi
else
  GGML_ISA+=(-DGGML_NATIVE=OFF)
  CFLAGS_ISA+=("-march=$MARCH")
  for pair in avx:AVX avx2:AVX2 bmi2:BMI2 f16c:F16C fma:FMA sse4.2:SSE42 \
              avx512bf16:AVX512_BF16 avx512vbmi:AVX512_VBMI avx512vnni:AVX512_VNNI avxvnni:AVX_VNNI; do
    if enabled "${pair%%:*}"; then GGML_ISA+=("-DGGML_${pair#*:}=ON"); fi
  done
fi
LLAMA_SERVER_CFLAGS="${CFLAGS_ISA[*]}"
config="march=$MARCH cflags=[$LLAMA_SERVER_CFLAGS] ggml=[${GGML_ISA[*]}] version=${LLAMA_CPP_PYTHON_VERSION:-latest}"

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
build="$llama/build-chorus-bench-$(echo "$config" | md5sum | cut -c1-8)"

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
  "${GGML_ISA[@]}" \
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
