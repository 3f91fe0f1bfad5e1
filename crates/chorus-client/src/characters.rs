//! A client of the characters WebSocket (the socket-based character agent seed's protocol, at
//! `/ws/characters` or on `chorus serve --character-port`): JSON text frames, requests
//! `{type: "KIND_request", request_id, data}` answered by `{type: "KIND_response", request_id,
//! success, data, error}`, and the session's broadcasts in between (`chat_chunk`,
//! `chat_message`, `vitals_update`, `character_restored`).
//!
//! [`CharacterSocket::connect`] makes one attempt; the seed's client retries (3 attempts, 1 s
//! apart) and then falls back to local mode, which is the caller's policy (`chorus chat
//! --character` says each attempt).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header::AUTHORIZATION};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::ClientError;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The characters WebSocket URL of a server: `ws://`/`wss://` URLs as given, `http(s)://HOST`
/// as `ws(s)://HOST/ws/characters`.
pub fn characters_ws_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.starts_with("ws://") || url.starts_with("wss://") {
        return url.to_owned();
    }
    let rest = url.strip_prefix("http://").map(|r| format!("ws://{r}"));
    let rest = rest.or_else(|| url.strip_prefix("https://").map(|r| format!("wss://{r}")));
    format!("{}/ws/characters", rest.unwrap_or_else(|| format!("ws://{url}")))
}

/// One connection to the characters WebSocket.
pub struct CharacterSocket {
    ws: Ws,
    url: String,
    next_id: u64,
}

impl std::fmt::Debug for CharacterSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CharacterSocket").field("url", &self.url).finish()
    }
}

impl CharacterSocket {
    /// Connect once to `url` (see [`characters_ws_url`]) with an optional API key, waiting at
    /// most `timeout`.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`], [`ClientError::Timeout`], [`ClientError::Api`] (401 for a
    /// missing or wrong key), [`ClientError::InvalidUrl`].
    pub async fn connect(url: &str, api_key: Option<&str>, timeout: Duration) -> Result<Self, ClientError> {
        let mut request = url.into_client_request().map_err(|_| ClientError::InvalidUrl(url.to_owned()))?;
        if let Some(key) = api_key {
            let value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ClientError::Protocol("the API key is not a valid header value".into()))?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let connected = tokio::time::timeout(timeout, tokio_tungstenite::connect_async(request))
            .await
            .map_err(|_| ClientError::Timeout { url: url.to_owned() })?;
        match connected {
            Ok((ws, _)) => Ok(Self { ws, url: url.to_owned(), next_id: 0 }),
            Err(tungstenite::Error::Http(response)) => Err(ClientError::Api {
                status: response.status().as_u16(),
                message: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
                kind: "websocket_refused".into(),
                code: None,
            }),
            Err(e) => Err(ClientError::Unreachable { url: url.to_owned(), reason: e.to_string() }),
        }
    }

    /// The URL it is connected to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Send `KIND_request` with `data` and wait for its `KIND_response`; every other frame that
    /// arrives meanwhile (broadcasts, this request's `chat_chunk`s) goes to `on_frame`.
    /// Returns the response's `data`.
    ///
    /// # Errors
    /// [`ClientError::Api`] (status 200) when the response says `success: false`, with its
    /// error's message and code; [`ClientError::Closed`] when the connection ends first.
    pub async fn request(
        &mut self,
        kind: &str,
        data: Value,
        mut on_frame: impl FnMut(&Value),
    ) -> Result<Value, ClientError> {
        self.next_id += 1;
        let request_id = format!("req-{}", self.next_id);
        let frame = json!({"type": format!("{kind}_request"), "request_id": request_id, "data": data});
        self.ws.send(Message::text(frame.to_string())).await.map_err(|_| ClientError::Closed)?;
        let want = format!("{kind}_response");
        loop {
            let Some(frame) = self.next_frame().await else { return Err(ClientError::Closed) };
            let is_answer = frame.get("request_id").and_then(Value::as_str) == Some(request_id.as_str())
                && matches!(frame.get("type").and_then(Value::as_str), Some(t) if t == want || t == "error_response");
            if !is_answer {
                on_frame(&frame);
                continue;
            }
            if frame.get("success").and_then(Value::as_bool) == Some(true) {
                return Ok(frame.get("data").cloned().unwrap_or(Value::Null));
            }
            let error = frame.get("error").cloned().unwrap_or(Value::Null);
            return Err(ClientError::Api {
                status: 200,
                message: error.get("message").and_then(Value::as_str).unwrap_or("the request failed").to_owned(),
                kind: error.get("type").and_then(Value::as_str).unwrap_or("error").to_owned(),
                code: error.get("code").and_then(Value::as_str).map(str::to_owned),
            });
        }
    }

    /// The next JSON frame from the server; `None` when the connection has ended.
    pub async fn next_frame(&mut self) -> Option<Value> {
        while let Some(message) = self.ws.next().await {
            match message {
                Ok(Message::Text(text)) => match serde_json::from_str(&text) {
                    Ok(v) => return Some(v),
                    Err(_) => continue,
                },
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => continue,
            }
        }
        None
    }

    /// Close the connection.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(characters_ws_url("http://127.0.0.1:4096"), "ws://127.0.0.1:4096/ws/characters");
        assert_eq!(characters_ws_url("https://h/"), "wss://h/ws/characters");
        assert_eq!(characters_ws_url("ws://h:8765"), "ws://h:8765");
    }
}
