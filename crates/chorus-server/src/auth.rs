//! API-key authentication: `Authorization: Bearer KEY` against the configured
//! keys, compared in constant time; a 401 `authentication_error` otherwise.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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
        .map(str::trim);
    match given {
        None => ApiError::unauthorized("missing API key: send the header `Authorization: Bearer KEY`").into_response(),
        Some(given) if keys.iter().any(|k| bool::from(k.as_bytes().ct_eq(given.as_bytes()))) => next.run(request).await,
        Some(_) => ApiError::unauthorized("incorrect API key provided").into_response(),
    }
}
