//! The model pool: every registered model ([`ModelSpec`]), loaded on demand
//! within a memory budget, kept while in use and for its keep_alive after,
//! and unloaded least recently used first when another model needs the room.
//!
//! One mutex guards the state of all models; loads and unloads run on tasks
//! of their own and say they are done through a [`Notify`]. A request takes a
//! [`Lease`] on a loaded model (its sequences in flight); a model with leases
//! out is never unloaded. keep_alive follows Ollama's API (`docs/api.md`,
//! "keep_alive"): a duration, `0` (unload as soon as the answer is done) or
//! negative (never unload), per model and per request, capped by the
//! server's `--keep-alive-max`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use tokio::sync::{Notify, mpsc};

use crate::{Backend, ModelInfo};

/// How long a model stays loaded after its last request (Ollama's `keep_alive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Never unload for idleness (a negative keep_alive).
    Forever,
    /// Unload this long after the last request ends; zero unloads at once.
    For(Duration),
}

impl KeepAlive {
    /// Ollama's default: five minutes.
    pub const DEFAULT: Self = Self::For(Duration::from_secs(300));

    /// Seconds as Ollama's numeric form gives them: negative is [`KeepAlive::Forever`].
    pub fn from_secs_f64(secs: f64) -> Result<Self, String> {
        if !secs.is_finite() {
            return Err(format!("keep_alive must be a finite number of seconds, got {secs}"));
        }
        Ok(if secs < 0.0 { Self::Forever } else { Self::For(Duration::from_secs_f64(secs)) })
    }

    /// Parse Ollama's string form: `"10m"`, `"1h30m"`, `"45s"`, `"500ms"`, `"0"`, `"-1"`,
    /// `"-1m"`, or a plain number of seconds.
    ///
    /// # Errors
    /// A message naming what is wrong, for a 400 or a config error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Ok(secs) = t.parse::<f64>() {
            return Self::from_secs_f64(secs);
        }
        let (negative, body) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let bad = || format!("invalid keep_alive `{text}`: give a duration such as \"5m\", \"1h\", \"30s\", 0 or -1");
        let mut total = 0f64;
        let mut rest = body;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let value: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ms" => 0.001,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                _ => return Err(bad()),
            };
            total += value * scale;
            rest = &rest[unit_len..];
        }
        Ok(if negative { Self::Forever } else { Self::For(Duration::from_secs_f64(total)) })
    }

    /// Within the server's cap: a cap turns `Forever` and longer durations into the cap.
    pub fn capped(self, cap: Option<Duration>) -> Self {
        match (self, cap) {
            (_, None) => self,
            (Self::Forever, Some(cap)) => Self::For(cap),
            (Self::For(d), Some(cap)) => Self::For(d.min(cap)),
        }
    }
}

/// Loads one model. The binary implements it per kind of source (llama.cpp on a GGUF file,
/// candle on a sentence-transformers directory, an OpenAI-compatible upstream).
pub trait ModelLoader: Send + Sync + 'static {
    /// Load the model; runs on a task of its own, so it may block only inside
    /// `spawn_blocking`. The error is a message for `/api/v1/models` and the log.
    fn load(&self) -> BoxFuture<'static, Result<Arc<dyn Backend>, String>>;
}

/// A registered model, as the pool needs it.
pub struct ModelSpec {
    /// The id clients pass as `model`.
    pub id: String,
    /// Other ids that name it.
    pub aliases: Vec<String>,
    /// Where it comes from, for listings (a path, `hf:…`, a URL).
    pub source: String,
    /// What it is good at (`chat`, `completion`, `embedding`, `code`, `math`, `translation`).
    pub capabilities: Vec<String>,
    /// Its keep_alive; `None` takes the pool's default.
    pub keep_alive: Option<KeepAlive>,
    /// Never unloaded to make room, nor for idleness.
    pub pinned: bool,
    /// Bytes it is expected to take once loaded (file + KV cache + compute buffers); 0 for a
    /// model that takes no memory here (an upstream). Replaced by what the backend reports
    /// once it is loaded.
    pub estimate: u64,
    /// What its file says of itself, when it was read at registration (a GGUF file on disk).
    pub facts: Option<Arc<crate::ModelFacts>>,
    /// What loads it.
    pub loader: Arc<dyn ModelLoader>,
}

impl std::fmt::Debug for ModelSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSpec").field("id", &self.id).field("source", &self.source).finish_non_exhaustive()
    }
}

/// The pool's settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The most bytes all loaded models may take together (`--memory-budget`).
    pub memory_budget: u64,
    /// keep_alive of models that set none (`--keep-alive`, Ollama's `OLLAMA_KEEP_ALIVE`).
    pub keep_alive: KeepAlive,
    /// The longest keep_alive any model or request gets (`--keep-alive-max`); `None`: no cap.
    pub keep_alive_max: Option<Duration>,
    /// How long a request waits for room while other models have requests in flight, before
    /// it is answered 503 with `Retry-After`.
    pub wait_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            memory_budget: u64::MAX,
            keep_alive: KeepAlive::DEFAULT,
            keep_alive_max: None,
            wait_timeout: Duration::from_secs(60),
        }
    }
}

/// Where a model stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelStatus {
    /// Registered, not in memory.
    Unloaded,
    /// Being loaded.
    Loading,
    /// Loaded and serving.
    Loaded,
    /// Its last load failed (the error is kept); the next request tries again.
    Failed,
}

impl ModelStatus {
    /// `unloaded`, `loading`, `loaded` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unloaded => "unloaded",
            Self::Loading => "loading",
            Self::Loaded => "loaded",
            Self::Failed => "failed",
        }
    }
}

/// Why a model was unloaded (the `reason` of `model.unloaded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnloadReason {
    /// Its keep_alive ran out.
    Expired,
    /// Another model needed the memory.
    Evicted,
    /// Someone asked (`chorus models unload`, `POST /api/v1/models/{id}/unload`, or a
    /// request with `keep_alive: 0`).
    Requested,
    /// The server is stopping.
    Shutdown,
}

impl UnloadReason {
    /// `expired`, `evicted`, `requested` or `shutdown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Evicted => "evicted",
            Self::Requested => "requested",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Something that happened to a model, for the event bus and the metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum PoolEvent {
    /// A load started.
    Loading {
        /// The model.
        model: String,
    },
    /// A load finished (`error` set when it failed).
    Loaded {
        /// The model.
        model: String,
        /// Bytes it takes, as the backend reports them.
        bytes: u64,
        /// How long the load took.
        seconds: f64,
        /// Why it failed, when it did.
        error: Option<String>,
    },
    /// A model left memory.
    Unloaded {
        /// The model.
        model: String,
        /// Why.
        reason: UnloadReason,
    },
}

/// What the pool reports of one model (`GET /api/v1/models`, `chorus models ps`).
#[derive(Debug, Clone)]
pub struct ModelState {
    /// Its id.
    pub id: String,
    /// Its other names.
    pub aliases: Vec<String>,
    /// Where it comes from.
    pub source: String,
    /// Its capabilities.
    pub capabilities: Vec<String>,
    /// Where it stands.
    pub status: ModelStatus,
    /// Bytes it takes when loaded: what the backend reported, else the estimate.
    pub bytes: u64,
    /// Pinned in memory.
    pub pinned: bool,
    /// Requests using it now.
    pub in_flight: usize,
    /// When it unloads if nothing uses it before (loaded and idle, with a finite keep_alive).
    pub expires_at: Option<SystemTime>,
    /// Why its last load failed.
    pub last_error: Option<String>,
    /// The backend's description, while loaded.
    pub info: Option<ModelInfo>,
    /// What its file says of itself ([`ModelSpec::facts`]).
    pub facts: Option<Arc<crate::ModelFacts>>,
}

/// Why the pool could not hand out a model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PoolError {
    /// No registered model has that id or alias.
    #[error("the model `{0}` does not exist")]
    NotFound(String),
    /// Two registrations claim one name.
    #[error("the model id or alias `{0}` is registered twice")]
    Duplicate(String),
    /// The model needs more than the whole budget.
    #[error(
        "the model `{model}` needs about {need} bytes ({need_mib} MiB) but the memory budget is {budget} bytes ({budget_mib} MiB); raise --memory-budget, or give it a smaller ctx_size",
        need_mib = need >> 20, budget_mib = budget >> 20
    )]
    TooBig {
        /// The model.
        model: String,
        /// Its estimate in bytes.
        need: u64,
        /// The budget in bytes.
        budget: u64,
    },
    /// Pinned models hold so much of the budget that this one can never load beside them.
    #[error(
        "the model `{model}` needs about {need_mib} MiB but pinned models ({pinned}) hold {held_mib} MiB of the {budget_mib} MiB memory budget; unload one with `chorus models unload`, or raise --memory-budget",
        need_mib = need >> 20, held_mib = held >> 20, budget_mib = budget >> 20
    )]
    BlockedByPinned {
        /// The model.
        model: String,
        /// Its estimate in bytes.
        need: u64,
        /// The pinned models in the way.
        pinned: String,
        /// Bytes they hold.
        held: u64,
        /// The budget in bytes.
        budget: u64,
    },
    /// Models with requests in flight hold the memory; try again later.
    #[error(
        "the model `{model}` cannot be loaded now: the memory budget is in use by models with requests in flight ({busy}); retry after {retry_after} s"
    )]
    Busy {
        /// The model.
        model: String,
        /// The models in the way.
        busy: String,
        /// Seconds after which a retry may succeed (`Retry-After`).
        retry_after: u64,
    },
    /// Loading failed.
    #[error("the model `{model}` failed to load: {error}")]
    LoadFailed {
        /// The model.
        model: String,
        /// What the loader said.
        error: String,
    },
}

struct Entry {
    spec: ModelSpec,
    status: ModelStatus,
    backend: Option<Arc<dyn Backend>>,
    /// What the backend reported once loaded; the spec's estimate before.
    bytes: u64,
    in_flight: usize,
    last_used: Instant,
    /// keep_alive asked by the last request that ended.
    request_keep_alive: Option<KeepAlive>,
    expires_at: Option<Instant>,
    last_error: Option<String>,
    /// Counts finished loads, so waiters know the outcome of the one they waited for.
    loads: u64,
    /// An unload in progress: the memory still counts.
    unloading: bool,
    /// Requests waiting for this model: while any wait, it is not idle (not evicted).
    waiting: usize,
    /// Taken out of the pool ([`ModelPool::deregister`]): no name leads to it, it is not
    /// listed, and it does not load again.
    removed: bool,
}

struct State {
    models: Vec<Entry>,
    names: HashMap<String, usize>,
}

struct Inner {
    config: PoolConfig,
    state: Mutex<State>,
    changed: Notify,
    events: mpsc::UnboundedSender<PoolEvent>,
}

/// The pool. Cheap to clone.
#[derive(Clone)]
pub struct ModelPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ModelPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelPool").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

/// A request's hold on a loaded model: while any lease is out the model stays.
/// Dropping it starts the model's keep_alive.
pub struct Lease {
    pool: Arc<Inner>,
    index: usize,
    /// Taken out first when the lease ends, so an unload it starts drops the last reference.
    backend: Option<Arc<dyn Backend>>,
    keep_alive: Option<KeepAlive>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("model", &self.backend().info().id).finish()
    }
}

impl Lease {
    /// The loaded model.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        self.backend.as_ref().expect("a lease holds its backend until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.backend.take());
        let pool = ModelPool { inner: self.pool.clone() };
        let mut state = pool.lock();
        let e = &mut state.models[self.index];
        e.in_flight = e.in_flight.saturating_sub(1);
        e.last_used = Instant::now();
        if self.keep_alive.is_some() {
            e.request_keep_alive = self.keep_alive;
        }
        if e.in_flight == 0 {
            e.expires_at = pool.expiry(e);
            if e.expires_at.is_some_and(|at| at <= Instant::now()) {
                // keep_alive 0: out as soon as the answer is done.
                pool.start_unload(&mut state, self.index, UnloadReason::Requested);
            }
        }
        drop(state);
        self.pool.changed.notify_waiters();
    }
}

impl ModelPool {
    /// An empty pool and the receiver of its events (to forward to the event bus). Spawns
    /// the task that unloads models whose keep_alive ran out: call it inside a tokio runtime.
    pub fn new(config: PoolConfig) -> (Self, mpsc::UnboundedReceiver<PoolEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let pool = Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State { models: Vec::new(), names: HashMap::new() }),
                changed: Notify::new(),
                events,
            }),
        };
        tokio::spawn(reaper(Arc::downgrade(&pool.inner)));
        (pool, rx)
    }

    /// The pool's settings.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Add a model.
    ///
    /// # Errors
    /// [`PoolError::Duplicate`] for a name taken, [`PoolError::TooBig`] for a model whose
    /// estimate exceeds the whole budget.
    pub fn register(&self, spec: ModelSpec) -> Result<(), PoolError> {
        let budget = self.inner.config.memory_budget;
        if spec.estimate > budget {
            return Err(PoolError::TooBig { model: spec.id.clone(), need: spec.estimate, budget });
        }
        let mut state = self.lock();
        let names: Vec<String> = std::iter::once(spec.id.clone()).chain(spec.aliases.iter().cloned()).collect();
        if let Some(taken) = names.iter().find(|n| state.names.contains_key(*n)) {
            return Err(PoolError::Duplicate(taken.clone()));
        }
        let index = state.models.len();
        for name in names {
            state.names.insert(name, index);
        }
        let bytes = spec.estimate;
        state.models.push(Entry {
            spec,
            status: ModelStatus::Unloaded,
            backend: None,
            bytes,
            in_flight: 0,
            last_used: Instant::now(),
            request_keep_alive: None,
            expires_at: None,
            last_error: None,
            loads: 0,
            unloading: false,
            waiting: 0,
            removed: false,
        });
        Ok(())
    }

    /// Take a model out of the pool (Ollama's `/api/delete`): its names are free at once, so
    /// no new request gets it; a loaded copy is unloaded once the requests using it are done,
    /// and this resolves when it is out of memory. Its canonical id is returned.
    ///
    /// # Errors
    /// [`PoolError::NotFound`] when no model has that name.
    pub async fn deregister(&self, name: &str) -> Result<String, PoolError> {
        let (index, id) = {
            let mut state = self.lock();
            let index = *state.names.get(name).ok_or_else(|| PoolError::NotFound(name.into()))?;
            state.names.retain(|_, i| *i != index);
            let e = &mut state.models[index];
            e.removed = true;
            (index, e.spec.id.clone())
        };
        // A load in progress finishes first; then it is unloaded.
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().models[index].status != ModelStatus::Loading {
                break;
            }
            notified.await;
        }
        self.unload_index(index).await;
        Ok(id)
    }

    /// The canonical id of a model named by id or alias.
    ///
    /// # Errors
    /// [`PoolError::NotFound`].
    pub fn resolve(&self, name: &str) -> Result<String, PoolError> {
        let state = self.lock();
        state.names.get(name).map(|&i| state.models[i].spec.id.clone()).ok_or_else(|| PoolError::NotFound(name.into()))
    }

    /// Every model's state, in registration order.
    pub fn states(&self) -> Vec<ModelState> {
        let state = self.lock();
        let now = Instant::now();
        state
            .models
            .iter()
            .filter(|e| !e.removed)
            .map(|e| ModelState {
                id: e.spec.id.clone(),
                aliases: e.spec.aliases.clone(),
                source: e.spec.source.clone(),
                capabilities: e.spec.capabilities.clone(),
                status: e.status,
                bytes: e.bytes,
                pinned: e.spec.pinned,
                in_flight: e.in_flight,
                expires_at: e
                    .expires_at
                    .filter(|_| e.status == ModelStatus::Loaded)
                    .map(|at| SystemTime::now() + at.saturating_duration_since(now)),
                last_error: e.last_error.clone(),
                info: e.backend.as_ref().map(|b| b.info().clone()),
                facts: e.spec.facts.clone(),
            })
            .collect()
    }

    /// The loaded backend of a model, without taking a lease or loading it.
    pub fn loaded(&self, name: &str) -> Option<Arc<dyn Backend>> {
        let state = self.lock();
        state.names.get(name).and_then(|&i| state.models[i].backend.clone())
    }

    /// Every loaded backend.
    pub fn all_loaded(&self) -> Vec<Arc<dyn Backend>> {
        self.lock().models.iter().filter_map(|e| e.backend.clone()).collect()
    }

    /// Bytes the loaded (and loading, and unloading) models take.
    pub fn used_bytes(&self) -> u64 {
        used(&self.lock())
    }

    /// A lease on the model named `name`, loading it first if needed (one load however many
    /// requests wait for it), making room by unloading idle unpinned models, least recently
    /// used first. `keep_alive` is the request's own, applied when its lease ends.
    ///
    /// # Errors
    /// [`PoolError::NotFound`], [`PoolError::LoadFailed`] (the load this request waited
    /// for failed), [`PoolError::BlockedByPinned`], and [`PoolError::Busy`] when models with
    /// requests in flight still hold the room after the pool's `wait_timeout`.
    pub async fn acquire(&self, name: &str, keep_alive: Option<KeepAlive>) -> Result<Lease, PoolError> {
        let index = {
            let mut state = self.lock();
            let index = *state.names.get(name).ok_or_else(|| PoolError::NotFound(name.into()))?;
            state.models[index].waiting += 1;
            index
        };
        let _waiting = Waiting { pool: self, index };
        let deadline = tokio::time::Instant::now() + self.inner.config.wait_timeout;
        let mut waited_for: Option<u64> = None;
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Waiting on a load or an unload always ends with a notification; waiting for
            // requests in flight to end is bounded by the deadline.
            let mut bounded = false;
            {
                let mut state = self.lock();
                let e = &mut state.models[index];
                match e.status {
                    ModelStatus::Loaded if !e.unloading => {
                        e.in_flight += 1;
                        e.last_used = Instant::now();
                        e.expires_at = None;
                        let backend = e.backend.clone().expect("a loaded model has its backend");
                        return Ok(Lease { pool: self.inner.clone(), index, backend: Some(backend), keep_alive });
                    }
                    ModelStatus::Failed if waited_for.is_some_and(|n| n < e.loads) => {
                        return Err(PoolError::LoadFailed {
                            model: e.spec.id.clone(),
                            error: e.last_error.clone().unwrap_or_default(),
                        });
                    }
                    ModelStatus::Loading => waited_for = Some(e.loads),
                    ModelStatus::Loaded => {} // being unloaded: load it again once it is out
                    ModelStatus::Unloaded | ModelStatus::Failed => match self.make_room(&mut state, index) {
                        Room::Ready => {
                            waited_for = Some(state.models[index].loads);
                            self.start_load(&mut state, index);
                        }
                        Room::Freeing => {}
                        Room::Wait(busy) => {
                            if tokio::time::Instant::now() >= deadline {
                                let retry_after = self.inner.config.wait_timeout.as_secs().clamp(1, 30);
                                let model = state.models[index].spec.id.clone();
                                return Err(PoolError::Busy { model, busy, retry_after });
                            }
                            bounded = true;
                        }
                        Room::Never(err) => return Err(err),
                    },
                }
            }
            if bounded {
                let _ = tokio::time::timeout_at(deadline, notified).await;
            } else {
                notified.await;
            }
        }
    }

    /// Load a model now (`chorus models load`), keeping it `keep_alive` after (or its own).
    ///
    /// # Errors
    /// As [`ModelPool::acquire`].
    pub async fn load(&self, name: &str, keep_alive: Option<KeepAlive>) -> Result<(), PoolError> {
        drop(self.acquire(name, keep_alive).await?);
        Ok(())
    }

    /// Unload a model now, or as soon as its requests in flight end; false when it was not
    /// loaded.
    ///
    /// # Errors
    /// [`PoolError::NotFound`].
    pub async fn unload(&self, name: &str) -> Result<bool, PoolError> {
        let index = *self.lock().names.get(name).ok_or_else(|| PoolError::NotFound(name.into()))?;
        Ok(self.unload_index(index).await)
    }

    /// [`Self::unload`] of the model at `index`.
    async fn unload_index(&self, index: usize) -> bool {
        {
            let mut state = self.lock();
            let e = &mut state.models[index];
            if e.status != ModelStatus::Loaded {
                return false;
            }
            if e.in_flight > 0 {
                // The last lease unloads it.
                e.request_keep_alive = Some(KeepAlive::For(Duration::ZERO));
                e.expires_at = None;
            } else {
                self.start_unload(&mut state, index, UnloadReason::Requested);
            }
        }
        // Wait until it is out of memory.
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = self.lock();
                let e = &state.models[index];
                if e.status != ModelStatus::Loaded {
                    return true;
                }
            }
            notified.await;
        }
    }

    /// Unload every model (the server is stopping) and wait until they are out of memory.
    pub async fn shutdown(&self) {
        let backends: Vec<(String, Arc<dyn Backend>)> = {
            let mut state = self.lock();
            state
                .models
                .iter_mut()
                .filter_map(|e| {
                    e.status = ModelStatus::Unloaded;
                    e.backend.take().map(|b| (e.spec.id.clone(), b))
                })
                .collect()
        };
        for (model, backend) in backends {
            let _ = tokio::task::spawn_blocking(move || drop(backend)).await;
            let _ = self.inner.events.send(PoolEvent::Unloaded { model, reason: UnloadReason::Shutdown });
        }
    }

    fn keep_alive_of(&self, e: &Entry) -> KeepAlive {
        e.request_keep_alive
            .or(e.spec.keep_alive)
            .unwrap_or(self.inner.config.keep_alive)
            .capped(self.inner.config.keep_alive_max)
    }

    fn expiry(&self, e: &Entry) -> Option<Instant> {
        match self.keep_alive_of(e) {
            KeepAlive::For(d) if !e.spec.pinned => Some(Instant::now() + d),
            _ => None,
        }
    }

    fn make_room(&self, state: &mut State, index: usize) -> Room {
        let budget = self.inner.config.memory_budget;
        let need = state.models[index].bytes;
        let used = used(state);
        if used.saturating_add(need) <= budget {
            return Room::Ready;
        }
        if state.models.iter().any(|e| e.unloading) {
            // Memory is on its way back; look again when it is.
            return Room::Freeing;
        }
        let mut idle: Vec<usize> = (0..state.models.len())
            .filter(|&i| {
                let e = &state.models[i];
                i != index
                    && e.status == ModelStatus::Loaded
                    && e.in_flight == 0
                    && e.waiting == 0
                    && !e.spec.pinned
                    && !e.unloading
            })
            .collect();
        idle.sort_by_key(|&i| state.models[i].last_used);
        let mut freed = 0u64;
        let mut victims = Vec::new();
        for i in idle {
            if used - freed + need <= budget {
                break;
            }
            freed += state.models[i].bytes;
            victims.push(i);
        }
        if used - freed + need <= budget {
            for i in victims {
                self.start_unload(state, i, UnloadReason::Evicted);
            }
            return Room::Freeing;
        }
        // Not enough even with every idle model gone: in-flight models may finish, pinned ones never.
        let pinned: Vec<&Entry> =
            state.models.iter().filter(|e| e.spec.pinned && e.status == ModelStatus::Loaded).collect();
        let held: u64 = pinned.iter().map(|e| e.bytes).sum();
        if held + need > budget {
            return Room::Never(PoolError::BlockedByPinned {
                model: state.models[index].spec.id.clone(),
                need,
                pinned: pinned.iter().map(|e| e.spec.id.as_str()).collect::<Vec<_>>().join(", "),
                held,
                budget,
            });
        }
        let busy = state
            .models
            .iter()
            .filter(|e| e.in_flight > 0 || e.status == ModelStatus::Loading)
            .map(|e| e.spec.id.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Room::Wait(busy)
    }

    fn start_load(&self, state: &mut State, index: usize) {
        let e = &mut state.models[index];
        e.status = ModelStatus::Loading;
        e.last_error = None;
        let model = e.spec.id.clone();
        let loader = e.spec.loader.clone();
        let _ = self.inner.events.send(PoolEvent::Loading { model: model.clone() });
        tracing::info!(model, "loading the model");
        let pool = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            // A panic in a loader must not leave the model `loading` forever.
            let result = match tokio::spawn(loader.load()).await {
                Ok(r) => r,
                Err(e) => Err(format!("the loader failed: {e}")),
            };
            let seconds = started.elapsed().as_secs_f64();
            let mut state = pool.lock();
            let e = &mut state.models[index];
            e.loads += 1;
            let event = match result {
                Ok(backend) => {
                    if let n @ 1.. = backend.memory_bytes() {
                        e.bytes = n;
                    }
                    e.backend = Some(backend);
                    e.status = ModelStatus::Loaded;
                    e.last_used = Instant::now();
                    e.request_keep_alive = None;
                    e.expires_at = pool.expiry(e);
                    tracing::info!(model, bytes = e.bytes, seconds, "model loaded");
                    PoolEvent::Loaded { model, bytes: e.bytes, seconds, error: None }
                }
                Err(error) => {
                    tracing::error!(model, %error, "the model failed to load");
                    e.status = ModelStatus::Failed;
                    e.last_error = Some(error.clone());
                    PoolEvent::Loaded { model, bytes: 0, seconds, error: Some(error) }
                }
            };
            drop(state);
            let _ = pool.inner.events.send(event);
            pool.inner.changed.notify_waiters();
        });
    }

    /// Take the backend out and drop it on a blocking thread (a llama.cpp model thread is
    /// joined there); its memory counts until that is done.
    fn start_unload(&self, state: &mut State, index: usize, reason: UnloadReason) {
        let e = &mut state.models[index];
        if e.unloading {
            return;
        }
        let Some(backend) = e.backend.take() else { return };
        // Still `loaded` (its memory counts) until the backend is gone.
        e.unloading = true;
        e.expires_at = None;
        let model = e.spec.id.clone();
        tracing::info!(model, reason = reason.as_str(), "unloading the model");
        let pool = self.clone();
        tokio::spawn(async move {
            let _ = tokio::task::spawn_blocking(move || drop(backend)).await;
            {
                let mut state = pool.lock();
                let e = &mut state.models[index];
                e.status = ModelStatus::Unloaded;
                e.unloading = false;
                e.request_keep_alive = None;
            }
            tracing::info!(model, reason = reason.as_str(), "model unloaded");
            let _ = pool.inner.events.send(PoolEvent::Unloaded { model, reason });
            pool.inner.changed.notify_waiters();
        });
    }
}

/// Counts a request among a model's waiters for as long as `acquire` runs.
struct Waiting<'a> {
    pool: &'a ModelPool,
    index: usize,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        let e = &mut state.models[self.index];
        e.waiting = e.waiting.saturating_sub(1);
    }
}

enum Room {
    /// Load now.
    Ready,
    /// Unloads are under way; look again when they are done.
    Freeing,
    /// Models with requests in flight hold the room (their ids).
    Wait(String),
    /// It can never fit beside the pinned models.
    Never(PoolError),
}

fn used(state: &State) -> u64 {
    state
        .models
        .iter()
        .filter(|e| matches!(e.status, ModelStatus::Loaded | ModelStatus::Loading) || e.unloading)
        .map(|e| e.bytes)
        .sum()
}

/// Unload idle models whose keep_alive ran out. Looks at least once a second (a lease that
/// ends sets a new expiry), and ends with the pool.
async fn reaper(pool: std::sync::Weak<Inner>) {
    loop {
        let next = {
            let Some(inner) = pool.upgrade() else { return };
            let pool = ModelPool { inner };
            let mut state = pool.lock();
            let now = Instant::now();
            let expired: Vec<usize> = (0..state.models.len())
                .filter(|&i| {
                    let e = &state.models[i];
                    e.status == ModelStatus::Loaded
                        && e.in_flight == 0
                        && e.waiting == 0
                        && !e.unloading
                        && e.expires_at.is_some_and(|at| at <= now)
                })
                .collect();
            for i in expired {
                pool.start_unload(&mut state, i, UnloadReason::Expired);
            }
            state.models.iter().filter(|e| !e.unloading).filter_map(|e| e.expires_at).min()
        };
        let wait = next.map_or(Duration::from_secs(1), |at| at.saturating_duration_since(Instant::now()));
        tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::FutureExt;

    use super::*;
    use crate::{BackendError, BackendStats, GenerationStream, ValidGenerateRequest};

    struct Fake(ModelInfo);

    impl Backend for Fake {
        fn info(&self) -> &ModelInfo {
            &self.0
        }
        fn generate(&self, _: ValidGenerateRequest) -> Result<GenerationStream, BackendError> {
            Err(BackendError::Unavailable)
        }
        fn prompt_tokens(&self, _: &ValidGenerateRequest) -> Result<u32, BackendError> {
            Ok(0)
        }
        fn stats(&self) -> BackendStats {
            BackendStats::default()
        }
    }

    /// Counts its loads; takes `delay` to load; fails while `fail` is set.
    struct Loader {
        id: String,
        loads: AtomicUsize,
        delay: Duration,
        fail: std::sync::atomic::AtomicBool,
    }

    impl ModelLoader for Arc<Loader> {
        fn load(&self) -> BoxFuture<'static, Result<Arc<dyn Backend>, String>> {
            let this = Arc::clone(self);
            async move {
                tokio::time::sleep(this.delay).await;
                this.loads.fetch_add(1, Ordering::SeqCst);
                if this.fail.load(Ordering::SeqCst) {
                    return Err("no such file".to_owned());
                }
                Ok(Arc::new(Fake(ModelInfo::for_tests(&this.id, 8, 64))) as Arc<dyn Backend>)
            }
            .boxed()
        }
    }

    fn pool(budget: u64, wait: Duration) -> ModelPool {
        let config = PoolConfig { memory_budget: budget, wait_timeout: wait, ..PoolConfig::default() };
        ModelPool::new(config).0
    }

    fn add(pool: &ModelPool, id: &str, bytes: u64, pinned: bool) -> Arc<Loader> {
        let loader = Arc::new(Loader {
            id: id.to_owned(),
            loads: AtomicUsize::new(0),
            delay: Duration::from_millis(20),
            fail: false.into(),
        });
        let spec = ModelSpec {
            id: id.to_owned(),
            aliases: vec![format!("{id}-alias")],
            source: format!("{id}.gguf"),
            capabilities: vec!["chat".into()],
            keep_alive: None,
            pinned,
            estimate: bytes,
            facts: None,
            loader: Arc::new(Arc::clone(&loader)),
        };
        pool.register(spec).unwrap();
        loader
    }

    fn status(pool: &ModelPool, id: &str) -> ModelStatus {
        pool.states().into_iter().find(|m| m.id == id).unwrap().status
    }

    #[test]
    fn keep_alive_parses_ollamas_forms() {
        let secs = |s| KeepAlive::For(Duration::from_secs(s));
        assert_eq!(KeepAlive::parse("5m"), Ok(secs(300)));
        assert_eq!(KeepAlive::parse("1h30m"), Ok(secs(5400)));
        assert_eq!(KeepAlive::parse("45s"), Ok(secs(45)));
        assert_eq!(KeepAlive::parse("500ms"), Ok(KeepAlive::For(Duration::from_millis(500))));
        assert_eq!(KeepAlive::parse("0"), Ok(secs(0)));
        assert_eq!(KeepAlive::parse("120"), Ok(secs(120)));
        assert_eq!(KeepAlive::parse("-1"), Ok(KeepAlive::Forever));
        assert_eq!(KeepAlive::parse("-1m"), Ok(KeepAlive::Forever));
        for bad in ["", "soon", "5x", "m5", "-"] {
            assert!(KeepAlive::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(KeepAlive::Forever.capped(Some(Duration::from_secs(60))), secs(60));
        assert_eq!(secs(600).capped(Some(Duration::from_secs(60))), secs(60));
        assert_eq!(secs(6).capped(None), secs(6));
    }

    #[test]
    fn registration_refuses_duplicates_and_models_over_the_budget() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let p = pool(100, Duration::from_secs(1));
            add(&p, "a", 60, false);
            assert_eq!(p.resolve("a-alias"), Ok("a".to_owned()));
            let spec = |id: &str, estimate| ModelSpec {
                id: id.into(),
                aliases: vec![],
                source: String::new(),
                capabilities: vec![],
                keep_alive: None,
                pinned: false,
                estimate,
                facts: None,
                loader: Arc::new(Arc::new(Loader {
                    id: id.into(),
                    loads: AtomicUsize::new(0),
                    delay: Duration::ZERO,
                    fail: false.into(),
                })),
            };
            assert_eq!(p.register(spec("a-alias", 1)), Err(PoolError::Duplicate("a-alias".into())));
            assert!(matches!(p.register(spec("big", 101)), Err(PoolError::TooBig { need: 101, budget: 100, .. })));
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_requests_share_one_load_and_lru_makes_room() {
        let p = pool(100, Duration::from_secs(5));
        let a = add(&p, "a", 60, false);
        let b = add(&p, "b", 60, false);
        let leases = futures::future::join_all((0..4).map(|_| p.acquire("a", None))).await;
        assert!(leases.iter().all(Result::is_ok));
        assert_eq!(a.loads.load(Ordering::SeqCst), 1);
        drop(leases);
        // b needs a's room: a is idle, so it is unloaded first.
        let lease = p.acquire("b", None).await.unwrap();
        assert_eq!(lease.backend().info().id, "b");
        assert_eq!((status(&p, "a"), status(&p, "b")), (ModelStatus::Unloaded, ModelStatus::Loaded));
        assert!(p.used_bytes() <= 100);
        assert_eq!(b.loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_model_in_use_is_never_evicted_and_the_other_waits_then_is_busy() {
        let p = pool(100, Duration::from_millis(200));
        add(&p, "a", 60, false);
        add(&p, "b", 60, false);
        let held = p.acquire("a", None).await.unwrap();
        let err = p.acquire("b", None).await.unwrap_err();
        assert!(matches!(&err, PoolError::Busy { busy, retry_after: 1, .. } if busy == "a"), "{err:?}");
        assert_eq!(status(&p, "a"), ModelStatus::Loaded);
        // Once a's request ends, b gets the room.
        let waiter = {
            let p = p.clone();
            tokio::spawn(async move { p.acquire("b", None).await.map(|l| l.backend().info().id.clone()) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        assert_eq!(waiter.await.unwrap(), Ok("b".to_owned()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pinned_models_stay_and_block_at_once() {
        let p = pool(100, Duration::from_secs(30));
        add(&p, "a", 60, true);
        add(&p, "b", 60, false);
        p.load("a", Some(KeepAlive::For(Duration::ZERO))).await.unwrap();
        let started = Instant::now();
        let err = p.acquire("b", None).await.unwrap_err();
        assert!(matches!(&err, PoolError::BlockedByPinned { pinned, held: 60, .. } if pinned == "a"), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "refused without waiting out the timeout");
        assert_eq!(status(&p, "a"), ModelStatus::Loaded, "keep_alive 0 does not unload a pinned model");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keep_alive_zero_unloads_once_the_last_lease_ends() {
        let p = pool(100, Duration::from_secs(5));
        add(&p, "a", 10, false);
        let first = p.acquire("a", None).await.unwrap();
        let second = p.acquire("a", Some(KeepAlive::For(Duration::ZERO))).await.unwrap();
        drop(second);
        assert_eq!(status(&p, "a"), ModelStatus::Loaded, "a request is still in flight");
        drop(first);
        for _ in 0..100 {
            if status(&p, "a") == ModelStatus::Unloaded {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not unloaded");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_load_reaches_its_waiters_and_the_next_request_tries_again() {
        let p = pool(100, Duration::from_secs(5));
        let a = add(&p, "a", 10, false);
        a.fail.store(true, Ordering::SeqCst);
        let results = futures::future::join_all((0..3).map(|_| p.acquire("a", None))).await;
        for r in &results {
            assert!(matches!(r, Err(PoolError::LoadFailed { error, .. }) if error == "no such file"), "{r:?}");
        }
        assert_eq!(a.loads.load(Ordering::SeqCst), 1, "the waiters shared the load");
        assert_eq!(status(&p, "a"), ModelStatus::Failed);
        a.fail.store(false, Ordering::SeqCst);
        assert!(p.acquire("a", None).await.is_ok());
        assert_eq!(status(&p, "a"), ModelStatus::Loaded);
    }
}
