//! `chorus characters list|show|validate|import|export`: the characters directory
//! (`--characters-dir`, default `DATA_DIR/characters`) worked on directly, no server needed.
//! `validate` checks card files without importing them and exits 1 when any is invalid,
//! naming the field at fault; `import` takes JSON, PNG and CHARX cards (V1, V2, V3); `export`
//! writes the card's JSON back as imported, as JSON, PNG or CHARX.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use chorus_engine::character::card::{self, CardFormat};
use chorus_engine::character::dir::{CharacterDir, DirError, StoredCharacter};
use chorus_proto::character::VitalKind;
use serde_json::json;

use crate::args::{CharactersArgs, CharactersCommand};

/// The longest text a field gets in `show` before it is cut (`--json` prints it all).
const SHOW_TEXT: usize = 400;

pub(crate) fn run(args: CharactersArgs) -> Result<()> {
    let dir = || -> Result<CharacterDir> {
        Ok(CharacterDir::new(characters_dir(args.dir.characters_dir.as_deref(), args.data_dir.as_deref())?))
    };
    match args.command {
        CharactersCommand::List { json } => list(&dir()?, json),
        CharactersCommand::Show { name, json } => show(&dir()?, &name, json),
        CharactersCommand::Validate { files } => validate(&files),
        CharactersCommand::Import { file, id, replace } => import(&dir()?, &file, id.as_deref(), replace),
        CharactersCommand::Export { name, format, output } => {
            let format =
                CardFormat::parse(&format).ok_or_else(|| anyhow!("`{format}` is no format: json, png or charx"))?;
            export(&dir()?, &name, format, output.as_deref())
        }
    }
}

/// The characters directory: `explicit` (`--characters-dir`), else `characters` in
/// `data_dir` (`--data-dir`), else in the platform data dir. Nothing is created.
pub(crate) fn characters_dir(explicit: Option<&Path>, data_dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_owned());
    }
    let data_dir = match data_dir {
        Some(dir) => dir.to_owned(),
        None => directories::ProjectDirs::from("", "", "chorus")
            .context("no data directory on this platform; pass --characters-dir DIR or --data-dir DIR")?
            .data_dir()
            .to_owned(),
    };
    Ok(data_dir.join("characters"))
}

/// A directory error, with what to do next.
fn explain(dir: &CharacterDir, e: DirError) -> anyhow::Error {
    match e {
        DirError::NotFound(id) => anyhow!(
            "no character `{id}` in {}; `chorus characters list` shows them (or pass --characters-dir DIR)",
            dir.path().display()
        ),
        DirError::Exists(id) => anyhow!(
            "a character `{id}` exists already in {}; pass --replace to overwrite it, or --id ID to import it under another id",
            dir.path().display()
        ),
        DirError::Corrupt { path, source } => {
            anyhow!("{}: {source}; fix the file, or import the card again with --replace", path.display())
        }
        other => other.into(),
    }
}

/// The character `name_or_id` (by id, else by name).
fn resolve(dir: &CharacterDir, name_or_id: &str) -> Result<StoredCharacter> {
    dir.resolve(name_or_id)
        .map_err(|e| explain(dir, e))?
        .ok_or_else(|| explain(dir, DirError::NotFound(name_or_id.to_owned())))
}

/// `chorus characters list`.
fn list(dir: &CharacterDir, json: bool) -> Result<()> {
    let entries = dir.list().map_err(|e| explain(dir, e))?;
    if json {
        let entries: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "name": e.name,
                    "spec": e.spec,
                    "tags": e.tags,
                    "has_lorebook": e.has_lorebook,
                    "vitals": e.vitals,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    if entries.is_empty() {
        eprintln!("no characters in {}; add one with `chorus characters import FILE`", dir.path().display());
        return Ok(());
    }
    let rows: Vec<[String; 4]> =
        entries.iter().map(|e| [e.id.clone(), e.name.clone(), e.spec.clone(), e.tags.join(", ")]).collect();
    let header = ["ID", "NAME", "SPEC", "TAGS"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let [id, name, spec, tags] = cells;
        let line =
            format!("{id:<w0$}  {name:<w1$}  {spec:<w2$}  {tags}", w0 = widths[0], w1 = widths[1], w2 = widths[2]);
        line.trim_end().to_owned()
    };
    println!("{}", line(header));
    for row in &rows {
        println!("{}", line(row.each_ref().map(String::as_str)));
    }
    Ok(())
}

/// `chorus characters show`.
fn show(dir: &CharacterDir, name_or_id: &str, json: bool) -> Result<()> {
    let stored = resolve(dir, name_or_id)?;
    if json {
        std::io::stdout().write_all(&card::to_json(&stored.raw))?;
        return Ok(());
    }
    print!("{}", render(&stored));
    Ok(())
}

/// `show`'s text: `key  value` lines, then the main text fields.
fn render(stored: &StoredCharacter) -> String {
    let data = &stored.card.data;
    let ext = card::chorus_extension(&stored.card);
    let mut lines: Vec<(&str, String)> = vec![
        ("id", stored.id.clone()),
        ("name", data.name.clone()),
        ("spec", format!("{} {}", stored.card.spec, stored.card.spec_version)),
    ];
    if let Some(nickname) = data.nickname.as_deref().filter(|n| !n.trim().is_empty()) {
        lines.push(("nickname", nickname.to_owned()));
    }
    let mut add = |key, value: &str| {
        if !value.trim().is_empty() {
            lines.push((key, value.to_owned()));
        }
    };
    add("creator", &data.creator);
    add("version", &data.character_version);
    add("tags", &data.tags.join(", "));
    let mut greetings = format!("first message + {} alternate", data.alternate_greetings.len());
    if let Some(group) = data.group_only_greetings.as_ref().filter(|g| !g.is_empty()) {
        greetings.push_str(&format!(" + {} group-only", group.len()));
    }
    lines.push(("greetings", greetings));
    lines.push((
        "lorebook",
        match &data.character_book {
            None => "none".to_owned(),
            Some(book) => {
                let n = book.entries.len();
                let enabled = book.entries.iter().filter(|e| e.enabled).count();
                let mut text = format!("{n} {} ({enabled} enabled)", if n == 1 { "entry" } else { "entries" });
                if let Some(name) = book.name.as_deref().filter(|n| !n.trim().is_empty()) {
                    text.push_str(&format!(", {name:?}"));
                }
                text
            }
        },
    ));
    if ext.vitals.is_empty() {
        lines.push(("vitals", "none".to_owned()));
    }
    for (i, vital) in ext.vitals.iter().enumerate() {
        let scope = match vital.scope {
            chorus_proto::character::VitalScope::Character => "character",
            chorus_proto::character::VitalScope::User => "per user",
        };
        let kind = match &vital.kind {
            VitalKind::Number { min, max, default, decay_per_turn, decay_per_hour } => {
                let mut text = format!("number {min}..{max}, default {default}");
                if *decay_per_turn > 0.0 {
                    text.push_str(&format!(", decays {decay_per_turn}/turn"));
                }
                if *decay_per_hour > 0.0 {
                    text.push_str(&format!(", decays {decay_per_hour}/hour"));
                }
                text
            }
            VitalKind::Enum { values, default } => format!("one of {}, default {default}", values.join("|")),
        };
        lines.push((if i == 0 { "vitals" } else { "" }, format!("{} ({kind}; {scope})", vital.name)));
    }
    let memory = &ext.memory;
    lines.push((
        "memory",
        if memory.enabled {
            format!(
                "top {}, merges at {}, recency decay {}/hour",
                memory.top_k, memory.merge_threshold, memory.recency_decay
            )
        } else {
            "off".to_owned()
        },
    ));
    if let Some(model) = &ext.model {
        lines.push(("model", model.clone()));
    }
    lines.push((
        "file",
        match &stored.original {
            Some((format, _)) => format!("{0}.json (imported from {0}.{format})", stored.id),
            None => format!("{}.json", stored.id),
        },
    ));
    let mut out: String = lines.iter().map(|(key, value)| format!("{key:<10} {value}\n")).collect();
    for (title, text) in [
        ("description", &data.description),
        ("personality", &data.personality),
        ("scenario", &data.scenario),
        ("first message", &data.first_mes),
    ] {
        if !text.trim().is_empty() {
            out.push_str(&format!("\n{title}:\n  {}\n", cut(text.trim(), SHOW_TEXT).replace('\n', "\n  ")));
        }
    }
    out
}

/// `text`'s first `max` characters, with `…` when it is longer.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// `chorus characters validate`: one line per file; an error when any is invalid.
fn validate(files: &[PathBuf]) -> Result<()> {
    let mut bad = 0;
    for file in files {
        let read = std::fs::read(file)
            .map_err(|e| format!("cannot read it: {e}"))
            .and_then(|bytes| card::read_card(&bytes).map_err(|e| e.to_string()));
        match read {
            Ok(imported) => {
                println!("ok {} ({} {:?})", file.display(), imported.card.spec, imported.card.data.name)
            }
            Err(e) => {
                bad += 1;
                eprintln!("{}: {e}", file.display());
            }
        }
    }
    match bad {
        0 => Ok(()),
        1 if files.len() == 1 => bail!("the card is invalid"),
        _ => bail!("{bad} of {} cards are invalid", files.len()),
    }
}

/// `chorus characters import`: prints the id.
fn import(dir: &CharacterDir, file: &Path, id: Option<&str>, replace: bool) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let stored = dir.import(&bytes, id, replace).map_err(|e| match e {
        DirError::Card(e) => anyhow!("{}: {e}", file.display()),
        other => explain(dir, other),
    })?;
    println!("{}", stored.id);
    eprintln!("imported {:?} as `{}` into {}", stored.card.data.name, stored.id, dir.path().display());
    Ok(())
}

/// `chorus characters export`.
fn export(dir: &CharacterDir, name_or_id: &str, format: CardFormat, output: Option<&Path>) -> Result<()> {
    let output = output.filter(|o| *o != Path::new("-"));
    if output.is_none() && format != CardFormat::Json {
        bail!("a {format} card is binary: pass -o FILE (say {name_or_id}.{format}) to write it to a file");
    }
    let stored = resolve(dir, name_or_id)?;
    let bytes = stored.export(format).with_context(|| format!("cannot write `{}` as {format}", stored.id))?;
    match output {
        Some(path) => {
            std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote `{}` as {format} to {} ({} bytes)", stored.id, path.display(), bytes.len());
        }
        None => std::io::stdout().write_all(&bytes)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_characters_dir_is_the_flag_else_under_the_data_dir() {
        let explicit = characters_dir(Some(Path::new("/x/chars")), Some(Path::new("/data"))).ok();
        assert_eq!(explicit, Some(PathBuf::from("/x/chars")));
        assert_eq!(characters_dir(None, Some(Path::new("/data"))).ok(), Some(PathBuf::from("/data/characters")));
    }

    #[test]
    fn the_flags_parse_before_and_after_the_subcommand() {
        use clap::{CommandFactory, Parser};
        crate::args::Cli::command().debug_assert();
        for argv in [
            ["chorus", "characters", "--characters-dir", "/c", "list"],
            ["chorus", "characters", "list", "--characters-dir", "/c"],
        ] {
            let cli = crate::args::Cli::try_parse_from(argv).map_err(|e| e.to_string());
            let Ok(crate::args::Cli { command: crate::args::Command::Characters(args), .. }) = cli else {
                panic!("{argv:?}: {cli:?}");
            };
            assert_eq!(args.dir.characters_dir.as_deref(), Some(Path::new("/c")));
        }
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(cut("héllo", 10), "héllo");
        assert_eq!(cut("héllo", 2), "hé…");
    }
}
