//! `chorus ask`: one question, the answer streamed to stdout (or printed
//! whole with `--no-stream`).

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, Result};
use chorus_proto::openai::{ChatCompletionRequest, ChatMessage, Role, SamplingFields};
use futures::StreamExt;

use crate::args::{AskArgs, GenerateArgs};
use crate::target::{self, Target};

/// The prompt from the argument and/or piped stdin; `None` when there is neither.
pub(crate) fn prompt(arg: Option<String>) -> Result<Option<String>> {
    let stdin = std::io::stdin();
    let piped = if stdin.is_terminal() {
        None
    } else {
        let mut s = String::new();
        stdin.lock().read_to_string(&mut s).context("cannot read the prompt from stdin")?;
        Some(s).filter(|s| !s.trim().is_empty())
    };
    Ok(match (arg, piped) {
        (Some(a), Some(p)) => Some(format!("{a}\n\n{p}")),
        (a, p) => a.or(p),
    })
}

/// A chat request for `messages` with the generation flags.
pub(crate) fn request(target: &Target, generate: &GenerateArgs, messages: Vec<ChatMessage>) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: target.model.clone(),
        messages,
        max_tokens: None,
        max_completion_tokens: generate.max_tokens,
        sampling: SamplingFields {
            temperature: generate.temperature,
            seed: generate.seed,
            ..SamplingFields::default()
        },
        category: generate.category.clone(),
        ..ChatCompletionRequest::default()
    }
}

/// A text message.
pub(crate) fn message(role: Role, text: &str) -> ChatMessage {
    ChatMessage::text(role, text)
}

/// Returns `Ok(false)` for a usage error (no prompt).
pub(crate) async fn run(args: AskArgs) -> Result<bool> {
    let Some(prompt) = prompt(args.prompt)? else {
        eprintln!("chorus: no prompt: pass it as an argument (chorus ask \"…\") or pipe it on stdin");
        return Ok(false);
    };
    let target = target::connect(&args.connect, &args.model).await?;
    if let Some(session) = &args.session {
        let max_tokens = args.generate.max_tokens.and_then(|n| u32::try_from(n).ok());
        let result = crate::sessions::ask(&target, session, prompt, max_tokens).await;
        target.close().await;
        return result.map(|()| true);
    }
    let mut messages = Vec::new();
    if let Some(system) = &args.generate.system {
        messages.push(message(Role::System, system));
    }
    messages.push(message(Role::User, &prompt));
    let request = request(&target, &args.generate, messages);
    let result = answer(&target, &request, !args.no_stream).await;
    target.close().await;
    result.map(|_| true)
}

/// Print the answer to stdout; returns its text.
pub(crate) async fn answer(target: &Target, request: &ChatCompletionRequest, stream: bool) -> Result<String> {
    let mut out = std::io::stdout();
    let text = if stream {
        let mut chunks = target.client.chat_stream(request).await?;
        let mut text = String::new();
        while let Some(chunk) = chunks.next().await {
            for choice in chunk?.choices {
                if let Some(delta) = choice.delta.content {
                    out.write_all(delta.as_bytes())?;
                    out.flush()?;
                    text.push_str(&delta);
                }
            }
        }
        text
    } else {
        let completion = target.client.chat(request).await?;
        let text = completion.choices.into_iter().next().and_then(|c| c.message.content).unwrap_or_default();
        out.write_all(text.as_bytes())?;
        text
    };
    writeln!(out)?;
    Ok(text)
}
