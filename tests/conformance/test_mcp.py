"""chorus's MCP server at `/mcp` (streamable HTTP) driven by the official MCP Python SDK
(`mcp`), as an MCP client such as Claude Desktop talks to it: initialize, list and call the tools
(`chat` answers with the model's text, reporting progress), read the resources (a session made
through the native API, with its transcript, and a model), list and get the prompts (the agents'
system prompts), and errors coming back as errors.

Most tests use the SDK's handshake mode (`initialize`, protocol 2025-11-25 and earlier); one uses
its default `auto` mode, which discovers the server's newest protocol (2026-07-28, stateless), and
does what every client does (`exercise_mcp_client`, as test_mcp_stdio.py does over stdio).
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

import anyio
import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from conftest import INVALID_PARAMS, RESOURCE_NOT_FOUND, exercise_mcp_client, native, session_with_an_exchange
from conftest import MCP_TOOLS as TOOLS


def _run(chorus_server: str, body: Callable[[Client], Awaitable[None]], mode: str = "legacy") -> None:
    """Run `body` with an initialized client of the server's `/mcp`."""

    async def main() -> None:
        async with Client(chorus_server + "/mcp", mode=mode, read_timeout_seconds=120) as client:
            await body(client)

    anyio.run(main)


def _text(result: Any) -> str:
    return "".join(c.text for c in result.content if c.type == "text")


def test_initialize_and_list_tools(chorus_server: str) -> None:
    async def body(client: Client) -> None:
        assert client.server_info is not None and client.server_info.name == "chorus"
        assert client.server_info.version
        capabilities = client.server_capabilities
        assert capabilities.tools is not None
        assert capabilities.resources is not None
        assert capabilities.prompts is not None
        assert client.instructions and "session_prompt" in client.instructions

        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        chat = tools["chat"]
        assert chat.description
        assert chat.input_schema["type"] == "object"
        assert chat.input_schema["required"] == ["prompt"]
        assert {"prompt", "system", "model", "temperature", "top_p", "max_tokens", "seed"} <= set(
            chat.input_schema["properties"]
        )
        assert chat.annotations is not None and chat.annotations.read_only_hint is True
        assert chat.output_schema is not None
        session_prompt = tools["session_prompt"]
        assert session_prompt.annotations is not None and session_prompt.annotations.read_only_hint is False
        assert tools["list_sessions"].annotations.read_only_hint is True

    _run(chorus_server, body)


def test_chat_returns_the_models_text_with_progress(chorus_server: str, model_id: str) -> None:
    async def body(client: Client) -> None:
        progress: list[tuple[float, float | None]] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append((value, total))

        result = await client.call_tool(
            "chat",
            {"prompt": "Tell me about the sea.", "system": "Be brief.", "max_tokens": 16, "temperature": 0},
            progress_callback=on_progress,
        )
        assert not result.is_error, _text(result)
        assert result.content[0].type == "text" and result.content[0].text.strip()
        structured = result.structured_content
        assert structured["text"] == result.content[0].text
        assert structured["model"] == model_id
        assert structured["finish_reason"] == "length"
        assert structured["usage"]["completion_tokens"] == 16
        assert progress, "no notifications/progress during generation"
        values = [v for v, _ in progress]
        assert values == sorted(values) and len(set(values)) == len(values), values
        assert all(total == 16 for _, total in progress)

        # Greedy sampling: the same call gives the same text.
        again = await client.call_tool(
            "chat", {"prompt": "Tell me about the sea.", "system": "Be brief.", "max_tokens": 16, "temperature": 0}
        )
        assert _text(again) == result.content[0].text

    _run(chorus_server, body)


def test_bad_arguments_and_unknown_tools_are_errors(chorus_server: str) -> None:
    async def body(client: Client) -> None:
        result = await client.call_tool("chat", {"prompt": "hi", "temperature": 3})
        assert result.is_error and "temperature" in _text(result)
        result = await client.call_tool("chat", {"prompt": "hi", "model": "no-such-model"})
        assert result.is_error and "no-such-model" in _text(result)
        result = await client.call_tool("chat", {"prompt": "  "})
        assert result.is_error
        # Arguments that do not parse (a misspelt or missing field) are tool errors too.
        result = await client.call_tool("chat", {"prompt": "hi", "temprature": 1})
        assert result.is_error and "temprature" in _text(result)
        result = await client.call_tool("chat", {"max_tokens": 4})
        assert result.is_error and "prompt" in _text(result)
        with pytest.raises(MCPError):
            await client.call_tool("no_such_tool", {})

    _run(chorus_server, body)


def test_session_prompt_starts_and_continues_a_session(chorus_server: str) -> None:
    async def body(client: Client) -> None:
        first = await client.call_tool("session_prompt", {"prompt": "Remember the word blue.", "max_tokens": 4})
        assert not first.is_error, _text(first)
        session_id = first.structured_content["session_id"]
        assert session_id.startswith("ses_")
        assert first.content[0].text == first.structured_content["text"]
        assert session_id in first.content[1].text, "the session id reaches a client that reads only text"

        second = await client.call_tool(
            "session_prompt", {"prompt": "Which word?", "session_id": session_id, "max_tokens": 4}
        )
        assert not second.is_error, _text(second)
        assert second.structured_content["session_id"] == session_id

        listed = await client.call_tool("list_sessions", {})
        sessions = {s["id"]: s for s in listed.structured_content["sessions"]}
        assert sessions[session_id]["message_count"] == 4
        assert sessions[session_id]["uri"] == f"chorus://sessions/{session_id}"
        # The JSON is the text content too.
        assert json.loads(_text(listed)) == listed.structured_content

        missing = await client.call_tool("session_prompt", {"prompt": "x", "session_id": "ses_missing"})
        assert missing.is_error and "not found" in _text(missing)

    _run(chorus_server, body)


def test_resources_list_and_read_sessions_and_models(chorus_server: str, model_id: str) -> None:
    session = native(chorus_server, "POST", "/api/v1/sessions", {"title": "MCP resources"})
    answer = native(
        chorus_server,
        "POST",
        f"/api/v1/sessions/{session['id']}/prompt",
        {"content": "Hello from the native API", "max_tokens": 4},
    )
    session_uri = f"chorus://sessions/{session['id']}"
    model_uri = f"chorus://models/{model_id}"

    async def body(client: Client) -> None:
        resources = {r.uri: r for r in (await client.list_resources()).resources}
        assert session_uri in resources and model_uri in resources
        assert resources[session_uri].name == "MCP resources"
        assert resources[session_uri].mime_type == "application/json"
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert templates == {"chorus://sessions/{id}", "chorus://models/{id}"}

        read = await client.read_resource(session_uri)
        assert len(read.contents) == 1 and read.contents[0].uri == session_uri
        transcript = json.loads(read.contents[0].text)
        assert transcript["session"]["id"] == session["id"]
        assert transcript["session"]["title"] == "MCP resources"
        assert [m["role"] for m in transcript["messages"]] == ["user", "assistant"]
        assert transcript["messages"][0]["content"] == "Hello from the native API"
        assert transcript["messages"][1]["content"] == answer["content"]

        read = await client.read_resource(model_uri)
        model = json.loads(read.contents[0].text)
        assert model["id"] == model_id and model["n_ctx"] > 0 and model["uri"] == model_uri

        models = await client.call_tool("list_models", {})
        assert [m["id"] for m in models.structured_content["models"]] == [model_id]

    _run(chorus_server, body)


def test_unknown_resources_are_not_found(chorus_server: str) -> None:
    async def body(client: Client) -> None:
        for uri in ["chorus://sessions/ses_missing", "chorus://models/no-such-model", "file:///etc/passwd"]:
            with pytest.raises(MCPError) as raised:
                await client.read_resource(uri)
            assert raised.value.code == RESOURCE_NOT_FOUND, uri

    _run(chorus_server, body)


def test_prompts_are_the_agents_system_prompts(chorus_server: str) -> None:
    agents = native(chorus_server, "GET", "/api/v1/agents")["data"]

    async def body(client: Client) -> None:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        assert set(prompts) == {a["name"] for a in agents}
        for agent in agents:
            assert prompts[agent["name"]].description
            got = await client.get_prompt(agent["name"])
            assert len(got.messages) == 1
            message = got.messages[0]
            assert message.role == "user"
            assert message.content.type == "text" and message.content.text == agent["system_prompt"]
        with pytest.raises(MCPError) as raised:
            await client.get_prompt("no-such-agent")
        assert raised.value.code == INVALID_PARAMS

    _run(chorus_server, body)


def test_a_client_of_the_newest_protocol(chorus_server: str, model_id: str) -> None:
    """The SDK's default mode discovers the newest protocol the server speaks (2026-07-28) and
    uses it: every result carries the `resultType` that version requires."""
    session_id = session_with_an_exchange(chorus_server)

    async def body(client: Client) -> None:
        assert client.protocol_version >= "2026-07-28"
        await exercise_mcp_client(client, model_id, session_id)
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        result = await client.call_tool(
            "chat", {"prompt": "Hello", "max_tokens": 8, "temperature": 0}, progress_callback=on_progress
        )
        assert not result.is_error and _text(result).strip()
        assert progress

    _run(chorus_server, body, mode="auto")


def test_foreign_host_and_origin_are_refused(chorus_server: str) -> None:
    """DNS-rebinding protection: a loopback server answers 403 to another Host or Origin."""
    port = chorus_server.rsplit(":", 1)[1]
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"accept": "application/json, text/event-stream"}
    url = chorus_server + "/mcp"
    evil = httpx.post(url, json=initialize, headers={**headers, "host": "evil.example.com"})
    assert evil.status_code == 403
    assert evil.json()["error"]["code"] == "permission_denied"
    evil = httpx.post(url, json=initialize, headers={**headers, "origin": "http://evil.example.com"})
    assert evil.status_code == 403
    ok = httpx.post(url, json=initialize, headers={**headers, "origin": f"http://localhost:{port}"})
    assert ok.status_code == 200
    session = ok.headers.get("mcp-session-id")
    if session:
        httpx.delete(url, headers={"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"})
