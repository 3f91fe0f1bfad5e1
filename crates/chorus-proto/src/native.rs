//! Wire types of chorus's native API under `/api/v1`: sessions, their
//! messages, prompts, and the events that `GET /api/v1/events` and
//! `GET /api/v1/sessions/{id}/events` stream (and the event log stores, so a
//! reconnecting client gets the very payloads it missed).
//!
//! Times are Unix milliseconds. Field names follow OpenAI's where one exists
//! (`role`, `content`, `tool_calls`, `tool_call_id`, `usage`, `finish_reason`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a session is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionStatus {
    /// Waiting for a prompt.
    Idle,
    /// Answering a prompt.
    Busy,
    /// The last prompt was cancelled.
    Cancelled,
    /// The last prompt failed.
    Error,
}

/// Tokens a session or an answer used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TokenUsage {
    /// Prompt tokens (cached ones included).
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub completion_tokens: u64,
    /// Prompt tokens that came from the prompt cache (a slot, host RAM or a snapshot on disk)
    /// rather than being computed (OpenAI's `prompt_tokens_details.cached_tokens`).
    #[serde(default)]
    pub cached_tokens: u64,
}

/// A session (`GET /api/v1/sessions/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// `ses_` and 32 hex digits.
    pub id: String,
    /// Unix time in milliseconds when it was created.
    pub created_at: i64,
    /// Unix time in milliseconds of its last change.
    pub updated_at: i64,
    /// Its title; may be empty.
    pub title: String,
    /// The directory its tools work in.
    pub work_dir: String,
    /// The agent it runs (`GET /api/v1/agents`).
    pub agent: String,
    /// The model it uses; `null` for the server's default.
    pub model: Option<String>,
    /// What it is doing.
    pub status: SessionStatus,
    /// The character it plays (`GET /api/v1/characters/{id}`); absent for an agent session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub character: Option<String>,
    /// Messages it holds.
    pub message_count: u64,
    /// Tokens its prompts used, in all.
    pub token_usage: TokenUsage,
    /// Prompts waiting behind the one running.
    pub queue_length: u32,
}

/// `GET /api/v1/sessions`: most recently updated first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    /// Always `"list"`.
    pub object: String,
    /// The sessions.
    pub data: Vec<Session>,
}

/// Body of `POST /api/v1/sessions`; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// A title.
    #[serde(default)]
    pub title: Option<String>,
    /// The directory its tools work in; the server's working directory when absent.
    #[serde(default)]
    pub work_dir: Option<String>,
    /// The agent to run; the server's default agent when absent.
    #[serde(default)]
    pub agent: Option<String>,
    /// The model; the agent's, else the server's default, when absent.
    #[serde(default)]
    pub model: Option<String>,
}

/// Body of `PATCH /api/v1/sessions/{id}`: the fields to change; absent ones stay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSessionRequest {
    /// A new title (trimmed; empty: untitled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A new model for the session's next prompts: a model id or alias, `auto` (the router
    /// decides), or `null` (the agent's model, else the router or the default model).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub model: Option<Option<String>>,
}

/// A field that is present, `null` included, is `Some`; an absent one stays `None` (`default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A tool call in a stored assistant message: OpenAI's own type
/// (`ChatCompletionMessageToolCall`), so both APIs spell calls the same way.
pub use crate::openai::{FunctionCall, ToolCall};

/// A message of a session (`GET /api/v1/sessions/{id}/messages`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    /// `msg_` and 32 hex digits.
    pub id: String,
    /// The session it belongs to.
    pub session_id: String,
    /// Its place in the session, from 1, never reused (not even after a clear).
    pub seq: u64,
    /// Unix time in milliseconds when it was stored.
    pub created_at: i64,
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Its text.
    pub content: String,
    /// The tools an assistant message calls.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Tokens used to produce an assistant message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<TokenUsage>,
    /// Why an assistant message ended: `stop`, `length`, `tool_calls` or `cancelled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// How an assistant message was produced: its model, and the router's decision when the
    /// session names no model (or `auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<MessageMetadata>,
}

/// [`Message::metadata`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageMetadata {
    /// The model that wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The router's decision, when the router chose the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<crate::route::Route>,
    /// Who wrote it (OpenAI's message `name`): a character chat's user, or a conversation's
    /// speaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A character's answer: the ids of the memories its prompt was given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memories: Vec<String>,
    /// A character's answer: the lorebook entries its prompt held (each entry's `name`, else its
    /// `comment`, else its first key), constant ones included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lore: Vec<String>,
}

/// `GET /api/v1/sessions/{id}/messages`: oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageList {
    /// Always `"list"`.
    pub object: String,
    /// The messages.
    pub data: Vec<Message>,
}

/// Where a prompt goes in a busy session's queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// After every prompt already waiting.
    #[default]
    Normal,
    /// Before every `normal` prompt waiting, after the `high` ones.
    High,
}

/// Body of `POST /api/v1/sessions/{id}/prompt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptRequest {
    /// The user's message.
    pub content: String,
    /// Answer with SSE: this prompt's events, ending with `message.complete`
    /// or `message.error`.
    #[serde(default)]
    pub stream: bool,
    /// Answer at once with [`PromptAccepted`]; the answer arrives as events.
    #[serde(default, rename = "async")]
    pub is_async: bool,
    /// Queue priority.
    #[serde(default)]
    pub priority: Priority,
    /// The most tokens to generate for the answer; until the context is full when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Keep generating past the end-of-generation token (llama.cpp's `ignore_eos`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_eos: bool,
    /// OpenAI's `tool_choice` for the agent's first round: `required` or a named function forces
    /// a tool call (by grammar); later rounds are `auto`. `auto` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<crate::openai::ToolChoice>,
}

/// Body of `POST /request`, the simple agent API: a prompt for the default
/// session (`ses_default`); answered as `POST /api/v1/sessions/{id}/prompt` is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentRequest {
    /// The user's message.
    pub prompt: String,
    /// Answer with SSE.
    #[serde(default)]
    pub stream: bool,
    /// Answer at once with [`PromptAccepted`].
    #[serde(default, rename = "async")]
    pub is_async: bool,
    /// The most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
}

/// Answer to an `async` prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PromptAccepted {
    /// `prm_` and 32 hex digits; events of this prompt carry it.
    pub prompt_id: String,
    /// The session.
    pub session_id: String,
    /// `running` when it started at once, else `queued`.
    pub status: String,
    /// Prompts that run before it: 0 when it started at once, 1 when it is
    /// next after the running one, and so on.
    pub queue_position: u32,
}

/// Answer to `POST /api/v1/sessions/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CancelResult {
    /// The session.
    pub session_id: String,
    /// True when a running prompt was cancelled.
    pub cancelled: bool,
    /// Queued prompts dropped with it.
    pub dropped: u32,
}

/// Answer to a `DELETE` (OpenAI's deletion object shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    /// The deleted object's id.
    pub id: String,
    /// What was deleted, such as `"session"`.
    pub object: String,
    /// Always true.
    pub deleted: bool,
}

/// An agent: a named system prompt, model and tool set
/// (`GET /api/v1/agents/{name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The system message it puts before every conversation.
    pub system_prompt: String,
    /// Its model; `null` for the server's default.
    pub model: Option<String>,
    /// The tools it may call; `null` for every tool of `GET /api/v1/tools`.
    pub tools: Option<Vec<String>>,
}

/// `GET /api/v1/agents`, the default first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentList {
    /// Always `"list"`.
    pub object: String,
    /// The agents.
    pub data: Vec<Agent>,
}

/// A tool's permission policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Runs without asking.
    Allow,
    /// Asks a client first (`tool.permission_request`); no answer in time is a refusal.
    Ask,
    /// Never runs; the model gets a `permission_denied` error.
    Deny,
}

/// A tool the agent loop can run (`GET /api/v1/tools`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolInfo {
    /// Its name, as the model calls it.
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON schema of its arguments.
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    /// Its permission policy.
    pub permission: Permission,
}

/// `GET /api/v1/tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolList {
    /// Always `"list"`.
    pub object: String,
    /// The tools.
    pub data: Vec<ToolInfo>,
}

/// What an MCP server of the configuration is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum McpServerStatus {
    /// Not started yet: servers start when their tools are first needed.
    Idle,
    /// Starting: its process or connection is being set up, then `initialize` and `tools/list`.
    Starting,
    /// Up; its tools are the agents' tools.
    Running,
    /// It exited or its connection closed; it is restarted after a backoff delay (0.5 s doubling
    /// up to 30 s). Its tools' calls fail meanwhile.
    Restarting,
    /// It could not start (`error` says why); the next need after the backoff delay tries again.
    Failed,
}

/// An external MCP server whose tools join the agents' tools as `SERVER.TOOL`
/// (`[[mcp.servers]]` in `chorus.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct McpServer {
    /// Its name, the `SERVER` of its tools' names.
    pub name: String,
    /// How chorus reaches it: `stdio` (a child process) or `http` (streamable HTTP).
    pub transport: String,
    /// What it is doing.
    pub status: McpServerStatus,
    /// Its tools' full names (`SERVER.TOOL`), as last listed; empty before its first start.
    pub tools: Vec<String>,
    /// How many times it was restarted after exiting unexpectedly.
    pub restarts: u32,
    /// Its last failure (a start that failed, an unexpected exit); `null` when none since it
    /// last came up.
    pub error: Option<String>,
}

/// `GET /api/v1/mcp/servers`, in configuration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct McpServerList {
    /// Always `"list"`.
    pub object: String,
    /// The servers.
    pub data: Vec<McpServer>,
}

/// Body of `POST /api/v1/tools/{name}/execute`: run a tool directly, outside any model turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolExecuteRequest {
    /// The arguments, a JSON object following the tool's `parameters`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub arguments: serde_json::Map<String, serde_json::Value>,
    /// The session whose `work_dir` confines the tool; without it, the server's default work dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// Answer of `POST /api/v1/tools/{name}/execute`. A tool that fails answers 200 with `error`
/// set (its failure is a result, as the model would see it); a bad request is a 4xx.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolExecuteResult {
    /// The tool.
    pub name: String,
    /// Its output, when it succeeded.
    pub output: Option<String>,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The failure's code (see `tool.call_error`).
    pub code: Option<String>,
}

/// Body of `POST /api/v1/sessions/{id}/permissions/{request_id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PermissionReply {
    /// Whether the tool may run.
    pub allow: bool,
}

/// `GET /api/v1/info`: what this server is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Info {
    /// chorus version.
    pub version: String,
    /// Seconds since the server started.
    pub uptime_s: u64,
    /// Ids of the loaded models.
    pub models: Vec<String>,
    /// The session store: `sqlite` or `postgres`.
    pub store: String,
    /// Names of the agents, the default first.
    pub agents: Vec<String>,
    /// Whether the content router has a choice of models (its categories map to two or more):
    /// then a request may name the model `auto` (or none) and a model picker offers `auto`.
    #[serde(default)]
    pub router: bool,
    /// The URL phones open to reach this server (the LAN address, or `--public-url`), as
    /// `GET /qr` encodes it, without any API key.
    #[serde(default)]
    pub url: String,
}

/// The error part of a `message.error` event (OpenAI's error object fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventError {
    /// What went wrong.
    pub message: String,
    /// OpenAI's error `type`: `invalid_request_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A stable code, such as `context_length_exceeded` or `cancelled`.
    pub code: Option<String>,
}

/// The payload of one event: the SSE `data:` line (its `event:` line repeats
/// `type`), a WebSocket `event` envelope's `payload`, and what the event log
/// stores. Every variant names its session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type")]
pub enum Event {
    /// A session was created.
    #[serde(rename = "session.created")]
    SessionCreated {
        /// The session.
        session_id: String,
        /// Its state.
        session: Session,
    },
    /// A session's title or model changed (`PATCH /api/v1/sessions/{id}`).
    #[serde(rename = "session.updated")]
    SessionUpdated {
        /// The session.
        session_id: String,
        /// Its new state.
        session: Session,
    },
    /// A character session's state changed after a turn (vitals, a memory) or an API call.
    #[serde(rename = "character.updated")]
    CharacterUpdated {
        /// The session.
        session_id: String,
        /// The character's id.
        character: String,
        /// Turns answered.
        turn: u64,
        /// The vitals of the user concerned, after the change.
        #[schema(value_type = Object)]
        vitals: serde_json::Map<String, serde_json::Value>,
        /// What changed.
        changes: Vec<crate::character::VitalChangeView>,
        /// The memory made (or merged into) this turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        memory: Option<crate::character::MemoryView>,
    },
    /// A character session was loaded from a snapshot, or reset to its card (`snapshot` absent):
    /// clients reload its transcript.
    #[serde(rename = "character.restored")]
    CharacterRestored {
        /// The session.
        session_id: String,
        /// The character's id.
        character: String,
        /// The snapshot loaded; absent for a reset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<String>,
    },
    /// One message of an AI-to-AI conversation.
    #[serde(rename = "conversation.exchange")]
    ConversationExchange {
        /// The conversation's session.
        session_id: String,
        /// The message.
        exchange: crate::character::Exchange,
    },
    /// A session was deleted.
    #[serde(rename = "session.deleted")]
    SessionDeleted {
        /// The session.
        session_id: String,
    },
    /// A session's status changed.
    #[serde(rename = "session.status_changed")]
    SessionStatusChanged {
        /// The session.
        session_id: String,
        /// The new status.
        status: SessionStatus,
    },
    /// The assistant started answering a prompt.
    #[serde(rename = "message.start")]
    MessageStart {
        /// The session.
        session_id: String,
        /// The prompt being answered.
        prompt_id: String,
        /// The user's message, as stored.
        user_message: Message,
    },
    /// More of the answer's text.
    #[serde(rename = "message.chunk")]
    MessageChunk {
        /// The session.
        session_id: String,
        /// The prompt being answered.
        prompt_id: String,
        /// New text; never half a UTF-8 character.
        content: String,
    },
    /// The answer is stored.
    #[serde(rename = "message.complete")]
    MessageComplete {
        /// The session.
        session_id: String,
        /// The prompt answered.
        prompt_id: String,
        /// The assistant's message, as stored.
        message: Message,
    },
    /// The answer failed or was cancelled; what was generated before is stored
    /// (in `message`, when anything was).
    #[serde(rename = "message.error")]
    MessageError {
        /// The session.
        session_id: String,
        /// The prompt.
        prompt_id: String,
        /// What went wrong.
        error: EventError,
        /// The partial answer, stored with `finish_reason: cancelled`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<Message>,
    },
    /// The session has no prompt left to run.
    #[serde(rename = "agent.idle")]
    AgentIdle {
        /// The session.
        session_id: String,
    },
    /// The agent starts a round of generation: round 1 answers the prompt, each later round
    /// reads the results of the tools the previous one called.
    #[serde(rename = "agent.thinking")]
    AgentThinking {
        /// The session.
        session_id: String,
        /// The prompt being answered.
        prompt_id: String,
        /// 1 for the first round.
        round: u32,
    },
    /// A tool call is about to run (after its permission, if it needed one).
    #[serde(rename = "tool.call_start")]
    ToolCallStart {
        /// The session.
        session_id: String,
        /// The prompt being answered.
        prompt_id: String,
        /// The call as the model made it.
        call: ToolCall,
    },
    /// A tool call finished; its output goes back to the model.
    #[serde(rename = "tool.call_complete")]
    ToolCallComplete {
        /// The session.
        session_id: String,
        /// The prompt being answered.
        prompt_id: String,
        /// The call's id.
        call_id: String,
        /// The tool's name.
        name: String,
        /// What the tool returned (the `role: tool` message's content).
        output: String,
    },
    /// A tool call failed or was refused; the error goes back to the model as the call's result.
    #[serde(rename = "tool.call_error")]
    ToolCallError {
        /// The session.
        session_id: String,
        /// The prompt being answered.
        prompt_id: String,
        /// The call's id.
        call_id: String,
        /// The tool's name.
        name: String,
        /// What went wrong, for people and for the model.
        error: String,
        /// A stable code: `permission_denied`, `permission_timeout`, `unknown_tool`,
        /// `invalid_arguments`, `path_outside_work_dir`, `timeout`, `failed`, or `unavailable`
        /// (the tool's MCP server is restarting or could not start).
        code: String,
    },
    /// A tool whose policy is `ask` waits for a client's answer: a WebSocket
    /// `permission_reply`, or `POST /api/v1/sessions/{id}/permissions/{request_id}`. No answer
    /// within `timeout_ms` is a refusal.
    #[serde(rename = "tool.permission_request")]
    ToolPermissionRequest {
        /// The session.
        session_id: String,
        /// The prompt being answered.
        prompt_id: String,
        /// What the answer names (the call's id).
        request_id: String,
        /// The call waiting for permission.
        call: ToolCall,
        /// How long the server waits, in milliseconds.
        timeout_ms: u64,
    },
    /// The session's history outgrew its context: the oldest turns left the window the model
    /// sees. The stored transcript is unchanged; the window keeps the agent's system prompt and
    /// the newest whole turns (a turn's tool calls stay with their results).
    #[serde(rename = "session.compacted")]
    SessionCompacted {
        /// The session.
        session_id: String,
        /// The prompt being answered when it happened.
        prompt_id: String,
        /// Messages that left the window this time.
        messages_dropped: u32,
        /// Messages outside the window now, in all.
        messages_out_of_window: u32,
        /// The id of the first message the model still sees.
        first_message_id: String,
        /// The prompt's tokens before.
        prompt_tokens_before: u32,
        /// The prompt's tokens now.
        prompt_tokens_after: u32,
        /// The tokens a sequence of this session may hold (prompt and answer).
        budget_tokens: u32,
    },
    /// The router chose the category and model that answer a session's prompt (the session
    /// names no model, or `auto`).
    #[serde(rename = "route.decided")]
    RouteDecided {
        /// The session.
        session_id: String,
        /// The prompt.
        prompt_id: String,
        /// The decision.
        route: crate::route::Route,
    },
    /// A model started loading (`chorus models load`, or a request for a model not in memory).
    #[serde(rename = "model.loading")]
    ModelLoading {
        /// The model's id.
        model: String,
    },
    /// A model finished loading; with `error` set, it failed.
    #[serde(rename = "model.loaded")]
    ModelLoaded {
        /// The model's id.
        model: String,
        /// Bytes it takes in memory, as the runtime reports them (0 when it failed).
        bytes: u64,
        /// How long the load took, in milliseconds.
        load_ms: u64,
        /// Why it failed, when it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A model left memory.
    #[serde(rename = "model.unloaded")]
    ModelUnloaded {
        /// The model's id.
        model: String,
        /// `expired` (its keep_alive ran out), `evicted` (another model needed the memory),
        /// `requested` (an unload, or `keep_alive: 0`) or `shutdown`.
        reason: String,
    },
}

impl Event {
    /// The event's type, as its `type` field and the SSE `event:` line spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::SessionCreated { .. } => "session.created",
            Event::SessionUpdated { .. } => "session.updated",
            Event::SessionDeleted { .. } => "session.deleted",
            Event::CharacterUpdated { .. } => "character.updated",
            Event::CharacterRestored { .. } => "character.restored",
            Event::ConversationExchange { .. } => "conversation.exchange",
            Event::SessionStatusChanged { .. } => "session.status_changed",
            Event::MessageStart { .. } => "message.start",
            Event::MessageChunk { .. } => "message.chunk",
            Event::MessageComplete { .. } => "message.complete",
            Event::MessageError { .. } => "message.error",
            Event::AgentIdle { .. } => "agent.idle",
            Event::AgentThinking { .. } => "agent.thinking",
            Event::ToolCallStart { .. } => "tool.call_start",
            Event::ToolCallComplete { .. } => "tool.call_complete",
            Event::ToolCallError { .. } => "tool.call_error",
            Event::ToolPermissionRequest { .. } => "tool.permission_request",
            Event::SessionCompacted { .. } => "session.compacted",
            Event::RouteDecided { .. } => "route.decided",
            Event::ModelLoading { .. } => "model.loading",
            Event::ModelLoaded { .. } => "model.loaded",
            Event::ModelUnloaded { .. } => "model.unloaded",
        }
    }

    /// The session the event concerns; `None` for the server's own events (`model.*`).
    pub fn session_id(&self) -> Option<&str> {
        Some(match self {
            Event::SessionCreated { session_id, .. }
            | Event::SessionUpdated { session_id, .. }
            | Event::CharacterUpdated { session_id, .. }
            | Event::CharacterRestored { session_id, .. }
            | Event::ConversationExchange { session_id, .. }
            | Event::SessionDeleted { session_id }
            | Event::SessionStatusChanged { session_id, .. }
            | Event::MessageStart { session_id, .. }
            | Event::MessageChunk { session_id, .. }
            | Event::MessageComplete { session_id, .. }
            | Event::MessageError { session_id, .. }
            | Event::AgentIdle { session_id }
            | Event::AgentThinking { session_id, .. }
            | Event::ToolCallStart { session_id, .. }
            | Event::ToolCallComplete { session_id, .. }
            | Event::ToolCallError { session_id, .. }
            | Event::ToolPermissionRequest { session_id, .. }
            | Event::SessionCompacted { session_id, .. }
            | Event::RouteDecided { session_id, .. } => session_id,
            Event::ModelLoading { .. } | Event::ModelLoaded { .. } | Event::ModelUnloaded { .. } => return None,
        })
    }

    /// The prompt the event belongs to, for the message events.
    pub fn prompt_id(&self) -> Option<&str> {
        match self {
            Event::MessageStart { prompt_id, .. }
            | Event::MessageChunk { prompt_id, .. }
            | Event::MessageComplete { prompt_id, .. }
            | Event::MessageError { prompt_id, .. }
            | Event::AgentThinking { prompt_id, .. }
            | Event::ToolCallStart { prompt_id, .. }
            | Event::ToolCallComplete { prompt_id, .. }
            | Event::ToolCallError { prompt_id, .. }
            | Event::ToolPermissionRequest { prompt_id, .. }
            | Event::SessionCompacted { prompt_id, .. }
            | Event::RouteDecided { prompt_id, .. } => Some(prompt_id),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_type() {
        let e = Event::MessageChunk { session_id: "ses_1".into(), prompt_id: "prm_1".into(), content: "hi".into() };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "message.chunk");
        assert_eq!(json["type"], e.kind());
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), e);
    }

    #[test]
    fn prompt_request_defaults_and_async_field() {
        let p: PromptRequest = serde_json::from_str(r#"{"content":"hi","async":true}"#).unwrap();
        assert_eq!((p.stream, p.is_async, p.priority), (false, true, Priority::Normal));
        assert!(serde_json::from_str::<PromptRequest>(r#"{"content":"hi","priority":"urgent"}"#).is_err());
    }
}
