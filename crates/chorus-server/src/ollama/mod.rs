//! Ollama's API (Ollama `docs/api.md`), so Ollama's clients (its Python and JavaScript
//! libraries, Open WebUI, editors' plugins) use chorus as they use Ollama: `GET /api/version`,
//! `GET /api/tags`, `POST /api/show`, `GET /api/ps`, `DELETE /api/delete`, `POST /api/copy`
//! and `POST /api/pull` here; `POST /api/chat`, `POST /api/generate`, `POST /api/embed` and
//! `POST /api/embeddings` in [`chat`]. Wire types are `chorus_proto::ollama`.
//!
//! Names: Ollama's are `NAME:TAG`; a chorus id without a tag is listed as `ID:latest`, and a
//! name ending in `:latest` reaches the id without it. Errors are Ollama's `{"error": "…"}`
//! ([`OllamaError`]) with the status the OpenAI routes give, including for malformed JSON.
//! [`ollama_port_app`] is the `--ollama-port` listener: these routes, the OpenAI ones (Ollama
//! serves `/v1` too) and `GET /` answering `Ollama is running`, which clients probe.

mod chat;

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chorus_engine::{ModelState, ModelStatus, PullError, PullStage, PullUpdate};
use chorus_proto::ollama::{
    CopyRequest, ErrorResponse, ListModel, ListResponse, ModelDetails, ModelRequest, ProcessResponse, ProgressResponse,
    RunningModel, ShowResponse, Version,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use utoipa::OpenApi;

use crate::{ApiError, AppState};

/// The Ollama API version these routes follow, answered by `GET /api/version`.
pub(crate) const OLLAMA_VERSION: &str = "0.13.0";

/// The OpenAPI description of [`routes`].
#[derive(OpenApi)]
#[openapi(paths(
    version,
    tags,
    show,
    ps,
    pull,
    remove,
    copy,
    chat::chat,
    chat::generate,
    chat::embed,
    chat::embeddings
))]
pub(crate) struct ApiDoc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/version", get(version))
        .route("/api/tags", get(tags))
        .route("/api/show", post(show))
        .route("/api/ps", get(ps))
        .route("/api/pull", post(pull))
        .route("/api/delete", delete(remove))
        .route("/api/copy", post(copy))
        .route("/api/chat", post(chat::chat))
        .route("/api/generate", post(chat::generate))
        .route("/api/embed", post(chat::embed))
        .route("/api/embeddings", post(chat::embeddings))
}

/// The `--ollama-port` server (Ollama's own port is 11434): the Ollama routes, the OpenAI
/// routes, and `GET /` answering `Ollama is running`, behind the same API key as the main
/// port.
pub fn ollama_port_app(state: AppState) -> Router {
    Router::new()
        .merge(routes())
        .merge(crate::openai::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), crate::auth::require_key))
        .route("/", get(running).head(running))
        .fallback(crate::error::not_found)
        .with_state(state)
}

async fn running() -> &'static str {
    "Ollama is running"
}

/// An error in Ollama's shape, `{"error": "…"}`, with the status of the [`ApiError`] it wraps.
#[derive(Debug)]
pub(crate) struct OllamaError(ApiError);

impl OllamaError {
    /// 400 with `message`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self(ApiError::invalid(None, message))
    }

    /// 404 for a model name no model has, in Ollama's words.
    pub(crate) fn model_not_found(name: &str) -> Self {
        Self(ApiError::not_found("model", format!("model \"{name}\" not found, try pulling it first")))
    }

    /// The message a stream's error line carries.
    pub(crate) fn message(&self) -> String {
        self.0.body().error.message
    }
}

impl<E: Into<ApiError>> From<E> for OllamaError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        let mut response = (self.0.status(), Json(ErrorResponse { error: self.message() })).into_response();
        if let Some(seconds) = self.0.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// A body as `T`, or Ollama's 400 for malformed JSON or a bad field.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, OllamaError> {
    crate::extract::parse(body).map_err(OllamaError)
}

/// The Ollama name of a chorus id: `ID:latest` unless its last path segment has a tag.
pub(crate) fn ollama_name(id: &str) -> String {
    let last = id.rsplit('/').next().unwrap_or(id);
    if last.contains(':') { id.to_owned() } else { format!("{id}:latest") }
}

/// The chorus id an Ollama name reaches: the name itself (an id or alias), else without
/// `:latest`.
pub(crate) fn resolve(state: &AppState, name: &str) -> Result<String, OllamaError> {
    if name.is_empty() {
        return Err(OllamaError::invalid("model is required"));
    }
    let engine = &state.engine;
    engine
        .resolve(Some(name))
        .or_else(|e| match name.strip_suffix(":latest") {
            Some(bare) => engine.resolve(Some(bare)),
            None => Err(e),
        })
        .map_err(|_| OllamaError::model_not_found(name))
}

/// RFC 3339 with nanoseconds, as Ollama writes times.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    chrono::DateTime::<chrono::Utc>::from_timestamp(d.as_secs() as i64, d.subsec_nanos())
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Ollama's `parameter_size`: `494.03M`, `7.62B`.
fn parameter_size(n: u64) -> String {
    match n {
        0 => String::new(),
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.2}M", n as f64 / 1e6),
        n => format!("{:.2}K", n as f64 / 1e3),
    }
}

/// A model's `details`, from its file's facts (and its loaded parameter count).
fn details(m: &ModelState) -> ModelDetails {
    let facts = m.facts.as_deref();
    let family = facts
        .map(|f| f.architecture.clone())
        .or_else(|| m.info.as_ref().map(|i| i.architecture.clone()))
        .unwrap_or_default();
    let params = facts.and_then(|f| f.parameter_count).or_else(|| m.info.as_ref().map(|i| i.n_params)).unwrap_or(0);
    ModelDetails {
        parent_model: String::new(),
        format: facts.map_or_else(|| "gguf".to_owned(), |f| f.format.clone()),
        families: (!family.is_empty()).then(|| vec![family.clone()]),
        family,
        parameter_size: parameter_size(params),
        quantization_level: facts.and_then(|f| f.quantization.clone()).unwrap_or_default(),
    }
}

/// The file's size: what its facts say, else the loaded model's.
fn size(m: &ModelState) -> u64 {
    m.facts.as_deref().map(|f| f.size).filter(|s| *s > 0).or_else(|| m.info.as_ref().map(|i| i.size)).unwrap_or(0)
}

fn modified(m: &ModelState) -> SystemTime {
    m.facts.as_deref().and_then(|f| f.modified).unwrap_or(UNIX_EPOCH)
}

/// A SHA-256 naming the registration: id, source, size and modification time.
fn digest(m: &ModelState) -> String {
    let stamp = modified(m).duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
    let text = format!("{}\n{}\n{}\n{stamp}", m.id, m.source, size(m));
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Ollama's capabilities of a model: `completion` (it generates), `tools` (its chat template
/// takes tools), `insert` (fill-in-the-middle), `embedding`.
fn capabilities(m: &ModelState) -> Vec<String> {
    let has = |c: &str| m.capabilities.iter().any(|x| x == c);
    let mut out = Vec::new();
    if has("chat") || has("completion") {
        out.push("completion".to_owned());
    }
    let template = m.facts.as_deref().and_then(|f| f.chat_template.as_deref()).unwrap_or_default();
    if has("chat") && template.contains("tools") {
        out.push("tools".to_owned());
    }
    if has("code") {
        out.push("insert".to_owned());
    }
    if has("embedding") {
        out.push("embedding".to_owned());
    }
    out
}

/// The Ollama API version
#[utoipa::path(
    get,
    path = "/api/version",
    operation_id = "ollamaVersion",
    tag = "ollama",
    responses((status = 200, description = "The Ollama API version these routes follow", body = Version))
)]
async fn version() -> Json<Version> {
    Json(Version { version: OLLAMA_VERSION.to_owned() })
}

/// List the models (Ollama)
///
/// Every model the server answers with, loaded or not, by its Ollama name.
#[utoipa::path(
    get,
    path = "/api/tags",
    operation_id = "ollamaTags",
    tag = "ollama",
    responses((status = 200, description = "The models", body = ListResponse))
)]
async fn tags(State(state): State<AppState>) -> Json<ListResponse> {
    let models = state
        .engine
        .models()
        .iter()
        .map(|m| ListModel {
            name: ollama_name(&m.id),
            model: ollama_name(&m.id),
            modified_at: rfc3339(modified(m)),
            size: size(m),
            digest: digest(m),
            details: details(m),
        })
        .collect();
    Json(ListResponse { models })
}

/// The name of a [`ModelRequest`].
fn requested(req: &ModelRequest) -> Result<&str, OllamaError> {
    req.model
        .as_deref()
        .or(req.name.as_deref())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| OllamaError::invalid("model is required"))
}

/// Show a model (Ollama)
///
/// Its Modelfile, default parameters, chat template, details, GGUF metadata and capabilities.
#[utoipa::path(
    post,
    path = "/api/show",
    operation_id = "ollamaShow",
    tag = "ollama",
    request_body = ModelRequest,
    responses(
        (status = 200, description = "The model", body = ShowResponse),
        (status = 400, description = "Malformed JSON or no `model`", body = ErrorResponse),
        (status = 404, description = "No such model", body = ErrorResponse),
    )
)]
async fn show(State(state): State<AppState>, body: Bytes) -> Result<Json<ShowResponse>, OllamaError> {
    let req: ModelRequest = parse(&body)?;
    let name = requested(&req)?;
    let id = resolve(&state, name)?;
    let m = state.engine.models().into_iter().find(|m| m.id == id).ok_or_else(|| OllamaError::model_not_found(name))?;
    let s = &state.config.sampling;
    let mut parameters = format!(
        "temperature {}\ntop_k {}\ntop_p {}\nmin_p {}\nrepeat_penalty {}\nrepeat_last_n {}",
        s.temperature, s.top_k, s.top_p, s.min_p, s.repeat_penalty, s.penalty_last_n
    );
    if let Some(n) = state.config.n_predict {
        parameters.push_str(&format!("\nnum_predict {n}"));
    }
    let facts = m.facts.as_deref();
    let template = facts.and_then(|f| f.chat_template.clone()).unwrap_or_default();
    let mut modelfile = format!("# Modelfile of `{}`, served by chorus\nFROM {}\n", m.id, m.source);
    for line in parameters.lines() {
        modelfile.push_str(&format!("PARAMETER {line}\n"));
    }
    let mut model_info = serde_json::Map::new();
    for (key, value) in facts.map(|f| f.metadata.as_slice()).unwrap_or_default() {
        // Numbers and booleans as JSON values, as Ollama gives them; the rest as strings.
        let json = match serde_json::from_str::<serde_json::Value>(value) {
            Ok(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => v,
            _ => serde_json::Value::String(value.clone()),
        };
        model_info.insert(key.clone(), json);
    }
    Ok(Json(ShowResponse {
        modelfile,
        parameters,
        template,
        details: details(&m),
        model_info,
        capabilities: capabilities(&m),
        modified_at: rfc3339(modified(&m)),
    }))
}

/// The loaded models (Ollama)
#[utoipa::path(
    get,
    path = "/api/ps",
    operation_id = "ollamaPs",
    tag = "ollama",
    responses((status = 200, description = "The models in memory", body = ProcessResponse))
)]
async fn ps(State(state): State<AppState>) -> Json<ProcessResponse> {
    // A model that stays loaded (no keep_alive expiry) is shown as Ollama shows one: far ahead.
    let forever = SystemTime::now() + std::time::Duration::from_secs(100 * 365 * 24 * 3600);
    let models = state
        .engine
        .models()
        .iter()
        .filter(|m| m.status == ModelStatus::Loaded)
        .map(|m| RunningModel {
            name: ollama_name(&m.id),
            model: ollama_name(&m.id),
            size: m.bytes,
            digest: digest(m),
            details: details(m),
            expires_at: rfc3339(m.expires_at.unwrap_or(forever)),
            size_vram: 0,
            context_length: m.info.as_ref().map_or(0, |i| i.n_ctx_slot),
        })
        .collect();
    Json(ProcessResponse { models })
}

/// One progress line of a pull.
fn progress_line(update: &PullUpdate) -> ProgressResponse {
    match update.stage {
        PullStage::Downloading => {
            let digest = update.digest.clone();
            let short = digest.as_deref().map(|d| d.trim_start_matches("sha256:")).unwrap_or("model");
            ProgressResponse {
                status: format!("pulling {}", short.get(..12).unwrap_or(short)),
                digest,
                total: update.total,
                completed: Some(update.completed),
            }
        }
        PullStage::Verifying => status(update.verifying_status()),
    }
}

fn status(text: &str) -> ProgressResponse {
    ProgressResponse { status: text.to_owned(), digest: None, total: None, completed: None }
}

/// An NDJSON line.
pub(crate) fn line<T: serde::Serialize>(value: &T) -> Bytes {
    let mut text = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    text.push(b'\n');
    Bytes::from(text)
}

/// An NDJSON response of `lines`.
pub(crate) fn ndjson(lines: impl futures::Stream<Item = Bytes> + Send + 'static) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(lines.map(Ok::<_, std::convert::Infallible>)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Pull a model (Ollama)
///
/// `model` is `hf.co/OWNER/REPO[:QUANT]` (the repository's GGUF file of that quantization,
/// default `Q4_K_M`) or `hf:OWNER/REPO/FILE.gguf`; it is downloaded from the Hugging Face hub
/// (resuming a download that broke off) and served under that name. Streamed (the default):
/// NDJSON lines `pulling manifest`, `pulling DIGEST` with `digest`, `total` and `completed`,
/// `verifying sha256 digest` (`verifying size` when the hub names no digest), `writing manifest`, `success`; a failure is an `{"error"}` line.
/// With `stream: false`: one `{"status": "success"}`.
#[utoipa::path(
    post,
    path = "/api/pull",
    operation_id = "ollamaPull",
    tag = "ollama",
    request_body = ModelRequest,
    responses(
        (status = 200, description = "Progress lines (NDJSON), or the outcome", body = ProgressResponse, content_type = "application/x-ndjson"),
        (status = 400, description = "A name that cannot be pulled, or no such file in the repository", body = ErrorResponse),
        (status = 409, description = "The name is taken by another model", body = ErrorResponse),
        (status = 501, description = "This server cannot pull models", body = ErrorResponse),
    )
)]
async fn pull(State(state): State<AppState>, body: Bytes) -> Result<Response, OllamaError> {
    let req: ModelRequest = parse(&body)?;
    let name = requested(&req)?.to_owned();
    let (sender, mut updates) = mpsc::unbounded_channel();
    let mut task = tokio::spawn(state.engine.pull_model(name, None, sender));
    // A refusal comes before any progress: answer it with its status.
    let (first, finished) = tokio::select! {
        biased;
        Some(update) = updates.recv() => (Some(update), None),
        result = &mut task => match result {
            Ok(Err(e @ (PullError::NotSupported | PullError::Invalid { .. } | PullError::Conflict(_)))) => {
                return Err(e.into());
            }
            other => (None, Some(other)),
        },
    };
    let outcome = |result: Result<Result<String, PullError>, tokio::task::JoinError>| match result {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(OllamaError::from(e)),
        Err(e) => Err(OllamaError(ApiError::internal(format!("the pull task failed: {e}")))),
    };
    if req.stream == Some(false) {
        while updates.recv().await.is_some() {}
        let result = match finished {
            Some(result) => result,
            None => task.await,
        };
        return outcome(result).map(|()| Json(status("success")).into_response());
    }
    let lines = async_stream::stream! {
        yield line(&status("pulling manifest"));
        if let Some(update) = first {
            yield line(&progress_line(&update));
        }
        while let Some(update) = updates.recv().await {
            yield line(&progress_line(&update));
        }
        let result = match finished {
            Some(result) => result,
            None => task.await,
        };
        match outcome(result) {
            Ok(()) => {
                yield line(&status("writing manifest"));
                yield line(&status("success"));
            }
            Err(e) => yield line(&ErrorResponse { error: e.message() }),
        }
    };
    Ok(ndjson(lines.take_until(state.abort.clone().cancelled_owned())))
}

/// Delete a model (Ollama)
///
/// Takes a model this server pulled (or copied) out of the pool and out of
/// `DATA_DIR/models.toml`, and deletes its downloaded file when no other model uses it. A
/// model from `chorus.toml` or a `--model` flag is not deleted (400: remove it there).
#[utoipa::path(
    delete,
    path = "/api/delete",
    operation_id = "ollamaDelete",
    tag = "ollama",
    request_body = ModelRequest,
    responses(
        (status = 200, description = "Deleted"),
        (status = 400, description = "Malformed JSON, no `model`, or a model not pulled", body = ErrorResponse),
        (status = 404, description = "No such model", body = ErrorResponse),
    )
)]
async fn remove(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, OllamaError> {
    let req: ModelRequest = parse(&body)?;
    let name = requested(&req)?;
    let id = resolve(&state, name)?;
    match state.engine.remove_model(id).await {
        Ok(_) => Ok(StatusCode::OK),
        Err(PullError::NotFound(_)) => {
            Err(OllamaError(ApiError::not_found("model", format!("model '{name}' not found"))))
        }
        Err(e) => Err(e.into()),
    }
}

/// Copy a model (Ollama)
///
/// Registers the model `source` again as `destination` (the same file and settings), saved so
/// it is served after a restart.
#[utoipa::path(
    post,
    path = "/api/copy",
    operation_id = "ollamaCopy",
    tag = "ollama",
    request_body = CopyRequest,
    responses(
        (status = 200, description = "Copied"),
        (status = 400, description = "Malformed JSON or an unusable name", body = ErrorResponse),
        (status = 404, description = "No such source model", body = ErrorResponse),
        (status = 409, description = "The destination name is taken", body = ErrorResponse),
    )
)]
async fn copy(State(state): State<AppState>, body: Bytes) -> Result<StatusCode, OllamaError> {
    let req: CopyRequest = parse(&body)?;
    let id = resolve(&state, &req.source)?;
    let destination = req.destination.strip_suffix(":latest").unwrap_or(&req.destination).to_owned();
    if destination.is_empty() {
        return Err(OllamaError::invalid("destination is required"));
    }
    state.engine.copy_model(id, destination).await?;
    Ok(StatusCode::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_ollamas_tag() {
        assert_eq!(ollama_name("qwen-coder"), "qwen-coder:latest");
        assert_eq!(ollama_name("hf.co/o/r:Q8_0"), "hf.co/o/r:Q8_0");
        assert_eq!(ollama_name("hf.co/o/r"), "hf.co/o/r:latest");
        assert_eq!(ollama_name("a:b/c"), "a:b/c:latest");
    }

    #[test]
    fn parameter_sizes_read_as_ollamas() {
        assert_eq!(parameter_size(494_032_768), "494.03M");
        assert_eq!(parameter_size(7_615_616_512), "7.62B");
        assert_eq!(parameter_size(0), "");
    }
}
