//! all-MiniLM-L6-v2 through [`BertEmbedder`]: sentence-transformers' own vectors, batching,
//! the input limit and truncation, token-id inputs, what the model reports, shutdown.

use chorus_embed::{BertEmbedder, EmbedError, Pooling};
use chorus_engine::{Backend, BackendError, ChatMessage, EmbeddingInput, GenerateRequest, Prompt, Role, Serves};

use crate::{cosine, embed, fixture, max_diff, model, reference, text};

/// Agreement with sentence-transformers (torch) asked of every vector.
const MIN_COSINE: f64 = 0.999;
/// Agreement asked of the same input embedded two ways here (alone or in a padded batch, as
/// text or as its token ids): only float rounding may differ.
const SAME: f32 = 1e-5;

#[test]
fn every_reference_vector_matches_sentence_transformers() {
    let Some(m) = model() else { return };
    let r = reference();
    let got = embed(m, r.items.iter().map(|i| text(&i.text)).collect(), true).unwrap();
    assert_eq!(got.vectors.len(), r.items.len());
    let mut worst = f64::MAX;
    let mut worst_diff = 0f32;
    for (i, (item, v)) in r.items.iter().zip(&got.vectors).enumerate() {
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "vector {i} has length {norm}");
        let c = cosine(v, &item.vector);
        worst_diff = worst_diff.max(max_diff(v, &item.vector));
        assert!(c >= MIN_COSINE, "input {i} ({:?}): cosine {c} with sentence-transformers' vector", item.text);
        // And it is nearer its own reference than any other sentence's.
        for (j, other) in r.items.iter().enumerate().filter(|(j, _)| *j != i) {
            let c_other = cosine(v, &other.vector);
            assert!(c_other < c - 0.05, "input {i} is as near input {j}'s vector ({c_other}) as its own ({c})");
        }
        worst = worst.min(c);
    }
    eprintln!(
        "over {} inputs: lowest cosine with sentence-transformers {worst:.9}, largest element difference {worst_diff:e}",
        r.items.len()
    );
    let tokens: usize = r.items.iter().map(|i| i.token_ids.len()).sum();
    assert_eq!(got.prompt_tokens as usize, tokens, "prompt_tokens counts the tokens after truncation");
}

#[test]
fn a_batch_of_many_inputs_equals_them_one_by_one_in_order() {
    let Some(m) = model() else { return };
    let r = reference();
    // 70 inputs of many lengths: three encoder batches, each padded.
    let mut inputs: Vec<String> = r.items.iter().map(|i| i.text.clone()).collect();
    for i in 0..62 {
        let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"];
        let n = 1 + (i * 7) % 40;
        inputs.push((0..n).map(|k| words[(i + k) % words.len()]).collect::<Vec<_>>().join(" "));
    }
    let batched = embed(m, inputs.iter().map(|s| text(s)).collect(), true).unwrap();
    assert_eq!(batched.vectors.len(), inputs.len());
    let mut tokens = 0;
    let mut worst = 0f32;
    for (i, s) in inputs.iter().enumerate() {
        let alone = embed(m, vec![text(s)], true).unwrap();
        tokens += alone.prompt_tokens;
        let d = max_diff(&batched.vectors[i], &alone.vectors[0]);
        assert!(d <= SAME, "input {i} ({s:?}) differs by {d} batched and alone");
        worst = worst.max(d);
    }
    eprintln!("largest element difference, batched vs one by one: {worst:e}");
    assert_eq!(batched.prompt_tokens, tokens);
    // The order is the inputs' own: the first two differ.
    assert!(cosine(&batched.vectors[0], &batched.vectors[1]) < 0.9);
}

#[test]
fn an_input_over_the_limit_is_refused_unless_truncated() {
    let Some(m) = model() else { return };
    let r = reference();
    let long = r.items.iter().find(|i| i.n_tokens_untruncated > r.max_seq_length).expect("a long reference input");
    assert_eq!(m.info().n_ctx as usize, r.max_seq_length);
    let inputs = vec![text("short"), text("also short"), text(&long.text)];

    let err = embed(m, inputs.clone(), false).unwrap_err();
    assert_eq!(err, BackendError::InputTooLong { index: 2, n_tokens: long.n_tokens_untruncated, limit: 256 });
    assert!(err.is_client_error());

    let got = embed(m, inputs, true).unwrap();
    let c = cosine(&got.vectors[2], &long.vector);
    eprintln!("truncated long input: cosine {c:.9} with sentence-transformers' (truncated at 256)");
    assert!(c >= MIN_COSINE, "truncated long input: cosine {c}");
    assert_eq!(got.prompt_tokens, 3 + 4 + 256, "[CLS] short [SEP], [CLS] also short [SEP], 256");

    // Token ids over the limit likewise.
    let ids = vec![1000u32; 300];
    let err = embed(m, vec![EmbeddingInput::Tokens(ids.clone())], false).unwrap_err();
    assert_eq!(err, BackendError::InputTooLong { index: 0, n_tokens: 300, limit: 256 });
    let cut = embed(m, vec![EmbeddingInput::Tokens(ids)], true).unwrap();
    assert_eq!(cut.prompt_tokens, 256);
}

#[test]
fn token_ids_give_the_vector_of_the_text_they_came_from() {
    let Some(m) = model() else { return };
    let r = reference();
    let as_text = embed(m, r.items.iter().map(|i| text(&i.text)).collect(), true).unwrap();
    let as_ids =
        embed(m, r.items.iter().map(|i| EmbeddingInput::Tokens(i.token_ids.clone())).collect(), false).unwrap();
    for (i, item) in r.items.iter().enumerate() {
        let d = max_diff(&as_text.vectors[i], &as_ids.vectors[i]);
        assert!(d <= SAME, "input {i} ({:?}): text and its token ids differ by {d}", item.text);
        assert!(cosine(&as_ids.vectors[i], &item.vector) >= MIN_COSINE);
    }
    assert_eq!(as_text.prompt_tokens, as_ids.prompt_tokens, "the text tokenizes to sentence-transformers' ids");
}

#[test]
fn token_ids_outside_the_vocabulary_are_refused() {
    let Some(m) = model() else { return };
    let inputs = vec![EmbeddingInput::Tokens(vec![101, 7592, 102]), EmbeddingInput::Tokens(vec![101, 30522, 102])];
    match embed(m, inputs, false) {
        Err(BackendError::InvalidPrompt(message)) => {
            assert!(message.contains("input 1") && message.contains("30522"), "{message}");
        }
        other => panic!("expected InvalidPrompt, got {other:?}"),
    }
}

#[test]
fn the_model_describes_itself_and_serves_only_embeddings() {
    let Some(m) = model() else { return };
    let dir = fixture().expect("the fixture");
    let info = m.info();
    assert_eq!(info.serves, Serves::EMBEDDINGS);
    assert_eq!((info.n_embd, info.n_vocab, info.n_parallel), (384, 30522, 1));
    assert_eq!((info.n_ctx, info.n_ctx_slot, info.n_ctx_train), (256, 256, 512));
    assert_eq!(info.context_choice, "max_seq_length in sentence_bert_config.json");
    assert_eq!((info.architecture.as_str(), info.has_chat_template), ("bert", false));
    assert_eq!(info.path, dir);
    assert_eq!(info.size, std::fs::metadata(dir.join("model.safetensors")).unwrap().len());
    // 22.7 million f32 parameters; the file holds them and little else.
    assert!((22_000_000..23_000_000).contains(&info.n_params), "{} parameters", info.n_params);
    assert_eq!(m.memory_bytes(), info.n_params * 4);
    assert!(m.memory_bytes().abs_diff(info.size) < 1_000_000);
    assert_eq!(m.pooling(), Pooling::Mean);

    // Validation itself refuses chat for a model without a template; a request validated for
    // one that has it still meets the backend's refusal.
    let with_template = chorus_engine::ModelInfo { has_chat_template: true, ..info.clone() };
    let chat =
        GenerateRequest::new(Prompt::Chat(vec![ChatMessage::new(Role::User, "hi")])).validate(&with_template).unwrap();
    let unsupported = |what| BackendError::Unsupported { model: "all-minilm-l6-v2".into(), what };
    assert_eq!(m.prompt_tokens(&chat).unwrap_err(), unsupported("chat completions"));
    assert_eq!(m.generate(chat).err(), Some(unsupported("chat completions")));
    let text = GenerateRequest::new(Prompt::Text("hi".into())).validate(info).unwrap();
    assert_eq!(m.generate(text).err(), Some(unsupported("completions")));
}

#[test]
fn dropping_the_embedder_ends_its_thread_with_requests_in_flight() {
    let Some(dir) = fixture() else { return };
    let m = BertEmbedder::load(&dir, "minilm".into()).unwrap();
    let long = reference().items.last().expect("items").text.clone();
    let replies: Vec<_> = (0..4)
        .map(|_| {
            let inputs = vec![EmbeddingInput::Text(long.clone()); 64];
            m.embed(chorus_engine::EmbedRequest { inputs, truncate: true }).unwrap()
        })
        .collect();
    drop(m); // Joins the thread: a hang here is the failure.
    // Whatever was not answered resolves as a closed channel, not a hang.
    for reply in replies {
        match reply.blocking_recv() {
            Ok(Ok(e)) => assert_eq!(e.vectors.len(), 64),
            Ok(Err(e)) => assert_eq!(e, BackendError::Unavailable),
            Err(_) => {}
        }
    }
}

#[test]
fn a_directory_without_its_config_is_refused_naming_the_file() {
    let Some(dir) = fixture() else { return };
    let copy = tempfile::tempdir().unwrap();
    for f in ["modules.json", "tokenizer.json", "sentence_bert_config.json"] {
        std::fs::copy(dir.join(f), copy.path().join(f)).unwrap();
    }
    let err = BertEmbedder::load(copy.path(), "broken".into()).err().expect("refused");
    assert!(matches!(err, EmbedError::Missing { .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("{}", copy.path().join("config.json").display())), "{err}");
}
