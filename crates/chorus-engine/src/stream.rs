//! The stream of one generation: [`GenerationEvent`]s flowing from a
//! backend's model thread to whoever asked, over an unbounded channel.
//! Dropping the [`GenerationStream`] cancels the generation: the backend sees
//! its [`GenerationSender`] closed at its next decode step and frees the slot.
//! A stream of a request with tools runs the text through a
//! [`ToolCallParser`] on the caller's side: content comes out as
//! [`GenerationEvent::Text`], calls as one [`GenerationEvent::ToolCalls`].
//! A backend whose calls come parsed already (an OpenAI-compatible upstream,
//! which sends `tool_calls` of its own) marks its stream with
//! [`GenerationStream::calls_parsed`], and no parser is attached to it.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::BackendError;
use crate::tools::{ToolCall, ToolCallParser};

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop sequence.
    Stop,
    /// `max_tokens` or the context size was reached.
    Length,
    /// The model called tools (a [`GenerationEvent::ToolCalls`] came before `Done`).
    ToolCalls,
}

impl FinishReason {
    /// OpenAI's name for it: `stop`, `length` or `tool_calls`.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }
}

/// Token counts and times of one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Tokens in the prompt after templating.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Prompt tokens whose KV cache was reused from an earlier request.
    pub cached_tokens: u32,
    /// Milliseconds spent on the prompt: from the sequence taking its slot to its first
    /// sampled token (llama-server's `timings.prompt_ms`); 0 where the backend does not measure.
    pub prompt_ms: f64,
    /// Milliseconds from the first sampled token to the last (llama-server's
    /// `timings.predicted_ms`); 0 where the backend does not measure.
    pub predicted_ms: f64,
}

/// A token the model sampled, sent only to requests that ask for them
/// ([`crate::GenerateRequest::return_tokens`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SampledToken {
    /// Its id in the vocabulary.
    pub id: i32,
    /// Its bytes as the vocabulary spells it (not always valid UTF-8 on their own).
    pub piece: Vec<u8>,
    /// With [`crate::GenerateRequest::logprobs`]: its log-probability under the model's
    /// distribution (the log-softmax of the logits, before sampling), and the most likely
    /// tokens there, most likely first.
    pub logprobs: Option<TokenLogprobs>,
    /// The generation's counts and times up to and with this token (llama-server's
    /// `timings_per_token`).
    pub usage: Usage,
}

/// A sampled token's log-probability and the most likely alternatives (OpenAI's `logprobs`
/// with `top_logprobs`, llama-server's `n_probs`).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprobs {
    /// The sampled token's log-probability (natural log, at most 0).
    pub logprob: f32,
    /// The `n` most likely tokens, most likely first.
    pub top: Vec<TopLogprob>,
}

/// One of the most likely tokens at a position.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogprob {
    /// Its id.
    pub id: i32,
    /// Its bytes.
    pub piece: Vec<u8>,
    /// Its log-probability.
    pub logprob: f32,
}

/// What llama-server's native API reports besides the text; sent only to requests with
/// [`crate::GenerateRequest::return_tokens`].
#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    /// A sampled token, before the text it makes (which a stop sequence or an unfinished
    /// UTF-8 character may hold back). An end-of-generation token is not sent.
    Token(SampledToken),
    /// The stop sequence that ended the generation (llama-server's `stopping_word`), before
    /// `Done`.
    StopWord(String),
    /// A prompt token with its log-probability after the tokens before it (`logprobs`
    /// `None` for the first), in order, before any generated token; only for requests with
    /// [`crate::GenerateRequest::prompt_logprobs`] (OpenAI completions' `echo` with
    /// `logprobs`).
    PromptToken(SampledToken),
}

/// One event of a generation.
#[derive(Debug)]
pub enum GenerationEvent {
    /// New text; never splits a UTF-8 character and never holds any part of a stop sequence.
    Text(String),
    /// A sampled token or the stop word; only for requests with
    /// [`crate::GenerateRequest::return_tokens`].
    Detail(Detail),
    /// The tool calls of the answer, parsed once generation ended; `Done` follows.
    ToolCalls(Vec<ToolCall>),
    /// The generation ended; no event follows.
    Done {
        /// Why it ended.
        finish_reason: FinishReason,
        /// Its token counts.
        usage: Usage,
    },
    /// The generation failed; no event follows.
    Error(BackendError),
}

/// The backend's end of a generation.
#[derive(Debug, Clone)]
pub struct GenerationSender {
    tx: mpsc::UnboundedSender<GenerationEvent>,
}

impl GenerationSender {
    /// Send an event; false when the receiver is gone (the client left).
    pub fn send(&self, event: GenerationEvent) -> bool {
        self.tx.send(event).is_ok()
    }

    /// True once the [`GenerationStream`] was dropped: the generation should stop.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Wait until the [`GenerationStream`] is dropped (for a backend that waits on I/O, such
    /// as an upstream server, and must stop as soon as the client leaves).
    pub async fn closed(&self) {
        self.tx.closed().await;
    }
}

/// The caller's end of a generation: a `Stream` of [`GenerationEvent`]s.
#[derive(Debug)]
pub struct GenerationStream {
    rx: mpsc::UnboundedReceiver<GenerationEvent>,
    prompt_tokens: u32,
    /// Set for requests with tools.
    parser: Option<ToolCallParser>,
    /// Events produced by the parser, given out before the channel is read again.
    ready: VecDeque<GenerationEvent>,
    /// The model pool's lease on the model, held as long as the stream lives (shared by
    /// the `n` choices of one request).
    _lease: Option<std::sync::Arc<crate::pool::Lease>>,
    /// The backend sends [`GenerationEvent::ToolCalls`] itself, parsed already: no parser
    /// may run over its text (it would hold content back and could find calls in it again).
    calls_parsed: bool,
}

/// A whole answer, as [`GenerationStream::collect`] gathers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The content.
    pub text: String,
    /// The tool calls, when the request had tools and the model called some.
    pub tool_calls: Vec<ToolCall>,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
    /// The sampled tokens, when the request asked for them.
    pub tokens: Vec<SampledToken>,
    /// The stop sequence that ended it, when the request asked for details.
    pub stop_word: Option<String>,
    /// The prompt's tokens with their log-probabilities, when the request asked for them.
    pub prompt_tokens: Vec<SampledToken>,
}

impl GenerationStream {
    /// A connected pair for a prompt of `prompt_tokens` tokens.
    pub fn channel(prompt_tokens: u32) -> (GenerationSender, GenerationStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            GenerationSender { tx },
            GenerationStream {
                rx,
                prompt_tokens,
                parser: None,
                ready: VecDeque::new(),
                _lease: None,
                calls_parsed: false,
            },
        )
    }

    /// Parse the text for tool calls with `parser` (the engine does this for requests with
    /// tools); a stream marked [`GenerationStream::calls_parsed`] is left as it is.
    pub fn with_parser(mut self, parser: ToolCallParser) -> Self {
        if !self.calls_parsed {
            self.parser = Some(parser);
        }
        self
    }

    /// Mark the stream as one whose backend parses tool calls itself and sends them as
    /// [`GenerationEvent::ToolCalls`] (an OpenAI-compatible upstream returns `tool_calls`):
    /// [`GenerationStream::with_parser`] then attaches no parser, so the text flows through as
    /// it comes and the backend's calls are the only ones.
    pub fn calls_parsed(mut self) -> Self {
        self.calls_parsed = true;
        self.parser = None;
        self
    }

    /// Hold the model's lease until the stream is dropped, so the model stays loaded while
    /// the generation runs and its keep_alive starts when it ends.
    pub(crate) fn with_lease(mut self, lease: std::sync::Arc<crate::pool::Lease>) -> Self {
        self._lease = Some(lease);
        self
    }

    /// Tokens in the prompt, known as soon as the request was scheduled.
    pub fn prompt_tokens(&self) -> u32 {
        self.prompt_tokens
    }

    /// Wait for the whole answer.
    ///
    /// # Errors
    /// The backend's error, or [`BackendError::Unavailable`] if the stream
    /// ended without a final event.
    pub async fn collect(mut self) -> Result<Completion, BackendError> {
        use futures::StreamExt;
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        let (mut tokens, mut stop_word, mut prompt_tokens) = (Vec::new(), None, Vec::new());
        while let Some(event) = self.next().await {
            match event {
                GenerationEvent::Text(t) => text.push_str(&t),
                GenerationEvent::Detail(Detail::Token(t)) => tokens.push(t),
                GenerationEvent::Detail(Detail::StopWord(w)) => stop_word = Some(w),
                GenerationEvent::Detail(Detail::PromptToken(t)) => prompt_tokens.push(t),
                GenerationEvent::ToolCalls(calls) => tool_calls = calls,
                GenerationEvent::Done { finish_reason, usage } => {
                    return Ok(Completion { text, tool_calls, finish_reason, usage, tokens, stop_word, prompt_tokens });
                }
                GenerationEvent::Error(e) => return Err(e),
            }
        }
        Err(BackendError::Unavailable)
    }

    /// Run one event from the backend through the parser, queueing what comes out.
    fn parse(&mut self, event: GenerationEvent) {
        let Some(parser) = self.parser.as_mut() else {
            self.ready.push_back(event);
            return;
        };
        match event {
            GenerationEvent::Text(text) => {
                let content = parser.push(&text);
                if !content.is_empty() {
                    self.ready.push_back(GenerationEvent::Text(content));
                }
            }
            GenerationEvent::Done { mut finish_reason, usage } => {
                let parsed = self.parser.take().map(ToolCallParser::finish).unwrap_or_default();
                if !parsed.content.is_empty() {
                    self.ready.push_back(GenerationEvent::Text(parsed.content));
                }
                if !parsed.tool_calls.is_empty() {
                    finish_reason = FinishReason::ToolCalls;
                    self.ready.push_back(GenerationEvent::ToolCalls(parsed.tool_calls));
                }
                self.ready.push_back(GenerationEvent::Done { finish_reason, usage });
            }
            other => self.ready.push_back(other),
        }
    }
}

impl Stream for GenerationStream {
    type Item = GenerationEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Poll::Ready(Some(event));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(event)) => self.parse(event),
                other => return other,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tools::{FunctionDefinition, ToolFormat};

    fn parser() -> ToolCallParser {
        let tool = FunctionDefinition {
            name: "list_dir".into(),
            description: None,
            parameters: serde_json::json!({"type": "object"}),
            strict: false,
        };
        ToolCallParser::new(ToolFormat::Hermes, &[tool])
    }

    const CALL_TEXT: &str = r#"{"name": "list_dir", "arguments": {"path": "."}}"#;

    #[tokio::test]
    async fn a_parser_finds_calls_in_the_text() {
        let (tx, rx) = GenerationStream::channel(1);
        let rx = rx.with_parser(parser());
        tx.send(GenerationEvent::Text(CALL_TEXT.into()));
        tx.send(GenerationEvent::Done { finish_reason: FinishReason::Stop, usage: Usage::default() });
        let done = rx.collect().await.unwrap();
        assert_eq!(done.tool_calls.len(), 1);
        assert_eq!(done.finish_reason, FinishReason::ToolCalls);
        assert_eq!(done.text, "");
    }

    #[tokio::test]
    async fn a_stream_with_parsed_calls_gets_no_parser() {
        let (tx, rx) = GenerationStream::channel(1);
        let mut rx = rx.calls_parsed().with_parser(parser());
        tx.send(GenerationEvent::Text(CALL_TEXT.into()));
        // The text is released at once, not held as a possible call.
        use futures::StreamExt;
        assert!(matches!(rx.next().await, Some(GenerationEvent::Text(t)) if t == CALL_TEXT));
        let call = ToolCall { id: "call_1".into(), name: "list_dir".into(), arguments: "{}".into() };
        tx.send(GenerationEvent::ToolCalls(vec![call.clone()]));
        tx.send(GenerationEvent::Done { finish_reason: FinishReason::ToolCalls, usage: Usage::default() });
        let done = rx.collect().await.unwrap();
        assert_eq!(done.tool_calls, vec![call]);
        assert_eq!(done.text, "");
        assert_eq!(done.finish_reason, FinishReason::ToolCalls);
    }

    #[tokio::test]
    async fn closed_resolves_when_the_stream_is_dropped() {
        let (tx, rx) = GenerationStream::channel(1);
        drop(rx);
        tx.closed().await;
        assert!(tx.is_closed());
    }
}
