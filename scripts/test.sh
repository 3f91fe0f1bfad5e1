#!/usr/bin/env bash
# Every test of the project: the Rust workspace (unit, integration and
# end-to-end tests against the real server on 127.0.0.1:0), then the
# conformance tests with the official openai Python SDK against the same binary.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cargo test --workspace --locked

venv="$(scripts/python-env.sh)"
cargo build --locked -p chorus-cli -p chorus-testkit
CHORUS_BIN="$root/target/debug/chorus" "$venv/bin/pytest" -q tests/conformance
