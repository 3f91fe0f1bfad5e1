//! Episodic memory retrieval after Park et al. 2023, "Generative Agents: Interactive Simulacra
//! of Human Behavior" (§4.1, "Memory and Retrieval"): a memory's score is the sum of its
//! recency (exponential decay per hour since it was last retrieved), its importance (1–10, as
//! the model rated it) and its relevance (cosine similarity of its embedding with the
//! query's), each min-max normalised over the candidates. The top k are injected into the
//! prompt, and retrieving a memory refreshes its recency.
//!
//! Two departures, both because min-max normalisation stretches whatever spread the candidates
//! have to the full `[0, 1]`:
//! - over a conversation of minutes the recencies differ by thousandths; normalised, that noise
//!   would weigh as much as relevance. So recency and relevance are divided by at least
//!   [`MIN_SPREAD`]: values that hardly differ contribute as little as they differ;
//! - importance already has a scale of its own, so it is placed on it, `(importance - 1) / 9`,
//!   not stretched: where the candidates were rated 9 and 10 (a small model rates most
//!   exchanges so), min-max would make that one point outweigh the whole range of relevance,
//!   and "what is my sister's name?" would retrieve the breakfast talk rated 10 over the
//!   exchange rated 9 that named her.

use crate::store::MemoryRecord;

/// The smallest spread a component is normalised by (see the module docs).
pub const MIN_SPREAD: f64 = 0.1;

/// A memory's retrieval score and its parts, each in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Index into the candidates.
    pub index: usize,
    /// recency + importance + relevance.
    pub total: f64,
    /// Normalised recency.
    pub recency: f64,
    /// Importance on its scale: 1 is 0, 10 is 1.
    pub importance: f64,
    /// Normalised relevance.
    pub relevance: f64,
}

/// Cosine similarity of two vectors (0 when either is empty or their lengths differ).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    if a.is_empty() || a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        dot += f64::from(*x) * f64::from(*y);
        na += f64::from(*x) * f64::from(*x);
        nb += f64::from(*y) * f64::from(*y);
    }
    if na == 0.0 || nb == 0.0 { 0.0 } else { dot / (na.sqrt() * nb.sqrt()) }
}

fn normalise(values: &[f64]) -> Vec<f64> {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let spread = (max - min).max(MIN_SPREAD);
    values.iter().map(|v| (v - min) / spread).collect()
}

/// Score `candidates` for a query embedding at `now` (Unix ms), best first.
/// `decay` is the recency factor per hour (Park et al.: 0.995).
pub fn rank(candidates: &[&MemoryRecord], query: &[f32], now: i64, decay: f64) -> Vec<Score> {
    if candidates.is_empty() {
        return Vec::new();
    }
    let recency: Vec<f64> = candidates
        .iter()
        .map(|m| {
            let hours = (now - m.accessed_at).max(0) as f64 / 3_600_000.0;
            decay.powf(hours)
        })
        .collect();
    let i: Vec<f64> = candidates.iter().map(|m| f64::from(m.importance.clamp(1, 10) - 1) / 9.0).collect();
    let relevance: Vec<f64> = candidates.iter().map(|m| cosine(&m.embedding, query)).collect();
    let (r, v) = (normalise(&recency), normalise(&relevance));
    let mut scores: Vec<Score> = (0..candidates.len())
        .map(|k| Score { index: k, total: r[k] + i[k] + v[k], recency: r[k], importance: i[k], relevance: v[k] })
        .collect();
    scores.sort_by(|a, b| b.total.total_cmp(&a.total).then(a.index.cmp(&b.index)));
    scores
}

/// The memory `embedding` nearly duplicates (cosine at or above `threshold`), the most similar
/// first: a new memory merges into it instead of being added.
pub fn near_duplicate<'m>(
    memories: &'m [MemoryRecord],
    embedding: &[f32],
    user: Option<&str>,
    threshold: f64,
) -> Option<&'m MemoryRecord> {
    memories
        .iter()
        .filter(|m| m.user.as_deref() == user)
        .map(|m| (m, cosine(&m.embedding, embedding)))
        .filter(|(_, c)| *c >= threshold)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(m, _)| m)
}

/// The Park et al. importance question about `memory` (a phrase such as "the exchange below"), for
/// a grammar-constrained answer with an `importance` field.
pub fn importance_prompt(memory: &str) -> String {
    format!(
        "On the scale of 1 to 10, where 1 is purely mundane (e.g., a greeting, small talk about \
         the weather) and 10 is extremely poignant (e.g., a break up, a secret revealed, a \
         promise made), rate the likely poignancy of {memory} as `importance`."
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn memory(id: &str, importance: u8, embedding: Vec<f32>, accessed_at: i64) -> MemoryRecord {
        MemoryRecord {
            id: id.into(),
            user: None,
            content: id.into(),
            importance,
            embedding,
            created_at: accessed_at,
            accessed_at,
            turn: 1,
            merged: Vec::new(),
        }
    }

    #[test]
    fn relevance_wins_when_recency_hardly_differs() {
        let hour = 3_600_000;
        let old = memory("old", 5, vec![1.0, 0.0], 0);
        let new = memory("new", 5, vec![0.0, 1.0], 60_000);
        let scores = rank(&[&old, &new], &[1.0, 0.1], 2 * 60_000, 0.995);
        assert_eq!(scores[0].index, 0, "the relevant memory beats one a minute newer: {scores:?}");
        // Days apart, recency counts fully.
        let ancient = memory("ancient", 5, vec![1.0, 0.0], -(30 * 24 * hour));
        let scores = rank(&[&ancient, &new], &[1.0, 1.0], 2 * 60_000, 0.995);
        assert!(scores[0].index == 1 && scores[0].recency > 0.99, "{scores:?}");
    }

    #[test]
    fn a_point_of_importance_does_not_outweigh_relevance() {
        // Rated 9 and 10, as a small model rates most exchanges.
        let named = memory("named", 9, vec![1.0, 0.0], 0);
        let breakfast = memory("breakfast", 10, vec![0.3, 1.0], 0);
        let scores = rank(&[&breakfast, &named], &[1.0, 0.05], 0, 0.995);
        assert_eq!(scores[0].index, 1, "{scores:?}");
        assert!((scores[1].importance - 1.0).abs() < 1e-9 && (scores[0].importance - 8.0 / 9.0).abs() < 1e-9);
    }

    #[test]
    fn importance_and_duplicates() {
        let a = memory("a", 9, vec![1.0, 0.0], 0);
        let b = memory("b", 1, vec![1.0, 0.0], 0);
        assert_eq!(rank(&[&b, &a], &[1.0, 0.0], 0, 0.995)[0].index, 1);
        let all = vec![a.clone(), memory("c", 3, vec![0.0, 1.0], 0)];
        assert_eq!(near_duplicate(&all, &[0.99, 0.05], None, 0.92).map(|m| m.id.as_str()), Some("a"));
        assert!(near_duplicate(&all, &[0.7, 0.7], None, 0.92).is_none());
        assert!((cosine(&[1.0, 0.0], &[0.0, 1.0])).abs() < 1e-9);
    }
}
