//! The domain of chorus: the [`Engine`] handle that the server, the CLI's
//! embedded mode and (later) sessions call; the [`Backend`] trait that model
//! runtimes implement; the request stages ([`GenerateRequest`] →
//! [`ValidGenerateRequest`]); streaming text handling ([`text`]); metrics; and the
//! [`Store`] trait with the session records it keeps.
//!
//! This crate knows neither HTTP nor llama.cpp: both sit behind traits or
//! plain types, so the domain can be tested and reused without either.

mod agent;
pub mod backend;
pub mod character;
mod compact;
pub mod embed;
pub mod engine;
pub mod error;
pub mod events;
pub mod metrics;
pub mod pool;
pub mod pull;
pub mod request;
pub mod route;
pub mod session;
pub mod store;
pub mod stream;
pub mod text;
pub mod tools;
pub mod wire;

pub use backend::{
    Backend, BackendError, BackendStats, CacheStats, ModelFacts, ModelInfo, Serves, SlotAction, SlotActionResult,
    SlotStats, Token,
};
pub use embed::{EmbedRequest, EmbeddingInput, Embeddings};
pub use engine::{Engine, EngineError};
pub use error::{ErrorClass, PublicError};
pub use events::{EventBus, EventFilter, LoggedEvent};
pub use metrics::Metrics;
pub use pool::{KeepAlive, Lease, ModelLoader, ModelPool, ModelSpec, ModelState, ModelStatus, PoolConfig, PoolError};
pub use pull::{ModelPuller, PullError, PullStage, PullUpdate};
pub use request::{
    ChatEnding, ChatMessage, GenerateRequest, InfillChunk, MAX_CHOICES, Prompt, Role, SamplerKind, SamplingParams,
    ValidGenerateRequest, ValidationError,
};
pub use route::{CategoryConfig, RouteDecision, RouteInput, RouteStage, Router, RouterConfig, RouterError};
pub use session::{
    Agent, Priority, PromptOptions, PromptOutcome, PromptTicket, SessionError, SessionsConfig, device_session_id,
};
pub use store::{
    Message, NewEvent, NewMessage, NewSession, Session, SessionId, SessionStatus, SessionUpdate, Store, StoreError,
    StoredEvent, TokenUsage, ToolCall,
};
pub use stream::{
    Completion, Detail, FinishReason, GenerationEvent, GenerationStream, SampledToken, TokenLogprobs, TopLogprob, Usage,
};
pub use tools::{FunctionDefinition, ResponseFormat, ToolChoice, ToolFormat};
