//! The HTTP face of chorus and the only crate that knows HTTP: the
//! OpenAI-compatible API under `/v1`, the native session API under `/api/v1` and its WebSocket `/ws`, the characters API (`/api/v1/characters`) and
//! its WebSocket `/ws/characters` (also on `--character-port`: [`character_port_app`]),
//! `GET /health` and `GET /metrics`, the OpenAPI document (`GET /openapi.json`, Swagger UI at
//! `/docs`), TBot's task endpoints (`/generate`, `/code/completion`, `/code/generation`,
//! `/translate`, `/math/solve`) and the router's dry run (`POST /api/v1/route`), llama-server's slot actions (`POST /slots/{id}`), Ollama's API under `/api/` ([`ollama_port_app`] also on `--ollama-port`), the MCP server at `/mcp` ([`mcp`]: streamable HTTP, with Host and Origin checks
//! against DNS rebinding), API-key authentication, request logging, and graceful shutdown; and
//! the control socket (`GET /status`, `POST /shutdown` on a Unix socket, for `chorus ctl`).
//!
//! [`app`] builds the `Router` (tested in-process); [`while_loading`] answers llama-server's
//! `503 Loading model` on the bound listener while the models load; [`run`] serves the app on
//! that listener, until a shutdown future resolves;
//! [`run_with_control`] also serves a [`ControlSocket`] the caller bound,
//! whose `POST /shutdown` stops the server as the shutdown future would.

mod api;
mod auth;
mod character_ws;
mod control;
mod error;
mod extract;
mod health;
mod llama;
mod loading;
pub mod mcp;
mod ollama;
mod openai;
mod openapi;
pub mod qr;
mod route;
mod slots;
mod sse;
mod tasks;
mod webui;
mod ws;

pub use loading::while_loading;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use chorus_engine::Engine;
use chorus_engine::metrics::RequestLabels;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use character_ws::character_port_app;
pub use control::ControlSocket;
pub use error::ApiError;
pub use ollama::ollama_port_app;

/// Server settings (flags and environment are read by the binary, not here).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Accepted API keys; empty means no authentication. Every endpoint but
    /// `/health`, `/openapi.json` and `/docs` then requires `Authorization: Bearer KEY`.
    pub api_keys: Vec<String>,
    /// Largest request body in bytes; larger ones get a 413.
    pub body_limit: usize,
    /// How long in-flight requests may run on after a shutdown signal before
    /// their streams are ended.
    pub shutdown_timeout: Duration,
    /// The address the server listens on, which decides the `Host` and `Origin` headers `/mcp`
    /// accepts (a loopback address: loopback names only; any other: no check, the API key
    /// protects it). [`run`] sets it from its listener; `None`, for an [`app`] served some other
    /// way (in-process tests), counts as a loopback address on an unknown port.
    pub bind: Option<SocketAddr>,
    /// Serve the web UI at `/` (`--no-webui` turns it off; its paths then get the API's 404).
    pub webui: bool,
    /// The URL phones open (`--public-url`): what `GET /qr`, `/api/v1/info`'s `url` and the
    /// terminal QR code give. `None`: derived from [`Self::bind`] ([`qr::lan_url`]).
    pub public_url: Option<String>,
    /// Put the first API key into the QR code's URL (`#key=KEY`, a fragment the browser keeps to
    /// itself), so a phone that scans it needs no typing (`--qr-with-key`). Off: no code ever
    /// contains a key.
    pub qr_with_key: bool,
    /// The sampling of HTTP API requests (OpenAI's and llama-server's) that leave a field out
    /// (`--temp`, `--seed`; the rest llama-server's defaults).
    pub sampling: chorus_engine::SamplingParams,
    /// The most tokens such a request generates when it sets no limit (`--n-predict`);
    /// `None`: until the context is full.
    pub n_predict: Option<u32>,
    /// Serve `GET /slots` (llama-server's slot monitoring; `--no-slots` turns it off).
    pub slots: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            api_keys: Vec::new(),
            body_limit: 16 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(10),
            bind: None,
            webui: true,
            public_url: None,
            qr_with_key: false,
            sampling: chorus_engine::SamplingParams::default(),
            n_predict: None,
            slots: true,
        }
    }
}

impl ServerConfig {
    /// The URL phones open: [`Self::public_url`], else the LAN URL of [`Self::bind`]
    /// ([`qr::lan_url`]); with `with_key` and [`Self::qr_with_key`] and a key, it carries the
    /// first API key as the fragment `#key=KEY` (percent-encoded), which the web UI stores and
    /// removes from the address bar.
    pub fn phone_url(&self, with_key: bool) -> String {
        let mut url = match &self.public_url {
            Some(url) => url.clone(),
            None => qr::lan_url(self.bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 4096)))),
        };
        if with_key
            && self.qr_with_key
            && let Some(key) = self.api_keys.first()
        {
            url = format!("{}#key={}", url.split('#').next().unwrap_or_default(), qr::fragment_encode(key));
        }
        url
    }

    /// Refuse to serve a non-loopback address without an API key.
    ///
    /// # Errors
    /// [`ServerError::UnprotectedBind`] naming the address.
    pub fn check_bind(&self, addr: SocketAddr) -> Result<(), ServerError> {
        if addr.ip().is_loopback() || !self.api_keys.is_empty() {
            Ok(())
        } else {
            Err(ServerError::UnprotectedBind(addr))
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding beyond loopback would expose the models to the network unauthenticated.
    #[error(
        "refusing to listen on {0} without an API key: anyone who can reach this address could use the server; pass --api-key KEY (or set CHORUS_API_KEY), or bind 127.0.0.1"
    )]
    UnprotectedBind(SocketAddr),
    /// A live server answers on the control socket.
    #[error(
        "another chorus server is running with the control socket {}; stop it with `chorus ctl shutdown`, or give this one another --control-socket (or --no-control-socket)",
        .0.display()
    )]
    ControlSocketInUse(PathBuf),
    /// Something that is not a socket is at the control socket's path; it is left alone.
    #[error("{} exists and is not a socket; remove it, or pass another --control-socket", .0.display())]
    ControlSocketNotASocket(PathBuf),
    /// The control socket could not be checked or bound.
    #[error("cannot open the control socket {}: {source}; pass another --control-socket", path.display())]
    ControlSocket {
        /// Its path.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The listener failed.
    #[error("server i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    engine: Engine,
    config: Arc<ServerConfig>,
    /// Cancelled when in-flight streams must end (shutdown timeout passed).
    abort: CancellationToken,
    /// The `/mcp` sessions, closed at shutdown once none of their requests is in flight.
    mcp: mcp::McpSessions,
    /// HTTP requests answered, for the control socket's status.
    requests: Arc<AtomicU64>,
}

impl AppState {
    /// State over an engine.
    pub fn new(engine: Engine, config: ServerConfig) -> Self {
        let abort = CancellationToken::new();
        Self {
            engine,
            config: Arc::new(config),
            mcp: mcp::McpSessions::new(abort.child_token()),
            abort,
            requests: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// The whole HTTP API as a `Router`, ready for `axum::serve` or in-process tests.
pub fn app(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let protected = Router::new()
        .merge(openai::routes())
        .merge(api::routes())
        .merge(slots::routes())
        .merge(llama::routes())
        .merge(ollama::routes())
        .merge(tasks::routes())
        .route("/ws", get(ws::upgrade))
        .route("/ws/characters", get(character_ws::upgrade))
        .route("/metrics", get(health::metrics))
        .route("/qr", get(qr::svg))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_key));
    let router = Router::new()
        .route("/health", get(health::health))
        .route("/api/v1/health", get(health::health))
        .merge(openapi::routes())
        .merge(protected)
        // Its own Host/Origin check first, then the API key.
        .merge(mcp::routes(&state));
    // The web UI's files are the fallback: any other path is the API's 404.
    let router =
        if state.config.webui { router.fallback_service(webui::service()) } else { router.fallback(error::not_found) };
    router
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(CatchPanicLayer::custom(error::panic_response))
        .with_state(state)
}

/// `chorus_requests_total{endpoint,status}`, and the total the control socket reports.
async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let endpoint =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let labels = RequestLabels { endpoint, status: response.status().as_u16() };
    state.engine.metrics().requests.get_or_create(&labels).inc();
    state.requests.fetch_add(1, Ordering::Relaxed);
    response
}

/// Serve `app` on `listener` until `shutdown` resolves, then stop accepting,
/// let in-flight requests finish for up to `shutdown_timeout`, end the streams
/// still open (each gets an error event and `data: [DONE]`), and return.
///
/// # Errors
/// [`ServerError::UnprotectedBind`] before serving; I/O errors of the listener.
pub async fn run(
    listener: TcpListener,
    engine: Engine,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_with_control(listener, None, engine, config, shutdown).await
}

/// [`run`], with a control socket when `control` is set: it answers
/// `GET /status` until the HTTP server has stopped, its `POST /shutdown`
/// starts the same graceful shutdown as `shutdown` resolving, and its file is
/// removed before this returns.
///
/// # Errors
/// As [`run`].
pub async fn run_with_control(
    listener: TcpListener,
    control: Option<ControlSocket>,
    engine: Engine,
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let addr = listener.local_addr()?;
    config.check_bind(addr)?;
    let config = ServerConfig { bind: Some(addr), ..config };
    let timeout = config.shutdown_timeout;
    let state = AppState::new(engine, config);
    let abort = state.abort.clone();
    let draining = CancellationToken::new();
    // Stops the control socket once the HTTP server has stopped.
    let stopped = CancellationToken::new();
    let control = control.map(|socket| {
        let control_state = control::ControlState {
            app: state.clone(),
            url: format!("http://{addr}").into(),
            shutdown: draining.clone(),
        };
        socket.serve(control_state, stopped.clone())
    });
    let signal = {
        let draining = draining.clone();
        async move {
            tokio::select! {
                () = shutdown => {}
                () = draining.cancelled() => {}
            }
            tracing::info!("shutting down: no new connections; finishing in-flight requests");
            draining.cancel();
        }
    };
    tokio::spawn({
        let draining = draining.clone();
        let abort = abort.clone();
        async move {
            draining.cancelled().await;
            tokio::time::sleep(timeout).await;
            tracing::warn!("shutdown timeout passed; ending open streams");
            abort.cancel();
        }
    });
    // MCP clients hold a stream open between calls: their sessions end once no `POST` to
    // `/mcp` is in flight, so idle clients do not hold the shutdown.
    tokio::spawn({
        let draining = draining.clone();
        let sessions = state.mcp.clone();
        async move {
            draining.cancelled().await;
            sessions.close_when_idle().await;
        }
    });
    tracing::info!(%addr, "listening");
    let served = axum::serve(listener, app(state)).with_graceful_shutdown(signal).await;
    abort.cancel();
    stopped.cancel();
    if let Some(mut task) = control {
        // The task removes the socket file when it ends (or is aborted);
        // a client still connected gets its answer first.
        if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
    }
    served?;
    tracing::info!("server stopped");
    Ok(())
}
