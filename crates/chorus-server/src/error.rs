//! Errors become responses here and nowhere else: [`ApiError`] renders
//! OpenAI's error object (`{"error": {"message", "type", "param", "code"}}`)
//! with a stable `type`/`code`, and server faults are logged, never leaked.

use std::any::Any;

use axum::Json;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chorus_engine::character::CharacterError;
use chorus_engine::store::StoreError;
use chorus_engine::{BackendError, EngineError, ErrorClass, PublicError, PullError, SessionError};
use chorus_proto::openai::{ErrorBody, ErrorResponse};

/// An error answered in OpenAI's format.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    param: Option<String>,
    code: Option<&'static str>,
    /// Seconds for a `Retry-After` header (a 503 from a full model pool).
    retry_after: Option<u64>,
    /// `(n_prompt_tokens, n_ctx)` of an `exceed_context_size_error`.
    context_size: Option<(u32, u32)>,
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
            retry_after: None,
            context_size: None,
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
            retry_after: None,
            context_size: None,
        }
    }

    /// 404 `model_not_found`.
    pub fn model_not_found(model: &str) -> Self {
        EngineError::ModelNotFound(model.to_owned()).into()
    }

    /// 403 for an action the server's policy refuses (code `permission_denied`).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            kind: "permission_error",
            message: message.into(),
            param: None,
            code: Some("permission_denied"),
            retry_after: None,
            context_size: None,
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
            retry_after: None,
            context_size: None,
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
            retry_after: None,
            context_size: None,
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
            retry_after: None,
            context_size: None,
        }
    }

    /// 500 `server_error`; `detail` is logged, not sent.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::public(PublicError::internal(), &detail)
    }

    /// 501 `not_supported_error`: the server was started without the feature.
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_IMPLEMENTED,
            kind: "not_supported_error",
            message: message.into(),
            param: None,
            code: Some("not_supported"),
            retry_after: None,
            context_size: None,
        }
    }

    /// 503 while the model cannot take work.
    pub fn unavailable() -> Self {
        BackendError::Unavailable.into()
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Seconds for the `Retry-After` header, when the error has one.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The error object, for responses and for errors sent inside a stream.
    pub fn body(&self) -> ErrorResponse {
        ErrorResponse {
            error: ErrorBody {
                message: self.message.clone(),
                kind: self.kind.to_owned(),
                param: self.param.clone(),
                code: self.code.map(str::to_owned),
                n_prompt_tokens: self.context_size.map(|c| c.0),
                n_ctx: self.context_size.map(|c| c.1),
            },
        }
    }
}

impl ApiError {
    /// The response for an engine error, as the engine's one mapping ([`PublicError`]) says;
    /// server faults are logged with their details (`detail`).
    fn public(public: PublicError, detail: &dyn std::fmt::Display) -> Self {
        let status = match public.class {
            ErrorClass::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorClass::NotFound => StatusCode::NOT_FOUND,
            ErrorClass::Conflict => StatusCode::CONFLICT,
            ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorClass::NotSupported => StatusCode::NOT_IMPLEMENTED,
            ErrorClass::Internal => {
                tracing::error!(%detail, "internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self {
            status,
            kind: public.kind(),
            message: public.message,
            param: public.param,
            code: public.code,
            retry_after: public.retry_after,
            context_size: public.context_size,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        Self::public(e.public(), &e)
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        Self::public(e.public(), &e)
    }
}

impl From<PullError> for ApiError {
    fn from(e: PullError) -> Self {
        Self::public(e.public(), &e)
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> Self {
        Self::public(e.public(), &e)
    }
}

impl From<CharacterError> for ApiError {
    fn from(e: CharacterError) -> Self {
        Self::public(e.public(), &e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::public(e.public(), &e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
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
        retry_after: None,
        context_size: None,
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
        retry_after: None,
        context_size: None,
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
