//! Turning token bytes into streamed text: [`Utf8Decoder`] holds back the
//! bytes of a character split across tokens, and [`StopMatcher`] holds back
//! text that may be the start of a stop sequence, so neither a broken
//! character nor any part of a stop sequence ever reaches a client.

/// Incremental UTF-8 decoding of token pieces.
///
/// A token's bytes can end inside a multi-byte character; those bytes wait
/// for the next piece. Bytes that can never form a valid character become
/// U+FFFD, as `String::from_utf8_lossy` does.
#[derive(Debug, Default)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// A decoder with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a piece's bytes; returns the text that is now complete.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Valid up to `valid` by the error's own contract.
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // Incomplete character at the end: keep it for the next piece.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// End of stream: whatever is still pending becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// What [`StopMatcher::push`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum StopOutcome {
    /// No stop sequence yet; this text is safe to send (may be empty).
    Continue(String),
    /// A stop sequence was found; this is the text before it, and generation ends.
    Stopped(String),
}

/// Finds stop sequences in streamed text, across any number of pieces.
///
/// Text that could still be the beginning of a stop sequence is held back
/// until it either completes one (and is dropped) or cannot (and is released).
#[derive(Debug, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    held: String,
    /// Index into `stops` of the sequence found.
    matched: Option<usize>,
}

impl StopMatcher {
    /// A matcher for these sequences (empty ones are ignored).
    pub fn new(stops: Vec<String>) -> Self {
        Self { stops: stops.into_iter().filter(|s| !s.is_empty()).collect(), held: String::new(), matched: None }
    }

    /// Add text; returns what can be sent now.
    pub fn push(&mut self, text: &str) -> StopOutcome {
        if self.stops.is_empty() {
            return StopOutcome::Continue(text.to_owned());
        }
        self.held.push_str(text);
        // The earliest stop sequence wins, as in llama-server.
        let found = self.stops.iter().enumerate().filter_map(|(i, s)| Some((self.held.find(s.as_str())?, i))).min();
        if let Some((at, i)) = found {
            let before = self.held[..at].to_owned();
            self.held.clear();
            self.matched = Some(i);
            return StopOutcome::Stopped(before);
        }
        let keep = self.partial_suffix_len();
        let release = self.held.len() - keep;
        let out = self.held[..release].to_owned();
        self.held.drain(..release);
        StopOutcome::Continue(out)
    }

    /// The stop sequence [`StopMatcher::push`] found, once it returned [`StopOutcome::Stopped`].
    pub fn matched(&self) -> Option<&str> {
        self.matched.map(|i| self.stops[i].as_str())
    }

    /// End of stream without a stop sequence: the held text is released.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length in bytes of the longest suffix of `held` that is a proper prefix
    /// of some stop sequence (always on a character boundary).
    fn partial_suffix_len(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            let max = stop.len().saturating_sub(1).min(self.held.len());
            for len in (best + 1..=max).rev() {
                let start = self.held.len() - len;
                if self.held.is_char_boundary(start) && stop.starts_with(&self.held[start..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_waits_for_split_characters() {
        let mut d = Utf8Decoder::new();
        let bytes = "é€😀".as_bytes();
        let mut out = String::new();
        for b in bytes {
            let piece = d.push(&[*b]);
            assert!(piece.chars().all(|c| c != char::REPLACEMENT_CHARACTER));
            out.push_str(&piece);
        }
        out.push_str(&d.finish());
        assert_eq!(out, "é€😀");
    }

    #[test]
    fn utf8_replaces_invalid_bytes_and_flushes_tail() {
        let mut d = Utf8Decoder::new();
        assert_eq!(d.push(b"a\xffb"), "a\u{fffd}b");
        assert_eq!(d.push(b"\xe2\x82"), "");
        assert_eq!(d.finish(), "\u{fffd}");
    }

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            match m.push(p) {
                StopOutcome::Continue(t) => out.push_str(&t),
                StopOutcome::Stopped(t) => {
                    out.push_str(&t);
                    return (out, true);
                }
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn stop_spanning_pieces_is_never_sent() {
        assert_eq!(run(&["END"], &["hello E", "N", "D and more"]), ("hello ".into(), true));
        assert_eq!(run(&["END"], &["hello E", "N", "x"]), ("hello ENx".into(), false));
        assert_eq!(run(&["\n\n", "STOP"], &["a\n", "b", "ST", "OP"]), ("a\nb".into(), true));
    }

    #[test]
    fn held_text_is_released_piece_by_piece() {
        let mut m = StopMatcher::new(vec!["abc".into()]);
        assert_eq!(m.push("xa"), StopOutcome::Continue("x".into()));
        assert_eq!(m.push("b"), StopOutcome::Continue(String::new()));
        assert_eq!(m.push("d"), StopOutcome::Continue("abd".into()));
    }

    #[test]
    fn multibyte_stops_match_on_boundaries() {
        assert_eq!(run(&["é!"], &["caf", "é", "!x"]), ("caf".into(), true));
    }
}
