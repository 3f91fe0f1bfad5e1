//! Which server `ask` and `chat` talk to: the `--url` one, the default local
//! one, or, when nothing answers at the default URL, an embedded server: the
//! same engine and HTTP API run in this process on an ephemeral loopback port
//! guarded by a random API key, so embedded mode behaves exactly like a server.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use chorus_client::{Client, ClientConfig, ClientError};
use chorus_server::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::args::{ConnectArgs, ModelArgs};

/// The URL `ask` and `chat` try when no `--url` is given.
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:4096";

/// A server to talk to; an embedded one stops when this is dropped.
pub(crate) struct Target {
    pub(crate) client: Client,
    /// The request's `model`: the flag's value for a remote server, none when embedded.
    pub(crate) model: Option<String>,
    /// The API key requests carry (an embedded server's own random one).
    pub(crate) api_key: Option<String>,
    embedded: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Target {
    /// Stop the embedded server, if any, and wait for it.
    pub(crate) async fn close(mut self) {
        if let Some((stop, task)) = self.embedded.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

fn client(url: &str, api_key: Option<String>, timeout: u64) -> Result<Client> {
    Ok(Client::new(ClientConfig { url: url.to_owned(), api_key, timeout: Some(Duration::from_secs(timeout)) })?)
}

/// Connect to the server the flags name, or start an embedded one.
pub(crate) async fn connect(connect: &ConnectArgs, model: &ModelArgs) -> Result<Target> {
    if let Some(url) = &connect.url {
        let c = client(url, connect.api_key.clone(), connect.timeout)?;
        match c.health().await {
            Ok(_) => {
                let model = model.model.first().cloned();
                return Ok(Target { client: c, model, api_key: connect.api_key.clone(), embedded: None });
            }
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Timeout { .. })) => {
                bail!("{e}; start one with `chorus serve`, or fix --url / CHORUS_URL")
            }
            Err(e) => return Err(e.into()),
        }
    }
    let probe = client(DEFAULT_URL, connect.api_key.clone(), 2)?;
    match probe.health().await {
        Ok(_) => {
            let c = client(DEFAULT_URL, connect.api_key.clone(), connect.timeout)?;
            Ok(Target {
                client: c,
                model: model.model.first().cloned(),
                api_key: connect.api_key.clone(),
                embedded: None,
            })
        }
        Err(ClientError::Unreachable { .. } | ClientError::Timeout { .. }) => {
            eprintln!("chorus: no server answers at {DEFAULT_URL}; running the model in this process (embedded mode)");
            embedded(model, connect.timeout).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Start the same server in this process on an ephemeral loopback port, guarded by a random key.
pub(crate) async fn embedded(model: &ModelArgs, timeout: u64) -> Result<Target> {
    let engine = crate::model::load_engine(model).await?;
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).await.context("cannot open a loopback port for embedded mode")?;
    let url = format!("http://{}", listener.local_addr()?);
    let key = uuid::Uuid::new_v4().simple().to_string();
    let config = ServerConfig { api_keys: vec![key.clone()], ..ServerConfig::default() };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        let pool = engine.clone();
        if let Err(e) = chorus_server::run(listener, engine, config, shutdown).await {
            tracing::error!(error = %e, "embedded server failed");
        }
        // The models leave memory in order (their queued prompt snapshots are written).
        pool.shutdown().await;
    });
    Ok(Target {
        client: client(&url, Some(key.clone()), timeout)?,
        model: None,
        api_key: Some(key),
        embedded: Some((stop, task)),
    })
}
