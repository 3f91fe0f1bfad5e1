//! The model registry: `[[models]]` in `chorus.toml`, `--model` (repeatable) and
//! `--models-dir`, checked into [`ModelSpec`]s with a loader each (llama.cpp for GGUF files,
//! candle's BERT for sentence-transformers directories, an OpenAI-compatible upstream for
//! `url`), an estimate of the memory each takes, and the pool they are registered in.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chorus_engine::pool::PoolEvent;
use chorus_engine::{Backend, KeepAlive, Metrics, ModelLoader, ModelPool, ModelSpec, PoolConfig};
use chorus_hub::{HubConfig, ModelSource};
use chorus_llama::{LlamaBackend, LlamaConfig};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::args::ModelArgs;

/// The capabilities a model may declare.
pub(crate) const CAPABILITIES: &[&str] = &["chat", "completion", "embedding", "code", "math", "translation"];

/// One `[[models]]` entry of `chorus.toml` (and of `DATA_DIR/models.toml`, which
/// [`crate::saved`] writes, and of a model package's `model.toml`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelEntry {
    /// The id requests pass as `model`; default the file's stem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) aliases: Vec<String>,
    /// A GGUF path, `hf:OWNER/REPO/FILE.gguf`, or a sentence-transformers directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<String>,
    /// An OpenAI-compatible upstream: one base URL or several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<Urls>,
    /// The environment variable holding the upstream's API key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) api_key_env: Option<String>,
    /// The name the upstream knows the model by (its `model`); default `id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) upstream_model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) capabilities: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ctx_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parallel: Option<u32>,
    /// A GGUF embedding model's pooling (`--pooling`): `mean`, `cls` or `last`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pooling: Option<chorus_llama::Pooling>,
    /// A Jinja chat template file that replaces the model's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) chat_template: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) keep_alive: Option<toml::Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) pinned: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) preload: bool,
}

/// `url`: one or several.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub(crate) enum Urls {
    One(String),
    Many(Vec<String>),
}

/// The pool with every model registered, and the ids to load before serving.
pub(crate) struct Registry {
    pub(crate) pool: ModelPool,
    pub(crate) events: mpsc::UnboundedReceiver<PoolEvent>,
    pub(crate) preload: Vec<String>,
}

/// `--memory-budget`: bytes (`8G`, `512MiB`, `2000000000`) or a share of RAM (`80%`).
///
/// # Errors
/// A message for clap.
pub(crate) fn parse_budget(text: &str, total_ram: u64) -> Result<u64, String> {
    let t = text.trim();
    if let Some(p) = t.strip_suffix('%') {
        let p: f64 = p.trim().parse().map_err(|_| format!("`{text}` is not a percentage"))?;
        if !(0.0..=100.0).contains(&p) || p == 0.0 {
            return Err(format!("`{text}`: the percentage must be above 0 and at most 100"));
        }
        return Ok((total_ram as f64 * p / 100.0) as u64);
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("`{text}` is not a size such as 8G, 512MiB or 75%"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("`{other}` is not a size unit: use B, K, M, G or T (or a %)")),
    };
    Ok((number * scale as f64) as u64)
}

/// The default budget: all RAM but what the OS and other programs need (a tenth, at least
/// 1 GiB).
pub(crate) fn default_budget(total_ram: u64) -> u64 {
    total_ram.saturating_sub((total_ram / 10).max(1 << 30))
}

fn total_ram() -> u64 {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    system.total_memory()
}

/// A keep_alive from the config file: a number of seconds or a duration string.
fn keep_alive_value(value: &toml::Value) -> Result<KeepAlive, String> {
    match value {
        toml::Value::Integer(n) => KeepAlive::from_secs_f64(*n as f64),
        toml::Value::Float(f) => KeepAlive::from_secs_f64(*f),
        toml::Value::String(s) => KeepAlive::parse(s),
        other => Err(format!("keep_alive must be a duration string or a number of seconds, not {other}")),
    }
}

/// The rule for model ids and aliases: 1 to 256 characters, no whitespace.
///
/// # Errors
/// A message naming the id.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 256 || id.chars().any(char::is_whitespace) {
        return Err(format!("`{id}` is not a usable model id: give 1 to 256 characters without spaces"));
    }
    Ok(())
}

/// Build the pool from the flags and the config file's `[[models]]`.
pub(crate) async fn build(
    args: &ModelArgs,
    entries: &[ModelEntry],
    config_path: Option<&Path>,
    metrics: &Arc<Metrics>,
    data_dir: &Path,
    hub: &HubConfig,
) -> Result<Registry> {
    let ram = total_ram();
    // On a GPU build the GPUs' memory counts too (llama.cpp offloads with --n-gpu-layers).
    let vram = chorus_llama::gpu_memory()?;
    let memory_budget = match &args.memory_budget {
        Some(text) => parse_budget(text, ram + vram).map_err(anyhow::Error::msg).context("--memory-budget")?,
        None => default_budget(ram) + vram - vram / 10,
    };
    let keep_alive = KeepAlive::parse(&args.keep_alive).map_err(anyhow::Error::msg).context("--keep-alive")?;
    let keep_alive_max = match &args.keep_alive_max {
        None => None,
        Some(text) => match KeepAlive::parse(text).map_err(anyhow::Error::msg).context("--keep-alive-max")? {
            KeepAlive::For(d) => Some(d),
            KeepAlive::Forever => None,
        },
    };
    let pool_config = PoolConfig {
        memory_budget,
        keep_alive,
        keep_alive_max,
        wait_timeout: Duration::from_secs(args.model_wait_timeout),
    };
    let (pool, events) = ModelPool::new(pool_config);

    // Flags first (the first `--model` is the default model), then the file, then the dir.
    let mut all: Vec<(String, ModelEntry)> = Vec::new();
    for (i, model) in args.model.iter().enumerate() {
        let entry = ModelEntry {
            id: if i == 0 { args.alias.first().cloned() } else { None },
            aliases: if i == 0 { args.alias.iter().skip(1).cloned().collect() } else { Vec::new() },
            source: Some(model.clone()),
            chat_template: if i == 0 { args.chat_template.clone() } else { None },
            preload: i == 0,
            ..ModelEntry::default()
        };
        all.push((format!("--model {model}"), entry));
    }
    let file = config_path.map_or_else(|| "chorus.toml".to_owned(), |p| p.display().to_string());
    for (i, entry) in entries.iter().enumerate() {
        let name = entry.id.clone().or_else(|| entry.source.clone()).unwrap_or_default();
        all.push((format!("the config file {file}, [[models]] entry {} (`{name}`)", i + 1), entry.clone()));
    }
    if let Some(dir) = &args.models_dir {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read --models-dir {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("gguf")))
            .collect();
        files.sort();
        for path in files {
            let entry = ModelEntry { source: Some(path.display().to_string()), ..ModelEntry::default() };
            all.push((format!("--models-dir {}: {}", dir.display(), path.display()), entry));
        }
    }
    // The models chorus registered itself, last: one that no longer works is skipped.
    let saved_at = crate::saved::path(data_dir);
    let first_saved = all.len();
    for (i, entry) in crate::saved::load(data_dir)?.into_iter().enumerate() {
        let name = entry.id.clone().or_else(|| entry.source.clone()).unwrap_or_default();
        all.push((format!("{}, [[models]] entry {} (`{name}`)", saved_at.display(), i + 1), entry));
    }
    let saved = first_saved..all.len();
    if all.is_empty() {
        let entry = ModelEntry {
            source: Some(ModelSource::default_model().to_string()),
            id: args.alias.first().cloned(),
            aliases: args.alias.iter().skip(1).cloned().collect(),
            preload: true,
            ..ModelEntry::default()
        };
        all.push(("the default model".to_owned(), entry));
    }

    let mut preload = Vec::new();
    for (i, (what, entry)) in all.into_iter().enumerate() {
        let registered = match spec(args, &entry, metrics, data_dir, hub, memory_budget).await {
            Ok(spec) => {
                let id = spec.id.clone();
                pool.register(spec).map(|()| id).with_context(|| format!("{what} cannot be registered"))
            }
            Err(e) => Err(e.context(format!("{what} is not valid"))),
        };
        let id = match registered {
            Ok(id) => id,
            Err(e) if saved.contains(&i) => {
                tracing::warn!("{e:#}; skipping it (edit or remove the entry to silence this)");
                continue;
            }
            Err(e) => return Err(e),
        };
        if entry.preload || entry.pinned {
            preload.push(id);
        }
    }
    Ok(Registry { pool, events, preload })
}

/// One entry checked and turned into the pool's spec (a hub file in the cache is estimated
/// now; one still to download only when it is loaded).
pub(crate) async fn spec(
    args: &ModelArgs,
    entry: &ModelEntry,
    metrics: &Arc<Metrics>,
    data_dir: &Path,
    hub: &HubConfig,
    memory_budget: u64,
) -> Result<ModelSpec> {
    let keep_alive = entry.keep_alive.as_ref().map(keep_alive_value).transpose().map_err(anyhow::Error::msg)?;
    for c in entry.capabilities.iter().flatten() {
        if !CAPABILITIES.contains(&c.as_str()) {
            bail!("unknown capability `{c}`; use {}", CAPABILITIES.join(", "));
        }
    }
    for name in entry.id.iter().chain(&entry.aliases) {
        check_id(name).map_err(anyhow::Error::msg)?;
    }
    let caps = |default: &[&str]| {
        entry.capabilities.clone().unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect())
    };
    match (&entry.source, &entry.url) {
        (Some(_), Some(_)) => bail!("give either `source` or `url`, not both"),
        (None, None) => bail!(
            "give `source` (a GGUF path, hf:OWNER/REPO/FILE.gguf or a sentence-transformers directory) or `url` (an OpenAI-compatible server)"
        ),
        (None, Some(urls)) => {
            let urls = match urls {
                Urls::One(u) => vec![u.clone()],
                Urls::Many(us) => us.clone(),
            };
            if urls.is_empty() {
                bail!("`url` lists no URL");
            }
            for u in &urls {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    bail!("`{u}` is not an http:// or https:// URL");
                }
            }
            let id = entry.id.clone().context("an upstream model needs an `id`")?;
            let api_key = match &entry.api_key_env {
                Some(var) => Some(std::env::var(var).with_context(|| {
                    format!("api_key_env names {var}, which is not set; export it, or remove api_key_env")
                })?),
                None => None,
            };
            let mut config = chorus_upstream::UpstreamConfig::new(id.clone(), urls.clone());
            config.api_key = api_key;
            config.model = entry.upstream_model.clone();
            if let Some(n) = entry.ctx_size.filter(|n| *n > 0) {
                config.n_ctx = n;
            }
            Ok(ModelSpec {
                id,
                aliases: entry.aliases.clone(),
                source: urls.join(" "),
                capabilities: caps(&["chat", "completion", "embedding"]),
                keep_alive,
                pinned: entry.pinned,
                estimate: 0,
                facts: None,
                loader: Arc::new(UpstreamLoader(config)),
            })
        }
        (Some(source), None) => {
            let local = Path::new(source);
            if local.is_dir() {
                let id = entry.id.clone().unwrap_or_else(|| stem(local));
                let weights = std::fs::metadata(local.join("model.safetensors")).map_or(0, |m| m.len());
                return Ok(ModelSpec {
                    id: id.clone(),
                    aliases: entry.aliases.clone(),
                    source: source.clone(),
                    capabilities: caps(&["embedding"]),
                    keep_alive,
                    pinned: entry.pinned,
                    // The weights as f32 in memory, and activations of a batch of 32.
                    estimate: weights + (64 << 20),
                    facts: None,
                    loader: Arc::new(BertLoader { dir: local.to_path_buf(), id }),
                });
            }
            let parsed: ModelSource = source.parse()?;
            let mut config = llama_config(args, entry, data_dir)?;
            // Sized within the budget as well as within free memory.
            config.memory_limit = Some(memory_budget);
            // A hub file already in the cache is estimated now; one still to download only
            // when it is loaded.
            let offline = HubConfig { offline: true, ..hub.clone() };
            let cached = match &parsed {
                ModelSource::Local(p) => Some(p.clone()),
                ModelSource::Hub(_) => chorus_hub::resolve(&parsed, &offline, &mut chorus_hub::NoProgress).await.ok(),
            };
            let (mut estimate, mut embedding, mut fim, mut chat) = (0, config.embeddings, false, true);
            let mut facts = None;
            if let Some(path) = cached {
                config.model_path = path;
                let probe = config.clone();
                let e = tokio::task::spawn_blocking(move || chorus_llama::estimate(&probe)).await??;
                estimate = e.bytes;
                // The context the estimate was made for is the one it loads with.
                if config.n_ctx == 0 {
                    config.ctx_reason = Some(e.reason.clone());
                }
                config.n_ctx = e.n_ctx;
                embedding = e.embedding;
                fim = e.fim;
                chat = e.chat_template;
                facts = Some(Arc::new(e.facts));
            }
            let id = entry.id.clone().unwrap_or_else(|| match &parsed {
                ModelSource::Local(p) => stem(p),
                ModelSource::Hub(f) => stem(Path::new(&f.file)),
            });
            config.alias = Some(id.clone());
            Ok(ModelSpec {
                id,
                aliases: entry.aliases.clone(),
                source: source.clone(),
                // A vocabulary with fill-in-the-middle tokens marks a code model; a model
                // without a chat template (a base model) serves completions only.
                capabilities: caps(match (embedding, fim, chat) {
                    (true, _, _) => &["embedding"],
                    (false, true, true) => &["chat", "completion", "code"],
                    (false, true, false) => &["completion", "code"],
                    (false, false, true) => &["chat", "completion"],
                    (false, false, false) => &["completion"],
                }),
                keep_alive,
                pinned: entry.pinned,
                estimate,
                facts,
                loader: Arc::new(GgufLoader { source: parsed, config, hub: hub.clone(), metrics: Arc::clone(metrics) }),
            })
        }
    }
}

/// A file's stem, the default model id.
pub(crate) fn stem(path: &Path) -> String {
    path.file_stem().map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned())
}

/// The llama.cpp settings of one model: the flags, with the entry's own where it has them.
fn llama_config(args: &ModelArgs, entry: &ModelEntry, data_dir: &Path) -> Result<LlamaConfig> {
    let chat_template = match &entry.chat_template {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the chat template {}", file.display()))?,
        ),
        None => None,
    };
    let mut config = LlamaConfig::new(PathBuf::new());
    config.n_ctx = entry.ctx_size.unwrap_or(args.ctx_size);
    config.n_batch = args.batch_size;
    config.n_ubatch = args.ubatch_size;
    config.n_parallel = entry.parallel.unwrap_or(args.parallel);
    config.kv_unified = !args.no_kv_unified;
    if let Some(t) = args.threads {
        config.n_threads = t;
        config.n_threads_batch = t;
    }
    config.n_gpu_layers = args.n_gpu_layers;
    config.chat_template = chat_template;
    const MIB: u64 = 1 << 20;
    config.cache_ram = args.cache_ram.map(|m| u64::try_from(m).map_or(u64::MAX, |m| m.saturating_mul(MIB)));
    config.cache_disk = args.cache_disk.map(|m| m.saturating_mul(MIB));
    config.cache_dir = Some(data_dir.join("kv-cache"));
    config.slot_save_path = args.slot_save_path.clone();
    config.pooling = entry.pooling.or(args.pooling);
    let caps = entry.capabilities.as_deref().unwrap_or_default();
    config.embeddings = args.embeddings || (!caps.is_empty() && caps.iter().all(|c| c == "embedding"));
    Ok(config)
}

/// A GGUF file through llama.cpp; a hub file is downloaded first (with a bar on stderr).
struct GgufLoader {
    source: ModelSource,
    config: LlamaConfig,
    hub: HubConfig,
    metrics: Arc<Metrics>,
}

impl ModelLoader for GgufLoader {
    fn load(&self) -> BoxFuture<'static, Result<Arc<dyn Backend>, String>> {
        let (source, mut config, hub, metrics) =
            (self.source.clone(), self.config.clone(), self.hub.clone(), Arc::clone(&self.metrics));
        async move {
            let path = chorus_hub::resolve(&source, &hub, &mut crate::model::Bar::default())
                .await
                .map_err(|e| e.to_string())?;
            config.model_path = path;
            let backend = tokio::task::spawn_blocking(move || LlamaBackend::load(&config, metrics))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            Ok(Arc::new(backend) as Arc<dyn Backend>)
        }
        .boxed()
    }
}

/// A sentence-transformers directory through candle's BERT.
struct BertLoader {
    dir: PathBuf,
    id: String,
}

impl ModelLoader for BertLoader {
    fn load(&self) -> BoxFuture<'static, Result<Arc<dyn Backend>, String>> {
        let (dir, id) = (self.dir.clone(), self.id.clone());
        async move {
            let backend = tokio::task::spawn_blocking(move || chorus_embed::BertEmbedder::load(&dir, id))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            Ok(Arc::new(backend) as Arc<dyn Backend>)
        }
        .boxed()
    }
}

/// An OpenAI-compatible upstream; "loading" starts its health checks.
struct UpstreamLoader(chorus_upstream::UpstreamConfig);

impl ModelLoader for UpstreamLoader {
    fn load(&self) -> BoxFuture<'static, Result<Arc<dyn Backend>, String>> {
        let config = self.0.clone();
        async move {
            let backend = chorus_upstream::UpstreamBackend::new(config).map_err(|e| e.to_string())?;
            Ok(Arc::new(backend) as Arc<dyn Backend>)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse() {
        let gib = 1u64 << 30;
        assert_eq!(parse_budget("8G", 0), Ok(8 * gib));
        assert_eq!(parse_budget("512MiB", 0), Ok(512 << 20));
        assert_eq!(parse_budget("1000", 0), Ok(1000));
        assert_eq!(parse_budget("50%", 10 * gib), Ok(5 * gib));
        assert!(parse_budget("0%", gib).is_err());
        assert!(parse_budget("8X", gib).is_err());
        assert_eq!(default_budget(24 * gib), 24 * gib - (24 * gib / 10));
        assert_eq!(default_budget(4 * gib), 3 * gib);
    }
}
