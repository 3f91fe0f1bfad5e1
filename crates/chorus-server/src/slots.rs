//! llama-server's slot monitoring, `GET /slots` (each slot's context and whether it is
//! decoding; 501 with `--no-slots`), and its slot actions,
//! `POST /slots/{id_slot}?action=save|restore|erase`
//! (llama.cpp `tools/server/README.md`): a slot's KV cache and tokens to a file in
//! `--slot-save-path` and back, in llama.cpp's own file format, so files move
//! between chorus and a llama-server whose llama.cpp writes the same state
//! version (`LLAMA_STATE_SEQ_VERSION`). As there, an action on a busy slot waits
//! until its request has finished, and without `--slot-save-path` every action
//! is refused with 501.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use chorus_engine::{SlotAction, SlotActionResult};
use chorus_proto::llama::{NextToken, RestoreTimings, SaveTimings, SlotActionRequest, SlotActionResponse, SlotInfo};
use serde::Deserialize;
use utoipa::OpenApi;

use crate::{ApiError, AppState};

/// The OpenAPI description of [`routes`].
#[derive(OpenApi)]
#[openapi(paths(list, action))]
pub(crate) struct ApiDoc;

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/slots", get(list)).route("/slots/{id_slot}", post(action))
}

/// The slots (llama-server)
///
/// Each slot of the default model: its context, whether it is decoding, and how many tokens
/// its sequence has generated.
#[utoipa::path(
    get,
    path = "/slots",
    operation_id = "listSlots",
    tag = "health",
    responses(
        (status = 200, description = "The slots, by id", body = Vec<SlotInfo>),
        (status = 501, description = "The server was started with --no-slots", body = chorus_proto::openai::ErrorResponse),
        (status = 503, description = "No default model is loaded", body = chorus_proto::openai::ErrorResponse),
    )
)]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<SlotInfo>>, ApiError> {
    if !state.config.slots {
        return Err(ApiError::not_supported(
            "this server does not serve the slots endpoint; start it without --no-slots",
        ));
    }
    let info = state.engine.default_info().ok_or_else(ApiError::unavailable)?;
    let slots = state.engine.stats().slots;
    Ok(Json(
        slots
            .iter()
            .map(|s| SlotInfo {
                id: s.id,
                n_ctx: info.n_ctx_slot,
                speculative: false,
                is_processing: s.is_processing,
                next_token: vec![NextToken { has_next_token: s.is_processing, n_decoded: s.n_decoded }],
            })
            .collect(),
    ))
}

/// The query string.
#[derive(Debug, Deserialize)]
pub(crate) struct ActionQuery {
    /// `save`, `restore` or `erase`.
    action: Option<String>,
}

/// Save, restore or erase a slot (llama-server)
///
/// `save` writes the slot's KV cache and tokens to `filename` in `--slot-save-path`;
/// `restore` loads such a file (written by chorus or llama-server for the same model and
/// cache type) into the slot; `erase` clears the slot's KV cache. An action on a busy slot
/// waits until its request has finished.
#[utoipa::path(
    post,
    path = "/slots/{id_slot}",
    operation_id = "slotAction",
    tag = "health",
    params(
        ("id_slot" = u32, Path, description = "The slot, 0 to `--parallel` - 1"),
        ("action" = String, Query, description = "`save`, `restore` or `erase`"),
    ),
    request_body(content = Option<SlotActionRequest>, description = "`{\"filename\"}` for save and restore"),
    responses(
        (status = 200, description = "Done", body = SlotActionResponse),
        (status = 400, description = "Bad slot id, action or filename, or a file that cannot be restored",
         body = chorus_proto::openai::ErrorResponse),
        (status = 501, description = "The server was started without --slot-save-path",
         body = chorus_proto::openai::ErrorResponse),
    )
)]
pub(crate) async fn action(
    State(state): State<AppState>,
    Path(id_slot): Path<String>,
    Query(query): Query<ActionQuery>,
    body: Bytes,
) -> Result<Json<SlotActionResponse>, ApiError> {
    let id_slot: u32 = id_slot
        .parse()
        .map_err(|_| ApiError::invalid(Some("id_slot".to_owned()), format!("invalid slot id `{id_slot}`")))?;
    let filename = || -> Result<String, ApiError> {
        if body.is_empty() {
            return Err(ApiError::invalid(Some("filename".to_owned()), "the body must be {\"filename\": NAME}"));
        }
        Ok(crate::extract::parse::<SlotActionRequest>(&body)?.filename)
    };
    let action = match query.action.as_deref() {
        Some("save") => SlotAction::Save { filename: filename()? },
        Some("restore") => SlotAction::Restore { filename: filename()? },
        Some("erase") => SlotAction::Erase,
        other => {
            let got = other.map_or_else(|| "no action".to_owned(), |a| format!("invalid action `{a}`"));
            return Err(ApiError::invalid(
                Some("action".to_owned()),
                format!("{got}: use ?action=save, restore or erase"),
            ));
        }
    };
    let shape: fn(SlotActionResult) -> SlotActionResponse = match action {
        SlotAction::Save { .. } => |done| SlotActionResponse::Save {
            id_slot: done.id_slot,
            filename: done.filename.unwrap_or_default(),
            n_saved: done.n_tokens,
            n_written: done.n_bytes,
            timings: SaveTimings { save_ms: done.ms },
        },
        SlotAction::Restore { .. } => |done| SlotActionResponse::Restore {
            id_slot: done.id_slot,
            filename: done.filename.unwrap_or_default(),
            n_restored: done.n_tokens,
            n_read: done.n_bytes,
            timings: RestoreTimings { restore_ms: done.ms },
        },
        SlotAction::Erase => |done| SlotActionResponse::Erase { id_slot: done.id_slot, n_erased: done.n_tokens },
    };
    Ok(Json(shape(state.engine.slot_action(id_slot, action).await?)))
}
