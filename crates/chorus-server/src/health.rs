//! `GET /health` (liveness, model, uptime, slot use, recent decode steps) and
//! `GET /metrics` (Prometheus text format).

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use chorus_proto::chorus::{DecodeHealth, Health, SlotsHealth};

use crate::AppState;

pub(crate) async fn health(State(state): State<AppState>) -> Json<Health> {
    let engine = &state.engine;
    let stats = engine.stats();
    let model = engine.models().into_iter().next().map(|m| m.id).unwrap_or_default();
    Json(Health {
        status: "ok".into(),
        model,
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

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.engine.metrics().render())
}
