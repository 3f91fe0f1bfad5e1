"""`chorus mcp` (MCP over stdio) driven by the official MCP Python SDK, as Claude Desktop and
other MCP clients launch it: bridged to a running server (`--url`), and with the model embedded
in the process when no server runs.

Each test starts `chorus mcp` with the SDK's `stdio_client` and talks to it through a
`ClientSession`: initialize, tools/list, tools/call `chat` (with progress), resources/read,
prompts/get, and errors coming back as errors. One uses the SDK's default `mcp.Client`, which
opens with `server/discover` for protocol 2026-07-28: the bridge offers the versions its session
with the server speaks (those with `initialize`), so that client falls back to `initialize` and
does what every client does (`exercise_mcp_client`, as test_mcp.py does over HTTP).
"""

from __future__ import annotations

import os
import socket
import subprocess
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import anyio
import pytest
from mcp import Client, ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from conftest import MCP_TOOLS as TOOLS
from conftest import REPO_ROOT, _repo_path, exercise_mcp_client, session_with_an_exchange


def _binary() -> str:
    binary = _repo_path(os.environ.get("CHORUS_BIN", "target/debug/chorus"))
    if not binary.is_file():
        pytest.fail(f"chorus binary not found at {binary} (build it or set CHORUS_BIN)")
    return str(binary)


@asynccontextmanager
async def mcp_session(args: list[str], errlog_path: Path) -> AsyncIterator[ClientSession]:
    """`chorus mcp ARGS` over stdio, initialized. Its stderr goes to `errlog_path`."""
    params = StdioServerParameters(command=_binary(), args=["mcp", *args], cwd=str(REPO_ROOT))
    with open(errlog_path, "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            async with ClientSession(read, write) as session:
                result = await session.initialize()
                assert result.server_info.name == "chorus"
                assert result.capabilities.tools is not None
                assert result.capabilities.resources is not None
                assert result.capabilities.prompts is not None
                yield session


def _text(result) -> str:
    return "".join(c.text for c in result.content if c.type == "text")


async def _exercise(session: ClientSession, model_id: str) -> None:
    """What every stdio client does: list and call tools, read a resource, get a prompt."""
    tools = await session.list_tools()
    assert TOOLS <= {t.name for t in tools.tools}

    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    result = await session.call_tool(
        "chat",
        {"prompt": "Say something.", "max_tokens": 16, "seed": 7, "temperature": 0},
        progress_callback=on_progress,
    )
    assert not result.is_error, _text(result)
    assert _text(result).strip(), "chat returned no text"
    assert progress, "no progress notification came through the bridge"
    assert progress == sorted(progress), f"progress went backwards: {progress}"

    models = await session.read_resource(f"chorus://models/{model_id}")
    assert models.contents and model_id in models.contents[0].text

    prompts = await session.list_prompts()
    assert prompts.prompts, "no agent prompts"
    prompt = await session.get_prompt(prompts.prompts[0].name)
    assert prompt.messages and prompt.messages[0].content.text


def test_bridge_to_a_running_server(chorus_server: str, model_id: str, tmp_path: Path) -> None:
    async def main() -> None:
        async with mcp_session(["--url", chorus_server], tmp_path / "mcp.stderr") as session:
            await _exercise(session, model_id)

            with pytest.raises(MCPError):
                await session.read_resource("chorus://sessions/no-such-session")
            with pytest.raises(MCPError):
                await session.get_prompt("no-such-agent")
            unknown = None
            try:
                unknown = await session.call_tool("no_such_tool", {})
            except MCPError:
                pass
            assert unknown is None or unknown.is_error

    anyio.run(main)


def test_the_sdks_default_client(chorus_server: str, model_id: str, tmp_path: Path) -> None:
    session_id = session_with_an_exchange(chorus_server)
    params = StdioServerParameters(command=_binary(), args=["mcp", "--url", chorus_server], cwd=str(REPO_ROOT))

    async def main() -> None:
        with open(tmp_path / "mcp.stderr", "w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=120) as client:
                assert client.protocol_version < "2026-07-28", "the bridge offers what its HTTP session speaks"
                await exercise_mcp_client(client, model_id, session_id)

    anyio.run(main)


def test_cancelling_a_chat_call_frees_the_server(chorus_server: str, tmp_path: Path) -> None:
    """A `tools/call` cancelled at its first progress notification crosses the bridge as
    `notifications/cancelled`; the session and the server go on answering."""

    async def main() -> None:
        async with mcp_session(["--url", chorus_server], tmp_path / "mcp.stderr") as session:
            with anyio.CancelScope() as scope:

                async def on_progress(value: float, total: float | None, message: str | None) -> None:
                    scope.cancel()

                await session.call_tool(
                    "chat", {"prompt": "Write a long story.", "max_tokens": 100000}, progress_callback=on_progress
                )
            assert scope.cancelled_caught, "the long chat call finished before it was cancelled"
            result = await session.call_tool("chat", {"prompt": "Hi", "max_tokens": 4})
            assert not result.is_error, _text(result)

    anyio.run(main)


def _default_port_free() -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", 4096)) != 0


def test_embedded_when_no_server_runs(chorus_model: Path, model_id: str, tmp_path: Path) -> None:
    assert _default_port_free(), "something listens on 127.0.0.1:4096, the default URL; stop it to test embedded mode"
    args = [
        "--model", str(chorus_model),
        "--ctx-size", "8192",
        "--database-url", f"sqlite://{tmp_path / 'chorus.db'}",
    ]
    errlog = tmp_path / "mcp.stderr"

    async def main() -> None:
        async with mcp_session(args, errlog) as session:
            await _exercise(session, model_id)

    anyio.run(main)
    assert "embedded mode" in errlog.read_text()


def test_unreachable_url_says_what_to_do() -> None:
    done = subprocess.run(
        [_binary(), "mcp", "--url", "http://127.0.0.1:9"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == "", "stdout belongs to MCP messages"
    assert "chorus serve" in done.stderr, done.stderr
