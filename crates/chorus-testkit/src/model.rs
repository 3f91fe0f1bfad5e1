//! Writing random-weight llama-architecture GGUF models: the [`ModelSpec`] shape, the metadata
//! and tensor layout llama.cpp expects for `LLM_ARCH_LLAMA` (`src/models/llama.cpp` in the
//! vendored llama.cpp), seeded weights, and the file itself through candle's GGUF writer.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

use crate::TestkitError;
use crate::vocab::{self, Vocab};

/// Standard deviation of the random matrix weights (uniformly distributed, so the values lie
/// in `±0.02·√3`). Norm weights are exactly 1.0.
const WEIGHT_STD: f32 = 0.02;
/// `llama.rope.freq_base`, as in Llama 2.
const ROPE_FREQ_BASE: f32 = 10_000.0;
/// `llama.attention.layer_norm_rms_epsilon`, as in Llama 2.
const RMS_NORM_EPS: f32 = 1e-5;
/// The GGUF version written into the header. candle writes version 2; version 3 only added
/// big-endian files, so a little-endian v2 file and a v3 file differ in this field alone.
const GGUF_VERSION: u32 = 3;
/// Byte offset of the version field in a GGUF header (after the 4-byte magic).
const GGUF_VERSION_OFFSET: u64 = 4;

/// Storage type of the matrix weights. Norm weights (1-D) are always F32, as llama.cpp's
/// converter writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightType {
    /// 32-bit floats (`general.file_type` 0, `LLAMA_FTYPE_ALL_F32`).
    F32,
    /// IEEE half floats (`general.file_type` 1, `LLAMA_FTYPE_MOSTLY_F16`).
    F16,
}

impl WeightType {
    fn ggml_dtype(self) -> GgmlDType {
        match self {
            Self::F32 => GgmlDType::F32,
            Self::F16 => GgmlDType::F16,
        }
    }

    /// llama.cpp's `llama_ftype` number for `general.file_type`.
    fn file_type(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
        }
    }
}

/// What model to write: a llama-architecture decoder (RMSNorm, RoPE, grouped-query attention,
/// SwiGLU feed-forward) with random weights and this crate's byte-level BPE tokenizer.
///
/// Invariants checked by [`write_model`]: every size is non-zero, `n_embd` divides by `n_head`
/// into an even head size (RoPE rotates pairs), and `n_head` divides by `n_head_kv`. For Q4_0
/// quantization keep `n_embd` and `n_ff` multiples of 32 (the Q4_0 block length).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelSpec {
    /// Width of the residual stream (`llama.embedding_length`).
    pub n_embd: u32,
    /// Number of transformer blocks (`llama.block_count`).
    pub n_layer: u32,
    /// Number of query heads (`llama.attention.head_count`).
    pub n_head: u32,
    /// Number of key/value heads (`llama.attention.head_count_kv`); fewer than `n_head` means
    /// grouped-query attention.
    pub n_head_kv: u32,
    /// Hidden width of the feed-forward block (`llama.feed_forward_length`).
    pub n_ff: u32,
    /// Training context length in tokens (`llama.context_length`), the default context size
    /// llama.cpp uses for the model.
    pub n_ctx_train: u32,
    /// Seed of the weight generator; the same spec always gives the same bytes.
    pub seed: u64,
    /// Storage type of the matrix weights.
    pub dtype: WeightType,
    /// Jinja chat template stored as `tokenizer.chat_template`, if any.
    pub chat_template: Option<String>,
    /// When set, the weights make a deterministic bigram model instead of a random one (see
    /// [`Script`]); needs `n_embd` of at least 257.
    pub script: Option<Script>,
}

/// Weights that turn the model into a bigram table, so tests can make it write a chosen text:
/// the embedding of byte token `b` is the unit vector `b`, every other token's is the unit
/// vector 256, every attention output and feed-forward down projection is
/// zero (each block adds nothing to the residual stream), and the output matrix scores the
/// next token from the current one alone. With greedy sampling, or any sampling (the margins
/// are large), the model then continues:
///
/// * after a byte listed in [`chains`](Script::chains), the byte that follows it there, and
///   after a chain's last byte the end-of-generation token;
/// * otherwise, and wherever a grammar forbids that choice, by a fixed preference: `<|im_end|>`,
///   then `"`, `:`, `}`, `,`, then any other byte, then merged tokens, with whitespace last.
///
/// So under a JSON grammar the model writes compact JSON whose free strings follow the chains.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Script {
    /// Byte chains; a byte may start or sit in several chains only with the same successor.
    pub chains: Vec<String>,
}

impl ModelSpec {
    /// The tiny model for tests: 64-wide, 2 layers, 4 query heads and 2 key/value heads of
    /// size 16, feed-forward 128, context 2048, F32, ChatML template with tool calling. About 0.2 M parameters
    /// and under 1 MB on disk; llama.cpp loads it in milliseconds.
    pub fn tiny() -> Self {
        Self {
            n_embd: 64,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 128,
            n_ctx_train: 2048,
            seed: 0x5eed,
            dtype: WeightType::F32,
            chat_template: Some(vocab::TOOLS_CHATML_TEMPLATE.to_owned()),
            script: None,
        }
    }

    /// A scripted model for agent-loop tests (see [`Script`]): 320-wide, 1 layer, F32. Under a
    /// grammar that forces a call with one string argument it writes `"notes.md"` as that
    /// string; answering freely after a chat turn's `\n` it writes `OK` and stops.
    pub fn scripted() -> Self {
        Self {
            n_embd: 320,
            n_layer: 1,
            n_head: 8,
            n_head_kv: 8,
            n_ff: 64,
            n_ctx_train: 4096,
            seed: 0x5c41,
            dtype: WeightType::F32,
            chat_template: Some(vocab::TOOLS_CHATML_TEMPLATE.to_owned()),
            script: Some(Script { chains: vec!["\"notes.md".into(), "\nOK".into()] }),
        }
    }

    /// The benchmark model: 1024-wide, 24 layers, 16 query heads and 8 key/value heads of size
    /// 64, feed-forward 4352, context 4096, F16, ChatML template with tool calling; about 398 M parameters
    /// (see [`ModelSpec::parameter_count`]) and about 0.8 GB on disk.
    pub fn bench() -> Self {
        Self {
            n_embd: 1024,
            n_layer: 24,
            n_head: 16,
            n_head_kv: 8,
            n_ff: 4352,
            n_ctx_train: 4096,
            seed: 0xbe4c,
            dtype: WeightType::F16,
            chat_template: Some(vocab::TOOLS_CHATML_TEMPLATE.to_owned()),
            script: None,
        }
    }

    /// Size of one attention head: `n_embd / n_head`; also the RoPE dimension count.
    pub fn head_dim(&self) -> u32 {
        self.n_embd.checked_div(self.n_head).unwrap_or(0)
    }

    /// Number of tokens in the vocabulary every model of this crate carries (byte tokens,
    /// merges and the three special tokens).
    pub fn vocab_size() -> u32 {
        u32::try_from(vocab::get().tokens.len()).unwrap_or(u32::MAX)
    }

    /// Exact number of weights in the model (all tensors, norms included).
    pub fn parameter_count(&self) -> u64 {
        tensor_layout(self, u64::from(Self::vocab_size())).iter().map(|t| t.shape.iter().product::<u64>()).sum()
    }

    fn validate(&self) -> Result<(), TestkitError> {
        let invalid = |reason: &str| Err(TestkitError::InvalidSpec(reason.to_owned()));
        if [self.n_embd, self.n_layer, self.n_head, self.n_head_kv, self.n_ff, self.n_ctx_train].contains(&0) {
            return invalid("all sizes must be non-zero");
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return invalid("n_embd must be a multiple of n_head");
        }
        if !self.head_dim().is_multiple_of(2) {
            return invalid("the head size n_embd / n_head must be even for rope");
        }
        if !self.n_head.is_multiple_of(self.n_head_kv) {
            return invalid("n_head must be a multiple of n_head_kv");
        }
        if let Some(script) = &self.script {
            if self.n_embd < 257 {
                return invalid("a scripted model needs n_embd of at least 257");
            }
            if self.dtype != WeightType::F32 {
                return invalid("a scripted model is F32");
            }
            script.successors()?;
        }
        Ok(())
    }
}

/// One tensor of the file: its GGUF name, its dimensions in ggml order (`ne[0]` first, the
/// contiguous row length), and whether it is a norm weight (ones, F32) or a matrix (random).
struct TensorDesc {
    name: String,
    shape: Vec<u64>,
    is_norm: bool,
}

/// The tensors llama.cpp's `llama_model_llama::load_arch_tensors` creates, with its shapes.
fn tensor_layout(spec: &ModelSpec, n_vocab: u64) -> Vec<TensorDesc> {
    let n_embd = u64::from(spec.n_embd);
    let n_ff = u64::from(spec.n_ff);
    let head_dim = u64::from(spec.head_dim());
    let n_embd_q = head_dim * u64::from(spec.n_head);
    let n_embd_kv = head_dim * u64::from(spec.n_head_kv);
    let matrix = |name: String, shape: [u64; 2]| TensorDesc { name, shape: shape.to_vec(), is_norm: false };
    let norm = |name: String| TensorDesc { name, shape: vec![n_embd], is_norm: true };

    let mut tensors = vec![
        matrix("token_embd.weight".into(), [n_embd, n_vocab]),
        norm("output_norm.weight".into()),
        matrix("output.weight".into(), [n_embd, n_vocab]),
    ];
    for layer in 0..spec.n_layer {
        let name = |part: &str| format!("blk.{layer}.{part}.weight");
        tensors.extend([
            norm(name("attn_norm")),
            matrix(name("attn_q"), [n_embd, n_embd_q]),
            matrix(name("attn_k"), [n_embd, n_embd_kv]),
            matrix(name("attn_v"), [n_embd, n_embd_kv]),
            matrix(name("attn_output"), [n_embd_q, n_embd]),
            norm(name("ffn_norm")),
            matrix(name("ffn_gate"), [n_embd, n_ff]),
            matrix(name("ffn_down"), [n_ff, n_embd]),
            matrix(name("ffn_up"), [n_embd, n_ff]),
        ]);
    }
    tensors
}

/// The GGUF metadata, in the order it is written.
fn metadata(spec: &ModelSpec, vocab: &Vocab) -> Vec<(&'static str, Value)> {
    let n_vocab = u32::try_from(vocab.tokens.len()).unwrap_or(u32::MAX);
    let strings = |items: &[String]| Value::Array(items.iter().cloned().map(Value::String).collect());
    let mut kv = vec![
        ("general.architecture", Value::String("llama".into())),
        (
            "general.name",
            Value::String(format!("chorus-testkit {}x{} seed {:#x}", spec.n_embd, spec.n_layer, spec.seed)),
        ),
        ("general.file_type", Value::U32(spec.dtype.file_type())),
        ("llama.vocab_size", Value::U32(n_vocab)),
        ("llama.context_length", Value::U32(spec.n_ctx_train)),
        ("llama.embedding_length", Value::U32(spec.n_embd)),
        ("llama.block_count", Value::U32(spec.n_layer)),
        ("llama.feed_forward_length", Value::U32(spec.n_ff)),
        ("llama.attention.head_count", Value::U32(spec.n_head)),
        ("llama.attention.head_count_kv", Value::U32(spec.n_head_kv)),
        ("llama.rope.dimension_count", Value::U32(spec.head_dim())),
        ("llama.rope.freq_base", Value::F32(ROPE_FREQ_BASE)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(RMS_NORM_EPS)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("default".into())),
        ("tokenizer.ggml.tokens", strings(&vocab.tokens)),
        ("tokenizer.ggml.token_type", Value::Array(vocab.token_types.iter().copied().map(Value::I32).collect())),
        ("tokenizer.ggml.merges", strings(&vocab.merges)),
        ("tokenizer.ggml.bos_token_id", Value::U32(vocab.bos_id)),
        ("tokenizer.ggml.eos_token_id", Value::U32(vocab.eos_id)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        ("tokenizer.ggml.add_eos_token", Value::Bool(false)),
    ];
    if let Some(template) = &spec.chat_template {
        kv.push(("tokenizer.chat_template", Value::String(template.clone())));
    }
    kv
}

/// Random values for tensor number `index`: ChaCha8 seeded with the spec's seed, one stream
/// per tensor, each `u32` mapped to a uniform value of standard deviation [`WEIGHT_STD`].
/// The mapping is done here rather than by `rand`'s distributions so the bytes never depend on
/// a library's sampling algorithm.
fn random_values(seed: u64, index: u64, len: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    let half_width = WEIGHT_STD * 3.0_f32.sqrt();
    let mut bytes = vec![0_u8; len * 4];
    rng.fill_bytes(&mut bytes);
    bytes
        .chunks_exact(4)
        .map(|word| {
            let bits = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            // 24 random bits → [0, 1) exactly representable in f32 → [-1, 1).
            let unit = (bits >> 8) as f32 * (1.0 / 16_777_216.0);
            (unit * 2.0 - 1.0) * half_width
        })
        .collect()
}

impl Script {
    /// Successor of each chained byte (`None`: end of generation).
    fn successors(&self) -> Result<BTreeMap<u8, Option<u8>>, TestkitError> {
        let mut next = BTreeMap::new();
        for chain in &self.chains {
            let bytes = chain.as_bytes();
            for (i, &b) in bytes.iter().enumerate() {
                let successor = bytes.get(i + 1).copied();
                if next.insert(b, successor).is_some_and(|old| old != successor) {
                    return Err(TestkitError::InvalidSpec(format!(
                        "script byte {:?} has two different successors",
                        char::from(b)
                    )));
                }
            }
        }
        Ok(next)
    }
}

/// A scripted model's tensor (see [`Script`]); candle's row-major order, outermost first.
fn scripted_values(script: &Script, spec: &ModelSpec, desc: &TensorDesc, len: usize) -> Result<Vec<f32>, TestkitError> {
    let n_embd = spec.n_embd as usize;
    let vocab = vocab::get();
    let n_vocab = vocab.tokens.len();
    let eos = vocab.tokens.iter().position(|t| t == vocab::IM_END_TEXT).unwrap_or(n_vocab - 1);
    let mut values = vec![0.0_f32; len];
    if desc.name == "token_embd.weight" {
        // [n_vocab][n_embd]: byte token t is the unit vector t, every other token unit vector 256.
        for t in 0..n_vocab {
            values[t * n_embd + t.min(256)] = 1.0;
        }
    } else if desc.name == "output.weight" {
        // [n_vocab][n_embd]: the logit of token j after token t is values[j][t] (times the
        // normed one-hot's sqrt(n_embd)).
        let preference = |j: usize| -> f32 {
            if j == eos {
                return 5.0;
            }
            match u8::try_from(j).ok() {
                Some(b'"') => 4.0,
                Some(b':') => 3.0,
                Some(b'}') => 2.0,
                Some(b',') => 1.0,
                Some(b' ' | b'\n' | b'\t' | b'\r') => -5.0,
                Some(_) => 0.0,
                // Merged and special tokens come after single bytes, those with whitespace last
                // (GPT-2's byte-to-unicode spelling: `Ġ` space, `Ċ` newline, `ĉ` tab, `č` CR).
                None if vocab.tokens[j].contains(['Ġ', 'Ċ', 'ĉ', 'č']) => -5.0,
                None => -1.0,
            }
        };
        let next = script.successors()?;
        for j in 0..n_vocab {
            for t in 0..=256 {
                values[j * n_embd + t] = preference(j);
            }
        }
        for (byte, successor) in next {
            let j = successor.map_or(eos, usize::from);
            values[j * n_embd + usize::from(byte)] += 10.0;
        }
    } else if !(desc.name.ends_with("attn_output.weight") || desc.name.ends_with("ffn_down.weight")) {
        // Query, key, value, gate and up projections do not matter (their blocks output zero).
        return Ok(random_values(spec.seed, 0, len));
    }
    Ok(values)
}

/// Builds one tensor's data in candle's quantized-tensor form. candle's shapes list dimensions
/// outermost first, the reverse of ggml's order; its GGUF writer reverses them back.
fn build_tensor(spec: &ModelSpec, index: usize, desc: &TensorDesc) -> Result<QTensor, TestkitError> {
    let dims: Vec<usize> = desc
        .shape
        .iter()
        .rev()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| TestkitError::InvalidSpec(format!("{} is too large", desc.name)))?;
    let len: usize = dims.iter().product();
    let (values, dtype) = if desc.is_norm {
        (vec![1.0_f32; len], GgmlDType::F32)
    } else if let Some(script) = &spec.script {
        (scripted_values(script, spec, desc, len)?, GgmlDType::F32)
    } else {
        let index = u64::try_from(index).unwrap_or(u64::MAX);
        (random_values(spec.seed, index, len), spec.dtype.ggml_dtype())
    };
    let tensor = Tensor::from_vec(values, dims, &Device::Cpu)?;
    Ok(QTensor::quantize(&tensor, dtype)?)
}

/// Writes the model described by `spec` to `path` as a GGUF v3 file (architecture `llama`,
/// 32-byte alignment), through `candle_core::quantized::gguf_file::write`.
///
/// Deterministic: the same spec gives a byte-identical file. The file is written to a
/// temporary name in the same directory and renamed into place, so concurrent writers of the
/// same spec (parallel test processes) never expose a partial file. Memory use is about the
/// size of the file (candle's writer takes all tensors at once): ~0.8 GB for
/// [`ModelSpec::bench`].
///
/// # Errors
/// [`TestkitError::InvalidSpec`] for an inconsistent shape, [`TestkitError::Io`] when the file
/// cannot be created, written or renamed, [`TestkitError::Gguf`] when candle rejects a tensor.
pub fn write_model(spec: &ModelSpec, path: &Path) -> Result<(), TestkitError> {
    spec.validate()?;
    let vocab = vocab::get();
    let n_vocab = u64::try_from(vocab.tokens.len()).unwrap_or(u64::MAX);
    let layout = tensor_layout(spec, n_vocab);
    let tensors = layout
        .iter()
        .enumerate()
        .map(|(index, desc)| build_tensor(spec, index, desc))
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = metadata(spec, vocab);

    let temp = temp_path(path);
    let result = write_file(&temp, &metadata, &layout, &tensors)
        .and_then(|()| fs::rename(&temp, path).map_err(|e| TestkitError::io(path, e)));
    if result.is_err() {
        // Best effort: the temporary file is garbage either way.
        let _ = fs::remove_file(&temp);
    }
    result
}

fn write_file(
    temp: &Path,
    metadata: &[(&'static str, Value)],
    layout: &[TensorDesc],
    tensors: &[QTensor],
) -> Result<(), TestkitError> {
    let io_err = |e| TestkitError::io(temp, e);
    let file = File::create(temp).map_err(io_err)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<(&str, &QTensor)> =
        layout.iter().zip(tensors).map(|(desc, tensor)| (desc.name.as_str(), tensor)).collect();
    gguf_file::write(&mut out, &metadata, &tensors)?;
    out.seek(SeekFrom::Start(GGUF_VERSION_OFFSET)).map_err(io_err)?;
    out.write_all(&GGUF_VERSION.to_le_bytes()).map_err(io_err)?;
    let file = out.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)
}

/// A sibling of `path` unique to this process and call: `.<name>.<pid>.<n>.tmp`.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_have_the_intended_spread() {
        let values = random_values(7, 3, 100_000);
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32;
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((var.sqrt() - WEIGHT_STD).abs() < 1e-3, "std {}", var.sqrt());
        assert_ne!(values, random_values(7, 4, 100_000), "streams must differ");
        assert_ne!(values, random_values(8, 3, 100_000), "seeds must differ");
        assert_eq!(values, random_values(7, 3, 100_000));
    }

    #[test]
    fn layout_matches_llama_shapes() {
        let spec = ModelSpec::tiny();
        let layout = tensor_layout(&spec, 500);
        assert_eq!(layout.len(), 3 + 9 * spec.n_layer as usize);
        let shape = |name: &str| layout.iter().find(|t| t.name == name).map(|t| t.shape.clone()).unwrap_or_default();
        assert_eq!(shape("token_embd.weight"), vec![64, 500]);
        assert_eq!(shape("blk.1.attn_k.weight"), vec![64, 32]);
        assert_eq!(shape("blk.0.attn_output.weight"), vec![64, 64]);
        assert_eq!(shape("blk.0.ffn_down.weight"), vec![128, 64]);
        assert_eq!(shape("blk.1.ffn_norm.weight"), vec![64]);
    }

    #[test]
    fn invalid_specs_are_rejected() {
        let bad = ModelSpec { n_head: 3, ..ModelSpec::tiny() };
        assert!(matches!(bad.validate(), Err(TestkitError::InvalidSpec(_))));
        let bad = ModelSpec { n_head_kv: 3, ..ModelSpec::tiny() };
        assert!(matches!(bad.validate(), Err(TestkitError::InvalidSpec(_))));
        assert!(ModelSpec::bench().validate().is_ok());
    }
}
