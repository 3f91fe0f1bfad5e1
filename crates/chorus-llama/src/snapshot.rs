//! Prompt snapshots on disk (`--cache-disk`): the KV state of a sequence that
//! ran under a `prompt_cache_key` (every session prompt has one), written to
//! the data dir when its generation ends, so the key's next prompt, even after
//! a restart, restores it instead of recomputing its history.
//!
//! One thread of its own (`chorus-kv-disk`) does all file work: it hashes the
//! model file once (remembered in `model-sha256.json` by path, size and mtime),
//! scans the directory, writes snapshots (temp file, fsync, rename), reads and
//! checks them for the model thread, deletes them, and keeps their bytes under
//! the budget by deleting the least recently used. The model thread only
//! copies the state out (one copy of one sequence) or in.
//!
//! A file is `CHORUSKV`, a little-endian u32 header length, a JSON
//! [`Header`], the tokens as little-endian i32, then llama.cpp's state bytes.
//! The header names the model file's sha256, the KV cache type, `n_ctx_slot`
//! and the sha256 of tokens and state: a snapshot of another model file or
//! cache layout is never restored, and a corrupt one is a logged miss (and is
//! deleted).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chorus_engine::Metrics;
use chorus_engine::metrics::CacheTier;
use llama_cpp_2::token::LlamaToken;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::worker::{Job, Msg, Restore};

const MAGIC: &[u8; 8] = b"CHORUSKV";
const VERSION: u32 = 1;
/// The KV cache type chorus creates contexts with (llama.cpp's default, F16 K and V).
pub(crate) const KV_TYPE: &str = "f16";
const MEMO: &str = "model-sha256.json";

/// What a snapshot must match to be restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Identity {
    /// The model id the files are named for.
    pub(crate) model: String,
    /// sha256 of the GGUF file, lower-case hex.
    pub(crate) model_sha256: String,
    /// `type_k`/`type_v` of the KV cache.
    pub(crate) kv_type: String,
    /// Tokens one sequence may hold.
    pub(crate) n_ctx_slot: u32,
}

/// The JSON header of a snapshot file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    version: u32,
    key: String,
    #[serde(flatten)]
    identity: Identity,
    n_tokens: usize,
    state_bytes: usize,
    /// sha256 of the token bytes and the state bytes, in that order.
    sha256: String,
}

/// A snapshot the model thread may restore.
#[derive(Debug, Clone)]
pub(crate) struct Indexed {
    file: PathBuf,
    /// The tokens it holds, so the model thread can tell what it is worth without reading it.
    pub(crate) tokens: Arc<Vec<LlamaToken>>,
    bytes: u64,
    used: u64,
}

/// The usable snapshots by key, shared by the disk thread (writer) and the model thread.
#[derive(Debug, Default)]
pub(crate) struct Index {
    entries: HashMap<String, Indexed>,
    /// Snapshots handed to the disk thread and not written yet, with their tokens: a load
    /// queued behind the write finds the file.
    pending: HashMap<String, Arc<Vec<LlamaToken>>>,
}

impl Index {
    /// The snapshot kept under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Indexed> {
        self.entries.get(key)
    }

    fn bytes(&self) -> u64 {
        self.entries.values().map(|e| e.bytes).sum()
    }
}

/// A request to the disk thread.
pub(crate) enum Command {
    /// Write the state of a sequence that ran under `key`.
    Save { key: String, tokens: Arc<Vec<LlamaToken>>, state: Arc<Vec<u8>> },
    /// Read `key`'s snapshot for `job` and hand the job back to the model thread.
    Load { key: String, job: Box<Job> },
    /// Delete `key`'s snapshot.
    Forget { key: String },
    /// Finish the queued writes and stop.
    Shutdown,
}

/// The disk tier: its thread's channel and the shared index.
pub(crate) struct DiskCache {
    /// Where commands go.
    pub(crate) tx: mpsc::Sender<Command>,
    /// What is on disk.
    pub(crate) index: Arc<Mutex<Index>>,
    /// The budget in bytes.
    pub(crate) budget: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Everything the disk thread needs.
pub(crate) struct DiskConfig {
    pub(crate) dir: PathBuf,
    pub(crate) budget: u64,
    pub(crate) model_path: PathBuf,
    pub(crate) model: String,
    pub(crate) n_ctx_slot: u32,
}

impl DiskCache {
    /// Start the disk thread; `jobs` is where loaded jobs go back to the model thread.
    /// The directory must exist.
    pub(crate) fn start(config: DiskConfig, jobs: mpsc::Sender<Msg>, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let index = Arc::new(Mutex::new(Index::default()));
        let (tx, rx) = mpsc::channel();
        let budget = config.budget;
        let thread = {
            let index = Arc::clone(&index);
            std::thread::Builder::new()
                .name("chorus-kv-disk".into())
                .spawn(move || Disk { config, index, metrics, identity: None }.run(&rx, &jobs))?
        };
        Ok(Self { tx, index, budget, thread: Some(thread) })
    }

    /// Whether `key` has a usable snapshot, written or queued; its tokens if so.
    pub(crate) fn tokens(&self, key: &str) -> Option<Arc<Vec<LlamaToken>>> {
        let index = self.index.lock().ok()?;
        index.pending.get(key).or_else(|| index.get(key).map(|e| &e.tokens)).map(Arc::clone)
    }

    /// Queue a snapshot of `tokens` under `key` for writing.
    pub(crate) fn save(&self, key: String, tokens: Vec<LlamaToken>, state: Arc<Vec<u8>>) {
        let tokens = Arc::new(tokens);
        if let Ok(mut index) = self.index.lock() {
            index.pending.insert(key.clone(), Arc::clone(&tokens));
        }
        if self.tx.send(Command::Save { key: key.clone(), tokens, state }).is_err()
            && let Ok(mut index) = self.index.lock()
        {
            index.pending.remove(&key);
        }
    }
}

impl Drop for DiskCache {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Disk {
    config: DiskConfig,
    index: Arc<Mutex<Index>>,
    metrics: Arc<Metrics>,
    identity: Option<Identity>,
}

impl Disk {
    fn run(mut self, rx: &mpsc::Receiver<Command>, jobs: &mpsc::Sender<Msg>) {
        match model_sha256(&self.config.dir, &self.config.model_path) {
            Ok(sha) => {
                let identity = Identity {
                    model: self.config.model.clone(),
                    model_sha256: sha,
                    kv_type: KV_TYPE.to_owned(),
                    n_ctx_slot: self.config.n_ctx_slot,
                };
                self.scan(&identity);
                self.identity = Some(identity);
            }
            Err(e) => tracing::warn!(error = %e, "cannot hash the model file; prompt snapshots are off"),
        }
        while let Ok(command) = rx.recv() {
            match command {
                Command::Save { key, tokens, state } => {
                    self.save(&key, Arc::clone(&tokens), &state);
                    if let Ok(mut index) = self.index.lock()
                        && index.pending.get(&key).is_some_and(|t| Arc::ptr_eq(t, &tokens))
                    {
                        index.pending.remove(&key);
                    }
                }
                Command::Load { key, mut job } => {
                    job.restore = self.load(&key);
                    job.disk_checked = true;
                    if jobs.send(Msg::Job(job)).is_err() {
                        return;
                    }
                }
                Command::Forget { key } => self.forget(&key),
                Command::Shutdown => return,
            }
        }
    }

    /// Index this model's snapshots; delete those of an older file or another cache layout
    /// under the same model id, and unreadable ones.
    fn scan(&self, identity: &Identity) {
        let Ok(dir) = std::fs::read_dir(&self.config.dir) else { return };
        let mut entries = HashMap::new();
        for path in dir.filter_map(Result::ok).map(|e| e.path()) {
            if path.extension().is_some_and(|e| e == "tmp") {
                // A write that a crash cut short.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "kv") {
                continue;
            }
            match read_head(&path) {
                Ok((header, tokens, _)) if header.identity == *identity => {
                    let meta = std::fs::metadata(&path).ok();
                    let bytes = meta.as_ref().map_or(0, std::fs::Metadata::len);
                    let used = meta.and_then(|m| m.modified().ok()).map_or(0, millis);
                    entries.insert(header.key, Indexed { file: path, tokens: Arc::new(tokens), bytes, used });
                }
                Ok((header, ..)) if header.identity.model != identity.model => {}
                Ok((header, ..)) => {
                    tracing::warn!(
                        file = %path.display(), key = %header.key,
                        "prompt snapshot ignored and deleted: written for model file {} ({} KV, n_ctx_slot {}), \
                         not this one ({}, {} KV, n_ctx_slot {})",
                        header.identity.model_sha256, header.identity.kv_type, header.identity.n_ctx_slot,
                        identity.model_sha256, identity.kv_type, identity.n_ctx_slot
                    );
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "unreadable prompt snapshot deleted");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        tracing::info!(snapshots = entries.len(), dir = %self.config.dir.display(), "prompt snapshots indexed");
        if let Ok(mut index) = self.index.lock() {
            index.entries = entries;
        }
        self.enforce_budget(None);
    }

    fn file_for(&self, key: &str) -> PathBuf {
        let digest =
            Sha256::new().chain_update(self.config.model.as_bytes()).chain_update(b"\n").chain_update(key).finalize();
        let name: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        self.config.dir.join(format!("{name}.kv"))
    }

    fn save(&self, key: &str, tokens: Arc<Vec<LlamaToken>>, state: &[u8]) {
        let Some(identity) = &self.identity else { return };
        let size = (state.len() + tokens.len() * 4) as u64;
        if size > self.config.budget {
            tracing::debug!(key, size, "prompt snapshot larger than --cache-disk; not written");
            return;
        }
        let file = self.file_for(key);
        let header = Header {
            version: VERSION,
            key: key.to_owned(),
            identity: identity.clone(),
            n_tokens: tokens.len(),
            state_bytes: state.len(),
            sha256: payload_sha256(&tokens, state),
        };
        // Room first, so the bytes on disk never exceed the budget, even mid-write.
        self.enforce_budget(Some((key, size + 4096)));
        match write_file(&file, &header, &tokens, state) {
            Ok(bytes) => {
                let n_tokens = tokens.len();
                let entry = Indexed { file, tokens, bytes, used: millis(SystemTime::now()) };
                if let Ok(mut index) = self.index.lock() {
                    index.entries.insert(key.to_owned(), entry);
                }
                tracing::debug!(key, tokens = n_tokens, bytes, "prompt snapshot written");
            }
            Err(e) => tracing::warn!(key, file = %file.display(), error = %e, "cannot write a prompt snapshot"),
        }
        self.publish();
    }

    /// Read and check `key`'s snapshot; a bad one is a logged miss and is deleted.
    fn load(&self, key: &str) -> Option<Restore> {
        let started = Instant::now();
        let entry = self.index.lock().ok()?.get(key).cloned()?;
        let result = read_file(&entry.file).and_then(|(header, tokens, state)| {
            match &self.identity {
                Some(identity) if header.identity == *identity && header.key == key => {}
                _ => return Err(invalid("written for another model file, cache type or key")),
            }
            if payload_sha256(&tokens, &state) != header.sha256 {
                return Err(invalid("its checksum does not match: the file is corrupt"));
            }
            Ok((tokens, state))
        });
        match result {
            Ok((tokens, state)) => {
                if let Ok(mut index) = self.index.lock()
                    && let Some(e) = index.entries.get_mut(key)
                {
                    e.used = millis(SystemTime::now());
                }
                Some(Restore { tokens, state: Arc::new(state), tier: CacheTier::Disk, read: started.elapsed() })
            }
            Err(e) => {
                tracing::warn!(key, file = %entry.file.display(), error = %e, "prompt snapshot not restored (a miss); deleted");
                self.forget(key);
                None
            }
        }
    }

    fn forget(&self, key: &str) {
        let removed = self.index.lock().ok().and_then(|mut i| {
            i.pending.remove(key);
            i.entries.remove(key)
        });
        let file = removed.map_or_else(|| self.file_for(key), |e| e.file);
        match std::fs::remove_file(&file) {
            Ok(()) => tracing::debug!(key, "prompt snapshot deleted"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(key, file = %file.display(), error = %e, "cannot delete a prompt snapshot"),
        }
        self.publish();
    }

    /// Delete the least recently used snapshots until `incoming` (a key about to be written,
    /// and its size) fits the budget beside them: the key's old file, still there while the
    /// new one is written, counts, and goes last.
    fn enforce_budget(&self, incoming: Option<(&str, u64)>) {
        let victims: Vec<PathBuf> = {
            let Ok(mut index) = self.index.lock() else { return };
            let (key, size) = incoming.unwrap_or(("", 0));
            let mut total = index.bytes() + size;
            let mut by_age: Vec<(bool, u64, String)> =
                index.entries.iter().map(|(k, e)| (k == key, e.used, k.clone())).collect();
            by_age.sort();
            let mut victims = Vec::new();
            for (_, _, k) in by_age {
                if total <= self.config.budget {
                    break;
                }
                if let Some(e) = index.entries.remove(&k) {
                    total -= e.bytes;
                    victims.push(e.file);
                }
            }
            victims
        };
        for file in victims {
            tracing::debug!(file = %file.display(), "prompt snapshot evicted (--cache-disk)");
            let _ = std::fs::remove_file(file);
        }
        self.publish();
    }

    fn publish(&self) {
        let bytes = self.index.lock().map_or(0, |i| i.bytes());
        self.metrics.prompt_cache_disk_bytes.set(bytes as i64);
    }
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_owned())
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn payload_sha256(tokens: &[LlamaToken], state: &[u8]) -> String {
    let mut hasher = Sha256::new();
    for t in tokens {
        hasher.update(t.0.to_le_bytes());
    }
    hasher.update(state);
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Write the file next to its final name, fsync it, rename it into place and fsync the
/// directory; the bytes written.
fn write_file(file: &Path, header: &Header, tokens: &[LlamaToken], state: &[u8]) -> std::io::Result<u64> {
    let tmp = file.with_extension("kv.tmp");
    let written = write_new(file, &tmp, header, tokens, state);
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn write_new(file: &Path, tmp: &Path, header: &Header, tokens: &[LlamaToken], state: &[u8]) -> std::io::Result<u64> {
    let json = serde_json::to_vec(header).map_err(std::io::Error::other)?;
    {
        let mut out = BufWriter::new(File::create(tmp)?);
        out.write_all(MAGIC)?;
        out.write_all(&(json.len() as u32).to_le_bytes())?;
        out.write_all(&json)?;
        for t in tokens {
            out.write_all(&t.0.to_le_bytes())?;
        }
        out.write_all(state)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(tmp, file)?;
    if let Some(dir) = file.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(std::fs::metadata(file)?.len())
}

/// The header and tokens of a snapshot file, and the reader positioned at its state.
fn read_head(file: &Path) -> std::io::Result<(Header, Vec<LlamaToken>, BufReader<File>)> {
    let mut input = BufReader::new(File::open(file)?);
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(invalid("not a chorus prompt snapshot"));
    }
    let mut len = [0u8; 4];
    input.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > 1 << 20 {
        return Err(invalid("its header is too long"));
    }
    let mut json = vec![0u8; len];
    input.read_exact(&mut json)?;
    let header: Header = serde_json::from_slice(&json).map_err(|e| invalid(&format!("bad header: {e}")))?;
    if header.version != VERSION {
        return Err(invalid(&format!("version {} (this chorus writes {VERSION})", header.version)));
    }
    if header.n_tokens > header.identity.n_ctx_slot as usize {
        return Err(invalid("more tokens than a slot holds"));
    }
    let mut raw = vec![0u8; header.n_tokens * 4];
    input.read_exact(&mut raw)?;
    let tokens = raw.chunks_exact(4).map(|c| LlamaToken(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect();
    Ok((header, tokens, input))
}

fn read_file(file: &Path) -> std::io::Result<(Header, Vec<LlamaToken>, Vec<u8>)> {
    let (header, tokens, mut input) = read_head(file)?;
    let mut state = Vec::with_capacity(header.state_bytes);
    input.read_to_end(&mut state)?;
    if state.len() != header.state_bytes {
        return Err(invalid("it is shorter or longer than its header says"));
    }
    Ok((header, tokens, state))
}

/// The model file's sha256, remembered in `dir/model-sha256.json` by path, size and mtime.
fn model_sha256(dir: &Path, model: &Path) -> std::io::Result<String> {
    #[derive(Serialize, Deserialize, PartialEq)]
    struct Known {
        size: u64,
        mtime_ms: u64,
        sha256: String,
    }
    let path = std::fs::canonicalize(model)?.display().to_string();
    let meta = std::fs::metadata(model)?;
    let (size, mtime_ms) = (meta.len(), meta.modified().map_or(0, millis));
    let memo_file = dir.join(MEMO);
    let mut memo: HashMap<String, Known> =
        std::fs::read(&memo_file).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    if let Some(k) = memo.get(&path)
        && k.size == size
        && k.mtime_ms == mtime_ms
    {
        return Ok(k.sha256.clone());
    }
    let started = Instant::now();
    let mut hasher = Sha256::new();
    let mut input = File::open(model)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let sha256 = hex(&hasher.finalize());
    tracing::info!(model = %path, ms = started.elapsed().as_millis() as u64, "model file hashed for prompt snapshots");
    memo.insert(path, Known { size, mtime_ms, sha256: sha256.clone() });
    let tmp = memo_file.with_extension("json.tmp");
    let written = serde_json::to_vec_pretty(&memo)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(&tmp, json))
        .and_then(|()| std::fs::rename(&tmp, &memo_file));
    if let Err(e) = written {
        tracing::warn!(error = %e, "cannot remember the model's sha256");
    }
    Ok(sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity { model: "m".into(), model_sha256: "ab".repeat(32), kv_type: KV_TYPE.into(), n_ctx_slot: 4096 }
    }

    fn header(tokens: &[LlamaToken], state: &[u8]) -> Header {
        Header {
            version: VERSION,
            key: "session/1".into(),
            identity: identity(),
            n_tokens: tokens.len(),
            state_bytes: state.len(),
            sha256: payload_sha256(tokens, state),
        }
    }

    #[test]
    fn a_snapshot_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.kv");
        let tokens: Vec<LlamaToken> = (0..100).map(LlamaToken).collect();
        let state: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let written = write_file(&file, &header(&tokens, &state), &tokens, &state).unwrap();
        assert_eq!(written, std::fs::metadata(&file).unwrap().len());
        let (h, t, s) = read_file(&file).unwrap();
        assert_eq!((h.key.as_str(), h.identity, t, &s), ("session/1", identity(), tokens.clone(), &state));
        assert_eq!(payload_sha256(&tokens, &s), h.sha256);
    }

    #[test]
    fn a_flipped_byte_changes_the_checksum_and_a_cut_file_does_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.kv");
        let tokens: Vec<LlamaToken> = (0..10).map(LlamaToken).collect();
        let state = vec![7u8; 1000];
        write_file(&file, &header(&tokens, &state), &tokens, &state).unwrap();
        let mut bytes = std::fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let (h, t, s) = read_file(&file).unwrap();
        assert_ne!(payload_sha256(&t, &s), h.sha256);
        std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
        assert!(read_file(&file).is_err());
        std::fs::write(&file, b"GGSQ\0\0\0\0").unwrap();
        assert!(read_head(&file).is_err());
    }

    #[test]
    fn a_scan_indexes_this_models_snapshots_and_deletes_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let tokens: Vec<LlamaToken> = (0..10).map(LlamaToken).collect();
        let state = vec![1u8; 100];
        let ours = header(&tokens, &state);
        write_file(&dir.path().join("ours.kv"), &ours, &tokens, &state).unwrap();
        let mut older = header(&tokens, &state);
        older.key = "session/2".into();
        older.identity.model_sha256 = "cd".repeat(32);
        write_file(&dir.path().join("older.kv"), &older, &tokens, &state).unwrap();
        let mut other = header(&tokens, &state);
        other.key = "session/3".into();
        other.identity.model = "another-model".into();
        other.identity.model_sha256 = "ef".repeat(32);
        write_file(&dir.path().join("other.kv"), &other, &tokens, &state).unwrap();
        std::fs::write(dir.path().join("cut.kv.tmp"), b"CHORUSKV").unwrap();
        std::fs::write(dir.path().join("junk.kv"), b"not a snapshot").unwrap();
        let disk = Disk {
            config: DiskConfig {
                dir: dir.path().to_owned(),
                budget: 1 << 20,
                model_path: PathBuf::from("m.gguf"),
                model: "m".into(),
                n_ctx_slot: 4096,
            },
            index: Arc::new(Mutex::new(Index::default())),
            metrics: Arc::new(Metrics::new()),
            identity: None,
        };
        disk.scan(&identity());
        let index = disk.index.lock().unwrap();
        assert_eq!(index.entries.keys().collect::<Vec<_>>(), ["session/1"]);
        assert_eq!(*index.get("session/1").unwrap().tokens, tokens);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        // Another model's snapshot stays; an older file of this model, a cut write and junk go.
        assert_eq!(left, ["other.kv", "ours.kv"]);
        assert_eq!(disk.metrics.prompt_cache_disk_bytes.get() as u64, index.bytes());
    }

    #[test]
    fn the_model_hash_is_remembered_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.gguf");
        std::fs::write(&model, b"abc").unwrap();
        let sha = model_sha256(dir.path(), &model).unwrap();
        assert_eq!(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(dir.path().join(MEMO).is_file());
        // A changed file (size differs) is hashed again.
        std::fs::write(&model, b"abcd").unwrap();
        assert_ne!(model_sha256(dir.path(), &model).unwrap(), sha);
    }
}
