//! [`Engine`]: the handle every front end (HTTP server, embedded CLI) drives.
//! It resolves the model a request names, validates the request, hands it to
//! the model's [`Backend`] and reports health and metrics. Its session
//! methods live in [`crate::session`].

use std::sync::Arc;
use std::time::Instant;

use crate::events::EventBus;
use crate::session::{SessionTable, SessionsConfig};
use crate::store::{SessionStatus, SessionUpdate, Store, StoreError};
use crate::tools::ToolCallParser;
use crate::{
    Backend, BackendError, BackendStats, GenerateRequest, GenerationStream, Metrics, ModelInfo, ValidationError,
};

/// Cheap to clone; all clones share one backend.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    started: Instant,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) bus: EventBus,
    pub(crate) sessions: SessionTable,
    pub(crate) sessions_config: SessionsConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("model", &self.inner.backend.info().id).finish()
    }
}

/// Why the engine refused or failed a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    /// The request names a model that is not loaded.
    #[error("the model `{0}` does not exist")]
    ModelNotFound(String),
    /// A field is out of range.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The backend refused or failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl Engine {
    /// An engine over one loaded model (`metrics` must be the registry its
    /// backend records into) and a store for sessions and events.
    ///
    /// Sessions left `busy` by a server that stopped mid-answer are marked `error`.
    ///
    /// # Errors
    /// The store's error reading the event log's position or the sessions.
    pub async fn start(
        backend: Arc<dyn Backend>,
        metrics: Arc<Metrics>,
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
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                metrics,
                started: Instant::now(),
                store,
                bus,
                sessions: SessionTable::default(),
                sessions_config,
            }),
        })
    }

    /// The loaded models.
    pub fn models(&self) -> Vec<ModelInfo> {
        vec![self.inner.backend.info().clone()]
    }

    /// The model a request names; `None` means the default (the loaded model).
    ///
    /// # Errors
    /// [`EngineError::ModelNotFound`] when no loaded model has that id.
    pub fn model(&self, id: Option<&str>) -> Result<&ModelInfo, EngineError> {
        let info = self.inner.backend.info();
        match id {
            None => Ok(info),
            Some(id) if id == info.id => Ok(info),
            Some(id) => Err(EngineError::ModelNotFound(id.to_owned())),
        }
    }

    /// Validate and schedule a request on the model named `model`.
    ///
    /// # Errors
    /// [`EngineError`]: unknown model, invalid field, or the backend's refusal.
    pub fn generate(&self, model: Option<&str>, request: GenerateRequest) -> Result<GenerationStream, EngineError> {
        let info = self.model(model)?;
        // Calls are parsed for the tools the request offers.
        let parser = request.parses_tool_calls().then(|| ToolCallParser::new(info.tool_format, &request.tools));
        let valid = request.validate(info)?;
        let stream = self.inner.backend.generate(valid)?;
        Ok(match parser {
            Some(parser) => stream.with_parser(parser),
            None => stream,
        })
    }

    /// The tokens `request`'s prompt takes on the model named `model` (validated and rendered
    /// as [`Engine::generate`] would); nothing is generated.
    ///
    /// # Errors
    /// [`EngineError`]: unknown model, invalid field, or the template's refusal.
    pub fn prompt_tokens(&self, model: Option<&str>, request: GenerateRequest) -> Result<u32, EngineError> {
        let info = self.model(model)?;
        Ok(self.inner.backend.prompt_tokens(&request.validate(info)?)?)
    }

    /// Scheduler statistics of the loaded model.
    pub fn stats(&self) -> BackendStats {
        self.inner.backend.stats()
    }

    /// Run a llama-server slot action on the loaded model's slot `id_slot`.
    ///
    /// # Errors
    /// [`EngineError::Backend`]: see [`Backend::slot_action`].
    pub async fn slot_action(
        &self,
        id_slot: u32,
        action: crate::backend::SlotAction,
    ) -> Result<crate::backend::SlotActionResult, EngineError> {
        let reply = self.inner.backend.slot_action(id_slot, action)?;
        Ok(reply.await.map_err(|_| BackendError::Unavailable)??)
    }

    /// Forget the cached states kept under `prompt_cache_key`.
    pub(crate) fn forget_cache(&self, prompt_cache_key: &str) {
        self.inner.backend.forget(prompt_cache_key);
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
