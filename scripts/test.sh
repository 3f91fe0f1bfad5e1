#!/usr/bin/env bash
# Every test of the project: the web UI's committed bundle against its sources, the Rust
# workspace (unit, integration and end-to-end tests against the real server on 127.0.0.1:0),
# the conformance tests with the official openai Python SDK against the same binary, the MCP
# conformance runner, llama.cpp's own server tests, and the web UI in a real Chromium
# (Playwright) on the real model.
# The store's tests run against SQLite and against a private PostgreSQL server
# started here (scripts/postgres.sh) and stopped on exit. The real-model tests
# (Rust `it::real_model`, Python `test_real_model.py`) run on the qwen-coder and
# gemma fixtures (scripts/models.sh).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Real models (Qwen2.5-Coder-0.5B-Instruct, Gemma 3 270M base, all-MiniLM-L6-v2) for the real-model tests,
# fetched once into the user's cache dir; a fixture that cannot be had fails the run.
fixtures="$(scripts/models.sh qwen-coder gemma minilm)"
CHORUS_QWEN_CODER="$(sed -n 1p <<<"$fixtures")"
CHORUS_GEMMA="$(sed -n 2p <<<"$fixtures")"
CHORUS_MINILM="$(sed -n 3p <<<"$fixtures")"
export CHORUS_QWEN_CODER CHORUS_GEMMA CHORUS_MINILM

# The web UI bundle embedded in the binary must be what web/ builds (cheap; fails early).
scripts/webui.sh check

read -r pg_url pg_dir < <(scripts/postgres.sh start)
trap 'scripts/postgres.sh stop "$pg_dir"' EXIT
export CHORUS_TEST_POSTGRES_URL="$pg_url"

cargo test --workspace --locked

# `cargo test` built both binaries for the integration tests; reuse them rather
# than running another `cargo build`, whose per-package feature set would
# rebuild llama.cpp.
bin="${CARGO_TARGET_DIR:-$root/target}/debug"
model="$(mktemp -d)/tiny.gguf"
"$bin/chorus-testkit" write --tiny "$model" >/dev/null
venv="$(scripts/python-env.sh)"
CHORUS_BIN="$bin/chorus" CHORUS_TEST_MODEL="$model" "$venv/bin/pytest" -q tests/conformance

# The official MCP conformance runner against the same binary's /mcp (Node 22 and the runner
# are installed into .cache/ on first use); known failures in tests/mcp-conformance.
CHORUS_BIN="$bin/chorus" CHORUS_TESTKIT="$bin/chorus-testkit" scripts/mcp-conformance.sh

# llama.cpp's own server tests against the same binary, as llama.cpp runs them against an
# external server; known failures, each with its reason, in tests/llama-server.
CHORUS_BIN="$bin/chorus" CHORUS_TESTKIT="$bin/chorus-testkit" scripts/llama-server-tests.sh

# The web UI in Debian's chromium, driven by Playwright, against the same binary on the real
# qwen-coder model; screenshots are kept in CHORUS_ARTIFACTS (default target/webui-artifacts).
CHORUS_BIN="$bin/chorus" CHORUS_TEST_MODEL="$model" scripts/webui.sh test
