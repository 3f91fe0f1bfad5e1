#!/usr/bin/env python3
"""Throughput benchmark for OpenAI-compatible completion servers (chorus, llama-server).

Subcommands:

  run    measure one server with N concurrent streamed /v1/completions requests and
         write one JSON result (medians over --runs repetitions)
  table  turn JSON results into a Markdown table, chorus beside llama-server

What `run` measures, per repetition (all times from the client, time.perf_counter):

  - every stream sends a distinct prompt (a different leading number, so neither
    server can reuse a cached prefix) of about --prompt-tokens tokens and asks for
    exactly --gen-tokens tokens (temperature 0, ignore_eos) with
    stream=true and stream_options.include_usage=true;
  - TTFT of a stream: request sent -> first chunk carrying text;
  - decode rate of a stream: (completion_tokens - 1) / (t_last_text - t_first_text);
  - prompt processing tok/s: sum(prompt_tokens) / (time until the last stream's
    first token), which for one stream is prompt_tokens / TTFT;
  - aggregate decode tok/s: sum(completion_tokens - 1) / (latest last token -
    earliest first token), i.e. all tokens after each stream's first over the wall
    time of the decode phase (which, with N streams, also holds the prompt
    processing of the streams that start later);
  - steady decode tok/s (N > 1): tokens received by all streams together while
    every stream is decoding (from the last stream's first token to the first
    stream's last token) / that window: the throughput of a decode step holding
    all N sequences. A chunk counts as (completion_tokens - 1) / (chunks - 1)
    tokens of its stream, since a server may merge tokens into one chunk (an
    unfinished UTF-8 character).

The prompt length is calibrated against the server: a few non-streamed requests
with max_tokens=1 read usage.prompt_tokens and size the filler text; the real
count is reported.

Runs on Python 3.11 with the standard library and httpx. When httpx is missing the
script creates a venv at ${CHORUS_BENCH_CACHE:-~/.cache/chorus-bench}/venv,
installs httpx there and re-executes itself with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("CHORUS_BENCH_CACHE", Path.home() / ".cache" / "chorus-bench"))


def _ensure_httpx() -> None:
    """Import httpx, or build ${CACHE}/venv with it and re-exec this script there."""
    try:
        import httpx  # noqa: F401
    except ImportError:
        venv = CACHE / "venv"
        python = venv / "bin" / "python"
        if Path(sys.prefix).resolve() == venv.resolve():
            sys.exit(f"bench.py: httpx is missing from {venv}; remove it and retry")
        if not python.exists():
            print(f"bench.py: creating {venv} with httpx", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "httpx"],
            check=True,
            stdout=sys.stderr,
        )
        os.execv(str(python), [str(python), *sys.argv])


_ensure_httpx()
import httpx  # noqa: E402

# Plain English filler. The test models' tokenizer is a byte-level BPE trained on
# English prose, so words cost one to a few tokens each; calibration fixes the count.
WORDS = (
    "the quick brown fox jumps over a lazy dog while seven small birds sing about "
    "rain on old stone walls and people walk home through quiet streets after work "
    "to cook dinner read books answer letters plan journeys fix broken chairs and "
    "tell long stories about rivers mountains islands cities markets ships and the "
    "weather of distant places where nobody has ever been before"
).split()


class BenchError(Exception):
    """A server answered something the benchmark cannot use."""


def filler(n_words: int) -> str:
    """`n_words` words of filler text (deterministic, stride 7 through WORDS)."""
    return " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(n_words))


def make_prompt(number: int, n_words: int) -> str:
    """A prompt led by `number` (distinct per request) followed by filler."""
    return f"{number} {filler(n_words)}"


@dataclass
class StreamResult:
    """One streamed request, times in seconds since the batch was sent."""

    prompt_tokens: int
    completion_tokens: int
    text_chunks: int
    ttft: float
    t_first: float
    t_last: float
    chunk_times: list[float]

    @property
    def decode_tps(self) -> float:
        """(completion_tokens - 1) / (t_last - t_first); 0 when undefined."""
        span = self.t_last - self.t_first
        return (self.completion_tokens - 1) / span if span > 0 else 0.0


@dataclass
class RunResult:
    """One repetition: N concurrent streams."""

    streams: list[StreamResult]
    pp_tps: float
    decode_tps_per_stream: float  # median over streams
    decode_tps_aggregate: float
    decode_tps_steady: float  # 0 when no window has every stream decoding
    ttft_s: float  # median over streams
    wall_s: float


@dataclass
class Report:
    """What `run` writes: configuration, medians over repetitions, raw repetitions."""

    server: str
    model_label: str
    base_url: str
    model_id: str
    streams: int
    prompt_tokens: int  # per stream, as the server counted it (median)
    gen_tokens: int  # per stream, as the server counted it (median)
    runs: int
    pp_tps: float
    decode_tps_per_stream: float
    decode_tps_aggregate: float
    decode_tps_steady: float
    ttft_s: float
    wall_s: float
    server_args: str = ""
    repetitions: list[dict[str, Any]] = field(default_factory=list)


def completion_body(model: str, prompt: str, max_tokens: int, stream: bool) -> dict[str, Any]:
    """A /v1/completions request that generates exactly `max_tokens` tokens."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def alive(pid: int | None) -> bool:
    """Whether process `pid` still exists (always true without a pid)."""
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def wait_ready(client: httpx.AsyncClient, base: str, timeout: float, pid: int | None) -> None:
    """Poll GET /health until it answers 200 (llama-server answers 503 while loading).

    Gives up early when the server process `pid` has exited."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive(pid):
            raise BenchError(f"server process {pid} exited before GET {base}/health answered 200 ({last})")
        try:
            r = await client.get(f"{base}/health", timeout=5)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as e:
            last = repr(e)
        await asyncio.sleep(0.5)
    raise BenchError(f"GET {base}/health not ready after {timeout:.0f}s: {last}")


async def model_id(client: httpx.AsyncClient, base: str) -> str:
    """The first id that GET /v1/models lists."""
    r = await client.get(f"{base}/v1/models", timeout=30)
    if r.status_code != 200:
        raise BenchError(f"GET /v1/models -> {r.status_code}: {r.text[:500]}")
    data = r.json().get("data") or []
    if not data:
        raise BenchError(f"GET /v1/models lists no model: {r.text[:500]}")
    return str(data[0]["id"])


async def count_prompt_tokens(client: httpx.AsyncClient, base: str, model: str, prompt: str) -> int:
    """usage.prompt_tokens of a non-streamed one-token completion of `prompt`."""
    body = completion_body(model, prompt, 1, stream=False)
    r = await client.post(f"{base}/v1/completions", json=body, timeout=600)
    if r.status_code != 200:
        raise BenchError(f"POST /v1/completions (calibration) -> {r.status_code}: {r.text[:500]}")
    usage = r.json().get("usage") or {}
    if "prompt_tokens" not in usage:
        raise BenchError(f"POST /v1/completions answered without usage.prompt_tokens: {r.text[:500]}")
    return int(usage["prompt_tokens"])


class Numbers:
    """Hands out distinct leading numbers, so no two prompts share a cached prefix."""

    def __init__(self) -> None:
        # Start from the clock so two invocations against one server differ too.
        self.next = 100000 + int(time.time() * 1000) % 800000

    def take(self) -> int:
        n = self.next
        self.next += 1
        return n


async def calibrate(
    client: httpx.AsyncClient, base: str, model: str, target: int, numbers: Numbers
) -> int:
    """Number of filler words whose prompt the server counts as closest to `target` tokens."""
    words = max(1, target // 2)
    best = (abs(10**9), words)
    for _ in range(5):
        n = await count_prompt_tokens(client, base, model, make_prompt(numbers.take(), words))
        best = min(best, (abs(n - target), words))
        if n == target:
            break
        per_word = n / words
        words = max(1, round(words + (target - n) / max(per_word, 0.1)))
    return best[1]


async def sse_objects(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """POST `body` to `url` with stream=true and yield each `data:` JSON object until
    `data: [DONE]`; a non-200 answer, a chunk that is not JSON and an error event raise
    BenchError."""
    async with client.stream("POST", url, json=body, timeout=None) as r:
        if r.status_code != 200:
            text = (await r.aread()).decode(errors="replace")
            raise BenchError(f"POST {url} -> {r.status_code}: {text[:500]}")
        async for line in r.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                obj = json.loads(data)
            except json.JSONDecodeError as e:
                raise BenchError(f"stream chunk is not JSON ({e}): {data[:300]}") from e
            if "error" in obj:
                raise BenchError(f"stream carried an error: {data[:500]}")
            yield obj


async def one_stream(
    client: httpx.AsyncClient, base: str, body: dict[str, Any], t0: float
) -> StreamResult:
    """Send one streamed completion and time its text chunks relative to `t0`."""
    t_first = t_last = None
    chunks = 0
    chunk_times: list[float] = []
    usage: dict[str, Any] | None = None
    async for obj in sse_objects(client, f"{base}/v1/completions", body):
        now = time.perf_counter() - t0
        text = "".join((c.get("text") or "") for c in obj.get("choices") or [])
        if text:
            chunks += 1
            chunk_times.append(now)
            if t_first is None:
                t_first = now
            t_last = now
        if obj.get("usage"):
            usage = obj["usage"]
    if usage is None:
        raise BenchError("stream ended without a usage object (stream_options.include_usage)")
    if t_first is None or t_last is None:
        raise BenchError(f"stream carried no text; usage={usage}")
    return StreamResult(
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        text_chunks=chunks,
        ttft=t_first,
        t_first=t_first,
        t_last=t_last,
        chunk_times=chunk_times,
    )


def steady_decode(streams: list[StreamResult]) -> float:
    """Tokens/s of all streams together while every one of them is decoding."""
    start = max(s.t_first for s in streams)
    end = min(s.t_last for s in streams)
    if len(streams) < 2 or end <= start:
        return 0.0
    tokens = 0.0
    for s in streams:
        per_chunk = (s.completion_tokens - 1) / max(1, s.text_chunks - 1)
        tokens += per_chunk * sum(1 for t in s.chunk_times if start < t <= end)
    return tokens / (end - start)


async def one_run(
    client: httpx.AsyncClient, base: str, model: str, n: int, words: int, gen: int, numbers: Numbers
) -> RunResult:
    """N concurrent streams with distinct prompts; the metrics of one repetition."""
    bodies = [completion_body(model, make_prompt(numbers.take(), words), gen, stream=True) for _ in range(n)]
    t0 = time.perf_counter()
    streams = await asyncio.gather(*(one_stream(client, base, b, t0) for b in bodies))
    wall = time.perf_counter() - t0
    for s in streams:
        if s.completion_tokens != gen:
            raise BenchError(
                f"a stream generated {s.completion_tokens} tokens, not {gen}: the server stopped "
                "early (ignore_eos ignored, or the context is too small for all streams)"
            )
    pp_time = max(s.ttft for s in streams)
    decode_span = max(s.t_last for s in streams) - min(s.t_first for s in streams)
    after_first = sum(s.completion_tokens - 1 for s in streams)
    return RunResult(
        streams=list(streams),
        pp_tps=sum(s.prompt_tokens for s in streams) / pp_time,
        decode_tps_per_stream=statistics.median(s.decode_tps for s in streams),
        decode_tps_aggregate=after_first / decode_span if decode_span > 0 else 0.0,
        decode_tps_steady=steady_decode(streams),
        ttft_s=statistics.median(s.ttft for s in streams),
        wall_s=wall,
    )


async def run(args: argparse.Namespace) -> Report:
    base = args.url.rstrip("/")
    limits = httpx.Limits(max_connections=args.streams + 4, max_keepalive_connections=args.streams + 4)
    async with httpx.AsyncClient(limits=limits) as client:
        await wait_ready(client, base, args.ready_timeout, args.pid)
        model = args.model or await model_id(client, base)
        numbers = Numbers()
        words = await calibrate(client, base, model, args.prompt_tokens, numbers)
        # The calibration requests already ran full-length prompts through the model
        # (weights paged in). Warm-up: N concurrent short streams, which also opens the
        # N connections the measured runs reuse.
        log(f"{args.server}: prompt of {words} filler words; warm-up with {args.streams} streams")
        await one_run(client, base, model, args.streams, min(words, 32), 8, numbers)
        reps: list[RunResult] = []
        for i in range(args.runs):
            r = await one_run(client, base, model, args.streams, words, args.gen_tokens, numbers)
            log(
                f"{args.server} {args.model_label} x{args.streams} run {i + 1}/{args.runs}: "
                f"pp {r.pp_tps:.1f} tok/s, decode {r.decode_tps_per_stream:.2f} tok/s/stream, "
                f"{r.decode_tps_aggregate:.2f} tok/s aggregate, {r.decode_tps_steady:.2f} tok/s steady, "
                f"ttft {r.ttft_s:.2f}s, wall {r.wall_s:.1f}s"
            )
            reps.append(r)
    med = statistics.median
    return Report(
        server=args.server,
        model_label=args.model_label,
        base_url=base,
        model_id=model,
        streams=args.streams,
        prompt_tokens=round(med(s.prompt_tokens for r in reps for s in r.streams)),
        gen_tokens=round(med(s.completion_tokens for r in reps for s in r.streams)),
        runs=args.runs,
        pp_tps=med(r.pp_tps for r in reps),
        decode_tps_per_stream=med(r.decode_tps_per_stream for r in reps),
        decode_tps_aggregate=med(r.decode_tps_aggregate for r in reps),
        decode_tps_steady=med(r.decode_tps_steady for r in reps),
        ttft_s=med(r.ttft_s for r in reps),
        wall_s=med(r.wall_s for r in reps),
        server_args=args.server_args,
        repetitions=[
            {k: v for k, v in asdict(r).items()} for r in reps
        ],
    )


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def fmt(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}"


def table(reports: list[dict[str, Any]]) -> str:
    """Markdown: one row per (model, streams, server), chorus/llama-server ratios after chorus."""
    order = {"llama-server": 0, "chorus": 1}
    reports = sorted(reports, key=lambda r: (r["model_label"], r["streams"], order.get(r["server"], 2)))
    lines = [
        "| model | streams | server | prompt tok | gen tok | PP tok/s | TTFT s | decode tok/s/stream "
        "| decode tok/s aggregate | decode tok/s steady | wall s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    by_key: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for r in reports:
        by_key.setdefault((r["model_label"], r["streams"]), {})[r["server"]] = r
        lines.append(
            f"| {r['model_label']} | {r['streams']} | {r['server']} | {r['prompt_tokens']} | {r['gen_tokens']} "
            f"| {fmt(r['pp_tps'])} | {fmt(r['ttft_s'], 2)} | {fmt(r['decode_tps_per_stream'], 2)} "
            f"| {fmt(r['decode_tps_aggregate'], 2)} | {fmt(r.get('decode_tps_steady', 0.0), 2)} "
            f"| {fmt(r['wall_s'], 1)} |"
        )
    for (label, n), pair in sorted(by_key.items()):
        c, l = pair.get("chorus"), pair.get("llama-server")
        if not c or not l:
            continue

        def ratio(key: str) -> float:
            return c.get(key, 0.0) / l[key] if l.get(key) else float("nan")

        if n == 1:
            target, value = 0.95, ratio("decode_tps_per_stream")
            what = "decode/stream"
        else:
            target, value = 1.0, ratio("decode_tps_steady")
            what = "steady decode"
        verdict = "met" if value >= target else "NOT met"
        steady = f"{ratio('decode_tps_steady'):.2f}" if n > 1 else "–"
        ratios.append(
            f"| {label} | {n} | {ratio('pp_tps'):.2f} | {ratio('decode_tps_per_stream'):.2f} "
            f"| {ratio('decode_tps_aggregate'):.2f} | {steady} | {ratio('wall_s'):.2f} "
            f"| {what} ≥ {target:.2f}: {verdict} |"
        )
    if ratios:
        lines += [
            "",
            "chorus / llama-server:",
            "",
            "| model | streams | PP | decode/stream | decode aggregate | steady decode | wall (lower is better) | target |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
            *ratios,
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="benchmark one running server")
    r.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    r.add_argument("--model", default=None, help="model id (default: first of GET /v1/models)")
    r.add_argument("--streams", type=int, default=1, help="concurrent streams N")
    r.add_argument("--prompt-tokens", type=int, default=512, help="target prompt length per stream")
    r.add_argument("--gen-tokens", type=int, default=128, help="tokens generated per stream")
    r.add_argument("--runs", type=int, default=3, help="repetitions; medians are reported")
    r.add_argument("--server", default="server", help="label: chorus or llama-server")
    r.add_argument("--model-label", default="model", help="label for the table, e.g. Q4_0")
    r.add_argument("--server-args", default="", help="the server's command line, recorded in the JSON")
    r.add_argument("--ready-timeout", type=float, default=600, help="seconds to wait for /health")
    r.add_argument("--pid", type=int, default=None, help="server process id: stop waiting if it exits")
    r.add_argument("--json", type=Path, default=None, help="write the report here (default: stdout)")
    t = sub.add_parser("table", help="Markdown table from JSON reports")
    t.add_argument("reports", type=Path, nargs="+")
    args = p.parse_args()

    if args.cmd == "table":
        print(table([json.loads(f.read_text()) for f in args.reports]), end="")
        return 0
    try:
        report = asyncio.run(run(args))
    except (BenchError, httpx.HTTPError) as e:
        print(f"bench.py: {args.server} at {args.url}: {e}", file=sys.stderr)
        return 1
    out = json.dumps(asdict(report), indent=2)
    if args.json:
        args.json.write_text(out + "\n")
    else:
        print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
