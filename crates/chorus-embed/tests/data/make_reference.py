#!/usr/bin/env python3
"""Reference embeddings for chorus-embed's tests, from sentence-transformers itself.

    python3 -m venv /tmp/st-venv && /tmp/st-venv/bin/pip install sentence-transformers
    /tmp/st-venv/bin/python3 crates/chorus-embed/tests/data/make_reference.py "$(scripts/models.sh minilm)"

Loads the all-MiniLM-L6-v2 directory with SentenceTransformer(path, device="cpu"), encodes the
sentences below with normalize_embeddings=True and the library's default truncation
(max_seq_length, 256 tokens), and writes minilm_reference.json next to this script: each
input, the token ids sentence-transformers fed the model (after truncation), how many tokens
the text has untruncated, and its vector; the library versions; and the command line.
"""

import json
import shlex
import sys
from pathlib import Path

import sentence_transformers
import tokenizers
import torch
import transformers
from sentence_transformers import SentenceTransformer

LONG = " ".join(
    f"Paragraph {i}: the committee reviewed the quarterly figures, noted that shipping costs rose "
    f"while demand for refurbished laptops stayed flat, and asked for a revised forecast."
    for i in range(1, 13)
)

SENTENCES = [
    "Hello!",
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password if I no longer have access to my email account?",
    "Crème brûlée, naïve café owners, and the Zürich Straße: déjà vu. 東京は雨です。 Привет, мир! 🚀🌍",
    "fn main() { let v: Vec<u32> = (0..10).map(|x| x * x).collect(); println!(\"{v:?}\"); }",
    "Embeddings map text to vectors so that texts with similar meanings end up close together, "
    "which makes semantic search, clustering and deduplication possible without keyword overlap.",
    "   Whitespace\tand\nnewlines   around words   ",
    LONG,
]


def main() -> None:
    model_dir = Path(sys.argv[1])
    out = Path(__file__).with_name("minilm_reference.json")
    model = SentenceTransformer(str(model_dir), device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True, convert_to_numpy=True, batch_size=32)
    fed = model.tokenize(SENTENCES)
    items = []
    for i, text in enumerate(SENTENCES):
        mask = fed["attention_mask"][i].tolist()
        ids = [t for t, m in zip(fed["input_ids"][i].tolist(), mask) if m == 1]
        untruncated = len(model.tokenizer(text, truncation=False)["input_ids"])
        items.append(
            {
                "text": text,
                "token_ids": ids,
                "n_tokens_untruncated": untruncated,
                "vector": [round(float(x), 8) for x in vectors[i]],
            }
        )
    doc = {
        "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
        "model": model_dir.name,
        "max_seq_length": model.max_seq_length,
        "versions": {
            "sentence_transformers": sentence_transformers.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
        },
        "items": items,
    }
    out.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(items)} vectors of {len(items[0]['vector'])} floats")


if __name__ == "__main__":
    main()
