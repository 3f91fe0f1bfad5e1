//! MCP client: the external MCP servers of the configuration (`[[mcp.servers]]`), whose tools
//! join the engine's tool registry as `SERVER.TOOL`. Each server is an [`McpServer`], an engine
//! [`ToolProvider`] with a supervisor task behind it:
//!
//! - it starts lazily, when its tools are first needed (a prompt of an agent that may call
//!   them, `GET /api/v1/tools`, `GET /api/v1/mcp/servers`): a child process over stdio, or a
//!   streamable HTTP connection; then the lifecycle's `initialize` and `tools/list` (MCP
//!   specification 2025-06-18, "Lifecycle" and "Tools"), refreshed on
//!   `notifications/tools/list_changed`;
//! - its tools are engine [`Tool`](chorus_engine::tools::Tool)s whose calls are `tools/call`
//!   with a timeout (see [`tool`] for what the model sees of a result);
//! - when it exits (its process ends, its connection closes) it is `restarting`: restarted after
//!   a [`Backoff`] delay, and calls fail meanwhile with a `ToolError::Unavailable`; a server that
//!   cannot start is `failed`, and the next need after the backoff delay tries again;
//! - a stdio server's stderr goes to chorus's log, never to chorus's stdout; its process is in a
//!   process group of its own (a terminal's Ctrl-C reaches chorus, which stops it) and is
//!   killed when chorus drops it (`kill_on_drop`), so it never outlives the server.
//!
//! Nothing here reads the environment: the binary gives a stdio server its whole environment.

mod backoff;
mod supervisor;
mod tool;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use chorus_engine::tools::{ProviderStatus, Tool, ToolError, ToolProvider};
use futures::future::BoxFuture;

pub use backoff::{Backoff, STABLE_AFTER};

use supervisor::Shared;

/// The longest a server may take to start (spawn or connect, `initialize`, `tools/list`)
/// unless configured otherwise.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest one `tools/call` may take unless configured otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest a server name may be: it prefixes its tools' names, which are at most 64
/// characters.
pub const MAX_NAME_LEN: usize = 32;

/// Headers the streamable HTTP transport sets itself (MCP specification 2025-06-18,
/// "Transports"), which a configuration cannot override.
const RESERVED_HEADERS: [&str; 4] = ["accept", "mcp-session-id", "mcp-protocol-version", "last-event-id"];

/// One external MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServerConfig {
    /// Its name: 1 to [`MAX_NAME_LEN`] letters, digits, `_` or `-` (no dots: its tools are
    /// named `NAME.TOOL`).
    pub name: String,
    /// How to reach it.
    pub transport: McpTransport,
    /// The longest one `tools/call` may take; a slower call fails with `ToolError::Timeout`
    /// (and is cancelled with `notifications/cancelled`).
    pub call_timeout: Duration,
    /// The longest its start may take (spawn or connect, `initialize`, `tools/list`).
    pub start_timeout: Duration,
}

impl McpServerConfig {
    /// A server with the default timeouts.
    pub fn new(name: impl Into<String>, transport: McpTransport) -> Self {
        Self { name: name.into(), transport, call_timeout: DEFAULT_CALL_TIMEOUT, start_timeout: DEFAULT_START_TIMEOUT }
    }

    /// Check the name, the command or URL, and the headers.
    ///
    /// # Errors
    /// The first [`McpConfigError`] found.
    pub fn validate(&self) -> Result<(), McpConfigError> {
        self.http_headers().map(|_| ())
    }

    /// The validated headers of an HTTP server (none for stdio).
    fn http_headers(&self) -> Result<HashMap<HeaderName, HeaderValue>, McpConfigError> {
        let name = &self.name;
        let valid_name = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err(McpConfigError::InvalidName(name.clone()));
        }
        match &self.transport {
            McpTransport::Stdio { command, .. } if command.trim().is_empty() => {
                Err(McpConfigError::EmptyCommand { server: name.clone() })
            }
            McpTransport::Stdio { .. } => Ok(HashMap::new()),
            McpTransport::Http { url, headers } => {
                let scheme_ok = ["http://", "https://"]
                    .iter()
                    .any(|s| url.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)) && url.len() > s.len());
                if !scheme_ok {
                    return Err(McpConfigError::InvalidUrl { server: name.clone(), url: url.clone() });
                }
                let mut parsed = HashMap::new();
                for (header, value) in headers {
                    let invalid = |reason: &str| McpConfigError::InvalidHeader {
                        server: name.clone(),
                        header: header.clone(),
                        reason: reason.to_owned(),
                    };
                    let header_name =
                        HeaderName::try_from(header.as_str()).map_err(|_| invalid("it is not a valid header name"))?;
                    if RESERVED_HEADERS.contains(&header_name.as_str()) {
                        return Err(invalid("the MCP transport sets it itself"));
                    }
                    let header_value = HeaderValue::try_from(value.as_str())
                        .map_err(|_| invalid("its value has characters a header cannot carry"))?;
                    parsed.insert(header_name, header_value);
                }
                Ok(parsed)
            }
        }
    }
}

/// How chorus reaches an MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpTransport {
    /// A child process speaking MCP over its stdin and stdout (MCP specification 2025-06-18,
    /// "Transports: stdio").
    Stdio {
        /// The program: a path, or a name looked up in `env`'s `PATH`.
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Its whole environment: nothing else is inherited, so the binary adds what it passes
        /// on (such as `PATH` and `HOME`).
        env: BTreeMap<String, String>,
        /// Its working directory; chorus's when `None`.
        cwd: Option<PathBuf>,
    },
    /// A server at a URL (MCP specification 2025-06-18, "Transports: Streamable HTTP").
    Http {
        /// Its MCP endpoint, `http://` or `https://`.
        url: String,
        /// Headers sent with every request, such as `Authorization`.
        headers: BTreeMap<String, String>,
    },
}

impl McpTransport {
    /// `stdio` or `http`.
    pub fn kind(&self) -> &'static str {
        match self {
            McpTransport::Stdio { .. } => "stdio",
            McpTransport::Http { .. } => "http",
        }
    }
}

/// Why an MCP server's configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpConfigError {
    /// The name is empty, too long, or has characters other than letters, digits, `_` and `-`.
    #[error(
        "the MCP server name `{0}` must be 1 to 32 letters, digits, `_` or `-` (no dots: its tools are named `NAME.TOOL`)"
    )]
    InvalidName(String),
    /// A stdio server with an empty `command`.
    #[error("the MCP server `{server}` has an empty `command`")]
    EmptyCommand {
        /// The server's name.
        server: String,
    },
    /// An HTTP server whose URL is not `http://…` or `https://…`.
    #[error("the MCP server `{server}` has the url `{url}`; give an http:// or https:// URL")]
    InvalidUrl {
        /// The server's name.
        server: String,
        /// The URL given.
        url: String,
    },
    /// A header that cannot be sent.
    #[error("the MCP server `{server}` has the header `{header}`, which cannot be sent: {reason}")]
    InvalidHeader {
        /// The server's name.
        server: String,
        /// The header's name.
        header: String,
        /// Why.
        reason: String,
    },
}

/// An external MCP server as an engine [`ToolProvider`]: its tools, started on first need, and
/// its state. Dropping it stops its supervisor, which closes the connection (a stdio server's
/// stdin is closed, then it is terminated).
pub struct McpServer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer").field("config", &self.shared.config).finish()
    }
}

impl McpServer {
    /// A server that starts when its tools are first needed. Starts nothing (and needs no
    /// runtime) until then.
    ///
    /// # Errors
    /// [`McpConfigError`] for an invalid configuration.
    pub fn new(config: McpServerConfig) -> Result<Self, McpConfigError> {
        let headers = config.http_headers()?;
        Ok(Self { shared: Shared::new(config, headers) })
    }

    /// Its configuration.
    pub fn config(&self) -> &McpServerConfig {
        &self.shared.config
    }
}

impl Drop for McpServer {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

// The engine declares `ToolProvider` with `async-trait`; this crate implements it with the
// same boxed future by hand rather than depend on the macro.
impl ToolProvider for McpServer {
    fn name(&self) -> &str {
        &self.shared.config.name
    }

    fn tools<'life0, 'async_trait>(&'life0 self) -> BoxFuture<'async_trait, Result<Vec<Arc<dyn Tool>>, ToolError>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.shared.tools())
    }

    fn status(&self) -> ProviderStatus {
        self.shared.status()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
