//! The upstreams of one model and the choice among them: each URL's health and
//! outstanding requests, the affinity of `prompt_cache_key`s to the URL that
//! served them last, and the [`Lease`] a request holds on its URL while it runs.
//!
//! A request goes to the healthy URL with the fewest outstanding requests (ties
//! taken in turn); one with a key goes back to its key's URL while that URL is
//! healthy, so an upstream's prompt cache (llama-server's slots, chorus's
//! snapshots) keeps serving the conversation. When no URL is healthy, every URL
//! is a candidate (best effort): health is only known at the last check, and
//! the real error of a real attempt says more than a refusal made up here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The most `prompt_cache_key`s remembered; past it the least recently used tenth is forgotten.
pub(crate) const AFFINITY_CAP: usize = 10_000;

/// One upstream URL.
#[derive(Debug)]
pub(crate) struct Target {
    /// Base URL without a trailing `/` (paths such as `/v1/chat/completions` are appended).
    pub(crate) url: String,
    /// The last health check passed and no real request has failed since.
    healthy: AtomicBool,
    /// Requests sent to it that have not finished (their [`Lease`]s).
    outstanding: AtomicU32,
    /// `/health` answered 404 once: health is checked with `GET /v1/models` instead.
    pub(crate) no_health_route: AtomicBool,
}

impl Target {
    /// Whether the URL is healthy now.
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Record a health check's result, logging a change.
    pub(crate) fn set_healthy(&self, healthy: bool, why: &str) {
        let was = self.healthy.swap(healthy, Ordering::Relaxed);
        if was && !healthy {
            tracing::warn!(url = %self.url, why, "upstream is unhealthy");
        } else if !was && healthy {
            tracing::info!(url = %self.url, "upstream is healthy again");
        }
    }
}

/// What a caller can see of one upstream URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamStatus {
    /// The base URL, as requests use it.
    pub url: String,
    /// Whether its last health check passed and no request has failed on it since.
    pub healthy: bool,
    /// Requests sent to it that have not finished.
    pub outstanding: u32,
}

/// The URLs of one model and the affinity of keys to them.
#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) targets: Vec<Target>,
    /// Taken for every choice, so that two requests chosen at once see each other's lease.
    affinity: Mutex<Affinity>,
    /// Where the search for the least busy URL starts, moved on at every choice: ties are
    /// taken in turn.
    next: AtomicUsize,
}

/// `prompt_cache_key` → the index of the URL that served it last, with when it was last used.
#[derive(Debug, Default)]
struct Affinity {
    keys: HashMap<String, (usize, u64)>,
    /// A counter of uses, the clock of `keys`.
    tick: u64,
}

impl Affinity {
    fn get(&mut self, key: &str) -> Option<usize> {
        self.tick += 1;
        let tick = self.tick;
        self.keys.get_mut(key).map(|(index, used)| {
            *used = tick;
            *index
        })
    }

    fn set(&mut self, key: &str, index: usize) {
        self.tick += 1;
        self.keys.insert(key.to_owned(), (index, self.tick));
        if self.keys.len() > AFFINITY_CAP {
            // Forget the least recently used tenth at once, so this runs once per
            // AFFINITY_CAP / 10 new keys.
            let mut ticks: Vec<u64> = self.keys.values().map(|(_, used)| *used).collect();
            let cut = AFFINITY_CAP / 10;
            let (_, oldest_kept, _) = ticks.select_nth_unstable(cut);
            let oldest_kept = *oldest_kept;
            self.keys.retain(|_, (_, used)| *used >= oldest_kept);
        }
    }
}

impl Pool {
    /// A pool of `urls` (normalised base URLs), all healthy until checked.
    pub(crate) fn new(urls: Vec<String>) -> Self {
        let targets = urls
            .into_iter()
            .map(|url| Target {
                url,
                healthy: AtomicBool::new(true),
                outstanding: AtomicU32::new(0),
                no_health_route: AtomicBool::new(false),
            })
            .collect();
        Self { targets, affinity: Mutex::new(Affinity::default()), next: AtomicUsize::new(0) }
    }

    fn affinity(&self) -> MutexGuard<'_, Affinity> {
        // The map is consistent after every statement; a panic elsewhere cannot leave it broken.
        self.affinity.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Choose a URL for a request with `key`, leaving out the indices in `tried`: the key's
    /// URL while it is healthy, else the healthy URL with the fewest outstanding requests
    /// (any URL when none is healthy), which then becomes the key's. `None` when every URL
    /// was tried.
    pub(crate) fn pick(self: &Arc<Self>, key: Option<&str>, tried: &[usize]) -> Option<Lease> {
        let mut affinity = self.affinity();
        let candidate = |i: &usize| !tried.contains(i);
        let kept = key
            .and_then(|k| affinity.get(k))
            .filter(|i| candidate(i) && self.targets.get(*i).is_some_and(Target::is_healthy));
        let index = match kept {
            Some(index) => index,
            None => {
                let n = self.targets.len();
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                let order: Vec<usize> = (0..n).map(|k| (start + k) % n).filter(candidate).collect();
                let healthy: Vec<usize> = order.iter().copied().filter(|&i| self.targets[i].is_healthy()).collect();
                let among = if healthy.is_empty() { order } else { healthy };
                // `min_by_key` keeps the first of equal elements: ties go to the URL whose turn it is.
                let index = among.into_iter().min_by_key(|&i| self.targets[i].outstanding.load(Ordering::Relaxed))?;
                if let Some(k) = key {
                    affinity.set(k, index);
                }
                index
            }
        };
        self.targets[index].outstanding.fetch_add(1, Ordering::Relaxed);
        Some(Lease { pool: self.clone(), index })
    }

    /// Forget which URL `key` used.
    pub(crate) fn forget(&self, key: &str) {
        self.affinity().keys.remove(key);
    }

    /// Outstanding requests on all URLs together.
    pub(crate) fn outstanding(&self) -> u32 {
        self.targets.iter().map(|t| t.outstanding.load(Ordering::Relaxed)).sum()
    }

    /// Every URL's health and load.
    pub(crate) fn status(&self) -> Vec<UpstreamStatus> {
        self.targets
            .iter()
            .map(|t| UpstreamStatus {
                url: t.url.clone(),
                healthy: t.is_healthy(),
                outstanding: t.outstanding.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// One request's hold on the URL it was sent to: counted as outstanding there until dropped.
#[derive(Debug)]
pub(crate) struct Lease {
    pool: Arc<Pool>,
    index: usize,
}

impl Lease {
    /// The URL's index in the pool.
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The URL's base.
    pub(crate) fn url(&self) -> &str {
        &self.pool.targets[self.index].url
    }

    /// The request failed in a way that says the URL is down (no connection, a 5xx, a broken
    /// stream): it is left out until its next health check passes.
    pub(crate) fn mark_unhealthy(&self, why: &str) {
        self.pool.targets[self.index].set_healthy(false, why);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.targets[self.index].outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pool(n: usize) -> Arc<Pool> {
        Arc::new(Pool::new((0..n).map(|i| format!("http://u{i}")).collect()))
    }

    #[test]
    fn the_least_busy_url_is_chosen_and_ties_rotate() {
        let p = pool(3);
        let a = p.pick(None, &[]).unwrap();
        let b = p.pick(None, &[]).unwrap();
        let c = p.pick(None, &[]).unwrap();
        let mut used = vec![a.index(), b.index(), c.index()];
        used.sort_unstable();
        assert_eq!(used, vec![0, 1, 2]);
        drop(b);
        // Only b's URL has nothing outstanding now.
        let d = p.pick(None, &[]).unwrap();
        assert_eq!(d.index(), used[1]);
        assert_eq!(p.outstanding(), 3);
        drop((a, c, d));
        assert_eq!(p.outstanding(), 0);
    }

    #[test]
    fn unhealthy_urls_are_left_out_unless_all_are() {
        let p = pool(2);
        p.targets[0].set_healthy(false, "test");
        for _ in 0..3 {
            assert_eq!(p.pick(None, &[]).unwrap().index(), 1);
        }
        p.targets[1].set_healthy(false, "test");
        let mut seen: Vec<usize> = (0..4).map(|_| p.pick(None, &[]).unwrap().index()).collect();
        seen.dedup();
        assert!(seen.len() > 1, "best effort uses every url: {seen:?}");
        assert!(p.pick(None, &[0, 1]).is_none());
        assert_eq!(p.pick(None, &[1]).unwrap().index(), 0);
    }

    #[test]
    fn a_key_stays_on_its_url_while_it_is_healthy() {
        let p = pool(2);
        let first = p.pick(Some("session/a"), &[]).unwrap();
        let home = first.index();
        // Its URL is the busier one now; the key stays all the same.
        let again = p.pick(Some("session/a"), &[]).unwrap();
        assert_eq!(again.index(), home);
        p.targets[home].set_healthy(false, "test");
        let moved = p.pick(Some("session/a"), &[]).unwrap();
        assert_ne!(moved.index(), home);
        p.targets[home].set_healthy(true, "test");
        assert_eq!(p.pick(Some("session/a"), &[]).unwrap().index(), moved.index(), "the key moved for good");
        p.forget("session/a");
        assert!(p.affinity().keys.is_empty());
    }

    #[test]
    fn affinity_is_bounded() {
        let p = pool(2);
        for i in 0..(AFFINITY_CAP + 5) {
            drop(p.pick(Some(&format!("k{i}")), &[]));
        }
        let len = p.affinity().keys.len();
        assert!((AFFINITY_CAP * 8 / 10..=AFFINITY_CAP).contains(&len), "{len}");
        // The newest keys are the ones kept.
        assert!(p.affinity().keys.contains_key(&format!("k{}", AFFINITY_CAP + 4)));
        assert!(!p.affinity().keys.contains_key("k0"));
    }
}
