//! The stream of one generation: [`GenerationEvent`]s flowing from a
//! backend's model thread to whoever asked, over an unbounded channel.
//! Dropping the [`GenerationStream`] cancels the generation: the backend sees
//! its [`GenerationSender`] closed at its next decode step and frees the slot.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::BackendError;

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token or a stop sequence.
    Stop,
    /// `max_tokens` or the context size was reached.
    Length,
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
}

impl GenerationStream {
    /// A connected pair for a prompt of `prompt_tokens` tokens.
    pub fn channel(prompt_tokens: u32) -> (GenerationSender, GenerationStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        (GenerationSender { tx }, GenerationStream { rx, prompt_tokens })
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
    pub async fn collect(mut self) -> Result<(String, FinishReason, Usage), BackendError> {
        let mut text = String::new();
        while let Some(event) = self.rx.recv().await {
            match event {
                GenerationEvent::Text(t) => text.push_str(&t),
                GenerationEvent::Done { finish_reason, usage } => return Ok((text, finish_reason, usage)),
                GenerationEvent::Error(e) => return Err(e),
            }
        }
        Err(BackendError::Unavailable)
    }
}

impl Stream for GenerationStream {
    type Item = GenerationEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}
