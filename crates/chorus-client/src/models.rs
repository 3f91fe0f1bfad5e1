//! The native models API (`/api/v1/models`): every registered model and where it stands in
//! the server's pool, loading and unloading one, and pulls from the Hugging Face hub whose
//! progress arrives as a stream of [`PullProgress`] events.

use chorus_proto::models::{LoadRequest, ModelEntry, ModelEntryList, PullProgress, PullRequest};
use chorus_proto::openai::KeepAlive;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::Method;

use crate::{Client, ClientError, sse_json};

/// `id` as one URL path segment: everything but letters, digits and `-._~` percent-encoded.
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Client {
    /// `GET /api/v1/models`: every registered model, loaded or not, and the memory budget.
    ///
    /// # Errors
    /// [`ClientError`].
    pub async fn model_states(&self) -> Result<ModelEntryList, ClientError> {
        self.send_json(self.request(Method::GET, "/api/v1/models", true)).await
    }

    /// `POST /api/v1/models/{id}/load`: load it now, kept `keep_alive` once idle (its own
    /// keep_alive when `None`); answers when it is loaded.
    ///
    /// # Errors
    /// [`ClientError`]; `Api` 404 for an unknown model, 503 when there is no room or the
    /// load failed.
    pub async fn load_model(&self, id: &str, keep_alive: Option<KeepAlive>) -> Result<ModelEntry, ClientError> {
        let path = format!("/api/v1/models/{}/load", segment(id));
        let rb = self.request(Method::POST, &path, true).json(&LoadRequest { keep_alive });
        self.send_json(rb).await
    }

    /// `POST /api/v1/models/{id}/unload`: answers once it is out of memory.
    ///
    /// # Errors
    /// [`ClientError`]; `Api` 404 for an unknown model.
    pub async fn unload_model(&self, id: &str) -> Result<ModelEntry, ClientError> {
        let path = format!("/api/v1/models/{}/unload", segment(id));
        self.send_json(self.request(Method::POST, &path, true)).await
    }

    /// `POST /api/v1/models/pull`: the pull's progress events, the last one `success` (with
    /// the registered `model`) or `error`. Dropping the stream does not stop the pull.
    ///
    /// # Errors
    /// [`ClientError`] before the stream starts: `Api` 400 for a source that cannot be pulled,
    /// 409 for an id taken, 501 when the server cannot pull.
    pub async fn pull_model(
        &self,
        request: &PullRequest,
    ) -> Result<BoxStream<'static, Result<PullProgress, ClientError>>, ClientError> {
        let rb = self.request(Method::POST, "/api/v1/models/pull", false).json(request);
        let response = self.send(rb).await?;
        Ok(sse_json(response.bytes_stream()).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn ids_become_one_path_segment() {
        assert_eq!(segment("qwen2.5-0.5b_q4~x"), "qwen2.5-0.5b_q4~x");
        assert_eq!(segment("org/model:7b"), "org%2Fmodel%3A7b");
    }
}
