//! The content router over HTTP: the `x-chorus-route` header on routed answers, and
//! `POST /api/v1/route`, the dry run that says where a prompt would go. The routing itself is
//! the engine's ([`chorus_engine::route`]).

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::Response;
use chorus_engine::{RouteDecision, RouteInput};
use chorus_proto::openai::ErrorResponse;
use chorus_proto::route::{RouteRequest, RouteResponse};

use crate::extract::AppJson;
use crate::{ApiError, AppState};

/// The header a routed answer carries: `category=code; stage=semantic; score=0.83; model=qwen-coder`.
pub(crate) const HEADER: &str = "x-chorus-route";

/// `response` with the `x-chorus-route` header when the router chose its model.
pub(crate) fn with_header(mut response: Response, decision: Option<&RouteDecision>) -> Response {
    if let Some(d) = decision
        && let Ok(value) = HeaderValue::from_str(&d.header())
    {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// Route a prompt without answering it
///
/// Says which category and model a request with this prompt and no `model` (or `model:
/// "auto"`) would get, which stage decided, and the semantic scores behind it; the same
/// decision as the `x-chorus-route` header of such a request. Nothing is generated (the
/// embedding model may load).
#[utoipa::path(
    post,
    path = "/api/v1/route",
    operation_id = "routePrompt",
    tag = "models",
    request_body = RouteRequest,
    responses(
        (status = 200, description = "The decision", body = RouteResponse),
        (status = 400, description = "No `prompt` or `messages`, or an unknown `category`", body = ErrorResponse),
    )
)]
pub(crate) async fn dry_run(
    State(state): State<AppState>,
    AppJson(req): AppJson<RouteRequest>,
) -> Result<Json<RouteResponse>, ApiError> {
    let text = match (req.prompt, req.messages) {
        (Some(p), _) => p,
        (None, Some(messages)) => {
            let messages = crate::openai::messages(messages)?;
            chorus_engine::route::prompt_text(&chorus_engine::Prompt::Chat(messages)).to_owned()
        }
        (None, None) => return Err(ApiError::invalid(Some("prompt".to_owned()), "give `prompt` or `messages`")),
    };
    if text.trim().is_empty() && req.category.is_none() {
        return Err(ApiError::invalid(Some("prompt".to_owned()), "the prompt is empty"));
    }
    let d = state.engine.route(RouteInput { text: &text, endpoint: None, category: req.category.as_deref() }).await?;
    Ok(Json(chorus_engine::wire::route_response(&d)))
}
