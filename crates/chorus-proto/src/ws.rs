//! The WebSocket protocol of `/ws?session_id=…`, the envelope of the AMCP
//! seed: every message, both ways, is an [`Envelope`] `{"type", "id",
//! "timestamp", "payload"}`.
//!
//! - client → server: `type: "request"` with `payload.action` one of
//!   `prompt` (`content`, optional `priority`, `max_tokens`, `ignore_eos`,
//!   `tool_choice`), `cancel`, `subscribe` (`session_id`, optional
//!   `last_event_id`) and `permission_reply` (`request_id`, `allow`). The
//!   actions but `subscribe` take an optional `session_id`: it selects the
//!   session when the connection watches none yet, and must be the watched one
//!   otherwise. `timestamp` may be absent, an RFC 3339 string or Unix
//!   milliseconds; fields an envelope or a payload does not define are ignored
//!   (the seed's clients send some); an unknown `action` is refused.
//! - server → client: `timestamp` is always RFC 3339 in UTC with milliseconds
//!   (`2026-01-07T12:00:00.123Z`). `type: "event"` for every event of the
//!   watched session (`id` is the event's log id, `payload` the
//!   [`crate::native::Event`]); `type: "response"` answering a request by its
//!   `id` (for a prompt: `kind: "queued"`, then `kind: "text"` chunks with
//!   `done: false`, `tool_call` / `tool_result` as its tools run, and `kind:
//!   "complete"` with the stored message and its usage); `type: "error"` for a
//!   request that failed, or a message that was not a valid request (`id` null).
//!
//! The seed's example request:
//! `{"type": "request", "id": "req_001", "timestamp": "2026-01-07T12:00:00Z",
//! "payload": {"action": "prompt", "content": "Hello", "session_id": "ses_abc"}}`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::native::{Message, Priority, TokenUsage};

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeType {
    /// A client's request.
    Request,
    /// The server's answer to a request.
    Response,
    /// An event of the subscribed session.
    Event,
    /// A failed request, or an unreadable message.
    Error,
}

/// One WebSocket text message. `P` is the payload's type: a JSON value when
/// reading; the server writes typed payloads without an intermediate value.
/// Fields other than these four are ignored when reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<P = Value> {
    /// What it carries.
    #[serde(rename = "type")]
    pub kind: EnvelopeType,
    /// A request's id (chosen by the client, echoed in its responses), or an
    /// event's log id as text; null for errors about unreadable messages.
    #[serde(default)]
    pub id: Option<String>,
    /// When it was sent; the server always sets it, a client may leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// The content: a [`Request`], a [`Response`], a [`crate::native::Event`]
    /// or a [`WsError`]; null when absent.
    #[serde(default)]
    pub payload: P,
}

/// A point in time on the WebSocket: written as RFC 3339 in UTC with
/// milliseconds (`"2026-01-07T12:00:00.123Z"`); read from an RFC 3339 string
/// with any offset (`"2026-01-07T12:00:00Z"`, `"2026-01-07T13:00:00+01:00"`)
/// or from an integer of Unix milliseconds (`1767787200000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(Utc::now())
    }

    /// The time `ms` milliseconds after the Unix epoch (negative: before it);
    /// `None` outside the years -262143 to 262142.
    pub fn from_unix_ms(ms: i64) -> Option<Self> {
        DateTime::from_timestamp_millis(ms).map(Self)
    }

    /// Milliseconds since the Unix epoch (sub-millisecond digits are dropped).
    pub fn unix_ms(&self) -> i64 {
        self.0.timestamp_millis()
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds: `2026-01-07T12:00:00.123Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

/// Why a text is not a [`Timestamp`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampError(String);

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TimestampError {}

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// An RFC 3339 date-time with its offset (`Z` or `±HH:MM`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(s).map(|t| Self(t.with_timezone(&Utc))).map_err(|e| {
            TimestampError(format!("`{s}` is not an RFC 3339 date-time such as 2026-01-07T12:00:00Z: {e}"))
        })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 date-time string or Unix milliseconds (an integer)")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                s.parse().map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Timestamp, E> {
                Timestamp::from_unix_ms(ms)
                    .ok_or_else(|| E::custom(format!("{ms} Unix milliseconds is out of the range of dates")))
            }

            fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Timestamp, E> {
                i64::try_from(ms)
                    .map_err(|_| E::custom(format!("{ms} Unix milliseconds is out of the range of dates")))
                    .and_then(|ms| self.visit_i64(ms))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// A client's request (the `payload` of a `request` envelope). Read one with
/// [`Request::from_payload`], which explains a missing or unknown `action`.
/// Fields a known action does not define are ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Request {
    /// Send a prompt to the session.
    Prompt {
        /// The user's message.
        content: String,
        /// Queue priority.
        #[serde(default)]
        priority: Priority,
        /// The most tokens to generate.
        #[serde(default)]
        max_tokens: Option<u32>,
        /// Keep generating past the end-of-generation token.
        #[serde(default)]
        ignore_eos: bool,
        /// OpenAI's `tool_choice` for the agent's first round (see `PromptRequest`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_choice: Option<crate::openai::ToolChoice>,
        /// The session: selects it when the connection watches none, must be the watched one otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
    },
    /// Cancel the running prompt and drop the queue.
    Cancel {
        /// The session, as for `prompt`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
    },
    /// Watch a session (replacing the current one), from after `last_event_id` when given.
    Subscribe {
        /// The session.
        session_id: String,
        /// Replay the events after this log id first.
        #[serde(default)]
        last_event_id: Option<i64>,
    },
    /// Answer a tool's permission request.
    PermissionReply {
        /// The `tool.permission_request` being answered.
        request_id: String,
        /// Whether the tool may run.
        allow: bool,
        /// The session, as for `prompt`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_id: Option<String>,
    },
}

/// Why a payload is not a [`Request`]: the field at fault (`payload`,
/// `payload.action`) and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    /// The field at fault, as a path from the envelope: `payload` or `payload.action`.
    pub param: &'static str,
    /// What is wrong, and what is expected instead.
    pub message: String,
}

impl fmt::Display for InvalidRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for InvalidRequest {}

impl Request {
    /// Every `action` a request may have.
    pub const ACTIONS: [&'static str; 4] = ["prompt", "cancel", "subscribe", "permission_reply"];

    /// Read a `request` envelope's payload: a JSON object whose `action` is
    /// one of [`Request::ACTIONS`], with that action's fields (others are ignored).
    ///
    /// # Errors
    /// [`InvalidRequest`] when the payload is not an object, has no `action`
    /// or an unknown one, or the action's fields are missing or mistyped.
    pub fn from_payload(payload: Value) -> Result<Self, InvalidRequest> {
        let known = || Self::ACTIONS.map(|a| format!("`{a}`")).join(", ");
        let action = match &payload {
            Value::Object(fields) => fields.get("action"),
            _ => {
                return Err(InvalidRequest {
                    param: "payload",
                    message: format!("a request's payload must be an object with an `action`, one of {}", known()),
                });
            }
        };
        let action = match action {
            Some(Value::String(action)) => action.clone(),
            Some(_) => {
                return Err(InvalidRequest {
                    param: "payload.action",
                    message: format!("`action` must be a string, one of {}", known()),
                });
            }
            None => {
                return Err(InvalidRequest {
                    param: "payload.action",
                    message: format!("a request's payload needs an `action`, one of {}", known()),
                });
            }
        };
        if !Self::ACTIONS.contains(&action.as_str()) {
            return Err(InvalidRequest {
                param: "payload.action",
                message: format!("unknown action `{action}`; the actions are {}", known()),
            });
        }
        serde_json::from_value(payload)
            .map_err(|e| InvalidRequest { param: "payload", message: format!("invalid `{action}` request: {e}") })
    }

    /// The action's name, as in `payload.action`.
    pub fn action(&self) -> &'static str {
        match self {
            Request::Prompt { .. } => "prompt",
            Request::Cancel { .. } => "cancel",
            Request::Subscribe { .. } => "subscribe",
            Request::PermissionReply { .. } => "permission_reply",
        }
    }
}

/// The server's answer to a request (the `payload` of a `response` envelope).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    /// A prompt was queued.
    Queued {
        /// Its id; its events carry it.
        prompt_id: String,
        /// Prompts that run before it.
        queue_position: u32,
        /// Always false.
        done: bool,
    },
    /// More of a prompt's answer.
    Text {
        /// New text.
        content: String,
        /// Always false.
        done: bool,
    },
    /// A tool call of the prompt starts (its `tool.call_start` event), in the
    /// seed's shape: `{"kind": "tool_call", "tool_name", "arguments", "session_id"}`.
    ToolCall {
        /// The tool's name.
        tool_name: String,
        /// The call's arguments: the JSON object the model wrote (as a string
        /// when it is not valid JSON).
        arguments: Value,
        /// The session.
        session_id: String,
        /// The call's id (chorus's addition, as in the events): its `tool_result` names it too.
        call_id: String,
    },
    /// A tool call of the prompt ended (`tool.call_complete` or
    /// `tool.call_error`), in the seed's shape: `{"kind": "tool_result",
    /// "tool_name", "result", "success"}`.
    ToolResult {
        /// The tool's name.
        tool_name: String,
        /// What the tool returned, or what went wrong (then `success` is false).
        result: String,
        /// Whether the tool ran and returned a result.
        success: bool,
        /// The call's id, as in its `tool_call`.
        call_id: String,
    },
    /// The prompt's answer, stored.
    Complete {
        /// The assistant's message.
        message: Box<Message>,
        /// Its tokens.
        usage: TokenUsage,
        /// Always true.
        done: bool,
    },
    /// A cancel was carried out.
    Cancelled {
        /// Whether a prompt was running.
        cancelled: bool,
        /// Queued prompts dropped.
        dropped: u32,
    },
    /// Now watching a session.
    Subscribed {
        /// The session.
        session_id: String,
    },
    /// A `permission_reply` reached the waiting tool call.
    PermissionRecorded {
        /// The `tool.permission_request` answered.
        request_id: String,
        /// The answer.
        allow: bool,
    },
}

/// An error (the `payload` of an `error` envelope), with OpenAI's error fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WsError {
    /// What went wrong.
    pub message: String,
    /// `invalid_request_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A stable code.
    pub code: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    fn envelope(text: &str) -> Envelope {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn the_seeds_example_request_is_read() {
        let e = envelope(
            r#"{"type": "request", "id": "req_001", "timestamp": "2026-01-07T12:00:00Z",
                "payload": {"action": "prompt", "content": "Hello", "session_id": "ses_abc"}}"#,
        );
        assert_eq!((e.kind, e.id.as_deref()), (EnvelopeType::Request, Some("req_001")));
        assert_eq!(e.timestamp.unwrap().unix_ms(), 1_767_787_200_000);
        let request = Request::from_payload(e.payload).unwrap();
        assert_eq!(
            request,
            Request::Prompt {
                content: "Hello".into(),
                priority: Priority::Normal,
                max_tokens: None,
                ignore_eos: false,
                tool_choice: None,
                session_id: Some("ses_abc".into()),
            }
        );
    }

    #[test]
    fn timestamps_may_be_absent_rfc3339_or_unix_ms() {
        let absent = envelope(r#"{"type": "request", "id": "a", "payload": {"action": "cancel"}}"#);
        assert_eq!(absent.timestamp, None);
        let null = envelope(r#"{"type": "request", "id": "a", "timestamp": null, "payload": {}}"#);
        assert_eq!(null.timestamp, None);
        let ms = envelope(r#"{"type": "request", "id": "a", "timestamp": 1767787200123, "payload": {}}"#);
        assert_eq!(ms.timestamp.unwrap().to_string(), "2026-01-07T12:00:00.123Z");
        let offset = envelope(r#"{"type": "request", "id": "a", "timestamp": "2026-01-07T13:00:00+01:00"}"#);
        assert_eq!(offset.timestamp.unwrap().to_string(), "2026-01-07T12:00:00.000Z");
        assert_eq!(offset.payload, Value::Null);

        for bad in [r#""yesterday""#, r#""2026-01-07 12:00""#, "1.5", "true", "9223372036854775807"] {
            let text = format!(r#"{{"type": "request", "id": "a", "timestamp": {bad}}}"#);
            let err = serde_json::from_str::<Envelope>(&text).unwrap_err().to_string();
            assert!(err.contains("RFC 3339") || err.contains("range"), "{bad}: {err}");
        }
    }

    #[test]
    fn timestamps_are_written_as_rfc3339_utc_with_milliseconds() {
        let e = Envelope {
            kind: EnvelopeType::Event,
            id: Some("7".into()),
            timestamp: Timestamp::from_unix_ms(1_767_787_200_123),
            payload: json!({"type": "agent.idle", "session_id": "ses_1"}),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["timestamp"], "2026-01-07T12:00:00.123Z");
        assert_eq!(serde_json::from_value::<Envelope>(json).unwrap(), e);
        let now = Timestamp::now().to_string();
        assert!(now.ends_with('Z') && now.len() == "2026-01-07T12:00:00.123Z".len(), "{now}");
        assert!(now.parse::<Timestamp>().is_ok());
    }

    #[test]
    fn unknown_envelope_fields_and_payload_fields_are_ignored() {
        let e = envelope(
            r#"{"type": "request", "id": "x", "trace": {"span": 1}, "version": "1.0",
                "payload": {"action": "cancel", "reason": "bored"}}"#,
        );
        assert_eq!(Request::from_payload(e.payload).unwrap(), Request::Cancel { session_id: None });
        let reply = json!({"action": "permission_reply", "request_id": "call_1", "allow": true, "note": "ok"});
        assert_eq!(
            Request::from_payload(reply).unwrap(),
            Request::PermissionReply { request_id: "call_1".into(), allow: true, session_id: None }
        );
    }

    #[test]
    fn bad_actions_are_explained() {
        let err = Request::from_payload(json!({"action": "fly"})).unwrap_err();
        assert_eq!(err.param, "payload.action");
        assert_eq!(
            err.message,
            "unknown action `fly`; the actions are `prompt`, `cancel`, `subscribe`, `permission_reply`"
        );
        let err = Request::from_payload(json!({"content": "hi"})).unwrap_err();
        assert_eq!(err.param, "payload.action");
        assert!(err.message.contains("needs an `action`"), "{}", err.message);
        let err = Request::from_payload(json!({"action": 3})).unwrap_err();
        assert!(err.message.contains("must be a string"), "{}", err.message);
        let err = Request::from_payload(Value::Null).unwrap_err();
        assert_eq!(err.param, "payload");
        let err = Request::from_payload(json!({"action": "prompt"})).unwrap_err();
        assert_eq!((err.param, err.message.as_str()), ("payload", "invalid `prompt` request: missing field `content`"));
        let err = Request::from_payload(json!({"action": "subscribe", "session_id": 5})).unwrap_err();
        assert!(err.message.starts_with("invalid `subscribe` request: invalid type"), "{}", err.message);
    }

    #[test]
    fn actions_lists_every_request() {
        let requests = [
            Request::Prompt {
                content: "hi".into(),
                priority: Priority::High,
                max_tokens: Some(4),
                ignore_eos: true,
                tool_choice: None,
                session_id: Some("ses_1".into()),
            },
            Request::Cancel { session_id: None },
            Request::Subscribe { session_id: "ses_1".into(), last_event_id: Some(3) },
            Request::PermissionReply { request_id: "call_1".into(), allow: false, session_id: None },
        ];
        assert_eq!(requests.len(), Request::ACTIONS.len());
        for (request, action) in requests.into_iter().zip(Request::ACTIONS) {
            let json = serde_json::to_value(&request).unwrap();
            assert_eq!((json["action"].as_str(), request.action()), (Some(action), action));
            assert_eq!(Request::from_payload(json).unwrap(), request);
        }
    }

    #[test]
    fn tool_responses_have_the_seeds_shapes() {
        let call = Response::ToolCall {
            tool_name: "read_file".into(),
            arguments: json!({"path": "notes.md"}),
            session_id: "ses_1".into(),
            call_id: "call_1".into(),
        };
        assert_eq!(
            serde_json::to_value(&call).unwrap(),
            json!({"kind": "tool_call", "tool_name": "read_file", "arguments": {"path": "notes.md"},
                   "session_id": "ses_1", "call_id": "call_1"})
        );
        let result = Response::ToolResult {
            tool_name: "read_file".into(),
            result: "buy milk\n".into(),
            success: true,
            call_id: "call_1".into(),
        };
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(
            json,
            json!({"kind": "tool_result", "tool_name": "read_file", "result": "buy milk\n", "success": true,
                   "call_id": "call_1"})
        );
        assert_eq!(serde_json::from_value::<Response>(json).unwrap(), result);
    }
}
