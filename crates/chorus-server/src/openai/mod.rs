//! The OpenAI-compatible routes under `/v1` (and without it, as llama-server serves them): chat
//! completions, completions, embeddings and models. Conversion from wire types to the engine's request type is in
//! [`convert`]; response shaping is in each route's module.

mod chat;
mod completions;
pub(crate) mod convert;
mod embeddings;
mod models;

pub(crate) use chat::usage_wire;
pub(crate) use convert::{chat as chat_plan, keep_alive, max_tokens, messages, tool_choice};

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{get, post};
use utoipa::OpenApi;

use crate::AppState;

/// The OpenAPI description of [`routes`], merged into the server's document by `crate::openapi`.
#[derive(OpenApi)]
#[openapi(paths(chat::create, completions::create, embeddings::create, models::list, models::retrieve))]
pub(crate) struct ApiDoc;

/// The routes, under `/v1` and, as llama-server also serves them, without it (`/chat/completions`,
/// `/completions`, `/embeddings`, `/models`): llama.cpp's own server tests and some clients call
/// them so.
pub(crate) fn routes() -> Router<AppState> {
    // `/embeddings` without `/v1` is llama-server's native one (`crate::llama`), as there.
    let mut router = Router::new().route("/v1/embeddings", post(embeddings::create));
    for prefix in ["/v1", ""] {
        router = router
            .route(&format!("{prefix}/chat/completions"), post(chat::create))
            .route(&format!("{prefix}/completions"), post(completions::create))
            .route(&format!("{prefix}/models"), get(models::list))
            .route(&format!("{prefix}/models/{{id}}"), get(models::retrieve));
    }
    router
}

/// OpenAI's `logprobs` of a choice from the sampled tokens: `None` when none carries them
/// (the request did not ask).
pub(crate) fn logprobs_wire(tokens: &[chorus_engine::SampledToken]) -> Option<chorus_proto::openai::ChoiceLogprobs> {
    use chorus_proto::openai::{ChoiceLogprobs, TokenLogprob, TopLogprob};
    let text = |piece: &[u8]| String::from_utf8_lossy(piece).into_owned();
    let content = tokens
        .iter()
        .filter_map(|t| {
            let lp = t.logprobs.as_ref()?;
            Some(TokenLogprob {
                token: text(&t.piece),
                logprob: f64::from(lp.logprob),
                bytes: Some(t.piece.clone()),
                top_logprobs: lp
                    .top
                    .iter()
                    .map(|a| TopLogprob {
                        token: text(&a.piece),
                        logprob: f64::from(a.logprob),
                        bytes: Some(a.piece.clone()),
                    })
                    .collect(),
            })
        })
        .collect::<Vec<_>>();
    (!content.is_empty()).then_some(ChoiceLogprobs { content: Some(content), refusal: None })
}

/// llama-server's `timings` of a generation.
pub(crate) fn timings_wire(u: &chorus_engine::Usage) -> chorus_proto::llama::Timings {
    chorus_proto::llama::Timings::new(
        u.cached_tokens,
        u.prompt_tokens.saturating_sub(u.cached_tokens),
        u.prompt_ms,
        u.completion_tokens,
        u.predicted_ms,
    )
}

/// Unix time in seconds, for `created`.
fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `system_fingerprint`: changes when the server version or the model changes.
fn fingerprint(model: &str) -> String {
    format!("chorus-{}-{model}", env!("CARGO_PKG_VERSION"))
}

/// What every response and chunk of one request repeats: `id`, `created`,
/// `model` and `system_fingerprint`.
struct ResponseMeta {
    id: String,
    created: u64,
    model: String,
    fingerprint: String,
}

impl ResponseMeta {
    /// A fresh id with OpenAI's prefix (`chatcmpl`, `cmpl`), created now.
    fn new(prefix: &str, model: String) -> Self {
        Self {
            id: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
            created: unix_now(),
            fingerprint: fingerprint(&model),
            model,
        }
    }
}
