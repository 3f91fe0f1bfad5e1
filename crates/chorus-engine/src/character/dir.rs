//! The characters directory (`--characters-dir`): one character per id, as `ID.json` (the card's
//! JSON as imported, pretty-printed) plus `ID.png` or `ID.charx` when it was imported from one
//! (the original file, whose image or assets an export reuses).
//!
//! Ids are slugs: lowercase ASCII letters, digits and `-`, 1 to 64 characters, not starting
//! with `-`; an import names the character after its card (`Aria Blackwood` → `aria-blackwood`,
//! then `aria-blackwood-2`, …) unless it is given an id. Every write is durable: a temporary
//! file in the directory, written, synced, renamed over the target, and the directory synced.
//! The directory is created on the first write; until then it lists no characters.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chorus_proto::character::Card;
use serde_json::Value;

use super::card::{self, CardError, CardFormat};

/// The longest id.
pub const MAX_ID_LEN: usize = 64;
/// The id of a character whose name gives no slug (no ASCII letter or digit in it).
const FALLBACK_ID: &str = "character";

/// Why the characters directory could not do something.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// No character has this id (or name).
    #[error("no character `{0}`")]
    NotFound(String),
    /// A character already has this id; import with `replace` to overwrite it.
    #[error("a character `{0}` exists already; replace it, or import under another id")]
    Exists(String),
    /// The id is not a slug.
    #[error("id: `{0}` is not a character id: use 1 to 64 lowercase letters, digits and `-`, not starting with `-`")]
    BadId(String),
    /// The card was refused.
    #[error(transparent)]
    Card(#[from] CardError),
    /// A stored card no longer reads (edited by hand, say).
    #[error("{}: {source}", path.display())]
    Corrupt {
        /// The card's file.
        path: PathBuf,
        /// What is wrong with it.
        source: CardError,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// A line of [`CharacterDir::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct CharacterEntry {
    /// The character's id.
    pub id: String,
    /// The card's `data.name`.
    pub name: String,
    /// `chara_card_v2` or `chara_card_v3`.
    pub spec: String,
    /// The card's tags.
    pub tags: Vec<String>,
    /// Whether the card has a lorebook (`character_book`) with at least one entry.
    pub has_lorebook: bool,
    /// How many vitals `data.extensions.chorus` declares.
    pub vitals: usize,
}

/// A character as the directory holds it.
#[derive(Debug, Clone)]
pub struct StoredCharacter {
    /// Its id: the file stem.
    pub id: String,
    /// The typed card.
    pub card: Card,
    /// The card's JSON as imported: what an export writes.
    pub raw: Value,
    /// The PNG or CHARX file it was imported from, when it was.
    pub original: Option<(CardFormat, Vec<u8>)>,
}

impl StoredCharacter {
    /// The card in `format`: its JSON; a PNG with the original PNG's image (else, for a card
    /// from a CHARX, the CHARX's main icon when it is an embedded PNG, else a placeholder); a
    /// CHARX with the original CHARX's assets.
    ///
    /// # Errors
    ///
    /// The writer's [`CardError::Format`].
    pub fn export(&self, format: CardFormat) -> Result<Vec<u8>, CardError> {
        let original = |f: CardFormat| match &self.original {
            Some((of, bytes)) if *of == f => Some(bytes.as_slice()),
            _ => None,
        };
        match format {
            CardFormat::Json => Ok(card::to_json(&self.raw)),
            CardFormat::Png => {
                let icon = original(CardFormat::Charx).and_then(|charx| charx_icon(&self.raw, charx));
                card::to_png(&self.raw, &self.card.spec, original(CardFormat::Png).or(icon.as_deref()))
            }
            CardFormat::Charx => card::to_charx(&self.raw, original(CardFormat::Charx)),
        }
    }
}

/// The main icon of a CHARX's card (`data.assets`: `type: icon`, `name: main`, an
/// `embeded://PATH` URI), when it is a PNG inside the zip.
fn charx_icon(raw: &Value, charx: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let assets = raw.pointer("/data/assets")?.as_array()?;
    let main = assets.iter().find(|a| a["type"] == "icon" && a["name"] == "main")?;
    let path = main["uri"].as_str()?.strip_prefix("embeded://")?;
    let mut zip = zip::ZipArchive::new(io::Cursor::new(charx)).ok()?;
    let file = zip.by_name(path).ok()?;
    let mut bytes = Vec::new();
    file.take(64 << 20).read_to_end(&mut bytes).ok()?;
    (CardFormat::sniff(&bytes) == CardFormat::Png).then_some(bytes)
}

/// The characters directory.
#[derive(Debug, Clone)]
pub struct CharacterDir {
    /// The directory; created by the first write.
    path: PathBuf,
}

impl CharacterDir {
    /// The directory at `path` (nothing is read or created yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every character, sorted by id. A card file that no longer reads is skipped with a
    /// warning in the log; a directory that does not exist holds none.
    ///
    /// # Errors
    ///
    /// [`DirError::Io`] when the directory cannot be read.
    pub fn list(&self) -> Result<Vec<CharacterEntry>, DirError> {
        let mut entries = Vec::new();
        for (id, path) in self.card_files()? {
            match read_stored_json(&path) {
                Ok((card, _)) => {
                    let ext = card::chorus_extension(&card);
                    entries.push(CharacterEntry {
                        id,
                        has_lorebook: card.data.character_book.as_ref().is_some_and(|b| !b.entries.is_empty()),
                        vitals: ext.vitals.len(),
                        name: card.data.name,
                        spec: card.spec,
                        tags: card.data.tags,
                    });
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping a character card that does not read")
                }
            }
        }
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(entries)
    }

    /// The character with id `id`; `None` when there is none (or `id` is no valid id).
    ///
    /// # Errors
    ///
    /// [`DirError::Corrupt`] when its card no longer reads, [`DirError::Io`].
    pub fn get(&self, id: &str) -> Result<Option<StoredCharacter>, DirError> {
        if check_id(id).is_err() {
            return Ok(None);
        }
        let path = self.json_path(id);
        let (card, raw) = match read_stored_json(&path) {
            Ok(read) => read,
            Err(DirError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut original = None;
        for format in [CardFormat::Png, CardFormat::Charx] {
            let path = self.file_path(id, format);
            match fs::read(&path) {
                Ok(bytes) => {
                    original = Some((format, bytes));
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(DirError::Io { path, source }),
            }
        }
        Ok(Some(StoredCharacter { id: id.to_owned(), card, raw, original }))
    }

    /// The character whose id is `name_or_id`, else the first (by id) whose card's name is
    /// `name_or_id` (case ignored); `None` when neither exists.
    ///
    /// # Errors
    ///
    /// As [`CharacterDir::get`] and [`CharacterDir::list`].
    pub fn resolve(&self, name_or_id: &str) -> Result<Option<StoredCharacter>, DirError> {
        if let Some(found) = self.get(name_or_id)? {
            return Ok(Some(found));
        }
        let wanted = name_or_id.trim().to_lowercase();
        match self.list()?.into_iter().find(|e| e.name.trim().to_lowercase() == wanted) {
            Some(entry) => self.get(&entry.id),
            None => Ok(None),
        }
    }

    /// Imports a card file (JSON, PNG or CHARX: [`card::read_card`]) under `id`, else under the
    /// slug of its name (made unique with `-2`, `-3`, … unless `replace`, when the slug's
    /// character is overwritten). A PNG or CHARX is kept besides the JSON.
    ///
    /// # Errors
    ///
    /// [`DirError::Card`] when the card is refused, [`DirError::BadId`], [`DirError::Exists`]
    /// when `id` is taken and not `replace`, [`DirError::Io`].
    pub fn import(&self, bytes: &[u8], id: Option<&str>, replace: bool) -> Result<StoredCharacter, DirError> {
        let imported = card::read_card(bytes)?;
        if let Some(id) = id {
            check_id(id)?;
        }
        let json = card::to_json(&imported.raw);
        self.create_dir()?;
        let id = match (id, replace) {
            (Some(id), true) => {
                self.write(&format!("{id}.json"), &json, true)?;
                id.to_owned()
            }
            (Some(id), false) => {
                if !self.write(&format!("{id}.json"), &json, false)? {
                    return Err(DirError::Exists(id.to_owned()));
                }
                id.to_owned()
            }
            (None, true) => {
                let id = slug(&imported.card.data.name);
                self.write(&format!("{id}.json"), &json, true)?;
                id
            }
            (None, false) => {
                let base = slug(&imported.card.data.name);
                let mut n = 1;
                loop {
                    let id = numbered(&base, n);
                    if self.write(&format!("{id}.json"), &json, false)? {
                        break id;
                    }
                    n += 1;
                }
            }
        };
        let original = imported.original.map(|bytes| (imported.format, bytes));
        let written = match &original {
            Some((format, bytes)) => self.write(&format!("{id}.{}", format.extension()), bytes, true).map(drop),
            None => Ok(()),
        };
        if let Err(e) = written {
            // The JSON without its file would be a different character: none rather than that.
            let _ = fs::remove_file(self.json_path(&id));
            return Err(e);
        }
        // A replaced character's original file of another format is no longer its own.
        for format in [CardFormat::Png, CardFormat::Charx] {
            if original.as_ref().is_none_or(|(f, _)| *f != format) {
                self.remove(&self.file_path(&id, format))?;
            }
        }
        self.sync_dir()?;
        Ok(StoredCharacter { id, card: imported.card, raw: imported.raw, original })
    }

    /// The character `id`'s card in `format` ([`StoredCharacter::export`]).
    ///
    /// # Errors
    ///
    /// [`DirError::NotFound`], [`DirError::Card`] from the writer, and those of
    /// [`CharacterDir::get`].
    pub fn export(&self, id: &str, format: CardFormat) -> Result<Vec<u8>, DirError> {
        let stored = self.get(id)?.ok_or_else(|| DirError::NotFound(id.to_owned()))?;
        Ok(stored.export(format)?)
    }

    /// Deletes the character `id` (its JSON and original file); whether it existed.
    ///
    /// # Errors
    ///
    /// [`DirError::Io`].
    pub fn delete(&self, id: &str) -> Result<bool, DirError> {
        if check_id(id).is_err() {
            return Ok(false);
        }
        let existed = self.remove(&self.json_path(id))?;
        for format in [CardFormat::Png, CardFormat::Charx] {
            self.remove(&self.file_path(id, format))?;
        }
        if existed {
            self.sync_dir()?;
        }
        Ok(existed)
    }

    fn json_path(&self, id: &str) -> PathBuf {
        self.file_path(id, CardFormat::Json)
    }

    fn file_path(&self, id: &str, format: CardFormat) -> PathBuf {
        self.path.join(format!("{id}.{}", format.extension()))
    }

    /// `(id, path)` of every `ID.json` whose stem is a valid id; none when the directory does
    /// not exist.
    fn card_files(&self) -> Result<Vec<(String, PathBuf)>, DirError> {
        let io_error = |source| DirError::Io { path: self.path.clone(), source };
        let read = match fs::read_dir(&self.path) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error(e)),
        };
        let mut files = Vec::new();
        for entry in read {
            let path = entry.map_err(io_error)?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            if let Some(id) = path.file_stem().and_then(|s| s.to_str())
                && check_id(id).is_ok()
            {
                files.push((id.to_owned(), path));
            }
        }
        Ok(files)
    }

    fn create_dir(&self) -> Result<(), DirError> {
        fs::create_dir_all(&self.path).map_err(|source| DirError::Io { path: self.path.clone(), source })
    }

    /// Writes `bytes` to `name` in the directory, durably (temporary file, sync, rename); with
    /// `overwrite` false, only when `name` does not exist (atomically: two imports of the same
    /// name never overwrite each other). Whether it was written. The directory itself is
    /// synced by the caller ([`CharacterDir::sync_dir`]).
    fn write(&self, name: &str, bytes: &[u8], overwrite: bool) -> Result<bool, DirError> {
        let target = self.path.join(name);
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| DirError::Io { path, source }
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".")
            .suffix(".tmp")
            .tempfile_in(&self.path)
            .map_err(io_error(&self.path))?;
        tmp.write_all(bytes).map_err(io_error(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io_error(tmp.path()))?;
        let persisted = if overwrite { tmp.persist(&target) } else { tmp.persist_noclobber(&target) };
        match persisted {
            Ok(_) => Ok(true),
            Err(e) if !overwrite && e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(DirError::Io { path: target, source: e.error }),
        }
    }

    /// Removes `path`; whether it existed.
    fn remove(&self, path: &Path) -> Result<bool, DirError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(DirError::Io { path: path.to_owned(), source }),
        }
    }

    /// Syncs the directory, so renames and removals in it survive a crash (Unix; elsewhere
    /// renames are durable once the files are).
    fn sync_dir(&self) -> Result<(), DirError> {
        #[cfg(unix)]
        fs::File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| DirError::Io { path: self.path.clone(), source })?;
        Ok(())
    }
}

/// The card in `path` and its JSON.
fn read_stored_json(path: &Path) -> Result<(Card, Value), DirError> {
    let bytes = fs::read(path).map_err(|source| DirError::Io { path: path.to_owned(), source })?;
    let corrupt = |source| DirError::Corrupt { path: path.to_owned(), source };
    let raw: Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(CardError::Format(format!("not JSON: {e}"))))?;
    let card = card::validate(&raw).map_err(corrupt)?;
    Ok((card, raw))
}

/// Checks that `id` is a character id: 1 to 64 of `a-z`, `0-9`, `-`, not starting with `-`.
///
/// # Errors
///
/// [`DirError::BadId`].
pub fn check_id(id: &str) -> Result<(), DirError> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && !id.starts_with('-')
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(DirError::BadId(id.to_owned())) }
}

/// The id a card named `name` gets: its ASCII letters and digits lowercased, every other run
/// of characters one `-`, none at either end, at most 64 characters; `character` when nothing
/// is left.
pub fn slug(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.truncate(MAX_ID_LEN);
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() { FALLBACK_ID.to_owned() } else { slug.to_owned() }
}

/// `base` for `n` 1, else `base-N`, `base` shortened so the whole stays within 64 characters.
fn numbered(base: &str, n: u32) -> String {
    if n <= 1 {
        return base.to_owned();
    }
    let suffix = format!("-{n}");
    let keep = base.len().min(MAX_ID_LEN - suffix.len());
    format!("{}{suffix}", base[..keep].trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    const ARIA: &str = include_str!("../../tests/data/characters/aria.v3.json");
    const BRAM: &str = include_str!("../../tests/data/characters/bram.v2.json");

    fn value(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn slugs_and_ids() {
        assert_eq!(slug("Aria"), "aria");
        assert_eq!(slug("  Sir Bram Ironhand, the 3rd!  "), "sir-bram-ironhand-the-3rd");
        assert_eq!(slug("Zoë--Ève"), "zo-ve");
        assert_eq!(slug("エリ"), "character");
        assert_eq!(slug(&"ab".repeat(40)).len(), 64);
        assert_eq!(slug(&format!("{}-x", "a".repeat(63))), "a".repeat(63), "no dash at the end once cut");
        assert_eq!(numbered("aria", 1), "aria");
        assert_eq!(numbered("aria", 3), "aria-3");
        assert_eq!(numbered(&"a".repeat(64), 12).len(), 64);
        for ok in ["aria", "a-2", "007", &"x".repeat(64)] {
            assert!(check_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Aria", "-aria", "a_b", "a.json", "../x", "a b", &"x".repeat(65)] {
            assert!(matches!(check_id(bad), Err(DirError::BadId(_))), "{bad}");
        }
        assert!(DirError::BadId("A".into()).to_string().starts_with("id: "));
    }

    #[test]
    fn import_list_get_resolve_export_delete() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CharacterDir::new(tmp.path().join("characters"));
        assert!(dir.list().unwrap().is_empty(), "a missing directory holds none");
        assert!(dir.get("aria").unwrap().is_none());

        let aria = dir.import(ARIA.as_bytes(), None, false).unwrap();
        assert_eq!(aria.id, "aria");
        assert!(aria.original.is_none());
        let png = card::to_png(&value(BRAM), chorus_proto::character::SPEC_V2, None).unwrap();
        let bram = dir.import(&png, None, false).unwrap();
        assert_eq!(bram.id, "bram");
        assert_eq!(files(dir.path()), ["aria.json", "bram.json", "bram.png"]);

        let list = dir.list().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0],
            CharacterEntry {
                id: "aria".into(),
                name: "Aria".into(),
                spec: "chara_card_v3".into(),
                tags: vec!["lighthouse".into(), "cozy".into(), "coastal".into(), "female".into()],
                has_lorebook: true,
                vitals: 3,
            }
        );
        assert_eq!((list[1].id.as_str(), list[1].vitals), ("bram", 0));

        let got = dir.get("bram").unwrap().unwrap();
        assert_eq!(got.raw, value(BRAM));
        assert_eq!(got.original, Some((CardFormat::Png, png.clone())));
        // The stored JSON is the card's JSON, pretty.
        let stored: Value = serde_json::from_slice(&fs::read(dir.path().join("aria.json")).unwrap()).unwrap();
        assert_eq!(stored, value(ARIA));

        assert_eq!(dir.resolve("ARIA").unwrap().unwrap().id, "aria", "by name, case ignored");
        assert_eq!(dir.resolve("bram").unwrap().unwrap().id, "bram");
        assert!(dir.resolve("Nobody").unwrap().is_none());

        for format in CardFormat::ALL {
            let bytes = dir.export("aria", format).unwrap();
            assert_eq!(card::read_card(&bytes).unwrap().raw, value(ARIA), "{format}");
        }
        // A PNG export of a PNG import is its image.
        let again = dir.export("bram", CardFormat::Png).unwrap();
        assert_eq!(again, card::to_png(&value(BRAM), "chara_card_v2", Some(&png)).unwrap());
        assert!(matches!(dir.export("nobody", CardFormat::Json), Err(DirError::NotFound(id)) if id == "nobody"));

        assert!(dir.delete("bram").unwrap());
        assert!(!dir.delete("bram").unwrap());
        assert_eq!(files(dir.path()), ["aria.json"]);
    }

    #[test]
    fn ids_are_unique_unless_replaced_or_given() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CharacterDir::new(tmp.path());
        assert_eq!(dir.import(ARIA.as_bytes(), None, false).unwrap().id, "aria");
        assert_eq!(dir.import(ARIA.as_bytes(), None, false).unwrap().id, "aria-2");
        assert_eq!(dir.import(ARIA.as_bytes(), None, false).unwrap().id, "aria-3");
        assert_eq!(dir.import(ARIA.as_bytes(), None, true).unwrap().id, "aria", "replace: the slug's own");

        assert_eq!(dir.import(BRAM.as_bytes(), Some("smith"), false).unwrap().id, "smith");
        assert!(
            matches!(dir.import(BRAM.as_bytes(), Some("smith"), false), Err(DirError::Exists(id)) if id == "smith")
        );
        assert!(matches!(dir.import(BRAM.as_bytes(), Some("Smith!"), false), Err(DirError::BadId(_))));

        // Replacing a PNG import with a JSON one drops the PNG; a CHARX replaces it too.
        let png = card::to_png(&value(BRAM), "chara_card_v2", None).unwrap();
        dir.import(&png, Some("smith"), true).unwrap();
        assert!(dir.path().join("smith.png").exists());
        let charx = card::to_charx(&value(BRAM), None).unwrap();
        let stored = dir.import(&charx, Some("smith"), true).unwrap();
        assert_eq!(stored.original.as_ref().map(|o| o.0), Some(CardFormat::Charx));
        assert!(!dir.path().join("smith.png").exists());
        dir.import(BRAM.as_bytes(), Some("smith"), true).unwrap();
        assert!(dir.get("smith").unwrap().unwrap().original.is_none());
        assert!(!dir.path().join("smith.charx").exists());
        assert_eq!(
            dir.list().unwrap().iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            ["aria", "aria-2", "aria-3", "smith"]
        );
        // No temporary files are left.
        assert!(files(dir.path()).iter().all(|f| !f.ends_with(".tmp")), "{:?}", files(dir.path()));
    }

    #[test]
    fn bad_cards_are_refused_and_broken_files_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = CharacterDir::new(tmp.path());
        let mut bad = value(BRAM);
        bad["data"]["name"] = json!("");
        let err = dir.import(&serde_json::to_vec(&bad).unwrap(), None, false).unwrap_err();
        assert_eq!(err.to_string(), "data.name: must not be blank");
        assert!(matches!(err, DirError::Card(CardError::Invalid { .. })));
        assert!(files(dir.path()).is_empty());

        dir.import(BRAM.as_bytes(), None, false).unwrap();
        fs::write(dir.path().join("broken.json"), "{ not json").unwrap();
        fs::write(dir.path().join("README.txt"), "not a card").unwrap();
        fs::write(dir.path().join("Not An Id.json"), BRAM).unwrap();
        let ids: Vec<String> = dir.list().unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["bram"]);
        assert!(matches!(dir.get("broken"), Err(DirError::Corrupt { .. })));
        assert!(dir.get("../bram").unwrap().is_none(), "no path outside the directory");

        // A CHARX's main icon becomes the PNG export's image.
        let icon = card::to_png(&value(BRAM), "chara_card_v2", None).unwrap();
        let mut raw = value(ARIA);
        raw["data"]["assets"] =
            json!([{"type": "icon", "uri": "embeded://assets/icon/images/main.png", "name": "main", "ext": "png"}]);
        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        zip.start_file("card.json", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(&card::to_json(&raw)).unwrap();
        zip.start_file("assets/icon/images/main.png", zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(&icon).unwrap();
        let charx = zip.finish().unwrap().into_inner();
        let stored = dir.import(&charx, None, false).unwrap();
        let png = stored.export(CardFormat::Png).unwrap();
        assert_eq!(png, card::to_png(&raw, "chara_card_v3", Some(&icon)).unwrap());
        assert_eq!(card::read_card(&png).unwrap().raw, raw);
    }
}
