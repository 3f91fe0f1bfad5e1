//! `DownloadProgress`: how a download reports its progress to the caller.

/// Receives progress of one file download. The CLI implements it with a
/// progress bar; libraries and tests use [`NoProgress`].
///
/// Calls come in the order `start`, any number of `advance`, `finish`.
/// `finish` is also called when the transfer fails after `start`. A file found
/// in the cache causes no calls at all.
pub trait DownloadProgress: Send {
    /// A transfer begins. `file` is the path of the file inside its repository;
    /// `total` the full size in bytes when the hub announced it; `already` the
    /// bytes kept from an earlier partial download (0 when starting afresh).
    fn start(&mut self, file: &str, total: Option<u64>, already: u64);
    /// `bytes` more bytes were received and written.
    fn advance(&mut self, bytes: u64);
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
