//! `GET /api/v1/info` and the agents: `GET /api/v1/agents`,
//! `GET /api/v1/agents/{name}`.

use axum::Json;
use axum::extract::{Path, State};
use chorus_engine::Agent;
use chorus_proto::native;
use chorus_proto::openai::ErrorResponse;

use crate::{ApiError, AppState};

fn agent(a: &Agent) -> native::Agent {
    native::Agent {
        name: a.name.clone(),
        description: a.description.clone(),
        system_prompt: a.system_prompt.clone(),
        model: a.model.clone(),
        tools: a.tools.clone(),
    }
}

/// What this server is
///
/// Version, uptime, loaded models, session store, agents, whether the router has a choice of
/// models, and the URL phones open. Also at `GET /info`, the AI Tester seed's path.
#[utoipa::path(
    get,
    path = "/api/v1/info",
    operation_id = "getInfo",
    tag = "health",
    responses((status = 200, description = "The server", body = native::Info))
)]
pub(crate) async fn info(State(state): State<AppState>) -> Json<native::Info> {
    let engine = &state.engine;
    Json(native::Info {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_s: engine.uptime_s(),
        models: engine.models().into_iter().map(|m| m.id).collect(),
        store: engine.store().kind().into(),
        agents: engine.agents().iter().map(|a| a.name.clone()).collect(),
        router: engine.router().has_choice(),
        url: state.config.phone_url(false),
    })
}

/// List the agents
///
/// The default agent first.
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    operation_id = "listAgents",
    tag = "agents",
    responses((status = 200, description = "The agents", body = native::AgentList))
)]
pub(crate) async fn list(State(state): State<AppState>) -> Json<native::AgentList> {
    Json(native::AgentList { object: "list".into(), data: state.engine.agents().iter().map(agent).collect() })
}

/// Retrieve an agent
#[utoipa::path(
    get,
    path = "/api/v1/agents/{name}",
    operation_id = "retrieveAgent",
    tag = "agents",
    params(("name" = String, Path, description = "The agent's name")),
    responses(
        (status = 200, description = "The agent", body = native::Agent),
        (status = 404, description = "No such agent (`agent_not_found`)", body = ErrorResponse),
    )
)]
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<native::Agent>, ApiError> {
    state
        .engine
        .agents()
        .iter()
        .find(|a| a.name == name)
        .map(|a| Json(agent(a)))
        .ok_or_else(|| ApiError::not_found("agent", format!("no agent named `{name}`; GET /api/v1/agents lists them")))
}
