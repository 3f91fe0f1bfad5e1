//! The file itself: determinism, header, metadata and tensor layout as candle reads them back.

use std::fs;

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, VersionedMagic};
use chorus_testkit::{ModelSpec, WeightType, tiny_model_path, write_model};

#[test]
fn same_spec_gives_identical_bytes_and_another_seed_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (dir.path().join("a.gguf"), dir.path().join("b.gguf"), dir.path().join("c.gguf"));
    write_model(&ModelSpec::tiny(), &a).expect("write a");
    write_model(&ModelSpec::tiny(), &b).expect("write b");
    let other_seed = ModelSpec { seed: 7, ..ModelSpec::tiny() };
    write_model(&other_seed, &c).expect("write c");
    let (a, b, c) = (fs::read(a).expect("a"), fs::read(b).expect("b"), fs::read(c).expect("c"));
    assert_eq!(a, b, "same spec, same bytes");
    assert_eq!(a.len(), c.len());
    assert_ne!(a, c, "the seed changes the weights");
    assert_eq!(fs::read_dir(dir.path()).expect("dir").count(), 3, "no temporary files left");
}

#[test]
fn cached_tiny_model_is_the_tiny_spec() {
    let path = tiny_model_path();
    assert_eq!(path, tiny_model_path(), "written once per process");
    let dir = tempfile::tempdir().expect("tempdir");
    let fresh = dir.path().join("tiny.gguf");
    write_model(&ModelSpec::tiny(), &fresh).expect("write");
    assert_eq!(fs::read(&path).expect("cached"), fs::read(&fresh).expect("fresh"));
}

#[test]
fn header_metadata_and_tensors_follow_llama_conventions() {
    let spec = ModelSpec::tiny();
    let mut file = fs::File::open(tiny_model_path()).expect("open");
    let content = Content::read(&mut file).expect("candle reads the file back");
    assert!(matches!(content.magic, VersionedMagic::GgufV3));
    let meta = |key: &str| content.metadata.get(key).unwrap_or_else(|| panic!("missing {key}"));
    assert_eq!(meta("general.architecture").to_string().expect("str"), "llama");
    assert_eq!(meta("tokenizer.ggml.model").to_string().expect("str"), "gpt2");
    assert_eq!(meta("tokenizer.ggml.pre").to_string().expect("str"), "default");
    assert_eq!(meta("llama.embedding_length").to_u32().expect("u32"), spec.n_embd);
    assert_eq!(meta("llama.rope.dimension_count").to_u32().expect("u32"), spec.head_dim());
    assert_eq!(meta("general.file_type").to_u32().expect("u32"), 0);
    assert!(!meta("tokenizer.ggml.add_bos_token").to_bool().expect("bool"));
    let n_vocab = ModelSpec::vocab_size();
    assert_eq!(meta("llama.vocab_size").to_u32().expect("u32"), n_vocab);
    let tokens = meta("tokenizer.ggml.tokens").to_vec().expect("array");
    assert_eq!(tokens.len(), n_vocab as usize);
    let eos = meta("tokenizer.ggml.eos_token_id").to_u32().expect("u32") as usize;
    assert_eq!(tokens[eos].to_string().expect("str"), "<|im_end|>");
    let merges = meta("tokenizer.ggml.merges").to_vec().expect("array");
    assert!(merges.len() >= 400, "{} merges", merges.len());
    assert!(meta("tokenizer.chat_template").to_string().expect("str").contains("add_generation_prompt"));

    assert_eq!(content.tensor_infos.len(), 3 + 9 * spec.n_layer as usize);
    let info = |name: &str| content.tensor_infos.get(name).unwrap_or_else(|| panic!("missing tensor {name}"));
    // candle lists dimensions outermost first: [rows, row length].
    assert_eq!(info("token_embd.weight").shape.dims(), [n_vocab as usize, 64]);
    assert_eq!(info("blk.1.attn_k.weight").shape.dims(), [32, 64]);
    assert_eq!(info("blk.0.ffn_down.weight").shape.dims(), [64, 128]);
    assert_eq!(info("blk.0.attn_norm.weight").shape.dims(), [64]);
    let params: usize = content.tensor_infos.values().map(|t| t.shape.elem_count()).sum();
    assert_eq!(params as u64, spec.parameter_count());

    let norm = content.tensor(&mut file, "output_norm.weight", &candle_core::Device::Cpu).expect("norm");
    let norm: Vec<f32> = norm.dequantize(&candle_core::Device::Cpu).expect("f32").to_vec1().expect("vec");
    assert!(norm.iter().all(|&v| v == 1.0));
}

#[test]
fn f16_models_store_matrices_as_f16_and_norms_as_f32() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("f16.gguf");
    write_model(&ModelSpec { dtype: WeightType::F16, ..ModelSpec::tiny() }, &path).expect("write");
    let content = Content::read(&mut fs::File::open(&path).expect("open")).expect("read");
    assert_eq!(content.metadata["general.file_type"].to_u32().expect("u32"), 1);
    assert_eq!(content.tensor_infos["blk.0.attn_q.weight"].ggml_dtype, GgmlDType::F16);
    assert_eq!(content.tensor_infos["token_embd.weight"].ggml_dtype, GgmlDType::F16);
    assert_eq!(content.tensor_infos["blk.0.ffn_norm.weight"].ggml_dtype, GgmlDType::F32);
}

#[test]
fn bench_spec_is_about_400m_parameters() {
    let params = ModelSpec::bench().parameter_count();
    assert!((380_000_000..420_000_000).contains(&params), "{params}");
}

#[test]
fn invalid_spec_is_an_error_not_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.gguf");
    let spec = ModelSpec { n_head: 5, ..ModelSpec::tiny() };
    let err = write_model(&spec, &path).expect_err("64 is not a multiple of 5");
    assert!(err.to_string().starts_with("invalid model spec"), "{err}");
    assert!(!path.exists());
}
