//! chorus-embed's integration tests: the real all-MiniLM-L6-v2 directory (`scripts/models.sh
//! minilm`, in `${CHORUS_FIXTURES_DIR:-${XDG_CACHE_HOME:-~/.cache}/chorus/fixtures}`) against
//! vectors that sentence-transformers itself wrote (`tests/data/minilm_reference.json`, made by
//! `tests/data/make_reference.py`). Without the fixture the tests say so and pass, except
//! under CI (`CI` set), where a missing fixture fails.

mod minilm;

use std::path::PathBuf;
use std::sync::OnceLock;

use chorus_embed::BertEmbedder;
use chorus_engine::{Backend, BackendError, EmbedRequest, EmbeddingInput, Embeddings};
use serde::Deserialize;

/// The fixture's directory, or `None` (outside CI) when it is not there.
pub(crate) fn fixture() -> Option<PathBuf> {
    // `CHORUS_MINILM` (what scripts/test.sh exports), else where scripts/models.sh keeps it.
    let dir = std::env::var_os("CHORUS_MINILM").map(PathBuf::from).or_else(|| {
        let fixtures = std::env::var_os("CHORUS_FIXTURES_DIR").map(PathBuf::from).or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            Some(cache.join("chorus/fixtures"))
        });
        fixtures.map(|f| f.join("all-minilm-l6-v2"))
    });
    match dir {
        Some(dir) if dir.join("modules.json").is_file() => Some(dir),
        other => {
            let why = match other {
                Some(dir) => format!("{} holds no all-MiniLM-L6-v2 model", dir.display()),
                None => "neither CHORUS_FIXTURES_DIR nor HOME is set".to_owned(),
            };
            assert!(std::env::var_os("CI").is_none(), "{why}: under CI the real-model fixtures must be there");
            eprintln!("skipped: {why} (scripts/models.sh minilm fetches it)");
            None
        }
    }
}

/// The fixture, loaded once for all tests (they share its thread, which answers one request
/// at a time).
pub(crate) fn model() -> Option<&'static BertEmbedder> {
    static MODEL: OnceLock<BertEmbedder> = OnceLock::new();
    let dir = fixture()?;
    Some(MODEL.get_or_init(|| BertEmbedder::load(&dir, "all-minilm-l6-v2".into()).expect("the fixture loads")))
}

/// `tests/data/minilm_reference.json`.
#[derive(Deserialize)]
pub(crate) struct Reference {
    pub(crate) max_seq_length: usize,
    pub(crate) items: Vec<Item>,
}

/// One sentence and what sentence-transformers made of it.
#[derive(Deserialize)]
pub(crate) struct Item {
    pub(crate) text: String,
    /// The ids it fed the model, after truncation at `max_seq_length`.
    pub(crate) token_ids: Vec<u32>,
    pub(crate) n_tokens_untruncated: usize,
    /// Normalised.
    pub(crate) vector: Vec<f32>,
}

pub(crate) fn reference() -> Reference {
    serde_json::from_str(include_str!("../data/minilm_reference.json")).expect("the reference parses")
}

/// Embed and wait for the answer.
pub(crate) fn embed(
    model: &BertEmbedder,
    inputs: Vec<EmbeddingInput>,
    truncate: bool,
) -> Result<Embeddings, BackendError> {
    model.embed(EmbedRequest { inputs, truncate })?.blocking_recv().expect("the embedding thread answers")
}

pub(crate) fn text(s: &str) -> EmbeddingInput {
    EmbeddingInput::Text(s.to_owned())
}

pub(crate) fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The largest difference of two vectors' elements.
pub(crate) fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
