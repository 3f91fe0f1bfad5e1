//! What a client may see of an engine error: [`PublicError`], the one mapping
//! from [`EngineError`] (and [`SessionError`]) to OpenAI's error fields
//! (`message`, `type`, `param`, `code`; OpenAI API reference, "Error codes").
//! The HTTP server turns it into a status and an error object, the agent loop
//! into a `message.error` event, so both say the same thing. Server faults
//! (decoding failures, the store) get a fixed message: their details are for
//! the log, never for clients.

use crate::store::StoreError;
use crate::{BackendError, EngineError, PoolError, SessionError};

/// Which family of failure, as OpenAI's `type` and an HTTP status class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request is at fault (400, `invalid_request_error`).
    InvalidRequest,
    /// The request names something that does not exist (404, `invalid_request_error`).
    NotFound,
    /// The request conflicts with the state of the session (409, `invalid_request_error`).
    Conflict,
    /// The model cannot take work now (503, `server_error`).
    Unavailable,
    /// This server was started without the feature (501, llama-server's `not_supported_error`).
    NotSupported,
    /// The server failed (500, `server_error`).
    Internal,
}

/// An error as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicError {
    /// Its family.
    pub class: ErrorClass,
    /// What went wrong and what to do, for people.
    pub message: String,
    /// The request field at fault (OpenAI's `param`).
    pub param: Option<String>,
    /// A stable code for programs (`context_length_exceeded`, `model_not_found`, …).
    pub code: Option<&'static str>,
    /// Seconds after which a retry may succeed (HTTP `Retry-After`), for some 503s.
    pub retry_after: Option<u64>,
    /// For a prompt over a slot's context: `(n_prompt_tokens, n_ctx)`, which llama-server's
    /// `exceed_context_size_error` carries.
    pub context_size: Option<(u32, u32)>,
}

/// The message of every server fault.
pub const INTERNAL_MESSAGE: &str = "the server had an error while processing the request";

impl PublicError {
    fn new(class: ErrorClass, message: impl Into<String>, param: Option<&str>, code: Option<&'static str>) -> Self {
        Self {
            class,
            message: message.into(),
            param: param.map(str::to_owned),
            code,
            retry_after: None,
            context_size: None,
        }
    }

    /// A server fault: the fixed message, code `server_error`.
    pub fn internal() -> Self {
        Self::new(ErrorClass::Internal, INTERNAL_MESSAGE, None, Some("server_error"))
    }

    /// OpenAI's `type`: `invalid_request_error` or `server_error`; a prompt over the context
    /// is llama-server's `exceed_context_size_error` (its code stays OpenAI's
    /// `context_length_exceeded`, so clients of either find what they look for).
    pub fn kind(&self) -> &'static str {
        if self.context_size.is_some() {
            return "exceed_context_size_error";
        }
        match self.class {
            ErrorClass::InvalidRequest | ErrorClass::NotFound | ErrorClass::Conflict => "invalid_request_error",
            ErrorClass::Unavailable | ErrorClass::Internal => "server_error",
            ErrorClass::NotSupported => "not_supported_error",
        }
    }
}

impl BackendError {
    /// What a client sees of this error.
    pub fn public(&self) -> PublicError {
        use ErrorClass::*;
        match self {
            Self::PromptTooLong { n_prompt, n_ctx } => PublicError {
                context_size: Some((*n_prompt, *n_ctx)),
                ..PublicError::new(InvalidRequest, self.to_string(), Some("messages"), Some("context_length_exceeded"))
            },
            Self::Template(_) | Self::InvalidPrompt(_) => {
                PublicError::new(InvalidRequest, self.to_string(), Some("messages"), None)
            }
            Self::InvalidSchema { param, message } => PublicError::new(InvalidRequest, message, Some(param), None),
            Self::Unavailable => PublicError::new(
                Unavailable,
                "the model is not available; the server may be shutting down",
                None,
                Some("model_unavailable"),
            ),
            Self::Decode(_) => PublicError::internal(),
            Self::SlotActionsDisabled => PublicError::new(NotSupported, self.to_string(), None, Some("not_supported")),
            Self::InvalidSlot { .. } => PublicError::new(InvalidRequest, self.to_string(), Some("id_slot"), None),
            Self::SlotBusy(_) => PublicError::new(Unavailable, self.to_string(), None, Some("slot_busy")),
            Self::InvalidFilename(_) => PublicError::new(InvalidRequest, self.to_string(), Some("filename"), None),
            Self::SlotFile(_) => PublicError::new(InvalidRequest, self.to_string(), Some("filename"), None),
            Self::Unsupported { .. } => {
                PublicError::new(InvalidRequest, self.to_string(), Some("model"), Some("model_not_supported"))
            }
            Self::InputTooLong { .. } => {
                PublicError::new(InvalidRequest, self.to_string(), Some("input"), Some("context_length_exceeded"))
            }
            Self::Upstream { status, message, param } => {
                let class = match status {
                    404 => NotFound,
                    409 => Conflict,
                    400..=499 => InvalidRequest,
                    _ => Unavailable,
                };
                let message = if *status == 0 || *status >= 500 {
                    format!("the upstream server failed: {message}")
                } else {
                    message.clone()
                };
                PublicError::new(class, message, param.as_deref(), Some("upstream_error"))
            }
        }
    }
}

impl EngineError {
    /// What a client sees of this error.
    pub fn public(&self) -> PublicError {
        match self {
            Self::ModelNotFound(model) => PublicError::new(
                ErrorClass::NotFound,
                format!("the model `{model}` does not exist; GET /v1/models lists the models this server has"),
                Some("model"),
                Some("model_not_found"),
            ),
            Self::Invalid(v) => PublicError::new(ErrorClass::InvalidRequest, v.message.clone(), Some(v.param), None),
            Self::Backend(b) => b.public(),
            Self::Pool(p) => p.public(),
            Self::NoModelForCategory(category) => PublicError::new(
                ErrorClass::NotSupported,
                if category == "image" {
                    "the prompt asks for an image, and no image model is configured on this server; \
                     pass `category` to send it elsewhere"
                        .to_owned()
                } else {
                    format!(
                        "the prompt was routed to the `{category}` category, and no model serves it; \
                         set `[[router.categories]] model` in chorus.toml, or pass `model`"
                    )
                },
                Some("category"),
                Some("not_supported"),
            ),
        }
    }

    /// True for server faults, whose details belong in the log.
    pub fn is_internal(&self) -> bool {
        self.public().class == ErrorClass::Internal
    }
}

impl PoolError {
    /// What a client sees of this error.
    pub fn public(&self) -> PublicError {
        use ErrorClass::*;
        match self {
            Self::NotFound(model) => EngineError::ModelNotFound(model.clone()).public(),
            Self::Busy { retry_after, .. } => PublicError {
                retry_after: Some(*retry_after),
                ..PublicError::new(Unavailable, self.to_string(), Some("model"), Some("model_busy"))
            },
            Self::BlockedByPinned { .. } | Self::TooBig { .. } => {
                PublicError::new(Unavailable, self.to_string(), Some("model"), Some("insufficient_memory"))
            }
            Self::LoadFailed { .. } => {
                PublicError::new(Unavailable, self.to_string(), Some("model"), Some("model_load_failed"))
            }
            Self::Duplicate(_) => PublicError::new(Conflict, self.to_string(), Some("model"), None),
        }
    }
}

impl StoreError {
    /// What a client sees of this error.
    pub fn public(&self) -> PublicError {
        match self {
            Self::SessionNotFound(id) => PublicError::new(
                ErrorClass::NotFound,
                format!("session {id} not found; GET /api/v1/sessions lists them"),
                None,
                Some("session_not_found"),
            ),
            Self::SessionExists(id) => PublicError::new(
                ErrorClass::Conflict,
                format!("session {id} exists already"),
                None,
                Some("session_exists"),
            ),
            _ => PublicError::internal(),
        }
    }
}

impl SessionError {
    /// What a client sees of this error.
    pub fn public(&self) -> PublicError {
        use ErrorClass::*;
        match self {
            Self::NotFound(id) => PublicError::new(
                NotFound,
                format!("session {id} not found; GET /api/v1/sessions lists them"),
                None,
                Some("session_not_found"),
            ),
            Self::AgentNotFound(_) => PublicError::new(
                InvalidRequest,
                format!("{self}; GET /api/v1/agents lists them"),
                Some("agent"),
                Some("agent_not_found"),
            ),
            Self::Busy(_) => PublicError::new(Conflict, self.to_string(), None, Some("session_busy")),
            Self::EmptyPrompt => PublicError::new(InvalidRequest, self.to_string(), Some("content"), None),
            Self::Invalid(v) => PublicError::new(InvalidRequest, v.message.clone(), Some(v.param), None),
            Self::PermissionNotPending(_) => PublicError::new(NotFound, self.to_string(), None, Some("not_found")),
            Self::Store(e) => e.public(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_faults_hide_their_details() {
        let e = EngineError::Backend(BackendError::Decode("llama_decode returned -3 at ggml.c:1234".into()));
        let p = e.public();
        assert_eq!(p.class, ErrorClass::Internal);
        assert_eq!(p.message, INTERNAL_MESSAGE);
        assert!(!p.message.contains("ggml"));
        assert_eq!(p.kind(), "server_error");
        assert!(e.is_internal());
    }

    #[test]
    fn client_errors_keep_their_field_and_code() {
        let e = EngineError::Backend(BackendError::PromptTooLong { n_prompt: 9000, n_ctx: 8192 });
        let p = e.public();
        assert_eq!(
            (p.class, p.param.as_deref(), p.code),
            (ErrorClass::InvalidRequest, Some("messages"), Some("context_length_exceeded"))
        );
        assert!(p.message.contains("8192"), "{}", p.message);
        assert_eq!(EngineError::ModelNotFound("x".into()).public().code, Some("model_not_found"));
    }
}
