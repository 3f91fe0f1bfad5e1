//! Model packages: export then import gives the same bytes and entry; a
//! damaged, unsafe, truncated or repeated import is refused and leaves
//! nothing behind.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chorus_hub::HubError;
use chorus_hub::package::{self, ENTRY_FILE, FORMAT_VERSION, GGUF_FILE, MANIFEST_FILE};

use crate::content;
use crate::fake_hub::sha256_hex;

const ENTRY: &str = "[model]\nname = \"tiny\"\nsource = \"hf:acme/tiny-GGUF/tiny.gguf\"\nctx_size = 4096\n";

/// A folder with a GGUF file of `len` bytes (the magic, then a pattern).
struct Setup {
    dir: tempfile::TempDir,
    gguf: PathBuf,
    bytes: Vec<u8>,
}

impl Setup {
    fn new(len: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut bytes = b"GGUF".to_vec();
        bytes.extend(content(len - 4));
        let gguf = dir.path().join("tiny.gguf");
        std::fs::write(&gguf, &bytes).expect("write gguf");
        Setup { dir, gguf, bytes }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn export(&self) -> (PathBuf, package::Manifest) {
        let out = self.path("tiny.tar");
        let manifest = package::export(&self.gguf, ENTRY, "tiny", &out).expect("export");
        (out, manifest)
    }
}

/// The names in a folder, sorted.
fn names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Every entry of a tar as (path, bytes).
fn entries(tar_path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(tar_path).expect("open tar"));
    let mut found = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read entry");
        found.push((name, bytes));
    }
    found
}

/// Writes a tar of raw entries: (path bytes written as they are, entry type, data).
fn write_raw_tar(path: &Path, members: &[(&[u8], tar::EntryType, &[u8])]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).expect("create tar"));
    for (name, kind, data) in members {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_entry_type(*kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, *data).expect("append");
    }
    builder.into_inner().expect("finish").flush().expect("flush");
}

#[test]
fn export_then_import_gives_the_same_bytes_and_entry() {
    let setup = Setup::new(300_000);
    let (out, manifest) = setup.export();

    assert_eq!(names(setup.dir.path()), ["tiny.gguf", "tiny.tar"], "no temporary file is left");
    assert_eq!(manifest.format, FORMAT_VERSION);
    assert_eq!(manifest.id, "tiny");
    assert_eq!(manifest.chorus_version, env!("CARGO_PKG_VERSION"));
    let gguf = manifest.file(GGUF_FILE).expect("gguf listed");
    assert_eq!((gguf.size, gguf.sha256.as_str()), (300_000, sha256_hex(&setup.bytes).as_str()));
    let entry = manifest.file(ENTRY_FILE).expect("entry listed");
    assert_eq!((entry.size, entry.sha256.as_str()), (ENTRY.len() as u64, sha256_hex(ENTRY.as_bytes()).as_str()));
    let in_tar: Vec<String> = entries(&out).into_iter().map(|(name, _)| name).collect();
    assert_eq!(in_tar, [MANIFEST_FILE, ENTRY_FILE, GGUF_FILE], "the manifest comes first");

    let models = setup.path("models");
    let imported = package::import(&out, &models).expect("import");

    assert_eq!(imported.id, "tiny");
    assert_eq!(imported.dir, models.join("tiny"));
    assert_eq!(imported.gguf, models.join("tiny").join(GGUF_FILE));
    assert_eq!(std::fs::read(&imported.gguf).expect("read gguf"), setup.bytes);
    assert_eq!(imported.entry_toml, ENTRY);
    assert_eq!(std::fs::read_to_string(imported.dir.join(ENTRY_FILE)).expect("read entry"), ENTRY);
    assert_eq!(imported.manifest, manifest);
    assert_eq!(names(&imported.dir), [MANIFEST_FILE, GGUF_FILE, ENTRY_FILE]);
    assert_eq!(names(&models), ["tiny"], "no temporary folder is left");
}

#[test]
fn export_replaces_an_older_package() {
    let setup = Setup::new(1_000);
    let out = setup.path("tiny.tar");
    std::fs::write(&out, b"an old package").expect("write");

    package::export(&setup.gguf, ENTRY, "tiny", &out).expect("export");

    assert!(package::import(&out, &setup.path("models")).is_ok());
}

#[test]
fn a_flipped_byte_of_the_gguf_is_refused_naming_the_file_and_both_hashes() {
    let setup = Setup::new(200_000);
    let (out, manifest) = setup.export();
    // Where model.gguf's data starts inside the tar.
    let position = {
        let mut archive = tar::Archive::new(std::fs::File::open(&out).expect("open"));
        let mut entries = archive.entries().expect("entries");
        entries
            .find_map(|e| e.ok().filter(|e| e.path().is_ok_and(|p| p == Path::new(GGUF_FILE))))
            .map(|e| e.raw_file_position())
            .expect("gguf entry")
    };
    let mut file = std::fs::OpenOptions::new().read(true).write(true).open(&out).expect("open rw");
    let at = position + 123_456;
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(at)).expect("seek");
    file.read_exact(&mut byte).expect("read");
    file.seek(SeekFrom::Start(at)).expect("seek");
    file.write_all(&[byte[0] ^ 0x20]).expect("flip");
    drop(file);
    let mut damaged = setup.bytes.clone();
    damaged[123_456] ^= 0x20;

    let models = setup.path("models");
    let err = package::import(&out, &models).err();

    let expected = manifest.file(GGUF_FILE).map(|f| f.sha256.clone()).unwrap_or_default();
    match &err {
        Some(HubError::PackageHashMismatch { file, expected: e, actual, .. }) => {
            assert_eq!(file, GGUF_FILE);
            assert_eq!(*e, expected);
            assert_eq!(*actual, sha256_hex(&damaged));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    for part in [GGUF_FILE, expected.as_str(), sha256_hex(&damaged).as_str(), "nothing was imported"] {
        assert!(message.contains(part), "{part} missing from: {message}");
    }
    assert_eq!(names(&models), Vec::<String>::new(), "the temporary folder is removed");
}

#[test]
fn a_truncated_package_is_refused() {
    let setup = Setup::new(100_000);
    let (out, _) = setup.export();
    let len = std::fs::metadata(&out).expect("metadata").len();
    std::fs::OpenOptions::new().write(true).open(&out).expect("open").set_len(len - 50_000).expect("truncate");
    let models = setup.path("models");

    let err = package::import(&out, &models).err();

    assert!(matches!(&err, Some(HubError::InvalidPackage { reason, .. }) if reason.contains("truncated")), "{err:?}");
    assert_eq!(names(&models), Vec::<String>::new());
}

#[test]
fn entries_that_leave_the_folder_or_are_not_plain_files_are_refused() {
    let setup = Setup::new(1_000);
    let (out, _) = setup.export();
    let members = entries(&out);
    let (manifest, entry, gguf) = (&members[0].1, &members[1].1, &members[2].1);
    let regular = tar::EntryType::Regular;
    let cases: [(&[u8], tar::EntryType, &str); 5] = [
        (b"../evil.txt", regular, "leaves the package folder"),
        (b"/tmp/evil.txt", regular, "leaves the package folder"),
        (b"extra.txt", regular, "holds only"),
        (b"model.gguf", tar::EntryType::Symlink, "not a regular file"),
        (b"model.toml", regular, "appears twice"),
    ];
    for (name, kind, reason) in cases {
        let evil = setup.path("evil.tar");
        write_raw_tar(
            &evil,
            &[
                (MANIFEST_FILE.as_bytes(), regular, manifest),
                (ENTRY_FILE.as_bytes(), regular, entry),
                (name, kind, b"owned"),
                (GGUF_FILE.as_bytes(), regular, gguf),
            ],
        );
        let models = setup.path("models");

        let err = package::import(&evil, &models).err();

        let shown = String::from_utf8_lossy(name);
        match &err {
            Some(HubError::UnsafePackageEntry { entry, reason: r, .. }) => {
                assert_eq!(*entry, shown, "{err:?}");
                assert!(r.contains(reason), "{shown}: {r}");
            }
            other => panic!("{shown}: expected a refused entry, got {other:?}"),
        }
        assert_eq!(names(&models), Vec::<String>::new(), "{shown}: nothing left in the target");
        assert!(!setup.dir.path().join("evil.txt").exists() && !Path::new("/tmp/evil.txt").exists());
    }
}

#[test]
fn a_package_without_its_manifest_first_is_refused() {
    let setup = Setup::new(1_000);
    let (out, _) = setup.export();
    let members = entries(&out);
    let regular = tar::EntryType::Regular;
    let reordered = setup.path("reordered.tar");
    write_raw_tar(
        &reordered,
        &[
            (ENTRY_FILE.as_bytes(), regular, &members[1].1),
            (MANIFEST_FILE.as_bytes(), regular, &members[0].1),
            (GGUF_FILE.as_bytes(), regular, &members[2].1),
        ],
    );

    let err = package::import(&reordered, &setup.path("models")).err();

    assert!(matches!(&err, Some(HubError::InvalidPackage { reason, .. }) if reason.contains("first")), "{err:?}");
    let not_a_tar = setup.path("tiny.gguf");
    let err = package::import(&not_a_tar, &setup.path("models")).err();
    assert!(matches!(err, Some(HubError::InvalidPackage { .. })), "{err:?}");
}

#[test]
fn importing_twice_refuses_the_second_and_keeps_the_first() {
    let setup = Setup::new(10_000);
    let (out, _) = setup.export();
    let models = setup.path("models");
    let first = package::import(&out, &models).expect("first import");

    let err = package::import(&out, &models).err();

    match &err {
        Some(HubError::AlreadyInstalled { id, dir }) => {
            assert_eq!(id, "tiny");
            assert_eq!(*dir, first.dir);
        }
        other => panic!("expected already installed, got {other:?}"),
    }
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("already installed") && message.contains("remove that folder first"), "{message}");
    assert_eq!(std::fs::read(&first.gguf).expect("read"), setup.bytes);
    assert_eq!(names(&models), ["tiny"]);
}

#[test]
fn export_refuses_a_non_gguf_file_a_non_table_entry_and_a_bad_id() {
    let setup = Setup::new(1_000);
    let out = setup.path("out.tar");
    let text = setup.path("notes.txt");
    std::fs::write(&text, b"not a model").expect("write");

    let not_gguf = package::export(&text, ENTRY, "tiny", &out).err();
    let bad_entry = package::export(&setup.gguf, "name = ", "tiny", &out).err();
    let bad_id = package::export(&setup.gguf, ENTRY, "../tiny", &out).err();
    let missing = package::export(&setup.path("absent.gguf"), ENTRY, "tiny", &out).err();
    let onto_itself = package::export(&setup.gguf, ENTRY, "tiny", &setup.gguf).err();

    assert!(matches!(not_gguf, Some(HubError::NotGguf { .. })), "{not_gguf:?}");
    assert!(matches!(bad_entry, Some(HubError::InvalidEntry { .. })), "{bad_entry:?}");
    assert!(matches!(bad_id, Some(HubError::InvalidModelId { .. })), "{bad_id:?}");
    assert!(matches!(missing, Some(HubError::LocalMissing { .. })), "{missing:?}");
    assert!(matches!(onto_itself, Some(HubError::Io { action: "export onto", .. })), "{onto_itself:?}");
    assert_eq!(std::fs::read(&setup.gguf).expect("read"), setup.bytes, "the GGUF is untouched");
    assert_eq!(names(setup.dir.path()), ["notes.txt", "tiny.gguf"], "nothing written");
}
