#!/usr/bin/env python3
"""The model pool's benchmark: how long switching models takes, and embeddings per second.

    bench/models.py --chorus target/release/chorus [--llama-server PATH] [--runs 3]

Switch time: one `chorus serve` with the qwen-coder and gemma fixtures under a memory budget
that holds only one of them; a streamed completion to the model that is not loaded is
timed from sending it to its first token, so it covers the unload of the other model, the
load and the first token. Alternating requests give `--runs` switches each way. The
llama-server figure is what switching costs its users: stop the server and start it on the
other file, until the first token (same files, same threads, llama-server's defaults).

Embeddings: `minilm` (sentence-transformers all-MiniLM-L6-v2 via candle) with batches of 1
and 32 inputs of ~12 words, inputs per second over 64 inputs per batch size, after a warm-up.
llama-server has no runner for a sentence-transformers directory, so there is no ratio.

Writes Markdown to stdout and to bench/results/latest-models.md. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = pathlib.Path(os.environ.get("CHORUS_FIXTURES_DIR", pathlib.Path.home() / ".cache/chorus/fixtures"))
QWEN = FIXTURES / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
GEMMA = FIXTURES / "gemma-3-270m-q4_k_m.gguf"
MINILM = FIXTURES / "all-minilm-l6-v2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("server did not come up")


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def first_token(url: str, model: str | None) -> float:
    """Seconds from sending a streamed completion to its first text."""
    body = {"prompt": "def fibonacci(n):", "max_tokens": 8, "temperature": 0, "stream": True}
    if model:
        body["model"] = model
    req = urllib.request.Request(url + "/v1/completions", json.dumps(body).encode(), {"content-type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            line = line.strip()
            if line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0].get("text"):
                    elapsed = time.perf_counter() - start
                    for _ in r:
                        pass
                    return elapsed
    raise SystemExit("no token came")


def chorus_switches(chorus: str, threads: int, runs: int) -> tuple[list[float], list[float], list[float]]:
    port = free_port()
    data = tempfile.mkdtemp(prefix="chorus-bench-models-")
    args = [chorus, "serve", "--port", str(port), "--no-control-socket", "--data-dir", data,
            "--threads", str(threads), "--memory-budget", "2G",
            "-m", str(QWEN), "-m", str(GEMMA), "-m", str(MINILM)]
    log = open(pathlib.Path(data) / "serve.log", "w")
    proc = subprocess.Popen(args, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_health(url, proc)
        qwen, gemma = QWEN.stem, GEMMA.stem
        first_token(url, qwen)  # warm (qwen is preloaded)
        warm = [first_token(url, qwen) for _ in range(runs)]
        to_gemma, to_qwen = [], []
        for _ in range(runs):
            to_gemma.append(first_token(url, gemma))
            to_qwen.append(first_token(url, qwen))
        return warm, to_gemma, to_qwen
    finally:
        proc.terminate()
        proc.wait(30)


def llama_server_switches(server: str, threads: int, runs: int) -> tuple[list[float], list[float]]:
    """Stop + start on the other file + first token, as a llama-server user switches."""
    def start_and_first(model: pathlib.Path) -> tuple[float, subprocess.Popen]:
        port = free_port()
        start = time.perf_counter()
        proc = subprocess.Popen([server, "-m", str(model), "--port", str(port), "-t", str(threads)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        wait_health(url, proc)
        first_token(url, None)
        return time.perf_counter() - start, proc

    to_gemma, to_qwen = [], []
    _, proc = start_and_first(QWEN)
    for _ in range(runs):
        for model, out in ((GEMMA, to_gemma), (QWEN, to_qwen)):
            t0 = time.perf_counter()
            proc.terminate()
            proc.wait(30)
            stop = time.perf_counter() - t0
            elapsed, proc = start_and_first(model)
            out.append(stop + elapsed)
    proc.terminate()
    proc.wait(30)
    return to_gemma, to_qwen


def embeddings(chorus: str, threads: int) -> dict[int, float]:
    port = free_port()
    data = tempfile.mkdtemp(prefix="chorus-bench-embed-")
    proc = subprocess.Popen([chorus, "serve", "--port", str(port), "--no-control-socket", "--data-dir", data,
                             "--threads", str(threads), "-m", str(MINILM)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_health(url, proc)
        words = "the quick brown fox jumps over a lazy dog near the river bank".split()
        texts = [" ".join(words[i % 5:] + words[: i % 5]) + f" {i}" for i in range(64)]
        rates = {}
        for batch in (1, 32):
            post(url + "/v1/embeddings", {"model": MINILM.name, "input": texts[:batch]})
            start = time.perf_counter()
            for i in range(0, len(texts), batch):
                post(url + "/v1/embeddings", {"model": MINILM.name, "input": texts[i:i + batch]})
            rates[batch] = len(texts) / (time.perf_counter() - start)
        return rates
    finally:
        proc.terminate()
        proc.wait(30)


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s" if xs else "—"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--chorus", default=str(ROOT / "target/release/chorus"))
    p.add_argument("--llama-server", default=str(pathlib.Path.home() / ".cache/chorus-bench/bin/llama-server"))
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    warm, c_gemma, c_qwen = chorus_switches(a.chorus, a.threads, a.runs)
    l_gemma, l_qwen = ([], [])
    if pathlib.Path(a.llama_server).is_file():
        l_gemma, l_qwen = llama_server_switches(a.llama_server, a.threads, a.runs)
    rates = embeddings(a.chorus, a.threads)
    ratio = lambda c, l: f"{statistics.median(c) / statistics.median(l):.2f}×" if c and l else "—"
    out = [
        f"# Model pool: switch time and embeddings ({time.strftime('%Y-%m-%d')}, {a.threads} threads, medians of {a.runs})",
        "",
        "Switch = request to first token of the model not loaded (chorus: one server, `--memory-budget 2G` holds",
        "one of the two; unload + load + first token. llama-server: stop it, start it on the other file, first token).",
        "",
        "| | chorus | llama-server (restart) | ratio |",
        "|---|---|---|---|",
        f"| first token, model loaded (qwen-coder) | {med(warm)} | — | — |",
        f"| switch qwen-coder → gemma | {med(c_gemma)} | {med(l_gemma)} | {ratio(c_gemma, l_gemma)} |",
        f"| switch gemma → qwen-coder | {med(c_qwen)} | {med(l_qwen)} | {ratio(c_qwen, l_qwen)} |",
        "",
        "| minilm embeddings (candle BERT) | inputs/s |",
        "|---|---|",
        f"| batch 1 | {rates[1]:.1f} |",
        f"| batch 32 | {rates[32]:.1f} |",
        "",
        f"Raw: chorus warm {warm}, →gemma {c_gemma}, →qwen {c_qwen}; llama-server →gemma {l_gemma}, →qwen {l_qwen}.",
    ]
    text = "\n".join(out) + "\n"
    print(text)
    (ROOT / "bench/results/latest-models.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
