//! `chorus pull hf:OWNER/REPO/FILE.gguf [--id ID]`: through the running server when one
//! answers (its `POST /api/v1/models/pull`, whose progress events drive a bar; the server
//! serves the model at once), else downloaded here into the hub cache (a download that broke
//! off resumes) and saved in `DATA_DIR/models.toml`, so `chorus serve` serves it.
//!
//! [`HubPuller`] is the engine's puller behind that endpoint and Ollama's `/api/pull`: the
//! same download, then the model registered in the pool with the spec a `--model hf:…` flag
//! would get, and saved. It also takes Ollama's names of hub repositories,
//! `hf.co/OWNER/REPO[:QUANT]` (the file of that quantization, registered under that name), and
//! removes (`/api/delete`) and copies (`/api/copy`) the models it saved.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use chorus_client::{Client, ClientConfig, ClientError};
use chorus_engine::{Metrics, ModelPool, ModelPuller, PoolError, PullError, PullStage, PullUpdate};
use chorus_hub::{DownloadProgress, HubConfig, HubFile, ModelSource, PullStatus};
use chorus_proto::models::PullRequest;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use crate::args::{ModelArgs, PullArgs};
use crate::registry::ModelEntry;
use crate::saved::{self, Added};
use crate::target::DEFAULT_URL;

/// A source that can be pulled: a `.gguf` file on the hub.
fn hub_source(text: &str) -> Result<(ModelSource, HubFile), String> {
    let source: ModelSource = text.parse().map_err(|e: chorus_hub::HubError| e.to_string())?;
    let ModelSource::Hub(file) = &source else {
        return Err(format!(
            "`{text}` is a local path: only hub files (hf:OWNER/REPO/FILE.gguf) are pulled; serve a local file with --model PATH.gguf or a [[models]] entry"
        ));
    };
    if !file.file.to_ascii_lowercase().ends_with(".gguf") {
        return Err(format!("`{text}` is not a GGUF file: name a .gguf file of the repository"));
    }
    let file = file.clone();
    Ok((source, file))
}

/// The id a pulled file gets unless one is given: its stem.
fn default_id(file: &HubFile) -> String {
    crate::registry::stem(Path::new(&file.file))
}

/// `chorus pull`.
pub(crate) async fn run(args: PullArgs) -> Result<()> {
    let (source, file) = hub_source(&args.source).map_err(anyhow::Error::msg)?;
    if let Some(id) = &args.id {
        crate::registry::check_id(id).map_err(anyhow::Error::msg)?;
    }
    if !args.local
        && let Some(client) = server(&args).await?
    {
        return through_server(&client, &source, &file, args.id).await;
    }
    here(&args, &source, &file).await
}

/// The server to pull through: the `--url` one (which must answer), else the default one if
/// it answers.
async fn server(args: &PullArgs) -> Result<Option<Client>> {
    let (url, wait) = match &args.connect.url {
        Some(url) => (url.clone(), args.connect.timeout),
        None => (DEFAULT_URL.to_owned(), 2),
    };
    let config = ClientConfig {
        url: url.clone(),
        api_key: args.connect.api_key.clone(),
        timeout: Some(Duration::from_secs(wait)),
    };
    let probe = Client::new(config.clone())?;
    match probe.health().await {
        Ok(_) => {
            Ok(Some(Client::new(ClientConfig { timeout: Some(Duration::from_secs(args.connect.timeout)), ..config })?))
        }
        Err(e @ (ClientError::Unreachable { .. } | ClientError::Timeout { .. })) if args.connect.url.is_some() => {
            bail!("{e}; start one with `chorus serve`, fix --url, or pass --local to download here")
        }
        Err(ClientError::Unreachable { .. } | ClientError::Timeout { .. }) => {
            eprintln!("chorus: no server answers at {url}; downloading here");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The server pulls; its progress events drive the bar.
async fn through_server(client: &Client, source: &ModelSource, file: &HubFile, id: Option<String>) -> Result<()> {
    let request = PullRequest { source: source.to_string(), id };
    let mut events = client.pull_model(&request).await?;
    let mut bar = crate::model::Bar::default();
    let mut shown: Option<u64> = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                bar.finish();
                return Err(anyhow::Error::new(e).context(
                    "the server's pull stream broke off; run `chorus pull` again (the download resumes where it stopped)",
                ));
            }
        };
        match event.status.as_str() {
            "downloading" => {
                let completed = event.completed.unwrap_or(0);
                match shown {
                    None => bar.start(&file.file, event.total, completed),
                    Some(before) => bar.advance(completed.saturating_sub(before)),
                }
                shown = Some(shown.map_or(completed, |before| before.max(completed)));
            }
            "verifying sha256 digest" | "verifying size" => bar.finish(),
            "success" => {
                bar.finish();
                let id = event.model.unwrap_or_default();
                println!(
                    "pulled {source}; the server at {} serves it as `{id}`, now and after a restart",
                    client.url()
                );
                return Ok(());
            }
            "error" => {
                bar.finish();
                bail!("the server could not pull {source}: {}", event.error.unwrap_or_default());
            }
            _ => {}
        }
    }
    bar.finish();
    bail!(
        "the server ended the pull of {source} without saying how it went; run `chorus pull` again (a download resumes where it stopped)"
    )
}

/// No server: download into this machine's cache and save the entry for `chorus serve`.
async fn here(args: &PullArgs, source: &ModelSource, file: &HubFile) -> Result<()> {
    let id = args.id.clone().unwrap_or_else(|| default_id(file));
    let canonical = source.to_string();
    let (config, config_path) = crate::config::load(args.model.config.as_deref())?;
    if let Some(taken) = config.models().iter().find(|e| e.id.as_deref() == Some(&id) || e.aliases.contains(&id))
        && taken.source.as_deref() != Some(&canonical)
    {
        let file = config_path.map_or_else(|| "chorus.toml".to_owned(), |p| p.display().to_string());
        bail!("the id `{id}` names another model in {file}; choose another with --id");
    }
    let hub = crate::model::hub_config(&args.model)?;
    let data_dir = crate::model::data_dir(&args.model)?;
    let entry = ModelEntry { id: Some(id.clone()), source: Some(canonical.clone()), ..ModelEntry::default() };
    // Checked before the download, so a clash costs no time.
    if let Some(known) = saved::load(&data_dir)?.into_iter().find(|e| e.id.as_deref() == Some(&id))
        && known.source != entry.source
    {
        bail!(
            "the id `{id}` is registered already in {} for {}; choose another with --id",
            saved::path(&data_dir).display(),
            known.source.as_deref().unwrap_or("another model")
        );
    }
    let path = chorus_hub::resolve(source, &hub, &mut crate::model::Bar::default()).await?;
    let added = saved::add(&data_dir, &entry)?;
    println!("pulled {canonical} into {}", path.display());
    let registry = saved::path(&data_dir);
    match added {
        Added::New => println!(
            "registered as `{id}` in {}; `chorus serve` serves it (a running server after a restart)",
            registry.display()
        ),
        Added::AlreadyThere => println!("`{id}` was registered already in {}", registry.display()),
    }
    Ok(())
}

/// The engine's puller: downloads with chorus-hub, registers the model in the pool as a
/// `--model hf:…` flag would, and saves it in `DATA_DIR/models.toml`.
#[derive(Clone)]
pub(crate) struct HubPuller {
    /// The serve flags: a pulled model gets their llama.cpp settings.
    args: ModelArgs,
    hub: HubConfig,
    data_dir: PathBuf,
    metrics: Arc<Metrics>,
    pool: ModelPool,
}

impl HubPuller {
    /// A puller registering into `pool`.
    pub(crate) fn new(
        args: &ModelArgs,
        hub: HubConfig,
        data_dir: PathBuf,
        metrics: Arc<Metrics>,
        pool: ModelPool,
    ) -> Self {
        Self { args: args.clone(), hub, data_dir, metrics, pool }
    }

    async fn pull_and_register(
        self,
        text: String,
        id: Option<String>,
        progress: mpsc::UnboundedSender<PullUpdate>,
    ) -> Result<String, PullError> {
        let (source, file, ollama_id) = match chorus_hub::parse_ollama_name(&text) {
            Some((repo, quant)) => {
                let file =
                    chorus_hub::resolve_ollama_name(&repo, quant.as_deref(), &self.hub).await.map_err(|e| match e {
                        chorus_hub::HubError::NotFound { .. } => {
                            PullError::Invalid { param: "source", message: e.to_string() }
                        }
                        other => PullError::Failed(other.to_string()),
                    })?;
                let id = text.strip_suffix(":latest").unwrap_or(&text).to_owned();
                (ModelSource::Hub(file.clone()), file, Some(id))
            }
            None => {
                let (source, file) =
                    hub_source(&text).map_err(|message| PullError::Invalid { param: "source", message })?;
                (source, file, None)
            }
        };
        let id = id.or(ollama_id).unwrap_or_else(|| default_id(&file));
        crate::registry::check_id(&id).map_err(|message| PullError::Invalid { param: "id", message })?;
        let canonical = source.to_string();
        let taken = |other: &str| {
            PullError::Conflict(format!("the id `{id}` is registered already for {other}; pull with another id"))
        };
        // Pulled before under this id: the download only makes sure the file is there.
        let registered = match self.pool.resolve(&id) {
            Ok(existing) => match self.pool.states().into_iter().find(|m| m.id == existing) {
                Some(m) if m.source == canonical && m.id == id => true,
                Some(m) => return Err(taken(&m.source)),
                None => false,
            },
            Err(_) => false,
        };
        let saved = saved::load(&self.data_dir).map_err(|e| PullError::Failed(format!("{e:#}")))?;
        if let Some(e) = saved.iter().find(|e| e.id.as_deref() == Some(&id) && e.source.as_deref() != Some(&canonical))
        {
            return Err(taken(e.source.as_deref().unwrap_or("another model")));
        }

        let (sender, mut reports) = mpsc::unbounded_channel::<chorus_hub::PullProgress>();
        let forward = async move {
            let mut downloaded = false;
            while let Some(report) = reports.recv().await {
                let stage = match report.status {
                    PullStatus::Downloading => {
                        downloaded = true;
                        PullStage::Downloading
                    }
                    PullStatus::Verifying => PullStage::Verifying,
                    // Found in the cache: one report with the whole file.
                    PullStatus::Done if !downloaded => PullStage::Downloading,
                    PullStatus::Done => continue,
                };
                let _ = progress.send(PullUpdate {
                    stage,
                    digest: report.digest,
                    total: report.total,
                    completed: report.completed,
                });
            }
        };
        let (downloaded, ()) = tokio::join!(chorus_hub::pull(&source, &self.hub, sender), forward);
        let path = downloaded.map_err(|e| PullError::Failed(e.to_string()))?;
        if registered {
            return Ok(id);
        }

        let entry = ModelEntry { id: Some(id.clone()), source: Some(canonical.clone()), ..ModelEntry::default() };
        let budget = self.pool.config().memory_budget;
        let spec = crate::registry::spec(&self.args, &entry, &self.metrics, &self.data_dir, &self.hub, budget)
            .await
            .map_err(|e| {
                PullError::Failed(format!(
                    "{canonical} was downloaded to {} but cannot be served: {e:#}",
                    path.display()
                ))
            })?;
        self.pool.register(spec).map_err(|e| match e {
            PoolError::Duplicate(_) => PullError::Conflict(format!("{e}; pull with another id")),
            other => PullError::Failed(other.to_string()),
        })?;
        tracing::info!(model = %id, source = %canonical, "pulled and registered");
        saved::add(&self.data_dir, &entry).map_err(|e| {
            PullError::Failed(format!("`{id}` is served now but was not saved for the next start: {e:#}"))
        })?;
        Ok(id)
    }
}

impl HubPuller {
    /// [`ModelPuller::remove`]: only a model this puller saved (in `DATA_DIR/models.toml`)
    /// is removed; its hub file is deleted from the cache when no other model uses it.
    async fn remove_saved(self, name: String) -> Result<String, PullError> {
        let id = self.pool.resolve(&name).map_err(|_| PullError::NotFound(name.clone()))?;
        let failed = |e: anyhow::Error| PullError::Failed(format!("{e:#}"));
        let saved = saved::load(&self.data_dir).map_err(failed)?;
        if !saved.iter().any(|e| e.id.as_deref() == Some(&id)) {
            return Err(PullError::Invalid {
                param: "model",
                message: format!(
                    "`{id}` is served from chorus.toml or a --model flag, not pulled: remove it there and restart the server"
                ),
            });
        }
        let source = self.pool.states().into_iter().find(|m| m.id == id).map(|m| m.source);
        saved::remove(&self.data_dir, &id).map_err(failed)?;
        self.pool.deregister(&id).await.map_err(|e| PullError::Failed(e.to_string()))?;
        tracing::info!(model = %id, "removed");
        let Some(source) = source.filter(|s| s.starts_with(chorus_hub::HUB_PREFIX)) else { return Ok(id) };
        let still_used = self.pool.states().iter().any(|m| m.source == source)
            || saved::load(&self.data_dir).map_err(failed)?.iter().any(|e| e.source.as_deref() == Some(&source));
        if !still_used && let Ok(parsed) = source.parse::<ModelSource>() {
            match chorus_hub::remove_cached(&self.hub.cache_dir, &parsed) {
                Ok(bytes) => tracing::info!(%source, bytes, "deleted the downloaded file"),
                Err(e) => tracing::warn!(%source, error = %e, "could not delete the downloaded file"),
            }
        }
        Ok(id)
    }

    /// [`ModelPuller::copy`]: the source's saved entry (or its source alone) under the new id.
    async fn copy_saved(self, source: String, destination: String) -> Result<String, PullError> {
        let id = self.pool.resolve(&source).map_err(|_| PullError::NotFound(source.clone()))?;
        crate::registry::check_id(&destination)
            .map_err(|message| PullError::Invalid { param: "destination", message })?;
        if self.pool.resolve(&destination).is_ok() {
            return Err(PullError::Conflict(format!(
                "the name `{destination}` is taken already; delete it first or copy to another name"
            )));
        }
        let failed = |e: anyhow::Error| PullError::Failed(format!("{e:#}"));
        let saved = saved::load(&self.data_dir).map_err(failed)?;
        let state = self.pool.states().into_iter().find(|m| m.id == id).ok_or(PullError::NotFound(source.clone()))?;
        let base = saved
            .into_iter()
            .find(|e| e.id.as_deref() == Some(&id))
            .unwrap_or_else(|| ModelEntry { source: Some(state.source.clone()), ..ModelEntry::default() });
        let entry = ModelEntry { id: Some(destination.clone()), aliases: Vec::new(), preload: false, ..base };
        let budget = self.pool.config().memory_budget;
        let spec = crate::registry::spec(&self.args, &entry, &self.metrics, &self.data_dir, &self.hub, budget)
            .await
            .map_err(|e| PullError::Failed(format!("`{id}` cannot be copied: {e:#}")))?;
        self.pool.register(spec).map_err(|e| match e {
            PoolError::Duplicate(_) => PullError::Conflict(e.to_string()),
            other => PullError::Failed(other.to_string()),
        })?;
        saved::add(&self.data_dir, &entry).map_err(|e| {
            PullError::Failed(format!("`{destination}` is served now but was not saved for the next start: {e:#}"))
        })?;
        tracing::info!(model = %destination, from = %id, "copied");
        Ok(destination)
    }
}

impl ModelPuller for HubPuller {
    fn pull(
        &self,
        source: String,
        id: Option<String>,
        progress: mpsc::UnboundedSender<PullUpdate>,
    ) -> BoxFuture<'static, Result<String, PullError>> {
        self.clone().pull_and_register(source, id, progress).boxed()
    }

    fn remove(&self, name: String) -> BoxFuture<'static, Result<String, PullError>> {
        self.clone().remove_saved(name).boxed()
    }

    fn copy(&self, source: String, destination: String) -> BoxFuture<'static, Result<String, PullError>> {
        self.clone().copy_saved(source, destination).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hub_gguf_files_are_pulled() {
        let (source, file) = hub_source("hf:o/r/dir/m-q4.gguf@v1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(source.to_string(), "hf:o/r/dir/m-q4.gguf@v1");
        assert_eq!(default_id(&file), "m-q4");
        for (text, expected) in [
            ("/models/m.gguf", "is a local path"),
            ("hf:o/r/README.md", "is not a GGUF file"),
            ("hf:o/m.gguf", "hf:OWNER/REPO/FILE"),
        ] {
            let error = hub_source(text).err().unwrap_or_default();
            assert!(error.contains(expected), "{text}: {error}");
        }
        assert!(
            crate::registry::check_id("a b").is_err()
                && crate::registry::check_id("").is_err()
                && crate::registry::check_id("qwen:0.5b").is_ok()
        );
    }
}
