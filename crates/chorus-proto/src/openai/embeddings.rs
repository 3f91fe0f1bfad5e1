//! `POST /v1/embeddings` (OpenAI API reference, "Embeddings": `CreateEmbeddingRequest`,
//! `CreateEmbeddingResponse`, `Embedding`), with text-embeddings-inference's `truncate` and
//! Ollama's `keep_alive` as extensions.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{KeepAlive, ObjectType};

/// Body of `POST /v1/embeddings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingRequest {
    /// What to embed: a string, an array of strings, an array of token ids, or an array of
    /// token-id arrays; at most 2048 inputs, none empty.
    pub input: EmbeddingInput,
    /// A model's id from `GET /v1/models` (OpenAI requires it; chorus, as llama-server, takes
    /// its absence to mean the first model that serves embeddings, else the default model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `float` (the default) or `base64`: the floats as little-endian f32 bytes, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_format: Option<EncodingFormat>,
    /// Keep the first `dimensions` values of each embedding, renormalised to unit length
    /// (1 to the model's size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    /// The end user, for abuse monitoring; accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Cut inputs longer than the model reads instead of refusing them (text-embeddings-inference's
    /// `truncate`; default false: such an input is a 400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<bool>,
    /// How long the model stays loaded after this request (Ollama's `keep_alive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
}

/// `input` of an [`EmbeddingRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingInput {
    /// One text.
    Text(String),
    /// Several texts.
    Texts(Vec<String>),
    /// One input as token ids.
    Tokens(Vec<u32>),
    /// Several inputs as token ids.
    TokenArrays(Vec<Vec<u32>>),
    /// llama-server's other prompt shapes: strings mixed with token ids (`[12, "text", 34]`
    /// is one input), `{"prompt_string": …}`, `{"content": [{"type": "text", "text": …}]}`,
    /// or an array of those.
    #[schema(value_type = Object)]
    Mixed(serde_json::Value),
}

/// `encoding_format` of an [`EmbeddingRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum EncodingFormat {
    /// Arrays of numbers.
    #[default]
    Float,
    /// Base64 of the little-endian f32 bytes.
    Base64,
}

/// Body of the answer to `POST /v1/embeddings` (OpenAI: `CreateEmbeddingResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingList {
    /// Always `"list"`.
    pub object: ObjectType,
    /// One embedding per input, in input order.
    pub data: Vec<Embedding>,
    /// The model that made them.
    pub model: String,
    /// Tokens read.
    pub usage: EmbeddingUsage,
}

/// One embedding (OpenAI: `Embedding`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Embedding {
    /// Always `"embedding"`.
    pub object: ObjectType,
    /// The input's position in `input`.
    pub index: u32,
    /// The vector: floats, or a base64 string with `encoding_format: base64`.
    pub embedding: EmbeddingVector,
}

/// `embedding` of an [`Embedding`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// Unit-length floats.
    Float(Vec<f32>),
    /// Base64 of the little-endian f32 bytes.
    Base64(String),
}

/// `usage` of an [`EmbeddingList`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmbeddingUsage {
    /// Tokens of all inputs.
    pub prompt_tokens: u32,
    /// The same: embeddings generate nothing.
    pub total_tokens: u32,
}
