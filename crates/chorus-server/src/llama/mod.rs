//! llama-server's native endpoints that its clients use besides the OpenAI ones, with its
//! field names (llama.cpp `tools/server/README.md`, "API Endpoints"): `POST /completion`
//! and `POST /infill` ([`completion`]), `POST /embedding` and `/embeddings` ([`embedding`]), `POST /tokenize`, `POST /detokenize`, `POST /apply-template`,
//! `POST /v1/chat/completions/input_tokens` and `GET /props`. They answer for the server's
//! default model unless the body names another (`model`, a chorus addition). The slot
//! actions are in `crate::slots`.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chorus_engine::{ModelInfo, SamplingParams};
use chorus_proto::llama::{
    ApplyTemplateResponse, DetokenizeRequest, DetokenizeResponse, GenerationSettings, InputTokens, Modalities, Piece,
    Props, SamplingSettings, TokenizeRequest, TokenizeResponse, TokenizedToken,
};
use chorus_proto::openai::{ChatCompletionRequest, ErrorResponse};
use utoipa::OpenApi;

mod completion;
pub(crate) mod embedding;

use crate::extract::AppJson;
use crate::openai::chat_plan;
use crate::{ApiError, AppState};

/// The OpenAPI description of [`routes`].
#[derive(OpenApi)]
#[openapi(paths(
    completion::create,
    completion::infill,
    embedding::create,
    tokenize,
    detokenize,
    apply_template,
    input_tokens,
    props
))]
pub(crate) struct ApiDoc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/completion", post(completion::create))
        .route("/infill", post(completion::infill))
        .route("/embedding", post(embedding::create))
        .route("/embeddings", post(embedding::create))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/apply-template", post(apply_template))
        .route("/v1/chat/completions/input_tokens", post(input_tokens))
        .route("/chat/completions/input_tokens", post(input_tokens))
        .route("/props", get(props))
}

/// Tokenize a text (llama-server)
///
/// The model's tokens for `content`: bare ids, or with `with_pieces` `{id, piece}` objects
/// whose piece is a string, or its bytes when they are not valid UTF-8 on their own.
#[utoipa::path(
    post,
    path = "/tokenize",
    operation_id = "tokenize",
    tag = "llama",
    request_body = TokenizeRequest,
    responses(
        (status = 200, description = "The tokens", body = TokenizeResponse),
        (status = 400, description = "Malformed JSON or a missing `content`", body = ErrorResponse),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
    )
)]
pub(crate) async fn tokenize(
    State(state): State<AppState>,
    AppJson(req): AppJson<TokenizeRequest>,
) -> Result<Json<TokenizeResponse>, ApiError> {
    let tokens = state.engine.tokenize(req.model.as_deref(), &req.content, req.add_special, req.parse_special).await?;
    let tokens = tokens
        .into_iter()
        .map(|t| match req.with_pieces {
            false => TokenizedToken::Id(t.id),
            true => TokenizedToken::WithPiece {
                id: t.id,
                piece: match String::from_utf8(t.piece) {
                    Ok(text) => Piece::Text(text),
                    Err(e) => Piece::Bytes(e.into_bytes()),
                },
            },
        })
        .collect();
    Ok(Json(TokenizeResponse { tokens }))
}

/// Detokenize tokens (llama-server)
///
/// The text of `tokens`; special tokens are written as their text.
#[utoipa::path(
    post,
    path = "/detokenize",
    operation_id = "detokenize",
    tag = "llama",
    request_body = DetokenizeRequest,
    responses(
        (status = 200, description = "The text", body = DetokenizeResponse),
        (status = 400, description = "Malformed JSON, or a token id outside the vocabulary", body = ErrorResponse),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
    )
)]
pub(crate) async fn detokenize(
    State(state): State<AppState>,
    AppJson(req): AppJson<DetokenizeRequest>,
) -> Result<Json<DetokenizeResponse>, ApiError> {
    let content = state.engine.detokenize(req.model.as_deref(), &req.tokens).await?;
    Ok(Json(DetokenizeResponse { content }))
}

/// Render a conversation with the chat template (llama-server)
///
/// The prompt the model's chat template makes of a chat completion request's `messages` and
/// `tools`, the generation prompt added, as `/v1/chat/completions` would render it; nothing is
/// generated. The prompt can be edited and sent to `/v1/completions`.
#[utoipa::path(
    post,
    path = "/apply-template",
    operation_id = "applyTemplate",
    tag = "llama",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The rendered prompt", body = ApplyTemplateResponse),
        (status = 400, description = "Invalid messages or tools, a model without a chat template, or the \
            template's own refusal", body = ErrorResponse),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
    )
)]
pub(crate) async fn apply_template(
    State(state): State<AppState>,
    AppJson(req): AppJson<ChatCompletionRequest>,
) -> Result<Json<ApplyTemplateResponse>, ApiError> {
    let plan = chat_plan(req, &state.config)?;
    let prompt = state.engine.apply_template(plan.model.as_deref(), plan.request).await?;
    Ok(Json(ApplyTemplateResponse { prompt }))
}

/// Count a chat request's prompt tokens (llama-server)
///
/// The tokens a chat completion request's prompt takes on its model (`messages` and `tools`
/// rendered by the chat template, as `/v1/chat/completions` renders them); nothing is
/// generated. Also served without `/v1`.
#[utoipa::path(
    post,
    path = "/v1/chat/completions/input_tokens",
    operation_id = "countChatInputTokens",
    tag = "llama",
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The count", body = InputTokens),
        (status = 400, description = "Invalid messages or tools, or a model without a chat template", body = ErrorResponse),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
    )
)]
pub(crate) async fn input_tokens(
    State(state): State<AppState>,
    AppJson(req): AppJson<ChatCompletionRequest>,
) -> Result<Json<InputTokens>, ApiError> {
    let plan = chat_plan(req, &state.config)?;
    let lease = state.engine.lease(plan.model.as_deref(), None).await?;
    let input_tokens = chorus_engine::Engine::prompt_tokens(&lease, plan.request)?;
    Ok(Json(InputTokens { object: "response.input_tokens".into(), input_tokens }))
}

/// Server properties (llama-server)
///
/// The default model's slots, context per slot, sampling defaults, file and chat template.
#[utoipa::path(
    get,
    path = "/props",
    operation_id = "getProps",
    tag = "llama",
    responses(
        (status = 200, description = "The properties", body = Props),
        (status = 503, description = "No default model is loaded", body = ErrorResponse),
    )
)]
pub(crate) async fn props(State(state): State<AppState>) -> Result<Json<Props>, ApiError> {
    // The default model is loaded at start and while it is unloaded (idle) its props are not known.
    let info = state.engine.default_info().ok_or_else(ApiError::unavailable)?;
    let stats = state.engine.stats();
    Ok(Json(props_of(&info, stats.slots_busy > 0, &state.config)))
}

fn props_of(info: &ModelInfo, is_processing: bool, config: &crate::ServerConfig) -> Props {
    Props {
        default_generation_settings: GenerationSettings {
            n_ctx: info.n_ctx_slot,
            is_processing,
            params: sampling_settings(&config.sampling, config.n_predict, &[]),
        },
        total_slots: info.n_parallel,
        model_path: info.path.display().to_string(),
        model_alias: info.id.clone(),
        chat_template: info.chat_template.clone().unwrap_or_default(),
        modalities: Modalities { vision: false, audio: false },
        build_info: format!("chorus-{}", env!("CARGO_PKG_VERSION")),
        is_sleeping: false,
    }
}

/// `params` as llama-server reports them: `n_predict` -1 without a limit, `seed`
/// 4294967295 (`LLAMA_DEFAULT_SEED`) for a random one.
pub(crate) fn sampling_settings(s: &SamplingParams, n_predict: Option<u32>, stop: &[String]) -> SamplingSettings {
    SamplingSettings {
        n_predict: n_predict.map_or(-1, i64::from),
        seed: s.seed.unwrap_or(u32::MAX),
        temperature: s.temperature,
        top_k: s.top_k,
        top_p: s.top_p,
        min_p: s.min_p,
        repeat_last_n: s.penalty_last_n,
        repeat_penalty: s.repeat_penalty,
        presence_penalty: s.presence_penalty,
        frequency_penalty: s.frequency_penalty,
        stop: stop.to_vec(),
        ignore_eos: s.ignore_eos,
    }
}
