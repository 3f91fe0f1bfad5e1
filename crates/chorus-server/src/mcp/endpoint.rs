//! The `/mcp` endpoint: `rmcp`'s streamable HTTP transport (MCP specification 2025-06-18,
//! "Transports: Streamable HTTP"; `POST` messages, `GET` a server-to-client stream, `DELETE`
//! the session) serving a [`ChorusMcp`] per MCP session, in the server's router.
//!
//! Layers, outermost first: the Host/Origin check (`guard`: 403), then the API key
//! (`Authorization: Bearer KEY` when the server has keys: 401), then the count of `POST`s in
//! flight that a graceful shutdown waits for (`lifecycle`), then rmcp. Sessions are stateful
//! (`Mcp-Session-Id`, kept in memory by rmcp's `LocalSessionManager`), so a client may hold
//! several request streams and a `GET` stream at once; clients of protocol 2026-07-28 and later
//! are served statelessly, as that revision asks. Responses are server-sent events, so progress
//! notifications reach the client while a tool runs. Sessions end with the client's `DELETE`,
//! after rmcp's idle timeout, or at shutdown once no `POST` is in flight (`lifecycle`).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use futures::StreamExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::ChorusMcp;
use super::guard::{self, HostPolicy};
use super::lifecycle::InFlight;
use crate::{AppState, auth};

/// The path of the endpoint.
pub(crate) const PATH: &str = "/mcp";

/// The `/mcp` route, with its Host/Origin check and API-key check.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let config = StreamableHttpServerConfig::default()
        // `guard` checks Host and Origin, in the server's error format.
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(state.config.body_limit)
        // At shutdown: once no `POST` is in flight, or at the shutdown timeout (see `lifecycle`).
        .with_cancellation_token(state.mcp.stop.clone());
    let engine = state.engine.clone();
    let service = StreamableHttpService::new(
        move || Ok(ChorusMcp::new(engine.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let policy = Arc::new(HostPolicy::for_bind(state.config.bind));
    Router::new()
        .route_service(PATH, service)
        .route_layer(middleware::from_fn_with_state(state.mcp.posts.clone(), count_posts))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_key))
        .route_layer(middleware::from_fn_with_state(policy, guard::check))
}

/// Counts a `POST` in flight until its answer (one JSON body, or the request's event stream,
/// which ends after the response) has been sent or dropped; a `GET` stream is not counted.
async fn count_posts(State(posts): State<Arc<InFlight>>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let post = posts.enter();
    let (parts, body) = next.run(request).await.into_parts();
    let body = Body::from_stream(body.into_data_stream().map(move |chunk| {
        // The stream owns the guard: the post ends when the body is done or dropped.
        let _in_flight = &post;
        chunk
    }));
    Response::from_parts(parts, body)
}
