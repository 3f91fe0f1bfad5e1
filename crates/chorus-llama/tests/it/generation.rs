//! Generation through llama.cpp on the testkit's tiny model, as llama-server's native API needs
//! it: the sampled token ids (`return_tokens`), the worker's timings, a prompt of token ids,
//! and the vocabulary's tokenize/detokenize round trip.

use std::sync::Arc;

use chorus_engine::{Backend, Detail, GenerateRequest, GenerationEvent, Metrics, Prompt};
use chorus_llama::{LlamaBackend, LlamaConfig};
use futures::StreamExt;

fn load() -> LlamaBackend {
    let mut config = LlamaConfig::new(chorus_testkit::tiny_model_path());
    config.n_ctx = 1024;
    config.n_parallel = 2;
    config.n_threads = 2;
    config.n_threads_batch = 2;
    LlamaBackend::load(&config, Arc::new(Metrics::new())).unwrap()
}

#[tokio::test]
async fn tokens_come_with_the_text_they_make_and_the_worker_times_the_generation() {
    let backend = load();
    let mut request = GenerateRequest::new(Prompt::Text("Once upon a time".into()));
    request.max_tokens = Some(12);
    request.sampling.temperature = 0.0;
    request.sampling.ignore_eos = true;
    request.return_tokens = true;
    let valid = request.validate(backend.info()).unwrap();
    let mut stream = backend.generate(valid).unwrap();
    let (mut text, mut ids, mut done) = (String::new(), Vec::new(), None);
    while let Some(event) = stream.next().await {
        match event {
            GenerationEvent::Text(t) => text.push_str(&t),
            GenerationEvent::Detail(Detail::Token(t)) => ids.push(t.id),
            GenerationEvent::Done { usage, .. } => done = Some(usage),
            other => panic!("{other:?}"),
        }
    }
    let usage = done.unwrap();
    assert_eq!(ids.len(), 12);
    assert_eq!(usage.completion_tokens, 12);
    assert_eq!(backend.detokenize(&ids).unwrap(), text, "the tokens spell the text");
    assert!(usage.prompt_ms > 0.0 && usage.predicted_ms > 0.0, "{usage:?}");

    // Without return_tokens, no Token events; the same prompt as token ids answers the same.
    let prompt: Vec<i32> = backend.tokenize("Once upon a time", true, true).unwrap().iter().map(|t| t.id).collect();
    let mut request = GenerateRequest::new(Prompt::Tokens(prompt));
    request.max_tokens = Some(12);
    request.sampling.temperature = 0.0;
    request.sampling.ignore_eos = true;
    let answer = backend.generate(request.validate(backend.info()).unwrap()).unwrap().collect().await.unwrap();
    assert!(answer.tokens.is_empty());
    assert_eq!(answer.text, text);

    // Token ids outside the vocabulary are refused before anything is queued.
    let n_vocab = backend.info().n_vocab as i32;
    let err = GenerateRequest::new(Prompt::Tokens(vec![1, n_vocab])).validate(backend.info()).unwrap_err();
    assert_eq!(err.param, "prompt", "{err:?}");
    assert!(backend.detokenize(&[n_vocab]).is_err());
}

/// A greedy request of 10 tokens on `prompt`, as `n` choices.
fn greedy(backend: &LlamaBackend, prompt: &str) -> chorus_engine::ValidGenerateRequest {
    let mut request = GenerateRequest::new(Prompt::Text(prompt.into()));
    request.max_tokens = Some(10);
    request.sampling.temperature = 0.0;
    request.sampling.ignore_eos = true;
    request.validate(backend.info()).unwrap()
}

#[tokio::test]
async fn n_choices_decode_the_prompt_once_and_answer_as_one_request_would() {
    for kv_unified in [true, false] {
        let mut config = LlamaConfig::new(chorus_testkit::tiny_model_path());
        config.n_ctx = 1024;
        config.n_parallel = 3;
        config.kv_unified = kv_unified;
        config.n_threads = 2;
        config.n_threads_batch = 2;
        let metrics = Arc::new(Metrics::new());
        let backend = LlamaBackend::load(&config, Arc::clone(&metrics)).unwrap();
        let prompt = "The forks of one prompt share its cells";
        let alone = backend.generate(greedy(&backend, prompt)).unwrap().collect().await.unwrap();
        let before = metrics.prompt_tokens.get();

        // Another prompt, so no slot's cache holds this one's prefix: three choices on three
        // slots decode it once; the forks take its cells and answer exactly as it does.
        let other = "Something else entirely, to be answered three times over";
        let streams = backend.generate_choices(greedy(&backend, other), 3).unwrap();
        assert_eq!(streams.len(), 3);
        let n_prompt = streams[0].prompt_tokens();
        let answers = futures::future::join_all(streams.into_iter().map(|s| s.collect())).await;
        let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
        let cached = answers[0].usage.cached_tokens;
        assert_eq!(metrics.prompt_tokens.get() - before, u64::from(n_prompt - cached), "kv_unified {kv_unified}");
        for a in &answers {
            assert_eq!(a.usage.completion_tokens, 10);
            assert_eq!(a.usage.prompt_tokens, n_prompt);
            assert_eq!(a.text, answers[0].text, "kv_unified {kv_unified}: greedy choices agree");
        }
        // The copied cells are the prompt's: a fork of the first prompt answers as it did alone.
        let streams = backend.generate_choices(greedy(&backend, prompt), 2).unwrap();
        for s in streams {
            assert_eq!(s.collect().await.unwrap().text, alone.text, "kv_unified {kv_unified}");
        }

        // More choices than slots: the rest wait for one and compute the prompt themselves.
        let streams = backend.generate_choices(greedy(&backend, other), 5).unwrap();
        for s in streams {
            let a = s.collect().await.unwrap();
            assert_eq!(a.usage.completion_tokens, 10);
        }
    }
}
