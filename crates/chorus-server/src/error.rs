//! Errors become responses here and nowhere else: [`ApiError`] renders
//! OpenAI's error object (`{"error": {"message", "type", "param", "code"}}`)
//! with a stable `type`/`code`, and server faults are logged, never leaked.

use std::any::Any;

use axum::Json;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chorus_engine::store::StoreError;
use chorus_engine::{BackendError, EngineError, SessionError};
use chorus_proto::openai::{ErrorBody, ErrorResponse};

/// An error answered in OpenAI's format.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<String>,
    code: Option<&'static str>,
}

impl ApiError {
    /// 400 `invalid_request_error` about `param`.
    pub fn invalid(param: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            param: param.into(),
            code: None,
        }
    }

    /// 401 `authentication_error`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            kind: "authentication_error",
            message: message.into(),
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    /// 404 `model_not_found`.
    pub fn model_not_found(model: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            message: format!("the model `{model}` does not exist; GET /v1/models lists the models this server has"),
            param: Some("model".into()),
            code: Some("model_not_found"),
        }
    }

    /// 403 for an action the server's policy refuses (code `permission_denied`).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            kind: "permission_error",
            message: message.into(),
            param: None,
            code: Some("permission_denied"),
        }
    }

    /// 404 for an object of the native API (`session`, `agent`): code `{what}_not_found`.
    pub fn not_found(what: &'static str, message: impl Into<String>) -> Self {
        let code = match what {
            "session" => "session_not_found",
            "agent" => "agent_not_found",
            _ => "not_found",
        };
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            message: message.into(),
            param: None,
            code: Some(code),
        }
    }

    /// 409: a prompt was cancelled before it was answered.
    pub fn cancelled() -> Self {
        Self {
            status: StatusCode::CONFLICT,
            kind: "invalid_request_error",
            message: "the prompt was cancelled before it was answered".into(),
            param: None,
            code: Some("cancelled"),
        }
    }

    /// 413: the body is over the server's limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "invalid_request_error",
            message: format!("the request body is larger than the server's limit of {limit} bytes"),
            param: None,
            code: Some("request_too_large"),
        }
    }

    /// 500 `server_error`; `detail` is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            message: "the server had an error while processing the request".into(),
            param: None,
            code: Some("server_error"),
        }
    }

    /// 503 while the model cannot take work.
    pub fn unavailable() -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            message: "the model is not available; the server may be shutting down".into(),
            param: None,
            code: Some("model_unavailable"),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error object, for responses and for errors sent inside a stream.
    pub fn body(&self) -> ErrorResponse {
        ErrorResponse {
            error: ErrorBody {
                message: self.message.clone(),
                kind: self.kind.to_owned(),
                param: self.param.clone(),
                code: self.code.map(str::to_owned),
            },
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::ModelNotFound(model) => ApiError::model_not_found(&model),
            EngineError::Invalid(v) => ApiError::invalid(Some(v.param.to_owned()), v.message),
            EngineError::Backend(b) => b.into(),
        }
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::PromptTooLong { .. } => {
                let mut err = ApiError::invalid(Some("messages".to_owned()), e.to_string());
                err.code = Some("context_length_exceeded");
                err
            }
            BackendError::Template(_) | BackendError::InvalidPrompt(_) => {
                ApiError::invalid(Some("messages".to_owned()), e.to_string())
            }
            BackendError::InvalidSchema { param, .. } => ApiError::invalid(Some(param.to_owned()), e.to_string()),
            BackendError::Unavailable => ApiError::unavailable(),
            BackendError::Decode(_) => ApiError::internal(e),
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::NotFound(id) => {
                ApiError::not_found("session", format!("session {id} not found; GET /api/v1/sessions lists them"))
            }
            SessionError::AgentNotFound(_) => {
                let mut err = ApiError::invalid(Some("agent".into()), format!("{e}; GET /api/v1/agents lists them"));
                err.code = Some("agent_not_found");
                err
            }
            SessionError::Busy(_) => Self {
                status: StatusCode::CONFLICT,
                kind: "invalid_request_error",
                message: e.to_string(),
                param: None,
                code: Some("session_busy"),
            },
            SessionError::EmptyPrompt => ApiError::invalid(Some("content".into()), e.to_string()),
            SessionError::PermissionNotPending(_) => ApiError::not_found("permission request", e.to_string()),
            SessionError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::SessionNotFound(id) => {
                ApiError::not_found("session", format!("session {id} not found; GET /api/v1/sessions lists them"))
            }
            StoreError::SessionExists(id) => Self {
                status: StatusCode::CONFLICT,
                kind: "invalid_request_error",
                message: format!("session {id} exists already"),
                param: None,
                code: Some("session_exists"),
            },
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Fallback for unknown routes: 404 in OpenAI's format.
pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        message: format!("unknown route {method} {}", uri.path()),
        param: None,
        code: Some("not_found"),
    }
}

/// Fallback for a known route with the wrong method: 405 in OpenAI's format.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        kind: "invalid_request_error",
        message: format!("{method} is not allowed on {}", uri.path()),
        param: None,
        code: Some("method_not_allowed"),
    }
}

/// A handler panicked: answer 500 like any internal error.
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::internal(format_args!("handler panicked: {detail}")).into_response()
}
