//! Wire types of the control socket, the Unix socket `chorus ctl` talks to:
//! `GET /status` answers [`Status`], `POST /shutdown` answers
//! [`ShutdownAccepted`]. Errors are OpenAI's error object, as on the HTTP API.

use serde::{Deserialize, Serialize};

use crate::chorus::SlotsHealth;

/// Whether the server takes work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Serving requests.
    Running,
    /// A shutdown was asked for: no new connections, in-flight requests finishing.
    ShuttingDown,
}

/// Body of `GET /status`: what the server is and what it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// chorus version (the crate version of the server).
    pub version: String,
    /// The server's process id.
    pub pid: u32,
    /// Running, or shutting down.
    pub state: ServerState,
    /// Base URL of the HTTP API, such as `http://127.0.0.1:4096`.
    pub url: String,
    /// Seconds since the server started.
    pub uptime_s: u64,
    /// HTTP requests answered since start, every endpoint and status together
    /// (`GET /metrics` has them by endpoint and status).
    pub requests_total: u64,
    /// Stored sessions and their queues.
    pub sessions: SessionsStatus,
    /// Slots (sequences decoded at once, `--parallel`) and requests waiting for one.
    pub slots: SlotsHealth,
    /// Work waiting to start: prompts queued in sessions plus requests waiting for a slot.
    pub queue_depth: u64,
    /// The loaded models.
    pub models: Vec<ModelStatus>,
}

/// Sessions in [`Status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsStatus {
    /// Sessions in the store.
    pub total: u64,
    /// Sessions whose status is `busy` (answering a prompt).
    pub busy: u64,
    /// Prompts waiting in session queues, the running ones not counted.
    pub queued_prompts: u64,
}

/// A loaded model in [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStatus {
    /// The id clients pass as `model`.
    pub id: String,
    /// GGUF `general.architecture`, such as `llama` or `qwen2`.
    pub architecture: String,
    /// Where the GGUF file is.
    pub path: String,
    /// Context size in tokens, all slots together.
    pub n_ctx: u32,
    /// Tokens one slot's sequence can hold.
    pub n_ctx_slot: u32,
    /// Slots: the most sequences decoded at once.
    pub n_parallel: u32,
    /// Parameter count.
    pub n_params: u64,
    /// File size in bytes.
    pub size: u64,
}

/// Body of the `202 Accepted` answer to `POST /shutdown`, sent before the
/// server starts its graceful shutdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownAccepted {
    /// Always [`ServerState::ShuttingDown`].
    pub state: ServerState,
    /// The process that is stopping.
    pub pid: u32,
}
