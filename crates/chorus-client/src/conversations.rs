//! AI-to-AI conversations (`/api/v1/conversations`): start one and read its exchanges as they
//! come ([`Client::converse`]), read one back, stop one. Closing the stream does not stop the
//! conversation on the server; [`Client::cancel_conversation`] does.

use chorus_proto::character::{Conversation, ConversationRequest, Exchange};
use chorus_proto::native::CancelResult;
use chorus_proto::openai::ErrorResponse;
use eventsource_stream::Eventsource;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use reqwest::Method;
use serde::Deserialize;

use crate::{Client, ClientError};

/// The first event of a conversation.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConversationStarted {
    /// The session that stores it.
    pub session_id: String,
    /// The speakers, in speaking order.
    pub participants: Vec<String>,
    /// Its topic.
    pub topic: String,
}

/// One event of a streamed conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationEvent {
    /// It started (always first).
    Started(ConversationStarted),
    /// A message.
    Exchange(Exchange),
    /// It ended (always last): completed, cancelled or error.
    Done(Conversation),
}

impl Client {
    /// `POST /api/v1/conversations` with `stream: true`: [`ConversationEvent::Started`], an
    /// [`ConversationEvent::Exchange`] per message, then [`ConversationEvent::Done`]. A failure
    /// of the conversation is an `Err(ClientError::Api)` item just before `Done`.
    ///
    /// # Errors
    /// [`ClientError`] before the stream starts: `Api` 400 naming the field for a bad request.
    pub async fn converse(
        &self,
        request: &ConversationRequest,
    ) -> Result<BoxStream<'static, Result<ConversationEvent, ClientError>>, ClientError> {
        let request = ConversationRequest { stream: true, ..request.clone() };
        let rb = self.request(Method::POST, "/api/v1/conversations", false).json(&request);
        let response = self.send(rb).await?;
        Ok(conversation_events(response.bytes_stream()).boxed())
    }

    /// `GET /api/v1/conversations/{session_id}`.
    ///
    /// # Errors
    /// [`ClientError`]; `Api` 404 when there is no such session or it holds no conversation.
    pub async fn conversation(&self, session_id: &str) -> Result<Conversation, ClientError> {
        self.send_json(self.request(Method::GET, &format!("/api/v1/conversations/{session_id}"), true)).await
    }

    /// `POST /api/v1/conversations/{session_id}/cancel`.
    ///
    /// # Errors
    /// [`ClientError`]; `Api` 404 when there is no such session.
    pub async fn cancel_conversation(&self, session_id: &str) -> Result<CancelResult, ClientError> {
        self.send_json(self.request(Method::POST, &format!("/api/v1/conversations/{session_id}/cancel"), true)).await
    }
}

/// Decode a conversation's events until `[DONE]`.
fn conversation_events<S, B, E>(bytes: S) -> impl Stream<Item = Result<ConversationEvent, ClientError>>
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    bytes.eventsource().take_while(|event| futures::future::ready(!matches!(event, Ok(e) if e.data == "[DONE]"))).map(
        |event| {
            let event = event.map_err(|e| ClientError::Protocol(format!("broken event stream: {e}")))?;
            let bad = |e: serde_json::Error| {
                ClientError::Protocol(format!("bad `{}` event `{}`: {e}", event.event, event.data))
            };
            match event.event.as_str() {
                "conversation" => serde_json::from_str(&event.data).map(ConversationEvent::Started).map_err(bad),
                "exchange" => serde_json::from_str(&event.data).map(ConversationEvent::Exchange).map_err(bad),
                "done" => serde_json::from_str(&event.data).map(ConversationEvent::Done).map_err(bad),
                _ => match serde_json::from_str::<ErrorResponse>(&event.data) {
                    Ok(e) => Err(ClientError::Api {
                        status: 200,
                        message: e.error.message,
                        kind: e.error.kind,
                        code: e.error.code,
                    }),
                    Err(e) => Err(bad(e)),
                },
            }
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_are_decoded_in_order() {
        let body = concat!(
            "event: conversation\ndata: {\"session_id\":\"ses_1\",\"participants\":[\"A\",\"B\"],\"topic\":\"t\"}\n\n",
            "event: exchange\ndata: {\"speaker\":\"A\",\"message\":\"hi\",\"turn\":1,\"model\":\"m\"}\n\n",
            ": keep-alive\n\n",
            "event: error\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
            "event: done\ndata: {\"session_id\":\"ses_1\",\"topic\":\"t\",\"participants\":[\"A\",\"B\"],",
            "\"exchanges\":[],\"status\":\"error\"}\n\n",
            "data: [DONE]\n\n",
            "event: exchange\ndata: {}\n\n",
        );
        let bytes = futures::stream::iter([Ok::<_, std::io::Error>(body.as_bytes().to_vec())]);
        let events: Vec<_> = conversation_events(bytes).collect().await;
        assert_eq!(events.len(), 4);
        assert!(matches!(&events[0], Ok(ConversationEvent::Started(s)) if s.session_id == "ses_1"));
        assert!(matches!(&events[1], Ok(ConversationEvent::Exchange(e)) if e.speaker == "A" && e.turn == 1));
        assert!(matches!(&events[2], Err(ClientError::Api { message, .. }) if message == "boom"));
        assert!(matches!(&events[3], Ok(ConversationEvent::Done(c)) if c.status == "error"));
    }
}
