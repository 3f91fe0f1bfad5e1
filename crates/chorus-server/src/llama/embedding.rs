//! llama-server's native `POST /embedding` (and `/embeddings`, which llama-server answers the
//! same way; llama.cpp `tools/server/README.md`, "POST /embedding"): the pooled vector of each
//! input, scaled as `embd_normalize` says, as `[{"index", "embedding": [[…]]}]`.

use axum::Json;
use axum::extract::State;
use chorus_engine::{EmbedRequest, EmbeddingInput, Engine};
use chorus_proto::llama::{NativeEmbedding, NativeEmbeddingRequest};
use chorus_proto::openai::{self as wire, ErrorResponse};
use serde_json::Value;

use crate::extract::AppJson;
use crate::{ApiError, AppState};

/// Embed texts (llama-server)
///
/// One pooled vector per input of `content` (or `input`): a string, strings, token ids or
/// arrays of token ids. `embd_normalize` scales them: 2 (default) to Euclidean unit length,
/// 1 taxicab, p > 2 the p-norm, 0 the largest value to 32760. Pooling `none` (a vector per
/// token) and `embd_normalize: -1` are not served: chorus's backends pool and normalise.
#[utoipa::path(
    post,
    path = "/embedding",
    operation_id = "nativeEmbedding",
    tag = "llama",
    request_body = NativeEmbeddingRequest,
    responses(
        (status = 200, description = "The vectors, in input order", body = Vec<NativeEmbedding>),
        (status = 400, description = "No `content`, a bad `embd_normalize`, too long an input, or a model \
            that serves no embeddings (`model_not_supported`)", body = ErrorResponse),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorResponse),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    AppJson(req): AppJson<NativeEmbeddingRequest>,
) -> Result<Json<Vec<NativeEmbedding>>, ApiError> {
    let invalid = |param: &str, message: &str| ApiError::invalid(Some(param.to_owned()), message);
    let input = req.content.or(req.input).ok_or_else(|| invalid("content", "content is required"))?;
    let p = req.embd_normalize.unwrap_or(2);
    if p < 0 {
        return Err(invalid(
            "embd_normalize",
            "embd_normalize must be 0 (int16 scale), 1 (taxicab), 2 (Euclidean, the default) or more (p-norm); \
             chorus does not serve unnormalised vectors (-1)",
        ));
    }
    let model = state.engine.resolve_embedding(req.model.as_deref())?;
    let inputs = inputs(&state.engine, &model, input, "content").await?;
    let request = EmbedRequest { inputs, truncate: req.truncate.unwrap_or(false) };
    let embeddings = state.engine.embed(Some(&model), request, None, None).await?;
    Ok(Json(
        (0..)
            .zip(embeddings.vectors)
            .map(|(index, mut vector)| {
                rescale(&mut vector, p);
                NativeEmbedding { index, embedding: vec![vector] }
            })
            .collect(),
    ))
}

/// The engine's inputs of an embedding request's `input` (or `content`, named `param` in
/// errors): OpenAI's shapes, and llama-server's others, read as llama-server reads them (an
/// array holding a number is one input, its strings tokenized into it, the first with the
/// model's special tokens).
pub(crate) async fn inputs(
    engine: &Engine,
    model: &str,
    input: wire::EmbeddingInput,
    param: &str,
) -> Result<Vec<EmbeddingInput>, ApiError> {
    Ok(match input {
        wire::EmbeddingInput::Text(t) => vec![EmbeddingInput::Text(t)],
        wire::EmbeddingInput::Texts(ts) => ts.into_iter().map(EmbeddingInput::Text).collect(),
        wire::EmbeddingInput::Tokens(ids) => vec![EmbeddingInput::Tokens(ids)],
        wire::EmbeddingInput::TokenArrays(arrays) => arrays.into_iter().map(EmbeddingInput::Tokens).collect(),
        wire::EmbeddingInput::Mixed(value) => {
            let parts: Vec<&Value> = match &value {
                Value::Array(items) if !items.iter().any(Value::is_number) => items.iter().collect(),
                other => vec![other],
            };
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                out.push(mixed(engine, model, part, param).await?);
            }
            out
        }
    })
}

/// One input in llama-server's shapes.
async fn mixed(engine: &Engine, model: &str, part: &Value, param: &str) -> Result<EmbeddingInput, ApiError> {
    let shapes = || {
        ApiError::invalid(
            Some(param.to_owned()),
            format!(
                "{param} must be a string, token ids, strings mixed with token ids, an object with `prompt_string` \
                 or text `content` parts, or an array of those"
            ),
        )
    };
    match part {
        Value::String(text) => Ok(EmbeddingInput::Text(text.clone())),
        Value::Object(map) => match (map.get("prompt_string"), map.get("content")) {
            (Some(Value::String(text)), _) => Ok(EmbeddingInput::Text(text.clone())),
            (_, Some(Value::Array(content))) => {
                let mut text = String::new();
                for item in content {
                    match (item.get("type").and_then(Value::as_str), item.get("text").and_then(Value::as_str)) {
                        (Some("text"), Some(t)) => text.push_str(t),
                        _ => return Err(shapes()),
                    }
                }
                Ok(EmbeddingInput::Text(text))
            }
            _ => Err(shapes()),
        },
        Value::Array(items) => {
            let mut tokens = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::Number(n) => tokens.push(n.as_u64().and_then(|v| u32::try_from(v).ok()).ok_or_else(shapes)?),
                    Value::String(text) => {
                        let pieces = engine.tokenize(Some(model), text, i == 0, true).await?;
                        tokens.extend(pieces.iter().map(|t| t.id as u32));
                    }
                    _ => return Err(shapes()),
                }
            }
            Ok(EmbeddingInput::Tokens(tokens))
        }
        _ => Err(shapes()),
    }
}

/// Scale a unit-length vector as llama.cpp's `common_embd_normalize` with `embd_norm` `p`
/// would scale the raw one (each norm is the same direction at another length).
fn rescale(vector: &mut [f32], p: i32) {
    let norm = match p {
        2 => return,
        0 => vector.iter().fold(0.0f32, |m, x| m.max(x.abs())) / 32760.0,
        1 => vector.iter().map(|x| x.abs()).sum(),
        p => vector.iter().map(|x| f64::from(x.abs()).powi(p)).sum::<f64>().powf(1.0 / f64::from(p)) as f32,
    };
    if norm > 0.0 {
        for x in vector.iter_mut() {
            *x /= norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rescale;

    #[test]
    fn rescaling_a_unit_vector_gives_each_norm() {
        let unit = [0.6f32, -0.8];
        let mut v = unit;
        rescale(&mut v, 1);
        assert!((v[0].abs() + v[1].abs() - 1.0).abs() < 1e-6, "{v:?}");
        let mut v = unit;
        rescale(&mut v, 0);
        assert!((v[1] + 32760.0).abs() < 1e-2, "{v:?}");
        let mut v = unit;
        rescale(&mut v, 3);
        let p3: f32 = v.iter().map(|x| x.abs().powi(3)).sum();
        assert!((p3 - 1.0).abs() < 1e-5, "{v:?}");
        let mut v = unit;
        rescale(&mut v, 2);
        assert_eq!(v, unit);
    }
}
