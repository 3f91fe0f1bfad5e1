//! Loading the engine for `serve` and embedded mode: the model registry and its pool
//! ([`crate::registry`]), the models to load before serving (a hub download shows a progress
//! bar), the session store, the configuration's MCP servers as tool providers, and the
//! engine's puller ([`crate::pull::HubPuller`]).

use std::sync::Arc;

use anyhow::{Context, Result};
use chorus_engine::tools::ToolRegistry;
use chorus_engine::{Engine, Metrics, SessionsConfig};
use chorus_hub::{DownloadProgress, HubConfig};
use chorus_server::mcp::client::McpServer;
use chorus_store::{SqlStore, StoreConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::ModelArgs;

/// An indicatif bar on stderr for hub downloads.
#[derive(Default)]
pub(crate) struct Bar(Option<ProgressBar>);

impl DownloadProgress for Bar {
    fn start(&mut self, file: &str, total: Option<u64>, already: u64) {
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::no_length(),
        };
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(format!("downloading {file}"));
        bar.set_position(already);
        self.0 = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(bytes);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}

/// The hub settings from the flags.
pub(crate) fn hub_config(args: &ModelArgs) -> Result<HubConfig> {
    let cache_dir = chorus_hub::default_cache_dir()
        .context("no cache directory on this platform; pass a local GGUF file with --model PATH.gguf")?;
    Ok(HubConfig {
        endpoint: args.hf_endpoint.clone(),
        cache_dir,
        token: std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()),
        offline: args.offline,
    })
}

/// Register the models the flags and the config file name, load the ones to preload, and
/// build an engine over them.
pub(crate) async fn load_engine(args: &ModelArgs) -> Result<Engine> {
    // The configuration first: a bad file fails before any time is spent on the model.
    let (file, config_path) = crate::config::load(args.config.as_deref())?;
    let hub = hub_config(args)?;
    let data_dir = data_dir(args)?;
    let metrics = Arc::new(Metrics::new());
    let registry =
        crate::registry::build(args, file.models(), config_path.as_deref(), &metrics, &data_dir, &hub).await?;
    for id in &registry.preload {
        registry.pool.load(id, None).await.map_err(|e| match e {
            chorus_engine::PoolError::LoadFailed { error, .. } => anyhow::anyhow!(error),
            other => anyhow::Error::new(other),
        })?;
    }
    let store = open_store(args.database_url.as_deref(), &data_dir).await?;
    // The MCP servers start when their tools are first needed, not here.
    let mut tools = ToolRegistry::default();
    for server in file.mcp_servers() {
        tools = tools.with_provider(Arc::new(McpServer::new(server.clone())?));
    }
    let tools = args
        .tool_permissions
        .iter()
        .fold(file.apply_permissions(tools)?, |tools, (name, policy)| tools.with_permission(name.clone(), *policy));
    let agents = file.agents(&tools)?;
    let sessions = SessionsConfig {
        agents,
        default_work_dir: std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_else(|_| ".".into()),
        tools,
        permission_timeout: std::time::Duration::from_secs(args.permission_timeout),
        max_tool_rounds: args.max_tool_rounds,
        characters_dir: Some(crate::characters::characters_dir(
            args.characters.characters_dir.as_deref(),
            Some(&data_dir),
        )?),
    };
    let puller = crate::pull::HubPuller::new(args, hub, data_dir, Arc::clone(&metrics), registry.pool.clone());
    let router = chorus_engine::Router::new(file.router()?, &registry.pool).with_context(|| match &config_path {
        Some(path) => format!("[router] in {} is not valid", path.display()),
        None => "the router's defaults do not fit the registered models".to_owned(),
    })?;
    tracing::info!(categories = ?router.categories(), embedding_model = ?router.embedding_model(), "router");
    let engine =
        Engine::start(registry.pool, registry.events, metrics, Some(router), Arc::new(store), sessions).await?;
    if engine.router().embedding_model().is_some() {
        let warm = engine.clone();
        tokio::spawn(async move { warm.warm_router().await });
    }
    engine.set_puller(Arc::new(puller));
    Ok(engine)
}

/// `--data-dir`, else the platform data dir; created.
pub(crate) fn data_dir(args: &ModelArgs) -> Result<std::path::PathBuf> {
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => directories::ProjectDirs::from("", "", "chorus")
            .context("no data directory on this platform; pass --data-dir DIR")?
            .data_dir()
            .to_owned(),
    };
    std::fs::create_dir_all(&dir).with_context(|| {
        format!("cannot create the data directory {}; pass another with --data-dir DIR", dir.display())
    })?;
    Ok(dir)
}

/// Open the store at `url`, or the SQLite file in the data dir.
async fn open_store(url: Option<&str>, data_dir: &std::path::Path) -> Result<SqlStore> {
    let config = match url {
        Some(url) => StoreConfig::new(url),
        None => StoreConfig::sqlite_file(&data_dir.join("chorus.db")),
    };
    SqlStore::open(&config).await.with_context(|| {
        format!(
            "cannot open the session store at {}; check --database-url (or CHORUS_DATABASE_URL)",
            redact(&config.url)
        )
    })
}

/// A database URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}://{user}@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
