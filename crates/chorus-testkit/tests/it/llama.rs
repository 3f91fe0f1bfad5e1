//! The written models in the real llama.cpp: loading, tokenizer, chat template, generation.

use std::collections::HashSet;

use chorus_testkit::{ModelSpec, WeightType, tiny_model_path, write_model};
use llama_cpp_2::sampling::LlamaSampler;

use crate::support::{generate, load, tokenize};

#[test]
fn tiny_model_loads_with_its_shape_and_vocabulary() {
    let spec = ModelSpec::tiny();
    let model = load(&tiny_model_path());
    assert_eq!(model.n_embd(), 64);
    assert_eq!(model.n_layer(), spec.n_layer);
    assert_eq!(model.n_head(), spec.n_head);
    assert_eq!(model.n_head_kv(), spec.n_head_kv);
    assert_eq!(model.n_ctx_train(), spec.n_ctx_train);
    assert_eq!(model.n_params(), spec.parameter_count());
    assert_eq!(model.n_vocab(), i32::try_from(ModelSpec::vocab_size()).expect("i32"));
    let vocab = model.vocab();
    assert!(!vocab.should_add_bos());
    assert_eq!(vocab.token_to_piece(vocab.bos(), true, None), b"<|endoftext|>");
    assert_eq!(vocab.token_to_piece(vocab.eos(), true, None), b"<|im_end|>");
    assert!(vocab.is_eog(vocab.eos()));
    assert!(vocab.is_control(vocab.eos()));
}

#[test]
fn text_tokenizes_into_multi_byte_tokens_and_round_trips() {
    let model = load(&tiny_model_path());
    let vocab = model.vocab();
    let text = "Hello world, the cat";
    let tokens = tokenize(&model, text);
    assert!(tokens.len() < text.len(), "merges must join bytes: {} tokens for {} bytes", tokens.len(), text.len());
    let pieces: Vec<Vec<u8>> = tokens.iter().map(|&t| vocab.token_to_piece(t, false, None)).collect();
    assert!(pieces.iter().any(|p| p == b" the"), "{pieces:?}");
    assert!(pieces.iter().any(|p| p.len() >= 3), "{pieces:?}");
    assert_eq!(vocab.detokenize(&tokens, false, false), text.as_bytes());

    // Bytes outside the training text still round-trip through the byte tokens.
    let unusual = "Zürich ☃ \u{1F600}\ttabs\n";
    assert_eq!(vocab.detokenize(&tokenize(&model, unusual), false, false), unusual.as_bytes());
}

#[test]
fn chatml_special_tokens_parse_as_single_tokens() {
    let model = load(&tiny_model_path());
    let vocab = model.vocab();
    let tokens = tokenize(&model, "<|im_start|>user\nHi<|im_end|>");
    assert_eq!(vocab.token_to_piece(tokens[0], true, None), b"<|im_start|>");
    assert_eq!(tokens.last().copied(), Some(vocab.eos()));
    // Not parsed as special when asked not to.
    let plain = vocab.tokenize(b"<|im_end|>", false, false);
    assert!(plain.len() > 1);
}

#[test]
fn chat_template_metadata_is_present() {
    let model = load(&tiny_model_path());
    let template = model.chat_template(None).expect("template present");
    let template = template.to_str().expect("utf-8");
    assert!(template.contains("<|im_start|>"), "{template}");
    assert!(template.contains("add_generation_prompt"), "{template}");
}

#[test]
fn greedy_generation_produces_varied_tokens_deterministically() {
    let model = load(&tiny_model_path());
    let prompt = tokenize(&model, "<|im_start|>user\nHello world, the cat<|im_end|>\n<|im_start|>assistant\n");
    let first = generate(&model, &prompt, LlamaSampler::greedy(), 24);
    assert_eq!(first.len(), 24);
    let distinct: HashSet<_> = first.iter().collect();
    assert!(distinct.len() >= 4, "degenerate output: {first:?}");
    let second = generate(&model, &prompt, LlamaSampler::greedy(), 24);
    assert_eq!(first, second, "greedy decoding is deterministic");
}

#[test]
fn sampling_seeds_give_different_texts() {
    let model = load(&tiny_model_path());
    let prompt = tokenize(&model, "The weather today");
    let sample = |seed| {
        let sampler = LlamaSampler::chain_simple([LlamaSampler::temp(1.0), LlamaSampler::dist(seed)]);
        generate(&model, &prompt, sampler, 16)
    };
    let (a, b) = (sample(1), sample(2));
    assert_ne!(a, b);
    assert_eq!(a, sample(1), "the same seed repeats");
}

#[test]
fn f16_model_loads_and_generates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny-f16.gguf");
    write_model(&ModelSpec { dtype: WeightType::F16, ..ModelSpec::tiny() }, &path).expect("write");
    let model = load(&path);
    let prompt = tokenize(&model, "Hello world");
    let out = generate(&model, &prompt, LlamaSampler::greedy(), 8);
    assert_eq!(out.len(), 8);
}
