//! Dynamic tool sources: a [`ToolProvider`] contributes tools that are only known once it runs
//! (an external MCP server's, named `SERVER.TOOL`), and reports its [`ProviderStatus`]. The
//! engine knows nothing of how a provider reaches its tools (process, HTTP): the server crate
//! implements providers, the [`ToolRegistry`](super::ToolRegistry) asks them for their tools when
//! a prompt or a listing needs them.

use std::sync::Arc;

use super::registry::{Tool, ToolError};

/// What a provider is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderState {
    /// Not started: nothing needed its tools yet.
    Idle,
    /// Starting (for an MCP server: the process or connection is being set up and initialized).
    Starting,
    /// Up; its tools can be called.
    Running,
    /// It stopped unexpectedly and is restarted after a backoff delay; calls fail meanwhile.
    Restarting,
    /// It could not start; [`ProviderStatus::error`] says why. The next need after the backoff
    /// delay tries again.
    Failed,
}

impl ProviderState {
    /// `idle`, `starting`, `running`, `restarting` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderState::Idle => "idle",
            ProviderState::Starting => "starting",
            ProviderState::Running => "running",
            ProviderState::Restarting => "restarting",
            ProviderState::Failed => "failed",
        }
    }
}

/// A provider's state, for status listings (`chorus mcp list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStatus {
    /// The provider's name: the `SERVER` of its tools' `SERVER.TOOL` names.
    pub name: String,
    /// How chorus reaches it, e.g. `stdio` (a child process) or `http` for MCP servers.
    pub transport: String,
    /// What it is doing.
    pub state: ProviderState,
    /// Full names of its tools as last listed (kept while it restarts); empty before the first
    /// start.
    pub tools: Vec<String>,
    /// How many times it was restarted after stopping unexpectedly.
    pub restarts: u32,
    /// The last failure (a start that failed, an unexpected exit), if any since it last came up.
    pub error: Option<String>,
}

/// A source of tools that must be started before its tools are known.
#[async_trait::async_trait]
pub trait ToolProvider: Send + Sync {
    /// Its name; its tools are named `NAME.TOOL`.
    fn name(&self) -> &str;

    /// Its current tools, starting it first if it is not running (and waiting for that).
    ///
    /// # Errors
    /// [`ToolError::Unavailable`] (or another [`ToolError`]) when it cannot start; the registry
    /// then offers none of its tools.
    async fn tools(&self) -> Result<Vec<Arc<dyn Tool>>, ToolError>;

    /// Its state now (never starts it).
    fn status(&self) -> ProviderStatus;
}
