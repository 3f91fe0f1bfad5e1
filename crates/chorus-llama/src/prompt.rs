//! From a request's [`Prompt`] to tokens: chat messages through the model's
//! chat template, then llama.cpp's tokenizer (special tokens parsed, BOS added
//! once, as llama-server does).

use chorus_engine::request::ChatMessage;
use chorus_engine::{BackendError, Prompt};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::template::{ChatTemplate, TemplateError};

/// The messages as the OpenAI-shaped JSON array chat templates read.
fn messages_json(messages: &[ChatMessage]) -> serde_json::Value {
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
            serde_json::Value::Object(obj)
        })
        .collect();
    serde_json::Value::Array(list)
}

/// Render (for chats) and tokenize a prompt.
///
/// # Errors
/// [`BackendError::Template`] when the template refuses the conversation,
/// [`BackendError::InvalidPrompt`] when nothing is left to decode.
pub(crate) fn tokenize(
    model: &LlamaModel,
    template: &ChatTemplate,
    prompt: &Prompt,
) -> Result<Vec<LlamaToken>, BackendError> {
    let vocab = model.vocab();
    let text = match prompt {
        Prompt::Chat(messages) => template.render(&messages_json(messages), None, true).map_err(|e| match e {
            TemplateError::Raised(msg) => BackendError::Template(msg),
            other => BackendError::Template(format!("the chat template failed: {other}")),
        })?,
        Prompt::Text(text) => text.clone(),
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
