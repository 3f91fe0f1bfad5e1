//! `chorus serve`: check the bind address, load the model, listen, and serve
//! until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use chorus_server::ServerConfig;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::args::ServeArgs;

pub(crate) async fn run(args: ServeArgs) -> Result<()> {
    let addr: SocketAddr = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot resolve --host {}", args.host))?
        .next()
        .with_context(|| format!("--host {} resolves to no address", args.host))?;
    let config = ServerConfig {
        api_keys: args.api_keys.into_iter().filter(|k| !k.is_empty()).collect(),
        shutdown_timeout: Duration::from_secs(args.shutdown_timeout),
        ..ServerConfig::default()
    };
    // Refuse an unprotected public bind before spending time on the model.
    config.check_bind(addr)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}; is another server using it? choose another --port"))?;
    let engine = crate::model::load_engine(&args.model).await?;
    let local = listener.local_addr()?;
    // One machine-readable line on stdout; everything else is logged to stderr.
    let mut stdout = tokio::io::stdout();
    stdout.write_all(format!("chorus listening on http://{local}\n").as_bytes()).await?;
    stdout.flush().await?;
    chorus_server::run(listener, engine, config, shutdown_signal()).await?;
    Ok(())
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
