//! A WebSocket on one session (`GET /ws?session_id=…`, protocol in
//! `chorus_proto::ws`): [`SessionSocket`] sends prompts, cancels and
//! permission replies, and yields what the server sends: the session's events
//! with their log ids (whoever caused them), the answers to this client's
//! requests (for a prompt: `queued`, `text` chunks, `tool_call` /
//! `tool_result` as its tools run, `complete`), and errors. Envelope
//! timestamps are read as the server writes them (RFC 3339) or as Unix
//! milliseconds; requests go out stamped in RFC 3339.
//!
//! When the connection drops, the socket reconnects by itself: up to
//! [`RECONNECT_ATTEMPTS`] times with backoff (0.5 s, 1 s, 2 s), subscribing
//! again with `last_event_id` set to the last event it yielded, so the server
//! replays exactly what was missed and nothing twice; it says so with
//! [`SocketItem::Reconnecting`] and [`SocketItem::Reconnected`]. Requests made
//! meanwhile wait and go out once it is back. Answers to requests sent on the
//! lost connection do not follow to the new one; their events do.
//!
//! One task owns the connection (an actor): requests reach it over a channel,
//! items leave it over another.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use chorus_proto::native::{Event, PromptRequest};
use chorus_proto::openai::ErrorResponse;
use chorus_proto::ws::{Envelope, EnvelopeType, Request, Response, Timestamp, WsError};
use futures::{SinkExt, Stream, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::sessions::{RECONNECT_ATTEMPTS, SessionEvent};
use crate::{Client, ClientError};

/// Wait before the first reconnection; doubled for each further one.
const BACKOFF: Duration = Duration::from_millis(500);
/// How long a reconnection waits for the server to confirm the new subscription.
const RESUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
/// The request id of the `subscribe` a reconnection sends.
const RESUBSCRIBE_ID: &str = "chorus-resubscribe";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a [`SessionSocket`] yields.
#[derive(Debug, Clone, PartialEq)]
// Nearly every item is an event: boxing it would allocate for the common case.
#[allow(clippy::large_enum_variant)]
pub enum SocketItem {
    /// An event of the session, whichever client caused it.
    Event(SessionEvent),
    /// The server's answer to one of this client's requests.
    Response {
        /// The id [`SocketRequests`] returned when the request was sent.
        request_id: String,
        /// The answer.
        response: Response,
    },
    /// A request failed (`request_id` set), or the server could not read a message (`None`).
    Error {
        /// The failed request's id.
        request_id: Option<String>,
        /// What went wrong.
        error: WsError,
    },
    /// The connection dropped; the socket is reconnecting (attempt 1 to
    /// [`RECONNECT_ATTEMPTS`]) and will resume after event `after`.
    Reconnecting {
        /// Which attempt this is.
        attempt: u32,
        /// The last event id yielded; `None` when there was none, so events
        /// published while disconnected are not replayed.
        after: Option<i64>,
        /// Why the connection ended, or why the previous attempt failed.
        reason: String,
    },
    /// Connected and subscribed again; the events after `after` follow.
    Reconnected {
        /// The last event id yielded before the drop.
        after: Option<i64>,
    },
}

/// Sends requests on a [`SessionSocket`]; cheap to clone, usable while the
/// socket is read elsewhere. Each method returns the request's id, which the
/// server's [`SocketItem::Response`] or [`SocketItem::Error`] names.
#[derive(Debug, Clone)]
pub struct SocketRequests {
    session_id: Arc<str>,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    next_id: Arc<AtomicU64>,
}

/// What the actor is asked to do.
#[derive(Debug)]
enum Outgoing {
    /// Send this text message.
    Text(String),
    /// Close the connection and stop.
    Close,
}

impl SocketRequests {
    /// The session this socket watches.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// Send a prompt (`content`, `priority`, `max_tokens`, `ignore_eos`, `tool_choice`; the
    /// HTTP-only `stream` and `async` are ignored). The server answers
    /// `queued` with the prompt's id, then `text` chunks, a `tool_call` and a
    /// `tool_result` for each tool call, and `complete`, or an error; the
    /// session's events carry the same answer.
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the socket has stopped.
    pub fn send_prompt(&self, prompt: &PromptRequest) -> Result<String, ClientError> {
        self.send(&Request::Prompt {
            content: prompt.content.clone(),
            priority: prompt.priority,
            max_tokens: prompt.max_tokens,
            ignore_eos: prompt.ignore_eos,
            tool_choice: prompt.tool_choice.clone(),
            // The connection watches the session already.
            session_id: None,
        })
    }

    /// Cancel the session's running prompt and drop its queue (the server
    /// answers `cancelled`).
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the socket has stopped.
    pub fn cancel(&self) -> Result<String, ClientError> {
        self.send(&Request::Cancel { session_id: None })
    }

    /// Answer a `tool.permission_request` by its `request_id`.
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the socket has stopped.
    pub fn permission_reply(&self, request_id: &str, allow: bool) -> Result<String, ClientError> {
        self.send(&Request::PermissionReply { request_id: request_id.to_owned(), allow, session_id: None })
    }

    fn send(&self, request: &Request) -> Result<String, ClientError> {
        let id = format!("req-{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let text = request_text(&id, request)?;
        self.outgoing.send(Outgoing::Text(text)).map_err(|_| ClientError::Closed)?;
        Ok(id)
    }
}

fn request_text(id: &str, request: &Request) -> Result<String, ClientError> {
    let payload = serde_json::to_value(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let envelope =
        Envelope { kind: EnvelopeType::Request, id: Some(id.to_owned()), timestamp: Some(Timestamp::now()), payload };
    serde_json::to_string(&envelope).map_err(|e| ClientError::Protocol(e.to_string()))
}

/// A WebSocket on one session; a [`Stream`] of what the server sends (see
/// the module docs). The stream yields `Err` for a message it cannot read and
/// goes on; after a failure it cannot recover from (every reconnection
/// attempt failed: [`ClientError::Disconnected`]; the session is gone; the key
/// is refused) it yields that error and ends. Dropping the socket closes the
/// connection.
#[derive(Debug)]
pub struct SessionSocket {
    requests: SocketRequests,
    items: mpsc::UnboundedReceiver<Result<SocketItem, ClientError>>,
    task: JoinHandle<()>,
}

impl SessionSocket {
    /// Open `/ws?session_id=ID` on `client`'s server (with its API key and
    /// connect timeout): from now on, the session's events.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] or `Timeout` when no server answers;
    /// `Api` with status 404 when there is no such session, 401 for a missing
    /// or wrong key.
    pub async fn connect(client: &Client, session_id: &str) -> Result<Self, ClientError> {
        let target = Target {
            url: client.config.url.clone(),
            api_key: client.config.api_key.clone(),
            timeout: client.config.timeout,
            session_id: session_id.to_owned(),
        };
        let ws = target.open(true).await?;
        let (outgoing, commands) = mpsc::unbounded_channel();
        let (items_tx, items) = mpsc::unbounded_channel();
        let actor = Actor { target, commands, items: items_tx, last: None, unsent: None };
        let task = tokio::spawn(actor.run(ws));
        let requests = SocketRequests { session_id: session_id.into(), outgoing, next_id: Arc::new(AtomicU64::new(0)) };
        Ok(Self { requests, items, task })
    }

    /// The session this socket watches.
    pub fn session_id(&self) -> &str {
        self.requests.session_id()
    }

    /// A handle to send requests with while the socket is read.
    pub fn requests(&self) -> SocketRequests {
        self.requests.clone()
    }

    /// See [`SocketRequests::send_prompt`].
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the socket has stopped.
    pub fn send_prompt(&self, prompt: &PromptRequest) -> Result<String, ClientError> {
        self.requests.send_prompt(prompt)
    }

    /// See [`SocketRequests::cancel`].
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the socket has stopped.
    pub fn cancel(&self) -> Result<String, ClientError> {
        self.requests.cancel()
    }

    /// See [`SocketRequests::permission_reply`].
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the socket has stopped.
    pub fn permission_reply(&self, request_id: &str, allow: bool) -> Result<String, ClientError> {
        self.requests.permission_reply(request_id, allow)
    }

    /// Send the requests still waiting, close the connection politely and
    /// wait until it is closed.
    pub async fn close(mut self) {
        if self.requests.outgoing.send(Outgoing::Close).is_ok() {
            let _ = (&mut self.task).await;
        }
    }
}

impl Stream for SessionSocket {
    type Item = Result<SocketItem, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.items.poll_recv(cx)
    }
}

impl Drop for SessionSocket {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where and how to (re)connect.
#[derive(Debug)]
struct Target {
    /// The HTTP base URL, for messages.
    url: String,
    api_key: Option<String>,
    timeout: Option<Duration>,
    session_id: String,
}

impl Target {
    /// Open `/ws`, with `?session_id=` (subscribed from now) when `subscribed`.
    async fn open(&self, subscribed: bool) -> Result<Ws, ClientError> {
        let mut url =
            reqwest::Url::parse(&format!("{}/ws", self.url)).map_err(|_| ClientError::InvalidUrl(self.url.clone()))?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme).map_err(|()| ClientError::InvalidUrl(self.url.clone()))?;
        if subscribed {
            url.query_pairs_mut().append_pair("session_id", &self.session_id);
        }
        let mut request = url.as_str().into_client_request().map_err(|_| ClientError::InvalidUrl(self.url.clone()))?;
        if let Some(key) = &self.api_key {
            let value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ClientError::Protocol("the API key cannot be sent in a header".into()))?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let connecting = tokio_tungstenite::connect_async(request);
        let result = match self.timeout {
            Some(t) => {
                tokio::time::timeout(t, connecting).await.map_err(|_| ClientError::Timeout { url: self.url.clone() })?
            }
            None => connecting.await,
        };
        result.map(|(ws, _)| ws).map_err(|e| self.handshake_error(e))
    }

    fn handshake_error(&self, e: tungstenite::Error) -> ClientError {
        match e {
            tungstenite::Error::Http(response) => {
                let status = response.status().as_u16();
                let body = response.body().as_deref().unwrap_or_default();
                match serde_json::from_slice::<ErrorResponse>(body) {
                    Ok(e) => {
                        ClientError::Api { status, message: e.error.message, kind: e.error.kind, code: e.error.code }
                    }
                    Err(_) => ClientError::Api {
                        status,
                        message: format!("the WebSocket handshake was refused: {}", response.status()),
                        kind: "unknown".into(),
                        code: None,
                    },
                }
            }
            tungstenite::Error::Io(e) => ClientError::Unreachable { url: self.url.clone(), reason: e.to_string() },
            tungstenite::Error::Url(_) => ClientError::InvalidUrl(self.url.clone()),
            other => ClientError::Protocol(format!("WebSocket handshake failed: {other}")),
        }
    }

    /// Open `/ws` and subscribe to the session after event `after`.
    async fn resubscribe(&self, after: Option<i64>) -> Result<Ws, ClientError> {
        let mut ws = self.open(false).await?;
        let request = Request::Subscribe { session_id: self.session_id.clone(), last_event_id: after };
        let text = request_text(RESUBSCRIBE_ID, &request)?;
        ws.send(Message::Text(text.into())).await.map_err(|e| ClientError::Protocol(e.to_string()))?;
        let answer = tokio::time::timeout(RESUBSCRIBE_TIMEOUT, async {
            // Nothing else arrives before the answer: this connection watches no session yet.
            loop {
                let text = match ws.next().await {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(ClientError::Protocol(e.to_string())),
                    None => return Err(ClientError::Protocol("the server closed the connection".into())),
                };
                let Ok(envelope) = serde_json::from_str::<Envelope>(text.as_str()) else { continue };
                if envelope.id.as_deref() != Some(RESUBSCRIBE_ID) {
                    continue;
                }
                return match envelope.kind {
                    EnvelopeType::Response => Ok(()),
                    _ => Err(match serde_json::from_value::<WsError>(envelope.payload) {
                        Ok(e) => ClientError::Api { status: 200, message: e.message, kind: e.kind, code: e.code },
                        Err(e) => ClientError::Protocol(format!("unreadable answer to subscribe: {e}")),
                    }),
                };
            }
        })
        .await
        .map_err(|_| ClientError::Timeout { url: self.url.clone() })?;
        answer.map(|()| ws)
    }
}

/// The task that owns the connection.
struct Actor {
    target: Target,
    commands: mpsc::UnboundedReceiver<Outgoing>,
    items: mpsc::UnboundedSender<Result<SocketItem, ClientError>>,
    /// The last event id yielded: where a reconnection resumes.
    last: Option<i64>,
    /// A message whose sending failed as the connection dropped; sent first after reconnecting.
    unsent: Option<String>,
}

/// Why [`Actor::serve`] returned.
enum Ended {
    /// Asked to stop, or nobody reads the items any more.
    Stop,
    /// The connection dropped, for this reason.
    Dropped(String),
}

impl Actor {
    async fn run(mut self, mut ws: Ws) {
        loop {
            let reason = match self.serve(&mut ws).await {
                Ended::Stop => return,
                Ended::Dropped(reason) => reason,
            };
            match self.reconnect(reason).await {
                Some(new) => ws = new,
                None => return,
            }
        }
    }

    fn emit(&self, item: Result<SocketItem, ClientError>) -> bool {
        self.items.send(item).is_ok()
    }

    async fn serve(&mut self, ws: &mut Ws) -> Ended {
        if let Some(text) = self.unsent.take()
            && let Err(e) = ws.send(Message::Text(text.as_str().into())).await
        {
            self.unsent = Some(text);
            return Ended::Dropped(e.to_string());
        }
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Outgoing::Text(text)) => {
                        if let Err(e) = ws.send(Message::Text(text.as_str().into())).await {
                            self.unsent = Some(text);
                            return Ended::Dropped(e.to_string());
                        }
                    }
                    Some(Outgoing::Close) | None => {
                        let _ = ws.close(None).await;
                        return Ended::Stop;
                    }
                },
                message = ws.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        if !self.incoming(text.as_str()) {
                            return Ended::Stop;
                        }
                    }
                    Some(Ok(Message::Close(_))) => return Ended::Dropped("the server closed the connection".into()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Ended::Dropped(e.to_string()),
                    None => return Ended::Dropped("the connection closed".into()),
                },
            }
        }
    }

    /// One text message from the server; false when nobody reads the items any more.
    fn incoming(&mut self, text: &str) -> bool {
        let envelope = match serde_json::from_str::<Envelope>(text) {
            Ok(e) => e,
            Err(e) => return self.emit(Err(ClientError::Protocol(format!("unreadable message `{text}`: {e}")))),
        };
        let item = match envelope.kind {
            EnvelopeType::Event => {
                let Some(id) = envelope.id.as_deref().and_then(|id| id.parse::<i64>().ok()) else {
                    return self.emit(Err(ClientError::Protocol(format!("event without an id: `{text}`"))));
                };
                if self.last.is_some_and(|last| id <= last) {
                    // Already yielded before a reconnection.
                    return true;
                }
                self.last = Some(id);
                serde_json::from_value::<Event>(envelope.payload)
                    .map(|event| SocketItem::Event(SessionEvent { id, event }))
                    .map_err(|e| ClientError::Protocol(format!("unreadable event {id}: {e}")))
            }
            EnvelopeType::Response => match (envelope.id, serde_json::from_value::<Response>(envelope.payload)) {
                (Some(request_id), Ok(response)) => Ok(SocketItem::Response { request_id, response }),
                (_, Err(e)) => Err(ClientError::Protocol(format!("unreadable response `{text}`: {e}"))),
                (None, Ok(_)) => Err(ClientError::Protocol(format!("response without a request id: `{text}`"))),
            },
            EnvelopeType::Error => serde_json::from_value::<WsError>(envelope.payload)
                .map(|error| SocketItem::Error { request_id: envelope.id, error })
                .map_err(|e| ClientError::Protocol(format!("unreadable error `{text}`: {e}"))),
            EnvelopeType::Request => Err(ClientError::Protocol(format!("the server sent a request: `{text}`"))),
        };
        self.emit(item)
    }

    /// Try to get the connection back; `None` when it cannot be (the error was yielded).
    async fn reconnect(&mut self, mut reason: String) -> Option<Ws> {
        for attempt in 1..=RECONNECT_ATTEMPTS {
            let item = SocketItem::Reconnecting { attempt, after: self.last, reason: reason.clone() };
            if !self.emit(Ok(item)) {
                return None;
            }
            tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
            match self.target.resubscribe(self.last).await {
                Ok(ws) => {
                    return self.emit(Ok(SocketItem::Reconnected { after: self.last })).then_some(ws);
                }
                Err(e) if retryable(&e) => reason = e.to_string(),
                Err(e) => {
                    self.emit(Err(e));
                    return None;
                }
            }
        }
        self.emit(Err(ClientError::Disconnected {
            url: self.target.url.clone(),
            attempts: RECONNECT_ATTEMPTS,
            reason,
        }));
        None
    }
}

/// Whether another reconnection attempt may succeed where this one failed:
/// not when the session is gone or the key refused.
fn retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Unreachable { .. } | ClientError::Timeout { .. } | ClientError::Protocol(_) => true,
        ClientError::Api { status, kind, .. } => *status >= 500 || kind == "server_error",
        _ => false,
    }
}
