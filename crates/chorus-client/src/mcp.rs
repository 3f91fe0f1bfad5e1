//! The MCP bridge behind `chorus mcp`: an MCP server on a byte stream (the process's stdin and
//! stdout, as MCP clients such as Claude Desktop launch servers; MCP spec, "Transports: stdio")
//! that forwards every request to a chorus server's streamable HTTP endpoint `/mcp` (spec,
//! "Transports: Streamable HTTP") and forwards that server's notifications back.
//!
//! What crosses the bridge:
//! - `initialize`: answered with the chorus server's own capabilities, server info and
//!   instructions, at the protocol version the two sides of the stdio connection agree on.
//! - Protocol versions: the bridge offers those up to the one its HTTP session with the server
//!   speaks (that session opens with `initialize`, so a version that has one: 2025-11-25 with
//!   rmcp 3.9), so that every result it forwards has the shape its client's version wants. A
//!   client that opens with `server/discover` for 2026-07-28 is told those versions
//!   (`-32022`) and falls back to `initialize`, as the MCP SDKs' default clients do.
//! - Requests (`ping`, `tools/*`, `resources/*`, `prompts/*`, `completion/complete`):
//!   forwarded as they are, with their `_meta`; errors come back as the
//!   server's JSON-RPC errors.
//! - Progress (spec, "Utilities: Progress"): the HTTP connection uses progress tokens of its own,
//!   so the bridge maps each forwarded request's token back to the stdio client's token, and
//!   forwards progress only for requests whose client asked for it. rmcp handles each
//!   notification on a task of its own, so two can arrive out of order: they are forwarded one
//!   at a time, and one whose `progress` is not above the last forwarded is dropped (the spec:
//!   progress MUST increase).
//! - Cancellation (spec, "Utilities: Cancellation"): a `notifications/cancelled` from the stdio
//!   client cancels the forwarded request, which stops the generation on the server. The stdio
//!   client going away is no cancellation: the bridge then ends its HTTP session, which stops a
//!   `chat` (nobody reads it) and leaves a session prompt running, stored in its session.
//! - List changes and resource updates from the server go to the stdio client.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, CancelledNotificationParam, ClientConfig, ClientRequest,
    CompleteRequest, CompleteRequestParams, CompleteResult, ErrorData, GetPromptRequest, GetPromptRequestParams,
    GetPromptResponse, Implementation, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, PingRequest, ProgressNotificationParam,
    ProgressToken, ProtocolVersion, ReadResourceRequest, ReadResourceRequestParams, ReadResourceResponse, RequestId,
    RequestMetaObject, RequestOptionalParam, ResourceUpdatedNotificationParam, ServerResult,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RequestContext, RoleClient, RoleServer, RunningService, ServiceError,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, ServerHandler, ServiceExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

/// Why the bridge could not run.
#[derive(Debug, thiserror::Error)]
pub enum McpBridgeError {
    /// The chorus server's `/mcp` did not complete an MCP `initialize` (not running, wrong URL,
    /// wrong API key).
    #[error("cannot open an MCP session at {url}: {message}")]
    Connect {
        /// The `/mcp` URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The stdio client did not complete its `initialize`.
    #[error("the MCP client on stdin/stdout did not initialize: {0}")]
    Downstream(String),
}

/// Serve MCP on stdin/stdout, forwarding to the `/mcp` endpoint of the chorus server at
/// `base_url` (such as `http://127.0.0.1:4096`), authenticated with `api_key` when given.
/// Returns when the stdio client closes the connection (end of stdin).
///
/// # Errors
/// [`McpBridgeError::Connect`] when the server's MCP session cannot be opened;
/// [`McpBridgeError::Downstream`] when the stdio client does not initialize.
pub async fn serve_stdio(base_url: &str, api_key: Option<&str>) -> Result<(), McpBridgeError> {
    serve(base_url, api_key, rmcp::transport::stdio()).await
}

/// [`serve_stdio`] over any byte stream pair (a test's in-memory pipe, a socket).
///
/// # Errors
/// As [`serve_stdio`].
pub async fn serve<R, W>(base_url: &str, api_key: Option<&str>, downstream: (R, W)) -> Result<(), McpBridgeError>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let url = format!("{}/mcp", base_url.trim_end_matches('/'));
    let shared = Arc::new(Shared::default());
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.clone());
    if let Some(key) = api_key {
        config = config.auth_header(key);
    }
    let upstream: RunningService<RoleClient, Upstream> = Upstream { shared: shared.clone() }
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .map_err(|e| McpBridgeError::Connect { url: url.clone(), message: e.to_string() })?;
    let peer_info = upstream
        .peer()
        .peer_info()
        .ok_or_else(|| McpBridgeError::Connect { url: url.clone(), message: "no initialize result".into() })?;
    let mut info = InitializeResult::new(peer_info.capabilities.clone());
    info.protocol_version = peer_info.protocol_version.clone();
    if let Some(server_info) = &peer_info.server_info {
        info = info.with_server_info(server_info.clone());
    }
    if let Some(instructions) = &peer_info.instructions {
        info = info.with_instructions(instructions.clone());
    }
    let bridge = Bridge { upstream: upstream.peer().clone(), info, shared };
    let downstream = bridge.serve(downstream).await.map_err(|e| McpBridgeError::Downstream(e.to_string()))?;
    let reason = downstream.waiting().await;
    tracing::debug!(?reason, "the stdio client closed the connection");
    // Ends the HTTP session (DELETE /mcp), so the server forgets it at once.
    let _ = upstream.cancel().await;
    Ok(())
}

/// State both halves of the bridge share.
#[derive(Default)]
struct Shared {
    /// The stdio client, once it has initialized: server notifications go to it.
    downstream: Mutex<Option<Peer<RoleServer>>>,
    /// Progress token of a forwarded request → the stdio client's token for that request, and
    /// the last `progress` forwarded for it.
    progress: Mutex<HashMap<ProgressToken, (ProgressToken, f64)>>,
    /// Held while a progress notification is checked and sent, so they leave in order.
    progress_order: tokio::sync::Mutex<()>,
    /// The stdio client's id of a request being forwarded → what its `notifications/cancelled`
    /// tells [`Bridge::forward`].
    cancels: Mutex<HashMap<RequestId, oneshot::Sender<()>>>,
}

impl Shared {
    fn downstream(&self) -> Option<Peer<RoleServer>> {
        self.downstream.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, HashMap<ProgressToken, (ProgressToken, f64)>> {
        self.progress.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cancels(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, oneshot::Sender<()>>> {
        self.cancels.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A request of the stdio client being forwarded, which its `notifications/cancelled` cancels;
/// dropping it forgets the request.
struct Forwarding<'a> {
    shared: &'a Shared,
    id: RequestId,
    cancelled: oneshot::Receiver<()>,
}

impl<'a> Forwarding<'a> {
    fn new(shared: &'a Shared, id: RequestId) -> Self {
        let (tx, cancelled) = oneshot::channel();
        shared.cancels().insert(id.clone(), tx);
        Self { shared, id, cancelled }
    }
}

impl Drop for Forwarding<'_> {
    fn drop(&mut self) {
        self.shared.cancels().remove(&self.id);
    }
}

/// The MCP client half: receives the chorus server's notifications.
struct Upstream {
    shared: Arc<Shared>,
}

impl ClientHandler for Upstream {
    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.client_info = Implementation::new("chorus-mcp-bridge", env!("CARGO_PKG_VERSION"));
        info
    }

    async fn on_progress(&self, mut params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        let _order = self.shared.progress_order.lock().await;
        let token = {
            let mut progress = self.shared.progress();
            match progress.get_mut(&params.progress_token) {
                // A later notification went out first: this one would go backwards.
                Some((_, last)) if params.progress <= *last => return,
                Some((token, last)) => {
                    *last = params.progress;
                    token.clone()
                }
                None => return,
            }
        };
        if let Some(peer) = self.shared.downstream() {
            params.progress_token = token;
            let _ = peer.notify_progress(params).await;
        }
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(peer) = self.shared.downstream() {
            let _ = peer.notify_resource_updated(params).await;
        }
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(peer) = self.shared.downstream() {
            let _ = peer.notify_resource_list_changed().await;
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(peer) = self.shared.downstream() {
            let _ = peer.notify_tool_list_changed().await;
        }
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(peer) = self.shared.downstream() {
            let _ = peer.notify_prompt_list_changed().await;
        }
    }
}

/// The MCP server half: answers the stdio client by forwarding.
struct Bridge {
    upstream: Peer<RoleClient>,
    /// The chorus server's `initialize` result, which the stdio client gets as its own.
    info: InitializeResult,
    shared: Arc<Shared>,
}

impl Bridge {
    /// Send `request` to the server with the stdio request's `_meta`; map progress; cancel it
    /// when the stdio client cancels it (`notifications/cancelled`), and only then: rmcp cancels
    /// `context.ct` when the stdio client goes away too.
    async fn forward(
        &self,
        request: ClientRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<ServerResult, ErrorData> {
        // rmcp cancels `context.ct` before it hands `notifications/cancelled` to `on_cancelled`:
        // one that came before this registration is seen in `context.ct` below.
        let mut forwarding = Forwarding::new(&self.shared, context.id.clone());
        if context.ct.is_cancelled() {
            return Err(ErrorData::internal_error("the request was cancelled", None));
        }
        let wanted = context.meta.get_progress_token();
        // The client's own `_meta` (trace context, vendor keys) goes along; the progress token
        // and the protocol's reserved `io.modelcontextprotocol/` keys belong to each connection.
        let mut meta = RequestMetaObject::new();
        for (key, value) in context.meta.iter() {
            if key != "progressToken" && !key.starts_with("io.modelcontextprotocol/") {
                meta.insert(key.clone(), value.clone());
            }
        }
        let options = PeerRequestOptions::no_options().with_meta(meta);
        let handle = self.upstream.send_cancellable_request(request, options).await.map_err(upstream_error)?;
        let token = handle.progress_token.clone();
        if let Some(wanted) = wanted {
            self.shared.progress().insert(token.clone(), (wanted, f64::NEG_INFINITY));
        }
        let id = handle.id.clone();
        let peer = handle.peer.clone();
        let result = tokio::select! {
            result = handle.await_response() => result.map_err(upstream_error),
            Ok(()) = &mut forwarding.cancelled => {
                // Tell the server; the stdio client expects no answer to a cancelled request.
                let reason = Some("cancelled by the MCP client".to_owned());
                let _ = peer.notify_cancelled(CancelledNotificationParam::new(Some(id), reason)).await;
                Err(ErrorData::internal_error("the request was cancelled", None))
            }
        };
        self.shared.progress().remove(&token);
        result
    }
}

/// A failed forward as the JSON-RPC error the stdio client gets: the server's own error as it
/// is, anything else an internal error naming the cause.
fn upstream_error(error: ServiceError) -> ErrorData {
    match error {
        ServiceError::McpError(error) => error,
        other => ErrorData::internal_error(format!("the chorus server did not answer: {other}"), None),
    }
}

/// A list request (`tools/list` and the like) with its optional cursor.
fn paged<M: Default>(params: Option<PaginatedRequestParams>) -> RequestOptionalParam<M, PaginatedRequestParams> {
    RequestOptionalParam { method: M::default(), params, extensions: Default::default() }
}

fn unexpected(what: &str) -> ErrorData {
    ErrorData::internal_error(format!("the chorus server answered {what} with another result type"), None)
}

impl ServerHandler for Bridge {
    fn get_info(&self) -> InitializeResult {
        self.info.clone()
    }

    /// The versions up to the one the bridge's session with the server speaks, whose results it
    /// forwards: a newer one would want results of another shape.
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&self.info.protocol_version))
    }

    async fn on_cancelled(&self, params: CancelledNotificationParam, _context: NotificationContext<RoleServer>) {
        let cancel = params.request_id.and_then(|id| self.shared.cancels().remove(&id));
        if let Some(cancel) = cancel {
            let _ = cancel.send(());
        }
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        *self.shared.downstream.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(context.peer);
    }

    async fn ping(&self, context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        self.forward(ClientRequest::PingRequest(PingRequest::default()), context).await.map(|_| ())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        match self.forward(ClientRequest::ListToolsRequest(paged(request)), context).await? {
            ServerResult::ListToolsResult(r) => Ok(r),
            _ => Err(unexpected("tools/list")),
        }
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        match self.forward(ClientRequest::CallToolRequest(CallToolRequest::new(request)), context).await? {
            ServerResult::CallToolResult(r) => Ok(CallToolResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
            ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
            _ => Err(unexpected("tools/call")),
        }
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let request = ClientRequest::ListResourcesRequest(paged(request));
        match self.forward(request, context).await? {
            ServerResult::ListResourcesResult(r) => Ok(r),
            _ => Err(unexpected("resources/list")),
        }
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let request = ClientRequest::ListResourceTemplatesRequest(paged(request));
        match self.forward(request, context).await? {
            ServerResult::ListResourceTemplatesResult(r) => Ok(r),
            _ => Err(unexpected("resources/templates/list")),
        }
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        match self.forward(ClientRequest::ReadResourceRequest(ReadResourceRequest::new(request)), context).await? {
            ServerResult::ReadResourceResult(r) => Ok(ReadResourceResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
            _ => Err(unexpected("resources/read")),
        }
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        match self.forward(ClientRequest::ListPromptsRequest(paged(request)), context).await? {
            ServerResult::ListPromptsResult(r) => Ok(r),
            _ => Err(unexpected("prompts/list")),
        }
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        match self.forward(ClientRequest::GetPromptRequest(GetPromptRequest::new(request)), context).await? {
            ServerResult::GetPromptResult(r) => Ok(GetPromptResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(GetPromptResponse::InputRequired(r)),
            _ => Err(unexpected("prompts/get")),
        }
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        match self.forward(ClientRequest::CompleteRequest(CompleteRequest::new(request)), context).await? {
            ServerResult::CompleteResult(r) => Ok(r),
            _ => Err(unexpected("completion/complete")),
        }
    }
}
