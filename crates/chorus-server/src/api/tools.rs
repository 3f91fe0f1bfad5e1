//! The agent's tools over HTTP: `GET /api/v1/tools` (name, description,
//! parameters, permission policy; the built-ins, then the tools of the MCP
//! servers, which are started if needed), `POST /api/v1/tools/{name}/execute` (run a
//! tool directly, confined to a session's work dir), and
//! `POST /api/v1/sessions/{id}/permissions/{request_id}` (answer a
//! `tool.permission_request`, as the WebSocket's `permission_reply` does).

use std::path::PathBuf;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chorus_engine::store::SessionId;
use chorus_engine::tools::{Permission, ToolContext};
use chorus_proto::native;
use chorus_proto::openai::ErrorResponse;

use crate::extract::AppJson;
use crate::{ApiError, AppState};

fn permission(p: Permission) -> native::Permission {
    match p {
        Permission::Allow => native::Permission::Allow,
        Permission::Ask => native::Permission::Ask,
        Permission::Deny => native::Permission::Deny,
    }
}

/// List the tools
///
/// Every tool agents can call, with its JSON schema and permission policy: the built-in tools,
/// then those of the configured MCP servers (`SERVER.TOOL`), which are started if they are not
/// running; a server that cannot start contributes none (`GET /api/v1/mcp/servers` says why).
#[utoipa::path(
    get,
    path = "/api/v1/tools",
    operation_id = "listTools",
    tag = "tools",
    responses((status = 200, description = "The tools", body = native::ToolList))
)]
pub(crate) async fn list(State(state): State<AppState>) -> Json<native::ToolList> {
    let tools = state.engine.tools().tool_set(None).await;
    let data = tools
        .tools()
        .iter()
        .map(|t| {
            let d = t.definition();
            native::ToolInfo {
                permission: permission(tools.permission(&d.name)),
                name: d.name,
                description: d.description.unwrap_or_default(),
                parameters: d.parameters,
            }
        })
        .collect();
    Json(native::ToolList { object: "list".into(), data })
}

/// Run a tool
///
/// Runs the tool at once for the caller, in the work dir of `session_id` (or the server's
/// default work dir). The caller's request is its own consent, so `ask` tools run; `deny` tools
/// are refused with 403. A tool that fails answers 200 with `error` and `code` set.
#[utoipa::path(
    post,
    path = "/api/v1/tools/{name}/execute",
    operation_id = "executeTool",
    tag = "tools",
    params(("name" = String, Path, description = "The tool's name")),
    request_body = native::ToolExecuteRequest,
    responses(
        (status = 200, description = "The tool ran (or failed as a tool)", body = native::ToolExecuteResult),
        (status = 403, description = "The tool's policy is deny", body = ErrorResponse),
        (status = 404, description = "No such tool or session", body = ErrorResponse),
    )
)]
pub(crate) async fn execute(
    State(state): State<AppState>,
    Path(name): Path<String>,
    AppJson(request): AppJson<native::ToolExecuteRequest>,
) -> Result<Json<native::ToolExecuteResult>, ApiError> {
    // Only the provider the name belongs to is started, if needed.
    let tools = state.engine.tools().tool_set(Some(std::slice::from_ref(&name))).await;
    if tools.get(&name).is_none() {
        return Err(ApiError::not_found("tool", format!("there is no tool `{name}`; GET /api/v1/tools lists them")));
    }
    if tools.permission(&name) == Permission::Deny {
        return Err(ApiError::forbidden(format!("the server's policy for the tool `{name}` is deny")));
    }
    let work_dir = match &request.session_id {
        Some(id) => state.engine.session(&SessionId::from_string(id.clone())).await?.work_dir,
        None => state.engine.default_work_dir().to_owned(),
    };
    let context = ToolContext { work_dir: PathBuf::from(work_dir) };
    let arguments = serde_json::Value::Object(request.arguments).to_string();
    let result = tools.call(&context, &name, &arguments).await;
    Ok(Json(match result {
        Ok(output) => native::ToolExecuteResult { name, output: Some(output), error: None, code: None },
        Err(e) => native::ToolExecuteResult {
            name,
            output: None,
            error: Some(e.to_string()),
            code: Some(e.code().to_owned()),
        },
    }))
}

/// Answer a permission request
///
/// Allow or refuse a tool call that waits after a `tool.permission_request` event.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{id}/permissions/{request_id}",
    operation_id = "replyToolPermission",
    tag = "tools",
    params(
        ("id" = String, Path, description = "The session's id"),
        ("request_id" = String, Path, description = "The `request_id` of the `tool.permission_request` event"),
    ),
    request_body = native::PermissionReply,
    responses(
        (status = 204, description = "The answer reached the waiting call"),
        (status = 404, description = "No such request waits in this session", body = ErrorResponse),
    )
)]
pub(crate) async fn reply(
    State(state): State<AppState>,
    Path((id, request_id)): Path<(String, String)>,
    AppJson(reply): AppJson<native::PermissionReply>,
) -> Result<StatusCode, ApiError> {
    state.engine.reply_permission(&SessionId::from_string(id), &request_id, reply.allow)?;
    Ok(StatusCode::NO_CONTENT)
}
