#!/usr/bin/env python3
"""Conversations resuming from a prompt cache: chorus vs llama-server, one after the other.

A benchmark, not a test. It starts each server itself (never both at once), runs the
same multi-turn chat workload against it, restarts it, runs one more round, and
prints a Markdown report with both servers side by side.

The workload (all of it deterministic, the same for both servers):

  - --conversations conversations (default 12) share one system prompt (~100
    tokens); each opens with its own ~--first-tokens (default 900) token user
    message: a numbered note ("Note 7 of 12: ...") whose text is drawn from a
    vocabulary with a per-conversation seed, so the conversations differ from their
    first words on; every later user turn is short ("Tell me one more detail about
    note 7.");
  - turns go round robin: round 1 is the first turn of conversations 0..N-1,
    round 2 the second turn of each, and so on for --rounds rounds (default 3);
  - every turn is one POST /v1/chat/completions carrying the whole history
    (system, every earlier user message, and as assistant messages the text the
    server itself answered), with stream=true, stream_options.include_usage=true,
    temperature 0, max_tokens --max-tokens (default 48) and
    prompt_cache_key "conv-<i>" (OpenAI's field; servers that do not know it
    ignore it);
  - requests are sequential, one at a time: one user at a time, so what is measured
    is cache reuse, not concurrency;
  - after the last round the server is stopped (SIGTERM, waiting for it to exit)
    and started again with the same flags (for chorus the same --data-dir, where it
    keeps its KV snapshots), and one more round ("after restart") sends one more
    turn per conversation.

What is measured (client side, time.perf_counter):

  - TTFT of a turn: request sent -> first SSE chunk carrying content text (a turn
    that never carries text counts its whole duration, and is flagged);
  - per round: wall time from its first request sent to its last response done;
  - usage.prompt_tokens and usage.prompt_tokens_details.cached_tokens of each
    turn (for llama-server, when its usage lacks cached_tokens, timings.cache_n);
  - restart: seconds for the server to exit after SIGTERM, and from the new
    process's start to GET /health answering 200;
  - total wall: round 1's first request -> the after-restart round's last
    response, the restart included;
  - chorus only: GET /metrics after the pre-restart rounds and after the
    after-restart round; lines starting with chorus_prompt_cache are reported,
    and chorus_prompt_cache_ram_bytes / chorus_prompt_cache_ram_tokens as the RAM
    cost per cached token when both are there.

Reported per server: TTFT p50/p90 of round 1 (cold), of the resumed turns (rounds
2..--rounds) and of the after-restart round, the after-restart round's wall time,
the total wall time, and cached / prompt tokens of the resumed turns; then
chorus / llama-server ratios against the issue's targets (resumed TTFT p50 <= 0.9,
after-restart round wall <= 0.2).

Before round 1 each server gets one short warm-up request with an unrelated
system prompt (pages the weights in, opens the connection); it is not measured.

Runs on Python 3.11 with the standard library and httpx, exactly as bench/bench.py
(whose helpers it imports): when httpx is missing it creates a venv at
${CHORUS_BENCH_CACHE:-~/.cache/chorus-bench}/venv and re-executes itself there.

  bench/sessions.py --chorus target/release/chorus \\
      --llama-server ~/.cache/chorus-bench/bin/llama-server \\
      --model "$(scripts/models.sh qwen-coder)" --work-dir /tmp/sessions-run

bench/run.sh sessions does that (building chorus and llama-server first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (re-executes this script in a venv with httpx when needed)
from bench import BenchError, model_id, sse_objects, wait_ready  # noqa: E402

import httpx  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

SYSTEM_PROMPT = (
    "You are a careful assistant for a small engineering team. The user keeps a "
    "set of numbered project notes and will paste one note at a time, then ask "
    "follow-up questions about it. Answer in plain English, briefly and concretely. "
    "Quote the note when that helps, never invent facts that the note does not "
    "contain, and say so when the note does not answer a question. Keep every answer "
    "to a few short sentences, without headings or lists, and do not repeat the "
    "question back to the user."
)

WARMUP_SYSTEM = "You answer with one word."

# Vocabulary for the notes: common English words, mostly one token each (with
# their leading space) in the Qwen2.5 tokenizer.
ADJECTIVES = (
    "old new small large quiet busy early late bright dark warm cold heavy light "
    "narrow wide simple careful rough smooth green red blue yellow broken clean"
).split()
NOUNS = (
    "team server window garden river bridge office market engine report meeting "
    "budget printer kitchen station harbor train truck field tower library school "
    "wall door floor roof table chair cable switch battery pump valve sensor camera "
    "ticket invoice order customer supplier driver manager plan schedule week month "
    "morning evening road street village city island mountain forest lake farm"
).split()
VERBS = (
    "moved fixed checked opened closed painted cleaned replaced measured counted "
    "tested ordered delivered sold bought found lost built changed sent "
    "signed copied planned started finished"
).split()
PLACES = "near behind under above beside after before during".split()
NAMES = (
    "Anna Ben Clara David Emma Frank Grace Henry Iris Jack Karen Leo Maria Nina Oscar "
    "Paul Rosa Sam Tina Victor"
).split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()

# Tokens per note sentence, measured with the Qwen2.5 tokenizer (llama-server's
# /tokenize, mean of 200 sentences); used only to size the notes, the report shows the
# servers' own counts.
TOKENS_PER_SENTENCE = 12.2
# The note's title line and closing request, in tokens.
TOKENS_AROUND_NOTE = 28


def sentence(rng: random.Random) -> str:
    """One plain sentence of about TOKENS_PER_SENTENCE tokens."""
    a, b = rng.sample(NOUNS, 2)
    pattern = rng.randrange(4)
    if pattern == 0:
        return f"{rng.choice(NAMES)} {rng.choice(VERBS)} the {rng.choice(ADJECTIVES)} {a} {rng.choice(PLACES)} the {b}."
    if pattern == 1:
        return f"On {rng.choice(DAYS)} the {a} was {rng.choice(VERBS)} by {rng.choice(NAMES)} and the {b} stayed {rng.choice(ADJECTIVES)}."
    if pattern == 2:
        return f"The {rng.choice(ADJECTIVES)} {a} {rng.choice(PLACES)} the {b} needs {rng.randint(2, 90)} more hours of work."
    return f"{rng.choice(NAMES)} and {rng.choice(NAMES)} {rng.choice(VERBS)} a {rng.choice(ADJECTIVES)} {a} for the {b}."


def first_message(conv: int, n_convs: int, tokens: int) -> str:
    """Conversation `conv`'s opening user message: note conv+1, about `tokens` tokens."""
    rng = random.Random(1000 + conv)
    title = f"the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} at the {rng.choice(NOUNS)}"
    head = f"Note {conv + 1} of {n_convs}: {title}."
    n = max(1, round((tokens - TOKENS_AROUND_NOTE) / TOKENS_PER_SENTENCE))
    body = " ".join(sentence(rng) for _ in range(n))
    return f"{head} {body}\n\nPlease read note {conv + 1} and summarise it in one sentence."


def follow_up(conv: int) -> str:
    return f"Tell me one more detail about note {conv + 1}."


def log(msg: str) -> None:
    print(f"[sessions] {msg}", file=sys.stderr, flush=True)


# --- servers ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def help_text(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return p.stdout + p.stderr


def lists_flag(help_out: str, flag: str) -> bool:
    """Whether `flag` appears as a flag in a --help text."""
    return re.search(rf"(^|[\s,]){re.escape(flag)}([\s,=]|$)", help_out, re.M) is not None


class Server:
    """One server binary: starts it (same flags every time), stops it, logs to files."""

    def __init__(self, name: str, binary: str, model: str, args: argparse.Namespace, work: Path):
        self.name = name
        self.binary = binary
        self.model = model
        self.args = args
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.data_dir: Path | None = None
        self.data_dir_flag = False
        self.extra_flags: list[str] = []
        if name == "chorus":
            self.data_dir_flag = lists_flag(help_text([binary, "serve", "--help"]), "--data-dir")
            self.data_dir = Path(tempfile.mkdtemp(prefix="chorus-data-", dir=work))
            self.extra_flags = args.chorus_extra.split()
        else:
            if lists_flag(help_text([binary, "--help"]), "--no-webui"):
                self.extra_flags.append("--no-webui")
            self.extra_flags += args.llama_server_extra.split()

    def argv(self, port: int) -> list[str]:
        t = str(self.args.threads)
        if self.name == "chorus":
            argv = [self.binary, "serve", "--model", self.model, "--ctx-size", str(self.args.ctx_size),
                    "--parallel", str(self.args.parallel), "--threads", t,
                    "--host", "127.0.0.1", "--port", "0", "--no-control-socket"]
            if self.data_dir_flag:
                argv += ["--data-dir", str(self.data_dir)]
            return argv + self.extra_flags
        return [self.binary, "-m", self.model, "-c", str(self.args.ctx_size), "-np", str(self.args.parallel),
                "-t", t, "-tb", t, "--host", "127.0.0.1", "--port", str(port), *self.extra_flags]

    def cmdline(self) -> str:
        """The command line, with placeholders for what changes between starts."""
        line = " ".join(self.argv(0))
        if self.name != "chorus":
            line = line.replace("--port 0", "--port PORT")
        return line

    async def start(self, client: httpx.AsyncClient) -> str:
        """Start the server and wait until GET /health answers 200; returns its base URL."""
        self.starts += 1
        port = free_port()
        stem = self.work / f"{self.name}-{self.starts}"
        out_path, err_path = stem.with_suffix(".stdout.log"), stem.with_suffix(".log")
        argv = self.argv(port)
        log(f"{self.name} start {self.starts}: {' '.join(argv)}")
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        self.log_path = err_path
        deadline = time.monotonic() + self.args.ready_timeout
        if self.name == "chorus":
            base = None
            while base is None:
                for line in out_path.read_text(errors="replace").splitlines():
                    if line.startswith("chorus listening on http"):
                        base = line.split()[3]
                        break
                else:
                    if self.proc.poll() is not None:
                        raise BenchError(f"chorus exited ({self.proc.returncode}) before listening; {self.tail()}")
                    if time.monotonic() > deadline:
                        raise BenchError(f"chorus printed no 'chorus listening on' line; {self.tail()}")
                    await asyncio.sleep(0.1)
        else:
            base = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(client, base, max(1.0, deadline - time.monotonic()), self.proc.pid)
        except BenchError as e:
            raise BenchError(f"{e}; {self.tail()}") from e
        return base.rstrip("/")

    def stop(self) -> float:
        """SIGTERM, then wait for the exit (SIGKILL after --stop-timeout); seconds taken."""
        if self.proc is None:
            return 0.0
        t0 = time.perf_counter()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.args.stop_timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} still running {self.args.stop_timeout:.0f}s after SIGTERM; SIGKILL")
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        return time.perf_counter() - t0

    def tail(self, n: int = 8) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-n:]
        except OSError:
            return "no log"
        return f"log tail ({self.log_path}):\n  " + "\n  ".join(lines)


# --- one turn -----------------------------------------------------------------------


@dataclass
class Turn:
    """One request of one conversation."""

    conv: int
    round: int  # 1-based; the after-restart round is --rounds + 1
    phase: str  # "cold" (round 1), "resumed" (rounds 2..--rounds), "restart"
    messages: int  # messages sent, the history included
    ttft_s: float
    total_s: float
    no_text: bool  # the stream carried no content; ttft_s is then total_s
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    cached_from: str | None  # "usage" (prompt_tokens_details) or "timings" (llama-server's cache_n)
    finish_reason: str | None
    answer_chars: int


async def chat_turn(
    client: httpx.AsyncClient, base: str, model: str, messages: list[dict[str, str]],
    max_tokens: int, cache_key: str | None,
) -> tuple[str, dict[str, Any]]:
    """One streamed chat completion; returns (answer text, timing and usage facts)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    if cache_key is not None:
        body["prompt_cache_key"] = cache_key
    parts: list[str] = []
    t_first: float | None = None
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    finish: str | None = None
    t0 = time.perf_counter()
    async for obj in sse_objects(client, f"{base}/v1/chat/completions", body):
        for c in obj.get("choices") or []:
            text = (c.get("delta") or {}).get("content") or ""
            if text:
                if t_first is None:
                    t_first = time.perf_counter() - t0
                parts.append(text)
            finish = c.get("finish_reason") or finish
        if obj.get("usage"):
            usage = obj["usage"]
        if obj.get("timings"):
            timings = obj["timings"]
    total = time.perf_counter() - t0
    if usage is None:
        raise BenchError("stream ended without a usage object (stream_options.include_usage)")
    cached, source = None, None
    details = usage.get("prompt_tokens_details") or {}
    if details.get("cached_tokens") is not None:
        cached, source = int(details["cached_tokens"]), "usage"
    elif timings and timings.get("cache_n") is not None:
        cached, source = int(timings["cache_n"]), "timings"
    facts = {
        "ttft_s": t_first if t_first is not None else total,
        "total_s": total,
        "no_text": t_first is None,
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "cached_tokens": cached,
        "cached_from": source,
        "finish_reason": finish,
    }
    return "".join(parts), facts


# --- one server's whole run -----------------------------------------------------------


@dataclass
class RoundResult:
    round: int
    phase: str
    wall_s: float


@dataclass
class ServerResult:
    server: str
    cmdline: str
    data_dir_flag: bool | None = None
    model_id: str = ""
    first_ready_s: float = 0.0
    restart_stop_s: float | None = None
    restart_ready_s: float | None = None
    total_wall_s: float | None = None
    rounds: list[RoundResult] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    metrics_before_restart: list[str] | None = None
    metrics_after_restart: list[str] | None = None
    data_dir_bytes: int | None = None
    error: str | None = None


async def scrape_metrics(client: httpx.AsyncClient, base: str) -> list[str] | None:
    """Lines of GET /metrics that start with chorus_prompt_cache (None: no /metrics)."""
    try:
        r = await client.get(f"{base}/metrics", timeout=30)
    except httpx.HTTPError as e:
        log(f"GET /metrics failed: {e!r}")
        return None
    if r.status_code != 200:
        return None
    return [line for line in r.text.splitlines() if line.startswith("chorus_prompt_cache")]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Conversation:
    def __init__(self, i: int, args: argparse.Namespace):
        self.i = i
        self.messages: list[dict[str, str]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": first_message(i, args.conversations, args.first_tokens)},
        ]


async def run_round(
    client: httpx.AsyncClient, base: str, model: str, convs: list[Conversation], rnd: int, phase: str,
    args: argparse.Namespace, res: ServerResult,
) -> None:
    t0 = time.perf_counter()
    for c in convs:
        if rnd > 1:
            c.messages.append({"role": "user", "content": follow_up(c.i)})
        key = None if args.no_cache_key else f"conv-{c.i}"
        answer, facts = await chat_turn(client, base, model, c.messages, args.max_tokens, key)
        turn = Turn(conv=c.i, round=rnd, phase=phase, messages=len(c.messages), answer_chars=len(answer), **facts)
        res.turns.append(turn)
        c.messages.append({"role": "assistant", "content": answer})
    wall = time.perf_counter() - t0
    res.rounds.append(RoundResult(rnd, phase, wall))
    ttfts = [t.ttft_s for t in res.turns if t.round == rnd]
    cached = [t.cached_tokens for t in res.turns if t.round == rnd and t.cached_tokens is not None]
    prompt = [t.prompt_tokens for t in res.turns if t.round == rnd and t.prompt_tokens is not None]
    log(
        f"{res.server} round {rnd} ({phase}): wall {wall:.1f}s, TTFT p50 {pct(ttfts, 0.5):.2f}s "
        f"p90 {pct(ttfts, 0.9):.2f}s, prompt tok mean {mean(prompt):.0f}, cached tok mean {mean(cached):.0f}"
    )


async def run_server(server: Server, args: argparse.Namespace) -> ServerResult:
    res = ServerResult(server=server.name, cmdline=server.cmdline())
    if server.name == "chorus":
        res.data_dir_flag = server.data_dir_flag
        if not server.data_dir_flag:
            log("chorus serve --help lists no --data-dir: running without it (nothing to resume after the restart)")
    convs = [Conversation(i, args) for i in range(args.conversations)]
    try:
        async with httpx.AsyncClient() as client:
            t = time.perf_counter()
            base = await server.start(client)
            res.first_ready_s = time.perf_counter() - t
            model = args.model_id or await model_id(client, base)
            res.model_id = model
            if not args.no_warmup:
                await chat_turn(
                    client, base, model,
                    [{"role": "system", "content": WARMUP_SYSTEM}, {"role": "user", "content": "Say hello."}],
                    4, None,
                )
            t_all = time.perf_counter()
            for rnd in range(1, args.rounds + 1):
                await run_round(client, base, model, convs, rnd, "cold" if rnd == 1 else "resumed", args, res)
            if server.name == "chorus":
                res.metrics_before_restart = await scrape_metrics(client, base)
        res.restart_stop_s = server.stop()
        log(f"{server.name} stopped in {res.restart_stop_s:.1f}s; starting it again")
        async with httpx.AsyncClient() as client:
            t = time.perf_counter()
            base = await server.start(client)
            res.restart_ready_s = time.perf_counter() - t
            await run_round(client, base, model, convs, args.rounds + 1, "restart", args, res)
            res.total_wall_s = time.perf_counter() - t_all
            if server.name == "chorus":
                res.metrics_after_restart = await scrape_metrics(client, base)
    except (BenchError, httpx.HTTPError, OSError) as e:
        res.error = f"{type(e).__name__}: {e}"
        log(f"{server.name} failed: {res.error}")
    finally:
        server.stop()
        if server.data_dir is not None and server.data_dir.exists():
            res.data_dir_bytes = dir_bytes(server.data_dir)
            if not args.keep_data_dir:
                shutil.rmtree(server.data_dir, ignore_errors=True)
    return res


# --- report -------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    """The q-quantile of xs, linear between closest ranks; nan when empty."""
    if not xs:
        return math.nan
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def f(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def summary(r: ServerResult) -> dict[str, Any]:
    """The headline numbers of one server's run."""
    def ttfts(phase: str) -> list[float]:
        return [t.ttft_s for t in r.turns if t.phase == phase]

    resumed = [t for t in r.turns if t.phase == "resumed"]
    cached = [t.cached_tokens for t in resumed if t.cached_tokens is not None]
    prompt = [t.prompt_tokens for t in resumed if t.cached_tokens is not None and t.prompt_tokens]
    restart_rounds = [x for x in r.rounds if x.phase == "restart"]
    return {
        "cold_p50": pct(ttfts("cold"), 0.5), "cold_p90": pct(ttfts("cold"), 0.9),
        "resumed_p50": pct(ttfts("resumed"), 0.5), "resumed_p90": pct(ttfts("resumed"), 0.9),
        "restart_p50": pct(ttfts("restart"), 0.5), "restart_p90": pct(ttfts("restart"), 0.9),
        "restart_wall_s": restart_rounds[0].wall_s if restart_rounds else math.nan,
        "pre_restart_wall_s": sum(x.wall_s for x in r.rounds if x.phase != "restart"),
        "total_wall_s": r.total_wall_s if r.total_wall_s is not None else math.nan,
        "resumed_cached_mean": mean(cached), "resumed_prompt_mean": mean(prompt),
        "resumed_cached_share": (sum(cached) / sum(prompt)) if prompt and sum(prompt) else math.nan,
        "cached_from": sorted({t.cached_from for t in r.turns if t.cached_from}),
        "no_text_turns": sum(1 for t in r.turns if t.no_text),
        "first_prompt_tokens": pct([float(t.prompt_tokens) for t in r.turns if t.phase == "cold" and t.prompt_tokens], 0.5),
    }


def metric_value(lines: list[str] | None, name: str) -> float | None:
    """The sum of metric `name`'s samples (any labels) in Prometheus text lines; None if absent."""
    total, seen = 0.0, False
    for line in lines or []:
        parts = line.rsplit(None, 1) if "}" in line else line.split()
        if len(parts) >= 2 and parts[0].split("{", 1)[0] == name:
            try:
                total += float(parts[-1])
                seen = True
            except ValueError:
                pass
    return total if seen else None


def ram_per_token(lines: list[str] | None) -> str:
    b = metric_value(lines, "chorus_prompt_cache_ram_bytes")
    t = metric_value(lines, "chorus_prompt_cache_ram_tokens")
    if not b or not t:
        return "n/a (chorus_prompt_cache_ram_bytes / _ram_tokens missing or zero)"
    return f"{b / t:.0f} bytes ({b / t / 1024:.1f} KiB) per token: {b / 2**20:.1f} MiB for {t:.0f} tokens"


def report(results: list[ServerResult], args: argparse.Namespace, meta: dict[str, str]) -> str:
    by = {r.server: r for r in results}
    sums = {r.server: summary(r) for r in results}
    out: list[str] = ["# Conversations resuming from a prompt cache: chorus vs llama-server", ""]
    out.append(f"- date: {meta['date']}; command: `{meta['command']}`")
    out.append(f"- machine: {meta['machine']}; load average (1/5/15 min) before: {meta['load_before']}, after: {meta['load_after']}")
    if meta.get("versions"):
        out.append(f"- {meta['versions']}")
    out.append(
        f"- workload: conversations: {args.conversations}, one shared system prompt, a distinct "
        f"~{args.first_tokens}-token first user message each, then short follow-ups; rounds (round robin): "
        f"{args.rounds}, then a restart and 1 more; every turn resends the whole history "
        f"(stream, temperature 0, max_tokens {args.max_tokens}"
        f"{'' if args.no_cache_key else ', prompt_cache_key conv-<i>'}), one request at a time"
    )
    for r in results:
        extra = ""
        if r.server == "chorus" and not r.data_dir_flag:
            extra = " (this chorus has no --data-dir: nothing persists across the restart)"
        out.append(f"- {r.server}: `{r.cmdline}`{extra}")
    out.append("")
    out.append(
        "| server | first-turn prompt tok | cold TTFT p50 / p90 s | resumed TTFT p50 / p90 s | after-restart TTFT p50 / p90 s "
        "| after-restart round wall s | restart: stop / ready s | total wall s | resumed cached / prompt tok |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        s = sums[r.server]
        cached = (
            f"{f(s['resumed_cached_mean'], 0)} / {f(s['resumed_prompt_mean'], 0)} ({f(100 * s['resumed_cached_share'], 1)} %)"
            if not math.isnan(s["resumed_cached_share"]) else "–"
        )
        if s["cached_from"] and s["cached_from"] != ["usage"]:
            cached += f" [from {', '.join(s['cached_from'])}]"
        out.append(
            f"| {r.server} | {f(s['first_prompt_tokens'], 0)} | {f(s['cold_p50'])} / {f(s['cold_p90'])} "
            f"| {f(s['resumed_p50'])} / {f(s['resumed_p90'])} | {f(s['restart_p50'])} / {f(s['restart_p90'])} "
            f"| {f(s['restart_wall_s'], 1)} | {f(r.restart_stop_s, 1)} / {f(r.restart_ready_s, 1)} "
            f"| {f(s['total_wall_s'], 1)} | {cached} |"
        )
    c, l = sums.get("chorus"), sums.get("llama-server")
    if c and l:
        out += ["", "chorus / llama-server (lower is better):", "",
                "| metric | chorus | llama-server | ratio | target |", "|---|---:|---:|---:|---|"]

        def row(label: str, key: str, digits: int, target: float | None) -> None:
            a, b = c[key], l[key]
            ratio = a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan
            verdict = "–"
            if target is not None:
                verdict = f"≤ {target}: " + ("–" if math.isnan(ratio) else "met" if ratio <= target else "NOT met")
            out.append(f"| {label} | {f(a, digits)} | {f(b, digits)} | {f(ratio)} | {verdict} |")

        row("resumed TTFT p50 s", "resumed_p50", 2, 0.9)
        row("after-restart round wall s", "restart_wall_s", 1, 0.2)
        row("cold TTFT p50 s", "cold_p50", 2, None)
        row("after-restart TTFT p50 s", "restart_p50", 2, None)
        row("total wall s", "total_wall_s", 1, None)
    if "chorus" in by:
        r = by["chorus"]
        out += ["", "## chorus prompt-cache metrics", ""]
        for label, lines in (("after the pre-restart rounds", r.metrics_before_restart),
                             ("after the after-restart round", r.metrics_after_restart)):
            out.append(f"{label}: RAM cost per cached token: {ram_per_token(lines)}")
            out.append("")
            if lines:
                out += ["```", *lines, "```", ""]
            else:
                out += ["(no chorus_prompt_cache lines in GET /metrics)" if lines is not None else "(GET /metrics not scraped)", ""]
        if r.data_dir_flag and r.data_dir_bytes is not None:
            out.append(f"--data-dir size at the end: {r.data_dir_bytes / 2**20:.1f} MiB")
            out.append("")
    out += ["## Per round", "",
            "| server | round | phase | TTFT p50 / p90 s | wall s | prompt tok mean | cached tok mean |",
            "|---|---:|---|---:|---:|---:|---:|"]
    for r in results:
        for x in r.rounds:
            ts = [t for t in r.turns if t.round == x.round]
            cached = [t.cached_tokens for t in ts if t.cached_tokens is not None]
            prompt = [t.prompt_tokens for t in ts if t.prompt_tokens is not None]
            out.append(
                f"| {r.server} | {x.round} | {x.phase} | {f(pct([t.ttft_s for t in ts], 0.5))} / "
                f"{f(pct([t.ttft_s for t in ts], 0.9))} | {f(x.wall_s, 1)} | {f(mean(prompt), 0)} | {f(mean(cached), 0)} |"
            )
    notes = []
    for r in results:
        s = sums[r.server]
        if s["no_text_turns"]:
            notes.append(f"- {r.server}: {s['no_text_turns']} turns streamed no text; their TTFT is the whole turn")
        if r.error:
            notes.append(f"- {r.server} FAILED: {r.error}")
    if notes:
        out += ["", *notes]
    return "\n".join(out) + "\n"


# --- main ---------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--chorus", help="chorus binary (omit to skip chorus)")
    p.add_argument("--llama-server", help="llama-server binary (omit to skip llama-server)")
    p.add_argument("--model", required=True, help="GGUF path, the same for both servers")
    p.add_argument("--order", default="llama-server,chorus", help="which server runs first")
    p.add_argument("--conversations", type=int, default=12)
    p.add_argument("--first-tokens", type=int, default=900, help="length of each first user message")
    p.add_argument("--rounds", type=int, default=3, help="rounds before the restart")
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--ctx-size", type=int, default=16384)
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--threads", type=int, default=2, help="generation and batch threads for both")
    p.add_argument("--chorus-extra", default="", help="extra chorus serve flags")
    p.add_argument("--llama-server-extra", default="", help="extra llama-server flags")
    p.add_argument("--no-cache-key", action="store_true", help="send no prompt_cache_key")
    p.add_argument("--no-warmup", action="store_true", help="skip the warm-up request")
    p.add_argument("--model-id", default=None, help="model id to send (default: first of GET /v1/models)")
    p.add_argument("--ready-timeout", type=float, default=600)
    p.add_argument("--stop-timeout", type=float, default=120, help="seconds after SIGTERM before SIGKILL")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="server logs, chorus's --data-dir and sessions.json (default: a new dir under "
                        "${CHORUS_BENCH_CACHE}/runs)")
    p.add_argument("--keep-data-dir", action="store_true", help="keep chorus's --data-dir afterwards")
    p.add_argument("--report", type=Path, default=REPO / "bench" / "results" / "latest-sessions.md")
    p.add_argument("--versions", default="", help="a line about the binaries' versions for the report")
    p.add_argument("--command", default=None, help="the command line to name in the report (default: this one)")
    args = p.parse_args()

    if args.conversations < 1 or args.rounds < 1:
        p.error("--conversations and --rounds must be at least 1")
    work = args.work_dir or bench.CACHE / "runs" / time.strftime("%Y%m%dT%H%M%SZ-sessions", time.gmtime())
    work.mkdir(parents=True, exist_ok=True)
    binaries = {"chorus": args.chorus, "llama-server": args.llama_server}
    order = [s.strip() for s in args.order.split(",") if s.strip()]
    if set(order) - set(binaries):
        p.error(f"--order names unknown servers: {order}")
    order = [s for s in order if binaries.get(s)] + [s for s in binaries if binaries[s] and s not in order]
    if not order:
        p.error("give --chorus and/or --llama-server")

    # SIGTERM (run.sh's trap, a CI timeout) unwinds like Ctrl-C, so the server is stopped.
    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    load_before = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    results: list[ServerResult] = []
    for name in order:
        server = Server(name, binaries[name], args.model, args, work)
        try:
            results.append(asyncio.run(run_server(server, args)))
        finally:
            server.stop()

    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD"]).returncode != 0
    meta = {
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        "command": args.command or "bench/sessions.py " + " ".join(
            a if not a.startswith("/") else Path(a).name for a in sys.argv[1:]),
        "machine": f"{cpu}, {os.cpu_count()} cores",
        "load_before": " ".join(load_before),
        "load_after": " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?",
        "versions": f"chorus {commit}{' (dirty tree)' if dirty else ''}" + (f"; {args.versions}" if args.versions else ""),
    }
    text = report(results, args, meta)
    (work / "sessions.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "meta": meta,
         "summary": {r.server: summary(r) for r in results},
         "results": [asdict(r) for r in results]}, indent=2) + "\n")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(text, end="")
    log(f"report: {args.report}; raw results and server logs: {work}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
