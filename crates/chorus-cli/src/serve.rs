//! `chorus serve`: check the bind address and the control socket, bind, load the models
//! (answering `503 Loading model` meanwhile, as llama-server), and serve until SIGINT,
//! SIGTERM or `chorus ctl shutdown`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use chorus_server::{ControlSocket, ServerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::args::ServeArgs;

pub(crate) async fn run(args: ServeArgs) -> Result<()> {
    let addr: SocketAddr = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot resolve --host {}", args.host))?
        .next()
        .with_context(|| format!("--host {} resolves to no address", args.host))?;
    let control_socket = match (args.no_control_socket, args.control_socket) {
        (true, _) => None,
        (false, Some(path)) => Some(path),
        (false, None) => Some(crate::ctl::default_socket()?),
    };
    if let Some(url) = &args.public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        anyhow::bail!("--public-url {url} is not an http:// or https:// URL");
    }
    let mut config = ServerConfig {
        api_keys: args.api_keys.into_iter().filter(|k| !k.is_empty()).collect(),
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        webui: !args.no_webui,
        public_url: args.public_url,
        qr_with_key: args.qr_with_key,
        sampling: chorus_engine::SamplingParams {
            temperature: args.temperature,
            seed: u32::try_from(args.seed).ok(),
            ..chorus_engine::SamplingParams::default()
        },
        n_predict: u32::try_from(args.n_predict).ok().filter(|&n| n > 0),
        slots: !args.no_slots,
        ..ServerConfig::default()
    };
    // Refuse an unprotected public bind, or a control socket another server
    // holds, before spending time on the model.
    config.check_bind(addr)?;
    if let Some(path) = &control_socket {
        ControlSocket::check(path).await?;
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}; is another server using it? choose another --port"))?;
    // While the models load, requests get llama-server's 503 "Loading model".
    let (listener, engine) = chorus_server::while_loading(listener, crate::model::load_engine(&args.model)).await?;
    let engine = engine?;
    for name in &args.characters {
        let (character, session) = engine
            .character_session(name, None, chorus_engine::character::DEFAULT_USER)
            .await
            .map_err(|e| anyhow::anyhow!("--character {name}: {e}"))?;
        tracing::info!(character = character.id(), session = %session.id, "character ready");
    }
    // The seed's port for the characters WebSocket and Ollama's port, on the same host and
    // behind the same key.
    let character_listener = bind_extra(addr, args.character_port, "--character-port").await?;
    let ollama_listener = bind_extra(addr, args.ollama_port, "--ollama-port").await?;
    // Bound after the model is loaded, so `chorus ctl` never waits on a loading server.
    let control = match &control_socket {
        Some(path) => Some(ControlSocket::bind(path).await?),
        None => None,
    };
    let local = listener.local_addr()?;
    // One machine-readable line on stdout; everything else is logged to stderr.
    let mut stdout = tokio::io::stdout();
    stdout.write_all(format!("chorus listening on http://{local}\n").as_bytes()).await?;
    stdout.flush().await?;
    config.bind = Some(local);
    if !local.ip().is_loopback() {
        print_qr(&config);
    }
    let state = chorus_server::AppState::new(engine.clone(), config.clone());
    let extra = [
        character_listener
            .map(|l| serve_extra(l, chorus_server::character_port_app(state.clone()), "characters WebSocket")),
        ollama_listener.map(|l| serve_extra(l, chorus_server::ollama_port_app(state), "Ollama API")),
    ];
    let pool = engine.clone();
    let served = chorus_server::run_with_control(listener, control, engine, config, shutdown_signal()).await;
    // Every model leaves memory in order: each model thread ends after its step, and its disk
    // thread after the prompt snapshots already queued.
    for task in extra.into_iter().flatten() {
        task.abort();
    }
    pool.shutdown().await;
    served?;
    Ok(())
}

/// A second listener on `port` of the main address's host, when `flag` was given.
async fn bind_extra(addr: SocketAddr, port: Option<u16>, flag: &str) -> Result<Option<TcpListener>> {
    let Some(port) = port else { return Ok(None) };
    let addr = SocketAddr::new(addr.ip(), port);
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for {flag}; is another program using it? choose another port")
    })?;
    Ok(Some(listener))
}

/// Serve `app` on a second listener until shutdown; its task, aborted once the main server ends.
fn serve_extra(listener: TcpListener, app: axum::Router, what: &'static str) -> tokio::task::JoinHandle<()> {
    if let Ok(local) = listener.local_addr() {
        tracing::info!(%local, "{what} listening");
    }
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await {
            tracing::error!(error = %e, "the {what} port failed");
        }
    })
}

/// The QR code phones scan to open the web UI, on stderr (stdout keeps its one line).
fn print_qr(config: &ServerConfig) {
    let url = config.phone_url(true);
    let shown = config.phone_url(false);
    match chorus_server::qr::terminal(&url) {
        Some(code) => {
            let key = if url == shown { "" } else { " (the code carries the API key)" };
            eprintln!("\nOn a phone on this network, scan this or open {shown}{key}:\n{code}");
        }
        None => eprintln!("On a phone on this network, open {shown}"),
    }
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
