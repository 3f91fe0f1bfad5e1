//! From a request's [`Prompt`] to tokens: chat messages (with the request's
//! `tools` and the messages' `tool_calls`) through the model's chat template,
//! then llama.cpp's tokenizer (special tokens parsed, BOS added once, as
//! llama-server does). For templates that do not print tools, the tools and
//! calls are written into the messages in the Hermes format instead, so the
//! model still sees them.

use chorus_engine::request::{ChatEnding, ChatMessage, Role};
use chorus_engine::tools::{FunctionDefinition, hermes_system_prompt};
use chorus_engine::{BackendError, GenerateRequest, InfillChunk, Prompt};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use serde_json::{Value, json};

use crate::template::{ChatTemplate, TemplateError};

/// The messages as the OpenAI-shaped JSON array chat templates read.
fn messages_json(messages: &[ChatMessage]) -> Value {
    let list = messages
        .iter()
        .map(|m| {
            let mut obj = serde_json::Map::new();
            obj.insert("role".into(), m.role.as_str().into());
            obj.insert("content".into(), m.content.as_str().into());
            if let Some(name) = &m.name {
                obj.insert("name".into(), name.as_str().into());
            }
            if let Some(id) = &m.tool_call_id {
                obj.insert("tool_call_id".into(), id.as_str().into());
            }
            if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                    .collect();
                obj.insert("tool_calls".into(), calls.into());
            }
            Value::Object(obj)
        })
        .collect();
    Value::Array(list)
}

/// The conversation rewritten for a template that prints neither tools nor calls: the tools
/// described in the system message, calls as `<tool_call>` blocks in the assistant's text,
/// tool results as user messages in `<tool_response>` blocks.
fn inline_tools(messages: &[ChatMessage], tools: &[FunctionDefinition]) -> Vec<ChatMessage> {
    let mut out = Vec::with_capacity(messages.len() + 1);
    if !tools.is_empty() {
        let described = hermes_system_prompt(tools);
        match messages.first() {
            Some(first) if first.role == Role::System => {
                out.push(ChatMessage::new(Role::System, format!("{}\n\n{described}", first.content)));
            }
            _ => out.push(ChatMessage::new(Role::System, described)),
        }
    }
    let skip = usize::from(!tools.is_empty() && messages.first().is_some_and(|m| m.role == Role::System));
    for m in &messages[skip..] {
        match m.role {
            Role::Assistant if !m.tool_calls.is_empty() => {
                let mut text = m.content.clone();
                for call in &m.tool_calls {
                    let arguments: Value =
                        serde_json::from_str(&call.arguments).unwrap_or(Value::Object(Default::default()));
                    let body = json!({"name": call.name, "arguments": arguments});
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&format!("<tool_call>\n{body}\n</tool_call>"));
                }
                out.push(ChatMessage::new(Role::Assistant, text));
            }
            Role::Tool => {
                out.push(ChatMessage::new(Role::User, format!("<tool_response>\n{}\n</tool_response>", m.content)))
            }
            _ => out.push(m.clone()),
        }
    }
    out
}

/// Render (for chats) and tokenize a request's prompt.
///
/// # Errors
/// [`BackendError::Template`] when the template refuses the conversation,
/// [`BackendError::InvalidPrompt`] when nothing is left to decode.
pub(crate) fn tokenize(
    model: &LlamaModel,
    template: &ChatTemplate,
    request: &GenerateRequest,
    n_ctx: u32,
) -> Result<Vec<LlamaToken>, BackendError> {
    let vocab = model.vocab();
    let text = match &request.prompt {
        Prompt::Chat(messages) => render_chat(template, messages, &request.tools, request.chat_ending)?,
        Prompt::Text(text) => text.clone(),
        // Validated against the vocabulary (`GenerateRequest::validate`).
        Prompt::Tokens(tokens) => return Ok(tokens.iter().map(|&t| LlamaToken(t)).collect()),
        Prompt::Infill { prefix, suffix, extra } => {
            // Room for the answer: its limit, at most half the context (a quarter without one).
            let room = request.max_tokens.unwrap_or(n_ctx / 4).min(n_ctx / 2);
            let fit = n_ctx.saturating_sub(room) as usize;
            return infill_tokens(model, prefix, suffix, extra, fit);
        }
    };
    // Templates usually write the BOS token themselves; add it only when the
    // text does not start with it and the model wants one.
    let bos = template.bos_token();
    let add_special = vocab.should_add_bos() && (bos.is_empty() || !text.starts_with(bos));
    let mut tokens = vocab.tokenize(text.as_bytes(), add_special, true);
    if tokens.is_empty() {
        let bos = vocab.bos();
        if bos.0 < 0 {
            return Err(BackendError::InvalidPrompt("the prompt is empty".into()));
        }
        tokens.push(bos);
    }
    Ok(tokens)
}

/// The chat template's rendering of `messages` with `tools`, ending as `ending` says (by
/// default with the generation prompt): the tools go to the template when it takes them, and
/// into the system message otherwise. [`ChatEnding::ContinueFinalMessage`] renders all but
/// the last message (the assistant's, checked by validation) and appends its content.
pub(crate) fn render_chat(
    template: &ChatTemplate,
    messages: &[ChatMessage],
    tools: &[FunctionDefinition],
    ending: ChatEnding,
) -> Result<String, BackendError> {
    let (messages, open) = match (ending, messages.split_last()) {
        (ChatEnding::ContinueFinalMessage, Some((last, before))) => (before, Some(last.content.as_str())),
        _ => (messages, None),
    };
    let add_generation_prompt = ending != ChatEnding::None;
    let rendered = if template.supports_tools() {
        let tools =
            (!tools.is_empty()).then(|| Value::Array(tools.iter().map(FunctionDefinition::template_json).collect()));
        template.render(&messages_json(messages), tools.as_ref(), add_generation_prompt)
    } else {
        template.render(&messages_json(&inline_tools(messages, tools)), None, add_generation_prompt)
    };
    let mut text = rendered.map_err(|e| match e {
        TemplateError::Raised(msg) => BackendError::Template(msg),
        other => BackendError::Template(format!("the chat template failed: {other}")),
    })?;
    text.push_str(open.unwrap_or_default());
    Ok(text)
}

/// Whether the vocabulary has the three fill-in-the-middle tokens (prefix, suffix, middle);
/// llama.cpp finds them by name at load (`<|fim_prefix|>`, `<PRE>`, …).
pub(crate) fn has_fim(model: &LlamaModel) -> bool {
    let vocab = model.vocab();
    [vocab.fim_pre(), vocab.fim_suf(), vocab.fim_mid()].iter().all(|t| t.0 >= 0)
}

/// llama-server's `/infill` prompt (prefix-suffix-middle): `[BOS] extra FIM_PRE prefix
/// FIM_SUF suffix FIM_MID`, the code tokenized as plain text, in at most `fit` tokens (see
/// [`Prompt::Infill`] for what is left out first). `extra` is each file as `FIM_SEP name\n
/// text` after `FIM_REP myproject\n`, and `FIM_SEP filename\n` before the prefix, for a model
/// with those tokens; for one without, each file's text after a `--- snippet ---` line.
fn infill_tokens(
    model: &LlamaModel,
    prefix: &str,
    suffix: &str,
    extra: &[InfillChunk],
    fit: usize,
) -> Result<Vec<LlamaToken>, BackendError> {
    let vocab = model.vocab();
    let (pre, suf, mid) = (vocab.fim_pre(), vocab.fim_suf(), vocab.fim_mid());
    if [pre, suf, mid].iter().any(|t| t.0 < 0) {
        return Err(BackendError::InvalidPrompt("the model has no fill-in-the-middle tokens".into()));
    }
    let text = |s: &str| vocab.tokenize(s.as_bytes(), false, false);
    let (rep, sep) = (vocab.fim_rep(), vocab.fim_sep());
    let mut head = Vec::new();
    if vocab.should_add_bos() && vocab.bos().0 >= 0 {
        head.push(vocab.bos());
    }
    // The files, each whole, the latest kept when not all fit; the current file's marker.
    let mut files: Vec<Vec<LlamaToken>> = extra
        .iter()
        .map(|chunk| {
            let mut tokens = if sep.0 >= 0 {
                let mut t = vec![sep];
                t.extend(text(&format!("{}\n", chunk.filename)));
                t
            } else {
                text("\n\n--- snippet ---\n\n")
            };
            tokens.extend(text(&chunk.text));
            tokens
        })
        .collect();
    let mut open_file = Vec::new();
    if sep.0 >= 0 && !files.is_empty() {
        if rep.0 >= 0 {
            let mut repo = vec![rep];
            repo.extend(text("myproject\n"));
            files.insert(0, repo);
        }
        open_file.push(sep);
        open_file.extend(text("filename\n"));
    }
    let mut prefix = text(prefix);
    let mut suffix = text(suffix);
    // The code first: the prefix's end and the suffix's start, three parts to one.
    let fixed = head.len() + open_file.len() + 3;
    let code_room = fit.saturating_sub(fixed);
    if prefix.len() + suffix.len() > code_room {
        let suffix_take = suffix.len().min(code_room / 4).max(code_room.saturating_sub(prefix.len()));
        let prefix_take = prefix.len().min(code_room - suffix_take.min(code_room));
        suffix.truncate(suffix_take);
        prefix.drain(..prefix.len() - prefix_take);
    }
    let mut room = fit.saturating_sub(fixed + prefix.len() + suffix.len());
    let mut kept = Vec::new();
    // The repository line goes with any file; the files from the last back.
    let repo = (rep.0 >= 0 && sep.0 >= 0 && !files.is_empty()).then(|| files.remove(0));
    let repo_len = repo.as_ref().map_or(0, Vec::len);
    room = room.saturating_sub(repo_len);
    for file in files.into_iter().rev() {
        if file.len() > room {
            break;
        }
        room -= file.len();
        kept.push(file);
    }
    let mut tokens = head;
    if !kept.is_empty() {
        tokens.extend(repo.unwrap_or_default());
        tokens.extend(kept.into_iter().rev().flatten());
        tokens.extend(open_file);
    }
    tokens.push(pre);
    tokens.extend(prefix);
    tokens.push(suf);
    tokens.extend(suffix);
    tokens.push(mid);
    Ok(tokens)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chorus_engine::ToolCall;

    use super::*;

    #[test]
    fn inline_tools_describes_tools_and_rewrites_calls() {
        let tool = FunctionDefinition {
            name: "read_file".into(),
            description: None,
            parameters: json!({"type": "object"}),
            strict: false,
        };
        let mut call = ChatMessage::new(Role::Assistant, "");
        call.tool_calls =
            vec![ToolCall { id: "call_1".into(), name: "read_file".into(), arguments: r#"{"path":"a"}"#.into() }];
        let mut result = ChatMessage::new(Role::Tool, "hello");
        result.tool_call_id = Some("call_1".into());
        let messages = [ChatMessage::new(Role::System, "Be brief."), ChatMessage::new(Role::User, "hi"), call, result];
        let out = inline_tools(&messages, &[tool]);
        assert_eq!(out.len(), 4);
        assert!(out[0].content.starts_with("Be brief.\n\n"));
        assert!(out[0].content.contains("\"read_file\""));
        assert_eq!(
            out[2].content,
            "<tool_call>\n{\"name\":\"read_file\",\"arguments\":{\"path\":\"a\"}}\n</tool_call>"
        );
        assert_eq!(out[3].role, Role::User);
        assert_eq!(out[3].content, "<tool_response>\nhello\n</tool_response>");
    }

    #[test]
    fn a_chat_ends_with_the_generation_prompt_none_or_the_open_last_message() {
        let template = ChatTemplate::chatml();
        let messages = [ChatMessage::new(Role::User, "Hi"), ChatMessage::new(Role::Assistant, "Hel")];
        let render = |ending| render_chat(&template, &messages, &[], ending).unwrap();
        let open = render(ChatEnding::ContinueFinalMessage);
        assert!(open.ends_with("<|im_start|>assistant\nHel"), "{open:?}");
        let closed = render(ChatEnding::None);
        assert!(closed.ends_with("Hel<|im_end|>\n"), "{closed:?}");
        let next = render(ChatEnding::GenerationPrompt);
        assert!(next.ends_with("Hel<|im_end|>\n<|im_start|>assistant\n"), "{next:?}");
    }
}
