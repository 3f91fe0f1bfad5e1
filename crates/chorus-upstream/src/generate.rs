//! One generation forwarded upstream: the task that sends the streamed request
//! and turns the server-sent events into [`GenerationEvent`]s ([`Assembler`]):
//! content deltas as `Text` at once, `delta.tool_calls` pieces gathered into
//! whole calls and sent as one `ToolCalls` before `Done`, `finish_reason` and
//! the final `usage` chunk into `Done`. An `error` object in the stream
//! (llama-server and chorus send `data: {"error": …}`) ends it with `Error`,
//! as does a stream that stops before a `finish_reason`. An upstream that
//! answers `application/json` instead (no streaming) is read as one chunk.
//! The task ends as soon
//! as the [`GenerationStream`](chorus_engine::GenerationStream) is dropped,
//! which drops the HTTP response and so closes the connection: the upstream
//! stops generating.

use std::sync::Arc;

use chorus_engine::stream::GenerationSender;
use chorus_engine::{BackendError, FinishReason, GenerationEvent, ToolCall, ToolFormat, Usage};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::Value;

use crate::client::Upstreams;
use crate::error::{broken, from_error_value, unreachable};
use crate::pool::Lease;
use crate::wire::{Chunk, Endpoint, ToolCallDelta, WireUsage, finish_reason};

/// What a generation task needs besides the shared [`Upstreams`].
#[derive(Debug)]
pub(crate) struct Job {
    /// The URL chosen for it (another may answer, see [`Upstreams::send`]).
    pub(crate) lease: Lease,
    /// Its `prompt_cache_key`, for the URL's choice.
    pub(crate) key: Option<String>,
    pub(crate) endpoint: Endpoint,
    pub(crate) body: Value,
    /// The estimate, for `usage` when the upstream sends none.
    pub(crate) prompt_tokens: u32,
}

/// Run `job`, sending its events to `tx` until the end or until the stream is dropped.
pub(crate) async fn run(upstreams: Arc<Upstreams>, job: Job, tx: GenerationSender) {
    let end = tokio::select! {
        () = tx.closed() => return,
        end = stream(&upstreams, job, &tx) => end,
    };
    // The lease and the connection are gone by now: whoever sees the last event sees the
    // request counted out.
    match end {
        Ok(events) => {
            for event in events {
                tx.send(event);
            }
        }
        Err(error) => {
            tx.send(GenerationEvent::Error(error));
        }
    }
}

/// Send the request and stream its text to `tx`; the last events (the calls and `Done`), or
/// the error that ended it. Nothing when the client left.
async fn stream(upstreams: &Upstreams, job: Job, tx: &GenerationSender) -> Result<Vec<GenerationEvent>, BackendError> {
    let Job { mut lease, key, endpoint, body, prompt_tokens } = job;
    let response = upstreams.send(&mut lease, key.as_deref(), endpoint.path(), &body).await?;
    let mut answer = Assembler::new(endpoint, prompt_tokens);
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        // A server (or a proxy) that does not stream answers in one piece.
        let bytes = response.bytes().await.map_err(|e| unreachable(lease.url(), &e))?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|e| broken(lease.url(), format!("the answer is not JSON ({e})")))?;
        let text = answer.push(parse_chunk(lease.url(), value)?);
        if let Some(text) = text
            && !tx.send(GenerationEvent::Text(text))
        {
            return Ok(Vec::new());
        }
        return last_events(lease.url(), answer);
    }
    let mut events = response.bytes_stream().eventsource();
    while let Some(event) = events.next().await {
        let event = event.map_err(|e| {
            let error = broken(lease.url(), format!("the stream broke off: {e}"));
            lease.mark_unhealthy(&error.to_string());
            error
        })?;
        if event.data.trim() == "[DONE]" {
            break;
        }
        let value: Value = serde_json::from_str(&event.data)
            .map_err(|e| broken(lease.url(), format!("a stream event is not JSON ({e})")))?;
        if let Some(text) = answer.push(parse_chunk(lease.url(), value)?)
            && !tx.send(GenerationEvent::Text(text))
        {
            return Ok(Vec::new());
        }
    }
    last_events(lease.url(), answer)
}

/// The chunk in an event (or whole answer) from `url`.
///
/// # Errors
/// The error object it holds, or status 0 when it is not a chunk.
fn parse_chunk(url: &str, value: Value) -> Result<Chunk, BackendError> {
    if let Some(error) = from_error_value(stream_error_status(&value), &value) {
        return Err(error);
    }
    serde_json::from_value(value).map_err(|e| broken(url, format!("a stream chunk does not parse ({e})")))
}

/// The calls and `Done` of a finished answer from `url`.
///
/// # Errors
/// Status 0 when it ended before a `finish_reason`.
fn last_events(url: &str, answer: Assembler) -> Result<Vec<GenerationEvent>, BackendError> {
    let Some((calls, done)) = answer.finish() else {
        return Err(broken(url, "the stream ended before the answer finished"));
    };
    let mut last = Vec::new();
    if !calls.is_empty() {
        last.push(GenerationEvent::ToolCalls(calls));
    }
    last.push(done);
    Ok(last)
}

/// The status of an error sent inside a 200 stream: its numeric `code` (llama-server sends
/// the status it would have answered), else by its `type` (`invalid_request_error` 400,
/// `not_found_error` 404, `authentication_error` 401), else 500.
fn stream_error_status(value: &Value) -> u16 {
    let error = value.get("error");
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_u64);
    if let Some(code) = code.and_then(|c| u16::try_from(c).ok()).filter(|c| (400..600).contains(c)) {
        return code;
    }
    match error.and_then(|e| e.get("type")).and_then(Value::as_str) {
        Some("invalid_request_error") => 400,
        Some("authentication_error") => 401,
        Some("not_found_error") => 404,
        _ => 500,
    }
}

/// A tool call being streamed in pieces.
#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// The state of one streamed answer: what the chunks so far said.
#[derive(Debug)]
pub(crate) struct Assembler {
    endpoint: Endpoint,
    /// The estimate, for `usage` when the upstream sends none.
    prompt_tokens: u32,
    /// Content chunks seen: the estimate of completion tokens without `usage`.
    pieces: u32,
    calls: Vec<PartialCall>,
    finish: Option<String>,
    usage: Option<WireUsage>,
}

impl Assembler {
    pub(crate) fn new(endpoint: Endpoint, prompt_tokens: u32) -> Self {
        Self { endpoint, prompt_tokens, pieces: 0, calls: Vec::new(), finish: None, usage: None }
    }

    /// Take in one chunk; the text it adds, if any. Only the first choice is read (chorus
    /// asks for one).
    pub(crate) fn push(&mut self, chunk: Chunk) -> Option<String> {
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        let choice = chunk.choices.into_iter().find(|c| c.index.unwrap_or(0) == 0)?;
        if let Some(reason) = choice.finish_reason {
            self.finish = Some(reason);
        }
        let text = match self.endpoint {
            Endpoint::Completions => choice.text,
            Endpoint::Chat => {
                let delta = choice.delta.unwrap_or_default();
                for piece in delta.tool_calls.unwrap_or_default() {
                    self.add_call_piece(piece);
                }
                delta.content
            }
        };
        let text = text.filter(|t| !t.is_empty())?;
        self.pieces += 1;
        Some(text)
    }

    /// Add a piece of a call: the first piece of a call has its `id` and name, later ones
    /// arguments to append. A piece without `index` continues the last call, or starts one
    /// when it has an `id`.
    fn add_call_piece(&mut self, piece: ToolCallDelta) {
        let index = match piece.index {
            // Calls come numbered from 0; an index past the next one (a broken or hostile
            // upstream) starts the next call rather than allocating up to it.
            Some(i) => usize::try_from(i).unwrap_or(usize::MAX).min(self.calls.len()),
            None if piece.id.is_some() || self.calls.is_empty() => self.calls.len(),
            None => self.calls.len() - 1,
        };
        if self.calls.len() <= index {
            self.calls.resize_with(index + 1, PartialCall::default);
        }
        let call = &mut self.calls[index];
        if let Some(id) = piece.id.filter(|id| !id.is_empty()) {
            call.id = id;
        }
        if let Some(function) = piece.function {
            if let Some(name) = function.name.filter(|n| !n.is_empty())
                && call.name.is_empty()
            {
                call.name = name;
            }
            match function.arguments {
                Some(Value::String(s)) => call.arguments.push_str(&s),
                Some(Value::Null) | None => {}
                Some(other) => call.arguments.push_str(&other.to_string()),
            }
        }
    }

    /// The calls and the `Done` event once the stream ended, or `None` when it ended without a
    /// `finish_reason` (broken off). Calls without a name are dropped, missing ids made up;
    /// `finish_reason` is `tool_calls` exactly when calls remain.
    pub(crate) fn finish(self) -> Option<(Vec<ToolCall>, GenerationEvent)> {
        let reason = finish_reason(&self.finish?);
        let calls: Vec<ToolCall> = self
            .calls
            .into_iter()
            .filter(|c| !c.name.is_empty())
            .map(|c| ToolCall {
                id: if c.id.is_empty() { ToolFormat::Hermes.new_call_id() } else { c.id },
                name: c.name,
                arguments: if c.arguments.trim().is_empty() { "{}".into() } else { c.arguments },
            })
            .collect();
        let finish_reason = match (calls.is_empty(), reason) {
            (false, _) => FinishReason::ToolCalls,
            (true, FinishReason::ToolCalls) => FinishReason::Stop,
            (true, other) => other,
        };
        let usage = match self.usage {
            Some(u) => Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                cached_tokens: u.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
                ..Usage::default()
            },
            None => Usage { prompt_tokens: self.prompt_tokens, completion_tokens: self.pieces, ..Usage::default() },
        };
        Some((calls, GenerationEvent::Done { finish_reason, usage }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn chunk(json: &str) -> Chunk {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn tool_call_pieces_are_assembled() {
        let mut a = Assembler::new(Endpoint::Chat, 10);
        let pieces = [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get","arguments":""}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"name":"put","arguments":{"y":2}}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        ];
        for p in pieces {
            assert_eq!(a.push(chunk(p)), None);
        }
        let (calls, done) = a.finish().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].id.as_str(), calls[0].name.as_str(), calls[0].arguments.as_str()),
            ("call_a", "get", r#"{"x":1}"#)
        );
        assert_eq!(calls[1].name, "put");
        assert_eq!(calls[1].arguments, r#"{"y":2}"#);
        assert!(calls[1].id.starts_with("call_"), "a made-up id");
        assert!(matches!(
            done,
            GenerationEvent::Done {
                finish_reason: FinishReason::ToolCalls,
                usage: Usage { prompt_tokens: 10, completion_tokens: 0, .. }
            }
        ));
    }

    #[test]
    fn a_call_index_far_past_the_calls_starts_the_next_one() {
        let mut a = Assembler::new(Endpoint::Chat, 1);
        let huge = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":4000000000,"id":"call_z","function":{"name":"get","arguments":"{}"}}]}}]}"#;
        assert_eq!(a.push(chunk(huge)), None);
        assert_eq!(a.push(chunk(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#)), None);
        let (calls, _) = a.finish().unwrap();
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].id.as_str(), calls[0].name.as_str()), ("call_z", "get"));
    }

    #[test]
    fn without_a_finish_reason_the_answer_is_broken() {
        let mut a = Assembler::new(Endpoint::Completions, 1);
        assert_eq!(a.push(chunk(r#"{"choices":[{"index":0,"text":"Hi"}]}"#)).as_deref(), Some("Hi"));
        assert!(a.finish().is_none());
    }

    #[test]
    fn stream_errors_get_a_status() {
        assert_eq!(stream_error_status(&serde_json::json!({"error": {"code": 400, "message": "x"}})), 400);
        assert_eq!(stream_error_status(&serde_json::json!({"error": {"type": "invalid_request_error"}})), 400);
        assert_eq!(stream_error_status(&serde_json::json!({"error": {"code": "upstream_error"}})), 500);
    }
}
