//! Embeddings through llama.cpp: the testkit's tiny random-weight llama model loaded as an
//! embedding model (`embeddings`, a pooling), so its pooled hidden states come back as
//! vectors. Checks the vectors' size and length, that batching changes nothing, that token ids
//! and text agree, the input limit and truncation, the poolings themselves, and that such a
//! model refuses generation.
//!
//! The testkit's vocabulary gives every byte the token id of its value and learns merges from
//! English prose only, so the text `Zq!Xj~` is six byte tokens.

use std::sync::Arc;

use chorus_engine::embed::{EmbedRequest, EmbeddingInput, Embeddings};
use chorus_engine::{Backend, BackendError, GenerateRequest, Metrics, Prompt, Serves};
use chorus_llama::{LlamaBackend, LlamaConfig, LlamaError, Pooling};
use chorus_testkit::ModelSpec;

/// Six byte tokens (see the module docs).
const BYTES: &str = "Zq!Xj~";

fn config(pooling: Option<Pooling>, n_batch: u32) -> LlamaConfig {
    let mut config = LlamaConfig::new(chorus_testkit::tiny_model_path());
    config.embeddings = true;
    config.pooling = pooling;
    config.n_batch = n_batch;
    config.n_parallel = 4;
    config.n_threads = 2;
    config.n_threads_batch = 2;
    config
}

fn load(pooling: Pooling, n_batch: u32) -> LlamaBackend {
    LlamaBackend::load(&config(Some(pooling), n_batch), Arc::new(Metrics::new())).unwrap()
}

fn text(t: &str) -> EmbeddingInput {
    EmbeddingInput::Text(t.to_owned())
}

fn ids(t: &str) -> Vec<u32> {
    t.bytes().map(u32::from).collect()
}

fn embed(backend: &LlamaBackend, inputs: Vec<EmbeddingInput>, truncate: bool) -> Result<Embeddings, BackendError> {
    backend.embed(EmbedRequest { inputs, truncate })?.blocking_recv().expect("the model thread answers")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn norm(v: &[f32]) -> f64 {
    v.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt()
}

#[test]
fn an_embedding_model_serves_embeddings_only() {
    let backend = load(Pooling::Mean, 2048);
    let info = backend.info();
    assert_eq!(info.serves, Serves::EMBEDDINGS);
    assert_eq!(info.n_embd, 64);
    assert_eq!(backend.embedding_limit(), 2048, "the batch, the slot and the training context are 2048");

    let request = GenerateRequest::new(Prompt::Text("hello".into())).validate(info).unwrap();
    let unsupported = |e: BackendError| matches!(e, BackendError::Unsupported { what: "completions", .. });
    assert!(unsupported(backend.prompt_tokens(&request).unwrap_err()));
    assert!(unsupported(backend.generate(request).err().unwrap()));
}

#[test]
fn a_generative_model_embeds_through_its_side_context_and_still_generates() {
    let mut config = config(None, 2048);
    config.embeddings = false;
    let backend = LlamaBackend::load(&config, Arc::new(Metrics::new())).unwrap();
    assert_eq!(backend.info().serves, Serves { generation: true, embeddings: true });
    let out = embed(&backend, vec![text("hello"), text("hello"), text("goodbye, moon")], false).unwrap();
    assert_eq!(out.vectors.len(), 3);
    assert!(out.vectors.iter().all(|v| v.len() == backend.info().n_embd as usize));
    let norm: f32 = out.vectors[0].iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    assert_eq!(out.vectors[0], out.vectors[1], "the same text, the same vector");
    assert_ne!(out.vectors[0], out.vectors[2]);
    // Over the side context's one batch: refused unless truncated.
    let long = EmbeddingInput::Text("word ".repeat(3000));
    assert!(matches!(embed(&backend, vec![long.clone()], false), Err(BackendError::InputTooLong { .. })));
    assert_eq!(embed(&backend, vec![long], true).unwrap().prompt_tokens, 2048);
    let request = GenerateRequest::new(Prompt::Text("hello".into()));
    let request = GenerateRequest { max_tokens: Some(2), ..request }.validate(backend.info()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let done = runtime.block_on(backend.generate(request).unwrap().collect()).unwrap();
    assert_eq!(done.usage.completion_tokens, 2);
}

#[test]
fn vectors_have_n_embd_floats_of_unit_length() {
    let backend = load(Pooling::Mean, 2048);
    let out = embed(&backend, vec![text("Hello world"), text("The capital of France is Paris.")], false).unwrap();
    assert_eq!(out.vectors.len(), 2);
    for v in &out.vectors {
        assert_eq!(v.len(), 64);
        assert!((norm(v) - 1.0).abs() < 1e-5, "norm {}", norm(v));
    }
    assert!(max_diff(&out.vectors[0], &out.vectors[1]) > 1e-2, "different texts, different vectors");
    let alone: u32 = ["Hello world", "The capital of France is Paris."]
        .iter()
        .map(|t| embed(&backend, vec![text(t)], false).unwrap().prompt_tokens)
        .sum();
    assert_eq!(out.prompt_tokens, alone);
}

/// Seven inputs on 4 sequences a decode (so two decodes), and two requests queued together:
/// each vector is the one its input gets alone. Also with `--no-kv-unified`, which an
/// embedding model ignores (llama.cpp would split its sequences across micro-batches).
#[test]
fn a_batch_equals_each_input_embedded_alone() {
    for kv_unified in [true, false] {
        let mut config = config(Some(Pooling::Mean), 2048);
        config.kv_unified = kv_unified;
        batch_equals_alone(&LlamaBackend::load(&config, Arc::new(Metrics::new())).unwrap());
    }
}

fn batch_equals_alone(backend: &LlamaBackend) {
    let texts = [
        "Hello world",
        "The cat sat on the mat and looked at the garden.",
        "a",
        BYTES,
        "What is the weather like today? It is sunny and warm, with a light wind from the west.",
        "Thank you for asking.",
        "Hello world",
    ];
    let alone: Vec<Vec<f32>> =
        texts.iter().map(|t| embed(backend, vec![text(t)], false).unwrap().vectors.remove(0)).collect();
    let batch = embed(backend, texts.iter().map(|t| text(t)).collect(), false).unwrap();
    assert_eq!(batch.vectors.len(), texts.len());
    for (i, (a, b)) in alone.iter().zip(&batch.vectors).enumerate() {
        assert!(max_diff(a, b) < 1e-4, "input {i}: {}", max_diff(a, b));
    }

    // Two requests waiting together share decodes and still get their own vectors, in order.
    let first = backend.embed(EmbedRequest { inputs: vec![text(texts[1]), text(texts[2])], truncate: false }).unwrap();
    let second = backend.embed(EmbedRequest { inputs: vec![text(texts[4])], truncate: false }).unwrap();
    let (first, second) = (first.blocking_recv().unwrap().unwrap(), second.blocking_recv().unwrap().unwrap());
    assert!(max_diff(&first.vectors[0], &alone[1]) < 1e-4);
    assert!(max_diff(&first.vectors[1], &alone[2]) < 1e-4);
    assert!(max_diff(&second.vectors[0], &alone[4]) < 1e-4);
}

#[test]
fn token_ids_embed_as_their_text() {
    let backend = load(Pooling::Mean, 2048);
    let im_end = ModelSpec::vocab_size() - 1;
    let mut with_special = ids("Zq");
    with_special.push(im_end);
    let out = embed(
        &backend,
        vec![
            text(BYTES),
            EmbeddingInput::Tokens(ids(BYTES)),
            // Special tokens in text are parsed, as llama-server does for embeddings.
            text("Zq<|im_end|>"),
            EmbeddingInput::Tokens(with_special),
        ],
        false,
    )
    .unwrap();
    assert_eq!(out.prompt_tokens, 6 + 6 + 3 + 3, "the texts are the tokens given");
    assert!(max_diff(&out.vectors[0], &out.vectors[1]) < 1e-6);
    assert!(max_diff(&out.vectors[2], &out.vectors[3]) < 1e-6);
    assert!(max_diff(&out.vectors[0], &out.vectors[2]) > 1e-2);

    let outside = EmbeddingInput::Tokens(vec![1, ModelSpec::vocab_size()]);
    match embed(&backend, vec![text("ok"), outside], false) {
        Err(BackendError::InvalidPrompt(message)) => assert!(message.contains("input 1"), "{message}"),
        other => panic!("expected InvalidPrompt, got {other:?}"),
    }
}

/// With `--batch-size 32` an input holds at most 32 tokens (one micro-batch): a longer one is
/// refused, or with `truncate` cut to its first 32.
#[test]
fn inputs_over_the_limit_are_refused_or_truncated() {
    let backend = load(Pooling::Mean, 32);
    assert_eq!(backend.embedding_limit(), 32);
    let long = BYTES.repeat(8); // 48 byte tokens
    match embed(&backend, vec![text("short"), text(&long)], false) {
        Err(BackendError::InputTooLong { index: 1, n_tokens: 48, limit: 32 }) => {}
        other => panic!("expected InputTooLong, got {other:?}"),
    }
    match embed(&backend, vec![EmbeddingInput::Tokens(ids(&long))], false) {
        Err(BackendError::InputTooLong { index: 0, n_tokens: 48, limit: 32 }) => {}
        other => panic!("expected InputTooLong, got {other:?}"),
    }

    let cut = embed(&backend, vec![text(&long), EmbeddingInput::Tokens(ids(&long))], true).unwrap();
    assert_eq!(cut.prompt_tokens, 64, "both cut to 32 tokens");
    let prefix = embed(&backend, vec![EmbeddingInput::Tokens(ids(&long[..32]))], false).unwrap();
    assert!(max_diff(&cut.vectors[0], &prefix.vectors[0]) < 1e-4);
    assert!(max_diff(&cut.vectors[1], &prefix.vectors[0]) < 1e-4);
    // Several full-length inputs still go through (one per decode).
    let full = embed(&backend, vec![text(&long[..32]), text(&long[..32]), text("x")], false).unwrap();
    assert!(max_diff(&full.vectors[0], &prefix.vectors[0]) < 1e-4);
    assert!(max_diff(&full.vectors[1], &prefix.vectors[0]) < 1e-4);
}

/// The pooling is llama.cpp's: in a causal model the first token sees only itself, so an
/// input's `cls` vector is the `last` (and the `mean`) vector of its first token alone; and
/// the poolings differ on a longer input.
#[test]
fn the_pooling_is_applied() {
    let (mean, cls, last) = (load(Pooling::Mean, 2048), load(Pooling::Cls, 2048), load(Pooling::Last, 2048));
    let one = |b: &LlamaBackend, t: &str| embed(b, vec![text(t)], false).unwrap().vectors.remove(0);
    let first = one(&cls, BYTES);
    assert!(max_diff(&first, &one(&last, "Z")) < 1e-4);
    assert!(max_diff(&first, &one(&mean, "Z")) < 1e-4);
    let (m, l) = (one(&mean, BYTES), one(&last, BYTES));
    assert!(max_diff(&first, &m) > 1e-2);
    assert!(max_diff(&first, &l) > 1e-2);
    assert!(max_diff(&m, &l) > 1e-2);
}

/// `none` gives a vector per token and `rank` a reranker's score: neither is an embedding per
/// input, so loading refuses them, as it refuses a model with no pooling at all.
#[test]
fn poolings_without_one_vector_per_input_are_refused() {
    for pooling in [None, Some(Pooling::None), Some(Pooling::Rank)] {
        match LlamaBackend::load(&config(pooling, 2048), Arc::new(Metrics::new())) {
            Err(LlamaError::Embeddings { reason, .. }) => assert!(reason.contains("--pooling"), "{reason}"),
            other => panic!("{pooling:?}: expected LlamaError::Embeddings, got {other:?}"),
        }
    }
}
