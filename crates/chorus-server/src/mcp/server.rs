//! [`ChorusMcp`]: chorus as an MCP server (MCP specification 2025-06-18 and later, through
//! `rmcp`'s [`ServerHandler`]), over one [`Engine`]. It owns what the server says it is
//! (`initialize`: name `chorus`, the crate version, capabilities tools, resources and prompts,
//! short instructions) and dispatches the three features to their modules: the tools in
//! `tools`, the resources in `resources`, the prompts in `prompts`.
//!
//! The handler knows no transport: the server mounts it at `/mcp` (`endpoint`), and
//! anything that speaks MCP (stdio included) can serve it with `rmcp::ServiceExt::serve`.

use chorus_engine::Engine;
use rmcp::model::{
    CancelledNotificationParam, GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use super::lifecycle::Cancellations;

/// What an MCP client reads in `initialize`'s `instructions`.
const INSTRUCTIONS: &str = "chorus serves local language models (llama.cpp). `chat` sends one prompt to a model and \
returns its answer; `session_prompt` talks in a durable session with an agent (pass the `session_id` it returns to \
continue the conversation); `list_sessions` and `list_models` list them; `route` says which model chorus's router \
would send a prompt to, and why. Sessions and their transcripts are the \
resources chorus://sessions/{id}, models chorus://models/{id}; the prompts are the configured agents' system prompts.";

/// The MCP server handler: one per MCP session (the `/mcp` endpoint makes one for each
/// client that initializes), cheap to make, all of them sharing the engine.
#[derive(Debug, Clone)]
pub struct ChorusMcp {
    pub(super) engine: Engine,
    /// The session's requests that its client's `notifications/cancelled` cancels (see
    /// `lifecycle`).
    pub(super) cancellations: Cancellations,
}

impl ChorusMcp {
    /// A handler over `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine, cancellations: Cancellations::default() }
    }
}

#[tool_handler]
impl ServerHandler for ChorusMcp {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder().enable_tools().enable_resources().enable_prompts().build();
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("chorus", env!("CARGO_PKG_VERSION"))
                    .with_title("chorus")
                    .with_description("local language models, durable agent sessions"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn on_cancelled(&self, params: CancelledNotificationParam, _context: NotificationContext<RoleServer>) {
        if let Some(id) = &params.request_id {
            self.cancellations.cancel(id);
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        super::resources::list(&self.engine).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(super::resources::templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        super::resources::read(&self.engine, &request.uri).await.map(Into::into)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(super::prompts::list(&self.engine))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        super::prompts::get(&self.engine, &request.name).map(Into::into)
    }
}
