//! The host-RAM prompt cache (llama-server's `--cache-ram`): sequence states
//! that left their slot, each with the tokens its KV cells hold, under a budget
//! in bytes with least-recently-used eviction.
//!
//! A slot about to be cut for another prompt saves its state here first; a new
//! prompt takes the entry sharing the longest prefix with it when that beats
//! every free slot. An entry lives in one place at a time: restoring takes it
//! out (the slot holds it then), and saving it again puts it back. One cache
//! serves one loaded model, so entries are keyed by their tokens alone.

use std::sync::Arc;

use chorus_engine::Metrics;
use llama_cpp_2::token::LlamaToken;

/// One saved sequence: its tokens and llama.cpp's state bytes for them.
pub(crate) struct Entry {
    /// The tokens whose KV cells the state holds, at positions `0..tokens.len()`.
    pub(crate) tokens: Vec<LlamaToken>,
    /// `llama_state_seq_get_data` output (shared with a snapshot being written).
    pub(crate) state: Arc<Vec<u8>>,
    used: u64,
}

/// The RAM tier. Owned by the model thread: no lock.
pub(crate) struct PromptCache {
    budget: u64,
    entries: Vec<Entry>,
    bytes: u64,
    clock: u64,
    metrics: Arc<Metrics>,
}

impl PromptCache {
    /// An empty cache holding at most `budget` bytes of state; 0 keeps nothing.
    pub(crate) fn new(budget: u64, metrics: Arc<Metrics>) -> Self {
        Self { budget, entries: Vec::new(), bytes: 0, clock: 0, metrics }
    }

    /// The budget in bytes.
    pub(crate) fn budget(&self) -> u64 {
        self.budget
    }

    /// Whether the cache keeps anything at all.
    pub(crate) fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// Bytes of state held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether saving `tokens` would add anything: no entry holds them or more.
    pub(crate) fn would_keep(&self, tokens: &[LlamaToken]) -> bool {
        self.enabled() && !tokens.is_empty() && !self.entries.iter().any(|e| e.tokens.starts_with(tokens))
    }

    /// Keep a state. Entries it extends (their tokens a prefix of these) go; the least
    /// recently used go until it fits. False when it alone exceeds the budget, or an entry
    /// already covers it.
    pub(crate) fn insert(&mut self, tokens: Vec<LlamaToken>, state: Arc<Vec<u8>>) -> bool {
        let size = state.len() as u64;
        if size > self.budget || !self.would_keep(&tokens) {
            return false;
        }
        self.entries.retain(|e| !tokens.starts_with(&e.tokens));
        self.clock += 1;
        self.entries.push(Entry { tokens, state, used: self.clock });
        self.recount();
        while self.bytes > self.budget {
            let Some(oldest) = self.entries.iter().enumerate().min_by_key(|(_, e)| e.used).map(|(i, _)| i) else {
                break;
            };
            self.entries.swap_remove(oldest);
            self.recount();
        }
        true
    }

    /// The longest prefix of `prompt` an entry holds.
    pub(crate) fn best_prefix(&self, prompt: &[LlamaToken]) -> usize {
        self.entries.iter().map(|e| common_prefix(&e.tokens, prompt)).max().unwrap_or(0)
    }

    /// Take out the entry sharing the longest prefix with `prompt`, if that prefix is longer
    /// than `better_than`.
    pub(crate) fn take(&mut self, prompt: &[LlamaToken], better_than: usize) -> Option<Entry> {
        let (i, n) = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, prompt)))
            .max_by_key(|&(i, n)| (n, self.entries[i].used))?;
        if n <= better_than {
            return None;
        }
        let entry = self.entries.swap_remove(i);
        self.recount();
        Some(entry)
    }

    fn recount(&mut self) {
        self.bytes = self.entries.iter().map(|e| e.state.len() as u64).sum();
        let tokens: usize = self.entries.iter().map(|e| e.tokens.len()).sum();
        self.metrics.prompt_cache_ram_bytes.set(self.bytes as i64);
        self.metrics.prompt_cache_ram_tokens.set(tokens as i64);
    }
}

/// How many leading tokens `a` and `b` share.
pub(crate) fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().copied().map(LlamaToken).collect()
    }

    fn cache(budget: u64) -> PromptCache {
        PromptCache::new(budget, Arc::new(Metrics::new()))
    }

    fn state(n: usize) -> Arc<Vec<u8>> {
        Arc::new(vec![0; n])
    }

    #[test]
    fn the_longest_prefix_is_taken_and_leaves_the_cache() {
        let mut c = cache(100);
        assert!(c.insert(toks(&[1, 2, 3]), state(10)));
        assert!(c.insert(toks(&[1, 5, 6, 7]), state(10)));
        assert_eq!(c.best_prefix(&toks(&[1, 5, 6, 9])), 3);
        assert!(c.take(&toks(&[1, 5, 6, 9]), 3).is_none(), "no better than the slot's own prefix");
        let e = c.take(&toks(&[1, 5, 6, 9]), 1).expect("an entry");
        assert_eq!(e.tokens, toks(&[1, 5, 6, 7]));
        assert_eq!(c.bytes(), 10);
        assert_eq!(c.best_prefix(&toks(&[1, 5, 6, 9])), 1);
    }

    #[test]
    fn the_budget_is_never_exceeded_and_the_least_recently_used_go_first() {
        let mut c = cache(25);
        assert!(c.insert(toks(&[1]), state(10)));
        assert!(c.insert(toks(&[2]), state(10)));
        assert!(c.insert(toks(&[3]), state(10)));
        assert_eq!(c.bytes(), 20);
        assert_eq!(c.best_prefix(&toks(&[1])), 0, "the oldest left");
        assert_eq!(c.best_prefix(&toks(&[3])), 1);
        assert!(!c.insert(toks(&[4]), state(26)), "larger than the whole budget");
        assert_eq!(c.bytes(), 20);
        assert_eq!(c.metrics.prompt_cache_ram_bytes.get(), 20);
        assert_eq!(c.metrics.prompt_cache_ram_tokens.get(), 2);
    }

    #[test]
    fn a_longer_state_replaces_its_prefix_and_a_shorter_one_is_not_kept() {
        let mut c = cache(100);
        assert!(c.insert(toks(&[1, 2]), state(10)));
        assert!(c.insert(toks(&[1, 2, 3]), state(15)));
        assert_eq!(c.bytes(), 15, "[1, 2] is covered by [1, 2, 3]");
        assert!(!c.would_keep(&toks(&[1, 2])));
        assert!(!c.insert(toks(&[1, 2]), state(10)));
        assert_eq!(c.bytes(), 15);
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let mut c = cache(0);
        assert!(!c.enabled());
        assert!(!c.insert(toks(&[1]), state(1)));
        assert_eq!(c.bytes(), 0);
    }
}
