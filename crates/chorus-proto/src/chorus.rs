//! chorus's own wire types outside the OpenAI surface: `GET /health`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `GET /health`: liveness plus what the server is doing right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `"ok"` while the server accepts requests.
    pub status: String,
    /// Id of the loaded model, as listed by `GET /v1/models`.
    pub model: String,
    /// Seconds since the server started.
    pub uptime_s: u64,
    /// chorus version (the crate version of the server).
    pub version: String,
    /// Slots (sequences that can be decoded at once, `--parallel`) and their use.
    pub slots: SlotsHealth,
    /// What the most recent decode steps held.
    pub decode: DecodeHealth,
}

/// Slot usage in [`Health`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SlotsHealth {
    /// Number of slots (`--parallel`).
    pub total: u32,
    /// Slots decoding a sequence right now.
    pub busy: u32,
    /// Requests waiting for a free slot.
    pub queued: u32,
}

/// Decode-step statistics in [`Health`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecodeHealth {
    /// Number of sequences held by each of the most recent decode steps, oldest first (at most 32).
    pub last_steps_sequences: Vec<u32>,
    /// The most sequences any decode step held since the server started.
    pub max_sequences: u32,
    /// Decode steps run since the server started.
    pub steps: u64,
}
