//! How a download reports its progress: the `DownloadProgress` trait (the
//! CLI's progress bar implements it), and `ChannelProgress`, which turns the
//! reports into throttled `PullProgress` values on a tokio channel for a
//! server to stream (over SSE, say).

use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

/// Receives progress of one file download. The CLI implements it with a
/// progress bar; libraries and tests use [`NoProgress`].
///
/// Calls come in the order `blob`, `start`, any number of `advance`,
/// `verifying` (once every byte is in), `finish`. `finish` is also called when
/// the transfer fails after `start` (then `verifying` may be missing). A file
/// found in the cache causes no calls at all. When the future driving the
/// download is dropped, the calls simply stop.
pub trait DownloadProgress: Send {
    /// Names the blob about to be fetched, before `start`: its ETag, which
    /// for LFS files (GGUF models) is the SHA-256 of the content in 64 hex
    /// digits. The default ignores it.
    fn blob(&mut self, _etag: &str) {}
    /// A transfer begins. `file` is the path of the file inside its repository;
    /// `total` the full size in bytes when the hub announced it; `already` the
    /// bytes kept from an earlier partial download (0 when starting afresh).
    fn start(&mut self, file: &str, total: Option<u64>, already: u64);
    /// `bytes` more bytes were received and written.
    fn advance(&mut self, bytes: u64);
    /// Every byte is in; the file is being synced to disk and checked (its
    /// size, and its SHA-256 when the ETag is one). The default ignores it.
    fn verifying(&mut self) {}
    /// The transfer ended (successfully or not).
    fn finish(&mut self);
}

/// A [`DownloadProgress`] that ignores every report.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl DownloadProgress for NoProgress {
    fn start(&mut self, _file: &str, _total: Option<u64>, _already: u64) {}
    fn advance(&mut self, _bytes: u64) {}
    fn finish(&mut self) {}
}

/// The stage a pull is in, as Ollama's pull progress `status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullStatus {
    /// Bytes are arriving (`completed` of `total`).
    Downloading,
    /// Every byte is in; the file is being synced and checked.
    Verifying,
    /// The file is in the cache (downloaded now or found there).
    Done,
}

/// One progress report of a pull, shaped like Ollama's pull progress
/// (`status`, `digest`, `total`, `completed`) plus the file. A plain value:
/// the server turns it into its wire type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    /// The stage.
    pub status: PullStatus,
    /// Path of the file inside its repository, e.g. `qwen2.5-0.5b-instruct-q4_k_m.gguf`.
    pub file: String,
    /// `sha256:HEX` when the blob's ETag is a SHA-256 (LFS files), else `None`.
    pub digest: Option<String>,
    /// Full size in bytes, when known.
    pub total: Option<u64>,
    /// Bytes in the cache so far, kept bytes of a resumed download included.
    pub completed: u64,
}

/// Least time between two `downloading` reports of a [`ChannelProgress`].
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// A [`DownloadProgress`] that sends [`PullProgress`] values into a tokio
/// channel: one `downloading` at the start, then at most one per
/// [`PROGRESS_INTERVAL`] (the latest count; others are merged), a last
/// `downloading` with the final count when the throttle held it back, one
/// `verifying`, and `done` when the caller reports it with
/// [`ChannelProgress::done`] (which [`pull`](crate::pull) does). A dropped
/// receiver is ignored: the download goes on.
///
/// The sends never block, so it is usable from the download's own task; the
/// channel is unbounded, which the throttle keeps to about ten values a
/// second.
#[derive(Debug)]
pub struct ChannelProgress {
    sender: UnboundedSender<PullProgress>,
    interval: Duration,
    file: String,
    digest: Option<String>,
    total: Option<u64>,
    completed: u64,
    /// When the last `downloading` went out; `None` before `start`.
    last_sent: Option<Instant>,
    /// Bytes were counted since the last report.
    unsent: bool,
}

impl ChannelProgress {
    /// Reports into `sender`, throttled to one `downloading` per [`PROGRESS_INTERVAL`].
    pub fn new(sender: UnboundedSender<PullProgress>) -> Self {
        Self::with_interval(sender, PROGRESS_INTERVAL)
    }

    /// Reports into `sender`, at most one `downloading` per `interval`
    /// besides the first and the last (`Duration::ZERO`: every advance).
    pub fn with_interval(sender: UnboundedSender<PullProgress>, interval: Duration) -> Self {
        ChannelProgress {
            sender,
            interval,
            file: String::new(),
            digest: None,
            total: None,
            completed: 0,
            last_sent: None,
            unsent: false,
        }
    }

    /// Sends `done` for `file` with its size in bytes (`total` and
    /// `completed` both `size`). The file and digest of the transfer are kept
    /// when there was one; otherwise `file` names it.
    pub fn done(&mut self, file: &str, size: u64) {
        if self.file.is_empty() {
            file.clone_into(&mut self.file);
        }
        self.total = Some(size);
        self.completed = size;
        self.send(PullStatus::Done);
    }

    fn send(&mut self, status: PullStatus) {
        let progress = PullProgress {
            status,
            file: self.file.clone(),
            digest: self.digest.clone(),
            total: self.total,
            completed: self.completed,
        };
        // A closed channel means nobody watches any more; the download goes on.
        let _ = self.sender.send(progress);
    }

    fn send_downloading(&mut self) {
        self.send(PullStatus::Downloading);
        self.last_sent = Some(Instant::now());
        self.unsent = false;
    }

    fn flush(&mut self) {
        if self.unsent {
            self.send_downloading();
        }
    }
}

impl DownloadProgress for ChannelProgress {
    fn blob(&mut self, etag: &str) {
        self.digest = crate::download::sha256_etag(etag).map(|sha| format!("sha256:{sha}"));
    }

    fn start(&mut self, file: &str, total: Option<u64>, already: u64) {
        file.clone_into(&mut self.file);
        self.total = total;
        self.completed = already;
        self.send_downloading();
    }

    fn advance(&mut self, bytes: u64) {
        self.completed += bytes;
        self.unsent = true;
        if self.last_sent.is_none_or(|at| at.elapsed() >= self.interval) {
            self.send_downloading();
        }
    }

    fn verifying(&mut self) {
        self.flush();
        self.send(PullStatus::Verifying);
    }

    fn finish(&mut self) {
        // After a failure, the last report says where the download stopped.
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    fn drain(receiver: &mut mpsc::UnboundedReceiver<PullProgress>) -> Vec<(PullStatus, u64)> {
        std::iter::from_fn(|| receiver.try_recv().ok()).map(|p| (p.status, p.completed)).collect()
    }

    #[test]
    fn a_long_interval_sends_the_first_and_the_last_count_only() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let mut progress = ChannelProgress::with_interval(sender, Duration::from_secs(3600));
        progress.blob(&"AB".repeat(32));
        progress.start("m.gguf", Some(1_000), 100);
        for _ in 0..9 {
            progress.advance(100);
        }
        progress.verifying();
        progress.finish();
        progress.done("m.gguf", 1_000);

        use PullStatus::*;
        assert_eq!(
            drain(&mut receiver),
            vec![(Downloading, 100), (Downloading, 1_000), (Verifying, 1_000), (Done, 1_000)]
        );
    }

    #[test]
    fn a_zero_interval_sends_every_advance_and_reports_the_digest() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let mut progress = ChannelProgress::with_interval(sender, Duration::ZERO);
        progress.blob(&"ab".repeat(32));
        progress.start("m.gguf", None, 0);
        progress.advance(5);
        progress.advance(7);
        progress.finish();

        let sent: Vec<PullProgress> = std::iter::from_fn(|| receiver.try_recv().ok()).collect();
        assert_eq!(sent.iter().map(|p| p.completed).collect::<Vec<_>>(), vec![0, 5, 12]);
        assert!(sent.iter().all(|p| p.status == PullStatus::Downloading && p.total.is_none()));
        assert_eq!(sent[0].digest, Some(format!("sha256:{}", "ab".repeat(32))));
        assert_eq!(sent[0].file, "m.gguf");
    }

    #[test]
    fn a_failed_transfer_ends_with_its_last_count_and_no_verifying() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let mut progress = ChannelProgress::with_interval(sender, Duration::from_secs(3600));
        progress.blob(&"a".repeat(40));
        progress.start("m.gguf", Some(10), 0);
        progress.advance(4);
        progress.finish();

        let sent: Vec<PullProgress> = std::iter::from_fn(|| receiver.try_recv().ok()).collect();
        let counts: Vec<(PullStatus, u64)> = sent.iter().map(|p| (p.status, p.completed)).collect();
        assert_eq!(counts, vec![(PullStatus::Downloading, 0), (PullStatus::Downloading, 4)]);
        assert_eq!(sent[0].digest, None, "a git ETag is no SHA-256");
    }

    #[test]
    fn done_without_a_transfer_names_the_file() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let mut progress = ChannelProgress::new(sender);
        progress.done("d/m.gguf", 42);
        let sent = receiver.try_recv().ok();
        assert_eq!(
            sent,
            Some(PullProgress {
                status: PullStatus::Done,
                file: "d/m.gguf".to_owned(),
                digest: None,
                total: Some(42),
                completed: 42
            })
        );
    }

    #[test]
    fn a_closed_channel_is_ignored() {
        let (sender, receiver) = mpsc::unbounded_channel();
        drop(receiver);
        let mut progress = ChannelProgress::new(sender);
        progress.start("m.gguf", Some(1), 0);
        progress.advance(1);
        progress.verifying();
        progress.finish();
        progress.done("m.gguf", 1);
    }
}
