//! [`AppJson`]: a JSON body extractor whose every failure (syntax, wrong type,
//! missing field, body too large) is a 4xx in OpenAI's error format, with
//! `param` naming the offending field path (through `serde_path_to_error`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::{ApiError, AppState};

/// A deserialized JSON request body.
pub(crate) struct AppJson<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.config.body_limit;
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(limit)
            } else {
                ApiError::invalid(None, format!("cannot read the request body: {e}"))
            }
        })?;
        parse(&bytes).map(AppJson)
    }
}

/// Parse a JSON body, naming the failing field.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(None, format!("the request body is not valid JSON: {inner}"))
        } else if path == "." {
            ApiError::invalid(None, format!("invalid request body: {inner}"))
        } else {
            ApiError::invalid(Some(path.clone()), format!("invalid value for `{path}`: {inner}"))
        }
    })
}
