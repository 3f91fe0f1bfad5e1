//! The stream of one generation: [`GenerationEvent`]s flowing from a
//! backend's model thread to whoever asked, over an unbounded channel.
//! Dropping the [`GenerationStream`] cancels the generation: the backend sees
//! its [`GenerationSender`] closed at its next decode step and frees the slot.
//! A stream of a request with tools runs the text through a
//! [`ToolCallParser`] on the caller's side: content comes out as
//! [`GenerationEvent::Text`], calls as one [`GenerationEvent::ToolCalls`].

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

/// Token counts of one generation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens in the prompt after templating.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Prompt tokens whose KV cache was reused from an earlier request.
    pub cached_tokens: u32,
}

/// One event of a generation.
#[derive(Debug)]
pub enum GenerationEvent {
    /// New text; never splits a UTF-8 character and never holds any part of a stop sequence.
    Text(String),
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
}

impl GenerationStream {
    /// A connected pair for a prompt of `prompt_tokens` tokens.
    pub fn channel(prompt_tokens: u32) -> (GenerationSender, GenerationStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        (GenerationSender { tx }, GenerationStream { rx, prompt_tokens, parser: None, ready: VecDeque::new() })
    }

    /// Parse the text for tool calls with `parser` (the engine does this for requests with tools).
    pub fn with_parser(mut self, parser: ToolCallParser) -> Self {
        self.parser = Some(parser);
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
        while let Some(event) = self.next().await {
            match event {
                GenerationEvent::Text(t) => text.push_str(&t),
                GenerationEvent::ToolCalls(calls) => tool_calls = calls,
                GenerationEvent::Done { finish_reason, usage } => {
                    return Ok(Completion { text, tool_calls, finish_reason, usage });
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
