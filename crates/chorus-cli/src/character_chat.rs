//! `chorus chat --character NAME`: a REPL with a character over the characters WebSocket (the
//! socket-based character agent seed's protocol). Remote when a server answers: `--server-url`
//! (a `ws://` URL, or an `http://` server whose `/ws/characters` is used), else the `--url` /
//! default server. The client tries 3 times, 1 s apart, and says so; then it falls back to
//! local mode (the same server run in this process, as embedded `ask`/`chat` do), unless
//! `--no-fallback`. A connection lost mid-chat is retried the same way and the character
//! attached again. The vitals are shown on stderr after each answer; `--vitals-only` prints
//! them and exits.

use std::io::Write;
use std::time::Duration;

use anyhow::{Result, bail};
use chorus_client::ClientError;
use chorus_client::characters::{CharacterSocket, characters_ws_url};
use serde_json::{Value, json};

use crate::args::ChatArgs;
use crate::chat::Input;
use crate::target::{self, DEFAULT_URL, Target};

/// Attempts to reach the server before falling back, and the wait between them (the seed's).
const ATTEMPTS: u32 = 3;
const RETRY_WAIT: Duration = Duration::from_secs(1);

const HELP: &str = "/status        the character's vitals, turns and memories
/save NAME     save a snapshot (vitals, memories, transcript)
/load NAME     restore a snapshot
/reset         back to the card's initial state
/memory QUERY  search the character's memories
/exit          leave (also Ctrl-D)
/help          this list";

/// Where the conversation runs.
struct Link {
    socket: CharacterSocket,
    key: Option<String>,
    /// The embedded server of local mode.
    local: Option<Target>,
}

pub(crate) async fn run(args: ChatArgs) -> Result<()> {
    let Some(character) = args.character.clone() else { bail!("--character NAME is required") };
    let user = args.user_name.clone().unwrap_or_else(|| "User".to_owned());
    let mut link = open(&args).await?;
    let init = json!({"character": character, "user_name": user});
    let result = async {
        let data = link.socket.request("init", init.clone(), |_| {}).await?;
        if args.vitals_only {
            let status = data.get("status").cloned().unwrap_or(Value::Null);
            println!("{}", vitals_line(&status));
            return Ok(());
        }
        let name = data.get("name").and_then(Value::as_str).unwrap_or(&character).to_owned();
        eprintln!(
            "chorus chat with {name} ({}); you are {user}; /help lists commands",
            if link.local.is_some() { "local mode" } else { link.socket.url() }
        );
        let messages = data.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
        for m in &messages[messages.len().saturating_sub(6)..] {
            print_message(m, &name);
        }
        if let Some(status) = data.get("status") {
            eprintln!("[{}]", vitals_line(status));
        }
        repl(&mut link, &args, &init, &name).await
    }
    .await;
    if let Some(local) = link.local.take() {
        local.close().await;
    }
    result
}

/// Connect (3 attempts, 1 s apart, each said), else local mode unless `--no-fallback`.
async fn open(args: &ChatArgs) -> Result<Link> {
    let base = args.server_url.clone().or_else(|| args.connect.url.clone()).unwrap_or_else(|| DEFAULT_URL.to_owned());
    let url = characters_ws_url(&base);
    let key = args.connect.api_key.clone();
    match connect_with_retries(&url, key.as_deref()).await {
        Ok(socket) => return Ok(Link { socket, key, local: None }),
        Err(e @ ClientError::Api { .. }) => return Err(e.into()),
        Err(e) if args.no_fallback => {
            bail!(
                "{e}; start a server with `chorus serve`, point --server-url at one, or drop --no-fallback to run locally"
            )
        }
        Err(_) => eprintln!("chorus: no server answers at {url}; running the character in this process (local mode)"),
    }
    let local = target::embedded(&args.model, args.connect.timeout).await?;
    let url = characters_ws_url(local.client.url());
    let key = local.api_key.clone();
    let socket = CharacterSocket::connect(&url, key.as_deref(), Duration::from_secs(10)).await?;
    Ok(Link { socket, key, local: Some(local) })
}

async fn connect_with_retries(url: &str, key: Option<&str>) -> Result<CharacterSocket, ClientError> {
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        match CharacterSocket::connect(url, key, Duration::from_secs(5)).await {
            Ok(socket) => return Ok(socket),
            Err(e @ ClientError::Api { .. }) => return Err(e),
            Err(e) => {
                if attempt < ATTEMPTS {
                    eprintln!("chorus: cannot reach {url} (attempt {attempt} of {ATTEMPTS}): {e}; retrying in 1 s");
                    tokio::time::sleep(RETRY_WAIT).await;
                } else {
                    eprintln!("chorus: cannot reach {url} (attempt {attempt} of {ATTEMPTS}): {e}");
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or(ClientError::Closed))
}

async fn repl(link: &mut Link, args: &ChatArgs, init: &Value, name: &str) -> Result<()> {
    let mut input = Input::new();
    while let Some(line) = input.read()? {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (kind, data) = match line.strip_prefix('/') {
            Some(command) => {
                let (cmd, rest) = command.split_once(' ').unwrap_or((command, ""));
                let rest = rest.trim();
                match cmd {
                    "exit" | "quit" => break,
                    "help" => {
                        eprintln!("{HELP}");
                        continue;
                    }
                    "status" | "vitals" => ("status", json!({})),
                    "save" | "load" if rest.is_empty() => {
                        eprintln!("/{cmd} needs a name: /{cmd} NAME");
                        continue;
                    }
                    "save" => ("save", json!({"name": rest})),
                    "load" => ("load", json!({"name": rest})),
                    "reset" => ("reset", json!({})),
                    "memory" if !rest.is_empty() => ("memory_search", json!({"query": rest})),
                    _ => {
                        eprintln!("unknown command /{cmd}; /help lists commands");
                        continue;
                    }
                }
            }
            None => ("chat", json!({"message": line, "max_tokens": args.generate.max_tokens})),
        };
        match send(link, kind, data, init, name).await {
            Ok(data) => show(kind, &data),
            Err(e) => eprintln!("chorus: {e:#}"),
        }
    }
    Ok(())
}

/// One request; a lost connection is retried (3 attempts, 1 s apart) and the character attached
/// again, then the request sent once more.
async fn send(link: &mut Link, kind: &str, data: Value, init: &Value, name: &str) -> Result<Value> {
    let mut streamed = false;
    match link.socket.request(kind, data.clone(), |f| on_frame(f, name, &mut streamed)).await {
        Err(ClientError::Closed) => {}
        other => {
            if streamed {
                println!();
            }
            return Ok(other?);
        }
    }
    eprintln!("chorus: the connection to {} was lost; reconnecting", link.socket.url());
    let url = link.socket.url().to_owned();
    link.socket = connect_with_retries(&url, link.key.as_deref()).await?;
    link.socket.request("init", init.clone(), |_| {}).await?;
    eprintln!("chorus: reconnected");
    let mut streamed = false;
    let result = link.socket.request(kind, data, |f| on_frame(f, name, &mut streamed)).await;
    if streamed {
        println!();
    }
    Ok(result?)
}

/// What arrives while a request runs: this request's chunks (printed as they come), other
/// clients' messages, vitals updates.
fn on_frame(frame: &Value, name: &str, streamed: &mut bool) {
    let kind = frame.get("type").and_then(Value::as_str).unwrap_or_default();
    let data = frame.get("data").cloned().unwrap_or(Value::Null);
    match kind {
        "chat_chunk" if frame.get("request_id").is_some_and(|r| !r.is_null()) => {
            if !*streamed {
                print!("{name}: ");
                *streamed = true;
            }
            print!("{}", data.get("content").and_then(Value::as_str).unwrap_or_default());
            let _ = std::io::stdout().flush();
        }
        "chat_message" => {
            // Our own turn's messages arrive as chunks and the response; others' are shown.
            let message = data.get("message").cloned().unwrap_or(Value::Null);
            let own = *streamed || message.get("role").and_then(Value::as_str) == Some("assistant");
            if !own {
                print_message(&message, name);
            }
        }
        "character_restored" => eprintln!("(the character was restored; its transcript changed)"),
        _ => {}
    }
}

fn print_message(m: &Value, name: &str) {
    let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
    let who = m.pointer("/metadata/name").and_then(Value::as_str);
    let who = match role {
        "assistant" => who.unwrap_or(name).to_owned(),
        _ => who.unwrap_or("User").to_owned(),
    };
    println!("{who}: {}", m.get("content").and_then(Value::as_str).unwrap_or_default());
}

fn show(kind: &str, data: &Value) {
    match kind {
        "chat" => {
            if let Some(vitals) = data.get("vitals") {
                eprintln!("[{}]", vitals_of(vitals));
            }
        }
        "status" | "load" | "reset" => {
            eprintln!("[{}]", vitals_line(data));
            if kind != "status" {
                eprintln!("({kind} done)");
            }
        }
        "save" => eprintln!("(saved as {})", data.get("name").and_then(Value::as_str).unwrap_or_default()),
        "memory_search" => {
            let results = data.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
            if results.is_empty() {
                eprintln!("(no memory matches)");
            }
            for m in results {
                println!(
                    "- {} (importance {}, score {:.2})",
                    m.get("content").and_then(Value::as_str).unwrap_or_default().replace('\n', " / "),
                    m.get("importance").and_then(Value::as_u64).unwrap_or(0),
                    m.get("score").and_then(Value::as_f64).unwrap_or(0.0)
                );
            }
        }
        _ => {}
    }
}

/// `mood: cheerful · trust: 52 · energy: 79 · turn 3` from a `CharacterStatus`.
fn vitals_line(status: &Value) -> String {
    let mut line = vitals_of(status.get("vitals").unwrap_or(&Value::Null));
    if let Some(turns) = status.get("turns").and_then(Value::as_u64) {
        if !line.is_empty() {
            line.push_str(" · ");
        }
        line.push_str(&format!("turn {turns}"));
    }
    line
}

fn vitals_of(vitals: &Value) -> String {
    vitals
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k}: {}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect::<Vec<_>>()
                .join(" · ")
        })
        .unwrap_or_default()
}
