//! [`EmbedError`]: why a model directory cannot be loaded. Every variant names the file at
//! fault and what is wrong with it.

use std::path::PathBuf;

/// What can go wrong loading a sentence-transformers model directory.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file the model needs is not there.
    #[error("{} is missing: {why}", file.display())]
    Missing {
        /// The file looked for.
        file: PathBuf,
        /// What it would hold.
        why: &'static str,
    },
    /// A file is there but cannot be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON file does not parse, or lacks a field the model needs.
    #[error("{} is not a valid {what}: {message}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// What it should be, such as `BERT config`.
        what: &'static str,
        /// The parser's message.
        message: String,
    },
    /// The model is not a BERT encoder (`model_type` in `config.json`).
    #[error("{}: model_type `{model_type}` is not supported; chorus-embed serves BERT models (`bert`)", file.display())]
    UnsupportedArchitecture {
        /// `config.json`.
        file: PathBuf,
        /// Its `model_type`.
        model_type: String,
    },
    /// `modules.json` names a module chorus-embed does not run (such as `Dense`).
    #[error(
        "{}: module `{module}` is not supported; chorus-embed runs Transformer, Pooling and Normalize modules",
        file.display()
    )]
    UnsupportedModule {
        /// `modules.json`.
        file: PathBuf,
        /// The module's `type`.
        module: String,
    },
    /// The pooling config asks for a pooling chorus-embed does not do.
    #[error("{}: pooling `{mode}` is not supported; chorus-embed pools by cls, mean or max", file.display())]
    UnsupportedPooling {
        /// The pooling config.
        file: PathBuf,
        /// The `pooling_mode_*` key that is true.
        mode: String,
    },
    /// The pooling config turns on no mode, or more than one (sentence-transformers would
    /// concatenate them).
    #[error("{}: exactly one pooling mode must be true (cls, mean or max); found {found:?}", file.display())]
    PoolingModes {
        /// The pooling config.
        file: PathBuf,
        /// The `pooling_mode_*` keys that are true.
        found: Vec<String>,
    },
    /// The pooling config's `word_embedding_dimension` is not the model's `hidden_size`.
    #[error("{}: word_embedding_dimension is {pooling} but config.json has hidden_size {hidden}", file.display())]
    Dimension {
        /// The pooling config.
        file: PathBuf,
        /// Its `word_embedding_dimension`.
        pooling: usize,
        /// `hidden_size` in `config.json`.
        hidden: usize,
    },
    /// `tokenizer.json` cannot be loaded or configured.
    #[error("{}: {message}", file.display())]
    Tokenizer {
        /// `tokenizer.json`.
        file: PathBuf,
        /// The tokenizers crate's message.
        message: String,
    },
    /// The weights cannot be read or do not fit the BERT config (a missing tensor, a wrong
    /// shape).
    #[error("{}: {message}", file.display())]
    Weights {
        /// A safetensors file (the first, when the weights are sharded).
        file: PathBuf,
        /// candle's message.
        message: String,
    },
    /// The worker thread could not be started.
    #[error("cannot start the embedding thread: {0}")]
    Thread(#[source] std::io::Error),
}
