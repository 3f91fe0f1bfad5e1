//! `chorus pull`, `chorus models …` and `POST /api/v1/models/pull` on the tiny testkit model:
//! a pull through the server streams its progress, registers the model (served at once and
//! after a restart) and refuses what it cannot pull; a pull whose connection is cut midway
//! reports an error and the next one resumes with a `Range` request; `models list|show|rm`
//! see the cache; `models export` then `models import` carry a model and its entry to another
//! data dir, whose fresh `serve` serves it. The hub is a small imitation on 127.0.0.1
//! ([`FakeHub`]); every process gets a cache, config and data dir of its own.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chorus_testkit::server::TestServer;
use serde_json::{Value, json};

use crate::bin;

/// The commit the fake hub reports.
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// The source the tests pull.
const SOURCE: &str = "hf:test/tiny/tiny.gguf";

#[derive(Default)]
struct HubState {
    /// By request path, `/OWNER/REPO/resolve/main/FILE`.
    files: HashMap<String, Vec<u8>>,
    /// The next `GET` sends this many body bytes, then the connection is cut.
    cut: Option<usize>,
    /// The `Range` header of every `GET`.
    gets: Vec<Option<String>>,
}

/// An imitation of the hub's `resolve` URLs (plain files: `ETag`, `Content-Length`,
/// `X-Repo-Commit`, `Range` honoured), one thread per connection, `Connection: close`.
struct FakeHub {
    endpoint: String,
    state: Arc<Mutex<HubState>>,
}

impl FakeHub {
    fn start() -> FakeHub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state: Arc<Mutex<HubState>> = Arc::default();
        let shared = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = answer(stream, &state);
                });
            }
        });
        FakeHub { endpoint, state }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves `content` as `FILE` of `OWNER/REPO` at `main`.
    fn add(&self, repo: &str, file: &str, content: Vec<u8>) {
        self.lock().files.insert(format!("/{repo}/resolve/main/{file}"), content);
    }

    fn cut_once(&self, after: usize) {
        self.lock().cut = Some(after);
    }

    fn ranges(&self) -> Vec<Option<String>> {
        self.lock().gets.clone()
    }
}

fn answer(stream: TcpStream, state: &Mutex<HubState>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_owned());
        }
    }
    let (content, cut) = {
        let mut hub = state.lock().unwrap_or_else(PoisonError::into_inner);
        let cut = if method == "GET" {
            hub.gets.push(range.clone());
            hub.cut.take()
        } else {
            None
        };
        (hub.files.get(&path).cloned(), cut)
    };
    let mut out = stream;
    let Some(content) = content else {
        let head =
            "HTTP/1.1 404 Not Found\r\nX-Error-Code: EntryNotFound\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        return out.write_all(head.as_bytes());
    };
    // A git-style ETag (40 hex digits, not a SHA-256): the size is checked, not the digest.
    let etag = format!("{:040x}", content.len());
    let start = range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok())
        .filter(|s| *s < content.len());
    let (status, body) = match start {
        Some(s) => ("206 Partial Content", &content[s..]),
        None => ("200 OK", &content[..]),
    };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nETag: \"{etag}\"\r\nX-Repo-Commit: {COMMIT}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(s) = start {
        head.push_str(&format!("Content-Range: bytes {s}-{}/{}\r\n", content.len() - 1, content.len()));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if method == "HEAD" {
        return Ok(());
    }
    match cut {
        Some(n) => {
            out.write_all(&body[..n.min(body.len())])?;
            out.flush()?;
            // Let the bytes reach the client before the connection goes.
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        }
        None => out.write_all(body),
    }
}

/// A home for one test: the hub cache, the config dir and data dirs, an empty chorus.toml.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let home = Home { dir: tempfile::tempdir().unwrap() };
        std::fs::write(home.config(), "").unwrap();
        home
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> std::path::PathBuf {
        self.path("chorus.toml")
    }

    fn cache(&self) -> std::path::PathBuf {
        self.path("cache")
    }

    /// The server's environment: this home's hub cache.
    fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![("XDG_CACHE_HOME", self.cache().into_os_string())]
    }

    /// `chorus ARGS…` with this home's cache and config, no server variables.
    fn chorus(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(args)
            .env("XDG_CACHE_HOME", self.cache())
            .env("XDG_CONFIG_HOME", self.path("config-home"))
            .env("XDG_DATA_HOME", self.path("data-home"))
            .env("CHORUS_CONFIG", self.config())
            .env_remove("CHORUS_URL")
            .env_remove("CHORUS_API_KEY")
            .env_remove("CHORUS_MODEL")
            .env_remove("CHORUS_DATA_DIR")
            .env_remove("CHORUS_DATABASE_URL")
            .env_remove("HF_ENDPOINT")
            .env_remove("HF_HUB_OFFLINE")
            .stdin(Stdio::null())
            .output()
            .expect("run chorus")
    }

    /// A server on the tiny model (`tiny`) with this home's cache, the fake hub and `extra`.
    fn serve(&self, hub: &FakeHub, extra: &[&str]) -> TestServer {
        let model = chorus_testkit::tiny_model_path();
        let config = self.config();
        let mut args = vec![
            "--model",
            model.to_str().unwrap(),
            "--alias",
            "tiny",
            "--threads",
            "2",
            "--ctx-size",
            "4096",
            "--hf-endpoint",
            &hub.endpoint,
            "--config",
            config.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let env = self.env();
        let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        TestServer::start_with_env(bin(), &args, &env)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit 0, and stdout.
fn ok(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// Exit 1, and stderr.
fn fails(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "stdout:\n{}\nstderr:\n{}", text(&out.stdout), text(&out.stderr));
    text(&out.stderr)
}

fn tiny_bytes() -> Vec<u8> {
    std::fs::read(chorus_testkit::tiny_model_path()).unwrap()
}

/// `POST /api/v1/models/pull`: the HTTP status, and the SSE events' JSON (or the error body).
fn pull(url: &str, body: Value) -> (u16, Vec<Value>) {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
    let response = http.post(format!("{url}/api/v1/models/pull")).json(&body).send().unwrap();
    let status = response.status().as_u16();
    let body = response.text().unwrap();
    if status != 200 {
        return (status, vec![serde_json::from_str(&body).unwrap_or(Value::String(body))]);
    }
    let events = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|data| serde_json::from_str(data.trim()).unwrap_or_else(|e| panic!("`{data}` is not JSON: {e}")))
        .collect();
    (status, events)
}

fn statuses(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["status"].as_str().unwrap_or("?")).collect()
}

fn get(url: &str) -> Value {
    reqwest::blocking::get(url).unwrap().json().unwrap()
}

fn model_ids(url: &str) -> Vec<String> {
    let list = get(&format!("{url}/v1/models"));
    list["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect()
}

/// A short chat completion on `model`; its HTTP status and answer.
fn complete(url: &str, model: &str) -> (u16, Value) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4});
    let response = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(&body)
        .timeout(Duration::from_secs(120))
        .send()
        .unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

#[test]
fn a_pull_through_the_server_streams_progress_and_registers_the_model() {
    let home = Home::new();
    let hub = FakeHub::start();
    let content = tiny_bytes();
    let size = content.len() as u64;
    hub.add("test/tiny", "tiny.gguf", content);
    let data = home.path("data");
    let srv = home.serve(&hub, &["--data-dir", data.to_str().unwrap()]);

    let (status, events) = pull(&srv.url, json!({"source": SOURCE, "id": "pulled"}));
    assert_eq!(status, 200, "{events:?}");
    let seen = statuses(&events);
    assert_eq!(seen.first(), Some(&"pulling manifest"), "{events:?}");
    // The fake hub's ETag is git-style: the size is what is verified.
    assert!(seen.contains(&"verifying size"), "{events:?}");
    let downloading: Vec<&Value> = events.iter().filter(|e| e["status"] == "downloading").collect();
    assert!(!downloading.is_empty(), "{events:?}");
    assert!(downloading.iter().all(|e| e["total"] == size), "{events:?}");
    assert_eq!(downloading.last().unwrap()["completed"], size, "{events:?}");
    assert_eq!(events.last().unwrap(), &json!({"status": "success", "model": "pulled"}));

    // Served at once, under its id, from the hub source.
    assert!(model_ids(&srv.url).contains(&"pulled".to_owned()));
    let (status, answer) = complete(&srv.url, "pulled");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["model"], "pulled", "{answer}");
    let states = get(&format!("{}/api/v1/models", srv.url));
    let pulled = states["data"].as_array().unwrap().iter().find(|m| m["id"] == "pulled").unwrap().clone();
    assert_eq!((pulled["source"].as_str(), pulled["status"].as_str()), (Some(SOURCE), Some("loaded")), "{pulled}");
    let saved = std::fs::read_to_string(data.join("models.toml")).unwrap();
    assert!(saved.contains("id = \"pulled\"") && saved.contains(SOURCE), "{saved}");

    // What the server cannot pull is refused before any download.
    let (status, error) = pull(&srv.url, json!({"source": "/models/local.gguf"}));
    assert_eq!(status, 400, "{error:?}");
    assert!(error[0]["error"]["message"].as_str().unwrap().contains("local path"), "{error:?}");
    assert_eq!(error[0]["error"]["param"], "source", "{error:?}");
    let (status, error) = pull(&srv.url, json!({"source": "hf:test/tiny/other.gguf", "id": "pulled"}));
    assert_eq!(status, 409, "{error:?}");
    assert_eq!(error[0]["error"]["code"], "model_exists", "{error:?}");

    // `models ps`, `unload`, `load` against the server.
    let url = srv.url.as_str();
    let table = ok(&home.chorus(&["models", "ps", "--url", url]));
    let header = table.lines().next().unwrap();
    for column in ["ID", "STATUS", "SIZE (MiB)", "SLOTS", "IN FLIGHT", "UNTIL"] {
        assert!(header.contains(column), "{table}");
    }
    let row = table.lines().find(|l| l.starts_with("pulled ")).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("loaded") && row.contains("/4") && row.contains("in "), "{table}");
    assert!(table.contains("memory: ") && table.contains("MiB budget"), "{table}");
    let json_out: Value = serde_json::from_str(&ok(&home.chorus(&["models", "ps", "--json", "--url", url]))).unwrap();
    assert!(json_out["memory_budget"].as_u64().unwrap() > 0);

    assert!(ok(&home.chorus(&["models", "unload", "pulled", "--url", url])).contains("unloaded `pulled`"));
    let table = ok(&home.chorus(&["models", "ps", "--url", url]));
    let row = table.lines().find(|l| l.starts_with("pulled ")).unwrap();
    assert!(row.contains("unloaded") && row.trim_end().ends_with('-'), "{table}");
    let loaded = ok(&home.chorus(&["models", "load", "pulled", "--keep-alive", "10m", "--url", url]));
    assert!(
        loaded.contains("loaded `pulled`") && (loaded.contains("unloads in 9m") || loaded.contains("in 10m")),
        "{loaded}"
    );
    let error = fails(&home.chorus(&["models", "load", "nope", "--url", url]));
    assert!(error.contains("404") && error.contains("`nope` does not exist"), "{error}");

    // `chorus pull` with a server: the server pulls (the file is cached now) and serves it.
    let out = ok(&home.chorus(&["pull", SOURCE, "--id", "again", "--url", url]));
    assert!(out.contains("serves it as `again`"), "{out}");
    assert!(model_ids(&srv.url).contains(&"again".to_owned()));
    let error = fails(&home.chorus(&["pull", "/models/local.gguf", "--url", url]));
    assert!(error.contains("is a local path"), "{error}");
    drop(srv);

    // A fresh server on the same data dir serves both pulled models, without the network.
    let srv = home.serve(&hub, &["--data-dir", data.to_str().unwrap(), "--offline"]);
    let ids = model_ids(&srv.url);
    assert!(ids.contains(&"pulled".to_owned()) && ids.contains(&"again".to_owned()), "{ids:?}");
    assert_eq!(complete(&srv.url, "again").0, 200);
    let error = fails(&home.chorus(&["models", "ps", "--url", "http://127.0.0.1:9"]));
    assert!(error.contains("no chorus server answers at http://127.0.0.1:9; start one with `chorus serve`"), "{error}");
}

#[test]
fn a_pull_cut_midway_reports_an_error_and_the_next_one_resumes() {
    let home = Home::new();
    let hub = FakeHub::start();
    let content = tiny_bytes();
    let size = content.len() as u64;
    let half = content.len() / 2;
    hub.add("test/tiny", "tiny.gguf", content);
    hub.cut_once(half);
    let srv = home.serve(&hub, &[]);

    // `tiny` (the file's stem) is the server's own model: the pull takes another id.
    let (status, events) = pull(&srv.url, json!({"source": SOURCE, "id": "cut"}));
    assert_eq!(status, 200, "{events:?}");
    let last = events.last().unwrap();
    assert_eq!(last["status"], "error", "{events:?}");
    assert!(last["error"].as_str().unwrap().contains("broke off"), "{events:?}");
    assert!(!statuses(&events).contains(&"success"), "{events:?}");
    assert_eq!(model_ids(&srv.url), ["tiny"], "a failed pull registers nothing");

    // The partial download is in the cache.
    let listed = ok(&home.chorus(&["models", "list"]));
    assert!(listed.contains("hf:test/tiny (blob") && listed.contains("partial"), "{listed}");

    let (status, events) = pull(&srv.url, json!({"source": SOURCE, "id": "cut"}));
    assert_eq!(status, 200, "{events:?}");
    assert_eq!(events.last().unwrap(), &json!({"status": "success", "model": "cut"}), "{events:?}");
    // Reported from where it had stopped, and fetched from there.
    let first = events.iter().find(|e| e["status"] == "downloading").unwrap();
    let kept = first["completed"].as_u64().unwrap();
    assert!(kept > 0 && kept <= half as u64, "{events:?}");
    let ranges = hub.ranges();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0], None);
    assert_eq!(ranges[1].as_deref(), Some(format!("bytes={kept}-").as_str()), "{ranges:?}");
    assert_eq!(model_ids(&srv.url), ["tiny", "cut"]);

    // The cache now holds the whole file.
    let listed = ok(&home.chorus(&["models", "list"]));
    let row = listed.lines().find(|l| l.starts_with(SOURCE)).unwrap_or_else(|| panic!("{listed}"));
    assert!(row.contains("complete") && row.contains("0123456789ab") && !listed.contains("partial"), "{listed}");
    let shown = ok(&home.chorus(&["models", "show", "tiny"]));
    assert!(shown.contains(&format!("size:      {size} bytes")) && shown.contains(COMMIT), "{shown}");
    assert!(shown.contains("/snapshots/") && shown.contains(&format!("{:040x}", size)), "{shown}");
    let removed = ok(&home.chorus(&["models", "rm", SOURCE]));
    assert!(removed.contains(&format!("{size} bytes")) && removed.contains("freed"), "{removed}");
    assert!(ok(&home.chorus(&["models", "list"])).contains("holds no models"));
    let error = fails(&home.chorus(&["models", "show", SOURCE]));
    assert!(error.contains("is not in the model cache") && error.contains("chorus models list"), "{error}");
}

#[test]
fn export_then_import_carries_the_model_and_its_entry_to_a_fresh_server() {
    let home = Home::new();
    let hub = FakeHub::start();
    let original = tiny_bytes();
    hub.add("test/tiny", "tiny.gguf", original.clone());
    let tiny = chorus_testkit::tiny_model_path();
    std::fs::write(
        home.config(),
        format!(
            "[[models]]\nid = \"tiny-x\"\naliases = [\"tx\"]\nsource = {:?}\ncapabilities = [\"chat\", \"code\"]\nctx_size = 4096\nparallel = 2\nkeep_alive = \"10m\"\n",
            tiny.display().to_string()
        ),
    )
    .unwrap();
    let (one, two) = (home.path("one"), home.path("two"));
    let (one, two) = (one.to_str().unwrap(), two.to_str().unwrap());

    // No server: `chorus pull --local` downloads here and registers in DATA_DIR/models.toml.
    let out = ok(&home.chorus(&[
        "pull",
        SOURCE,
        "--local",
        "--id",
        "hubtiny",
        "--hf-endpoint",
        &hub.endpoint,
        "--data-dir",
        one,
    ]));
    assert!(out.contains("registered as `hubtiny`"), "{out}");

    // By the config file's id: the entry travels with the weights.
    let package = home.path("tiny-x.tar");
    let out = ok(&home.chorus(&["models", "export", "tx", package.to_str().unwrap(), "--data-dir", one]));
    let gguf_line = out.lines().find(|l| l.trim_start().starts_with("model.gguf")).unwrap_or_else(|| panic!("{out}"));
    assert!(gguf_line.contains(&format!("{} bytes", original.len())), "{out}");
    // By the id `chorus pull` saved: a hub file from the cache.
    let second = home.path("hubtiny.tar");
    ok(&home.chorus(&["models", "export", "hubtiny", second.to_str().unwrap(), "--data-dir", one]));

    // Imported elsewhere, with an empty configuration.
    std::fs::write(home.config(), "").unwrap();
    let out = ok(&home.chorus(&["models", "import", package.to_str().unwrap(), "--data-dir", two]));
    assert!(out.contains(gguf_line.trim()), "the import verified the digest the export wrote:\n{out}");
    assert!(out.contains("registered as `tiny-x`") && out.contains("after a restart"), "{out}");
    let imported = Path::new(two).join("models/tiny-x/model.gguf");
    assert!(std::fs::read(&imported).unwrap() == original, "the imported weights differ");
    let saved: toml::Table = std::fs::read_to_string(Path::new(two).join("models.toml")).unwrap().parse().unwrap();
    let entry = &saved["models"].as_array().unwrap()[0];
    assert_eq!(entry["id"].as_str(), Some("tiny-x"));
    assert_eq!(entry["aliases"].as_array().unwrap(), &[toml::Value::from("tx")]);
    assert_eq!(entry["capabilities"].as_array().unwrap(), &[toml::Value::from("chat"), toml::Value::from("code")]);
    assert_eq!((entry["ctx_size"].as_integer(), entry["parallel"].as_integer()), (Some(4096), Some(2)));
    assert_eq!(entry["keep_alive"].as_str(), Some("10m"));
    assert_eq!(Path::new(entry["source"].as_str().unwrap()), std::fs::canonicalize(&imported).unwrap());

    let out = ok(&home.chorus(&["models", "import", second.to_str().unwrap(), "--id", "copy", "--data-dir", two]));
    assert!(out.contains("registered as `copy`"), "{out}");
    let error = fails(&home.chorus(&["models", "import", package.to_str().unwrap(), "--data-dir", two]));
    assert!(error.contains("already installed"), "{error}");

    // A fresh server on that data dir, with no --model, serves what was imported.
    let config = home.config();
    let args = ["--data-dir", two, "--threads", "2", "--offline", "--config", config.to_str().unwrap()];
    let env = home.env();
    let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let srv = TestServer::start_with_env(bin(), &args, &env);
    let ids = model_ids(&srv.url);
    assert_eq!(ids, ["tiny-x", "copy"], "{ids:?}");
    let states = get(&format!("{}/api/v1/models", srv.url));
    let x = &states["data"][0];
    assert_eq!((x["capabilities"].clone(), x["aliases"].clone()), (json!(["chat", "code"]), json!(["tx"])), "{x}");
    let (status, answer) = complete(&srv.url, "tx");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(get(&format!("{}/api/v1/models", srv.url))["data"][0]["n_ctx"], 4096);
}
