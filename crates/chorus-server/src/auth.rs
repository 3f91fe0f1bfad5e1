//! API-key authentication: `Authorization: Bearer KEY` against the configured
//! keys, compared in constant time; a 401 `authentication_error` otherwise.
//!
//! A browser's `WebSocket` cannot send headers, so without an `Authorization` header the key
//! may come as a WebSocket subprotocol: `Sec-WebSocket-Protocol: chorus, bearer.B64`, `B64` the
//! key's base64url encoding without padding (subprotocols are tokens, a key need not be one), as
//! Kubernetes carries bearer tokens for browsers. `/ws` answers with the `chorus` subprotocol.

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

pub(crate) async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let keys = &state.config.api_keys;
    if keys.is_empty() {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|v| v.trim().as_bytes().to_vec())
        .or_else(|| subprotocol_key(request.headers()));
    match given {
        None => ApiError::unauthorized("missing API key: send the header `Authorization: Bearer KEY`").into_response(),
        Some(given) if keys.iter().any(|k| bool::from(k.as_bytes().ct_eq(&given))) => next.run(request).await,
        Some(_) => ApiError::unauthorized("incorrect API key provided").into_response(),
    }
}

/// The key a WebSocket handshake offers as the subprotocol `bearer.B64`; a `B64` that is not
/// base64url counts as a wrong key (empty), not as a missing one.
fn subprotocol_key(headers: &HeaderMap) -> Option<Vec<u8>> {
    headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("bearer."))
        .map(|b64| URL_SAFE_NO_PAD.decode(b64).unwrap_or_default())
}
