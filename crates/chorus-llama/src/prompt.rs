//! From a request's [`Prompt`] to tokens: chat messages (with the request's
//! `tools` and the messages' `tool_calls`) through the model's chat template,
//! then llama.cpp's tokenizer (special tokens parsed, BOS added once, as
//! llama-server does). For templates that do not print tools, the tools and
//! calls are written into the messages in the Hermes format instead, so the
//! model still sees them.

use chorus_engine::request::{ChatMessage, Role};
use chorus_engine::tools::{FunctionDefinition, hermes_system_prompt};
use chorus_engine::{BackendError, GenerateRequest, Prompt};
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
) -> Result<Vec<LlamaToken>, BackendError> {
    let vocab = model.vocab();
    let text = match &request.prompt {
        Prompt::Chat(messages) => render_chat(template, messages, &request.tools)?,
        Prompt::Text(text) => text.clone(),
        // Validated against the vocabulary (`GenerateRequest::validate`).
        Prompt::Tokens(tokens) => return Ok(tokens.iter().map(|&t| LlamaToken(t)).collect()),
        Prompt::Infill { prefix, suffix } => return infill_tokens(model, prefix, suffix),
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

/// The chat template's rendering of `messages` with `tools`, the generation prompt added: the
/// tools go to the template when it takes them, and into the system message otherwise.
pub(crate) fn render_chat(
    template: &ChatTemplate,
    messages: &[ChatMessage],
    tools: &[FunctionDefinition],
) -> Result<String, BackendError> {
    let rendered = if template.supports_tools() {
        let tools =
            (!tools.is_empty()).then(|| Value::Array(tools.iter().map(FunctionDefinition::template_json).collect()));
        template.render(&messages_json(messages), tools.as_ref(), true)
    } else {
        template.render(&messages_json(&inline_tools(messages, tools)), None, true)
    };
    rendered.map_err(|e| match e {
        TemplateError::Raised(msg) => BackendError::Template(msg),
        other => BackendError::Template(format!("the chat template failed: {other}")),
    })
}

/// Whether the vocabulary has the three fill-in-the-middle tokens (prefix, suffix, middle);
/// llama.cpp finds them by name at load (`<|fim_prefix|>`, `<PRE>`, …).
pub(crate) fn has_fim(model: &LlamaModel) -> bool {
    let vocab = model.vocab();
    [vocab.fim_pre(), vocab.fim_suf(), vocab.fim_mid()].iter().all(|t| t.0 >= 0)
}

/// llama-server's `/infill` prompt (prefix-suffix-middle): `[BOS] FIM_PRE prefix FIM_SUF
/// suffix FIM_MID`, the code tokenized as plain text.
fn infill_tokens(model: &LlamaModel, prefix: &str, suffix: &str) -> Result<Vec<LlamaToken>, BackendError> {
    let vocab = model.vocab();
    let (pre, suf, mid) = (vocab.fim_pre(), vocab.fim_suf(), vocab.fim_mid());
    if [pre, suf, mid].iter().any(|t| t.0 < 0) {
        return Err(BackendError::InvalidPrompt("the model has no fill-in-the-middle tokens".into()));
    }
    let mut tokens = Vec::new();
    if vocab.should_add_bos() && vocab.bos().0 >= 0 {
        tokens.push(vocab.bos());
    }
    tokens.push(pre);
    tokens.extend(vocab.tokenize(prefix.as_bytes(), false, false));
    tokens.push(suf);
    tokens.extend(vocab.tokenize(suffix.as_bytes(), false, false));
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
}
