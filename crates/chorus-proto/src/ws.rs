//! The WebSocket protocol of `/ws?session_id=…`: every message, both ways, is
//! an [`Envelope`] `{"type", "id", "timestamp", "payload"}`.
//!
//! - client → server: `type: "request"` with `payload.action` one of
//!   `prompt` (`content`, optional `priority`, `max_tokens`, `ignore_eos`),
//!   `cancel`, `subscribe` (`session_id`, optional `last_event_id`) and
//!   `permission_reply` (`request_id`, `allow`);
//! - server → client: `type: "event"` for every event of the subscribed
//!   session (`id` is the event's log id, `payload` the [`crate::native::Event`]);
//!   `type: "response"` answering a request by its `id` (for a prompt: `kind:
//!   "text"` chunks with `done: false`, then `kind: "complete"` with the stored
//!   message and its usage); `type: "error"` for a request that failed, or a
//!   message that was not a valid request (`id` null).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::native::{Message, Priority, TokenUsage};

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeType {
    /// A client's request.
    Request,
    /// The server's answer to a request.
    Response,
    /// An event of the subscribed session.
    Event,
    /// A failed request, or an unreadable message.
    Error,
}

/// One WebSocket text message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// What it carries.
    #[serde(rename = "type")]
    pub kind: EnvelopeType,
    /// A request's id (chosen by the client, echoed in its responses), or an
    /// event's log id as text; null for errors about unreadable messages.
    pub id: Option<String>,
    /// Unix time in milliseconds when it was sent.
    pub timestamp: i64,
    /// The content: a [`Request`], a [`Response`], a [`crate::native::Event`] or an [`WsError`].
    pub payload: Value,
}

/// A client's request (the `payload` of a `request` envelope).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Send a prompt to the session.
    Prompt {
        /// The user's message.
        content: String,
        /// Queue priority.
        #[serde(default)]
        priority: Priority,
        /// The most tokens to generate.
        #[serde(default)]
        max_tokens: Option<u32>,
        /// Keep generating past the end-of-generation token.
        #[serde(default)]
        ignore_eos: bool,
        /// OpenAI's `tool_choice` for the agent's first round (see `PromptRequest`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_choice: Option<crate::openai::ToolChoice>,
    },
    /// Cancel the running prompt and drop the queue.
    Cancel,
    /// Watch a session (replacing the current one), from after `last_event_id` when given.
    Subscribe {
        /// The session.
        session_id: String,
        /// Replay the events after this log id first.
        #[serde(default)]
        last_event_id: Option<i64>,
    },
    /// Answer a tool's permission request.
    PermissionReply {
        /// The `tool.permission_request` being answered.
        request_id: String,
        /// Whether the tool may run.
        allow: bool,
    },
}

/// The server's answer to a request (the `payload` of a `response` envelope).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    /// A prompt was queued.
    Queued {
        /// Its id; its events carry it.
        prompt_id: String,
        /// Prompts that run before it.
        queue_position: u32,
        /// Always false.
        done: bool,
    },
    /// More of a prompt's answer.
    Text {
        /// New text.
        content: String,
        /// Always false.
        done: bool,
    },
    /// The prompt's answer, stored.
    Complete {
        /// The assistant's message.
        message: Message,
        /// Its tokens.
        usage: TokenUsage,
        /// Always true.
        done: bool,
    },
    /// A cancel was carried out.
    Cancelled {
        /// Whether a prompt was running.
        cancelled: bool,
        /// Queued prompts dropped.
        dropped: u32,
    },
    /// Now watching a session.
    Subscribed {
        /// The session.
        session_id: String,
    },
    /// A `permission_reply` reached the waiting tool call.
    PermissionRecorded {
        /// The `tool.permission_request` answered.
        request_id: String,
        /// The answer.
        allow: bool,
    },
}

/// An error (the `payload` of an `error` envelope), with OpenAI's error fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WsError {
    /// What went wrong.
    pub message: String,
    /// `invalid_request_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A stable code.
    pub code: Option<String>,
}
