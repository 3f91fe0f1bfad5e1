//! `GET /health` (liveness, model, uptime, slot use, recent decode steps) and
//! `GET /metrics` (Prometheus text format).

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use chorus_proto::chorus::{CacheHealth, ContextHealth, DecodeHealth, Health, SlotsHealth};

use crate::AppState;

/// Server health
///
/// Liveness, the loaded model, uptime, slot use, the recent decode steps, the KV cache and the
/// prompt cache's budgets. Needs no API key
/// (also served as `GET /api/v1/health`).
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "getHealth",
    tag = "health",
    security(()),
    responses(
        (status = 200, description = "The server is up", body = Health),
        (status = 503, description = "The models are still loading at startup: llama-server's \
            `{\"error\": {\"code\": 503, \"message\": \"Loading model\", \"type\": \"unavailable_error\"}}` \
            (every route answers it then)"),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> Json<Health> {
    let engine = &state.engine;
    let stats = engine.stats();
    let info = engine.default_info();
    let context = info.as_ref().map_or(
        ContextHealth {
            n_ctx: 0,
            n_ctx_slot: 0,
            n_ctx_train: 0,
            kv_unified: false,
            kv_bytes: 0,
            source: String::new(),
        },
        |m| ContextHealth {
            n_ctx: m.n_ctx,
            n_ctx_slot: m.n_ctx_slot,
            n_ctx_train: m.n_ctx_train,
            kv_unified: m.kv_unified,
            kv_bytes: m.kv_bytes,
            source: m.context_choice.clone(),
        },
    );
    let cache = CacheHealth {
        ram_budget_bytes: stats.cache.ram_budget,
        ram_bytes: stats.cache.ram_bytes,
        ram_tokens: stats.cache.ram_tokens,
        disk_budget_bytes: stats.cache.disk_budget,
        disk_bytes: stats.cache.disk_bytes,
    };
    Json(Health {
        status: "ok".into(),
        cache,
        model: info.map(|m| m.id).unwrap_or_default(),
        context,
        uptime_s: engine.uptime_s(),
        version: env!("CARGO_PKG_VERSION").into(),
        slots: SlotsHealth { total: stats.slots_total, busy: stats.slots_busy, queued: stats.queued },
        decode: DecodeHealth {
            last_steps_sequences: stats.last_steps_sequences,
            max_sequences: stats.max_sequences,
            steps: stats.steps,
        },
    })
}

/// Prometheus metrics
///
/// Requests by endpoint and status, tokens, slot use and latencies, in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "getMetrics",
    tag = "health",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8"))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.engine.metrics().render())
}
