//! `DATA_DIR/models.toml`: the models chorus registered by itself (`chorus pull`, `chorus
//! models import`, a server's `POST /api/v1/models/pull`), as `[[models]]` entries like
//! `chorus.toml`'s. [`crate::registry::build`] registers them after every other model, so
//! `chorus serve` serves them after a restart; an entry that no longer works (its file
//! deleted, its id taken by a flag) is skipped with a warning rather than stopping the server.
//!
//! Entries are appended, so whatever a person edited in the file stays as it was; removing
//! one (Ollama's `/api/delete`) edits the document in place (`toml_edit`), keeping the rest
//! of it, comments included.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::registry::ModelEntry;

/// The file's name in the data dir.
pub(crate) const FILE: &str = "models.toml";

/// The first lines of a new file.
const HEADER: &str = "\
# Models chorus registered itself (`chorus pull`, `chorus models import`, a server's pull).
# `chorus serve` serves them after the models of chorus.toml; edit or remove entries freely.
";

/// The file's shape.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SavedFile {
    #[serde(default)]
    models: Vec<ModelEntry>,
}

/// `DATA_DIR/models.toml`.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The entries of `DATA_DIR/models.toml`, in file order; none when it does not exist.
///
/// # Errors
/// A file that cannot be read or is not valid (the message names it).
pub(crate) fn load(data_dir: &Path) -> Result<Vec<ModelEntry>> {
    let path = path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let file: SavedFile = toml::from_str(&text)
        .with_context(|| format!("{} is not valid; fix or remove the entry it names", path.display()))?;
    Ok(file.models)
}

/// Whether [`add`] wrote the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// Appended.
    New,
    /// An entry with this id and source was there already.
    AlreadyThere,
}

/// Append `entry` (which must have an `id`) to `DATA_DIR/models.toml`, creating the file.
///
/// # Errors
/// The id is in the file already for another source, or the file cannot be written.
pub(crate) fn add(data_dir: &Path, entry: &ModelEntry) -> Result<Added> {
    let id = entry.id.as_deref().context("a saved model needs an id")?;
    let path = path(data_dir);
    if let Some(known) =
        load(data_dir)?.iter().find(|e| e.id.as_deref() == Some(id) || e.aliases.iter().any(|a| a == id))
    {
        if known.source == entry.source && known.id.as_deref() == Some(id) {
            return Ok(Added::AlreadyThere);
        }
        bail!(
            "the id `{id}` is registered already in {} (source {}); choose another with --id, or remove that entry",
            path.display(),
            known.source.as_deref().unwrap_or("-")
        );
    }
    let mut text =
        toml::to_string(&SavedFile { models: vec![entry.clone()] }).context("cannot write the entry as TOML")?;
    text.insert(0, '\n');
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {} to register the model", path.display()))?;
    if new {
        text.insert_str(0, HEADER);
    }
    // One write: a concurrent reader sees the whole entry or none of it.
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write to {}", path.display()))?;
    Ok(Added::New)
}

/// Remove the entry whose `id` is `id` from `DATA_DIR/models.toml`, keeping the rest of the
/// file as it is; false when no entry has that id. The new text replaces the file atomically
/// (written beside it, synced, renamed).
///
/// # Errors
/// The file cannot be read, parsed or written.
pub(crate) fn remove(data_dir: &Path, id: &str) -> Result<bool> {
    let path = path(data_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut doc: toml_edit::DocumentMut =
        text.parse().with_context(|| format!("{} is not valid TOML; fix it", path.display()))?;
    let Some(models) = doc.get_mut("models").and_then(toml_edit::Item::as_array_of_tables_mut) else {
        return Ok(false);
    };
    let Some(index) = models.iter().position(|t| t.get("id").and_then(toml_edit::Item::as_str) == Some(id)) else {
        return Ok(false);
    };
    // The file's header comment is the first table's prefix: it stays with the new first one.
    let prefix = models.get(index).and_then(|t| t.decor().prefix().cloned());
    models.remove(index);
    if index == 0
        && let (Some(prefix), Some(first)) = (prefix, models.get_mut(0))
    {
        first.decor_mut().set_prefix(prefix);
    }
    let partial = path.with_extension("toml.partial");
    std::fs::File::create(&partial)
        .and_then(|mut file| {
            file.write_all(doc.to_string().as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&partial, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let entry = ModelEntry {
            id: Some("tiny".into()),
            source: Some("hf:o/r/tiny.gguf".into()),
            capabilities: Some(vec!["chat".into()]),
            ctx_size: Some(4096),
            ..ModelEntry::default()
        };
        assert_eq!(add(dir.path(), &entry).unwrap(), Added::New);
        assert_eq!(add(dir.path(), &entry).unwrap(), Added::AlreadyThere);
        let other = ModelEntry { source: Some("/models/other.gguf".into()), ..entry.clone() };
        let error = format!("{:#}", add(dir.path(), &other).unwrap_err());
        assert!(error.contains("`tiny` is registered already") && error.contains("--id"), "{error}");
        let second = ModelEntry { id: Some("second".into()), ..other };
        assert_eq!(add(dir.path(), &second).unwrap(), Added::New);

        let text = std::fs::read_to_string(path(dir.path())).unwrap();
        assert!(text.starts_with("# Models chorus registered"), "{text}");
        let entries = load(dir.path()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].id.as_deref(), Some("tiny"));
        assert_eq!(entries[0].ctx_size, Some(4096));
        assert_eq!(entries[1].source.as_deref(), Some("/models/other.gguf"));
    }

    #[test]
    fn an_entry_is_removed_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!remove(dir.path(), "tiny").unwrap());
        for id in ["one", "two"] {
            let entry =
                ModelEntry { id: Some(id.into()), source: Some(format!("/m/{id}.gguf")), ..ModelEntry::default() };
            add(dir.path(), &entry).unwrap();
        }
        let file = path(dir.path());
        let edited = std::fs::read_to_string(&file).unwrap() + "# a note of mine\n";
        std::fs::write(&file, edited).unwrap();
        assert!(remove(dir.path(), "one").unwrap());
        assert!(!remove(dir.path(), "one").unwrap());
        let entries = load(dir.path()).unwrap();
        assert_eq!(entries.iter().map(|e| e.id.clone().unwrap()).collect::<Vec<_>>(), ["two"]);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("# Models chorus registered") && text.contains("# a note of mine"), "{text}");
    }
}
