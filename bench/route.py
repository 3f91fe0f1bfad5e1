#!/usr/bin/env python3
"""The content router's benchmark: how often `POST /api/v1/route` picks the right category, how long it takes.

    bench/route.py [--chorus target/release/chorus] [--config FILE] [--out FILE] [--check]
    bench/route.py --url http://127.0.0.1:8080 [--api-key KEY]     # a server already running

Without --url it starts one `chorus serve` on a free loopback port with the qwen-coder,
gemma and minilm fixtures (--qwen/--gemma/--minilm, or CHORUS_QWEN_CODER, CHORUS_GEMMA,
CHORUS_MINILM; defaults under ~/.cache/chorus/fixtures, or CHORUS_FIXTURES_DIR), a fresh
--data-dir in a temp dir, no control socket and, when given, --config FILE; without
--config it runs with XDG_CONFIG_HOME in that temp dir and no CHORUS_CONFIG, so no
chorus.toml of the caller's changes the router from the shipped default. It waits for
GET /health to answer 200, and stops the server at the end (SIGTERM, then waits).

The workload: 5 warm-up requests that are not measured, then one POST /api/v1/route
{"prompt": P} per line of bench/route_prompts.jsonl (--prompts; {"prompt", "category"}
lines, the category a careful human would choose), one at a time. The answer is JSON:
{"category", "stage" (rules|keywords|semantic|default|...), "score", "margin" (null for
stages without them), "model", "scores", "elapsed_ms" (the routing time measured inside
the server)}. Measured: elapsed_ms, and the round trip on the client (time.perf_counter
around the whole request: connection, HTTP, JSON).

Reported (Markdown on stdout, and in --out FILE): accuracy overall and per category with
counts, the confusion matrix (rows: true category, columns: predicted), requests and
accuracy per stage and per model, p50/p90/p99 of elapsed_ms and of the round trip, the
command lines, the machine (nproc, CPU model), the date, and every misrouted prompt
(true, predicted, stage, score, prompt).

Exit status: 0, even when the router is often wrong; 2 when the server fails (does not
start, exits, answers an error or something that is not a routing answer). With --check,
1 when overall accuracy < 0.90, any category's accuracy < 0.85, or the server-side
elapsed_ms p50 >= 15 ms.

Standard library only (urllib), Python 3.9+.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = pathlib.Path(os.environ.get("CHORUS_FIXTURES_DIR", pathlib.Path.home() / ".cache/chorus/fixtures"))
QWEN = os.environ.get("CHORUS_QWEN_CODER", str(FIXTURES / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"))
GEMMA = os.environ.get("CHORUS_GEMMA", str(FIXTURES / "gemma-3-270m-q4_k_m.gguf"))
MINILM = os.environ.get("CHORUS_MINILM", str(FIXTURES / "all-minilm-l6-v2"))
PROMPTS = ROOT / "bench/route_prompts.jsonl"

CATEGORIES = ["general", "code", "math", "translation", "image"]
WARMUP = [
    "hello there",
    "write a python function that adds two numbers",
    "what is 12 times 12",
    "translate 'good evening' into french",
    "draw a small red boat on a lake",
]
# --check thresholds
MIN_OVERALL = 0.90
MIN_CATEGORY = 0.85
MAX_P50_MS = 15.0


class ServerFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url: str, proc: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerFailed(f"server exited with {proc.returncode} before /health answered")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise ServerFailed(f"GET {url}/health did not answer 200 within {timeout:.0f} s")


def route(url: str, prompt: str, api_key: str | None) -> tuple[dict, float]:
    """POST /api/v1/route; the answer and the round trip in ms."""
    headers = {"content-type": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    req = urllib.request.Request(url + "/api/v1/route", json.dumps({"prompt": prompt}).encode(), headers)
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        detail = e.read()[:500].decode("utf-8", "replace")
        raise ServerFailed(f"POST /api/v1/route answered {e.code}: {detail}") from None
    except OSError as e:
        raise ServerFailed(f"POST /api/v1/route failed: {e}") from None
    rtt = (time.perf_counter() - start) * 1000
    try:
        answer = json.loads(body)
    except ValueError:
        raise ServerFailed(f"POST /api/v1/route answered no JSON: {body[:300]!r}") from None
    if not isinstance(answer, dict) or not isinstance(answer.get("category"), str):
        raise ServerFailed(f"POST /api/v1/route answered no category: {body[:300]!r}")
    return answer, rtt


def load_prompts(path: pathlib.Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                o = json.loads(line)
            except ValueError as e:
                raise SystemExit(f"{path}:{n}: not JSON: {e}")
            if not isinstance(o.get("prompt"), str) or not isinstance(o.get("category"), str):
                raise SystemExit(f"{path}:{n}: needs string fields prompt and category")
            rows.append(o)
    if not rows:
        raise SystemExit(f"{path}: no prompts")
    return rows


def percentile(xs: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ms(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f} ms"


def num(x) -> str:
    return f"{x:.3f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "—"


def cell(text: str, limit: int = 200) -> str:
    text = " ".join(text.replace("\n", " ⏎ ").split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("|", "\\|")


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def nproc() -> str:
    try:
        return subprocess.run(["nproc"], capture_output=True, text=True, timeout=5).stdout.strip() or str(os.cpu_count())
    except (OSError, subprocess.SubprocessError):
        return str(os.cpu_count())


def report(rows: list[dict], results: list[dict], meta: dict) -> tuple[str, list[str]]:
    """The Markdown report, and the --check failures."""
    tot, ok = collections.Counter(), collections.Counter()
    confusion: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    stages: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    models: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    predicted_cats: set[str] = set()
    server_ms = [r["elapsed_ms"] for r in results if isinstance(r["elapsed_ms"], (int, float))]
    rtt_ms = [r["rtt_ms"] for r in results]
    for row, r in zip(rows, results):
        t, p = row["category"], r["category"]
        good = int(t == p)
        tot[t] += 1
        ok[t] += good
        confusion[t][p] += 1
        predicted_cats.add(p)
        stages[r["stage"]][0] += 1
        stages[r["stage"]][1] += good
        models[r["model"]][0] += 1
        models[r["model"]][1] += good
    true_cats = [c for c in CATEGORIES if c in tot] + sorted(set(tot) - set(CATEGORIES))
    cols = [c for c in CATEGORIES if c in tot or c in predicted_cats] + sorted((predicted_cats | set(tot)) - set(CATEGORIES))
    overall = sum(ok.values()) / len(rows)
    acc = {c: ok[c] / tot[c] for c in true_cats}
    p50 = percentile(server_ms, 0.50)

    out = [
        f"# Content router: accuracy and latency ({meta['date']})",
        "",
        f"{len(rows)} prompts from `{meta['prompts']}`, one `POST /api/v1/route` at a time after {len(WARMUP)} warm-up requests.",
        "",
        f"- command: `{meta['command']}`",
        f"- server: `{meta['server']}`",
        f"- machine: {meta['nproc']} CPUs (nproc), {meta['cpu']}; {meta['system']}",
        "",
        "## Accuracy",
        "",
        "| category | correct | prompts | accuracy |",
        "|---|---:|---:|---:|",
    ]
    for c in true_cats:
        out.append(f"| {c} | {ok[c]} | {tot[c]} | {acc[c]:.3f} |")
    out.append(f"| **overall** | **{sum(ok.values())}** | **{len(rows)}** | **{overall:.3f}** |")
    out += ["", "## Confusion matrix (rows: true, columns: predicted)", "",
            "| true \\ predicted | " + " | ".join(cols) + " | total |",
            "|---|" + "---:|" * (len(cols) + 1)]
    for t in true_cats:
        out.append(f"| {t} | " + " | ".join(str(confusion[t][c]) for c in cols) + f" | {tot[t]} |")
    out += ["", "## Stages and models", "", "| stage | requests | correct | accuracy |", "|---|---:|---:|---:|"]
    for s, (n, good) in sorted(stages.items(), key=lambda kv: -kv[1][0]):
        out.append(f"| {s} | {n} | {good} | {good / n:.3f} |")
    out += ["", "| model | requests | correct |", "|---|---:|---:|"]
    for m, (n, good) in sorted(models.items(), key=lambda kv: -kv[1][0]):
        out.append(f"| {m} | {n} | {good} |")
    out += ["", "## Latency", "", "| | p50 | p90 | p99 | max |", "|---|---:|---:|---:|---:|",
            f"| server (`elapsed_ms`, {len(server_ms)} answers) | {ms(p50)} | {ms(percentile(server_ms, 0.90))} | "
            f"{ms(percentile(server_ms, 0.99))} | {ms(max(server_ms) if server_ms else None)} |",
            f"| round trip (client) | {ms(percentile(rtt_ms, 0.50))} | {ms(percentile(rtt_ms, 0.90))} | "
            f"{ms(percentile(rtt_ms, 0.99))} | {ms(max(rtt_ms))} |"]
    if len(server_ms) < len(results):
        out += ["", f"{len(results) - len(server_ms)} answers had no numeric `elapsed_ms`."]
    wrong = [(row, r) for row, r in zip(rows, results) if row["category"] != r["category"]]
    out += ["", f"## Misrouted ({len(wrong)})", ""]
    if wrong:
        out += ["| true | predicted | stage | score | margin | prompt |", "|---|---|---|---:|---:|---|"]
        for row, r in wrong:
            out.append(f"| {row['category']} | {r['category']} | {r['stage']} | {num(r['score'])} | {num(r['margin'])} | {cell(row['prompt'])} |")
    else:
        out.append("None.")

    failures = []
    if overall < MIN_OVERALL:
        failures.append(f"overall accuracy {overall:.3f} < {MIN_OVERALL}")
    for c in true_cats:
        if acc[c] < MIN_CATEGORY:
            failures.append(f"{c} accuracy {acc[c]:.3f} < {MIN_CATEGORY}")
    if p50 is None:
        failures.append("no server-side elapsed_ms to check")
    elif p50 >= MAX_P50_MS:
        failures.append(f"server-side p50 {p50:.2f} ms >= {MAX_P50_MS} ms")
    out += ["", f"--check (overall >= {MIN_OVERALL}, every category >= {MIN_CATEGORY}, server p50 < {MAX_P50_MS:g} ms): "
            + ("pass" if not failures else "FAIL: " + "; ".join(failures))]
    return "\n".join(out) + "\n", failures


def start_server(a) -> tuple[subprocess.Popen, str, str, pathlib.Path]:
    """`chorus serve` on a free loopback port: the process, its URL, its command line, its log."""
    for flag, path in (("--qwen", a.qwen), ("--gemma", a.gemma), ("--minilm", a.minilm)):
        if not pathlib.Path(path).exists():
            raise SystemExit(f"{flag} {path}: not found (scripts/models.sh fetches the fixtures)")
    if not os.access(a.chorus, os.X_OK):
        raise SystemExit(f"--chorus {a.chorus}: not an executable (cargo build --release -p chorus-cli)")
    if a.config and not pathlib.Path(a.config).is_file():
        raise SystemExit(f"--config {a.config}: not a file")
    port = free_port()
    data = pathlib.Path(tempfile.mkdtemp(prefix="chorus-bench-route-"))
    args = [a.chorus, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-control-socket",
            "--data-dir", str(data), "--model", a.qwen, "--model", a.gemma, "--model", a.minilm]
    if a.config:
        args += ["--config", a.config]
    if a.threads:
        args += ["--threads", str(a.threads)]
    log_path = data / "serve.log"
    log = open(log_path, "w")
    env = dict(os.environ)
    if not a.config:
        # the shipped router default, not a chorus.toml that the caller's environment or config dir holds
        env.pop("CHORUS_CONFIG", None)
        (data / "config").mkdir()
        env["XDG_CONFIG_HOME"] = str(data / "config")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    log.close()
    return proc, f"http://127.0.0.1:{port}", shlex.join(args), log_path


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        print("server did not exit 30 s after SIGTERM; killing it", file=sys.stderr)
        proc.kill()
        proc.wait(10)


def log_tail(path: pathlib.Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Thresholds for --check: overall >= 0.90, each category >= 0.85, server-side p50 < 15 ms.")
    p.add_argument("--chorus", default=str(ROOT / "target/release/chorus"), help="the chorus binary (default: %(default)s)")
    p.add_argument("--url", help="route against this running server instead of starting one (e.g. http://127.0.0.1:8080)")
    p.add_argument("--api-key", default=os.environ.get("CHORUS_API_KEY"), help="bearer token for --url (default: $CHORUS_API_KEY)")
    p.add_argument("--qwen", default=QWEN, help="qwen-coder GGUF (default: $CHORUS_QWEN_CODER or %(default)s)")
    p.add_argument("--gemma", default=GEMMA, help="gemma GGUF (default: $CHORUS_GEMMA or %(default)s)")
    p.add_argument("--minilm", default=MINILM, help="all-MiniLM-L6-v2 directory (default: $CHORUS_MINILM or %(default)s)")
    p.add_argument("--config", help="a chorus config file for the server it starts (--config); default: none, the shipped router")
    p.add_argument("--threads", type=int, help="--threads for the server it starts (default: the server's own)")
    p.add_argument("--prompts", default=str(PROMPTS), help="labelled prompts, JSON lines (default: %(default)s)")
    p.add_argument("--limit", type=int, help="route only the first N prompts")
    p.add_argument("--out", help="also write the Markdown report to this file")
    p.add_argument("--check", action="store_true", help="exit 1 when the accuracy or latency targets are missed")
    p.add_argument("--startup-timeout", type=float, help="seconds to wait for /health (default: 300, with --url 30)")
    a = p.parse_args()

    rows = load_prompts(pathlib.Path(a.prompts))
    if a.limit:
        rows = rows[: a.limit]
    proc, log_path = None, None
    if a.url:
        url, server = a.url.rstrip("/"), f"running server at {a.url}"
    else:
        proc, url, server, log_path = start_server(a)
    results = []
    try:
        wait_health(url, proc, a.startup_timeout or (30 if a.url else 300))
        for w in WARMUP:
            route(url, w, a.api_key)
        for n, row in enumerate(rows, 1):
            ans, rtt = route(url, row["prompt"], a.api_key)
            results.append({
                "category": ans["category"],
                "stage": str(ans.get("stage")),
                "score": ans.get("score"),
                "margin": ans.get("margin"),
                "model": ans.get("model") or "—",
                "elapsed_ms": ans.get("elapsed_ms"),
                "rtt_ms": rtt,
            })
            if n % 100 == 0:
                print(f"… {n}/{len(rows)}", file=sys.stderr)
    except ServerFailed as e:
        print(f"server failed: {e}", file=sys.stderr)
        tail = log_tail(log_path)
        if tail:
            print(f"--- last lines of {log_path}:\n{tail}", file=sys.stderr)
        return 2
    finally:
        if proc is not None:
            stop_server(proc)
    if log_path is not None:
        shutil.rmtree(log_path.parent, ignore_errors=True)  # the temp data dir; kept when the server failed

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "prompts": os.path.relpath(a.prompts, ROOT) if pathlib.Path(a.prompts).resolve().is_relative_to(ROOT) else a.prompts,
        "command": shlex.join([sys.executable.rsplit("/", 1)[-1]] + sys.argv),
        "server": server,
        "nproc": nproc(),
        "cpu": cpu_model(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
    }
    text, failures = report(rows, results, meta)
    print(text)
    if a.out:
        pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(a.out).write_text(text)
    if a.check and failures:
        print("check failed: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
