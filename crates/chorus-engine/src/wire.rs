//! The engine's session records in their wire form (`chorus_proto::native`),
//! for the event payloads the [`EventBus`](crate::events::EventBus) logs and
//! the server's responses, so both always agree.

use chorus_proto::native;

use crate::store::{Message, Session, SessionStatus, TokenUsage, ToolCall};

/// A session as the native API shows it; `queue_length` from the live queue.
pub fn session(s: &Session, queue_length: u32) -> native::Session {
    native::Session {
        id: s.id.to_string(),
        created_at: s.created_at,
        updated_at: s.updated_at,
        title: s.title.clone(),
        work_dir: s.work_dir.clone(),
        agent: s.agent.clone(),
        model: s.model.clone(),
        status: status(s.status),
        character: s.character.clone(),
        message_count: s.message_count,
        token_usage: usage(s.token_usage),
        queue_length,
    }
}

/// A status in its wire form.
pub fn status(s: SessionStatus) -> native::SessionStatus {
    match s {
        SessionStatus::Idle => native::SessionStatus::Idle,
        SessionStatus::Busy => native::SessionStatus::Busy,
        SessionStatus::Cancelled => native::SessionStatus::Cancelled,
        SessionStatus::Error => native::SessionStatus::Error,
    }
}

fn usage(u: TokenUsage) -> native::TokenUsage {
    native::TokenUsage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
        cached_tokens: u.cached_tokens,
    }
}

/// A tool call in its wire form.
pub fn tool_call(c: &ToolCall) -> native::ToolCall {
    native::ToolCall {
        id: c.id.clone(),
        kind: chorus_proto::openai::ToolType::Function,
        function: native::FunctionCall { name: c.name.clone(), arguments: c.arguments.clone() },
    }
}

/// A stored message in its wire form.
pub fn message(m: &Message) -> native::Message {
    native::Message {
        id: m.id.clone(),
        session_id: m.session_id.to_string(),
        seq: m.seq,
        created_at: m.created_at,
        role: m.role.as_str().to_owned(),
        content: m.content.clone(),
        tool_calls: m.tool_calls.iter().map(tool_call).collect(),
        tool_call_id: m.tool_call_id.clone(),
        usage: m.usage.map(usage),
        finish_reason: m.finish_reason.clone(),
        // Written by the engine from the same type; an unreadable one is left out.
        metadata: m.metadata.as_deref().and_then(|j| serde_json::from_str(j).ok()),
    }
}

/// A message record from its wire form (a snapshot's transcript), placed in session `id`;
/// `None` for an unknown role.
pub fn message_record(m: &native::Message, id: &crate::store::SessionId) -> Option<Message> {
    Some(Message {
        id: m.id.clone(),
        session_id: id.clone(),
        seq: m.seq,
        created_at: m.created_at,
        role: crate::Role::parse(&m.role)?,
        content: m.content.clone(),
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| ToolCall {
                id: c.id.clone(),
                name: c.function.name.clone(),
                arguments: c.function.arguments.clone(),
            })
            .collect(),
        tool_call_id: m.tool_call_id.clone(),
        usage: m.usage.map(|u| TokenUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_tokens: u.cached_tokens,
        }),
        finish_reason: m.finish_reason.clone(),
        metadata: m.metadata.as_ref().and_then(|v| serde_json::to_string(v).ok()),
    })
}

/// A router decision with its numbers: `POST /api/v1/route`'s answer and the MCP `route` tool's.
pub fn route_response(d: &crate::RouteDecision) -> chorus_proto::route::RouteResponse {
    let chorus_proto::route::Route { category, stage, score, margin, model } = route(d);
    chorus_proto::route::RouteResponse {
        category,
        stage,
        score,
        margin,
        model,
        scores: d.scores.iter().cloned().collect(),
        elapsed_ms: d.elapsed.as_secs_f64() * 1000.0,
        header: d.header(),
    }
}

/// A router decision on the wire.
pub fn route(d: &crate::RouteDecision) -> chorus_proto::route::Route {
    chorus_proto::route::Route {
        category: d.category.clone(),
        stage: d.stage.as_str().to_owned(),
        score: d.score,
        margin: d.margin,
        model: d.model.clone(),
    }
}
