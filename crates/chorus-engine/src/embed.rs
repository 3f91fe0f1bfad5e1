//! Embeddings: the request a backend embeds ([`EmbedRequest`]), what it gives
//! back ([`Embeddings`]), and the engine's part of `POST /v1/embeddings`
//! (OpenAI API reference, "Embeddings"): validation of the inputs and
//! `dimensions`, and the truncation and renormalisation that `dimensions` asks
//! for, which the engine does for every backend alike.

use crate::{BackendError, ValidationError};

/// One input of an embeddings request (OpenAI's `input` is a string, an array of strings,
/// an array of token ids, or an array of token-id arrays; each becomes one of these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbeddingInput {
    /// Text, tokenized by the model's own tokenizer (with its special tokens, such as BERT's
    /// `[CLS]`/`[SEP]`).
    Text(String),
    /// Token ids of the model's vocabulary, used as they are.
    Tokens(Vec<u32>),
}

/// What a backend is asked to embed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedRequest {
    /// The inputs, at least one; the answer keeps their order.
    pub inputs: Vec<EmbeddingInput>,
    /// Cut inputs longer than the model's limit to the limit instead of refusing them (the
    /// `truncate` field of text-embeddings-inference and llama-server).
    pub truncate: bool,
}

/// A backend's answer: one L2-normalised vector per input, in input order, and the tokens read.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// `n_embd` floats per input.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens of all inputs together, after truncation (OpenAI's `usage.prompt_tokens`).
    pub prompt_tokens: u32,
}

/// The answer to an embeddings request, from the backend's thread.
pub type EmbedReply = tokio::sync::oneshot::Receiver<Result<Embeddings, BackendError>>;

/// The most inputs one request may carry (OpenAI's limit is 2048).
pub const MAX_INPUTS: usize = 2048;

impl EmbedRequest {
    /// Check the inputs: at least one, at most [`MAX_INPUTS`], none empty.
    ///
    /// # Errors
    /// [`ValidationError`] on `input`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.inputs.is_empty() {
            return Err(ValidationError::new("input", "`input` must hold at least one string or token array"));
        }
        if self.inputs.len() > MAX_INPUTS {
            return Err(ValidationError::new(
                "input",
                format!("`input` holds {} items; at most {MAX_INPUTS} are accepted per request", self.inputs.len()),
            ));
        }
        for (i, input) in self.inputs.iter().enumerate() {
            let empty = match input {
                EmbeddingInput::Text(t) => t.is_empty(),
                EmbeddingInput::Tokens(t) => t.is_empty(),
            };
            if empty {
                return Err(ValidationError::new("input", format!("`input[{i}]` is empty; every input needs content")));
            }
        }
        Ok(())
    }
}

/// Check `dimensions` against the model's `n_embd`: 1 to `n_embd`.
///
/// # Errors
/// [`ValidationError`] on `dimensions`.
pub fn check_dimensions(dimensions: Option<u32>, n_embd: u32) -> Result<(), ValidationError> {
    match dimensions {
        Some(d) if d == 0 || d > n_embd => Err(ValidationError::new(
            "dimensions",
            format!("`dimensions` must be between 1 and {n_embd}, the size of this model's embeddings; got {d}"),
        )),
        _ => Ok(()),
    }
}

/// Keep the first `dimensions` floats of `vector` and scale them back to unit length (how
/// Matryoshka-trained embeddings are shortened; OpenAI's `dimensions`).
pub fn truncate_and_normalize(vector: &mut Vec<f32>, dimensions: usize) {
    vector.truncate(dimensions);
    normalize(vector);
}

/// Scale `vector` to unit L2 length; a zero vector stays zero.
pub fn normalize(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>().sqrt();
    if norm > 0.0 {
        for x in vector {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_renormalises() {
        let mut v = vec![3.0, 4.0, 12.0];
        truncate_and_normalize(&mut v, 2);
        assert_eq!(v, vec![0.6, 0.8]);
    }

    #[test]
    fn dimensions_must_fit_the_model() {
        assert!(check_dimensions(None, 384).is_ok());
        assert!(check_dimensions(Some(384), 384).is_ok());
        assert_eq!(check_dimensions(Some(385), 384).unwrap_err().param, "dimensions");
        assert!(check_dimensions(Some(0), 384).is_err());
    }

    #[test]
    fn inputs_are_checked() {
        let r = |inputs| EmbedRequest { inputs, truncate: false };
        assert!(r(vec![]).validate().is_err());
        assert!(r(vec![EmbeddingInput::Text(String::new())]).validate().is_err());
        assert!(r(vec![EmbeddingInput::Tokens(vec![1, 2])]).validate().is_ok());
    }
}
