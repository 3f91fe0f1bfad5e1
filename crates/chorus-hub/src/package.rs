//! Portable model packages: one tar file that carries a model from one
//! machine to another, and the checks that let an import trust it.
//!
//! ```text
//! PACKAGE.tar
//!     manifest.json   format 1: the model id, when and by which chorus it was
//!                     made, and each other file's name, size and SHA-256
//!     model.toml      the model's registry entry (TOML text, carried as is)
//!     model.gguf      the weights
//! ```
//!
//! [`export`] writes the entries in that order (so an import knows what to
//! expect before the large file arrives) into a temporary file next to the
//! target, syncs it and renames it into place. [`import`] reads the tar once,
//! refuses anything that is not exactly those three regular files, extracts
//! into a temporary folder inside the target folder while hashing, checks
//! every size and digest against the manifest and the GGUF magic, and only
//! then renames the folder to `{into_dir}/{id}`. Neither ever holds the GGUF
//! in memory.
//!
//! Both do blocking I/O: from async code, call them inside
//! `tokio::task::spawn_blocking`. This module owns the manifest's JSON form;
//! [`Manifest`] is its plain Rust shape.

use std::fs::File;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::HubError;
use crate::cache::unique_temp;
use crate::download::hex;

/// The package format [`export`] writes and [`import`] reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's name in a package.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The registry entry's name in a package and in an imported model's folder.
pub const ENTRY_FILE: &str = "model.toml";
/// The GGUF file's name in a package and in an imported model's folder.
pub const GGUF_FILE: &str = "model.gguf";
/// The first four bytes of every GGUF file.
pub const GGUF_MAGIC: &[u8; 4] = b"GGUF";

/// Largest manifest or registry entry an import reads into memory, in bytes.
const MAX_TEXT_FILE: u64 = 1 << 20;
/// Longest model id, in bytes.
const MAX_ID_LEN: usize = 128;
/// Buffer of the streaming copies and hashes.
const BUFFER: usize = 1 << 20;

/// What a package holds, as its `manifest.json` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The package format, [`FORMAT_VERSION`].
    pub format: u32,
    /// The model id: 1 to 128 ASCII letters, digits, `.`, `_` and `-`,
    /// starting with a letter or digit. It names the imported folder.
    pub id: String,
    /// When the package was made, to the second (RFC 3339 UTC in the JSON).
    pub created: SystemTime,
    /// The version of chorus that made it, e.g. `0.1.0`.
    pub chorus_version: String,
    /// The files besides the manifest: [`ENTRY_FILE`], then [`GGUF_FILE`].
    pub files: Vec<PackageFile>,
}

/// One file of a package, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFile {
    /// Its name in the package, e.g. `model.gguf`.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its content, 64 lower-case hex digits.
    pub sha256: String,
}

impl Manifest {
    /// The record of the file named `name`, if the manifest lists it.
    pub fn file(&self, name: &str) -> Option<&PackageFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// A model that [`import`] installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The model id from the manifest.
    pub id: String,
    /// Its folder, `{into_dir}/{id}`, holding `manifest.json`, `model.toml`
    /// and `model.gguf`.
    pub dir: PathBuf,
    /// `{dir}/model.gguf`.
    pub gguf: PathBuf,
    /// The registry entry's TOML text, as the package carried it.
    pub entry_toml: String,
    /// The package's manifest.
    pub manifest: Manifest,
}

/// The manifest's JSON form.
#[derive(Serialize, Deserialize)]
struct ManifestJson {
    format: u32,
    id: String,
    /// RFC 3339, UTC, whole seconds.
    created: String,
    chorus_version: String,
    files: Vec<FileJson>,
}

#[derive(Serialize, Deserialize)]
struct FileJson {
    name: String,
    size: u64,
    sha256: String,
}

/// Writes a package of the GGUF file `gguf` with the registry entry
/// `entry_toml` under the model id `id` to `out` (conventionally
/// `ID.tar`), replacing any file there, and returns its manifest.
///
/// The package is written to a temporary file next to `out`, synced, and
/// renamed into place, so `out` is either the old file or the whole new one.
/// The GGUF is read twice (hashed for the manifest, then copied while
/// hashed again) and never held in memory.
///
/// Errors: [`HubError::InvalidModelId`] for an unusable id;
/// [`HubError::InvalidEntry`] when `entry_toml` is not a TOML table;
/// [`HubError::LocalMissing`], [`HubError::NotGguf`] for the GGUF;
/// [`HubError::ChangedDuringExport`] when the GGUF changed between the two
/// reads; [`HubError::Io`] for file-system failures, and when `out` is the
/// GGUF file itself.
pub fn export(gguf: &Path, entry_toml: &str, id: &str, out: &Path) -> Result<Manifest, HubError> {
    check_id(id)?;
    entry_toml.parse::<toml::Table>().map_err(|e| HubError::InvalidEntry { cause: e.message().to_owned() })?;
    let mut source = open_gguf(gguf)?;
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(gguf), std::fs::canonicalize(out))
        && a == b
    {
        let cause = std::io::Error::other("the package would replace the GGUF file itself; choose another output path");
        return Err(HubError::io("export onto", out, cause));
    }
    let (size, sha256) = hash_stream(&mut source, gguf)?;
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let manifest = Manifest {
        format: FORMAT_VERSION,
        id: id.to_owned(),
        created: SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs()),
        chorus_version: env!("CARGO_PKG_VERSION").to_owned(),
        files: vec![
            PackageFile {
                name: ENTRY_FILE.to_owned(),
                size: entry_toml.len() as u64,
                sha256: hex(&Sha256::digest(entry_toml.as_bytes())),
            },
            PackageFile { name: GGUF_FILE.to_owned(), size, sha256: sha256.clone() },
        ],
    };
    let json = serde_json::to_vec_pretty(&to_json(&manifest))
        .map_err(|e| HubError::io("serialize the manifest for", out, std::io::Error::other(e)))?;

    let temp = TempPath::file(unique_temp(out));
    let file = File::create_new(temp.path()).map_err(|e| HubError::io("create", temp.path(), e))?;
    let mut builder = tar::Builder::new(BufWriter::with_capacity(BUFFER, file));
    let write_err = |e| HubError::io("write", temp.path(), e);
    let mtime = now.as_secs();
    append(&mut builder, MANIFEST_FILE, json.len() as u64, mtime, json.as_slice()).map_err(write_err)?;
    append(&mut builder, ENTRY_FILE, entry_toml.len() as u64, mtime, entry_toml.as_bytes()).map_err(write_err)?;

    let mut source = open_gguf(gguf)?;
    let mut hashing = HashingReader::new((&mut source).take(size));
    append(&mut builder, GGUF_FILE, size, mtime, &mut hashing)
        .map_err(|e| if hashing.failed { HubError::io("read", gguf, e) } else { write_err(e) })?;
    let (copied, digest) = hashing.finish();
    let grew = source.read(&mut [0u8; 1]).map_err(|e| HubError::io("read", gguf, e))? > 0;
    if copied != size || digest != sha256 || grew {
        return Err(HubError::ChangedDuringExport { path: gguf.to_path_buf() });
    }

    let file = builder
        .into_inner()
        .and_then(|w| w.into_inner().map_err(std::io::IntoInnerError::into_error))
        .map_err(write_err)?;
    file.sync_all().map_err(|e| HubError::io("sync", temp.path(), e))?;
    drop(file);
    std::fs::rename(temp.path(), out).map_err(|e| HubError::io("rename into", out, e))?;
    temp.keep();
    sync_dir(out.parent())?;
    tracing::info!(id, package = %out.display(), size, "model exported");
    Ok(manifest)
}

/// Installs the package at `package` into `{into_dir}/{id}` (creating
/// `into_dir` if needed) and returns what it installed.
///
/// The tar is read once: `manifest.json` must come first; then each file the
/// manifest lists is streamed into a temporary folder inside `into_dir`
/// (`.chorus-import.PID.N.tmp`) while hashed, and its size and SHA-256 must
/// match the manifest; `model.gguf` must start with the GGUF magic and
/// `model.toml` must be a TOML table. Only when every check passes is the
/// folder synced and renamed to `{into_dir}/{id}`; on any error the
/// temporary folder is removed and nothing is installed.
///
/// Errors: [`HubError::InvalidPackage`] for a file that is not a package of
/// format 1 (not a tar, no manifest first, a manifest that does not parse or
/// lists other files, a listed file missing, a `model.toml` that is not a TOML
/// table, a `model.gguf` without the magic); [`HubError::UnsafePackageEntry`]
/// for an entry whose path leaves the folder, a link or other non-regular
/// entry, an unexpected name or a repeated one; [`HubError::InvalidModelId`]
/// for an unusable id in the manifest; [`HubError::PackageSizeMismatch`] and
/// [`HubError::PackageHashMismatch`] for a damaged file;
/// [`HubError::AlreadyInstalled`] when `{into_dir}/{id}` exists (checked once
/// the manifest is read, and again when renaming); [`HubError::Io`] for
/// file-system failures.
pub fn import(package: &Path, into_dir: &Path) -> Result<Imported, HubError> {
    let invalid = |reason: String| HubError::InvalidPackage { package: package.to_path_buf(), reason };
    let file = File::open(package).map_err(|e| HubError::io("open", package, e))?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(BUFFER, file));
    let entries = archive.entries().map_err(|e| invalid(format!("it cannot be read as a tar file: {e}")))?;
    std::fs::create_dir_all(into_dir).map_err(|e| HubError::io("create directory", into_dir, e))?;
    let temp = TempPath::dir(unique_temp(&into_dir.join(".chorus-import")));
    std::fs::create_dir(temp.path()).map_err(|e| HubError::io("create directory", temp.path(), e))?;

    let mut manifest: Option<Manifest> = None;
    let mut extracted: Vec<&'static str> = Vec::new();
    let mut entry_toml = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("it cannot be read as a tar file: {e}")))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |reason: &str| HubError::UnsafePackageEntry {
            package: package.to_path_buf(),
            entry: raw.clone(),
            reason: reason.to_owned(),
        };
        let name = entry_name(&raw).map_err(refuse)?;
        let kind = entry.header().entry_type();
        if !kind.is_file() {
            return Err(refuse(&format!("it is not a regular file (tar entry type {:?})", kind.as_byte() as char)));
        }
        if extracted.contains(&name) || (name == MANIFEST_FILE && manifest.is_some()) {
            return Err(refuse("the name appears twice"));
        }
        let target = temp.path().join(name);

        if name == MANIFEST_FILE {
            let bytes = read_small(&mut entry, MAX_TEXT_FILE).map_err(|e| invalid(format!("{MANIFEST_FILE}: {e}")))?;
            let parsed = parse_manifest(&bytes).map_err(invalid)?;
            check_id(&parsed.id)?;
            let dir = into_dir.join(&parsed.id);
            if std::fs::symlink_metadata(&dir).is_ok() {
                return Err(HubError::AlreadyInstalled { id: parsed.id, dir });
            }
            write_synced(&target, &bytes)?;
            manifest = Some(parsed);
            continue;
        }

        let Some(listed) = manifest.as_ref().and_then(|m| m.file(name)) else {
            return Err(invalid(format!("{MANIFEST_FILE} is not its first entry")));
        };
        if entry.size() != listed.size {
            return Err(HubError::PackageSizeMismatch {
                package: package.to_path_buf(),
                file: name.to_owned(),
                expected: listed.size,
                actual: entry.size(),
            });
        }
        if name == ENTRY_FILE && listed.size > MAX_TEXT_FILE {
            return Err(invalid(format!("{ENTRY_FILE} is larger than {MAX_TEXT_FILE} bytes")));
        }
        let (size, sha256, head) = extract(&mut entry, &target, package, name)?;
        if size < listed.size {
            return Err(invalid(format!("the tar ends inside {name} (is the package truncated?)")));
        }
        if size != listed.size {
            return Err(HubError::PackageSizeMismatch {
                package: package.to_path_buf(),
                file: name.to_owned(),
                expected: listed.size,
                actual: size,
            });
        }
        if sha256 != listed.sha256 {
            return Err(HubError::PackageHashMismatch {
                package: package.to_path_buf(),
                file: name.to_owned(),
                expected: listed.sha256.clone(),
                actual: sha256,
            });
        }
        if name == GGUF_FILE && &head != GGUF_MAGIC {
            return Err(invalid(format!("{GGUF_FILE} does not start with `GGUF`: it is not a GGUF file")));
        }
        if name == ENTRY_FILE {
            let text = std::fs::read_to_string(&target)
                .map_err(|e| invalid(format!("{ENTRY_FILE} is not UTF-8 text: {e}")))?;
            text.parse::<toml::Table>()
                .map_err(|e| invalid(format!("{ENTRY_FILE} is not a TOML table: {}", e.message())))?;
            entry_toml = Some(text);
        }
        extracted.push(name);
    }

    let Some(manifest) = manifest else {
        return Err(invalid(format!("it holds no {MANIFEST_FILE}")));
    };
    for name in [ENTRY_FILE, GGUF_FILE] {
        if !extracted.contains(&name) {
            return Err(invalid(format!("{name} is listed in {MANIFEST_FILE} but missing from the tar")));
        }
    }
    let entry_toml = entry_toml.unwrap_or_default();
    sync_dir(Some(temp.path()))?;
    let dir = into_dir.join(&manifest.id);
    place_dir(temp.path(), &dir, &manifest.id)?;
    temp.keep();
    sync_dir(Some(into_dir))?;
    tracing::info!(id = manifest.id, dir = %dir.display(), "model imported");
    Ok(Imported { id: manifest.id.clone(), gguf: dir.join(GGUF_FILE), dir, entry_toml, manifest })
}

/// Which package file a tar path names, or why it is refused.
fn entry_name(raw: &str) -> Result<&'static str, &'static str> {
    let path = raw.strip_prefix("./").unwrap_or(raw);
    if path.starts_with('/')
        || path.starts_with('\\')
        || path.split(['/', '\\']).any(|part| part == "..")
        || path.as_bytes().get(1) == Some(&b':')
    {
        return Err("its path leaves the package folder");
    }
    [MANIFEST_FILE, ENTRY_FILE, GGUF_FILE]
        .into_iter()
        .find(|known| *known == path)
        .ok_or("a package holds only manifest.json, model.toml and model.gguf, side by side")
}

/// Checks a model id: see [`Manifest::id`].
fn check_id(id: &str) -> Result<(), HubError> {
    let reason = if id.is_empty() || id.len() > MAX_ID_LEN {
        Some(format!("it must be 1 to {MAX_ID_LEN} characters long"))
    } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        Some("use only ASCII letters, digits, `.`, `_` and `-`".to_owned())
    } else if !id.as_bytes()[0].is_ascii_alphanumeric() {
        Some("it must start with a letter or digit".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(HubError::InvalidModelId { id: id.to_owned(), reason }),
        None => Ok(()),
    }
}

/// Opens `path` and checks that it starts with the GGUF magic (the reader
/// is left at the start).
fn open_gguf(path: &Path) -> Result<BufReader<File>, HubError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(HubError::LocalMissing { path: path.to_path_buf() }),
        Err(e) => return Err(HubError::io("open", path, e)),
    };
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == GGUF_MAGIC => {}
        Ok(()) => return Err(HubError::NotGguf { path: path.to_path_buf() }),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Err(HubError::NotGguf { path: path.to_path_buf() }),
        Err(e) => return Err(HubError::io("read", path, e)),
    }
    drop(file);
    let file = File::open(path).map_err(|e| HubError::io("open", path, e))?;
    Ok(BufReader::with_capacity(BUFFER, file))
}

/// Size and SHA-256 (hex) of everything `reader` yields.
fn hash_stream(reader: &mut impl Read, path: &Path) -> Result<(u64, String), HubError> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; BUFFER];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(HubError::io("read", path, e)),
        };
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

/// Appends one regular file of `size` bytes read from `data`.
fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    mtime: u64,
    data: impl Read,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    builder.append_data(&mut header, name, data)
}

/// A reader that hashes and counts what passes through it, and remembers
/// whether its own source failed (to tell read errors from write errors).
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    failed: bool,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Sha256::new(), count: 0, failed: false }
    }

    /// Bytes read and their SHA-256 (hex).
    fn finish(self) -> (u64, String) {
        (self.count, hex(&self.hasher.finalize()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.count += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.failed = e.kind() != ErrorKind::Interrupted;
                Err(e)
            }
        }
    }
}

/// Reads a whole entry of at most `limit` bytes.
fn read_small(reader: &mut impl Read, limit: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    reader.take(limit + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(bytes)
}

/// Parses and checks a manifest: format 1, the two files listed once each,
/// digests of 64 hex digits, an RFC 3339 `created`.
fn parse_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("{MANIFEST_FILE} is not JSON: {e}"))?;
    match value.get("format").and_then(serde_json::Value::as_u64) {
        Some(format) if format == u64::from(FORMAT_VERSION) => {}
        Some(format) => {
            return Err(format!(
                "it has package format {format}, and this chorus ({}) reads format {FORMAT_VERSION}; import it with a newer chorus",
                env!("CARGO_PKG_VERSION")
            ));
        }
        None => return Err(format!("{MANIFEST_FILE} has no numeric `format`")),
    }
    let json: ManifestJson = serde_json::from_value(value).map_err(|e| format!("{MANIFEST_FILE} is malformed: {e}"))?;
    let created = chrono::DateTime::parse_from_rfc3339(&json.created)
        .map_err(|e| format!("{MANIFEST_FILE} has `created` {:?}, not an RFC 3339 time: {e}", json.created))?;
    let mut names: Vec<&str> = json.files.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    if names != [GGUF_FILE, ENTRY_FILE] {
        return Err(format!("{MANIFEST_FILE} must list {ENTRY_FILE} and {GGUF_FILE} once each, not {names:?}"));
    }
    if let Some(bad) =
        json.files.iter().find(|f| f.sha256.len() != 64 || !f.sha256.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(format!("{MANIFEST_FILE} gives {} the sha256 {:?}, not 64 hex digits", bad.name, bad.sha256));
    }
    Ok(Manifest {
        format: json.format,
        id: json.id,
        created: SystemTime::from(created.with_timezone(&chrono::Utc)),
        chorus_version: json.chorus_version,
        files: json
            .files
            .into_iter()
            .map(|f| PackageFile { name: f.name, size: f.size, sha256: f.sha256.to_ascii_lowercase() })
            .collect(),
    })
}

fn to_json(manifest: &Manifest) -> ManifestJson {
    let created = chrono::DateTime::<chrono::Utc>::from(manifest.created);
    ManifestJson {
        format: manifest.format,
        id: manifest.id.clone(),
        created: created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        chorus_version: manifest.chorus_version.clone(),
        files: manifest
            .files
            .iter()
            .map(|f| FileJson { name: f.name.clone(), size: f.size, sha256: f.sha256.clone() })
            .collect(),
    }
}

/// Streams an entry into `target`, synced, and returns its size, SHA-256
/// (hex) and first four bytes (zeros when shorter).
fn extract(
    entry: &mut impl Read,
    target: &Path,
    package: &Path,
    name: &str,
) -> Result<(u64, String, [u8; 4]), HubError> {
    let file = File::create_new(target).map_err(|e| HubError::io("create", target, e))?;
    let mut out = BufWriter::with_capacity(BUFFER, file);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; BUFFER];
    let mut head = [0u8; 4];
    let mut size = 0u64;
    loop {
        let n = match entry.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                let reason = if e.kind() == ErrorKind::UnexpectedEof {
                    format!("the tar ends inside {name} (is the package truncated?)")
                } else {
                    format!("{name} cannot be read: {e}")
                };
                return Err(HubError::InvalidPackage { package: package.to_path_buf(), reason });
            }
        };
        let chunk = &buffer[..n];
        if let Ok(start) = usize::try_from(size)
            && start < head.len()
        {
            let take = (head.len() - start).min(n);
            head[start..start + take].copy_from_slice(&chunk[..take]);
        }
        hasher.update(chunk);
        out.write_all(chunk).map_err(|e| HubError::io("write", target, e))?;
        size += n as u64;
    }
    let file = out.into_inner().map_err(|e| HubError::io("write", target, e.into_error()))?;
    file.sync_all().map_err(|e| HubError::io("sync", target, e))?;
    Ok((size, hex(&hasher.finalize()), head))
}

/// Writes `bytes` to a new file at `path` and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), HubError> {
    let mut file = File::create_new(path).map_err(|e| HubError::io("create", path, e))?;
    file.write_all(bytes).map_err(|e| HubError::io("write", path, e))?;
    file.sync_all().map_err(|e| HubError::io("sync", path, e))
}

/// Moves the extracted folder to `dir`, refusing when `dir` exists. The
/// empty `dir` created first is the claim: of two imports of one id, only
/// one creates it; the rename then replaces that empty folder (where the
/// platform does not allow that, it is removed first).
fn place_dir(temp: &Path, dir: &Path, id: &str) -> Result<(), HubError> {
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            return Err(HubError::AlreadyInstalled { id: id.to_owned(), dir: dir.to_path_buf() });
        }
        Err(e) => return Err(HubError::io("create directory", dir, e)),
    }
    if std::fs::rename(temp, dir).is_ok() {
        return Ok(());
    }
    let _ = std::fs::remove_dir(dir);
    std::fs::rename(temp, dir).map_err(|e| HubError::io("rename into", dir, e))
}

/// Syncs a folder, so a rename into it survives a crash (Unix; elsewhere
/// folders cannot be opened for it, and nothing is done).
fn sync_dir(dir: Option<&Path>) -> Result<(), HubError> {
    #[cfg(unix)]
    if let Some(dir) = dir {
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| HubError::io("sync", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A temporary file or folder, removed when dropped unless kept.
struct TempPath {
    path: PathBuf,
    is_dir: bool,
    kept: bool,
}

impl TempPath {
    fn file(path: PathBuf) -> Self {
        TempPath { path, is_dir: false, kept: false }
    }

    fn dir(path: PathBuf) -> Self {
        TempPath { path, is_dir: true, kept: false }
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// It was renamed into place: nothing to remove.
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let removed = if self.is_dir { std::fs::remove_dir_all(&self.path) } else { std::fs::remove_file(&self.path) };
        if let Err(e) = removed
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a temporary file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names_are_the_three_files_only() {
        assert_eq!(entry_name("model.gguf"), Ok(GGUF_FILE));
        assert_eq!(entry_name("./manifest.json"), Ok(MANIFEST_FILE));
        for leaving in ["../model.gguf", "/etc/passwd", "a/../../b", "..\\x", "C:model.gguf", "\\x"] {
            assert_eq!(entry_name(leaving), Err("its path leaves the package folder"), "{leaving}");
        }
        for unexpected in ["extra.txt", "dir/model.gguf", "model.gguf/", "", "."] {
            assert!(entry_name(unexpected).is_err_and(|r| r.starts_with("a package holds only")), "{unexpected}");
        }
    }

    #[test]
    fn ids_name_a_folder() {
        for good in ["qwen2.5-0.5b", "A_1", "x"] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "-x", "a/b", "..", "a b", "qwen:0.5b", &"x".repeat(129)] {
            assert!(matches!(check_id(bad), Err(HubError::InvalidModelId { .. })), "{bad}");
        }
    }

    #[test]
    fn manifest_json_round_trips() {
        let manifest = Manifest {
            format: FORMAT_VERSION,
            id: "m".to_owned(),
            created: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            chorus_version: "0.1.0".to_owned(),
            files: vec![
                PackageFile { name: ENTRY_FILE.to_owned(), size: 3, sha256: "a".repeat(64) },
                PackageFile { name: GGUF_FILE.to_owned(), size: 9, sha256: "b".repeat(64) },
            ],
        };
        let json = serde_json::to_vec(&to_json(&manifest)).unwrap_or_default();
        let text = String::from_utf8_lossy(&json);
        assert!(text.contains("\"created\":\"2023-11-14T22:13:20Z\""), "{text}");
        assert_eq!(parse_manifest(&json), Ok(manifest));
    }

    #[test]
    fn a_newer_format_asks_for_a_newer_chorus() {
        let err = parse_manifest(br#"{"format": 2, "anything": true}"#).err().unwrap_or_default();
        assert!(err.contains("format 2") && err.contains("newer chorus"), "{err}");
    }
}
