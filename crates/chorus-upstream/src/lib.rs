//! An engine [`Backend`] that forwards requests to OpenAI-compatible upstream
//! servers (vLLM, TGI, llama-server, another chorus) instead of running a
//! model: [`UpstreamBackend`], configured by [`UpstreamConfig`].
//!
//! Chat prompts go to `{url}/v1/chat/completions`, text prompts to
//! `{url}/v1/completions` (OpenAI API reference, "Chat", "Completions"),
//! always streamed (`"stream": true`, `stream_options.include_usage`) whether
//! the client streams or not, so a client that leaves stops the upstream at
//! once; embeddings go to `{url}/v1/embeddings` ("Embeddings"). The upstream
//! applies the chat template, parses tool calls and enforces
//! `response_format`: its `tool_calls` come back as
//! [`GenerationEvent::ToolCalls`](chorus_engine::GenerationEvent::ToolCalls),
//! on a stream marked
//! [`calls_parsed`](chorus_engine::GenerationStream::calls_parsed) so the
//! engine's own parser stays out of it.
//!
//! Requests are balanced over the URLs (least outstanding requests among the
//! healthy ones; a `prompt_cache_key` keeps its URL while that is healthy), a
//! background task checks each URL's `/health`, and every failure is a
//! [`BackendError::Upstream`] (the `pool`, `health` and `error` modules say
//! how).
//!
//! This crate knows HTTP only as a client; it does not depend on llama.cpp.

mod client;
mod config;
mod embed;
mod error;
mod generate;
mod health;
mod pool;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chorus_engine::embed::EmbedReply;
use chorus_engine::{
    Backend, BackendError, BackendStats, EmbedRequest, GenerationStream, ModelInfo, Serves, ToolFormat,
    ValidGenerateRequest,
};

pub use config::{
    DEFAULT_HEALTH_INTERVAL, DEFAULT_N_CTX, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SLOTS_PER_URL, UpstreamConfig,
};
pub use error::UpstreamError;
pub use pool::UpstreamStatus;

use crate::client::Upstreams;
use crate::generate::Job;
use crate::pool::Pool;

/// The longest wait for a TCP (and TLS) connection to an upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A model served by OpenAI-compatible upstream servers.
///
/// Cheap to share behind an `Arc<dyn Backend>`; dropping it stops its health checks.
/// Requests in flight keep running until they end.
#[derive(Debug)]
pub struct UpstreamBackend {
    upstreams: Arc<Upstreams>,
    info: ModelInfo,
    config: UpstreamConfig,
    /// Where request tasks are spawned: the runtime [`UpstreamBackend::new`] ran in, so that
    /// [`Backend::generate`] may be called from any thread.
    runtime: tokio::runtime::Handle,
    /// The health-check task, aborted on drop.
    health: tokio::task::JoinHandle<()>,
}

impl UpstreamBackend {
    /// A backend over `config.urls`, which starts checking their health at once (every URL
    /// counts as healthy until its first check says otherwise). Must be called inside a tokio
    /// runtime, where its tasks run.
    ///
    /// URLs are normalised: a trailing `/` and a trailing `/v1` (how OpenAI clients' base URLs
    /// are often written) are removed, as paths start with `/v1/`.
    ///
    /// # Errors
    /// [`UpstreamError::NoUrls`], [`UpstreamError::InvalidUrl`] (not an `http`/`https` URL
    /// with a host), [`UpstreamError::InvalidSetting`] (a zero `n_ctx`, `slots_per_url`,
    /// `health_interval` or `request_timeout`), [`UpstreamError::NoRuntime`],
    /// [`UpstreamError::Client`].
    pub fn new(config: UpstreamConfig) -> Result<Self, UpstreamError> {
        if config.urls.is_empty() {
            return Err(UpstreamError::NoUrls);
        }
        let urls = config.urls.iter().map(|u| normalize_url(u)).collect::<Result<Vec<_>, _>>()?;
        let positive = |field: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(UpstreamError::InvalidSetting { field, message: "must be more than 0".into() })
            }
        };
        positive("n_ctx", config.n_ctx > 0)?;
        positive("slots_per_url", config.slots_per_url > 0)?;
        positive("health_interval", !config.health_interval.is_zero())?;
        positive("request_timeout", !config.request_timeout.is_zero())?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| UpstreamError::NoRuntime)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(config.request_timeout))
            .read_timeout(config.request_timeout)
            .build()
            .map_err(|e| UpstreamError::Client(e.to_string()))?;
        let info = model_info(&config, &urls);
        let pool = Arc::new(Pool::new(urls));
        let health = runtime.spawn(health::run(
            Arc::downgrade(&pool),
            http.clone(),
            config.api_key.clone(),
            config.health_interval,
        ));
        let upstreams = Arc::new(Upstreams {
            pool,
            http,
            api_key: config.api_key.clone(),
            model: config.upstream_model().to_owned(),
        });
        Ok(Self { upstreams, info, config, runtime, health })
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Each upstream URL's health and outstanding requests, in configuration order.
    pub fn upstreams(&self) -> Vec<UpstreamStatus> {
        self.upstreams.pool.status()
    }
}

impl Drop for UpstreamBackend {
    fn drop(&mut self) {
        self.health.abort();
    }
}

/// `url` without a trailing `/` or `/v1`, checked.
fn normalize_url(url: &str) -> Result<String, UpstreamError> {
    let invalid = |reason: &str| UpstreamError::InvalidUrl { url: url.to_owned(), reason: reason.to_owned() };
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(invalid("a base url takes no query or fragment"));
    }
    let mut base = parsed.as_str().trim_end_matches('/').to_owned();
    if let Some(stripped) = base.strip_suffix("/v1") {
        base = stripped.trim_end_matches('/').to_owned();
    }
    Ok(base)
}

/// What the engine is told about the model.
fn model_info(config: &UpstreamConfig, urls: &[String]) -> ModelInfo {
    let n_parallel = u32::try_from(urls.len()).unwrap_or(u32::MAX).saturating_mul(config.slots_per_url);
    ModelInfo {
        id: config.id.clone(),
        path: PathBuf::from(&urls[0]),
        created: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        architecture: "upstream".into(),
        // All slots together, so that a sequence's share (`n_ctx / n_parallel`) is what one
        // upstream request holds.
        n_ctx: config.n_ctx.saturating_mul(n_parallel),
        n_ctx_slot: config.n_ctx,
        n_ctx_train: config.n_ctx,
        // Unknown: every token id passes validation (`logit_bias`); the upstream checks.
        n_vocab: u32::MAX,
        n_parallel,
        n_params: 0,
        size: 0,
        // Unused: the upstream parses its model's calls (the stream is `calls_parsed`).
        tool_format: ToolFormat::default(),
        kv_unified: false,
        kv_bytes: 0,
        context_choice: "upstream".into(),
        has_chat_template: true,
        chat_template: None,
        n_embd: config.n_embd,
        serves: Serves { generation: true, embeddings: true },
        fim: false,
    }
}

impl Backend for UpstreamBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Send the request upstream, streamed, on a task of its own; its failures (the
    /// upstream's error status and object, or status 0 when no URL answers) come as the
    /// stream's [`GenerationEvent::Error`](chorus_engine::GenerationEvent::Error). The
    /// stream's `prompt_tokens` is the estimate of [`Backend::prompt_tokens`]; `Done` carries
    /// the upstream's `usage`.
    ///
    /// # Errors
    /// [`BackendError::Unsupported`] for a fill-in-the-middle prompt (which the engine refuses
    /// first); [`BackendError::Unavailable`] if the pool had no URL.
    fn generate(&self, request: ValidGenerateRequest) -> Result<GenerationStream, BackendError> {
        let request = request.into_inner();
        let prompt_tokens = wire::estimate_prompt_tokens(&request);
        let (endpoint, body) = wire::generate_body(&request, &self.upstreams.model)?;
        let key = request.prompt_cache_key;
        let lease = self.upstreams.pool.pick(key.as_deref(), &[]).ok_or(BackendError::Unavailable)?;
        let (tx, stream) = GenerationStream::channel(prompt_tokens);
        let job = Job { lease, key, endpoint, body, prompt_tokens };
        self.runtime.spawn(generate::run(self.upstreams.clone(), job, tx));
        Ok(stream.calls_parsed())
    }

    /// An estimate, not a count: one token per 3 characters of the messages, their calls and
    /// the tools' JSON, plus 4 per message (upstreams do not tokenize for chorus in general).
    /// The engine uses it only to window a session's history; the upstream refuses a prompt
    /// that does not fit its context itself.
    fn prompt_tokens(&self, request: &ValidGenerateRequest) -> Result<u32, BackendError> {
        Ok(wire::estimate_prompt_tokens(request.get()))
    }

    /// `slots_busy` is the requests outstanding upstream (it may exceed `slots_total`, as
    /// nothing waits here); `queued` is 0.
    fn stats(&self) -> BackendStats {
        BackendStats {
            slots_total: self.info.n_parallel,
            slots_busy: self.upstreams.pool.outstanding(),
            queued: 0,
            ..BackendStats::default()
        }
    }

    /// Forget the URL the key was sent to; the upstream's own caches are its business.
    fn forget(&self, prompt_cache_key: &str) {
        self.upstreams.pool.forget(prompt_cache_key);
    }

    /// Send the inputs to `/v1/embeddings` on a task of its own; the reply carries the
    /// vectors in input order, scaled to unit length, or the upstream's error.
    fn embed(&self, request: EmbedRequest) -> Result<EmbedReply, BackendError> {
        let lease = self.upstreams.pool.pick(None, &[]).ok_or(BackendError::Unavailable)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.runtime.spawn(embed::run(self.upstreams.clone(), lease, request, self.config.n_embd, tx));
        Ok(rx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised_and_checked() {
        assert_eq!(normalize_url("http://h:8080").unwrap(), "http://h:8080");
        assert_eq!(normalize_url("http://h:8080/").unwrap(), "http://h:8080");
        assert_eq!(normalize_url("https://h/v1/").unwrap(), "https://h");
        assert_eq!(normalize_url("http://h/proxy/v1").unwrap(), "http://h/proxy");
        assert!(matches!(normalize_url("ftp://h"), Err(UpstreamError::InvalidUrl { .. })));
        assert!(matches!(normalize_url("h:80"), Err(UpstreamError::InvalidUrl { .. })));
        assert!(matches!(normalize_url("not a url"), Err(UpstreamError::InvalidUrl { .. })));
    }

    #[test]
    fn outside_a_runtime_it_is_refused() {
        let config = UpstreamConfig::new("m", vec!["http://127.0.0.1:9".into()]);
        assert_eq!(UpstreamBackend::new(config).unwrap_err(), UpstreamError::NoRuntime);
    }

    #[tokio::test]
    async fn the_model_info_reports_the_upstreams() {
        let mut config = UpstreamConfig::new("m", vec!["http://127.0.0.1:9".into(), "http://127.0.0.1:10".into()]);
        config.n_ctx = 1000;
        let backend = UpstreamBackend::new(config.clone()).unwrap();
        let info = backend.info();
        assert_eq!(info.n_parallel, 8);
        assert_eq!((info.n_ctx, info.n_ctx_slot, info.n_ctx_train), (8000, 1000, 1000));
        assert_eq!(info.serves, Serves { generation: true, embeddings: true });
        assert_eq!(info.architecture, "upstream");
        assert_eq!(info.path, PathBuf::from("http://127.0.0.1:9"));
        assert_eq!(backend.stats().slots_total, 8);
        config.urls.clear();
        assert_eq!(UpstreamBackend::new(config.clone()).unwrap_err(), UpstreamError::NoUrls);
        config.urls = vec!["http://h".into()];
        config.health_interval = Duration::ZERO;
        assert!(matches!(
            UpstreamBackend::new(config),
            Err(UpstreamError::InvalidSetting { field: "health_interval", .. })
        ));
    }
}
