//! The native models API under `/api/v1/models`: every registered model with where it
//! stands in the pool (`GET /api/v1/models`, `chorus models ps`), loading and unloading
//! (`POST /api/v1/models/{id}/load|unload`), and pulls from the Hugging Face hub with
//! progress (`POST /api/v1/models/pull`, whose SSE events carry Ollama's pull progress
//! fields: `status`, `digest`, `total`, `completed`; Ollama `docs/api.md`, "Pull a Model").

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::openai::KeepAlive;

/// Where a model stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    /// Registered, not in memory; the first request loads it.
    Unloaded,
    /// Being loaded.
    Loading,
    /// In memory and serving.
    Loaded,
    /// Its last load failed (`last_error`); the next request tries again.
    Failed,
}

/// One registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelEntry {
    /// The id requests pass as `model`.
    pub id: String,
    /// Other names that reach it.
    pub aliases: Vec<String>,
    /// Where it comes from: a path, `hf:OWNER/REPO/FILE.gguf`, or upstream URLs.
    pub source: String,
    /// What it serves and is good at: `chat`, `completion`, `embedding`, `code`, `math`,
    /// `translation`.
    pub capabilities: Vec<String>,
    /// Where it stands.
    pub status: ModelStatus,
    /// Bytes it takes in memory: measured once loaded, the estimate before (file + KV cache
    /// for its `ctx_size` + compute buffers); 0 for an upstream.
    pub bytes: u64,
    /// Never unloaded to make room or for idleness.
    pub pinned: bool,
    /// Requests using it now.
    pub in_flight: u32,
    /// Slots (sequences decoded at once), while loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<ModelSlots>,
    /// Context size of the loaded context, in tokens (`n_ctx`), while loaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_ctx: Option<u32>,
    /// When it unloads unless a request comes first (RFC 3339, UTC); `null` when not loaded,
    /// in use, pinned, or kept forever.
    pub expires_at: Option<String>,
    /// Why its last load failed; `null` when it did not.
    pub last_error: Option<String>,
}

/// The slots of a loaded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelSlots {
    /// Slots in all.
    pub total: u32,
    /// Slots decoding a sequence now.
    pub busy: u32,
}

/// `GET /api/v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelEntryList {
    /// Always `"list"`.
    pub object: String,
    /// The models, in registration order.
    pub data: Vec<ModelEntry>,
    /// `--memory-budget`, in bytes.
    pub memory_budget: u64,
    /// Bytes the loaded models take now.
    pub memory_used: u64,
}

/// Body of `POST /api/v1/models/{id}/load` (optional).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct LoadRequest {
    /// How long it stays loaded once idle; its own keep_alive when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
}

/// Body of `POST /api/v1/models/pull`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PullRequest {
    /// What to pull: `hf:OWNER/REPO/FILE.gguf[@REVISION]`.
    pub source: String,
    /// The id to register it under; default the file's stem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// One SSE event of a pull (Ollama's pull progress): `status` is `pulling manifest`,
/// `downloading`, `verifying sha256 digest`, `success`, or `error` with `error` set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PullProgress {
    /// What the pull is doing.
    pub status: String,
    /// The blob being downloaded (its sha256 or ETag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Its size in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Bytes present so far (a resumed pull starts at what it had).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
    /// The registered model's id, with `success`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// What went wrong, with `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
