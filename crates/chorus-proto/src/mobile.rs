//! The mobile API (`/api/v1/mobile/*`), the AI Tester seed's MobileAPI: compact JSON for phone
//! apps, one conversation per device. A device names itself with a `device_id` of its choosing
//! (an install id); the server keeps that device's session, so each phone has its own context.
//! Field names are short and flat: a phone app needs `text` and the session, not the native
//! API's message records.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Body of `POST /api/v1/mobile/chat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// The device's own id (1 to 128 characters, no control characters): the key of its
    /// conversation.
    pub device_id: String,
    /// What the user said.
    pub text: String,
    /// Stream the answer as server-sent events: `data: {"text": CHUNK}` lines, then
    /// `data: {"text": WHOLE_ANSWER, "session_id": …, "done": true}`.
    #[serde(default)]
    pub stream: bool,
}

/// Answer of `POST /api/v1/mobile/chat` (and the last event of its stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatResponse {
    /// The assistant's answer.
    pub text: String,
    /// The device's session (also reachable through the native API and the web UI).
    pub session_id: String,
    /// The model that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `true` on the last event of a stream; absent in a JSON answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub done: bool,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChatChunk {
    /// New text; never half a UTF-8 character.
    pub text: String,
}

/// Query of `GET /api/v1/mobile/history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The device whose conversation to read.
    pub device_id: String,
}

/// Answer of `GET /api/v1/mobile/history`: the device's conversation, oldest first; empty for a
/// device that has not chatted yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct History {
    /// The device's session.
    pub session_id: String,
    /// Its user and assistant messages with text (tool calls and their results left out).
    pub messages: Vec<HistoryMessage>,
}

/// One message of a [`History`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistoryMessage {
    /// `user` or `assistant`.
    pub role: String,
    /// What was said.
    pub text: String,
    /// When it was stored, in Unix milliseconds.
    pub ts: i64,
}
