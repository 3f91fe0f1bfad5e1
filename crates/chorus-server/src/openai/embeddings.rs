//! `POST /v1/embeddings` (OpenAI API reference, "Embeddings", `createEmbedding`): the wire
//! request to the engine's [`EmbedRequest`], the vectors back as floats or base64 of their
//! little-endian f32 bytes.

use axum::Json;
use axum::extract::State;
use base64::Engine as _;
use chorus_engine::EmbedRequest;
use chorus_proto::openai::{
    Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage, EmbeddingVector, EncodingFormat, ErrorResponse,
    ObjectType,
};

use super::convert;
use crate::extract::AppJson;
use crate::{ApiError, AppState};

/// Create embeddings
///
/// One unit-length vector per input, in input order. `input` is a string, an array of strings,
/// an array of token ids or an array of token-id arrays (at most 2048, none empty);
/// `encoding_format: base64` gives each vector as base64 of its little-endian f32 bytes;
/// `dimensions` keeps the first values and renormalises them. An input longer than the
/// model reads is a 400 unless `truncate` is true.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    operation_id = "createEmbedding",
    tag = "openai",
    request_body = EmbeddingRequest,
    responses(
        (status = 200, description = "The embeddings", body = EmbeddingList),
        (status = 400, description = "Invalid input, `dimensions` or too long an input (`context_length_exceeded`), or a model that serves no embeddings (`model_not_supported`)", body = ErrorResponse),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
        (status = 503, description = "No room in the memory budget now (`model_busy`, with `Retry-After`)", body = ErrorResponse),
    )
)]
pub(super) async fn create(
    State(state): State<AppState>,
    AppJson(req): AppJson<EmbeddingRequest>,
) -> Result<Json<EmbeddingList>, ApiError> {
    let keep_alive = convert::keep_alive(req.keep_alive.as_ref())?;
    let model = state.engine.resolve_embedding(req.model.as_deref())?;
    let inputs = crate::llama::embedding::inputs(&state.engine, &model, req.input, "input").await?;
    let request = EmbedRequest { inputs, truncate: req.truncate.unwrap_or(false) };
    let embeddings = state.engine.embed(Some(&model), request, req.dimensions, keep_alive).await?;
    let format = req.encoding_format.unwrap_or_default();
    let data = embeddings
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| Embedding {
            object: ObjectType::Embedding,
            index: index as u32,
            embedding: match format {
                EncodingFormat::Float => EmbeddingVector::Float(vector),
                EncodingFormat::Base64 => EmbeddingVector::Base64(base64_f32(&vector)),
            },
        })
        .collect();
    let tokens = embeddings.prompt_tokens;
    Ok(Json(EmbeddingList {
        object: ObjectType::List,
        data,
        model,
        usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
    }))
}

/// Base64 (standard alphabet, padded) of the floats' little-endian bytes, as OpenAI sends them.
fn base64_f32(vector: &[f32]) -> String {
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_is_little_endian_f32() {
        assert_eq!(super::base64_f32(&[1.0]), "AACAPw==");
    }
}
