//! [`Engine`]: the handle every front end (HTTP server, embedded CLI) drives.
//! It resolves the model a request names, validates the request, hands it to
//! the model's [`Backend`] (through the [`ModelPool`], which loads it on demand) and
//! reports health and metrics. Its session
//! methods live in [`crate::session`].

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::embed::{EmbedRequest, Embeddings};
use crate::events::EventBus;
use crate::pool::{KeepAlive, Lease, ModelPool, ModelState, PoolError, PoolEvent};
use crate::pull::{ModelPuller, PullError, PullUpdate};
use crate::route::Router;
use crate::session::{SessionTable, SessionsConfig};
use crate::store::{SessionStatus, SessionUpdate, Store, StoreError};
use crate::tools::ToolCallParser;
use crate::{
    Backend, BackendError, BackendStats, GenerateRequest, GenerationStream, MAX_CHOICES, Metrics, ModelInfo,
    ValidationError,
};
use chorus_proto::native::Event;
use tokio::sync::mpsc;

/// Cheap to clone; all clones share one model pool.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pool: ModelPool,
    /// The model of requests that name none: the first registered model that generates.
    default_model: Option<String>,
    metrics: Arc<Metrics>,
    started: Instant,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bus: EventBus,
    pub(crate) sessions: SessionTable,
    pub(crate) sessions_config: SessionsConfig,
    /// Routes prompts that name no model (see [`crate::route`]).
    pub(crate) router: Router,
    /// What `POST /api/v1/models/pull` drives; set once by the binary ([`Engine::set_puller`]).
    puller: OnceLock<Arc<dyn ModelPuller>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("default_model", &self.inner.default_model).finish()
    }
}

/// Why the engine refused or failed a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The request names a model that is not registered.
    #[error("the model `{0}` does not exist")]
    ModelNotFound(String),
    /// A field is out of range.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The backend refused or failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The model pool could not provide the model (no room now, a failed load).
    #[error(transparent)]
    Pool(PoolError),
    /// The router chose a category no registered model serves (an `image` prompt without
    /// an image model): 501.
    #[error("no model serves the `{0}` category")]
    NoModelForCategory(String),
}

impl From<PoolError> for EngineError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::NotFound(model) => Self::ModelNotFound(model),
            other => Self::Pool(other),
        }
    }
}

impl Engine {
    /// An engine over a model pool (`metrics` must be the registry its backends record
    /// into; `pool_events` the receiver [`ModelPool::new`] returned), its router (`None`: one
    /// category on the default model) and a store for sessions and events. The pool's events are published on the event bus (`model.*`) and
    /// recorded in the metrics.
    ///
    /// Sessions left `busy` by a server that stopped mid-answer are marked `error`.
    ///
    /// # Errors
    /// The store's error reading the event log's position or the sessions.
    pub async fn start(
        pool: ModelPool,
        pool_events: mpsc::UnboundedReceiver<PoolEvent>,
        metrics: Arc<Metrics>,
        router: Option<Router>,
        store: Arc<dyn Store>,
        sessions_config: SessionsConfig,
    ) -> Result<Self, StoreError> {
        let bus = EventBus::open(store.clone()).await?;
        // A session still `busy` was answering when the last server stopped without finishing
        // (a crash, `kill -9`): its prompt is gone, so it is `error` now, not busy forever.
        for session in store.list_sessions().await? {
            if session.status == SessionStatus::Busy {
                tracing::warn!(session = %session.id, "the session was busy when the server stopped; marking it error");
                store.update_session(&session.id, SessionUpdate::Status(SessionStatus::Error)).await?;
            }
        }
        let default_model = pool
            .states()
            .into_iter()
            .find(|m| !(m.capabilities.len() == 1 && m.capabilities[0] == "embedding"))
            .map(|m| m.id);
        metrics.memory_budget_bytes.set(i64::try_from(pool.config().memory_budget).unwrap_or(i64::MAX));
        for m in pool.states() {
            metrics.set_model_state(&m.id, m.status == crate::ModelStatus::Loaded, m.bytes);
        }
        tokio::spawn(forward_pool_events(pool_events, pool.clone(), bus.clone(), Arc::clone(&metrics)));
        let router = router.unwrap_or_else(|| Router::single(&pool));
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                default_model,
                metrics,
                started: Instant::now(),
                store,
                bus,
                sessions: SessionTable::default(),
                sessions_config,
                router,
                puller: OnceLock::new(),
            }),
        })
    }

    /// Give the engine the puller that [`Engine::pull_model`] uses; false (and `puller` is
    /// dropped) when it has one already.
    pub fn set_puller(&self, puller: Arc<dyn ModelPuller>) -> bool {
        self.inner.puller.set(puller).is_ok()
    }

    /// Pull `source` with the engine's puller and register it (as `id`, or the puller's
    /// choice), reporting into `progress`; resolves to the registered id.
    ///
    /// # Errors
    /// [`PullError::NotSupported`] without a puller, else the puller's [`PullError`].
    pub fn pull_model(
        &self,
        source: String,
        id: Option<String>,
        progress: mpsc::UnboundedSender<PullUpdate>,
    ) -> futures::future::BoxFuture<'static, Result<String, PullError>> {
        match self.inner.puller.get() {
            Some(puller) => puller.pull(source, id, progress),
            None => Box::pin(std::future::ready(Err(PullError::NotSupported))),
        }
    }

    /// Remove the model named `name` with the engine's puller ([`ModelPuller::remove`]).
    ///
    /// # Errors
    /// [`PullError::NotSupported`] without a puller, else the puller's [`PullError`].
    pub fn remove_model(&self, name: String) -> futures::future::BoxFuture<'static, Result<String, PullError>> {
        match self.inner.puller.get() {
            Some(puller) => puller.remove(name),
            None => Box::pin(std::future::ready(Err(PullError::NotSupported))),
        }
    }

    /// Register the model named `source` again as `destination` with the engine's puller
    /// ([`ModelPuller::copy`]).
    ///
    /// # Errors
    /// [`PullError::NotSupported`] without a puller, else the puller's [`PullError`].
    pub fn copy_model(
        &self,
        source: String,
        destination: String,
    ) -> futures::future::BoxFuture<'static, Result<String, PullError>> {
        match self.inner.puller.get() {
            Some(puller) => puller.copy(source, destination),
            None => Box::pin(std::future::ready(Err(PullError::NotSupported))),
        }
    }

    /// The model pool.
    pub fn pool(&self) -> &ModelPool {
        &self.inner.pool
    }

    /// Every registered model and where it stands, in registration order.
    pub fn models(&self) -> Vec<ModelState> {
        self.inner.pool.states()
    }

    /// The canonical id of the model a request names (by id or alias); `None` means the
    /// default model.
    ///
    /// # Errors
    /// [`EngineError::ModelNotFound`] when no registered model has that name.
    pub fn resolve(&self, model: Option<&str>) -> Result<String, EngineError> {
        match model {
            Some(name) => Ok(self.inner.pool.resolve(name)?),
            None => self.inner.default_model.clone().ok_or_else(|| EngineError::ModelNotFound(String::new())),
        }
    }

    /// The model an embedding request without `model` means: the first that serves
    /// embeddings (capability `embedding`), else the default model (which then refuses with
    /// [`BackendError::Unsupported`]); a named one as [`Self::resolve`].
    ///
    /// # Errors
    /// [`EngineError::ModelNotFound`].
    pub fn resolve_embedding(&self, model: Option<&str>) -> Result<String, EngineError> {
        if model.is_some() {
            return self.resolve(model);
        }
        let states = self.inner.pool.states();
        match states.into_iter().find(|m| m.capabilities.iter().any(|c| c == "embedding")) {
            Some(m) => Ok(m.id),
            None => self.resolve(None),
        }
    }

    /// A lease on the model a request names, loading it first if needed.
    ///
    /// # Errors
    /// [`EngineError::ModelNotFound`], or the pool's [`PoolError`].
    pub async fn lease(&self, model: Option<&str>, keep_alive: Option<KeepAlive>) -> Result<Lease, EngineError> {
        let id = self.resolve(model)?;
        Ok(self.inner.pool.acquire(&id, keep_alive).await?)
    }

    /// Validate and schedule a request on the model named `model` (loading it if needed).
    /// The returned stream holds the model in memory until it is dropped.
    ///
    /// # Errors
    /// [`EngineError`]: unknown model, no room for it, invalid field, or the backend's refusal.
    pub async fn generate(
        &self,
        model: Option<&str>,
        request: GenerateRequest,
    ) -> Result<GenerationStream, EngineError> {
        let mut streams = self.generate_choices(model, request, 1).await?;
        streams.pop().ok_or(EngineError::Backend(BackendError::Unavailable))
    }

    /// As [`Engine::generate`], for `n` answers to the same request (OpenAI's `n`, 1 to
    /// [`MAX_CHOICES`]): one stream per choice, in order, whose prompt the backend computes
    /// once when it can (llama.cpp: the other sequences copy the first one's KV cells).
    ///
    /// # Errors
    /// As [`Engine::generate`]; an `n` out of range is a [`ValidationError`] on `n`.
    pub async fn generate_choices(
        &self,
        model: Option<&str>,
        request: GenerateRequest,
        n: u32,
    ) -> Result<Vec<GenerationStream>, EngineError> {
        if !(1..=MAX_CHOICES).contains(&n) {
            return Err(ValidationError::new("n", format!("n must be from 1 to {MAX_CHOICES}")).into());
        }
        let lease = Arc::new(self.lease(model, request.keep_alive).await?);
        let backend = lease.backend();
        let info = backend.info();
        if !info.serves.generation {
            return Err(BackendError::generation_unsupported(&info.id, &request.prompt).into());
        }
        // Calls are parsed for the tools the request offers.
        let parses = request.parses_tool_calls();
        let tools = request.tools.clone();
        let valid = request.validate(info)?;
        let streams = backend.generate_choices(valid, n)?;
        Ok(streams
            .into_iter()
            .map(|stream| {
                let stream =
                    if parses { stream.with_parser(ToolCallParser::new(info.tool_format, &tools)) } else { stream };
                stream.with_lease(Arc::clone(&lease))
            })
            .collect())
    }

    /// The tokens `request`'s prompt takes on the leased model (validated and rendered as
    /// [`Engine::generate`] would); nothing is generated.
    ///
    /// # Errors
    /// [`EngineError`]: invalid field, or the template's refusal.
    pub fn prompt_tokens(lease: &Lease, request: GenerateRequest) -> Result<u32, EngineError> {
        let backend = lease.backend();
        Ok(backend.prompt_tokens(&request.validate(backend.info())?)?)
    }

    /// Tokenize `text` with the vocabulary of the model named `model` (loading it if needed);
    /// see [`Backend::tokenize`].
    ///
    /// # Errors
    /// [`EngineError`]: unknown model, no room for it, or a backend without a vocabulary.
    pub async fn tokenize(
        &self,
        model: Option<&str>,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<crate::Token>, EngineError> {
        let lease = self.lease(model, None).await?;
        Ok(lease.backend().tokenize(text, add_special, parse_special)?)
    }

    /// The text of `tokens` in the vocabulary of the model named `model`; see
    /// [`Backend::detokenize`].
    ///
    /// # Errors
    /// [`EngineError`]: unknown model, no room for it, a token outside the vocabulary, or a
    /// backend without a vocabulary.
    pub async fn detokenize(&self, model: Option<&str>, tokens: &[i32]) -> Result<String, EngineError> {
        let lease = self.lease(model, None).await?;
        let backend = lease.backend();
        let n_vocab = backend.info().n_vocab;
        if let Some(t) = tokens.iter().find(|&&t| t < 0 || t as u32 >= n_vocab) {
            return Err(
                ValidationError::new("tokens", format!("token {t} is not in the vocabulary (0..{n_vocab})")).into()
            );
        }
        Ok(backend.detokenize(tokens)?)
    }

    /// The prompt the chat template of the model named `model` renders for `request` (a chat);
    /// see [`Backend::apply_template`].
    ///
    /// # Errors
    /// [`EngineError`]: unknown model, an invalid request, or the template's refusal.
    pub async fn apply_template(&self, model: Option<&str>, request: GenerateRequest) -> Result<String, EngineError> {
        let lease = self.lease(model, None).await?;
        let backend = lease.backend();
        Ok(backend.apply_template(&request.validate(backend.info())?)?)
    }

    /// Embed `request`'s inputs with the model named `model`, cut to `dimensions` and
    /// renormalised when asked.
    ///
    /// # Errors
    /// [`EngineError`]: unknown model, a model that serves no embeddings, invalid inputs or
    /// `dimensions`, inputs too long, or the backend's failure.
    pub async fn embed(
        &self,
        model: Option<&str>,
        request: EmbedRequest,
        dimensions: Option<u32>,
        keep_alive: Option<KeepAlive>,
    ) -> Result<Embeddings, EngineError> {
        request.validate()?;
        let lease = self.lease(model, keep_alive).await?;
        let backend = lease.backend();
        let info = backend.info();
        if !info.serves.embeddings {
            return Err(BackendError::Unsupported { model: info.id.clone(), what: "embeddings" }.into());
        }
        crate::embed::check_dimensions(dimensions, info.n_embd)?;
        let reply = backend.embed(request)?;
        let mut embeddings = reply.await.map_err(|_| BackendError::Unavailable)??;
        if let Some(d) = dimensions {
            for v in &mut embeddings.vectors {
                if v.len() > d as usize {
                    crate::embed::truncate_and_normalize(v, d as usize);
                }
            }
        }
        Ok(embeddings)
    }

    /// Load a model now and keep it `keep_alive` (or its own) once idle.
    ///
    /// # Errors
    /// As [`Engine::lease`].
    pub async fn load_model(&self, model: &str, keep_alive: Option<KeepAlive>) -> Result<(), EngineError> {
        let id = self.resolve(Some(model))?;
        Ok(self.inner.pool.load(&id, keep_alive).await?)
    }

    /// Unload a model (once its requests in flight end); false when it was not loaded.
    ///
    /// # Errors
    /// [`EngineError::ModelNotFound`].
    pub async fn unload_model(&self, model: &str) -> Result<bool, EngineError> {
        let id = self.resolve(Some(model))?;
        Ok(self.inner.pool.unload(&id).await?)
    }

    /// Scheduler statistics of the default model, while it is loaded.
    pub fn stats(&self) -> BackendStats {
        self.default_backend().map(|b| b.stats()).unwrap_or_default()
    }

    /// The default model's description, while it is loaded.
    pub fn default_info(&self) -> Option<ModelInfo> {
        self.default_backend().map(|b| b.info().clone())
    }

    fn default_backend(&self) -> Option<Arc<dyn Backend>> {
        self.inner.default_model.as_deref().and_then(|id| self.inner.pool.loaded(id))
    }

    /// Run a llama-server slot action on the default model's slot `id_slot`.
    ///
    /// # Errors
    /// [`EngineError::Backend`]: see [`Backend::slot_action`].
    pub async fn slot_action(
        &self,
        id_slot: u32,
        action: crate::backend::SlotAction,
    ) -> Result<crate::backend::SlotActionResult, EngineError> {
        let lease = self.lease(None, None).await?;
        let reply = lease.backend().slot_action(id_slot, action)?;
        Ok(reply.await.map_err(|_| BackendError::Unavailable)??)
    }

    /// Forget the cached states kept under `prompt_cache_key` in every loaded model.
    pub(crate) fn forget_cache(&self, prompt_cache_key: &str) {
        for backend in self.inner.pool.all_loaded() {
            backend.forget(prompt_cache_key);
        }
    }

    /// Unload every model and wait until they are out of memory (the server is stopping).
    pub async fn shutdown(&self) {
        self.inner.pool.shutdown().await;
    }

    /// Seconds since the engine started.
    pub fn uptime_s(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }
}

/// Publish the pool's events on the bus (`model.loading`, `model.loaded`, `model.unloaded`) and
/// keep the model gauges current.
async fn forward_pool_events(
    mut events: mpsc::UnboundedReceiver<PoolEvent>,
    pool: ModelPool,
    bus: EventBus,
    metrics: Arc<Metrics>,
) {
    while let Some(event) = events.recv().await {
        let wire = match event {
            PoolEvent::Loading { model } => Event::ModelLoading { model },
            PoolEvent::Loaded { model, bytes, seconds, error } => {
                metrics.record_model_load(&model, seconds, error.is_none());
                Event::ModelLoaded { model, bytes, load_ms: (seconds * 1000.0) as u64, error }
            }
            PoolEvent::Unloaded { model, reason } => {
                metrics.record_model_unload(&model, reason.as_str());
                Event::ModelUnloaded { model, reason: reason.as_str().to_owned() }
            }
        };
        for m in pool.states() {
            metrics.set_model_state(&m.id, m.status == crate::ModelStatus::Loaded, m.bytes);
        }
        // A model event the log cannot take is still broadcast.
        bus.emit(wire).await;
    }
}
