"""The official `ollama` Python client (PyPI `ollama`) against chorus's Ollama API, as an
Ollama user runs it: on the real qwen-coder fixture (``CHORUS_QWEN_CODER``) and the real
minilm embedding model (``CHORUS_MINILM``), served by one `chorus serve` whose
`--ollama-port` listener is the client's host.

- list, show, ps: what Ollama reports of a GGUF (family, parameter size, quantization,
  template, model_info, capabilities) and of the loaded models.
- chat plain and streamed, generate (and a follow-up on its `context`), `format` as a JSON
  schema, `tools`: real answers of the real model, the final chunk's counters and durations.
- embed and the legacy embeddings on minilm, and embed on qwen-coder itself (a side context
  with last-token pooling, as Ollama embeds with any model).
- pull `hf.co/test/tiny:Q8_0` from an imitation of the Hugging Face hub on 127.0.0.1 (the
  real hub cannot be reached here; chorus's hub client is the real one), its progress lines,
  then chat with it, copy it, and delete both.

Without a fixture the tests skip, except under CI, where they fail. Real models are slow on a
small machine: prompts are short, `num_predict` small, sampling greedy.
"""

from __future__ import annotations

import http.server
import json
import math
import os
import socket
import threading
import tomllib
from pathlib import Path
from typing import Iterator

import ollama
import pytest
from pydantic import BaseModel

from conftest import real_model, start_server
from test_embeddings import minilm_dir

TIMEOUT_S = 600.0
CAPITAL = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
GREEDY = {"temperature": 0, "num_predict": 8}
COMMIT = "0123456789abcdef0123456789abcdef01234567"
HUB_REPO = "test/tiny"
HUB_FILES = ["tiny-F16.gguf", "tiny-Q8_0.gguf"]


class Person(BaseModel):
    name: str
    age: int


# --- an imitation of the Hugging Face hub ----------------------------------------------------


class FakeHub(http.server.ThreadingHTTPServer):
    """The hub's model info (`/api/models/OWNER/REPO/revision/main`, its `siblings`) and its
    `resolve` URLs (`ETag`, `X-Repo-Commit`, `Content-Length`, `Range` honoured) for one repo
    whose files all hold `content`."""

    def __init__(self, content: bytes) -> None:
        super().__init__(("127.0.0.1", 0), HubHandler)
        self.content = content
        self.requests: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HubHandler(http.server.BaseHTTPRequestHandler):
    server: FakeHub

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass

    def do_HEAD(self) -> None:
        self.answer(body=False)

    def do_GET(self) -> None:
        self.answer(body=True)

    def answer(self, body: bool) -> None:
        self.server.requests.append(f"{self.command} {self.path}")
        if self.path == f"/api/models/{HUB_REPO}/revision/main":
            data = json.dumps({"id": HUB_REPO, "sha": COMMIT, "siblings": [{"rfilename": f} for f in ["README.md", *HUB_FILES]]}).encode()
            self.send(200, data, {"Content-Type": "application/json"}, body)
            return
        prefix = f"/{HUB_REPO}/resolve/main/"
        if not self.path.startswith(prefix) or self.path[len(prefix):] not in HUB_FILES:
            self.send(404, b"", {"X-Error-Code": "EntryNotFound"}, body)
            return
        content = self.server.content
        headers = {"ETag": f'"{len(content):040x}"', "X-Repo-Commit": COMMIT}
        start = 0
        status = 200
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes=") and ranged.endswith("-"):
            start = int(ranged[len("bytes="):-1])
            if 0 < start < len(content):
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(content) - 1}/{len(content)}"
            else:
                start = 0
        self.send(status, content[start:], headers, body)

    def send(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(data)


@pytest.fixture(scope="module")
def hub(chorus_model: Path) -> Iterator[FakeHub]:
    """The hub, serving the tiny testkit model's bytes as every file of `test/tiny`."""
    server = FakeHub(chorus_model.read_bytes())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def qwen_model() -> Path:
    return real_model("CHORUS_QWEN_CODER")


@pytest.fixture(scope="module")
def server(qwen_model: Path, hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """`chorus serve` on qwen-coder (default model, default flags) and minilm, with Ollama's
    API on a second port and the imitation hub as its endpoint; its data dir, hub cache and
    config are the test's own."""
    minilm = minilm_dir()
    home = tmp_path_factory.mktemp("ollama-server")
    port = free_port()
    env = {"XDG_CACHE_HOME": str(home / "cache"), "XDG_CONFIG_HOME": str(home / "config"), "HF_ENDPOINT": hub.endpoint}
    args = ["--model", str(minilm), "--ollama-port", str(port), "--hf-endpoint", hub.endpoint]
    with start_server(qwen_model, args, home, env) as base_url:
        yield {"base_url": base_url, "ollama": f"http://127.0.0.1:{port}", "data_dir": home}


@pytest.fixture(scope="module")
def client(server: dict) -> ollama.Client:
    return ollama.Client(host=server["ollama"], timeout=TIMEOUT_S)


@pytest.fixture(scope="module")
def qwen(qwen_model: Path) -> str:
    """The Ollama name of qwen-coder: its chorus id with Ollama's `:latest` tag."""
    return f"{qwen_model.stem}:latest"


@pytest.fixture(scope="module")
def minilm() -> str:
    return f"{minilm_dir().name}:latest"


# --- list, show, ps --------------------------------------------------------------------------


def test_list_names_both_models_with_their_details(client: ollama.Client, qwen: str, minilm: str) -> None:
    models = {m.model: m for m in client.list().models}
    assert qwen in models and minilm in models, list(models)
    q = models[qwen]
    assert q.size and q.size > 100_000_000, q
    assert q.digest and len(q.digest) == 64 and int(q.digest, 16) >= 0, q
    assert q.modified_at is not None
    assert q.details.format == "gguf" and q.details.family == "qwen2", q.details
    assert q.details.quantization_level == "Q4_K_M", q.details
    assert q.details.parameter_size and q.details.parameter_size.endswith("M"), q.details


def test_show_gives_template_details_model_info_and_capabilities(client: ollama.Client, qwen: str) -> None:
    shown = client.show(qwen)
    assert shown.template and "<|im_start|>" in shown.template, shown.template
    assert shown.details.family == "qwen2"
    info = shown.modelinfo
    assert info["general.architecture"] == "qwen2", info
    assert info["qwen2.context_length"] == 32768, info
    assert "completion" in shown.capabilities and "tools" in shown.capabilities, shown.capabilities
    # `name` is accepted for `model`, as Ollama's older clients send it.
    assert shown.parameters is not None


def test_ps_lists_the_loaded_default_model(client: ollama.Client, qwen: str) -> None:
    running = {m.model: m for m in client.ps().models}
    assert qwen in running, list(running)
    loaded = running[qwen]
    assert loaded.size and loaded.size > 100_000_000, loaded
    assert loaded.expires_at is not None
    assert loaded.details.family == "qwen2"


# --- chat and generate -----------------------------------------------------------------------


def test_chat_answers_with_counters_in_nanoseconds(client: ollama.Client, qwen: str) -> None:
    response = client.chat(model=qwen, messages=CAPITAL, options=GREEDY)
    assert response.message.role == "assistant"
    assert "Paris" in (response.message.content or ""), response.message
    assert response.done and response.done_reason == "stop", response
    assert response.model == qwen
    assert response.prompt_eval_count and response.prompt_eval_count > 10, response
    assert response.eval_count and 0 < response.eval_count <= 8, response
    assert response.eval_duration and response.eval_duration > 1000, response
    assert response.total_duration and response.total_duration >= response.eval_duration, response


def test_streamed_chat_ends_with_one_done_chunk(client: ollama.Client, qwen: str) -> None:
    chunks = list(client.chat(model=qwen, messages=CAPITAL, options=GREEDY, stream=True))
    assert len(chunks) >= 2, chunks
    *pieces, last = chunks
    assert all(not c.done for c in pieces) and last.done, chunks
    text = "".join(c.message.content or "" for c in chunks)
    assert "Paris" in text, text
    assert last.done_reason == "stop" and last.eval_count and last.prompt_eval_count, last


def test_num_predict_ends_with_length(client: ollama.Client, qwen: str) -> None:
    response = client.chat(model=qwen, messages=[{"role": "user", "content": "Count from 1 to 50."}], options={"temperature": 0, "num_predict": 3})
    assert response.done_reason == "length" and response.eval_count == 3, response


def test_generate_and_continue_from_its_context(client: ollama.Client, qwen: str) -> None:
    first = client.generate(model=qwen, prompt="What is the capital of France? Answer in one word.", options=GREEDY)
    assert "Paris" in first.response, first
    assert first.done and first.context and all(isinstance(t, int) for t in first.context), first
    follow = client.generate(model=qwen, prompt="And of Italy? One word.", context=first.context, options=GREEDY)
    assert "Rome" in follow.response, follow
    assert len(follow.context) > len(first.context)
    streamed = "".join(c.response for c in client.generate(model=qwen, prompt="What is the capital of France? Answer in one word.", options=GREEDY, stream=True))
    assert streamed == first.response


def test_format_schema_gives_a_parsable_answer(client: ollama.Client, qwen: str) -> None:
    response = client.chat(
        model=qwen,
        messages=[{"role": "user", "content": "Extract the person's name and age: Alice is 31 years old."}],
        format=Person.model_json_schema(),
        options={"temperature": 0, "num_predict": 32},
    )
    assert Person.model_validate_json(response.message.content) == Person(name="Alice", age=31)


def get_weather(city: str) -> str:
    """The current weather in a city.

    Args:
      city: The name of the city, e.g. London
    """
    return "sunny"


def test_tools_give_a_call_with_object_arguments(client: ollama.Client, qwen: str) -> None:
    response = client.chat(
        model=qwen,
        messages=[{"role": "user", "content": "What is the weather in Tokyo right now?"}],
        tools=[get_weather],
        options={"temperature": 0, "num_predict": 48},
    )
    calls = response.message.tool_calls
    assert calls and len(calls) == 1, response.message
    assert calls[0].function.name == "get_weather"
    assert "tokyo" in str(calls[0].function.arguments.get("city", "")).lower(), calls[0].function


def test_unknown_model_is_a_404_in_ollamas_shape(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as raised:
        client.chat(model="no-such-model", messages=CAPITAL)
    assert raised.value.status_code == 404
    assert "no-such-model" in raised.value.error and "not found" in raised.value.error


# --- embeddings ------------------------------------------------------------------------------


def test_embed_gives_normalized_vectors_that_rank_meaning(client: ollama.Client, minilm: str) -> None:
    texts = ["The cat sits on the mat.", "A kitten rests on a rug.", "Stock markets fell sharply today."]
    response = client.embed(model=minilm, input=texts)
    vectors = response.embeddings
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    for v in vectors:
        assert math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-3)
    dot = lambda a, b: math.fsum(x * y for x, y in zip(a, b))  # noqa: E731
    assert dot(vectors[0], vectors[1]) > dot(vectors[0], vectors[2]) + 0.2
    assert response.prompt_eval_count and response.prompt_eval_count >= 15, response
    legacy = client.embeddings(model=minilm, prompt=texts[0])
    # The legacy route does not normalize, as Ollama's; the direction is the same.
    norm = math.sqrt(math.fsum(x * x for x in legacy.embedding))
    assert dot([x / norm for x in legacy.embedding], vectors[0]) > 0.999


def test_embed_on_qwen_coder_itself(client: ollama.Client, qwen: str) -> None:
    """As in Ollama, the chat model embeds too (its side context, last-token pooling): unit
    vectors of its hidden size, the same text twice the same vector, and chat still works."""
    texts = ["def add(a, b): return a + b", "def add(a, b): return a + b", "The weather in Paris is mild."]
    response = client.embed(model=qwen, input=texts)
    vectors = response.embeddings
    assert len(vectors) == 3 and all(len(v) == 896 for v in vectors), [len(v) for v in vectors]
    for v in vectors:
        assert math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-3)
    dot = lambda a, b: math.fsum(x * y for x, y in zip(a, b))  # noqa: E731
    assert dot(vectors[0], vectors[1]) > 0.999
    assert dot(vectors[0], vectors[2]) < 0.99
    answer = client.generate(model=qwen, prompt="Say hi.", options={"num_predict": 3, "temperature": 0})
    assert answer.response


# --- pull, copy, delete ----------------------------------------------------------------------


def test_pull_from_the_hub_then_chat_copy_and_delete(client: ollama.Client, server: dict, hub: FakeHub) -> None:
    name = f"hf.co/{HUB_REPO}:Q8_0"
    progress = list(client.pull(name, stream=True))
    statuses = [p.status for p in progress]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success", statuses
    # The imitation's ETag is git-style, not a SHA-256 (as the hub's for a small non-LFS
    # file): the lines carry no digest then, only the bytes.
    downloads = [p for p in progress if p.total]
    assert downloads[0].status.startswith("pulling "), progress
    assert "verifying size" in statuses and "verifying sha256 digest" not in statuses, statuses
    assert downloads and downloads[-1].completed == downloads[-1].total == len(hub.content), downloads[-1]
    assert f"GET /{HUB_REPO}/resolve/main/tiny-Q8_0.gguf" in hub.requests, hub.requests

    names = [m.model for m in client.list().models]
    assert name in names, names
    shown = client.show(name)
    # What the file is, whatever its name says (the testkit model is F32).
    assert shown.details.format == "gguf" and shown.details.quantization_level == "F32", shown.details
    assert shown.details.family == "llama", shown.details
    reply = client.chat(model=name, messages=[{"role": "user", "content": "hi"}], options={"num_predict": 4})
    assert reply.done and reply.eval_count, reply

    # The pull is saved for the next start; so is a copy.
    saved = tomllib.loads((server["data_dir"] / "models.toml").read_text())
    assert any(m.get("id") == name for m in saved["models"]), saved
    assert client.copy(name, "tiny-copy").status == "success"
    assert "tiny-copy:latest" in [m.model for m in client.list().models]

    assert client.delete("tiny-copy").status == "success"
    assert client.delete(name).status == "success"
    names = [m.model for m in client.list().models]
    assert name not in names and "tiny-copy:latest" not in names, names
    saved = tomllib.loads((server["data_dir"] / "models.toml").read_text())
    assert not [m for m in saved.get("models", []) if m.get("id") in (name, "tiny-copy")], saved
    with pytest.raises(ollama.ResponseError) as raised:
        client.delete(name)
    assert raised.value.status_code == 404


def test_pull_of_a_missing_quantization_says_what_there_is(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as raised:
        client.pull(f"hf.co/{HUB_REPO}:Q2_K")
    assert "Q8_0" in raised.value.error, raised.value.error


def test_a_served_model_is_not_deleted(client: ollama.Client, qwen: str) -> None:
    with pytest.raises(ollama.ResponseError) as raised:
        client.delete(qwen)
    assert raised.value.status_code == 400 and "--model" in raised.value.error, raised.value.error


def test_the_main_port_serves_the_same_api(server: dict, qwen: str) -> None:
    main = ollama.Client(host=server["base_url"], timeout=TIMEOUT_S)
    assert qwen in [m.model for m in main.list().models]
    assert main.ps().models
