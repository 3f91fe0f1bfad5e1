#!/usr/bin/env bash
# The one command: chorus vs llama-server, side by side, on the real qwen-coder
# model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, scripts/models.sh), with 1 and 8
# concurrent streams; MODELS="F16 Q4_0" runs the ~400M-parameter testkit models.
#
#   bench/run.sh
#
# Builds chorus (release), writes the two bench models into the cache dir (with a
# release chorus-testkit, built only when a model is missing), builds llama-server
# from the llama-cpp-python sdist (bench/build-llama-server.sh), then for every model x streams starts one server
# at a time (llama-server, then chorus; never both), measures it with bench/bench.py
# and prints a Markdown table, also written to bench/results/latest.md.
#
# Environment (all optional):
#   CHORUS_BENCH_CACHE  cache dir for models, sdist, llama-server build, logs
#                       (default: $HOME/.cache/chorus-bench)
#   THREADS             threads for both servers, generation and batch (default: nproc)
#   STREAMS             stream counts to run (default: "1 8")
#   MODELS              models to run: qwen-coder (the real fixture), F16 and Q4_0 (the
#                       testkit bench model) (default: "qwen-coder")
#   PROMPT_TOKENS       prompt length per stream (default: 512)
#   GEN_TOKENS          tokens generated per stream (default: 128)
#   RUNS                repetitions per configuration, medians reported (default: 3)
#   CTX_SIZE            context size for both servers (default: 4096, raised to
#                       fit STREAMS x (PROMPT_TOKENS + GEN_TOKENS) with headroom)
#   LLAMA_SERVER_EXTRA  extra llama-server flags (e.g. "-kvu" for a unified KV cache)
#   CHORUS_EXTRA        extra chorus serve flags
#   SKIP_BUILD=1        use the existing target/release binaries
#
#   bench/run.sh sessions [SESSIONS.PY FLAGS...]
#
# The prompt-cache benchmark instead: builds chorus and llama-server the same way,
# then bench/sessions.py runs multi-turn conversations against each server in turn
# (qwen-coder, -c 16384, 4 slots, THREADS threads (default 2 here), both servers'
# default prompt caches), restarts it and runs one more round; the report goes to
# bench/results/latest-sessions.md, the JSON and server logs to the run's dir under
# $CHORUS_BENCH_CACHE/runs. Extra arguments go to sessions.py (e.g. --conversations 4).
set -euo pipefail

mode=throughput
if [[ "${1:-}" == sessions ]]; then
  mode=sessions
  shift
elif (($#)); then
  printf '[run] unknown mode %s (none: throughput; sessions)\n' "$1" >&2
  exit 2
fi
threads_env="${THREADS:-}"

start_epoch=$(date +%s)
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
CACHE="${CHORUS_BENCH_CACHE:-$HOME/.cache/chorus-bench}"
export CHORUS_BENCH_CACHE="$CACHE"
THREADS="${THREADS:-$(nproc)}"
STREAMS="${STREAMS:-1 8}"
MODELS="${MODELS:-qwen-coder}"
PROMPT_TOKENS="${PROMPT_TOKENS:-512}"
GEN_TOKENS="${GEN_TOKENS:-128}"
RUNS="${RUNS:-3}"
LLAMA_SERVER_EXTRA="${LLAMA_SERVER_EXTRA:-}"
CHORUS_EXTRA="${CHORUS_EXTRA:-}"

mkdir -p "$CACHE/models" "$CACHE/logs" "$here/results"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
work="$CACHE/runs/$stamp"
mkdir -p "$work"

say() { printf '[run] %s\n' "$*" >&2; }

# Python with httpx: the repo's venv when it has httpx, else bench.py makes its own.
PY=python3
if [[ -x "$repo/.venv/bin/python" ]] && "$repo/.venv/bin/python" -c 'import httpx' 2>/dev/null; then
  PY="$repo/.venv/bin/python"
fi

# --- 1. chorus --------------------------------------------------------------------
# Each package is built on its own, as `cargo build --release -p chorus-cli` does:
# building both in one command unifies their dependencies' features differently,
# which gives llama-cpp-sys-2 another hash and a second 13-minute llama.cpp build.
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
CHORUS="$target_dir/release/chorus"
TESTKIT="$target_dir/release/chorus-testkit"
build() {
  if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    say "cargo build --release -p $1"
    (cd "$repo" && cargo build --release -p "$1")
  fi
}
build chorus-cli
[[ -x "$CHORUS" ]] || { say "missing $CHORUS"; exit 1; }

if [[ "$mode" == sessions ]]; then
  LLAMA_SERVER="$(nice -n 10 "$here/build-llama-server.sh" | tail -n1)"
  [[ -x "$LLAMA_SERVER" ]] || { say "llama-server not built"; exit 1; }
  sdist_name="$(sed -n 's/^sdist=//p' "$CACHE/llama-server.version" 2>/dev/null || true)"
  llama_commit="$(git -C "$(dirname "$(readlink -f "$LLAMA_SERVER")")" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  load_now="$(cut -d' ' -f1 /proc/loadavg)"
  if awk -v l="$load_now" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    say "warning: load average $load_now on $(nproc) cores; other work skews the numbers"
  fi
  "$PY" "$here/sessions.py" --chorus "$CHORUS" --llama-server "$LLAMA_SERVER" \
    --model "$("$repo/scripts/models.sh" qwen-coder)" --threads "${threads_env:-2}" --work-dir "$work" \
    --report "$here/results/latest-sessions.md" --command "bench/run.sh sessions${*:+ $*} (THREADS=${threads_env:-2})" \
    --versions "llama-server: ${sdist_name:-unknown} (llama.cpp $llama_commit)" "$@"
  exit $?
fi

# --- 2. bench models (chorus-testkit only when one is missing) ----------------------
model_path() {
  case "$1" in
    qwen-coder) "$repo/scripts/models.sh" qwen-coder ;;
    *) echo "$CACHE/models/bench-$1.gguf" ;;
  esac
}
for m in $MODELS; do
  [[ "$m" == qwen-coder ]] && continue
  path="$(model_path "$m")"
  [[ -s "$path" ]] && continue
  if [[ -z "${testkit_built:-}" ]]; then
    build chorus-testkit
    [[ -x "$TESTKIT" ]] || { say "missing $TESTKIT"; exit 1; }
    testkit_built=1
  fi
  case "$m" in
    F16) flags=(--bench) ;;
    Q4_0) flags=(--bench --q4_0) ;;
    *) say "unknown model variant $m (F16 or Q4_0)"; exit 1 ;;
  esac
  say "writing $path"
  if ! "$TESTKIT" write "${flags[@]}" "$path.tmp" >"$CACHE/logs/testkit-$m.log" 2>&1; then
    tail -n 20 "$CACHE/logs/testkit-$m.log" >&2
    exit 1
  fi
  mv "$path.tmp" "$path"
done

# --- 3. llama-server --------------------------------------------------------------
LLAMA_SERVER="$(nice -n 10 "$here/build-llama-server.sh" | tail -n1)"
[[ -x "$LLAMA_SERVER" ]] || { say "llama-server not built"; exit 1; }
llama_help="$("$LLAMA_SERVER" --help 2>&1 || true)"
has_flag() { grep -qE -- "(^|[ ,])$1([ ,=]|$)" <<<"$llama_help"; }
llama_common=(--host 127.0.0.1)
# No web UI, no host-memory prompt cache (chorus has neither; distinct prompts make
# both pointless anyway), no unrequested fitting of the context to memory.
has_flag --no-webui && llama_common+=(--no-webui)
has_flag --cache-ram && llama_common+=(--cache-ram 0)
has_flag --fit && llama_common+=(--fit off)

# With -np N, llama-server gives each slot a cache of its own (its unified cache is the
# default only with -np auto); chorus, unified by default, gets the same layout.
chorus_kv=--no-kv-unified
if grep -qE -- '(^| )(-kvu|--kv-unified)( |$)' <<<" $LLAMA_SERVER_EXTRA "; then chorus_kv=--kv-unified; fi

# --- 4. measurements --------------------------------------------------------------
server_pid=""
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  server_pid=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ctx_for() {
  local n="$1" need
  if [[ -n "${CTX_SIZE:-}" ]]; then echo "$CTX_SIZE"; return; fi
  need=$(( n * (PROMPT_TOKENS + GEN_TOKENS + 64) ))
  need=$(( (need + 1023) / 1024 * 1024 ))
  (( need < 4096 )) && need=4096
  echo "$need"
}

failures=()
bench() { # server label n url cmdline (server_pid: the running server)
  local server="$1" label="$2" n="$3" url="$4" cmdline="$5"
  local out="$work/$label-$n-$server.json"
  if "$PY" "$here/bench.py" run --url "$url" --streams "$n" --prompt-tokens "$PROMPT_TOKENS" \
      --gen-tokens "$GEN_TOKENS" --runs "$RUNS" --server "$server" --model-label "$label" \
      --server-args "$cmdline" --pid "$server_pid" --json "$out"; then
    :
  else
    say "$label x$n $server failed; server log tail:"
    tail -n 5 "$CACHE/logs/$stamp-$label-$n-$server.log" >&2 || true
    failures+=("$label x$n $server (see $CACHE/logs/$stamp-$label-$n-$server.log)")
  fi
}

load_now="$(cut -d' ' -f1 /proc/loadavg)"
if awk -v l="$load_now" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
  say "warning: load average $load_now on $(nproc) cores; other work skews the numbers"
fi
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
measure_epoch=$(date +%s)
for m in $MODELS; do
  model="$(model_path "$m")"
  for n in $STREAMS; do
    ctx="$(ctx_for "$n")"

    port="$(free_port)"
    log="$CACHE/logs/$stamp-$m-$n-llama-server.log"
    # shellcheck disable=SC2206
    cmd=("$LLAMA_SERVER" -m "$model" -t "$THREADS" -tb "$THREADS" -c "$ctx" -np "$n" -b 2048 -ub 512
         --port "$port" "${llama_common[@]}" $LLAMA_SERVER_EXTRA)
    say "$m x$n: ${cmd[*]}"
    "${cmd[@]}" >"$log" 2>&1 &
    server_pid=$!
    bench llama-server "$m" "$n" "http://127.0.0.1:$port" "${cmd[*]}"
    stop_server

    log="$CACHE/logs/$stamp-$m-$n-chorus.log"
    # shellcheck disable=SC2206
    cmd=("$CHORUS" serve --model "$model" --threads "$THREADS" --ctx-size "$ctx" --parallel "$n"
         --batch-size 2048 --ubatch-size 512 "$chorus_kv" --host 127.0.0.1 --port 0 $CHORUS_EXTRA)
    say "$m x$n: ${cmd[*]}"
    "${cmd[@]}" >"$log.stdout" 2>"$log" &
    server_pid=$!
    url=""
    for _ in $(seq 1 1200); do
      url="$(sed -n 's/^chorus listening on \(http:[^ ]*\).*/\1/p' "$log.stdout" | head -n1)"
      [[ -n "$url" ]] && break
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.25
    done
    if [[ -z "$url" ]]; then
      say "chorus did not print its listening line; stderr tail:"
      tail -n 20 "$log" >&2 || true
      failures+=("$m x$n chorus: no 'chorus listening on' line (see $log)")
    else
      bench chorus "$m" "$n" "$url" "${cmd[*]}"
    fi
    stop_server
  done
done

# --- 5. table ---------------------------------------------------------------------
end_epoch=$(date +%s)
elapsed=$(( end_epoch - start_epoch ))
measured=$(( end_epoch - measure_epoch ))
shopt -s nullglob
reports=("$work"/*.json)
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
version_file="$CACHE/llama-server.version"
sdist_name="$(sed -n 's/^sdist=//p' "$version_file" 2>/dev/null || true)"
llama_commit="$(git -C "$(dirname "$(readlink -f "$LLAMA_SERVER")")" rev-parse --short HEAD 2>/dev/null || echo unknown)"
chorus_commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
{
  echo "# chorus vs llama-server"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); command: \`bench/run.sh\` (THREADS=$THREADS STREAMS=\"$STREAMS\" MODELS=\"$MODELS\" PROMPT_TOKENS=$PROMPT_TOKENS GEN_TOKENS=$GEN_TOKENS RUNS=$RUNS${CTX_SIZE:+ CTX_SIZE=$CTX_SIZE}${LLAMA_SERVER_EXTRA:+ LLAMA_SERVER_EXTRA=\"$LLAMA_SERVER_EXTRA\"})"
  echo "- machine: $cpu, $(nproc) cores; threads $THREADS for both servers"
  echo "- chorus: $chorus_commit$(git -C "$repo" diff --quiet HEAD 2>/dev/null || echo ' (dirty tree)'); llama-server: $sdist_name (llama.cpp $llama_commit)"
  echo "- per configuration: median of $RUNS runs after a warm-up; ctx: $(for n in $STREAMS; do printf '%s streams %s; ' "$n" "$(ctx_for "$n")"; done)batch 2048, ubatch 512"
  echo "- llama-server flags: ${llama_common[*]} $LLAMA_SERVER_EXTRA; build: $(cat "$LLAMA_SERVER.config" 2>/dev/null || echo unknown)"
  echo "- whole run: ${elapsed}s (measuring: ${measured}s); load average (1/5/15 min) before building: $load_before, before measuring: $load_start, after: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  if ((${#reports[@]})); then
    "$PY" "$here/bench.py" table "${reports[@]}"
  else
    echo "(no results)"
  fi
  if ((${#failures[@]})); then
    echo
    echo "Failed configurations:"
    for f in "${failures[@]}"; do echo "- $f"; done
  fi
} | tee "$here/results/latest.md"
say "raw results: $work; logs: $CACHE/logs/$stamp-*"
((${#failures[@]} == 0))
