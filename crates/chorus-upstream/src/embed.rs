//! Embeddings forwarded upstream: `POST {url}/v1/embeddings` (OpenAI API
//! reference, "Embeddings" → "Create embeddings") with `encoding_format:
//! "float"`, one request for all the text inputs and one for all the token
//! inputs (OpenAI's `input` holds one kind), the vectors put back in input
//! order and scaled to unit length, `usage.prompt_tokens` summed.

use std::sync::Arc;

use chorus_engine::embed::normalize;
use chorus_engine::{BackendError, EmbedRequest, EmbeddingInput, Embeddings};
use tokio::sync::oneshot;

use crate::client::Upstreams;
use crate::error::broken;
use crate::pool::Lease;
use crate::wire::{EMBEDDINGS_PATH, EmbeddingsResponse, embeddings_body};

/// Embed `request` and answer on `reply`; given up when the reply's receiver is dropped.
pub(crate) async fn run(
    upstreams: Arc<Upstreams>,
    lease: Lease,
    request: EmbedRequest,
    n_embd: u32,
    mut reply: oneshot::Sender<Result<Embeddings, BackendError>>,
) {
    let result = tokio::select! {
        () = reply.closed() => return,
        result = embed(&upstreams, lease, &request, n_embd) => result,
    };
    let _ = reply.send(result);
}

async fn embed(
    upstreams: &Upstreams,
    mut lease: Lease,
    request: &EmbedRequest,
    n_embd: u32,
) -> Result<Embeddings, BackendError> {
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; request.inputs.len()];
    let mut prompt_tokens = 0u32;
    let is_text = |input: &EmbeddingInput| matches!(input, EmbeddingInput::Text(_));
    for text in [true, false] {
        let (indices, inputs): (Vec<usize>, Vec<&EmbeddingInput>) =
            request.inputs.iter().enumerate().filter(|(_, input)| is_text(input) == text).unzip();
        if inputs.is_empty() {
            continue;
        }
        let body = embeddings_body(&inputs, &upstreams.model, request.truncate);
        let response = upstreams.send(&mut lease, None, EMBEDDINGS_PATH, &body).await?;
        let url = lease.url().to_owned();
        let bytes = response.bytes().await.map_err(|e| crate::error::unreachable(&url, &e))?;
        let answer: EmbeddingsResponse = serde_json::from_slice(&bytes)
            .map_err(|e| broken(&url, format!("the embeddings answer does not parse ({e})")))?;
        if answer.data.len() != inputs.len() {
            return Err(broken(&url, format!("{} vectors came back for {} inputs", answer.data.len(), inputs.len())));
        }
        for (position, data) in answer.data.into_iter().enumerate() {
            let at = data.index.unwrap_or(position);
            let Some(&slot) = indices.get(at) else {
                return Err(broken(&url, format!("a vector has index {at}, past the {} inputs", inputs.len())));
            };
            if n_embd != 0 && data.embedding.len() != n_embd as usize {
                return Err(broken(
                    &url,
                    format!(
                        "a vector has {} floats, but the model is configured with n_embd {n_embd}",
                        data.embedding.len()
                    ),
                ));
            }
            let mut vector = data.embedding;
            normalize(&mut vector);
            vectors[slot] = Some(vector);
        }
        prompt_tokens = prompt_tokens.saturating_add(answer.usage.map_or(0, |u| u.prompt_tokens));
    }
    let vectors = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.ok_or_else(|| broken(lease.url(), format!("no vector came back for input {i}"))))
        .collect::<Result<_, _>>()?;
    Ok(Embeddings { vectors, prompt_tokens })
}
