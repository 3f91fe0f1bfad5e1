//! Wire types of chorus's MCP server (`/mcp`; MCP specification 2025-06-18 and later, sections
//! "Server features: Tools" and "Resources"): the arguments of its tools (`chat`,
//! `session_prompt`, `list_sessions`, `list_models`, `route`), their structured results, the JSON its
//! resources hold, and the resource URIs (`chorus://sessions/{id}`, `chorus://models/{id}`).
//!
//! Arguments and results derive `schemars::JsonSchema`: the server advertises those schemas as
//! each tool's `inputSchema` and `outputSchema` in `tools/list`, these doc comments becoming
//! their descriptions. Unknown argument fields are refused, so a misspelt one is an error rather
//! than silently ignored. Token counts are tokens of the model's vocabulary; times are Unix
//! milliseconds, as in the native API ([`crate::native`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::native;

/// Arguments of the `chat` tool: one prompt to a model, answered once; nothing is stored.
///
/// Out-of-range values (such as `temperature: 3`) make the call a tool error naming the field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatArgs {
    /// The user's message to the model.
    pub prompt: String,
    /// A system message put before the prompt (instructions, persona); none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The model to answer with, as `list_models` names it; the server's default model when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Sampling temperature, 0 to 2; 0 always picks the likeliest token. Default 0.8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f32>,
    /// Nucleus sampling: only the likeliest tokens whose probabilities add up to this, 0 to 1
    /// (1 disables it). Default 0.95.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub top_p: Option<f32>,
    /// The most tokens to generate, at least 1; when absent, until the model ends its answer or
    /// its context is full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u32>,
    /// Seed of the sampler's random numbers: the same seed, prompt and settings give the same
    /// answer. Random when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
}

/// Token counts of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    /// Tokens of the prompt, after the chat template (system message and history included).
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub completion_tokens: u64,
}

/// Structured result of the `chat` tool (its `structuredContent`); the text content of the result
/// is the answer alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChatResult {
    /// The model's answer.
    pub text: String,
    /// The model that answered.
    pub model: String,
    /// Why the answer ended: `stop` (the model ended it) or `length` (`max_tokens`, or the
    /// context was full).
    pub finish_reason: String,
    /// Its token counts.
    pub usage: Usage,
}

/// Arguments of the `session_prompt` tool: a prompt to a durable session, answered by the
/// session's agent (its system prompt and tools) with the whole conversation so far.
///
/// Without `session_id` a new session is created; pass the `session_id` of the result back to
/// continue the conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionPromptArgs {
    /// The user's message.
    pub prompt: String,
    /// The session to continue (`ses_…`, as `list_sessions` or an earlier result gives it); a
    /// new session when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The agent of a new session, by name (the server's prompts list the agents); the default
    /// agent when absent. With `session_id` it must be absent or name that session's agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The most tokens to generate per round of the agent, at least 1; until the model ends its
    /// answer or the context is full when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u32>,
}

/// Structured result of the `session_prompt` tool. Its text content is the answer, then this
/// object as JSON (so a client that shows only text still learns the session id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionPromptResult {
    /// The session: pass it as `session_id` to continue the conversation. Its transcript is the
    /// resource `chorus://sessions/{session_id}`.
    pub session_id: String,
    /// The prompt's id (`prm_…`), as the session's events name it.
    pub prompt_id: String,
    /// The stored assistant message (`msg_…`).
    pub message_id: String,
    /// The answer.
    pub text: String,
    /// Why the answer ended: `stop`, `length` or `tool_calls` (the agent's last round still
    /// asked for tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Its token counts, when the store has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// A session as `list_sessions` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionSummary {
    /// `ses_` and 32 hex digits (or `ses_default`).
    pub id: String,
    /// Its resource: `chorus://sessions/{id}`.
    pub uri: String,
    /// Its title; may be empty.
    pub title: String,
    /// The agent it runs.
    pub agent: String,
    /// The model it uses; `null` for the server's default.
    pub model: Option<String>,
    /// What it is doing: `idle`, `busy`, `cancelled` (its last prompt was) or `error` (its last
    /// prompt failed).
    pub status: String,
    /// Messages it holds.
    pub message_count: u64,
    /// Unix time in milliseconds when it was created.
    pub created_at: i64,
    /// Unix time in milliseconds of its last change.
    pub updated_at: i64,
}

/// Structured result of the `list_sessions` tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionList {
    /// The sessions, most recently updated first.
    pub sessions: Vec<SessionSummary>,
}

/// A loaded model: an item of `list_models`, and the content of its resource
/// `chorus://models/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelInfo {
    /// The id to pass as `model`.
    pub id: String,
    /// Its resource: `chorus://models/{id}`.
    pub uri: String,
    /// GGUF `general.architecture`, such as `llama` or `qwen2`.
    pub architecture: String,
    /// Context size in tokens, all slots together.
    pub n_ctx: u32,
    /// Tokens one sequence (prompt and answer together) can hold.
    pub n_ctx_slot: u32,
    /// Context length the model was trained with.
    pub n_ctx_train: u32,
    /// Vocabulary size.
    pub n_vocab: u32,
    /// Slots: the most sequences generated at once.
    pub n_parallel: u32,
    /// Parameter count.
    pub n_params: u64,
    /// File size in bytes.
    pub size: u64,
    /// Unix time in seconds when it was loaded.
    pub created: u64,
}

/// Structured result of the `list_models` tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelList {
    /// The loaded models, the default first.
    pub models: Vec<ModelInfo>,
}

/// Arguments of the `route` tool: a prompt for the content router, which says where it would
/// go; nothing is generated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteArgs {
    /// The prompt to route, as a user would send it.
    pub prompt: String,
    /// A category to force (`general`, `code`, `math`, `translation`, `image`, or an alias): the
    /// answer then shows which model serves it. The router's classifiers decide when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// Structured result of the `route` tool: `POST /api/v1/route`'s answer; its text content is
/// this object as JSON.
pub use crate::route::RouteResponse as RouteResult;

/// The JSON of the resource `chorus://sessions/{id}`: the session and its transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionResource {
    /// The session, as `GET /api/v1/sessions/{id}` gives it.
    pub session: native::Session,
    /// Its messages, oldest first, as `GET /api/v1/sessions/{id}/messages` gives them.
    pub messages: Vec<native::Message>,
}

/// URI scheme and authority of the session resources; the (percent-encoded) id follows.
pub const SESSION_URI_PREFIX: &str = "chorus://sessions/";
/// URI scheme and authority of the model resources; the (percent-encoded) id follows.
pub const MODEL_URI_PREFIX: &str = "chorus://models/";
/// RFC 6570 template of the session resources (`resources/templates/list`).
pub const SESSION_URI_TEMPLATE: &str = "chorus://sessions/{id}";
/// RFC 6570 template of the model resources (`resources/templates/list`).
pub const MODEL_URI_TEMPLATE: &str = "chorus://models/{id}";
/// MIME type of every chorus resource.
pub const RESOURCE_MIME_TYPE: &str = "application/json";

/// A resource chorus serves, as its URI names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceUri {
    /// `chorus://sessions/{id}`.
    Session(String),
    /// `chorus://models/{id}`.
    Model(String),
}

impl ResourceUri {
    /// Parse a resource URI; `None` when it is not one of chorus's (another scheme, an empty id,
    /// a path below the id, a query, a fragment, or bad percent-encoding).
    pub fn parse(uri: &str) -> Option<Self> {
        let (make, rest): (fn(String) -> Self, &str) = if let Some(rest) = uri.strip_prefix(SESSION_URI_PREFIX) {
            (Self::Session, rest)
        } else if let Some(rest) = uri.strip_prefix(MODEL_URI_PREFIX) {
            (Self::Model, rest)
        } else {
            return None;
        };
        if rest.is_empty() || rest.contains(['/', '?', '#']) {
            return None;
        }
        percent_decode(rest).map(make)
    }
}

impl std::fmt::Display for ResourceUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Session(id) => write!(f, "{SESSION_URI_PREFIX}{}", percent_encode(id)),
            Self::Model(id) => write!(f, "{MODEL_URI_PREFIX}{}", percent_encode(id)),
        }
    }
}

/// RFC 3986: every byte but the unreserved characters as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resource_uris_round_trip() {
        for uri in [ResourceUri::Session("ses_0123abcd".into()), ResourceUri::Model("Qwen2.5 7B/q4 ü".into())] {
            assert_eq!(ResourceUri::parse(&uri.to_string()), Some(uri));
        }
        assert_eq!(ResourceUri::Model("a b".into()).to_string(), "chorus://models/a%20b");
        assert_eq!(ResourceUri::parse("chorus://sessions/ses_1"), Some(ResourceUri::Session("ses_1".into())));
    }

    #[test]
    fn foreign_or_malformed_uris_are_none() {
        for uri in [
            "file:///etc/passwd",
            "chorus://sessions/",
            "chorus://sessions/a/b",
            "chorus://sessions/a?x=1",
            "chorus://models/%zz",
            "chorus://models/%4",
            "chorus://models/%ff",
            "chorus://agents/default",
        ] {
            assert_eq!(ResourceUri::parse(uri), None, "{uri}");
        }
    }

    #[test]
    fn arguments_refuse_unknown_fields() {
        let ok: ChatArgs = serde_json::from_str(r#"{"prompt": "hi", "max_tokens": 4}"#).unwrap();
        assert_eq!(ok.max_tokens, Some(4));
        assert!(serde_json::from_str::<ChatArgs>(r#"{"prompt": "hi", "temprature": 1}"#).is_err());
        assert!(serde_json::from_str::<SessionPromptArgs>(r#"{"session_id": "ses_1"}"#).is_err(), "prompt is required");
        let route: RouteArgs = serde_json::from_str(r#"{"prompt": "hi", "category": "code"}"#).unwrap();
        assert_eq!(route.category.as_deref(), Some("code"));
        assert!(serde_json::from_str::<RouteArgs>(r#"{"prompt": "hi", "categroy": "code"}"#).is_err());
    }
}
