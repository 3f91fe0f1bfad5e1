//! Q4_0 quantization through llama.cpp's quantizer, and the quantized model in llama.cpp.

use std::fs;

use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Content;
use chorus_testkit::{QuantType, TestkitError, quantize, tiny_model_path};
use llama_cpp_2::sampling::LlamaSampler;

use crate::support::{backend, generate, load, tokenize};

#[test]
fn tiny_model_quantizes_to_q4_0_and_runs() {
    backend(); // llama.cpp initialized (and its logs silenced) before quantizing
    let dir = tempfile::tempdir().expect("tempdir");
    let output = dir.path().join("tiny-q4_0.gguf");
    quantize(&tiny_model_path(), &output, QuantType::Q4_0, 2).expect("quantize");

    let input_size = fs::metadata(tiny_model_path()).expect("input").len();
    let output_size = fs::metadata(&output).expect("output").len();
    assert!(output_size < input_size / 2, "{output_size} vs {input_size}");

    let content = Content::read(&mut fs::File::open(&output).expect("open")).expect("read");
    assert_eq!(content.metadata["general.file_type"].to_u32().expect("u32"), 2);
    assert_eq!(content.tensor_infos["blk.0.attn_q.weight"].ggml_dtype, GgmlDType::Q4_0);
    assert_eq!(content.tensor_infos["blk.0.ffn_down.weight"].ggml_dtype, GgmlDType::Q4_0);
    assert_eq!(content.tensor_infos["blk.0.attn_norm.weight"].ggml_dtype, GgmlDType::F32);

    let model = load(&output);
    let prompt = tokenize(&model, "Hello world, the cat");
    let out = generate(&model, &prompt, LlamaSampler::greedy(), 8);
    assert_eq!(out.len(), 8);
}

#[test]
fn quantizing_a_missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = quantize(&dir.path().join("missing.gguf"), &dir.path().join("out.gguf"), QuantType::Q4_0, 1)
        .expect_err("no input");
    assert!(matches!(err, TestkitError::Io { .. }), "{err}");
}

#[test]
fn quantizing_a_non_gguf_file_reports_llama_failure() {
    backend();
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("not-a-model.gguf");
    fs::write(&input, b"definitely not gguf").expect("write");
    let err = quantize(&input, &dir.path().join("out.gguf"), QuantType::Q4_0, 1).expect_err("bad input");
    assert!(matches!(err, TestkitError::Quantize { status: 1, .. }), "{err}");
}
