//! [`UpstreamConfig`]: which upstream servers serve a model under which id, and
//! how they are reached (key, timeouts, health checks). Built by the binary;
//! checked by [`UpstreamBackend::new`](crate::UpstreamBackend::new).

use std::time::Duration;

/// Tokens one request may hold when the upstream's context is not known.
pub const DEFAULT_N_CTX: u32 = 32_768;

/// How often each upstream's health is checked by default.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);

/// The longest wait for an upstream's response headers, and between two reads of its body,
/// by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Requests counted as one upstream's slots by default (what [`ModelInfo::n_parallel`]
/// reports per URL; the upstream schedules them itself).
///
/// [`ModelInfo::n_parallel`]: chorus_engine::ModelInfo::n_parallel
pub const DEFAULT_SLOTS_PER_URL: u32 = 4;

/// One model served by one or more OpenAI-compatible upstream servers.
#[derive(Clone, PartialEq)]
pub struct UpstreamConfig {
    /// The model id chorus serves it as (clients' `model`, `GET /v1/models`).
    pub id: String,
    /// The model name sent upstream as `model`; `None` sends [`UpstreamConfig::id`].
    pub model: Option<String>,
    /// Base URLs of the upstreams, such as `http://10.0.0.7:8080` (a trailing `/` or `/v1`
    /// is accepted): requests go to `{url}/v1/chat/completions`, `{url}/v1/completions`,
    /// `{url}/v1/embeddings`, health checks to `{url}/health`. At least one; `http` or `https`.
    pub urls: Vec<String>,
    /// Sent as `Authorization: Bearer KEY` on every request, health checks included.
    pub api_key: Option<String>,
    /// Tokens one request may hold, prompt and answer together (the upstream's context per
    /// sequence); [`DEFAULT_N_CTX`] when unknown. Reported as the model's `n_ctx_slot` and
    /// `n_ctx_train`; its `n_ctx` (all slots together) is this times `n_parallel`, so a
    /// session's budget (`n_ctx / n_parallel`, at most `n_ctx_slot`) is this.
    pub n_ctx: u32,
    /// Size of the upstream's embedding vectors, as [`ModelInfo::n_embd`] reports it; 0 when
    /// unknown (the upstream's vectors are returned as they come).
    ///
    /// [`ModelInfo::n_embd`]: chorus_engine::ModelInfo::n_embd
    pub n_embd: u32,
    /// Requests counted as one upstream's slots ([`DEFAULT_SLOTS_PER_URL`]); `n_parallel` is
    /// this times the number of URLs. Nothing is queued here: more requests than slots are
    /// sent all the same.
    pub slots_per_url: u32,
    /// Time between two health checks of an upstream ([`DEFAULT_HEALTH_INTERVAL`]).
    pub health_interval: Duration,
    /// The longest wait for an upstream to answer a request's headers, and then between two
    /// reads of its (streamed) body ([`DEFAULT_REQUEST_TIMEOUT`]); a generation may take longer
    /// in all, as long as it keeps streaming.
    pub request_timeout: Duration,
}

impl UpstreamConfig {
    /// A model `id` served by `urls`, with the defaults: the same model name upstream, no key,
    /// [`DEFAULT_N_CTX`], [`DEFAULT_SLOTS_PER_URL`], [`DEFAULT_HEALTH_INTERVAL`],
    /// [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn new(id: impl Into<String>, urls: Vec<String>) -> Self {
        Self {
            id: id.into(),
            model: None,
            urls,
            api_key: None,
            n_ctx: DEFAULT_N_CTX,
            n_embd: 0,
            slots_per_url: DEFAULT_SLOTS_PER_URL,
            health_interval: DEFAULT_HEALTH_INTERVAL,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// The model name sent upstream.
    pub fn upstream_model(&self) -> &str {
        self.model.as_deref().unwrap_or(&self.id)
    }
}

/// The key is left out: configurations end up in logs.
impl std::fmt::Debug for UpstreamConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConfig")
            .field("id", &self.id)
            .field("model", &self.model)
            .field("urls", &self.urls)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("n_ctx", &self.n_ctx)
            .field("n_embd", &self.n_embd)
            .field("slots_per_url", &self.slots_per_url)
            .field("health_interval", &self.health_interval)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}
