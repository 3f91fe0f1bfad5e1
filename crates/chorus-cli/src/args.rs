//! Command-line flags (clap): the raw first stage of configuration. Later
//! stages turn these into the libraries' typed configs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Local AI, reachable from anywhere.
#[derive(Debug, Parser)]
#[command(name = "chorus", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// More log on stderr: -v shows chorus's and llama.cpp's info lines, -vv debug (RUST_LOG,
    /// when set, decides instead).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
}

// Parsed once per process: the size of the serve variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve a GGUF model behind the OpenAI-compatible API.
    Serve(ServeArgs),
    /// Ask one question; the answer streams to stdout.
    Ask(AskArgs),
    /// Let two or more AIs talk about a topic: characters (--character) and ad-hoc
    /// personalities (--participant "NAME: PERSONALITY"), each exchange printed as it comes.
    Converse(ConverseArgs),
    /// Chat in a terminal (line editing, history; /help lists commands).
    Chat(ChatArgs),
    /// Check a server's health.
    Health(ConnectArgs),
    /// Say which category and model the content router would send a prompt to, and why
    /// (the stage that decided, the semantic scores); nothing is generated.
    Route(RouteArgs),
    /// List, show or delete the server's sessions.
    Sessions(SessionsArgs),
    /// Control the local server through its control socket: status, shutdown.
    Ctl(CtlArgs),
    /// Work in a server's session over its WebSocket: prompts from stdin, answers, tool calls
    /// and permission questions as they happen, with what other clients of the session do.
    Attach(AttachArgs),
    /// MCP: serve chorus to an MCP client over stdio (Claude Desktop and others launch
    /// `chorus mcp`), or `mcp list` the MCP servers whose tools chorus's agents use.
    Mcp(McpArgs),
    /// Models: the running server's (`ps`, `load`, `unload`) and this machine's (`list`, `show`,
    /// `rm` in the hub cache; `export` to a package file, `import` one and register it).
    Models(ModelsArgs),
    /// Download a GGUF model from the Hugging Face hub and register it: through the running
    /// server when one answers (it serves the model at once), else here, into the cache, and
    /// into DATA_DIR/models.toml so `chorus serve` serves it. A download that broke off resumes.
    Pull(PullArgs),
    /// Character cards (Character Card V2/V3: JSON, PNG, CHARX) in the characters directory:
    /// `list`, `show`, `validate` card files, `import` one, `export` one as JSON, PNG or CHARX.
    /// No server is needed.
    Characters(CharactersArgs),
}

/// Which model to load and how (llama-server's flag names).
#[derive(Debug, Args, Clone)]
pub(crate) struct ModelArgs {
    /// Model to serve: a GGUF path, hf:OWNER/REPO/FILE.gguf from the Hugging Face hub, or a
    /// sentence-transformers directory (embeddings); repeatable, the first is the default
    /// model and is loaded at start, the others on their first request (default:
    /// hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf when neither this,
    /// --models-dir nor [[models]] names one). With a running server, `ask` and `chat` send
    /// the first as the request's model id.
    #[arg(short, long, env = "CHORUS_MODEL")]
    pub(crate) model: Vec<String>,
    /// Serve every *.gguf file in DIR too (each loaded on its first request).
    #[arg(long, value_name = "DIR")]
    pub(crate) models_dir: Option<PathBuf>,
    /// The most memory all loaded models may take together: bytes (8G, 512M) or a share of
    /// RAM plus GPU memory (75%). Idle models are unloaded, least recently used first, to
    /// make room (default: RAM less a tenth, at least 1 GiB, for the system, plus nine tenths
    /// of the GPUs' memory on a GPU build).
    #[arg(long, value_name = "BYTES|%")]
    pub(crate) memory_budget: Option<String>,
    /// How long a model stays loaded after its last request (Ollama's keep_alive): 5m, 1h,
    /// 30s, 0 (unload once answered) or -1 (never); a model's own keep_alive and a request's
    /// win over it.
    #[arg(long, env = "CHORUS_KEEP_ALIVE", default_value = "5m", allow_hyphen_values = true)]
    pub(crate) keep_alive: String,
    /// The longest keep_alive any model or request gets (default: no cap).
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_alive_max: Option<String>,
    /// Seconds a request waits for memory held by other models' requests in flight before it
    /// is answered 503 with Retry-After.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub(crate) model_wait_timeout: u64,
    /// KV cache size in tokens, all slots together (0: sized to the model and the machine: the
    /// training context, at least 8192 tokens per slot, as far as free memory allows).
    #[arg(short = 'c', long, default_value_t = 0)]
    pub(crate) ctx_size: u32,
    /// Threads for generation (default: one per core).
    #[arg(short, long)]
    pub(crate) threads: Option<u32>,
    /// Most tokens per decode step.
    #[arg(short, long, default_value_t = 2048)]
    pub(crate) batch_size: u32,
    /// Most tokens computed at once inside a decode step.
    #[arg(long, default_value_t = 512)]
    pub(crate) ubatch_size: u32,
    /// Slots: the most sequences decoded at once.
    #[arg(long, short = 'n', default_value_t = 4)]
    pub(crate) parallel: u32,
    /// One KV cache shared by all slots, so one sequence can use the whole --ctx-size (up to the
    /// model's training context); the default, as in llama-server.
    #[arg(long, alias = "kvu", overrides_with = "no_kv_unified")]
    pub(crate) kv_unified: bool,
    /// Give each slot --ctx-size / --parallel tokens of its own instead of one shared cache.
    #[arg(long, alias = "no-kvu", overrides_with = "kv_unified")]
    pub(crate) no_kv_unified: bool,
    /// Jinja chat template file that replaces the model's own.
    #[arg(long, value_name = "FILE")]
    pub(crate) chat_template: Option<PathBuf>,
    /// Model id for the API of the first --model (default: the file stem); a comma-separated
    /// list, as llama-server's, gives the model more names: the first is its id, the others
    /// its aliases (e.g. `--alias qwen,gpt-4o-mini` for a client that asks for `gpt-4o-mini`).
    #[arg(long, value_delimiter = ',')]
    pub(crate) alias: Vec<String>,
    /// Layers to offload to a GPU (builds with GPU support only).
    #[arg(long, default_value_t = 0)]
    pub(crate) n_gpu_layers: u32,
    /// Serve embeddings (POST /v1/embeddings) instead of chat and completions from GGUF models,
    /// as llama-server's --embeddings; BERT-family GGUFs and those that name a pooling type
    /// are embedding models without it.
    #[arg(long)]
    pub(crate) embeddings: bool,
    /// How a GGUF embedding model pools its token vectors into one: mean, cls or last (none
    /// and rank give no vector per input and are refused; default: the GGUF's own).
    #[arg(long, value_name = "none|mean|cls|last|rank")]
    pub(crate) pooling: Option<chorus_llama::Pooling>,
    /// Hugging Face hub endpoint.
    #[arg(long, env = "HF_ENDPOINT", default_value = chorus_hub::DEFAULT_ENDPOINT)]
    pub(crate) hf_endpoint: String,
    /// Never download; use cached models only.
    #[arg(long, env = "HF_HUB_OFFLINE", value_parser = clap::builder::FalseyValueParser::new())]
    pub(crate) offline: bool,
    /// Host RAM for prompt states that left their slot, in MiB (llama-server's --cache-ram):
    /// a conversation whose slot was taken resumes from it instead of recomputing its
    /// history. 0 turns it off, -1 sets no limit (default: half the memory free after
    /// loading, at most 8192).
    #[arg(long, value_name = "MiB", allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..))]
    pub(crate) cache_ram: Option<i64>,
    /// Disk for prompt snapshots in DATA_DIR/kv-cache, in MiB: every session (and every
    /// request with a prompt_cache_key) resumes from its snapshot, even after a restart.
    /// 0 turns them off (default: a tenth of the free disk space, at most 16384).
    #[arg(long, value_name = "MiB", value_parser = clap::value_parser!(u64))]
    pub(crate) cache_disk: Option<u64>,
    /// Where the server keeps its state: the default session store (chorus.db) and prompt
    /// snapshots (kv-cache/) (default: the platform data dir, e.g. ~/.local/share/chorus).
    #[arg(long, env = "CHORUS_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) characters: CharactersDirArgs,
    /// Directory for llama-server's slot files: enables POST /slots/{id}?action=save|restore|erase.
    #[arg(long, value_name = "DIR")]
    pub(crate) slot_save_path: Option<PathBuf>,
    /// Where sessions and events are stored: sqlite:///PATH or postgres://USER@HOST/DB
    /// (default: chorus.db in the data dir).
    #[arg(long, env = "CHORUS_DATABASE_URL", value_name = "URL")]
    pub(crate) database_url: Option<String>,
    /// A tool's permission policy, NAME=allow|ask|deny; repeatable (defaults: read_file,
    /// list_dir, search_files allow; write_file, run_command ask).
    #[arg(long = "tool-permission", value_name = "NAME=POLICY", value_parser = parse_tool_permission)]
    pub(crate) tool_permissions: Vec<(String, chorus_engine::tools::Permission)>,
    /// Seconds a `tool.permission_request` waits for a client's answer before it counts as deny.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub(crate) permission_timeout: u64,
    /// The most rounds of generation per session prompt (tool calls and their results); the
    /// last round answers without tools.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_tool_rounds: u32,
    /// The configuration file (agents, tool policies); default: chorus.toml in the platform
    /// config dir (e.g. ~/.config/chorus), when it exists.
    #[arg(long, env = "CHORUS_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

/// `NAME=allow|ask|deny`.
fn parse_tool_permission(value: &str) -> Result<(String, chorus_engine::tools::Permission), String> {
    let (name, policy) =
        value.split_once('=').ok_or_else(|| format!("`{value}` is not NAME=POLICY (e.g. run_command=deny)"))?;
    let policy = chorus_engine::tools::Permission::parse(policy)
        .ok_or_else(|| format!("`{policy}` is not a policy: use allow, ask or deny"))?;
    Ok((name.to_owned(), policy))
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Address to listen on; anything but loopback requires --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 4096)]
    pub(crate) port: u16,
    /// API key clients must send as `Authorization: Bearer KEY` (repeatable).
    #[arg(long = "api-key", env = "CHORUS_API_KEY", value_delimiter = ',')]
    pub(crate) api_keys: Vec<String>,
    /// Seconds in-flight requests may run on after SIGINT/SIGTERM or `chorus ctl shutdown`.
    #[arg(long, default_value_t = 10)]
    pub(crate) shutdown_timeout: u64,
    /// Unix socket (mode 0600) where `chorus ctl` reaches this server
    /// (default: $XDG_RUNTIME_DIR/chorus/chorus.sock, else chorus.sock in the platform data dir).
    #[arg(long, env = "CHORUS_CONTROL_SOCKET", value_name = "PATH")]
    pub(crate) control_socket: Option<PathBuf>,
    /// Open no control socket (`chorus ctl` cannot reach this server).
    #[arg(long)]
    pub(crate) no_control_socket: bool,
    /// Do not serve the web UI at `/`.
    #[arg(long)]
    pub(crate) no_webui: bool,
    /// The URL phones open to reach this server, for `GET /qr` and the QR code printed at start
    /// (default: http://LAN-ADDRESS:PORT/; set it behind a reverse proxy or a tunnel).
    #[arg(long, env = "CHORUS_PUBLIC_URL", value_name = "URL")]
    pub(crate) public_url: Option<String>,
    /// Put the first API key into the QR code (as `#key=KEY`), so a phone that scans it is
    /// signed in; anyone who sees the code can then use the server.
    #[arg(long)]
    pub(crate) qr_with_key: bool,
    /// Preload a character (id or name in the characters directory): its shared session is
    /// created and its card checked at start; repeatable.
    #[arg(long = "character", value_name = "NAME")]
    pub(crate) characters: Vec<String>,
    /// Also serve the characters' WebSocket protocol on this port, on the same host (the socket-based
    /// character agent seed connects to ws://HOST:8765); off unless given.
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "8765")]
    pub(crate) character_port: Option<u16>,
    /// Also serve Ollama's API (with the OpenAI routes) on this port, on the same host, for
    /// clients that assume Ollama's address (`http://localhost:11434`); off unless given.
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "11434")]
    pub(crate) ollama_port: Option<u16>,
    /// Answer `GET /slots` with 501, as llama-server's `--no-slots`.
    #[arg(long)]
    pub(crate) no_slots: bool,
    /// Default temperature of the HTTP API's requests that give none (llama-server's `--temp`).
    #[arg(long = "temp", value_name = "T", default_value_t = 0.8)]
    pub(crate) temperature: f32,
    /// Default sampler seed of the HTTP API's requests that give none (llama-server's `--seed`;
    /// -1: a random one per request).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..=u32::MAX as i64))]
    pub(crate) seed: i64,
    /// Most tokens a `/completion` or chat request generates when it sets no limit
    /// (llama-server's `--n-predict`; -1: until the context is full).
    #[arg(long = "n-predict", alias = "predict", default_value_t = -1, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(-1..=u32::MAX as i64))]
    pub(crate) n_predict: i64,
}

/// Where the server is.
#[derive(Debug, Args, Clone)]
pub(crate) struct ConnectArgs {
    /// Server URL (default http://127.0.0.1:4096). When given, it must answer.
    #[arg(long, env = "CHORUS_URL")]
    pub(crate) url: Option<String>,
    /// API key for the server.
    #[arg(long, env = "CHORUS_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// Seconds to wait for the server (connecting, and whole non-streamed answers).
    #[arg(long, default_value_t = 600)]
    pub(crate) timeout: u64,
}

/// How to generate.
#[derive(Debug, Args, Clone)]
pub(crate) struct GenerateArgs {
    /// Most tokens to generate.
    #[arg(long)]
    pub(crate) max_tokens: Option<i64>,
    /// Sampling temperature (0: greedy).
    #[arg(long)]
    pub(crate) temperature: Option<f64>,
    /// Seed for reproducible sampling.
    #[arg(long)]
    pub(crate) seed: Option<i64>,
    /// System prompt.
    #[arg(long)]
    pub(crate) system: Option<String>,
    /// Router category for this prompt (general, code, math, translation, image, or an alias);
    /// with no --model, instead of the one the router's classifier picks.
    #[arg(long, value_name = "CATEGORY")]
    pub(crate) category: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct AskArgs {
    /// The question; read from stdin when omitted (and appended to it when stdin is piped).
    pub(crate) prompt: Option<String>,
    /// Print the whole answer at the end instead of streaming it.
    #[arg(long)]
    pub(crate) no_stream: bool,
    /// Send the prompt to this server-side session (`new` creates one and prints its id
    /// on stderr); the session keeps the conversation.
    #[arg(long, value_name = "ID")]
    pub(crate) session: Option<String>,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) generate: GenerateArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ConverseArgs {
    /// What they talk about; the first speaker opens on it.
    pub(crate) topic: Option<String>,
    /// A participant from the characters directory (id or name); repeatable. Characters speak
    /// first, in the order given, then the --participant ones.
    #[arg(long = "character", value_name = "NAME")]
    pub(crate) characters: Vec<String>,
    /// An ad-hoc participant, such as "Ada: a curious mathematician who loves puzzles";
    /// repeatable.
    #[arg(long = "participant", value_name = "NAME: PERSONALITY")]
    pub(crate) participants: Vec<String>,
    /// Messages in all, one per speaker in turn (1 to 100; default 6).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) turns: Option<u32>,
    /// The most tokens per message (1 to 2048; default 160).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=2048))]
    pub(crate) max_tokens: Option<u32>,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RouteArgs {
    /// The prompt to route; read from stdin when omitted (and appended to it when stdin is piped).
    pub(crate) prompt: Option<String>,
    /// Force this router category (general, code, math, translation, image, or an alias), to
    /// see which model serves it.
    #[arg(long, value_name = "CATEGORY")]
    pub(crate) category: Option<String>,
    /// Print the server's JSON answer (`POST /api/v1/route`) instead.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SessionsArgs {
    #[command(subcommand)]
    pub(crate) command: SessionsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SessionsCommand {
    /// Every session, most recently used first.
    List {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// One session and its messages.
    Show {
        /// The session id (`chorus sessions list` shows them).
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Delete a session and its messages.
    Delete {
        /// The session id.
        id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// The server to talk to, and the model for embedded mode when none answers.
#[derive(Debug, Args)]
pub(crate) struct TargetArgs {
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// Talk to a character (id or name): over the server's characters WebSocket when one
    /// answers, else in this process (local mode), with its vitals shown after each answer.
    #[arg(long, value_name = "NAME")]
    pub(crate) character: Option<String>,
    /// Your name in a character chat (`{{user}}`).
    #[arg(long, value_name = "NAME", requires = "character")]
    pub(crate) user_name: Option<String>,
    /// The characters WebSocket to use: ws://HOST:PORT/ws/characters, a --character-port
    /// ws://HOST:8765, or the server's http:// URL (default: the --url server's).
    #[arg(long, value_name = "URL", requires = "character")]
    pub(crate) server_url: Option<String>,
    /// Fail instead of falling back to local mode when no server answers.
    #[arg(long, requires = "character")]
    pub(crate) no_fallback: bool,
    /// Print the character's vitals and exit.
    #[arg(long, requires = "character")]
    pub(crate) vitals_only: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) generate: GenerateArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CtlArgs {
    #[command(subcommand)]
    pub(crate) command: CtlCommand,
    /// The server's control socket (default: $XDG_RUNTIME_DIR/chorus/chorus.sock, else
    /// chorus.sock in the platform data dir; as `chorus serve`).
    #[arg(long, env = "CHORUS_CONTROL_SOCKET", value_name = "PATH", global = true)]
    pub(crate) control_socket: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum CtlCommand {
    /// What the server is doing: uptime, requests, sessions, queue, models.
    Status {
        /// Print the raw JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Stop the server gracefully (as SIGTERM) and wait until it has stopped.
    Shutdown {
        /// Seconds to wait for the server to stop.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

#[derive(Debug, Args)]
pub(crate) struct AttachArgs {
    /// Server URL, such as http://127.0.0.1:4096.
    pub(crate) url: String,
    /// The session to attach to (default: a new one, whose id is printed on stderr).
    #[arg(long, value_name = "ID")]
    pub(crate) session: Option<String>,
    /// API key for the server.
    #[arg(long, env = "CHORUS_API_KEY", hide_env_values = true)]
    pub(crate) api_key: Option<String>,
    /// Most tokens to generate for each answer.
    #[arg(long)]
    pub(crate) max_tokens: Option<u32>,
    /// Seconds to wait for the server when connecting.
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout: u64,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct McpArgs {
    #[command(subcommand)]
    pub(crate) command: Option<McpCommand>,
    /// The server to bridge to (its `/mcp`); with none, and none answering at the default URL,
    /// the model runs in this process (embedded mode).
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum McpCommand {
    /// The MCP servers of the configuration (`[[mcp.servers]]` in chorus.toml): status and tools.
    List {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    #[command(subcommand)]
    pub(crate) command: ModelsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ModelsCommand {
    /// The running server's models: status, memory, slots, requests in flight, when each unloads.
    Ps {
        /// Print the raw JSON of `GET /api/v1/models`.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Load a model on the running server now.
    Load {
        /// The model's id or alias (`chorus models ps` lists them).
        id: String,
        /// How long it stays loaded once idle: 5m, 1h, 30s, 0 or -1 (never unload); default its own.
        #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
        keep_alive: Option<String>,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Unload a model from the running server (once its requests in flight end).
    Unload {
        /// The model's id or alias.
        id: String,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// The GGUF files in the local hub cache, and downloads that have not finished.
    List {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// One file of the hub cache: its path, size, blob (sha256) and revision.
    Show {
        /// hf:OWNER/REPO/FILE.gguf, or a registered model id or a cached file's stem.
        #[arg(value_name = "SOURCE|ID")]
        name: String,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Remove a file from the hub cache.
    Rm {
        /// hf:OWNER/REPO/FILE.gguf, or a registered model id or a cached file's stem.
        #[arg(value_name = "SOURCE|ID")]
        name: String,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Write a GGUF model and its registry entry into one package file (a tar with a manifest
    /// of sha256 digests) for `chorus models import` on another machine.
    Export {
        /// A [[models]] id of the configuration, hf:OWNER/REPO/FILE.gguf in the cache, or a
        /// GGUF path.
        #[arg(value_name = "ID|SOURCE|PATH")]
        name: String,
        /// The package to write (conventionally ID.tar).
        file: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Install a package from `chorus models export` into DATA_DIR/models, verified, and
    /// register it in DATA_DIR/models.toml.
    Import {
        /// The package file.
        file: PathBuf,
        /// Register it under this id instead of the package's.
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        model: ModelArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// What to pull: hf:OWNER/REPO/FILE.gguf[@REVISION].
    #[arg(value_name = "hf:OWNER/REPO/FILE.gguf")]
    pub(crate) source: String,
    /// Register it under this id (default: the file's stem).
    #[arg(long)]
    pub(crate) id: Option<String>,
    /// Download here even when a server answers (into this machine's cache and
    /// DATA_DIR/models.toml).
    #[arg(long)]
    pub(crate) local: bool,
    #[command(flatten)]
    pub(crate) connect: ConnectArgs,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

/// Where characters are kept; `chorus characters` and the server share it.
#[derive(Debug, Args, Clone)]
pub(crate) struct CharactersDirArgs {
    /// The characters directory: one card per character, ID.json plus the ID.png or ID.charx it
    /// was imported from (default: DATA_DIR/characters).
    #[arg(long, env = "CHORUS_CHARACTERS_DIR", value_name = "DIR", global = true)]
    pub(crate) characters_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CharactersArgs {
    #[command(subcommand)]
    pub(crate) command: CharactersCommand,
    #[command(flatten)]
    pub(crate) dir: CharactersDirArgs,
    /// The data directory whose characters/ is the default characters directory (default: the
    /// platform data dir, e.g. ~/.local/share/chorus).
    #[arg(long, env = "CHORUS_DATA_DIR", value_name = "DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum CharactersCommand {
    /// The characters: id, name, spec, tags.
    List {
        /// Print a JSON array instead.
        #[arg(long)]
        json: bool,
    },
    /// One character's card: its main fields, lorebook and vitals.
    Show {
        /// The character's id, or its card's name (case ignored).
        #[arg(value_name = "NAME|ID")]
        name: String,
        /// Print the card's JSON as stored instead.
        #[arg(long)]
        json: bool,
    },
    /// Check card files (JSON, PNG or CHARX; V1, V2 or V3) without importing them: `ok` for a
    /// valid one, else the field at fault; exits 1 when any is invalid.
    Validate {
        /// The card files.
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
    },
    /// Import a card file (JSON, PNG or CHARX) into the characters directory; prints its id.
    Import {
        /// The card file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Its id: lowercase letters, digits and `-` (default: from the card's name, made unique).
        #[arg(long)]
        id: Option<String>,
        /// Overwrite the character with that id (without --id: the one named after the card).
        #[arg(long)]
        replace: bool,
    },
    /// Write a character's card as JSON (to stdout by default), PNG or CHARX (to -o FILE); the
    /// card's JSON is written back as imported, with the original image or assets when there were.
    Export {
        /// The character's id, or its card's name (case ignored).
        #[arg(value_name = "NAME|ID")]
        name: String,
        /// The container.
        #[arg(long, default_value = "json", value_parser = ["json", "png", "charx"])]
        format: String,
        /// The file to write (`-`: stdout; default stdout, JSON only).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}
