"""The official clients on real models, asserting on what the model really answers.

- qwen-coder (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, ``CHORUS_QWEN_CODER``), served at default
  flags: a forced tool call and a structured answer parsed into pydantic models by the strict
  `openai` SDK, and the MCP SDK's default `mcp.Client` over HTTP (`/mcp`) and over stdio
  (`chorus mcp --url`), whose `chat` tool answers a real question.
- gemma (Gemma 3 270M base, no chat template, ``CHORUS_GEMMA``): `/v1/completions` continues
  a prompt with real text; chat is refused with a 400 that names the fix.

One server per model for the module. The fixtures come from `scripts/models.sh` (set by
`scripts/test.sh`); without one its tests skip, except under CI, where they fail
(`conftest.real_model`). Real models are slow on a small machine: prompts are short,
`max_tokens` small, sampling greedy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import anyio
import httpx
import openai
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from pydantic import BaseModel, Field
from typing_extensions import Literal

from conftest import (
    REPO_ROOT,
    chorus_binary,
    exercise_mcp_client,
    mcp_text,
    native,
    openai_client,
    real_model,
    session_with_an_exchange,
    start_server,
)
from test_openai_sdk import StreamedCompletion

# A real model on a loaded 2-core machine: minutes, not seconds, are the worst case.
TIMEOUT_S = 600.0


class GetWeather(BaseModel):
    """The current weather in a city."""

    city: str = Field(description="The name of the city, e.g. London")
    unit: Literal["celsius", "fahrenheit"] = Field(description="The temperature unit")


class Person(BaseModel):
    name: str
    age: int


# --- qwen-coder ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def qwen_model() -> Path:
    return real_model("CHORUS_QWEN_CODER")


@pytest.fixture(scope="module")
def qwen_id(qwen_model: Path) -> str:
    return qwen_model.stem


@pytest.fixture(scope="module")
def qwen_server(qwen_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`chorus serve` on qwen-coder at its default flags (context, slots, threads)."""
    with start_server(qwen_model, [], tmp_path_factory.mktemp("qwen-server")) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def qwen(qwen_server: str) -> Iterator[openai.OpenAI]:
    c = openai_client(qwen_server, timeout=TIMEOUT_S)
    yield c
    c.close()


def _weather_call(completion, city: str) -> GetWeather:
    """The one parsed `get_weather` call of `completion`, checked to name `city`."""
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1, choice.message
    call = calls[0]
    assert call.type == "function" and call.id
    assert call.function.name == "GetWeather"
    parsed = call.function.parsed_arguments
    assert isinstance(parsed, GetWeather), call.function
    assert GetWeather.model_validate_json(call.function.arguments) == parsed
    assert city.lower() in parsed.city.lower(), f"asked about {city}, the call says {parsed!r}"
    return parsed


def _note(i: int) -> str:
    """A user message of about 250 tokens, different for every `i` from its first words on."""
    place = ["harbour", "orchard", "library", "station"][i % 4]
    days = " ".join(
        f"On day {i * 10 + j} at the {place} we counted {3 * i + j} crates and {7 * i + 2 * j} gulls." for j in range(12)
    )
    return f"Note {i} is about the {place}. {days} Reply with one short sentence about this note."


def test_prompt_cache_key_resumes_a_conversation_whose_slot_was_taken(
    qwen_model: Path, qwen_id: str, tmp_path: Path
) -> None:
    """One slot, two conversations taking turns: each resumes its history from the RAM
    cache, and the SDK's own `prompt_cache_key` and `cached_tokens` carry it."""
    with start_server(qwen_model, ["--parallel", "1"], tmp_path) as base_url:
        client = openai_client(base_url, timeout=TIMEOUT_S)
        history = {i: [{"role": "user", "content": _note(i)}] for i in (0, 1)}
        first = {}
        for rnd in range(2):
            for i in (0, 1):
                completion = client.chat.completions.create(
                    model=qwen_id, messages=history[i], max_tokens=16, temperature=0,
                    prompt_cache_key=f"conversation-{i}",
                )
                usage = completion.usage
                assert usage is not None and usage.prompt_tokens_details is not None
                cached = usage.prompt_tokens_details.cached_tokens
                if rnd == 0:
                    first[i] = usage
                else:
                    # The other conversation held the one slot in between: the history came
                    # back from RAM, all of it but the tokens after the previous answer.
                    assert cached >= first[i].prompt_tokens + first[i].completion_tokens - 2, (i, usage)
                answer = completion.choices[0].message.content
                assert answer
                history[i] += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And then?"}]
        client.close()


def test_forced_tool_call_names_the_city_asked_about(qwen: openai.OpenAI, qwen_id: str) -> None:
    completion = qwen.chat.completions.parse(
        model=qwen_id,
        messages=[{"role": "user", "content": "What is the weather in Tokyo right now, in celsius?"}],
        tools=[openai.pydantic_function_tool(GetWeather)],
        tool_choice={"type": "function", "function": {"name": "GetWeather"}},
        temperature=0,
        max_tokens=48,
    )
    assert completion.model == qwen_id
    parsed = _weather_call(completion, "Tokyo")
    assert parsed.unit == "celsius", parsed


def test_streamed_forced_tool_call_names_the_city_asked_about(qwen: openai.OpenAI, qwen_id: str) -> None:
    with qwen.chat.completions.stream(
        model=qwen_id,
        messages=[{"role": "user", "content": "How warm is it in Berlin today?"}],
        tools=[openai.pydantic_function_tool(GetWeather)],
        tool_choice={"type": "function", "function": {"name": "GetWeather"}},
        temperature=0,
        max_tokens=48,
    ) as stream:
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in kinds, kinds
    _weather_call(final, "Berlin")


def test_structured_answer_extracts_name_and_age(qwen: openai.OpenAI, qwen_id: str) -> None:
    completion = qwen.chat.completions.parse(
        model=qwen_id,
        messages=[{"role": "user", "content": "Extract the person's name and age: Alice is 31 years old."}],
        response_format=Person,
        temperature=0,
        max_tokens=32,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop", choice
    person = choice.message.parsed
    assert isinstance(person, Person), choice.message
    assert person == Person(name="Alice", age=31), choice.message.content


CAPITAL_QUESTION = {"prompt": "What is the capital of France? Answer in one word.", "max_tokens": 8, "temperature": 0}


async def _mcp_client_on_a_real_model(client: Client, model_id: str, session_id: str) -> None:
    """What every MCP client does (`exercise_mcp_client`), then a real question to `chat`."""
    await exercise_mcp_client(client, model_id, session_id)
    result = await client.call_tool("chat", CAPITAL_QUESTION)
    assert not result.is_error, mcp_text(result)
    assert "Paris" in mcp_text(result), mcp_text(result)
    assert result.structured_content["text"] == mcp_text(result)
    assert result.structured_content["model"] == model_id


def test_completion_suffix_fills_the_gap(qwen: openai.OpenAI, qwen_id: str) -> None:
    """OpenAI's `suffix` on the code model: the completion is what goes between prompt and
    suffix (prompted with its fill-in-the-middle tokens)."""
    resp = qwen.completions.create(
        model=qwen_id,
        prompt="def add(a, b):\n    return ",
        suffix="\n\nprint(add(1, 2))\n",
        max_tokens=8,
        temperature=0,
        logprobs=1,
    )
    assert resp.choices[0].text.startswith("a + b"), resp.choices[0].text
    lp = resp.choices[0].logprobs
    assert lp is not None and "".join(lp.tokens) == resp.choices[0].text


def test_echo_with_logprobs_scores_a_true_sentence_above_a_false_one(qwen_server: str) -> None:
    """Scoring as lm-evaluation-harness does (`echo`, `logprobs`, `max_tokens: 0`): the real
    model finds " Paris" likely after "The capital of France is", and " Berlin" not."""

    def last_logprob(text: str) -> float:
        body = {"prompt": text, "echo": True, "logprobs": 1, "max_tokens": 0}
        answer = httpx.post(qwen_server + "/v1/completions", json=body, timeout=120).json()
        lp = answer["choices"][0]["logprobs"]
        assert "".join(lp["tokens"]) == text and answer["choices"][0]["text"] == text, answer
        return lp["token_logprobs"][-1]

    paris, berlin = last_logprob("The capital of France is Paris"), last_logprob("The capital of France is Berlin")
    assert paris > -1.0 and berlin < paris - 3.0, (paris, berlin)


def test_infill_with_input_extra_completes_the_call_as_llama_vscode_asks(qwen_server: str) -> None:
    """llama.vscode's `/infill` request (llama.cpp's own server test `test_with_qwen_model`, on
    the 0.5B model here): the other file's declaration is what the model completes the call
    with, and the answer is the code at the cursor."""
    body = {
        "input_extra": [{"filename": "llama.h", "text": "LLAMA_API int32_t llama_n_threads();\n"}],
        "input_prefix": '#include <cstdio>\n#include "llama.h"\n\nint main() {\n',
        "prompt": "    int n_threads = llama_",
        "input_suffix": "}\n",
        "n_predict": 12,
        "temperature": 0,
        "samplers": ["top_k", "top_p", "infill"],
        "cache_prompt": True,
    }
    answer = native(qwen_server, "POST", "/infill", body)
    assert answer["content"].startswith("n_threads();"), answer["content"]
    assert answer["stop"] is True and answer["tokens_predicted"] <= 12
    without = native(qwen_server, "POST", "/infill", {**body, "input_extra": []})
    # The file's tokens are in the prompt: the same request without it is shorter.
    assert answer["tokens_evaluated"] > without["tokens_evaluated"] + 10, (answer, without)
    bad = httpx.post(qwen_server + "/infill", json={**body, "input_extra": [{"filename": "x"}]}, timeout=60)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input_extra[0]", bad.text


def test_mcp_client_over_http(qwen_server: str, qwen_id: str) -> None:
    session_id = session_with_an_exchange(qwen_server)

    async def main() -> None:
        async with Client(qwen_server + "/mcp", read_timeout_seconds=TIMEOUT_S) as client:
            await _mcp_client_on_a_real_model(client, qwen_id, session_id)

    anyio.run(main)


def test_mcp_client_over_stdio(qwen_server: str, qwen_id: str, tmp_path: Path) -> None:
    session_id = session_with_an_exchange(qwen_server)
    params = StdioServerParameters(
        command=str(chorus_binary()), args=["mcp", "--url", qwen_server], cwd=str(REPO_ROOT)
    )

    async def main() -> None:
        with open(tmp_path / "mcp.stderr", "w") as errlog:
            async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=TIMEOUT_S) as client:
                await _mcp_client_on_a_real_model(client, qwen_id, session_id)

    anyio.run(main)


# --- gemma (a base model) --------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma_model() -> Path:
    return real_model("CHORUS_GEMMA")


@pytest.fixture(scope="module")
def gemma_id(gemma_model: Path) -> str:
    return gemma_model.stem


@pytest.fixture(scope="module")
def gemma(gemma_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    """The openai SDK on `chorus serve` on gemma at its default flags."""
    with start_server(gemma_model, [], tmp_path_factory.mktemp("gemma-server")) as base_url:
        c = openai_client(base_url, timeout=TIMEOUT_S)
        yield c
        c.close()


def test_base_model_completes_a_prompt(gemma: openai.OpenAI, gemma_id: str) -> None:
    # (Greedy, "The capital of France is" goes on " the capital of the country of France.")
    completion = gemma.completions.create(
        model=gemma_id, prompt="The capital of France is the city of", temperature=0, max_tokens=8
    )
    assert completion.model == gemma_id
    choice = completion.choices[0]
    assert "Paris" in choice.text, choice.text
    assert choice.finish_reason in {"stop", "length"}
    assert completion.usage is not None and 0 < completion.usage.completion_tokens <= 8


def test_base_model_streams_a_continuation(gemma: openai.OpenAI, gemma_id: str) -> None:
    # Through `post` with the chunk type OpenAI streams (see test_openai_sdk.StreamedCompletion).
    stream = gemma.post(
        "/completions",
        body={"model": gemma_id, "prompt": "1, 2, 3, 4, 5,", "temperature": 0, "max_tokens": 6, "stream": True},
        cast_to=StreamedCompletion,
        stream=True,
        stream_cls=openai.Stream[StreamedCompletion],
    )
    chunks = list(stream)
    assert len(chunks) >= 2 and all(c.model == gemma_id for c in chunks)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text.startswith(" 6, 7"), repr(text)


def test_base_model_refuses_chat_naming_the_fix(gemma: openai.OpenAI, gemma_id: str) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        gemma.chat.completions.create(
            model=gemma_id, messages=[{"role": "user", "content": "Hello"}], max_tokens=4
        )
    error = raised.value
    assert error.status_code == 400
    assert error.param == "messages"
    message = str(error.message)
    assert "no chat template" in message, message
    assert "/v1/completions" in message and "--chat-template" in message, message
