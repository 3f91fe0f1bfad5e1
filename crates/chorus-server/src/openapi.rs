//! The OpenAPI document of the HTTP API, `GET /openapi.json`, and Swagger UI at `/docs`.
//!
//! The document is generated, never written by hand: the schemas from the wire types of
//! `chorus-proto` (`utoipa::ToSchema`), the operations from the handlers' `#[utoipa::path]`
//! annotations, which each route family lists in its own `ApiDoc` (as it lists its routes)
//! and [`document`] merges. Swagger UI's files are compiled into the binary
//! (`utoipa-swagger-ui`'s `vendored` feature) and point at `/openapi.json` on the same server,
//! so `/docs` works with no network.
//!
//! Both are public, like `/health`, even when the server has API keys: the document describes
//! the API, which is no secret, and holds no keys, and a client needs it before it can
//! authenticate. Every operation that needs a key says so in the document (`security`, and a
//! `401` answer).

use axum::Json;
use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{self, ContentBuilder, Ref, ResponseBuilder};
use utoipa_swagger_ui::{Config, SwaggerUi};

/// Where the document is served.
const OPENAPI_JSON: &str = "/openapi.json";

/// Name of the security scheme (`Authorization: Bearer KEY`), as `ApiDoc` spells it.
const API_KEY: &str = "api_key";

/// Name of the shared `401` response.
const UNAUTHORIZED: &str = "Unauthorized";

/// The document's introduction (Markdown).
const DESCRIPTION: &str = "\
chorus serves a GGUF model with llama.cpp: the OpenAI-compatible API under `/v1`, and a native \
API under `/api/v1` in which the server owns the conversations: durable sessions with a prompt \
queue each, and an event log that clients watch as server-sent events.

**Authentication.** When the server was started with `--api-key` (or `CHORUS_API_KEY`), every \
operation marked with a lock needs the header `Authorization: Bearer KEY` and answers `401` \
without it. `/health`, `/api/v1/health`, `/openapi.json`, `/docs` and the web UI's files (`/`, \
`/assets/…`) never need a key. A browser's WebSocket cannot send headers, so `/ws` also takes \
the key as a subprotocol: `Sec-WebSocket-Protocol: chorus, bearer.B64` where `B64` is the key's \
base64url encoding without padding; the server then answers with the `chorus` subprotocol.

**Errors.** Every error is OpenAI's error object, `ErrorResponse`: \
`{\"error\": {\"message\", \"type\", \"param\", \"code\"}}`, with a stable `code` for programs. \
An error in a stream that has started is sent as an event holding that object.

**WebSocket.** `GET /ws?session_id=ID` upgrades to a WebSocket (OpenAPI cannot describe it, so \
it is not listed below). Every message, both ways, is a JSON envelope \
`{\"type\", \"id\", \"timestamp\", \"payload\"}`: the client sends `request` envelopes whose \
`payload.action` is `prompt`, `cancel`, `subscribe` or `permission_reply`; the server answers \
with `response` and `error` envelopes, and sends each event of the subscribed session as an \
`event` envelope whose payload is an `Event`.

**Characters WebSocket.** `GET /ws/characters` (and `/` on `--character-port`) speaks the \
character agent seed's protocol, behind the same key: the client sends \
`{\"type\": \"KIND_request\", \"request_id\", \"data\"}` (`init`, `chat`, `status`, `save`, `load`, \
`reset`, `memory_search`, `ping`), answered by `CharacterWsResponse`; once `init` attached it to \
a character, it also receives that session's `chat_message`, `chat_chunk`, `chat_error`, \
`vitals_update` and `character_restored` frames.";

/// The operations of this module and of `/health`; [`document`] adds the route families'.
#[derive(OpenApi)]
#[openapi(
    info(title = "chorus", description = DESCRIPTION),
    paths(crate::health::health, crate::health::metrics, crate::qr::svg, json),
    security(("api_key" = [])),
    tags(
        (name = "openai", description = "The OpenAI-compatible API: chat completions, completions, embeddings, models"),
        (name = "models", description = "The model pool: every registered model's state, load, unload, pull"),
        (name = "sessions", description = "Sessions the server keeps: create, prompt, cancel, clear, delete"),
        (name = "events", description = "The event log, as server-sent events, resumable with `Last-Event-ID`"),
        (name = "agents", description = "Agents: a named system prompt, model and tool set"),
        (name = "tools", description = "Tools the agents can run, run directly, and permission answers"),
        (name = "tasks", description = "TBot's task endpoints: generate (routed by content), code completion and generation, translation, math"),
        (name = "characters", description = "Characters: Character Card V2/V3 personas with vitals, memories and snapshots"),
        (name = "mobile", description = "The mobile API: compact chat for phone apps, one conversation per device"),
        (name = "conversations", description = "AI-to-AI conversations between characters and ad-hoc personalities"),
        (name = "llama", description = "llama-server's native endpoints: tokenize, detokenize, apply-template, props (the OpenAI routes are also served without `/v1`, as llama-server serves them)"),
        (name = "ollama", description = "Ollama's API: version, tags, show, ps, chat, generate, embed, pull, delete, copy (NDJSON streams, `{\"error\"}` errors)"),
        (name = "health", description = "Liveness, server information, the QR code for phones, and metrics"),
        (name = "docs", description = "This document"),
    )
)]
struct ApiDoc;

/// The whole document: every route family's operations, the API-key scheme, and a `401`
/// answer on each operation that needs a key.
pub(crate) fn document() -> openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::openai::ApiDoc::openapi());
    doc.merge(crate::api::ApiDoc::openapi());
    doc.merge(crate::slots::ApiDoc::openapi());
    doc.merge(crate::llama::ApiDoc::openapi());
    doc.merge(crate::ollama::ApiDoc::openapi());
    doc.merge(crate::tasks::ApiDoc::openapi());
    alias(&mut doc, "/health", "/api/v1/health", "getApiHealth");
    alias(&mut doc, "/api/v1/info", "/info", "getInfoSeed");
    require_key(&mut doc);
    doc
}

/// `GET /openapi.json` and Swagger UI under `/docs` (`/docs` redirects to `/docs/`).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    // No validator badge: it would load an image from validator.swagger.io.
    let config = Config::new([OPENAPI_JSON]).validator_url("none");
    Router::new().route(OPENAPI_JSON, get(json)).merge(SwaggerUi::new("/docs").config(config))
}

/// This document
///
/// The OpenAPI 3.1 description of this server's HTTP API. Needs no API key.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApi",
    tag = "docs",
    security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
async fn json() -> Json<openapi::OpenApi> {
    Json(document())
}

/// Describe `to` as the same operation as `from` (one handler on two routes), under its own
/// operation id.
fn alias(doc: &mut openapi::OpenApi, from: &str, to: &str, operation_id: &str) {
    let Some(mut item) = doc.paths.paths.get(from).cloned() else { return };
    if let Some(get) = item.get.as_mut() {
        get.operation_id = Some(operation_id.to_owned());
    }
    doc.paths.paths.insert(to.to_owned(), item);
}

/// Add the bearer scheme, and the `401` answer to every operation under the global security
/// requirement (the public ones set their own, empty, requirement).
fn require_key(doc: &mut openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    let scheme = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some("One of the server's API keys (`--api-key`); needed only when it has some"))
        .build();
    components.add_security_scheme(API_KEY, SecurityScheme::Http(scheme));
    let unauthorized = ResponseBuilder::new()
        .description("Missing or wrong API key (`invalid_api_key`)")
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorResponse"))).build())
        .build();
    components.responses.insert(UNAUTHORIZED.to_owned(), unauthorized.into());
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            if operation.security.is_none() {
                operation.responses.responses.insert("401".to_owned(), Ref::from_response_name(UNAUTHORIZED).into());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let doc = serde_json::to_value(document()).unwrap();
        for path in [
            "/v1/chat/completions",
            "/v1/completions",
            "/v1/models",
            "/v1/models/{id}",
            "/health",
            "/api/v1/health",
            "/metrics",
            "/openapi.json",
            "/api/v1/info",
            "/info",
            "/qr",
            "/api/v1/mobile/chat",
            "/api/v1/mobile/history",
            "/api/v1/agents",
            "/api/v1/agents/{name}",
            "/api/v1/sessions",
            "/api/v1/sessions/{id}",
            "/api/v1/sessions/{id}/messages",
            "/api/v1/sessions/{id}/prompt",
            "/api/v1/sessions/{id}/cancel",
            "/api/v1/sessions/{id}/clear",
            "/api/v1/sessions/{id}/events",
            "/api/v1/events",
            "/api/v1/tools",
            "/api/v1/tools/{name}/execute",
            "/api/v1/sessions/{id}/permissions/{request_id}",
            "/api/v1/models",
            "/api/v1/models/{id}/load",
            "/api/v1/models/{id}/unload",
            "/api/v1/models/pull",
            "/request",
            "/clear",
            "/api/v1/characters",
            "/api/v1/characters/{id}",
            "/api/v1/characters/{id}/export",
            "/api/v1/characters/{id}/chat",
            "/api/v1/characters/{id}/status",
            "/api/v1/characters/{id}/vitals/{name}",
            "/api/v1/characters/{id}/save",
            "/api/v1/characters/{id}/load",
            "/api/v1/characters/{id}/reset",
            "/api/v1/characters/{id}/snapshots",
            "/api/v1/characters/{id}/snapshots/{name}",
            "/api/v1/characters/{id}/memories",
            "/api/v1/characters/{id}/memories/search",
            "/api/v1/characters/{id}/memories/{memory_id}",
            "/api/v1/characters/{id}/sessions",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} is not in the document");
        }
    }

    #[test]
    fn operation_ids_are_unique_and_tags_declared() {
        let doc = document();
        let tags: Vec<_> = doc.tags.iter().flatten().map(|t| t.name.clone()).collect();
        let mut ids = std::collections::HashSet::new();
        for (path, item) in &doc.paths.paths {
            let operations = [&item.get, &item.put, &item.post, &item.delete, &item.patch];
            for operation in operations.into_iter().flatten() {
                let id = operation.operation_id.clone().unwrap_or_default();
                assert!(ids.insert(id.clone()), "operation id `{id}` of {path} is used twice");
                for tag in operation.tags.iter().flatten() {
                    assert!(tags.contains(tag), "tag `{tag}` of {path} is not declared");
                }
            }
        }
    }

    #[test]
    fn protected_operations_need_the_key_and_public_ones_do_not() {
        let doc = serde_json::to_value(document()).unwrap();
        assert_eq!(doc["security"], serde_json::json!([{ "api_key": [] }]));
        let chat = &doc["paths"]["/v1/chat/completions"]["post"];
        assert!(chat.get("security").is_none());
        assert_eq!(chat["responses"]["401"]["$ref"], "#/components/responses/Unauthorized");
        for path in ["/health", "/api/v1/health", "/openapi.json"] {
            let get = &doc["paths"][path]["get"];
            assert_eq!(get["security"], serde_json::json!([{}]), "{path}");
            assert!(get["responses"].get("401").is_none(), "{path}");
        }
    }
}
