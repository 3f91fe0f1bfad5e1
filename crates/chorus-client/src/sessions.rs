//! The native session API (`/api/v1`): sessions, prompts, and their event
//! streams. [`Client::events`] reconnects by itself: when the connection
//! drops it tries again up to [`RECONNECT_ATTEMPTS`] times with backoff,
//! sending `Last-Event-ID` so the server replays exactly what was missed, and
//! says so with [`EventItem::Reconnecting`].

use std::time::Duration;

use chorus_proto::native::{
    CancelResult, CreateSessionRequest, Deleted, Event, McpServerList, Message, MessageList, PromptAccepted,
    PromptRequest, Session, SessionList,
};
use eventsource_stream::Eventsource;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use reqwest::Method;

use crate::{Client, ClientError};

/// Reconnection attempts after a dropped event stream.
pub const RECONNECT_ATTEMPTS: u32 = 3;
/// Wait before the first reconnection; doubled for each further one.
const BACKOFF: Duration = Duration::from_millis(250);

/// One event with the id the server's log gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionEvent {
    /// The log id (SSE `id:`), to resume after.
    pub id: i64,
    /// The payload.
    pub event: Event,
}

/// What an event stream yields.
#[derive(Debug, Clone, PartialEq)]
// Nearly every item is an event: boxing it would allocate for the common case.
#[allow(clippy::large_enum_variant)]
pub enum EventItem {
    /// An event.
    Event(SessionEvent),
    /// The connection dropped; the client is reconnecting (attempt 1 to
    /// [`RECONNECT_ATTEMPTS`]) and will resume after `after`.
    Reconnecting {
        /// Which attempt this is.
        attempt: u32,
        /// The last event id received.
        after: Option<i64>,
        /// Why the connection ended.
        reason: String,
    },
}

impl Client {
    /// `POST /api/v1/sessions`.
    ///
    /// # Errors
    /// [`ClientError`]; `Api` with status 400 for an unknown agent.
    pub async fn create_session(&self, request: &CreateSessionRequest) -> Result<Session, ClientError> {
        self.send_json(self.request(Method::POST, "/api/v1/sessions", true).json(request)).await
    }

    /// `GET /api/v1/sessions`, most recently updated first.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn sessions(&self) -> Result<Vec<Session>, ClientError> {
        let list: SessionList = self.send_json(self.request(Method::GET, "/api/v1/sessions", true)).await?;
        Ok(list.data)
    }

    /// `GET /api/v1/mcp/servers`: the server's external MCP servers, in configuration order,
    /// with their state and tools. The server starts those not started yet before it answers.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn mcp_servers(&self) -> Result<McpServerList, ClientError> {
        self.send_json(self.request(Method::GET, "/api/v1/mcp/servers", true)).await
    }

    /// `GET /api/v1/sessions/{id}`.
    ///
    /// # Errors
    /// [`ClientError`]; `Api` with status 404 when there is no such session.
    pub async fn session(&self, id: &str) -> Result<Session, ClientError> {
        self.send_json(self.request(Method::GET, &format!("/api/v1/sessions/{id}"), true)).await
    }

    /// `DELETE /api/v1/sessions/{id}`.
    ///
    /// # Errors
    /// [`ClientError`]; 404 when there is no such session.
    pub async fn delete_session(&self, id: &str) -> Result<Deleted, ClientError> {
        self.send_json(self.request(Method::DELETE, &format!("/api/v1/sessions/{id}"), true)).await
    }

    /// `GET /api/v1/sessions/{id}/messages`, oldest first.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn messages(&self, id: &str) -> Result<Vec<Message>, ClientError> {
        let list: MessageList =
            self.send_json(self.request(Method::GET, &format!("/api/v1/sessions/{id}/messages"), true)).await?;
        Ok(list.data)
    }

    /// `POST /api/v1/sessions/{id}/prompt` and wait for the stored answer
    /// (`stream` and `async` are forced off).
    ///
    /// # Errors
    /// [`ClientError`]; `Api` with code `cancelled` when the prompt was cancelled.
    pub async fn prompt(&self, id: &str, request: &PromptRequest) -> Result<Message, ClientError> {
        let request = PromptRequest { stream: false, is_async: false, ..request.clone() };
        // A prompt may wait behind others: no whole-request timeout.
        self.send_json(self.request(Method::POST, &format!("/api/v1/sessions/{id}/prompt"), false).json(&request)).await
    }

    /// `POST /api/v1/sessions/{id}/prompt` with `async: true`: the prompt's id
    /// and queue position.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn prompt_async(&self, id: &str, request: &PromptRequest) -> Result<PromptAccepted, ClientError> {
        let request = PromptRequest { stream: false, is_async: true, ..request.clone() };
        self.send_json(self.request(Method::POST, &format!("/api/v1/sessions/{id}/prompt"), true).json(&request)).await
    }

    /// `POST /api/v1/sessions/{id}/prompt` with `stream: true`: this prompt's
    /// events, ending with `message.complete` or `message.error`.
    ///
    /// # Errors
    /// [`ClientError`] before the stream starts.
    pub async fn prompt_stream(
        &self,
        id: &str,
        request: &PromptRequest,
    ) -> Result<BoxStream<'static, Result<SessionEvent, ClientError>>, ClientError> {
        let request = PromptRequest { stream: true, is_async: false, ..request.clone() };
        let rb = self.request(Method::POST, &format!("/api/v1/sessions/{id}/prompt"), false).json(&request);
        let response = self.send(rb).await?;
        Ok(logged_events(response.bytes_stream()).boxed())
    }

    /// `POST /api/v1/sessions/{id}/cancel`.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn cancel(&self, id: &str) -> Result<CancelResult, ClientError> {
        self.send_json(self.request(Method::POST, &format!("/api/v1/sessions/{id}/cancel"), true)).await
    }

    /// `POST /api/v1/sessions/{id}/clear`.
    ///
    /// # Errors
    /// [`ClientError`]; `Api` 409 while the session is busy.
    pub async fn clear(&self, id: &str) -> Result<Session, ClientError> {
        self.send_json(self.request(Method::POST, &format!("/api/v1/sessions/{id}/clear"), true)).await
    }

    /// The events of one session (`Some(id)`) or of all, after `after` when
    /// given (`Last-Event-ID`), then live. Reconnects by itself (see the
    /// module docs); ends with an error when the last attempt fails.
    ///
    /// # Errors
    /// [`ClientError`] when the first connection fails.
    pub async fn events(
        &self,
        session: Option<&str>,
        after: Option<i64>,
    ) -> Result<BoxStream<'static, Result<EventItem, ClientError>>, ClientError> {
        let path = match session {
            Some(id) => format!("/api/v1/sessions/{id}/events"),
            None => "/api/v1/events".to_owned(),
        };
        let first = self.connect_events(&path, after).await?;
        let client = self.clone();
        Ok(async_stream::stream! {
            let mut last = after;
            let mut events = first;
            let mut attempt = 0;
            loop {
                let reason = loop {
                    match events.next().await {
                        Some(Ok(event)) => {
                            attempt = 0;
                            last = Some(event.id);
                            yield Ok(EventItem::Event(event));
                        }
                        Some(Err(ClientError::Protocol(reason))) => break reason,
                        Some(Err(e)) => {
                            yield Err(e);
                            return;
                        }
                        None => break "the server closed the stream".to_owned(),
                    }
                };
                loop {
                    attempt += 1;
                    if attempt > RECONNECT_ATTEMPTS {
                        yield Err(ClientError::Protocol(format!(
                            "event stream lost after {RECONNECT_ATTEMPTS} reconnection attempts: {reason}"
                        )));
                        return;
                    }
                    yield Ok(EventItem::Reconnecting { attempt, after: last, reason: reason.clone() });
                    tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
                    match client.connect_events(&path, last).await {
                        Ok(stream) => {
                            events = stream;
                            break;
                        }
                        Err(ClientError::Unreachable { .. } | ClientError::Timeout { .. } | ClientError::Protocol(_)) => continue,
                        Err(e) => {
                            yield Err(e);
                            return;
                        }
                    }
                }
            }
        }
        .boxed())
    }

    async fn connect_events(
        &self,
        path: &str,
        after: Option<i64>,
    ) -> Result<BoxStream<'static, Result<SessionEvent, ClientError>>, ClientError> {
        let mut rb = self.request(Method::GET, path, false);
        if let Some(after) = after {
            rb = rb.header("Last-Event-ID", after.to_string());
        }
        let response = self.send(rb).await?;
        Ok(logged_events(response.bytes_stream()).boxed())
    }
}

/// Decode the native API's SSE events (`id:`, `event:`, JSON `data:`).
fn logged_events<S, B, E>(bytes: S) -> impl Stream<Item = Result<SessionEvent, ClientError>>
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    bytes.eventsource().map(|event| {
        let event = event.map_err(|e| ClientError::Protocol(format!("broken event stream: {e}")))?;
        // Logged events carry ids; a failure of the stream itself is an error object without one.
        if event.id.is_empty()
            && let Ok(e) = serde_json::from_str::<chorus_proto::openai::ErrorResponse>(&event.data)
        {
            return Err(ClientError::Api {
                status: 200,
                message: e.error.message,
                kind: e.error.kind,
                code: e.error.code,
            });
        }
        let id = event
            .id
            .parse::<i64>()
            .map_err(|_| ClientError::Protocol(format!("event without an id: `{}`", event.data)))?;
        let payload = serde_json::from_str(&event.data)
            .map_err(|e| ClientError::Protocol(format!("bad event `{}`: {e}", event.data)))?;
        Ok(SessionEvent { id, event: payload })
    })
}
