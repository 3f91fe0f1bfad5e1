//! `chorus models`: the running server's models (`ps`, `load`, `unload`, over
//! `/api/v1/models`; a server must answer) and this machine's (`list`, `show`, `rm` in the hub
//! cache; `export` of a model with its registry entry into a package file, `import` of one
//! into `DATA_DIR/models`, registered in `DATA_DIR/models.toml`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use chorus_client::{Client, ClientConfig, ClientError};
use chorus_hub::package::{ENTRY_FILE, GGUF_FILE, Manifest};
use chorus_hub::{CachedModel, HUB_PREFIX, HubConfig, ModelSource};
use chorus_proto::models::{ModelEntry as WireEntry, ModelStatus};
use chorus_proto::openai::KeepAlive;

use crate::args::{ConnectArgs, ModelArgs, ModelsArgs, ModelsCommand};
use crate::registry::{ModelEntry, stem};
use crate::saved;
use crate::target::DEFAULT_URL;

const MIB: f64 = (1u64 << 20) as f64;

pub(crate) async fn run(args: ModelsArgs) -> Result<()> {
    match args.command {
        ModelsCommand::Ps { json, connect } => ps(json, &connect).await,
        ModelsCommand::Load { id, keep_alive, connect } => load(&id, keep_alive, &connect).await,
        ModelsCommand::Unload { id, connect } => unload(&id, &connect).await,
        ModelsCommand::List { model } => list(&model),
        ModelsCommand::Show { name, model } => show(&name, &model),
        ModelsCommand::Rm { name, model } => rm(&name, &model).await,
        ModelsCommand::Export { name, file, model } => export(&name, &file, &model).await,
        ModelsCommand::Import { file, id, model } => import(&file, id, &model).await,
    }
}

/// A client of the server the flags name (default the local one).
fn client(connect: &ConnectArgs) -> Result<Client> {
    let url = connect.url.clone().unwrap_or_else(|| DEFAULT_URL.to_owned());
    Ok(Client::new(ClientConfig {
        url,
        api_key: connect.api_key.clone(),
        timeout: Some(Duration::from_secs(connect.timeout)),
    })?)
}

/// A client error, with what to do when no server answers.
fn explain(client: &Client, e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Unreachable { .. } | ClientError::Timeout { .. } => {
            anyhow::anyhow!("no chorus server answers at {}; start one with `chorus serve`", client.url())
        }
        other => other.into(),
    }
}

/// `chorus models ps`.
async fn ps(json: bool, connect: &ConnectArgs) -> Result<()> {
    let client = client(connect)?;
    let list = client.model_states().await.map_err(|e| explain(&client, e))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    let now = unix_now();
    let rows: Vec<[String; 6]> = list
        .data
        .iter()
        .map(|m| {
            [
                m.id.clone(),
                status(m.status).to_owned(),
                format!("{:.1}", m.bytes as f64 / MIB),
                m.slots.map_or_else(|| "-".to_owned(), |s| format!("{}/{}", s.busy, s.total)),
                m.in_flight.to_string(),
                until(m, now),
            ]
        })
        .collect();
    let header = ["ID", "STATUS", "SIZE (MiB)", "SLOTS", "IN FLIGHT", "UNTIL"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let [id, status, size, slots, in_flight, until] = cells;
        format!(
            "{id:<w0$}  {status:<w1$}  {size:>w2$}  {slots:>w3$}  {in_flight:>w4$}  {until}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
        )
    };
    println!("{}", line(header));
    for (row, m) in rows.iter().zip(&list.data) {
        println!("{}", line(row.each_ref().map(String::as_str)));
        if let Some(error) = &m.last_error {
            println!("{:w$}  last load failed: {error}", "", w = widths[0]);
        }
    }
    println!(
        "memory: {:.1} MiB used of a {:.1} MiB budget",
        list.memory_used as f64 / MIB,
        list.memory_budget as f64 / MIB
    );
    Ok(())
}

fn status(status: ModelStatus) -> &'static str {
    match status {
        ModelStatus::Unloaded => "unloaded",
        ModelStatus::Loading => "loading",
        ModelStatus::Loaded => "loaded",
        ModelStatus::Failed => "failed",
    }
}

/// When a model unloads: `in 4m 59s`, `forever`, `in use`, or `-` when it is not loaded.
fn until(m: &WireEntry, now: i64) -> String {
    if m.status != ModelStatus::Loaded {
        return "-".to_owned();
    }
    match m.expires_at.as_deref().and_then(parse_rfc3339) {
        Some(at) if at <= now => "now".to_owned(),
        Some(at) => format!("in {}", human(at - now)),
        None if m.pinned => "forever (pinned)".to_owned(),
        None if m.in_flight > 0 => "in use".to_owned(),
        None => "forever".to_owned(),
    }
}

/// `59s`, `4m 59s`, `2h 5m`, `3d 4h`.
fn human(secs: i64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) if s == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Seconds since the epoch of an RFC 3339 time.
fn parse_rfc3339(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp())
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
fn format_utc(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// `chorus models load`.
async fn load(id: &str, keep_alive: Option<String>, connect: &ConnectArgs) -> Result<()> {
    let client = client(connect)?;
    let m = client.load_model(id, keep_alive.map(KeepAlive::Duration)).await.map_err(|e| explain(&client, e))?;
    let until = match until(&m, unix_now()).as_str() {
        "forever" => "it stays loaded".to_owned(),
        "-" => "it is not loaded any more".to_owned(),
        other => format!("it unloads {other} once idle"),
    };
    println!("loaded `{}` ({:.1} MiB); {until}", m.id, m.bytes as f64 / MIB);
    Ok(())
}

/// `chorus models unload`.
async fn unload(id: &str, connect: &ConnectArgs) -> Result<()> {
    let client = client(connect)?;
    let m = client.unload_model(id).await.map_err(|e| explain(&client, e))?;
    println!("unloaded `{}`", m.id);
    Ok(())
}

/// The hub cache folder.
fn cache_dir(model: &ModelArgs) -> Result<PathBuf> {
    Ok(crate::model::hub_config(model)?.cache_dir)
}

/// The `[[models]]` of the config file, then those of `DATA_DIR/models.toml`.
fn registered(model: &ModelArgs) -> Result<Vec<ModelEntry>> {
    let (config, _) = crate::config::load(model.config.as_deref())?;
    let mut entries = config.models().to_vec();
    entries.extend(saved::load(&crate::model::data_dir(model)?)?);
    Ok(entries)
}

/// Whether `entry` is the model called `name` (its id, an alias, or its default id).
fn names(entry: &ModelEntry, name: &str) -> bool {
    let default = || entry.source.as_deref().map(default_id);
    entry.aliases.iter().any(|a| a == name)
        || match &entry.id {
            Some(id) => id == name,
            None => default().as_deref() == Some(name),
        }
}

/// The id a source gets when its entry names none.
fn default_id(source: &str) -> String {
    match source.parse::<ModelSource>() {
        Ok(ModelSource::Hub(file)) => stem(Path::new(&file.file)),
        _ => stem(Path::new(source)),
    }
}

/// The cache entry `name` names: a hub source, a registered model's id, or a file's stem.
fn find_cached<'a>(name: &str, cached: &'a [CachedModel], entries: &[ModelEntry]) -> Result<Option<&'a CachedModel>> {
    let by_source = |text: &str| -> Option<&'a CachedModel> {
        let Ok(ModelSource::Hub(want)) = text.parse::<ModelSource>() else { return None };
        cached.iter().find(|c| {
            c.repo == want.repo
                && c.file == want.file
                && (c.revision == want.revision || c.refs.contains(&want.revision))
        })
    };
    if name.starts_with(HUB_PREFIX) {
        return Ok(by_source(name));
    }
    if let Some(found) = entries.iter().filter(|e| names(e, name)).find_map(|e| e.source.as_deref().and_then(by_source))
    {
        return Ok(Some(found));
    }
    let stems: Vec<&CachedModel> = cached.iter().filter(|c| stem(Path::new(&c.file)) == name).collect();
    match stems.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => {
            let sources: Vec<&str> = many.iter().map(|c| c.source.as_str()).collect();
            bail!("`{name}` names several cached files: {}; give the one you mean", sources.join(", "))
        }
    }
}

/// The cache entry `name` names, or an error saying how to see what is there.
fn cached_or_explain(name: &str, model: &ModelArgs) -> Result<(CachedModel, PathBuf)> {
    let dir = cache_dir(model)?;
    let cached = chorus_hub::list_cached(&dir)?;
    let entries = registered(model)?;
    match find_cached(name, &cached, &entries)? {
        Some(found) => Ok((found.clone(), dir)),
        None => bail!("`{name}` is not in the model cache {}; `chorus models list` shows what is", dir.display()),
    }
}

/// `chorus models list`.
fn list(model: &ModelArgs) -> Result<()> {
    let dir = cache_dir(model)?;
    let cached = chorus_hub::list_cached(&dir)?;
    let partial = chorus_hub::list_partial(&dir)?;
    if cached.is_empty() && partial.is_empty() {
        println!(
            "the model cache {} holds no models; `chorus pull hf:OWNER/REPO/FILE.gguf` downloads one",
            dir.display()
        );
        return Ok(());
    }
    let mut rows: Vec<[String; 4]> = cached
        .iter()
        .map(|c| {
            let revision: String = c.revision.chars().take(12).collect();
            [c.source.clone(), format!("{:.1}", c.size as f64 / MIB), revision, "complete".to_owned()]
        })
        .collect();
    for p in &partial {
        let blob: String = p.blob.chars().take(12).collect();
        let name = format!("{HUB_PREFIX}{} (blob {blob}…)", p.repo);
        rows.push([name, format!("{:.1}", p.bytes as f64 / MIB), "-".to_owned(), "partial".to_owned()]);
    }
    let header = ["SOURCE", "SIZE (MiB)", "REVISION", "STATUS"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |[source, size, revision, status]: [&str; 4]| {
        format!("{source:<w0$}  {size:>w1$}  {revision:<w2$}  {status}", w0 = widths[0], w1 = widths[1], w2 = widths[2])
    };
    println!("{}", line(header));
    for row in &rows {
        println!("{}", line(row.each_ref().map(String::as_str)));
    }
    println!("cache: {}", dir.display());
    if !partial.is_empty() {
        println!("a partial download resumes when its file is pulled again");
    }
    Ok(())
}

/// The blob's SHA-256, when its name is one (LFS files).
fn sha256_of(blob: Option<&str>) -> Option<String> {
    blob.filter(|b| b.len() == 64 && b.bytes().all(|c| c.is_ascii_hexdigit())).map(str::to_ascii_lowercase)
}

/// `chorus models show`.
fn show(name: &str, model: &ModelArgs) -> Result<()> {
    let (c, _) = cached_or_explain(name, model)?;
    let refs = if c.refs.is_empty() { String::new() } else { format!(" ({})", c.refs.join(", ")) };
    println!("source:    {}", c.source);
    println!("repo:      {}", c.repo);
    println!("file:      {}", c.file);
    println!("revision:  {}{refs}", c.revision);
    println!("path:      {}", c.path.display());
    println!("size:      {} bytes ({:.1} MiB)", c.size, c.size as f64 / MIB);
    println!("blob:      {}", c.blob.as_deref().unwrap_or("- (the entry is a copy, not a link)"));
    match sha256_of(c.blob.as_deref()) {
        Some(sha) => println!("sha256:    {sha}"),
        None => println!("sha256:    - (the hub's ETag of this file is not a digest)"),
    }
    println!("modified:  {}", format_utc(c.modified));
    Ok(())
}

/// `chorus models rm`.
async fn rm(name: &str, model: &ModelArgs) -> Result<()> {
    let (c, dir) = cached_or_explain(name, model)?;
    let source: ModelSource = c.source.parse()?;
    let at = dir.clone();
    let freed = tokio::task::spawn_blocking(move || chorus_hub::remove_cached(&at, &source)).await??;
    let note = if freed == 0 { " (its blob is still used by another revision)" } else { "" };
    println!("removed {} from {}: {freed} bytes ({:.1} MiB) freed{note}", c.source, dir.display(), freed as f64 / MIB);
    let data_dir = crate::model::data_dir(model)?;
    for e in saved::load(&data_dir)?.iter().filter(|e| e.source.as_deref() == Some(c.source.as_str())) {
        println!(
            "{} still registers it as `{}`: a server downloads it again when it is first used; remove the entry to forget it",
            saved::path(&data_dir).display(),
            e.id.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}

/// The GGUF file and the registry entry (with its id set) that `name` names, for export.
async fn export_source(name: &str, model: &ModelArgs) -> Result<(PathBuf, ModelEntry)> {
    let entries = registered(model)?;
    let hub = crate::model::hub_config(model)?;
    let same = |a: &str, b: &str| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    let plain = |source: &str| ModelEntry { source: Some(source.to_owned()), ..ModelEntry::default() };
    let mut entry = if let Some(e) = entries.iter().find(|e| names(e, name)) {
        e.clone()
    } else if name.starts_with(HUB_PREFIX) {
        let canonical = name.parse::<ModelSource>()?.to_string();
        entries.iter().find(|e| e.source.as_deref() == Some(&canonical)).cloned().unwrap_or_else(|| plain(&canonical))
    } else if Path::new(name).is_file() {
        entries
            .iter()
            .find(|e| e.source.as_deref().is_some_and(|s| same(s, name)))
            .cloned()
            .unwrap_or_else(|| plain(name))
    } else {
        let cached = chorus_hub::list_cached(&hub.cache_dir)?;
        match find_cached(name, &cached, &entries)? {
            Some(c) => plain(&c.source),
            None => bail!(
                "`{name}` is neither a model id of the configuration, a hub file in the cache {}, nor a GGUF file; `chorus models list` shows the cache",
                hub.cache_dir.display()
            ),
        }
    };
    if entry.url.is_some() {
        bail!("`{name}` is an upstream server (`url`): there is no model file to export");
    }
    let text = entry.source.clone().with_context(|| format!("the entry of `{name}` has no `source`"))?;
    let source: ModelSource = text.parse()?;
    let gguf = match &source {
        ModelSource::Hub(_) => {
            let offline = HubConfig { offline: true, ..hub.clone() };
            chorus_hub::resolve(&source, &offline, &mut chorus_hub::NoProgress).await.map_err(|_| {
                anyhow::anyhow!(
                    "{source} is not in the model cache {}; `chorus pull {source}` downloads it",
                    hub.cache_dir.display()
                )
            })?
        }
        ModelSource::Local(path) if path.is_dir() => {
            bail!("{} is a directory (a sentence-transformers model): only GGUF models can be exported", path.display())
        }
        ModelSource::Local(path) => path.clone(),
    };
    entry.id = Some(entry.id.clone().unwrap_or_else(|| default_id(&text)));
    Ok((gguf, entry))
}

/// `chorus models export`.
async fn export(name: &str, out: &Path, model: &ModelArgs) -> Result<()> {
    let (gguf, mut entry) = export_source(name, model).await?;
    let id = entry.id.clone().unwrap_or_default();
    let origin = entry.source.clone().unwrap_or_default();
    // The package carries the weights and the entry; what points elsewhere stays behind.
    entry.source = Some(GGUF_FILE.to_owned());
    entry.url = None;
    entry.api_key_env = None;
    if let Some(template) = entry.chat_template.take() {
        eprintln!(
            "chorus: the entry's chat_template ({}) is not in the package; copy it along and set chat_template in the imported entry",
            template.display()
        );
    }
    let text = toml::to_string(&entry).context("cannot write the model's entry as TOML")?;
    let (package, package_id) = (out.to_path_buf(), id.clone());
    let manifest =
        tokio::task::spawn_blocking(move || chorus_hub::package::export(&gguf, &text, &package_id, &package)).await??;
    let size = std::fs::metadata(out).map_or(0, |m| m.len());
    println!("exported `{id}` ({origin}) to {} ({:.1} MiB)", out.display(), size as f64 / MIB);
    print_files(&manifest);
    Ok(())
}

fn print_files(manifest: &Manifest) {
    for name in [ENTRY_FILE, GGUF_FILE] {
        if let Some(f) = manifest.file(name) {
            println!("  {name}  {} bytes  sha256 {}", f.size, f.sha256);
        }
    }
}

/// `chorus models import`.
async fn import(file: &Path, id: Option<String>, model: &ModelArgs) -> Result<()> {
    if let Some(id) = &id {
        crate::registry::check_id(id).map_err(anyhow::Error::msg)?;
    }
    let data_dir = crate::model::data_dir(model)?;
    let into = data_dir.join("models");
    let package = file.to_path_buf();
    let imported = tokio::task::spawn_blocking(move || chorus_hub::package::import(&package, &into)).await??;
    let dir = imported.dir.clone();
    let undo = |e: anyhow::Error| {
        let _ = std::fs::remove_dir_all(&dir);
        e.context(format!("nothing was imported ({} was removed again)", dir.display()))
    };
    let mut entry: ModelEntry = match toml::from_str(&imported.entry_toml) {
        Ok(entry) => entry,
        Err(e) => {
            eprintln!(
                "chorus: the package's {ENTRY_FILE} does not fit this version of chorus ({}); registering the model with its id and file only",
                e.message()
            );
            ModelEntry::default()
        }
    };
    let id = id.or_else(|| entry.id.clone()).unwrap_or_else(|| imported.id.clone());
    let gguf = std::fs::canonicalize(&imported.gguf).unwrap_or_else(|_| imported.gguf.clone());
    entry.id = Some(id.clone());
    entry.source = Some(gguf.display().to_string());
    entry.url = None;
    entry.api_key_env = None;
    entry.chat_template = None;
    let (config, config_path) = crate::config::load(model.config.as_deref()).map_err(undo)?;
    if config.models().iter().any(|e| names(e, &id)) {
        let file = config_path.map_or_else(|| "chorus.toml".to_owned(), |p| p.display().to_string());
        return Err(undo(anyhow::anyhow!("the id `{id}` names another model in {file}; import with --id OTHER")));
    }
    saved::add(&data_dir, &entry).map_err(undo)?;
    println!("imported `{id}` into {}", imported.dir.display());
    print_files(&imported.manifest);
    println!(
        "registered as `{id}` in {}; a running server serves it after a restart",
        saved::path(&data_dir).display()
    );
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chorus_proto::models::ModelSlots;

    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-12-01T20:18:36Z"), Some(1_796_156_316));
        assert_eq!(parse_rfc3339("2026-12-01T21:18:36.5+01:00"), Some(1_796_156_316));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(format_utc(UNIX_EPOCH + Duration::from_secs(1_796_156_316)), "2026-12-01 20:18:36 UTC");
        assert_eq!(format_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn until_says_when_a_model_unloads() {
        let mut m = WireEntry {
            id: "m".into(),
            aliases: vec![],
            source: "m.gguf".into(),
            capabilities: vec![],
            status: ModelStatus::Loaded,
            bytes: 0,
            pinned: false,
            in_flight: 0,
            slots: Some(ModelSlots { total: 4, busy: 0 }),
            n_ctx: None,
            expires_at: Some("1970-01-01T00:05:00Z".into()),
            last_error: None,
        };
        assert_eq!(until(&m, 1), "in 4m 59s");
        assert_eq!(until(&m, 300), "now");
        m.expires_at = None;
        assert_eq!(until(&m, 0), "forever");
        m.in_flight = 1;
        assert_eq!(until(&m, 0), "in use");
        m.pinned = true;
        assert_eq!(until(&m, 0), "forever (pinned)");
        m.status = ModelStatus::Unloaded;
        assert_eq!(until(&m, 0), "-");
        assert_eq!(
            (human(59), human(120), human(7500), human(90_000)),
            ("59s".into(), "2m".into(), "2h 5m".into(), "1d 1h".into())
        );
    }
}
