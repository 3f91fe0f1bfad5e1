"""Tool calling and structured output through the official `openai` SDK, strict response
validation on: forced calls (`tool_choice` required or named) and `response_format` are
constrained by a grammar built from the JSON schema, so even the random-weight test model's
answers parse and validate. Schemas use enums, integers, booleans and bounded strings so a
random model cannot run past `max_tokens` inside an unbounded string.
"""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field
from typing_extensions import Literal

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
        "days": {"type": "integer"},
        "metric": {"type": "boolean"},
    },
    "required": ["city", "days", "metric"],
    "additionalProperties": False,
}


def weather_tool(name: str = "get_weather") -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": "The weather forecast for a city.",
            "parameters": WEATHER_PARAMETERS,
            "strict": True,
        },
    }


class Forecast(BaseModel):
    """Arguments of the forecast tool, and the shape of a structured answer."""

    city: Literal["Paris", "Rome", "Oslo"]
    days: int
    metric: bool
    note: str = Field(max_length=12)


def test_required_tool_call_validates_against_schema(client: openai.OpenAI, model_id: str) -> None:
    completion = client.chat.completions.create(
        model=model_id,
        messages=MESSAGES,
        tools=[weather_tool()],
        tool_choice="required",
        temperature=0,
        max_tokens=200,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].type == "function"
    assert calls[0].id
    assert calls[0].function.name == "get_weather"
    jsonschema.validate(json.loads(calls[0].function.arguments), WEATHER_PARAMETERS)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_named_tool_choice_calls_that_tool(client: openai.OpenAI, model_id: str, seed: int) -> None:
    completion = client.chat.completions.create(
        model=model_id,
        messages=MESSAGES,
        tools=[weather_tool("get_weather"), weather_tool("get_forecast")],
        tool_choice={"type": "function", "function": {"name": "get_forecast"}},
        temperature=1.0,
        seed=seed,
        max_tokens=200,
    )
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and [c.function.name for c in calls] == ["get_forecast"]
    jsonschema.validate(json.loads(calls[0].function.arguments), WEATHER_PARAMETERS)


def test_stream_strict_tool_get_final_completion(client: openai.OpenAI, model_id: str) -> None:
    tool = openai.pydantic_function_tool(Forecast, name="forecast")
    with client.chat.completions.stream(
        model=model_id,
        messages=MESSAGES,
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "forecast"}},
        temperature=0,
        max_tokens=200,
    ) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in kinds
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].function.name == "forecast"
    parsed = calls[0].function.parsed_arguments
    assert isinstance(parsed, Forecast)
    assert len(parsed.note) <= 12


def test_parse_response_format_pydantic(client: openai.OpenAI, model_id: str) -> None:
    completion = client.chat.completions.parse(
        model=model_id,
        messages=[{"role": "user", "content": "Give me the forecast as JSON."}],
        response_format=Forecast,
        temperature=0,
        max_tokens=200,
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "stop"
    assert isinstance(message.parsed, Forecast)
    assert Forecast.model_validate_json(message.content or "") == message.parsed


def test_json_object_answer_parses(client: openai.OpenAI, model_id: str) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False}
    completion = client.chat.completions.create(
        model=model_id,
        messages=[{"role": "user", "content": "JSON please."}],
        response_format={"type": "json_schema", "json_schema": {"name": "flag", "schema": schema, "strict": True}},
        temperature=0,
        max_tokens=100,
    )
    jsonschema.validate(json.loads(completion.choices[0].message.content or ""), schema)


def test_tool_result_round_trip(client: openai.OpenAI, model_id: str) -> None:
    """A conversation with an assistant call and its `role: tool` result is accepted and answered."""
    arguments = json.dumps({"city": "Oslo", "days": 2, "metric": True})
    completion = client.chat.completions.create(
        model=model_id,
        messages=[
            *MESSAGES,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 degrees."},
        ],
        tools=[weather_tool()],
        tool_choice="none",
        temperature=0,
        max_tokens=8,
    )
    choice = completion.choices[0]
    assert choice.message.tool_calls is None
    assert choice.finish_reason in {"stop", "length"}
    assert completion.usage is not None and completion.usage.prompt_tokens > 0


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [weather_tool()], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [weather_tool("bad name")]}, "tools"),
        ({"tool_choice": "sometimes", "tools": [weather_tool()]}, "tool_choice"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nowhere"}}}}, "response_format"),
    ],
)
def test_bad_tool_requests_are_400(client: openai.OpenAI, model_id: str, extra: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=model_id, messages=MESSAGES, max_tokens=4, **extra)
    body = info.value.body
    assert isinstance(body, dict)
    assert body.get("param") == param, body
