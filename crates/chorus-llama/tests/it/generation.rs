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
