//! One MCP server's supervisor: the task that starts the server (spawn or connect,
//! `initialize`, `tools/list`), watches it, refreshes its tools on
//! `notifications/tools/list_changed`, and restarts it with backoff when it exits; and the
//! [`Shared`] state that callers read (a `watch` channel) and use to start it on first need.
//!
//! States: `idle` → `starting` → `running`; exit → `restarting` → (delay) → `starting`; a start
//! that fails → `failed` (the task ends; a need after the delay spawns it again).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderName, HeaderValue};
use chorus_engine::tools::{ProviderState, ProviderStatus, Tool, ToolError};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{NotificationContext, QuitReason, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use tokio::io::AsyncReadExt;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::{Backoff, STABLE_AFTER};
use super::tool::McpTool;
use super::{McpServerConfig, McpTransport};

/// The longest line of a server's stderr that is logged whole; longer ones are cut.
const STDERR_LINE_LIMIT: usize = 4096;

/// A server's state as callers see it.
#[derive(Clone)]
struct Snapshot {
    state: ProviderState,
    /// The connection, while running.
    peer: Option<Peer<RoleClient>>,
    /// Its tools as last listed (kept while it restarts).
    tools: Vec<Arc<dyn Tool>>,
    /// Their full names.
    tool_names: Vec<String>,
    restarts: u32,
    error: Option<String>,
    /// When `failed`: the earliest moment a need may start it again.
    retry_at: Option<Instant>,
}

/// What the supervisor and the server's tools share.
pub(crate) struct Shared {
    pub(super) config: McpServerConfig,
    /// The validated headers of an HTTP server.
    headers: HashMap<HeaderName, HeaderValue>,
    status: watch::Sender<Snapshot>,
    backoff: Mutex<Backoff>,
    /// Cancelled when the [`McpServer`](super::McpServer) is dropped: the supervisor stops and
    /// closes the connection.
    pub(super) stop: CancellationToken,
}

impl Shared {
    pub(super) fn new(config: McpServerConfig, headers: HashMap<HeaderName, HeaderValue>) -> Arc<Self> {
        let idle = Snapshot {
            state: ProviderState::Idle,
            peer: None,
            tools: Vec::new(),
            tool_names: Vec::new(),
            restarts: 0,
            error: None,
            retry_at: None,
        };
        Arc::new(Self {
            config,
            headers,
            status: watch::Sender::new(idle),
            backoff: Mutex::new(Backoff::default()),
            stop: CancellationToken::new(),
        })
    }

    /// The state for listings.
    pub(super) fn status(&self) -> ProviderStatus {
        let s = self.status.borrow();
        ProviderStatus {
            name: self.config.name.clone(),
            transport: self.config.transport.kind().to_owned(),
            state: s.state,
            tools: s.tool_names.clone(),
            restarts: s.restarts,
            error: s.error.clone(),
        }
    }

    /// The tools, starting the server first if needed (see [`Self::settled`]).
    pub(super) async fn tools(self: &Arc<Self>) -> Result<Vec<Arc<dyn Tool>>, ToolError> {
        let s = self.settled().await?;
        match s.state {
            ProviderState::Running | ProviderState::Restarting => Ok(s.tools),
            _ => Err(self.unavailable(&s)),
        }
    }

    /// The connection for a call.
    ///
    /// # Errors
    /// [`ToolError::Unavailable`] unless the server is running.
    pub(super) async fn peer(self: &Arc<Self>) -> Result<Peer<RoleClient>, ToolError> {
        let s = self.settled().await?;
        match (&s.state, &s.peer) {
            (ProviderState::Running, Some(peer)) => Ok(peer.clone()),
            _ => Err(self.unavailable(&s)),
        }
    }

    fn unavailable(&self, s: &Snapshot) -> ToolError {
        let name = &self.config.name;
        let error = s.error.as_deref().unwrap_or("no reason known");
        ToolError::Unavailable(match s.state {
            ProviderState::Restarting => {
                format!("the MCP server `{name}` is restarting ({error}); try again in a few seconds")
            }
            ProviderState::Failed => format!("the MCP server `{name}` could not start: {error}"),
            _ => format!("the MCP server `{name}` is not running"),
        })
    }

    /// Start the server if it is idle, or failed and its delay has passed; then wait until it is
    /// no longer starting.
    async fn settled(self: &Arc<Self>) -> Result<Snapshot, ToolError> {
        if self.stop.is_cancelled() {
            return Err(ToolError::Unavailable(format!("the MCP server `{}` was shut down", self.config.name)));
        }
        let start = self.status.send_if_modified(|s| {
            let due = match s.state {
                ProviderState::Idle => true,
                ProviderState::Failed => s.retry_at.is_none_or(|at| Instant::now() >= at),
                _ => false,
            };
            if due {
                s.state = ProviderState::Starting;
            }
            due
        });
        if start {
            tokio::spawn(supervise(Arc::clone(self)));
        }
        let mut rx = self.status.subscribe();
        // The supervisor bounds the start by the start timeout; the margin covers its teardown.
        let wait = self.config.start_timeout + Duration::from_secs(5);
        match tokio::time::timeout(wait, rx.wait_for(|s| s.state != ProviderState::Starting)).await {
            Ok(Ok(s)) => Ok(s.clone()),
            _ => Err(ToolError::Unavailable(format!("the MCP server `{}` is still starting", self.config.name))),
        }
    }

    fn next_delay(&self) -> Duration {
        self.backoff.lock().unwrap_or_else(PoisonError::into_inner).next_delay()
    }
}

/// The client side of the connection: says who chorus is, and hears about tool list changes.
#[derive(Clone)]
struct Handler {
    tools_changed: Arc<Notify>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(ClientCapabilities::default(), Implementation::new("chorus", env!("CARGO_PKG_VERSION")))
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }
}

type Service = RunningService<RoleClient, Handler>;

/// The supervisor task; the state is `starting` when it begins.
async fn supervise(shared: Arc<Shared>) {
    let name = shared.config.name.clone();
    loop {
        let tools_changed = Arc::new(Notify::new());
        let started = tokio::select! {
            () = shared.stop.cancelled() => return,
            started = start(&shared, Arc::clone(&tools_changed)) => started,
        };
        let (service, tools) = match started {
            Ok(started) => started,
            Err(error) => {
                let delay = shared.next_delay();
                tracing::warn!(
                    server = %name,
                    %error,
                    "mcp server {name} cannot start; it is tried again when its tools are next needed, in {:.1} s at the earliest",
                    delay.as_secs_f64()
                );
                shared.status.send_modify(|s| {
                    s.state = ProviderState::Failed;
                    s.peer = None;
                    s.error = Some(error);
                    s.retry_at = Some(Instant::now() + delay);
                });
                return;
            }
        };
        tracing::info!(server = %name, tools = tools.len(), "mcp server {name} is running");
        let peer = service.peer().clone();
        shared.status.send_modify(|s| {
            s.state = ProviderState::Running;
            s.peer = Some(peer);
            set_tools(s, tools);
            s.error = None;
            s.retry_at = None;
        });
        let up_since = Instant::now();
        let quit = {
            // Dropping this future (on stop) drops the service, whose drop guard closes the
            // connection: a stdio server's stdin closes, then it is terminated.
            let waiting = service.waiting();
            tokio::pin!(waiting);
            loop {
                tokio::select! {
                    () = shared.stop.cancelled() => return,
                    () = tools_changed.notified() => refresh_tools(&shared).await,
                    quit = &mut waiting => break quit,
                }
            }
        };
        if up_since.elapsed() >= STABLE_AFTER {
            shared.backoff.lock().unwrap_or_else(PoisonError::into_inner).reset();
        }
        let delay = shared.next_delay();
        let why = match quit {
            Ok(QuitReason::Cancelled) => "its connection was cancelled".to_owned(),
            Ok(QuitReason::JoinError(e)) | Err(e) => format!("its connection failed: {e}"),
            Ok(_) => "it exited".to_owned(),
        };
        tracing::warn!(server = %name, "mcp server {name} exited; restarting in {:.1} s", delay.as_secs_f64());
        shared.status.send_modify(|s| {
            s.state = ProviderState::Restarting;
            s.peer = None;
            s.restarts += 1;
            s.error = Some(why);
        });
        tokio::select! {
            () = shared.stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        shared.status.send_modify(|s| s.state = ProviderState::Starting);
    }
}

fn set_tools(s: &mut Snapshot, tools: Vec<Arc<dyn Tool>>) {
    s.tool_names = tools.iter().map(|t| t.definition().name).collect();
    s.tools = tools;
}

/// Start the server and list its tools, within the start timeout.
async fn start(shared: &Arc<Shared>, tools_changed: Arc<Notify>) -> Result<(Service, Vec<Arc<dyn Tool>>), String> {
    let limit = shared.config.start_timeout;
    let starting = async {
        let handler = Handler { tools_changed };
        let service = match &shared.config.transport {
            McpTransport::Stdio { command, args, env, cwd } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).env_clear().envs(env).kill_on_drop(true);
                if let Some(cwd) = cwd {
                    cmd.current_dir(cwd);
                }
                // Its own process group: a terminal's Ctrl-C stops chorus, which stops it.
                #[cfg(unix)]
                cmd.process_group(0);
                let (transport, stderr) = TokioChildProcess::builder(cmd)
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("cannot run `{command}`: {e}"))?;
                if let Some(stderr) = stderr {
                    tokio::spawn(log_stderr(shared.config.name.clone(), stderr));
                }
                handler.serve(transport).await.map_err(|e| format!("the MCP initialization failed: {e}"))?
            }
            McpTransport::Http { url, .. } => {
                let config =
                    StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(shared.headers.clone());
                let transport = StreamableHttpClientTransport::from_config(config);
                handler.serve(transport).await.map_err(|e| format!("the MCP initialization failed: {e}"))?
            }
        };
        let tools = list_tools(shared, service.peer()).await?;
        Ok::<_, String>((service, tools))
    };
    tokio::time::timeout(limit, starting)
        .await
        .unwrap_or_else(|_| Err(format!("it did not start within {} s", limit.as_secs())))
}

/// `tools/list` (every page), as engine tools named `SERVER.TOOL`. A server without the tools
/// capability has none; a tool whose full name a model cannot call is left out, with a warning.
async fn list_tools(shared: &Arc<Shared>, peer: &Peer<RoleClient>) -> Result<Vec<Arc<dyn Tool>>, String> {
    let name = &shared.config.name;
    if peer.peer_info().is_some_and(|info| info.capabilities.tools.is_none()) {
        return Ok(Vec::new());
    }
    let listed = peer.list_all_tools().await.map_err(|e| format!("tools/list failed: {e}"))?;
    let mut tools: Vec<Arc<dyn Tool>> = Vec::with_capacity(listed.len());
    for tool in listed {
        let full = format!("{name}.{}", tool.name);
        let callable = full.len() <= 64
            && full.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !tools.iter().any(|t| t.definition().name == full);
        if !callable {
            tracing::warn!(
                server = %name,
                tool = %tool.name,
                "the tool is left out: a model can only call tools named with at most 64 letters, digits, `_`, `-` or `.`, once"
            );
            continue;
        }
        tools.push(Arc::new(McpTool::new(shared, tool, full)));
    }
    Ok(tools)
}

/// List the tools again after `notifications/tools/list_changed`.
async fn refresh_tools(shared: &Arc<Shared>) {
    let Some(peer) = shared.status.borrow().peer.clone() else { return };
    match tokio::time::timeout(shared.config.start_timeout, list_tools(shared, &peer)).await {
        Ok(Ok(tools)) => {
            tracing::info!(server = %shared.config.name, tools = tools.len(), "mcp server's tools changed");
            shared.status.send_modify(|s| set_tools(s, tools));
        }
        Ok(Err(error)) => tracing::warn!(server = %shared.config.name, %error, "cannot list the changed tools"),
        Err(_) => tracing::warn!(server = %shared.config.name, "cannot list the changed tools: no answer in time"),
    }
}

/// Copy a stdio server's stderr to the log, line by line (long lines cut).
async fn log_stderr(server: String, mut stderr: tokio::process::ChildStderr) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            log_line(&server, &line[..line.len() - 1]);
        }
        if pending.len() > STDERR_LINE_LIMIT {
            log_line(&server, &pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        log_line(&server, &pending);
    }
}

fn log_line(server: &str, line: &[u8]) {
    let line = &line[..line.len().min(STDERR_LINE_LIMIT)];
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    if !text.is_empty() {
        tracing::info!(server = %server, "mcp stderr: {text}");
    }
}
