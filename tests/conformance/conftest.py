"""Fixtures that run the real `chorus serve` for the OpenAI SDK conformance tests.

Environment:
- ``CHORUS_BIN``: the chorus binary (default ``target/debug/chorus``; relative paths are
  taken from the repository root).
- ``CHORUS_TEST_MODEL``: a GGUF model to serve. When unset, the tiny deterministic
  random-weight model is written with ``cargo run -q -p chorus-testkit --bin chorus-testkit
  -- write --tiny PATH`` into a temporary directory.

- ``CHORUS_QWEN_CODER``, ``CHORUS_GEMMA``: the real-model fixtures of test_real_model.py
  (``scripts/models.sh qwen-coder gemma`` prints their paths; ``scripts/test.sh`` sets both).
  Without one its tests skip, except under CI (``CI`` set), where they fail (`real_model`).

`start_server` runs `chorus serve` on a given model with given flags, on ``--port 0``; its
base URL (no ``/v1``) is read from the single stdout line ``chorus listening on
http://127.0.0.1:PORT``. On exit it gets SIGTERM and must exit with status 0 within 30
seconds. The `chorus_server` fixture is one on the test model for the whole session;
test_real_model.py starts one per real model for its module.

`exercise_mcp_client` is what the MCP tests (test_mcp.py over HTTP, test_mcp_stdio.py over
`chorus mcp`) check with the MCP SDK's default client, whatever protocol version it negotiates.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import httpx
import openai
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

REPO_ROOT = Path(__file__).resolve().parents[2]

STARTUP_TIMEOUT_S = 120.0
SHUTDOWN_TIMEOUT_S = 30.0
MODEL_BUILD_TIMEOUT_S = 3600.0
LISTENING_RE = re.compile(r"^chorus listening on (http://127\.0\.0\.1:(\d+))$")


def _repo_path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else REPO_ROOT / path


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError as e:
        return f"<cannot read {path}: {e}>"


@pytest.fixture(scope="session")
def chorus_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the GGUF model the server serves; its file stem is the model id."""
    configured = os.environ.get("CHORUS_TEST_MODEL")
    if configured:
        path = _repo_path(configured)
        if not path.is_file():
            pytest.fail(f"CHORUS_TEST_MODEL={configured} is not a file")
        return path

    path = tmp_path_factory.mktemp("model") / "chorus-tiny.gguf"
    cmd = [
        "cargo", "run", "-q", "-p", "chorus-testkit", "--bin", "chorus-testkit",
        "--", "write", "--tiny", str(path),
    ]
    try:
        done = subprocess.run(
            cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=MODEL_BUILD_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(cmd)} did not finish within {MODEL_BUILD_TIMEOUT_S:.0f} s")
    if done.returncode != 0 or not path.is_file():
        pytest.fail(
            f"{' '.join(cmd)} exited with {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    return path


def real_model(var: str) -> Path:
    """The real-model fixture named by the environment variable `var`: its tests skip (with the
    reason) when it is not there, except under CI (`CI` set), where they fail."""
    configured = os.environ.get(var)
    path = _repo_path(configured) if configured else None
    if path is not None and path.is_file():
        return path
    why = f"{var}={configured} is not a file" if configured else f"{var} is not set"
    if os.environ.get("CI"):
        pytest.fail(f"{why}: under CI the real-model fixtures must be there (scripts/test.sh sets them)")
    pytest.skip(f"{why} (scripts/models.sh prints the fixture's path; scripts/test.sh sets it)")


@pytest.fixture(scope="session")
def model_id(chorus_model: Path) -> str:
    """The id the server advertises: the GGUF file stem (no --alias is passed)."""
    return chorus_model.stem


def _pump_stdout(stream, lines: "queue.Queue[str | None]") -> None:
    """Moves stdout lines into `lines` (None at EOF) so the pipe never fills up."""
    for line in stream:
        lines.put(line.rstrip("\r\n"))
    lines.put(None)


def chorus_binary() -> Path:
    """The chorus binary under test (``CHORUS_BIN``, default ``target/debug/chorus``)."""
    binary = _repo_path(os.environ.get("CHORUS_BIN", "target/debug/chorus"))
    if not binary.is_file():
        pytest.fail(f"chorus binary not found at {binary} (build it or set CHORUS_BIN)")
    return binary


@contextmanager
def start_server(
    model: Path, extra_args: Sequence[str], server_dir: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Runs `chorus serve --model MODEL EXTRA_ARGS` and yields its base URL, e.g.
    http://127.0.0.1:PORT. It listens on `--port 0`, keeps its session store and data dir in `server_dir`
    and opens no control socket, so a test run never touches the user's data dir or a server
    the user runs; its stderr goes to `server_dir/chorus-serve.stderr`; `env` is added to its
    environment. On exit it gets SIGTERM
    and must exit with status 0 within 30 seconds, having printed nothing on stdout but the
    listening line."""
    binary = chorus_binary()
    stderr_path = server_dir / "chorus-serve.stderr"
    cmd = [
        str(binary), "serve",
        "--model", str(model),
        "--port", "0",
        *extra_args,
        "--database-url", f"sqlite://{server_dir / 'chorus.db'}",
        "--data-dir", str(server_dir),
        "--no-control-socket",
    ]
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, **(env or {})},
        )
    lines: "queue.Queue[str | None]" = queue.Queue()
    pump = threading.Thread(target=_pump_stdout, args=(proc.stdout, lines), daemon=True)
    pump.start()

    def stop(sig: int) -> int | None:
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None

    base_url = None
    seen: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while base_url is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            stop(signal.SIGKILL)
            pytest.fail(
                f"no listening line within {STARTUP_TIMEOUT_S:.0f} s; stdout so far: {seen!r}\n"
                f"stderr tail:\n{_tail(stderr_path)}"
            )
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            continue
        if line is None:
            code = proc.wait()
            pytest.fail(
                f"`{' '.join(cmd)}` exited with {code} before listening; stdout: {seen!r}\n"
                f"stderr tail:\n{_tail(stderr_path)}"
            )
        seen.append(line)
        match = LISTENING_RE.match(line)
        if match:
            base_url = match.group(1)
        else:
            stop(signal.SIGKILL)
            pytest.fail(
                f"unexpected stdout line before the listening line: {line!r} "
                "(logs belong on stderr)"
            )

    try:
        yield base_url
    except BaseException:
        # The body failed: stop the server, but let its error be the one reported.
        stop(signal.SIGTERM)
        raise

    code = stop(signal.SIGTERM)
    if code is None:
        pytest.fail(
            f"chorus serve did not exit within {SHUTDOWN_TIMEOUT_S:.0f} s of SIGTERM (killed)\n"
            f"stderr tail:\n{_tail(stderr_path)}"
        )
    assert code == 0, f"chorus serve exited with {code} after SIGTERM\nstderr tail:\n{_tail(stderr_path)}"
    pump.join(timeout=5)
    extra = []
    while True:
        try:
            line = lines.get_nowait()
        except queue.Empty:
            break
        if line is not None:
            extra.append(line)
    assert not extra, f"chorus serve printed more than the listening line on stdout: {extra!r}"


@pytest.fixture(scope="session")
def chorus_server(chorus_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Runs `chorus serve` on the test model for the whole session and yields its base URL."""
    with start_server(
        chorus_model, ["--parallel", "4", "--ctx-size", "8192"], tmp_path_factory.mktemp("server")
    ) as base_url:
        yield base_url


def openai_client(base_url: str, timeout: float = 120.0) -> openai.OpenAI:
    """The official SDK on the server at `base_url` (no ``/v1``), with strict response
    validation: a field its pydantic models require, a wrong type or an unknown enum value
    fails the test."""
    return openai.OpenAI(
        base_url=base_url + "/v1",
        api_key="unused",
        _strict_response_validation=True,
        max_retries=0,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def client(chorus_server: str) -> Iterator[openai.OpenAI]:
    """`openai_client` on the session's server."""
    c = openai_client(chorus_server)
    yield c
    c.close()


MCP_TOOLS = {"chat", "session_prompt", "list_sessions", "list_models", "route"}
RESOURCE_NOT_FOUND = -32002
INVALID_PARAMS = -32602


def native(chorus_server: str, method: str, path: str, body: dict | None = None) -> Any:
    """A call of the server's native API (`/api/v1`), which must succeed; its JSON answer."""
    response = httpx.request(method, chorus_server + path, json=body, timeout=120)
    assert response.is_success, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


def session_with_an_exchange(chorus_server: str) -> str:
    """A session made through the native API with one prompt and its answer; its id."""
    session = native(chorus_server, "POST", "/api/v1/sessions", {"title": "MCP client"})
    native(chorus_server, "POST", f"/api/v1/sessions/{session['id']}/prompt", {"content": "Hello", "max_tokens": 4})
    return session["id"]


def mcp_text(result: Any) -> str:
    return "".join(c.text for c in result.content if c.type == "text")


async def exercise_mcp_client(client: Client, model_id: str, session_id: str) -> None:
    """What an MCP client does, with the official SDK's `mcp.Client` at whatever protocol version
    it negotiated (2026-07-28 results carry `resultType`, which the SDK requires then): the
    server's identity, tools/list, a `chat` call (the tool's text), a bad call (an error result),
    resources and resource templates (list and read; `session_id` is a session of the server),
    prompts (list and get)."""
    assert client.server_info is not None and client.server_info.name == "chorus"
    capabilities = client.server_capabilities
    assert capabilities.tools is not None
    assert capabilities.resources is not None
    assert capabilities.prompts is not None

    tools = {t.name for t in (await client.list_tools()).tools}
    assert tools == MCP_TOOLS

    result = await client.call_tool("chat", {"prompt": "Say something.", "max_tokens": 8, "temperature": 0})
    assert not result.is_error, mcp_text(result)
    assert result.content[0].type == "text" and result.content[0].text.strip()
    assert result.structured_content["text"] == result.content[0].text
    assert result.structured_content["model"] == model_id

    bad = await client.call_tool("chat", {"prompt": "hi", "temperature": 3})
    assert bad.is_error and "temperature" in mcp_text(bad)

    session_uri = f"chorus://sessions/{session_id}"
    model_uri = f"chorus://models/{model_id}"
    resources = {r.uri: r for r in (await client.list_resources()).resources}
    assert session_uri in resources and model_uri in resources
    assert resources[session_uri].mime_type == "application/json"
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert templates == {"chorus://sessions/{id}", "chorus://models/{id}"}
    read = await client.read_resource(session_uri)
    assert len(read.contents) == 1 and read.contents[0].uri == session_uri
    transcript = json.loads(read.contents[0].text)
    assert transcript["session"]["id"] == session_id
    assert [m["role"] for m in transcript["messages"]] == ["user", "assistant"]
    read = await client.read_resource(model_uri)
    assert json.loads(read.contents[0].text)["id"] == model_id
    with pytest.raises(MCPError) as raised:
        await client.read_resource("chorus://sessions/ses_missing")
    # Protocol 2026-07-28 answers an unknown resource with invalid params; earlier ones, -32002.
    expected = INVALID_PARAMS if client.protocol_version >= "2026-07-28" else RESOURCE_NOT_FOUND
    assert raised.value.code == expected

    prompts = (await client.list_prompts()).prompts
    assert prompts, "no agent prompts"
    got = await client.get_prompt(prompts[0].name)
    assert len(got.messages) == 1
    assert got.messages[0].content.type == "text" and got.messages[0].content.text
    with pytest.raises(MCPError) as raised:
        await client.get_prompt("no-such-agent")
    assert raised.value.code == INVALID_PARAMS
