//! Errors: [`UpstreamError`] (a configuration [`UpstreamBackend::new`] refuses), and the
//! mapping of what upstreams answer into [`BackendError::Upstream`]: OpenAI's error object
//! (`{"error": {"message", "type", "param", "code"}}`, OpenAI API reference, "Errors"), the
//! variants other servers send (TGI's `{"error": "…"}`, vLLM's older top-level
//! `{"message": …}`), a bare status, and connection failures (status 0).
//!
//! [`UpstreamBackend::new`]: crate::UpstreamBackend::new

use chorus_engine::BackendError;
use serde_json::Value;

/// Why an [`UpstreamBackend`](crate::UpstreamBackend) cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// `urls` is empty.
    #[error("an upstream model needs at least one url")]
    NoUrls,
    /// A URL does not parse, or is not `http`/`https`.
    #[error("invalid upstream url `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A setting out of its range (such as a zero `health_interval`).
    #[error("invalid upstream setting `{field}`: {message}")]
    InvalidSetting {
        /// The [`UpstreamConfig`](crate::UpstreamConfig) field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// [`UpstreamBackend::new`](crate::UpstreamBackend::new) was called outside a tokio
    /// runtime, where it cannot start its health checks.
    #[error("the upstream backend must be created inside a tokio runtime")]
    NoRuntime,
    /// The HTTP client could not be built (its TLS setup failed).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// The most characters of a non-JSON error body kept in a message.
const SNIPPET_CHARS: usize = 200;

/// The error an upstream answered with HTTP `status` and `body`.
pub(crate) fn from_response(url: &str, status: u16, body: &[u8]) -> BackendError {
    if let Ok(value) = serde_json::from_slice::<Value>(body)
        && let Some(error) = from_error_value(status, &value)
    {
        return error;
    }
    let text = String::from_utf8_lossy(body);
    let snippet: String = text.trim().chars().take(SNIPPET_CHARS).collect();
    let reason = reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("error");
    let message = if snippet.is_empty() {
        format!("{url} answered {status} {reason}")
    } else {
        format!("{url} answered {status} {reason}: {snippet}")
    };
    BackendError::Upstream { status, message, param: None }
}

/// The error in a JSON body or stream event, if it holds one: `{"error": {"message", "param",
/// …}}` (OpenAI, llama-server, chorus, vLLM), `{"error": "…"}` (TGI), or vLLM's older
/// `{"object": "error", "message": …}`.
pub(crate) fn from_error_value(status: u16, value: &Value) -> Option<BackendError> {
    let (message, param) = match value.get("error") {
        Some(Value::Object(error)) => (error.get("message"), error.get("param")),
        Some(message @ Value::String(_)) => (Some(message), None),
        _ if value.get("object").and_then(Value::as_str) == Some("error") => (value.get("message"), value.get("param")),
        _ => return None,
    };
    let message = match message {
        Some(Value::String(m)) => m.clone(),
        Some(other) => other.to_string(),
        None => value.to_string(),
    };
    let param = match param {
        Some(Value::String(p)) => Some(p.clone()),
        _ => None,
    };
    Some(BackendError::Upstream { status, message, param })
}

/// The error of a request to `url` that got no answer (refused, reset, timed out, a broken body).
pub(crate) fn unreachable(url: &str, error: &reqwest::Error) -> BackendError {
    // reqwest's own message is generic ("error sending request"); the innermost cause names
    // what happened (connection refused, dns error, …).
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    let what = if error.is_timeout() { "timed out" } else { "could not be reached" };
    BackendError::Upstream { status: 0, message: format!("{url} {what}: {reason}"), param: None }
}

/// An answer from `url` that broke off or made no sense: status 0.
pub(crate) fn broken(url: &str, what: impl std::fmt::Display) -> BackendError {
    BackendError::Upstream { status: 0, message: format!("{url}: {what}"), param: None }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn upstream(e: BackendError) -> (u16, String, Option<String>) {
        match e {
            BackendError::Upstream { status, message, param } => (status, message, param),
            other => panic!("not an upstream error: {other:?}"),
        }
    }

    #[test]
    fn openai_error_objects_keep_message_and_param() {
        let body = br#"{"error": {"message": "bad temperature", "type": "invalid_request_error", "param": "temperature", "code": null}}"#;
        let (status, message, param) = upstream(from_response("http://u", 400, body));
        assert_eq!((status, message.as_str(), param.as_deref()), (400, "bad temperature", Some("temperature")));
    }

    #[test]
    fn other_servers_shapes_are_read() {
        let tgi = br#"{"error": "Input validation error", "error_type": "validation"}"#;
        assert_eq!(upstream(from_response("http://u", 422, tgi)).1, "Input validation error");
        let vllm = br#"{"object": "error", "message": "model not found", "type": "NotFoundError", "param": null, "code": 404}"#;
        assert_eq!(upstream(from_response("http://u", 404, vllm)).1, "model not found");
    }

    #[test]
    fn plain_bodies_become_a_snippet_with_the_status() {
        let (status, message, _) = upstream(from_response("http://u", 500, b"boom\n"));
        assert_eq!(status, 500);
        assert_eq!(message, "http://u answered 500 Internal Server Error: boom");
        let (_, message, _) = upstream(from_response("http://u", 503, b""));
        assert_eq!(message, "http://u answered 503 Service Unavailable");
        let long = "x".repeat(1000);
        assert!(upstream(from_response("http://u", 502, long.as_bytes())).1.len() < 300);
    }

    #[test]
    fn json_without_an_error_is_a_snippet() {
        let (_, message, _) = upstream(from_response("http://u", 500, br#"{"detail": "nope"}"#));
        assert!(message.contains(r#"{"detail": "nope"}"#), "{message}");
    }
}
