#!/usr/bin/env bash
# llama.cpp's own server tests (tools/server/tests/unit in the llama.cpp sources vendored in the
# llama-cpp-python 0.3.36 sdist on PyPI) against `chorus serve`, as llama.cpp runs them against
# an external server (`DEBUG_EXTERNAL=1`): the files on what chorus serves of llama-server
# (basic, chat completion, completion, tokenize, embedding, infill, slot save). The tests
# llama-server itself fails on the same model and flags, and those that need what chorus does
# not do, are listed with their reasons in tests/llama-server/expected-failures.txt. Exits
# non-zero on a failure not listed there, on a listed test that passes, and on an entry without
# a reason (tests/llama-server/check.py).
#
# The sdist is downloaded once with `pip download --no-deps` (pip checks its hash against the
# index) into ${XDG_CACHE_HOME:-~/.cache}/chorus/llama-server-tests, outside the clone; its test
# files are extracted next to it. Their Python requirements go into a venv of their own
# (.cache/llama-server-tests/venv, scripts/python-env.sh).
#
# The server is the already built binary (CHORUS_BIN, default target/debug/chorus) on the tiny
# test model (written by CHORUS_TESTKIT, default target/debug/chorus-testkit), with the flags of
# the tests' `tinyllama2` preset (`--alias tinyllama-2 --ctx-size 512 --parallel 2
# --batch-size 32 --n-predict 64 --seed 42 --temp 0.8`, each slot a cache of its own as with
# llama-server's `--parallel 2`) and a --slot-save-path; the model also answers to the OpenAI
# names the tests send (`gpt-3.5-turbo-instruct`, `davinci-002`, `text-embedding-3-small`),
# as further --alias names, since chorus routes by `model` where llama-server ignores it, on a free loopback port, with its own
# store in a temporary dir; it is stopped on exit. The report is kept in
# .cache/llama-server-tests/report.tsv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

version=0.3.36
spec="$root/tests/llama-server"
cache="$root/.cache/llama-server-tests"
fixtures="${XDG_CACHE_HOME:-$HOME/.cache}/chorus/llama-server-tests"
bin="${CHORUS_BIN:-$root/target/debug/chorus}"
testkit="${CHORUS_TESTKIT:-$root/target/debug/chorus-testkit}"
for exe in "$bin" "$testkit"; do
    if [[ ! -x "$exe" ]]; then
        echo "llama-server-tests: $exe is not built (cargo build -p chorus-cli -p chorus-testkit)" >&2
        exit 1
    fi
done

# The test files, from the sdist.
tests="$fixtures/llama_cpp_python-$version/tests"
if [[ ! -f "$tests/utils.py" ]]; then
    mkdir -p "$fixtures"
    sdist="$fixtures/llama_cpp_python-$version.tar.gz"
    if [[ ! -f "$sdist" ]]; then
        echo "llama-server-tests: downloading the llama-cpp-python $version sdist" >&2
        python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$fixtures" \
            "llama-cpp-python==$version" >&2
    fi
    rm -rf "$tests.partial"
    mkdir -p "$tests.partial"
    tar -xzf "$sdist" -C "$tests.partial" --strip-components=6 \
        "llama_cpp_python-$version/vendor/llama.cpp/tools/server/tests"
    mv "$tests.partial" "$tests"
fi

venv="$(CHORUS_VENV="$cache/venv" CHORUS_REQUIREMENTS="$spec/requirements.txt" scripts/python-env.sh)"

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
mkdir -p "$tmp/slots"
env -u CHORUS_API_KEY -u CHORUS_CONFIG -u CHORUS_CONTROL_SOCKET -u CHORUS_DATABASE_URL -u CHORUS_MODEL \
    XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" XDG_RUNTIME_DIR="$tmp" \
    "$bin" serve --model "$tmp/tiny.gguf" --port 0 --threads 2 --no-control-socket \
    --database-url "sqlite://$tmp/chorus.db?mode=rwc" \
    --alias tinyllama-2,gpt-3.5-turbo-instruct,davinci-002,text-embedding-3-small --ctx-size 512 --parallel 2 --no-kv-unified --batch-size 32 \
    --n-predict 64 --seed 42 --temp 0.8 --slot-save-path "$tmp/slots" \
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
    echo "llama-server-tests: chorus serve did not start; its stderr:" >&2
    tail -n 40 "$tmp/stderr" >&2
    exit 1
fi
port="${url##*:}"
port="${port%/}"

mkdir -p "$cache"
report="$cache/report.tsv"
echo "llama-server-tests: llama.cpp's server tests against $url" >&2
(
    cd "$tests"
    DEBUG_EXTERNAL=1 PORT="$port" CHORUS_LLAMA_REPORT="$report" PYTHONPATH="$spec" \
        "$venv/bin/python" -m pytest -q -p no:cacheprovider -p report \
        unit/test_basic.py unit/test_chat_completion.py unit/test_completion.py unit/test_tokenize.py \
        unit/test_embedding.py unit/test_infill.py unit/test_slot_save.py \
        >"$cache/pytest.log" 2>&1 || true
)
status=0
"$venv/bin/python" "$spec/check.py" "$report" "$spec/expected-failures.txt" || status=$?
if [[ $status -ne 0 ]]; then
    echo "llama-server-tests: FAILED; pytest's output is in $cache/pytest.log" >&2
    echo "--- chorus serve stderr (tail) ---" >&2
    tail -n 20 "$tmp/stderr" >&2
fi
exit "$status"
