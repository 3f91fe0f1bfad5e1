"""`GET /openapi.json` is a valid OpenAPI document that describes the real server.

The document is generated from the wire types and the handlers (utoipa), so these tests check
two things: that `openapi-spec-validator` accepts it (OpenAPI 3.1, every `$ref` resolving), and
that what the server really sends validates against the schemas the document gives (OpenAPI
3.1 schemas are JSON Schema 2020-12, checked with `jsonschema`): plain and streamed chat
completions, completions, models, health, sessions, messages, session events and errors.
The requests sent are validated against the request schemas too.
"""

from __future__ import annotations

import json
from typing import Iterator

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

MESSAGES = [{"role": "user", "content": "Say something."}]


@pytest.fixture(scope="module")
def http(chorus_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=chorus_server, timeout=120.0) as c:
        yield c


@pytest.fixture(scope="module")
def spec(http: httpx.Client) -> dict:
    r = http.get("/openapi.json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def check(spec: dict, schema_name: str, instance) -> None:
    """Validates `instance` against `#/components/schemas/{schema_name}` of the document."""
    assert schema_name in spec["components"]["schemas"], f"no schema {schema_name}"
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/components/schemas/{schema_name}",
        "components": spec["components"],
    }
    jsonschema.Draft202012Validator(schema).validate(instance)


def sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The `data:` payloads of a server-sent event stream, in order."""
    for line in lines:
        if line.startswith("data:"):
            yield line[len("data:"):].strip()


def test_the_document_is_valid_openapi_3_1(spec: dict) -> None:
    assert spec["openapi"].startswith("3.1.")
    validate(spec)
    assert spec["info"]["title"] == "chorus"
    assert spec["info"]["version"]


def test_the_document_lists_every_route(spec: dict) -> None:
    want = {
        "/v1/chat/completions": {"post"},
        "/v1/completions": {"post"},
        "/v1/models": {"get"},
        "/v1/models/{id}": {"get"},
        "/health": {"get"},
        "/api/v1/health": {"get"},
        "/metrics": {"get"},
        "/openapi.json": {"get"},
        "/api/v1/info": {"get"},
        "/api/v1/agents": {"get"},
        "/api/v1/agents/{name}": {"get"},
        "/api/v1/sessions": {"get", "post"},
        "/api/v1/sessions/{id}": {"get", "delete"},
        "/api/v1/sessions/{id}/messages": {"get"},
        "/api/v1/sessions/{id}/prompt": {"post"},
        "/api/v1/sessions/{id}/cancel": {"post"},
        "/api/v1/sessions/{id}/clear": {"post"},
        "/api/v1/sessions/{id}/events": {"get"},
        "/api/v1/events": {"get"},
        "/api/v1/tools": {"get"},
        "/api/v1/tools/{name}/execute": {"post"},
        "/api/v1/sessions/{id}/permissions/{request_id}": {"post"},
        "/request": {"post"},
        "/clear": {"post"},
    }
    for path, methods in want.items():
        assert path in spec["paths"], f"{path} is not documented"
        assert methods <= set(spec["paths"][path]), f"{path}: {sorted(spec['paths'][path])}"
    schemas = spec["components"]["schemas"]
    for name in ["ChatCompletionRequest", "ChatCompletion", "ChatCompletionChunk", "CompletionRequest",
                 "Completion", "ModelList", "ErrorResponse", "Health", "Session", "PromptRequest",
                 "Message", "Event"]:
        assert name in schemas, f"no schema {name}"


def test_streams_and_errors_are_documented(spec: dict) -> None:
    paths = spec["paths"]
    chat = paths["/v1/chat/completions"]["post"]
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    for status in ["400", "404", "500"]:
        body = chat["responses"][status]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/ErrorResponse"}, status
    prompt = paths["/api/v1/sessions/{id}/prompt"]["post"]
    assert {"200", "202", "400", "404", "409"} <= set(prompt["responses"])
    assert "text/event-stream" in prompt["responses"]["200"]["content"]
    assert prompt["parameters"][0]["name"] == "id" and prompt["parameters"][0]["in"] == "path"
    assert "text/event-stream" in paths["/api/v1/events"]["get"]["responses"]["200"]["content"]


def test_the_api_key_is_documented(spec: dict) -> None:
    assert spec["components"]["securitySchemes"]["api_key"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["api_key"]["description"],
    }
    assert spec["security"] == [{"api_key": []}]
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert "security" not in chat and "401" in chat["responses"]
    for path in ["/health", "/api/v1/health", "/openapi.json"]:
        get = spec["paths"][path]["get"]
        assert get["security"] == [{}], path
        assert "401" not in get["responses"], path


def test_openai_answers_match_their_schemas(spec: dict, http: httpx.Client) -> None:
    models = http.get("/v1/models").json()
    check(spec, "ModelList", models)
    check(spec, "Model", http.get(f"/v1/models/{models['data'][0]['id']}").json())

    request = {"messages": MESSAGES, "max_tokens": 4, "temperature": 0, "stop": ["\n\n"],
               "tool_choice": "none", "response_format": {"type": "text"}}
    check(spec, "ChatCompletionRequest", request)
    r = http.post("/v1/chat/completions", json=request)
    assert r.status_code == 200, r.text
    check(spec, "ChatCompletion", r.json())

    request = {"messages": MESSAGES, "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}}
    check(spec, "ChatCompletionRequest", request)
    with http.stream("POST", "/v1/chat/completions", json=request) as r:
        assert r.status_code == 200
        data = list(sse_data(r.iter_lines()))
    assert data[-1] == "[DONE]"
    assert len(data) >= 3
    for chunk in data[:-1]:
        check(spec, "ChatCompletionChunk", json.loads(chunk))

    request = {"prompt": ["Once", "upon"], "max_tokens": 3}
    check(spec, "CompletionRequest", request)
    r = http.post("/v1/completions", json=request)
    assert r.status_code == 200, r.text
    check(spec, "Completion", r.json())


def test_native_answers_match_their_schemas(spec: dict, http: httpx.Client) -> None:
    check(spec, "Health", http.get("/health").json())
    check(spec, "Info", http.get("/api/v1/info").json())
    check(spec, "AgentList", http.get("/api/v1/agents").json())
    check(spec, "ToolList", http.get("/api/v1/tools").json())

    body = {"title": "openapi"}
    check(spec, "CreateSessionRequest", body)
    r = http.post("/api/v1/sessions", json=body)
    assert r.status_code == 201, r.text
    session = r.json()
    check(spec, "Session", session)
    sid = session["id"]

    prompt = {"content": "Hello", "max_tokens": 3}
    check(spec, "PromptRequest", prompt)
    r = http.post(f"/api/v1/sessions/{sid}/prompt", json=prompt)
    assert r.status_code == 200, r.text
    check(spec, "Message", r.json())

    prompt = {"content": "Again", "max_tokens": 3, "stream": True}
    with http.stream("POST", f"/api/v1/sessions/{sid}/prompt", json=prompt) as r:
        assert r.status_code == 200
        events = [json.loads(d) for d in sse_data(r.iter_lines())]
    assert events and events[-1]["type"] == "message.complete"
    for event in events:
        check(spec, "Event", event)

    r = http.post(f"/api/v1/sessions/{sid}/prompt", json={"content": "Later", "max_tokens": 3, "async": True})
    assert r.status_code == 202, r.text
    check(spec, "PromptAccepted", r.json())

    check(spec, "MessageList", http.get(f"/api/v1/sessions/{sid}/messages").json())
    check(spec, "SessionList", http.get("/api/v1/sessions").json())
    check(spec, "CancelResult", http.post(f"/api/v1/sessions/{sid}/cancel").json())
    check(spec, "Deleted", http.delete(f"/api/v1/sessions/{sid}").json())


def test_errors_match_their_schema(spec: dict, http: httpx.Client) -> None:
    for method, path, body, status in [
        ("POST", "/v1/chat/completions", {"messages": "hello"}, 400),
        ("POST", "/v1/chat/completions", {"messages": MESSAGES, "model": "no-such-model"}, 404),
        ("GET", "/api/v1/sessions/ses_nope", None, 404),
        ("GET", "/api/v1/agents/nobody", None, 404),
    ]:
        r = http.request(method, path, json=body)
        assert r.status_code == status, (path, r.text)
        check(spec, "ErrorResponse", r.json())
