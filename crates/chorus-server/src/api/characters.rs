//! Character routes under `/api/v1/characters`: the characters directory (list, import of a
//! JSON, PNG or CHARX card, the raw card, export, delete), a turn of chat (JSON or SSE), the
//! session's state (status, vitals, snapshots: save, load, reset, list, export), its memories
//! (list, search, edit, forget), and new instances. The character's work is the engine's
//! (`Engine::character_*`); these handlers only translate. A `{id}` is a character's id, or
//! its card's name (case ignored).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chorus_engine::character::card::{self, CardFormat};
use chorus_engine::character::dir::StoredCharacter;
use chorus_engine::character::instance::memory_view;
use chorus_engine::character::{CharacterError, DEFAULT_USER, user_name};
use chorus_engine::store::{Message, SessionId};
use chorus_engine::{EventFilter, PromptOptions, wire};
use chorus_proto::character::{
    CharacterChatRequest, CharacterChatResponse, CharacterList, CharacterSessionRequest, CharacterStatus,
    CharacterSummary, MemoryEdit, MemoryList, MemorySearchRequest, MemoryView, SnapshotInfo, SnapshotList,
    SnapshotRequest, VitalWrite,
};
use chorus_proto::native::{self, Event};
use chorus_proto::openai::ErrorResponse;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use crate::extract::AppJson;
use crate::{ApiError, AppState, sse};

/// A query string, its failures in our error format.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q).map_err(|e| ApiError::invalid(None, format!("invalid query string: {}", e.body_text())))
}

/// A checked `{{user}}` name.
fn user(name: Option<&str>) -> Result<String, ApiError> {
    user_name(name).map_err(|e| CharacterError::from(e).into())
}

fn session_id(id: Option<String>) -> Option<SessionId> {
    id.filter(|s| !s.trim().is_empty()).map(SessionId::from_string)
}

/// A raw body, its failures (over the limit) in our error format.
fn bytes(state: &AppState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(state.config.body_limit)
        } else {
            ApiError::invalid(None, format!("cannot read the request body: {e}"))
        }
    })
}

/// An optional JSON body: empty means the default.
fn optional_body<T: Default + serde::de::DeserializeOwned>(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = bytes(state, body)?;
    if body.iter().all(u8::is_ascii_whitespace) { Ok(T::default()) } else { crate::extract::parse(&body) }
}

/// Directory work (file reads and writes) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CharacterError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(Into::into),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// A character's line in the list.
pub(crate) fn summary(stored: &StoredCharacter) -> CharacterSummary {
    let ext = card::chorus_extension(&stored.card);
    CharacterSummary {
        id: stored.id.clone(),
        name: stored.card.data.name.clone(),
        spec: stored.card.spec.clone(),
        tags: stored.card.data.tags.clone(),
        lorebook_entries: stored.card.data.character_book.as_ref().map_or(0, |b| b.entries.len()),
        vitals: ext.vitals.into_iter().map(|v| v.name).collect(),
    }
}

/// List the characters
///
/// Every character in the server's characters directory, by id.
#[utoipa::path(
    get,
    path = "/api/v1/characters",
    operation_id = "listCharacters",
    tag = "characters",
    responses(
        (status = 200, description = "The characters", body = CharacterList),
        (status = 500, description = "Server error", body = ErrorResponse),
        (status = 501, description = "The server has no characters directory (`not_supported`)", body = ErrorResponse),
    )
)]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<CharacterList>, ApiError> {
    let dir = state.engine.character_dir()?;
    let data = blocking(move || {
        let mut data = Vec::new();
        for entry in dir.list()? {
            if let Some(stored) = dir.get(&entry.id)? {
                data.push(summary(&stored));
            }
        }
        Ok(data)
    })
    .await?;
    Ok(Json(CharacterList { object: "list".into(), data }))
}

/// `POST /api/v1/characters`'s query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportQuery {
    /// The id to import under; the slug of the card's name when absent (`aria-blackwood`, then
    /// `aria-blackwood-2`, …).
    #[serde(default)]
    id: Option<String>,
    /// Overwrite the character with that id (without `id`: the one named after the card).
    #[serde(default)]
    replace: bool,
}

/// Import a character card
///
/// The body is the card file: its JSON (`application/json`), a PNG with the card in its
/// `ccv3` or `chara` chunk (`image/png`), or a CHARX zip (`application/zip`); with
/// `application/octet-stream` (or any other type) the container is recognised from the bytes.
/// A refused card is a 400 whose `param` is the JSON path of the field at fault.
#[utoipa::path(
    post,
    path = "/api/v1/characters",
    operation_id = "importCharacter",
    tag = "characters",
    params(ImportQuery),
    request_body(
        description = "The card file: JSON, PNG or CHARX",
        content(
            (chorus_proto::character::Card = "application/json"),
            (Vec<u8> = "image/png"),
            (Vec<u8> = "application/zip"),
            (Vec<u8> = "application/octet-stream"),
        )
    ),
    responses(
        (status = 201, description = "The imported character", body = CharacterSummary),
        (status = 400, description = "No card, or a refused one (`invalid_card`, `param` naming the field), \
            or a bad `id`", body = ErrorResponse),
        (status = 409, description = "A character has that id already (`character_exists`); pass \
            `replace=true`", body = ErrorResponse),
        (status = 413, description = "The body is over the server's limit", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
        (status = 501, description = "The server has no characters directory (`not_supported`)", body = ErrorResponse),
    )
)]
pub(crate) async fn import(
    State(state): State<AppState>,
    q: Result<Query<ImportQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<CharacterSummary>), ApiError> {
    let q = query(q)?;
    let body = bytes(&state, body)?;
    if body.is_empty() {
        return Err(ApiError::invalid(None, "the body must be a card file: its JSON, a PNG card or a CHARX"));
    }
    let dir = state.engine.character_dir()?;
    let stored = blocking(move || {
        let id = q.id.as_deref().map(str::trim).filter(|id| !id.is_empty());
        Ok(dir.import(&body, id, q.replace)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(summary(&stored))))
}

/// Retrieve a character's card
///
/// The card's JSON as it was imported (`{spec, spec_version, data}`).
#[utoipa::path(
    get,
    path = "/api/v1/characters/{id}",
    operation_id = "retrieveCharacter",
    tag = "characters",
    params(("id" = String, Path, description = "The character's id or name")),
    responses(
        (status = 200, description = "The card", body = chorus_proto::character::Card),
        (status = 404, description = "No such character (`character_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn retrieve(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    Ok(Json(state.engine.character(&id)?.stored.raw))
}

/// `GET /api/v1/characters/{id}/export`'s query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportQuery {
    /// `json` (default), `png` or `charx`.
    #[serde(default)]
    format: Option<String>,
}

/// The `Content-Type` of a card file.
fn content_type(format: CardFormat) -> &'static str {
    match format {
        CardFormat::Json => "application/json",
        CardFormat::Png => "image/png",
        CardFormat::Charx => "application/zip",
    }
}

/// A download: `Content-Type` and `Content-Disposition: attachment; filename="NAME"`.
fn attachment(content_type: &'static str, filename: &str, body: Vec<u8>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let disposition = format!("attachment; filename=\"{filename}\"");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Export a character's card
///
/// The card as a file: its JSON, a PNG (the imported image, else a placeholder) or a CHARX
/// (the imported assets), as an attachment named `ID.json`, `ID.png` or `ID.charx`.
#[utoipa::path(
    get,
    path = "/api/v1/characters/{id}/export",
    operation_id = "exportCharacter",
    tag = "characters",
    params(("id" = String, Path, description = "The character's id or name"), ExportQuery),
    responses(
        (status = 200, description = "The card file",
            content((chorus_proto::character::Card = "application/json"), (Vec<u8> = "image/png"),
                (Vec<u8> = "application/zip"))),
        (status = 400, description = "An unknown `format`", body = ErrorResponse),
        (status = 404, description = "No such character (`character_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn export(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let format = match q.format.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        None => CardFormat::Json,
        Some(name) => CardFormat::parse(name).ok_or_else(|| {
            ApiError::invalid(Some("format".into()), format!("unknown format `{name}`: use json, png or charx"))
        })?,
    };
    let character = state.engine.character(&id)?;
    let id = character.id().to_owned();
    let bytes = blocking(move || character.stored.export(format).map_err(|e| CharacterError::Dir(e.into()))).await?;
    Ok(attachment(content_type(format), &format!("{id}.{}", format.extension()), bytes))
}

/// Delete a character
///
/// Removes its card (and the PNG or CHARX it was imported from) from the characters
/// directory. Its sessions stay.
#[utoipa::path(
    delete,
    path = "/api/v1/characters/{id}",
    operation_id = "deleteCharacter",
    tag = "characters",
    params(("id" = String, Path, description = "The character's id or name")),
    responses(
        (status = 204, description = "The character is deleted"),
        (status = 404, description = "No such character (`character_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    let character = state.engine.character(&id)?;
    let dir = state.engine.character_dir()?;
    let id = character.id().to_owned();
    let existed = blocking(move || Ok(dir.delete(&id)?)).await?;
    if !existed {
        return Err(CharacterError::NotFound(character.id().to_owned()).into());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The answer of a turn: the stored message, the user's vitals after it, the changes of this
/// turn (the newest changes whose `turn` is the status' `turns`, back to a `reset` or `load`:
/// a session reset to turn 0 numbers its turns again) and the memories its prompt was given.
pub(crate) async fn chat_response(
    state: &AppState,
    character: &str,
    session: &SessionId,
    user: &str,
    message: &Message,
) -> Result<CharacterChatResponse, ApiError> {
    let message = wire::message(message);
    let status = state.engine.character_status(character, Some(session), user).await?;
    let changes = status
        .recent_changes
        .iter()
        .take_while(|c| c.turn == status.turns && c.source != "reset" && c.source != "load")
        .cloned()
        .collect();
    let used = message.metadata.as_ref().map(|m| m.memories.clone()).unwrap_or_default();
    let memories_used = if used.is_empty() {
        Vec::new()
    } else {
        let (_, memories) = state.engine.character_memories(character, Some(session)).await?;
        used.iter().filter_map(|id| memories.iter().find(|m| &m.id == id)).map(|m| memory_view(m, None)).collect()
    };
    Ok(CharacterChatResponse {
        session_id: session.to_string(),
        message,
        vitals: status.vitals,
        changes,
        memories_used,
    })
}

/// Chat with a character
///
/// One turn: `message` is said by `user_name` (`{{user}}`, `User` when absent) in the
/// character's shared session (or `session_id`), and the character answers. The answer is the
/// stored message with the user's vitals after the turn, this turn's changes and the memories
/// its prompt was given; with `stream: true`, server-sent events: the prompt's events
/// (`message.start`, `message.chunk`…, `message.complete` or `message.error`), then one
/// `character.updated`, then `data: [DONE]`. Every client on the session sees the turn's
/// events. A client that disconnects does not cancel the turn.
#[utoipa::path(
    post,
    path = "/api/v1/characters/{id}/chat",
    operation_id = "chatCharacter",
    tag = "characters",
    params(("id" = String, Path, description = "The character's id or name")),
    request_body = CharacterChatRequest,
    responses(
        (status = 200, description = "The turn (`application/json`), or with `stream: true` its events \
            (`text/event-stream`: `event:` the type, `data:` an `Event`; `data: [DONE]` last)",
            content((CharacterChatResponse = "application/json"), (native::Event = "text/event-stream"))),
        (status = 400, description = "Invalid body (a blank `message`, unknown fields, a bad `user_name`), \
            a session that plays another character, or a prompt longer than the context", body = ErrorResponse),
        (status = 404, description = "No such character (`character_not_found`) or session", body = ErrorResponse),
        (status = 409, description = "The turn was cancelled before it was answered (`cancelled`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
        (status = 503, description = "The model cannot take work", body = ErrorResponse),
    )
)]
pub(crate) async fn chat(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(request): AppJson<CharacterChatRequest>,
) -> Result<Response, ApiError> {
    if request.message.trim().is_empty() {
        return Err(ApiError::invalid(Some("message".into()), "`message` must not be empty"));
    }
    let user = user(request.user_name.as_deref())?;
    let named = session_id(request.session_id);
    let (character, session) = state.engine.character_session(&id, named.as_ref(), &user).await?;
    let options = PromptOptions { user_name: Some(user.clone()), max_tokens: request.max_tokens, ..Default::default() };
    if !request.stream {
        let ticket = state.engine.prompt(&session.id, request.message, options).await?;
        let message = super::sessions::outcome(ticket.outcome).await?;
        let response = chat_response(&state, character.id(), &session.id, &user, &message).await?;
        return Ok(Json(response).into_response());
    }
    // Subscribe before queueing, so the stream cannot miss the prompt's first event; a second
    // subscription finds the `character.updated` that follows the answer.
    let bus = state.engine.events();
    let events = bus.subscribe(EventFilter::Session(session.id.clone()), None);
    let updates = bus.subscribe(EventFilter::Session(session.id.clone()), None);
    let ticket = state.engine.prompt(&session.id, request.message, options).await?;
    let prompt = super::sessions::prompt_events(&state, events, ticket.prompt_id);
    let abort = state.abort.clone();
    let stream = async_stream::stream! {
        futures::pin_mut!(prompt);
        // The log id of the answer, once it is complete.
        let mut completed = None;
        while let Some(event) = prompt.next().await {
            match event {
                Ok(event) => {
                    if matches!(event.event, Event::MessageComplete { .. }) {
                        completed = Some(event.id);
                    }
                    yield sse::logged(&event);
                }
                Err(e) => yield sse::error(&e),
            }
        }
        if let Some(after) = completed {
            let updates = updates.take_until(abort.cancelled_owned());
            futures::pin_mut!(updates);
            while let Some(event) = updates.next().await {
                match event {
                    Ok(event) => {
                        let later = after == chorus_engine::events::UNLOGGED || event.id > after;
                        if later && matches!(event.event, Event::CharacterUpdated { .. }) {
                            yield sse::logged(&event);
                            break;
                        }
                    }
                    Err(e) => {
                        yield sse::error(&ApiError::internal(e));
                        break;
                    }
                }
            }
        }
        yield sse::done();
    };
    Ok(sse::response(stream))
}

/// The query of the routes that act on a character's session.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SessionQuery {
    /// The session; the character's own (shared) session when absent.
    #[serde(default)]
    session_id: Option<String>,
}

/// `GET /api/v1/characters/{id}/status`'s query.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatusQuery {
    /// The user whose per-user vitals are shown; `User` when absent.
    #[serde(default)]
    user_name: Option<String>,
    /// The session; the character's own (shared) session when absent.
    #[serde(default)]
    session_id: Option<String>,
}

/// A character's state
///
/// Its session's turns, vitals (as `user_name` sees them), their schema and latest changes,
/// memory and message counts, rolling summary and snapshots. The character's shared session is
/// created (with the card's greeting) on first use.
#[utoipa::path(
    get,
    path = "/api/v1/characters/{id}/status",
    operation_id = "characterStatus",
    tag = "characters",
    params(("id" = String, Path, description = "The character's id or name"), StatusQuery),
    responses(
        (status = 200, description = "The state", body = CharacterStatus),
        (status = 400, description = "A bad `user_name`, or a session that plays another character", body = ErrorResponse),
        (status = 404, description = "No such character (`character_not_found`) or session", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Json<CharacterStatus>, ApiError> {
    let q = query(q)?;
    let user = user(q.user_name.as_deref())?;
    let session = session_id(q.session_id);
    Ok(Json(state.engine.character_status(&id, session.as_ref(), &user).await?))
}

/// Set a vital
///
/// Sets one vital by hand (a number within its bounds, or one of its words); announced as a
/// `character.updated` event. Answers with the state after the change.
#[utoipa::path(
    put,
    path = "/api/v1/characters/{id}/vitals/{name}",
    operation_id = "setCharacterVital",
    tag = "characters",
    params(
        ("id" = String, Path, description = "The character's id or name"),
        ("name" = String, Path, description = "The vital's name"),
    ),
    request_body = VitalWrite,
    responses(
        (status = 200, description = "The state after the change", body = CharacterStatus),
        (status = 400, description = "An unknown vital (`param`: `name`) or a refused value (`value`)", body = ErrorResponse),
        (status = 404, description = "No such character (`character_not_found`) or session", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn set_vital(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    AppJson(request): AppJson<VitalWrite>,
) -> Result<Json<CharacterStatus>, ApiError> {
    let user = user(request.user_name.as_deref())?;
    let session = session_id(request.session_id);
    Ok(Json(state.engine.set_vital(&id, session.as_ref(), &user, &name, &request.value).await?))
}

/// Save a snapshot
///
/// Saves the session's vitals, memories, summary and transcript under `name`, replacing a
/// snapshot of that name.
#[utoipa::path(
    post,
    path = "/api/v1/characters/{id}/save",
    operation_id = "saveCharacter",
    tag = "characters",
    params(("id" = String, Path, description = "The character's id or name")),
    request_body = SnapshotRequest,
    responses(
        (status = 200, description = "The snapshot saved", body = SnapshotInfo),
        (status = 400, description = "A bad `name` (1 to 64 letters, digits, `-`, `_`, `.`)", body = ErrorResponse),
        (status = 404, description = "No such character (`character_not_found`) or session", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn save(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(request): AppJson<SnapshotRequest>,
) -> Result<Json<SnapshotInfo>, ApiError> {
    let session = session_id(request.session_id);
    let snapshot = state.engine.save_character(&id, session.as_ref(), &request.name).await?;
    Ok(Json(SnapshotInfo { name: snapshot.name, created_at: snapshot.created_at }))
}

/// Load a snapshot
///
/// Restores the vitals, memories, summary and transcript saved as `name`; announced as a
/// `character.restored` event. Refused while the session answers a prompt.
#[utoipa::path(
    post,
    path = "/api/v1/characters/{id}/load",
    operation_id = "loadCharacter",
    tag = "characters",
    params(("id" = String, Path, description = "The character's id or name")),
    request_body = SnapshotRequest,
    responses(
        (status = 200, description = "The state restored", body = CharacterStatus),
        (status = 404, description = "No such character, session or snapshot (`snapshot_not_found`)", body = ErrorResponse),
        (status = 409, description = "The session is answering a prompt (`session_busy`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn load(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(request): AppJson<SnapshotRequest>,
) -> Result<Json<CharacterStatus>, ApiError> {
    let session = session_id(request.session_id);
    Ok(Json(state.engine.load_character(&id, session.as_ref(), &request.name).await?))
}

/// Reset a character
///
/// Back to the card: the greeting only, the initial vitals, no memories, no summary (snapshots
/// stay); announced as a `character.restored` event. Refused while the session answers a
/// prompt. The body may be empty.
#[utoipa::path(
    post,
    path = "/api/v1/characters/{id}/reset",
    operation_id = "resetCharacter",
    tag = "characters",
    params(("id" = String, Path, description = "The character's id or name")),
    request_body(content = Option<CharacterSessionRequest>, description = "Optional"),
    responses(
        (status = 200, description = "The state after the reset", body = CharacterStatus),
        (status = 404, description = "No such character (`character_not_found`) or session", body = ErrorResponse),
        (status = 409, description = "The session is answering a prompt (`session_busy`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn reset(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CharacterStatus>, ApiError> {
    let request: CharacterSessionRequest = optional_body(&state, body)?;
    let user = user(request.user_name.as_deref())?;
    let session = session_id(request.session_id);
    Ok(Json(state.engine.reset_character(&id, session.as_ref(), &user).await?))
}

/// List a character's snapshots
#[utoipa::path(
    get,
    path = "/api/v1/characters/{id}/snapshots",
    operation_id = "listCharacterSnapshots",
    tag = "characters",
    params(("id" = String, Path, description = "The character's id or name"), SessionQuery),
    responses(
        (status = 200, description = "The snapshots, oldest first", body = SnapshotList),
        (status = 404, description = "No such character (`character_not_found`) or session", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn snapshots(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Json<SnapshotList>, ApiError> {
    let session = session_id(query(q)?.session_id);
    let (_, s) = state.engine.character_session(&id, session.as_ref(), DEFAULT_USER).await?;
    let data = state.engine.store().snapshots(&s.id).await?;
    let data = data.into_iter().map(|s| SnapshotInfo { name: s.name, created_at: s.created_at }).collect();
    Ok(Json(SnapshotList { object: "list".into(), session_id: s.id.to_string(), data }))
}

/// Export a snapshot
///
/// The snapshot's JSON document (vitals, memories, summary, transcript), as an attachment
/// named `ID.NAME.snapshot.json`.
#[utoipa::path(
    get,
    path = "/api/v1/characters/{id}/snapshots/{name}",
    operation_id = "retrieveCharacterSnapshot",
    tag = "characters",
    params(
        ("id" = String, Path, description = "The character's id or name"),
        ("name" = String, Path, description = "The snapshot's name"),
        SessionQuery,
    ),
    responses(
        (status = 200, description = "The snapshot document", body = Object),
        (status = 404, description = "No such character, session or snapshot (`snapshot_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn snapshot(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let session = session_id(query(q)?.session_id);
    let character = state.engine.character(&id)?;
    let document = state.engine.character_snapshot(character.id(), session.as_ref(), &name).await?;
    let body = serde_json::to_vec_pretty(&document).map_err(ApiError::internal)?;
    Ok(attachment("application/json", &format!("{}.{name}.snapshot.json", character.id()), body))
}

/// List a character's memories
#[utoipa::path(
    get,
    path = "/api/v1/characters/{id}/memories",
    operation_id = "listCharacterMemories",
    tag = "characters",
    params(("id" = String, Path, description = "The character's id or name"), SessionQuery),
    responses(
        (status = 200, description = "The memories, oldest first", body = MemoryList),
        (status = 404, description = "No such character (`character_not_found`) or session", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn memories(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Json<MemoryList>, ApiError> {
    let session = session_id(query(q)?.session_id);
    let (_, memories) = state.engine.character_memories(&id, session.as_ref()).await?;
    Ok(Json(MemoryList { object: "list".into(), data: memories.iter().map(|m| memory_view(m, None)).collect() }))
}

/// Search a character's memories
///
/// The memories that best answer `query`, scored as a turn scores them (recency, importance,
/// relevance), best first. Needs an embedding model.
#[utoipa::path(
    post,
    path = "/api/v1/characters/{id}/memories/search",
    operation_id = "searchCharacterMemories",
    tag = "characters",
    params(("id" = String, Path, description = "The character's id or name")),
    request_body = MemorySearchRequest,
    responses(
        (status = 200, description = "The memories with their `score`, best first", body = MemoryList),
        (status = 400, description = "An empty `query`, a `limit` outside 1–50, or no embedding model", body = ErrorResponse),
        (status = 404, description = "No such character (`character_not_found`) or session", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn search(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(request): AppJson<MemorySearchRequest>,
) -> Result<Json<MemoryList>, ApiError> {
    let session = session_id(request.session_id);
    let user = match request.user_name.as_deref() {
        Some(name) => Some(user(Some(name))?),
        None => None,
    };
    let found =
        state.engine.search_memories(&id, session.as_ref(), &request.query, user.as_deref(), request.limit).await?;
    let data = found.iter().map(|(m, score)| memory_view(m, Some(*score))).collect();
    Ok(Json(MemoryList { object: "list".into(), data }))
}

/// Edit a memory
///
/// Changes its text (its embedding is recomputed) and/or its importance.
#[utoipa::path(
    patch,
    path = "/api/v1/characters/{id}/memories/{memory_id}",
    operation_id = "editCharacterMemory",
    tag = "characters",
    params(
        ("id" = String, Path, description = "The character's id or name"),
        ("memory_id" = String, Path, description = "The memory's id"),
        SessionQuery,
    ),
    request_body = MemoryEdit,
    responses(
        (status = 200, description = "The memory as it is now", body = MemoryView),
        (status = 400, description = "Blank `content` or `importance` outside 1–10", body = ErrorResponse),
        (status = 404, description = "No such character, session or memory (`memory_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn edit_memory(
    State(state): State<AppState>,
    Path((id, memory_id)): Path<(String, String)>,
    q: Result<Query<SessionQuery>, QueryRejection>,
    AppJson(edit): AppJson<MemoryEdit>,
) -> Result<Json<MemoryView>, ApiError> {
    let session = session_id(query(q)?.session_id);
    let memory = state.engine.edit_memory(&id, session.as_ref(), &memory_id, edit.content, edit.importance).await?;
    Ok(Json(memory_view(&memory, None)))
}

/// Forget a memory
#[utoipa::path(
    delete,
    path = "/api/v1/characters/{id}/memories/{memory_id}",
    operation_id = "deleteCharacterMemory",
    tag = "characters",
    params(
        ("id" = String, Path, description = "The character's id or name"),
        ("memory_id" = String, Path, description = "The memory's id"),
        SessionQuery,
    ),
    responses(
        (status = 204, description = "The memory is forgotten"),
        (status = 404, description = "No such character, session or memory (`memory_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn forget_memory(
    State(state): State<AppState>,
    Path((id, memory_id)): Path<(String, String)>,
    q: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<StatusCode, ApiError> {
    let session = session_id(query(q)?.session_id);
    state.engine.forget_memory(&id, session.as_ref(), &memory_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Create an instance of a character
///
/// A new session playing the character, apart from its shared one: the card's greeting
/// (rendered for `user_name`) and its initial vitals. Talk in it with `session_id`. The body
/// may be empty.
#[utoipa::path(
    post,
    path = "/api/v1/characters/{id}/sessions",
    operation_id = "createCharacterSession",
    tag = "characters",
    params(("id" = String, Path, description = "The character's id or name")),
    request_body(content = Option<CharacterSessionRequest>, description = "Optional: `user_name`"),
    responses(
        (status = 201, description = "The new session", body = native::Session),
        (status = 400, description = "A bad `user_name`", body = ErrorResponse),
        (status = 404, description = "No such character (`character_not_found`)", body = ErrorResponse),
        (status = 500, description = "Server error", body = ErrorResponse),
    )
)]
pub(crate) async fn create_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<native::Session>), ApiError> {
    let request: CharacterSessionRequest = optional_body(&state, body)?;
    let user = user(request.user_name.as_deref())?;
    let character = state.engine.character(&id)?;
    let session = state.engine.new_character_session(&character, None, &user).await?;
    Ok((StatusCode::CREATED, Json(super::sessions::view(&state, &session))))
}
