//! An MCP server's tool as an engine [`Tool`]: named `SERVER.TOOL`, described by the server's
//! `description` and `inputSchema` (MCP specification 2025-06-18, "Tools"), called with
//! `tools/call`. What the model sees of a result ([`result_text`]): the text blocks joined by
//! newlines, other blocks summarized in one line each (`[image: image/png, 1234 bytes of
//! base64]`), embedded text resources with their URI; `structuredContent` when there is no
//! block; a result with `isError` is a [`ToolError::Failed`] carrying that text.

use std::sync::{Arc, Weak};

use chorus_engine::FunctionDefinition;
use chorus_engine::tools::{Permission, Tool, ToolContext, ToolError};
use futures::future::BoxFuture;
use rmcp::ServiceError;
use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode, ResourceContents};
use serde_json::Value;

use super::supervisor::Shared;

/// One tool of an MCP server.
pub(super) struct McpTool {
    /// The server; weak, because the server's state holds its tools.
    server: Weak<Shared>,
    /// The server's name, for messages once it is gone.
    server_name: String,
    /// The tool's name on its server.
    remote_name: String,
    definition: FunctionDefinition,
    read_only: bool,
}

impl McpTool {
    /// The tool `tool` of `server` (named `server_name`), called `full_name` by the model.
    pub(super) fn new(server: &Arc<Shared>, tool: rmcp::model::Tool, full_name: String) -> Self {
        let read_only = tool.annotations.as_ref().and_then(|a| a.read_only_hint) == Some(true);
        let description = tool.description.map(|d| d.into_owned()).or(tool.title);
        let parameters = Value::Object((*tool.input_schema).clone());
        Self {
            server: Arc::downgrade(server),
            server_name: server.config.name.clone(),
            remote_name: tool.name.into_owned(),
            definition: FunctionDefinition { name: full_name, description, parameters, strict: false },
            read_only,
        }
    }

    async fn run(&self, arguments: Value) -> Result<String, ToolError> {
        let gone = || ToolError::Unavailable(format!("the MCP server `{}` was shut down", self.server_name));
        let server = self.server.upgrade().ok_or_else(gone)?;
        let peer = server.peer().await?;
        let mut params = CallToolRequestParams::new(self.remote_name.clone());
        if let Value::Object(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        let timeout = server.config.call_timeout;
        let response = match tokio::time::timeout(timeout, peer.call_tool_once(params)).await {
            // Dropping the request sends `notifications/cancelled`.
            Err(_) => return Err(ToolError::Timeout(timeout.as_secs())),
            Ok(response) => response,
        };
        match response {
            Ok(CallToolResponse::Complete(result)) => result_text(result),
            Ok(_) => Err(ToolError::Failed(format!(
                "the MCP server `{}` asked for more input or started a task, which chorus does not support",
                self.server_name
            ))),
            Err(ServiceError::TransportClosed | ServiceError::TransportSend(_)) => Err(ToolError::Unavailable(
                format!("the MCP server `{}` exited during the call; it is being restarted", self.server_name),
            )),
            Err(ServiceError::McpError(e)) if e.code == ErrorCode::INVALID_PARAMS => {
                Err(ToolError::InvalidArguments(e.message.into_owned()))
            }
            Err(ServiceError::McpError(e)) => {
                Err(ToolError::Failed(format!("the MCP server `{}` refused the call: {}", self.server_name, e.message)))
            }
            Err(e) => Err(ToolError::Failed(format!("the MCP server `{}` failed the call: {e}", self.server_name))),
        }
    }
}

// The engine declares `Tool` with `async-trait`; this crate implements it with the same boxed
// future by hand rather than depend on the macro.
impl Tool for McpTool {
    fn definition(&self) -> FunctionDefinition {
        self.definition.clone()
    }

    /// `allow` when the server marks the tool read-only (`annotations.readOnlyHint`), else `ask`.
    /// The server is one the configuration names, so its hints are trusted that far.
    fn default_permission(&self) -> Permission {
        if self.read_only { Permission::Allow } else { Permission::Ask }
    }

    fn call<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _context: &'life1 ToolContext,
        arguments: Value,
    ) -> BoxFuture<'async_trait, Result<String, ToolError>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.run(arguments))
    }
}

/// What the model sees of a `tools/call` result (see the module docs).
///
/// # Errors
/// [`ToolError::Failed`] with the result's text when the server set `isError`.
pub(super) fn result_text(result: CallToolResult) -> Result<String, ToolError> {
    let mut parts: Vec<String> = result.content.into_iter().map(block_text).collect();
    if parts.is_empty()
        && let Some(structured) = result.structured_content
    {
        parts.push(structured.to_string());
    }
    let text = parts.join("\n");
    if result.is_error == Some(true) {
        return Err(ToolError::Failed(if text.is_empty() {
            "the tool failed and said nothing more".into()
        } else {
            text
        }));
    }
    Ok(text)
}

fn block_text(block: ContentBlock) -> String {
    match block {
        ContentBlock::Text(t) => t.text,
        ContentBlock::Image(i) => format!("[image: {}, {} bytes of base64]", i.mime_type, i.data.len()),
        ContentBlock::Audio(a) => format!("[audio: {}, {} bytes of base64]", a.mime_type, a.data.len()),
        ContentBlock::Resource(r) => match r.resource {
            ResourceContents::TextResourceContents { uri, text, .. } => format!("[resource {uri}]\n{text}"),
            ResourceContents::BlobResourceContents { uri, mime_type, blob, .. } => format!(
                "[resource {uri}: {}, {} bytes of base64]",
                mime_type.as_deref().unwrap_or("binary"),
                blob.len()
            ),
            _ => "[a resource of a kind chorus cannot show]".to_owned(),
        },
        ContentBlock::ResourceLink(link) => format!("[resource link: {} {}]", link.name, link.uri),
        _ => "[content of a kind chorus cannot show]".to_owned(),
    }
}
