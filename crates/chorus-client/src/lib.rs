//! The Rust client of a chorus server: `GET /health`, `GET /v1/models`,
//! chat completions plain or streamed over server-sent events
//! (`eventsource-stream` over `reqwest`), and the native session API
//! (sessions, prompts, and event streams that reconnect by themselves; the model pool's
//! states, load, unload and pulls with their progress). Errors distinguish "nothing answers
//! at that address" from the server's own OpenAI-shaped errors, so callers can
//! fall back or explain. [`ControlClient`] talks to a server's control socket.
//! [`SessionSocket`] is a session's WebSocket (`/ws`), which also reconnects
//! by itself. [`mcp::serve_stdio`] is `chorus mcp`'s bridge from MCP on stdio to a server's `/mcp`.
//! [`Client::route`] asks the content router where a prompt would go (`POST /api/v1/route`).
//! [`Client::converse`] starts an AI-to-AI conversation and streams its exchanges.

pub mod characters;
mod control;
mod conversations;
pub mod mcp;
mod models;
mod sessions;
mod ws;

use std::time::Duration;

use chorus_proto::chorus::Health;
use chorus_proto::openai::{ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ErrorResponse, ModelList};
use chorus_proto::route::{RouteRequest, RouteResponse};
use eventsource_stream::Eventsource;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

pub use control::{ControlClient, ControlError};
pub use conversations::{ConversationEvent, ConversationStarted};
pub use sessions::{EventItem, RECONNECT_ATTEMPTS, SessionEvent};
pub use ws::{SessionSocket, SocketItem, SocketRequests};

/// How to reach a server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, such as `http://127.0.0.1:4096` (no `/v1`).
    pub url: String,
    /// Sent as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Limit on connecting and on each whole non-streamed request; `None` waits forever.
    pub timeout: Option<Duration>,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing accepted the connection (refused, no route, DNS).
    #[error("cannot reach a chorus server at {url}: {reason}")]
    Unreachable {
        /// The base URL.
        url: String,
        /// What the network said.
        reason: String,
    },
    /// The server did not answer in time.
    #[error("the server at {url} did not answer within the timeout")]
    Timeout {
        /// The base URL.
        url: String,
    },
    /// The server answered with an error object.
    #[error("the server answered {status}: {message}")]
    Api {
        /// HTTP status (200 when the error came inside a stream).
        status: u16,
        /// The error's `message`.
        message: String,
        /// The error's `type`.
        kind: String,
        /// The error's `code`.
        code: Option<String>,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The URL is not a valid base URL.
    #[error("invalid server URL `{0}`")]
    InvalidUrl(String),
    /// A WebSocket's connection dropped and every reconnection attempt failed.
    #[error("lost the connection to {url}, and {attempts} attempts to reconnect failed: {reason}")]
    Disconnected {
        /// The base URL.
        url: String,
        /// Reconnection attempts made.
        attempts: u32,
        /// Why the last attempt failed.
        reason: String,
    },
    /// The WebSocket has stopped: it was closed, or it lost its connection for good.
    #[error("the WebSocket connection is closed")]
    Closed,
}

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
}

impl Client {
    /// A client for `config.url`.
    ///
    /// # Errors
    /// [`ClientError::InvalidUrl`] when the URL does not parse as http(s).
    pub fn new(mut config: ClientConfig) -> Result<Self, ClientError> {
        config.url = config.url.trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&config.url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            _ => return Err(ClientError::InvalidUrl(config.url)),
        }
        let mut builder = reqwest::Client::builder();
        if let Some(t) = config.timeout {
            builder = builder.connect_timeout(t);
        }
        let http = builder.build().map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Self { http, config })
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// The API key sent as `Authorization: Bearer KEY`, if any.
    pub fn api_key(&self) -> Option<&str> {
        self.config.api_key.as_deref()
    }

    fn request(&self, method: reqwest::Method, path: &str, whole: bool) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, format!("{}{path}", self.config.url));
        if let Some(key) = &self.config.api_key {
            rb = rb.bearer_auth(key);
        }
        if let (true, Some(t)) = (whole, self.config.timeout) {
            rb = rb.timeout(t);
        }
        rb
    }

    /// `GET /health`.
    ///
    /// # Errors
    /// [`ClientError`]; `Unreachable` when no server listens.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.send_json(self.request(reqwest::Method::GET, "/health", true)).await
    }

    /// `GET /v1/models`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn models(&self) -> Result<ModelList, ClientError> {
        self.send_json(self.request(reqwest::Method::GET, "/v1/models", true)).await
    }

    /// `POST /v1/chat/completions` without streaming (`stream` is forced off).
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn chat(&self, request: &ChatCompletionRequest) -> Result<ChatCompletion, ClientError> {
        let mut request = request.clone();
        request.stream = None;
        request.stream_options = None;
        self.send_json(self.request(reqwest::Method::POST, "/v1/chat/completions", true).json(&request)).await
    }

    /// `POST /v1/chat/completions` with `stream: true`: the chunks as they
    /// arrive, ending after `data: [DONE]`. Dropping the stream closes the
    /// connection, which cancels the generation on the server.
    ///
    /// # Errors
    /// [`ClientError`] before the stream starts; inside the stream, an error
    /// event from the server becomes [`ClientError::Api`].
    pub async fn chat_stream(
        &self,
        request: &ChatCompletionRequest,
    ) -> Result<BoxStream<'static, Result<ChatCompletionChunk, ClientError>>, ClientError> {
        let mut request = request.clone();
        request.stream = Some(true);
        let rb = self.request(reqwest::Method::POST, "/v1/chat/completions", false).json(&request);
        let response = self.send(rb).await?;
        Ok(sse_json(response.bytes_stream()).boxed())
    }

    /// `POST /api/v1/route`: the router's dry run. Which category and model a request with
    /// this prompt (or conversation) and no `model` would get, the stage that decided and the
    /// semantic scores behind it; nothing is generated.
    ///
    /// # Errors
    /// [`ClientError`]; [`ClientError::Api`] with status 400 when the request has no prompt or
    /// names an unknown `category` (the message lists the categories).
    pub async fn route(&self, request: &RouteRequest) -> Result<RouteResponse, ClientError> {
        self.send_json(self.request(reqwest::Method::POST, "/api/v1/route", true).json(request)).await
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = rb.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        Err(match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(e) => ClientError::Api {
                status: status.as_u16(),
                message: e.error.message,
                kind: e.error.kind,
                code: e.error.code,
            },
            Err(_) => ClientError::Api {
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
                kind: "unknown".into(),
                code: None,
            },
        })
    }

    async fn send_json<T: DeserializeOwned>(&self, rb: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let response = self.send(rb).await?;
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    fn transport(&self, e: reqwest::Error) -> ClientError {
        let url = self.config.url.clone();
        if e.is_timeout() {
            ClientError::Timeout { url }
        } else if e.is_connect() {
            let mut reason = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                reason = s.to_string();
                source = s.source();
            }
            ClientError::Unreachable { url, reason }
        } else {
            ClientError::Protocol(e.to_string())
        }
    }
}

/// Decode an OpenAI event stream: JSON events until `[DONE]`; an error object
/// becomes [`ClientError::Api`] and ends the stream.
fn sse_json<T, S, B, E>(bytes: S) -> impl Stream<Item = Result<T, ClientError>>
where
    T: DeserializeOwned,
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    bytes.eventsource().take_while(|event| futures::future::ready(!matches!(event, Ok(e) if e.data == "[DONE]"))).map(
        |event| {
            let event = event.map_err(|e| ClientError::Protocol(format!("broken event stream: {e}")))?;
            if let Ok(e) = serde_json::from_str::<ErrorResponse>(&event.data) {
                return Err(ClientError::Api {
                    status: 200,
                    message: e.error.message,
                    kind: e.error.kind,
                    code: e.error.code,
                });
            }
            serde_json::from_str(&event.data)
                .map_err(|e| ClientError::Protocol(format!("bad event `{}`: {e}", event.data)))
        },
    )
}
