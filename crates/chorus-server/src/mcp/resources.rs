//! The MCP resources (MCP specification 2025-06-18, "Resources"): every session with its
//! transcript (`chorus://sessions/{id}`, named by its title) and every loaded model
//! (`chorus://models/{id}`), both `application/json`. `resources/list` lists them all (no
//! pagination: a store's sessions fit one answer), `resources/templates/list` gives the two URI
//! templates, `resources/read` returns the JSON (`chorus_proto::mcp::SessionResource`, or
//! `chorus_proto::mcp::ModelInfo`). A URI that names nothing chorus has is the spec's
//! resource-not-found error (`-32002`, with the URI in `data`; rmcp answers `-32602` instead to
//! clients of protocol 2026-07-28 and later, as that revision asks).

use chorus_engine::store::{Session, SessionId, SessionStatus};
use chorus_engine::{Engine, ModelInfo, SessionError, wire};
use chorus_proto::mcp::{self as proto, ResourceUri};
use rmcp::ErrorData;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource, ResourceContents, ResourceTemplate,
};

/// `resources/list`: the sessions (most recently updated first), then the models.
pub(super) async fn list(engine: &Engine) -> Result<ListResourcesResult, ErrorData> {
    let sessions = engine.store().list_sessions().await.map_err(internal)?;
    let mut resources: Vec<Resource> = sessions.iter().map(session_resource).collect();
    resources.extend(engine.models().iter().filter_map(|m| m.info.as_ref()).map(model_resource));
    Ok(ListResourcesResult::with_all_items(resources))
}

/// `resources/templates/list`.
pub(super) fn templates() -> ListResourceTemplatesResult {
    ListResourceTemplatesResult::with_all_items(vec![
        ResourceTemplate::new(proto::SESSION_URI_TEMPLATE, "session")
            .with_title("Session")
            .with_description(
                "A chorus session and its transcript: the session's fields and its messages, oldest first",
            )
            .with_mime_type(proto::RESOURCE_MIME_TYPE),
        ResourceTemplate::new(proto::MODEL_URI_TEMPLATE, "model")
            .with_title("Model")
            .with_description("A model chorus has loaded: architecture, context size, parameters, file size")
            .with_mime_type(proto::RESOURCE_MIME_TYPE),
    ])
}

/// `resources/read`.
pub(super) async fn read(engine: &Engine, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let json = match ResourceUri::parse(uri) {
        Some(ResourceUri::Session(id)) => {
            let id = SessionId::from_string(id);
            let session = match engine.session(&id).await {
                Ok(session) => session,
                Err(SessionError::NotFound(_)) => return Err(not_found(uri)),
                Err(e) => return Err(internal(e)),
            };
            let messages = engine.store().messages(&id).await.map_err(internal)?;
            let resource = proto::SessionResource {
                session: wire::session(&session, engine.queue_length(&id)),
                messages: messages.iter().map(wire::message).collect(),
            };
            serde_json::to_string_pretty(&resource).map_err(internal)?
        }
        Some(ResourceUri::Model(id)) => {
            let loaded = engine.resolve(Some(&id)).ok().and_then(|id| engine.pool().loaded(&id));
            match loaded {
                Some(backend) => serde_json::to_string_pretty(&model_info(backend.info())).map_err(internal)?,
                None => return Err(not_found(uri)),
            }
        }
        None => return Err(not_found(uri)),
    };
    Ok(ReadResourceResult::new(vec![ResourceContents::text(json, uri).with_mime_type(proto::RESOURCE_MIME_TYPE)]))
}

/// A model in its MCP wire form (`list_models` and its resource).
pub(super) fn model_info(m: &ModelInfo) -> proto::ModelInfo {
    proto::ModelInfo {
        id: m.id.clone(),
        uri: ResourceUri::Model(m.id.clone()).to_string(),
        architecture: m.architecture.clone(),
        n_ctx: m.n_ctx,
        n_ctx_slot: m.n_ctx_slot,
        n_ctx_train: m.n_ctx_train,
        n_vocab: m.n_vocab,
        n_parallel: m.n_parallel,
        n_params: m.n_params,
        size: m.size,
        created: m.created,
    }
}

/// A session as `list_sessions` shows it.
pub(super) fn session_summary(s: &Session) -> proto::SessionSummary {
    proto::SessionSummary {
        id: s.id.to_string(),
        uri: ResourceUri::Session(s.id.to_string()).to_string(),
        title: s.title.clone(),
        agent: s.agent.clone(),
        model: s.model.clone(),
        status: status(s.status).to_owned(),
        message_count: s.message_count,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

fn status(s: SessionStatus) -> &'static str {
    match s {
        SessionStatus::Idle => "idle",
        SessionStatus::Busy => "busy",
        SessionStatus::Cancelled => "cancelled",
        SessionStatus::Error => "error",
    }
}

fn session_resource(s: &Session) -> Resource {
    let id = s.id.to_string();
    // The name is what a client shows in its list: the title, or the id of an untitled session.
    let name = if s.title.trim().is_empty() { id.clone() } else { s.title.clone() };
    Resource::new(ResourceUri::Session(id.clone()).to_string(), name)
        .with_title(if s.title.trim().is_empty() { format!("Session {id}") } else { s.title.clone() })
        .with_description(format!(
            "Session {id} with the agent `{}`: {} messages, {}",
            s.agent,
            s.message_count,
            status(s.status)
        ))
        .with_mime_type(proto::RESOURCE_MIME_TYPE)
}

fn model_resource(m: &ModelInfo) -> Resource {
    Resource::new(ResourceUri::Model(m.id.clone()).to_string(), m.id.clone())
        .with_title(format!("Model {}", m.id))
        .with_description(format!(
            "{} model, {} parameters, {} tokens of context ({} per sequence)",
            m.architecture, m.n_params, m.n_ctx, m.n_ctx_slot
        ))
        .with_mime_type(proto::RESOURCE_MIME_TYPE)
}

fn not_found(uri: &str) -> ErrorData {
    ErrorData::resource_not_found(
        format!("no resource {uri}; resources/list lists them (chorus://sessions/{{id}}, chorus://models/{{id}})"),
        Some(serde_json::json!({ "uri": uri })),
    )
}

/// A server fault: logged with its detail, answered without it.
pub(super) fn internal(detail: impl std::fmt::Display) -> ErrorData {
    tracing::error!(%detail, "mcp: internal error");
    ErrorData::internal_error("the server had an error while processing the request", None)
}
