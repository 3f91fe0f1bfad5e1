//! llama-server's own endpoints that chorus serves as a drop-in, with
//! llama-server's field names (llama.cpp `tools/server/README.md`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /slots/{id_slot}?action=save|restore` (none for `erase`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SlotActionRequest {
    /// A plain file name in the server's `--slot-save-path`.
    pub filename: String,
}

/// The answer to a slot action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SlotActionResponse {
    /// `action=save`.
    Save {
        /// The slot.
        id_slot: u32,
        /// The file written.
        filename: String,
        /// Tokens saved.
        n_saved: usize,
        /// Bytes written.
        n_written: usize,
        /// How long it took.
        timings: SaveTimings,
    },
    /// `action=restore`.
    Restore {
        /// The slot.
        id_slot: u32,
        /// The file read.
        filename: String,
        /// Tokens restored.
        n_restored: usize,
        /// Bytes read.
        n_read: usize,
        /// How long it took.
        timings: RestoreTimings,
    },
    /// `action=erase`.
    Erase {
        /// The slot.
        id_slot: u32,
        /// Tokens erased from its KV cache.
        n_erased: usize,
    },
}

/// `timings` of a save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SaveTimings {
    /// Milliseconds.
    pub save_ms: f64,
}

/// `timings` of a restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RestoreTimings {
    /// Milliseconds.
    pub restore_ms: f64,
}
