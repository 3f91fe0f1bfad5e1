//! `POST /api/v1/models/pull` (`chorus pull` with a server running): the engine's puller
//! downloads a model and registers it, and its progress streams back as server-sent events
//! shaped like Ollama's pull progress. A refusal before any download (a source that cannot be
//! pulled, an id taken, no puller) is an HTTP error instead; once the stream has started, a
//! failure is its last event. The pull runs on a task of its own: a client that goes away does
//! not stop it, and the model is registered when it ends.

use axum::extract::State;
use axum::response::Response;
use chorus_engine::{PullError, PullStage, PullUpdate};
use chorus_proto::models::{PullProgress, PullRequest};
use chorus_proto::openai::ErrorResponse;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::{ApiError, AppState, sse};

/// A progress event without counts.
fn status(status: &str) -> PullProgress {
    PullProgress { status: status.to_owned(), digest: None, total: None, completed: None, model: None, error: None }
}

/// The wire form of one progress report.
fn progress(update: PullUpdate) -> PullProgress {
    let name = match update.stage {
        PullStage::Downloading => "downloading",
        PullStage::Verifying => update.verifying_status(),
    };
    PullProgress { digest: update.digest, total: update.total, completed: Some(update.completed), ..status(name) }
}

/// The last event: `success` with the model's id, or `error`.
fn outcome(result: Result<Result<String, PullError>, tokio::task::JoinError>) -> PullProgress {
    match result {
        Ok(Ok(id)) => PullProgress { model: Some(id), ..status("success") },
        Ok(Err(e)) => PullProgress { error: Some(e.to_string()), ..status("error") },
        Err(e) => {
            tracing::error!(error = %e, "the pull task failed");
            PullProgress { error: Some(chorus_engine::error::INTERNAL_MESSAGE.to_owned()), ..status("error") }
        }
    }
}

/// Pull a model from the Hugging Face hub
///
/// Downloads `source` (`hf:OWNER/REPO/FILE.gguf[@REVISION]`) into the server's cache, resuming
/// a download that broke off, and registers it as `id` (default: the file's stem), so it is
/// served at once and after a restart. The answer is a stream of server-sent events, each
/// `data:` a `PullProgress`: `pulling manifest`, then `downloading` with `completed` of
/// `total` bytes (about ten a second), `verifying sha256 digest` (`verifying size` when the hub names no digest), and last `success` with
/// `model`, or `error` with `error` (pull again to resume). The pull goes on if the client
/// disconnects.
#[utoipa::path(
    post,
    path = "/api/v1/models/pull",
    operation_id = "pullModel",
    tag = "models",
    request_body = PullRequest,
    responses(
        (status = 200, description = "The pull's progress, ending with `success` or `error`", body = PullProgress, content_type = "text/event-stream"),
        (status = 400, description = "A source that cannot be pulled, or an unusable id", body = ErrorResponse),
        (status = 409, description = "The id is registered for another model (`model_exists`)", body = ErrorResponse),
        (status = 501, description = "This server cannot pull models (`not_supported`)", body = ErrorResponse),
    )
)]
pub(crate) async fn pull(State(state): State<AppState>, body: axum::body::Bytes) -> Result<Response, ApiError> {
    let request: PullRequest = crate::extract::parse(&body)?;
    let (sender, mut updates) = mpsc::unbounded_channel();
    let mut task = tokio::spawn(state.engine.pull_model(request.source, request.id, sender));
    // A refusal comes before any progress: answer it with its status, not inside a stream.
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
    let events = async_stream::stream! {
        yield status("pulling manifest");
        if let Some(update) = first {
            yield progress(update);
        }
        // The puller drops its sender when it is done, so this ends before the outcome.
        while let Some(update) = updates.recv().await {
            yield progress(update);
        }
        let result = match finished {
            Some(result) => result,
            None => task.await,
        };
        yield outcome(result);
    };
    let events = events.take_until(state.abort.clone().cancelled_owned());
    Ok(sse::response(events.map(|p| sse::json(&p))))
}
