"""The official `openai` SDK's `embeddings.create` against chorus serving the real `minilm`
fixture (sentence-transformers all-MiniLM-L6-v2, ``CHORUS_MINILM``, a directory), compared
with the vectors sentence-transformers itself computed
(crates/chorus-embed/tests/data/minilm_reference.json, made by make_reference.py next to it).

The SDK asks for `encoding_format: base64` by default and decodes it itself after parsing, so
its strict response validation (which wants floats before that decoding, and fails on
OpenAI's own base64 answers too) is off for that client; `float` is checked strictly.
Without the fixture the tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterator

import openai
import pytest

from conftest import openai_client, start_server

REFERENCE = Path(__file__).resolve().parents[2] / "crates/chorus-embed/tests/data/minilm_reference.json"


def minilm_dir() -> Path:
    configured = os.environ.get("CHORUS_MINILM")
    path = Path(configured) if configured else None
    if path is not None and (path / "config.json").is_file():
        return path
    why = f"CHORUS_MINILM={configured} is not a model directory" if configured else "CHORUS_MINILM is not set"
    if os.environ.get("CI"):
        pytest.fail(f"{why}: under CI the real-model fixtures must be there (scripts/test.sh sets them)")
    pytest.skip(f"{why} (scripts/models.sh minilm prints its path)")


@pytest.fixture(scope="module")
def minilm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = minilm_dir()
    with start_server(model, [], tmp_path_factory.mktemp("minilm-server")) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def minilm(minilm_url: str) -> Iterator[openai.OpenAI]:
    """Strict validation: for `float` answers and errors."""
    c = openai_client(minilm_url, timeout=120)
    yield c
    c.close()


@pytest.fixture(scope="module")
def minilm_default(minilm_url: str) -> Iterator[openai.OpenAI]:
    """The SDK as users get it: base64 by default, decoded by the SDK."""
    c = openai.OpenAI(base_url=minilm_url + "/v1", api_key="unused", max_retries=0, timeout=120)
    yield c
    c.close()


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.mark.parametrize("encoding_format", ["base64", "float"])
def test_embeddings_match_sentence_transformers(
    minilm: openai.OpenAI, minilm_default: openai.OpenAI, encoding_format: str
) -> None:
    items = [i for i in json.loads(REFERENCE.read_text())["items"] if i["n_tokens_untruncated"] <= 256]
    texts = [i["text"] for i in items]
    if encoding_format == "float":
        result = minilm.embeddings.create(model="all-minilm-l6-v2", input=texts, encoding_format="float")
    else:
        result = minilm_default.embeddings.create(model="all-minilm-l6-v2", input=texts)
    assert result.object == "list" and result.model == "all-minilm-l6-v2"
    assert result.usage.prompt_tokens == sum(len(i["token_ids"]) for i in items)
    assert [d.index for d in result.data] == list(range(len(items)))
    for item, data in zip(items, result.data):
        assert len(data.embedding) == 384
        assert cosine(data.embedding, item["vector"]) >= 0.999, item["text"]


def test_dimensions_and_errors(minilm: openai.OpenAI) -> None:
    short = minilm.embeddings.create(
        model="all-minilm-l6-v2", input="hello there", dimensions=128, encoding_format="float"
    )
    v = short.data[0].embedding
    assert len(v) == 128 and abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4
    with pytest.raises(openai.BadRequestError) as e:
        minilm.embeddings.create(model="all-minilm-l6-v2", input="x", dimensions=1000)
    assert e.value.body["param"] == "dimensions"
    with pytest.raises(openai.BadRequestError) as e:
        minilm.embeddings.create(model="all-minilm-l6-v2", input="word " * 400)
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.NotFoundError):
        minilm.embeddings.create(model="no-such-model", input="x")
