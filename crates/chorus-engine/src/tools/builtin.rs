//! The built-in tools of the agent loop: `read_file`, `write_file`, `list_dir`,
//! `search_files` and `run_command`. File tools are confined to the session's
//! work dir by [`resolve`]: a path with `..` is refused, an absolute path must
//! lie inside the work dir, and symlinks are resolved before the check, so a
//! link pointing out of the work dir is refused too. `run_command` runs
//! `sh -c` in the work dir with a timeout and capped output; it is a shell,
//! not a sandbox, which is why its default policy is `ask`.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::FunctionDefinition;
use super::registry::{Permission, Tool, ToolContext, ToolError};

/// The most bytes of a file `read_file` returns.
/// The variables of chorus's environment that `run_command` (and a stdio MCP server) inherits;
/// nothing else of it is passed on.
pub const INHERITED_ENV: [&str; 8] = ["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "TMPDIR"];

const READ_LIMIT: usize = 256 * 1024;
/// The most entries `list_dir` returns.
const LIST_LIMIT: usize = 1000;
/// The most matching lines `search_files` returns.
const SEARCH_LIMIT: usize = 200;
/// Files larger than this are skipped by `search_files`.
const SEARCH_FILE_LIMIT: u64 = 1024 * 1024;
/// The most bytes of stdout and of stderr `run_command` returns.
const OUTPUT_LIMIT: usize = 32 * 1024;
/// `run_command`'s default and largest timeouts, in seconds.
const COMMAND_TIMEOUT_S: u64 = 30;
const COMMAND_TIMEOUT_MAX_S: u64 = 300;

/// Every built-in tool.
pub(crate) fn all() -> Vec<Arc<dyn Tool>> {
    vec![Arc::new(ReadFile), Arc::new(WriteFile), Arc::new(ListDir), Arc::new(SearchFiles), Arc::new(RunCommand)]
}

/// The absolute path `path` names inside `work_dir`, symlinks resolved as far as the path exists.
///
/// # Errors
/// [`ToolError::PathOutsideWorkDir`] for `..`, absolute paths outside the work dir, and paths
/// that leave it through a symlink; [`ToolError::Failed`] when the work dir does not exist.
pub fn resolve(work_dir: &Path, path: &str) -> Result<PathBuf, ToolError> {
    if path.contains('\0') {
        return Err(ToolError::InvalidArguments("paths cannot contain NUL characters".into()));
    }
    let given = Path::new(path);
    if given.components().any(|c| c == Component::ParentDir) {
        return Err(ToolError::PathOutsideWorkDir(format!(
            "`{path}` is refused: `..` is not allowed; give a path inside the work dir"
        )));
    }
    let root = work_dir
        .canonicalize()
        .map_err(|e| ToolError::Failed(format!("the work dir {} is not usable: {e}", work_dir.display())))?;
    let joined = if given.is_absolute() { given.to_path_buf() } else { root.join(given) };
    // Resolve symlinks in the part that exists; the rest (a file to create) is plain names.
    let mut existing = joined.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        match existing.canonicalize() {
            Ok(real) => break rest.iter().rev().fold(real, |acc: PathBuf, name| acc.join(name)),
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_owned());
                    existing = parent;
                }
                _ => break joined.clone(),
            },
        }
    };
    if resolved.starts_with(&root) {
        Ok(resolved)
    } else {
        Err(ToolError::PathOutsideWorkDir(format!(
            "`{path}` is outside the work dir {} (symlinks are followed before this check)",
            root.display()
        )))
    }
}

fn str_arg<'a>(arguments: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    arguments
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::InvalidArguments(format!("`{name}` (a string) is required")))
}

fn optional_str<'a>(arguments: &'a Value, name: &str) -> Result<Option<&'a str>, ToolError> {
    match arguments.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ToolError::InvalidArguments(format!("`{name}` must be a string"))),
    }
}

fn function(name: &str, description: &str, parameters: Value) -> FunctionDefinition {
    FunctionDefinition { name: name.into(), description: Some(description.into()), parameters, strict: true }
}

fn io_error(what: &str, path: &str, e: &std::io::Error) -> ToolError {
    // What the model needs to try again: where paths start.
    let hint = match e.kind() {
        std::io::ErrorKind::NotFound => "; paths are relative to the work dir, and `.` is the work dir itself",
        _ => "",
    };
    ToolError::Failed(format!("cannot {what} `{path}`: {e}{hint}"))
}

/// Cut `text` to at most `limit` bytes at a character boundary, saying so.
fn cap(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let mut at = limit;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let total = text.len();
        text.truncate(at);
        text.push_str(&format!("\n[truncated: {at} of {total} bytes shown]"));
    }
    text
}

struct ReadFile;

#[async_trait::async_trait]
impl Tool for ReadFile {
    fn definition(&self) -> FunctionDefinition {
        function(
            "read_file",
            "Read a UTF-8 text file in the work dir.",
            json!({
                "type": "object",
                "properties": {"path": {"type": "string", "description": "Path relative to the work dir."}},
                "required": ["path"],
                "additionalProperties": false,
            }),
        )
    }

    fn default_permission(&self) -> Permission {
        Permission::Allow
    }

    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<String, ToolError> {
        let path = str_arg(&arguments, "path")?;
        let full = resolve(&context.work_dir, path)?;
        let bytes = tokio::fs::read(&full).await.map_err(|e| io_error("read", path, &e))?;
        let text = String::from_utf8(bytes).map_err(|_| ToolError::Failed(format!("`{path}` is not UTF-8 text")))?;
        Ok(cap(text, READ_LIMIT))
    }
}

struct WriteFile;

#[async_trait::async_trait]
impl Tool for WriteFile {
    fn definition(&self) -> FunctionDefinition {
        function(
            "write_file",
            "Write a text file in the work dir, creating it and its directories or replacing it.",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Path relative to the work dir."},
                    "content": {"type": "string", "description": "The whole new content."},
                },
                "required": ["path", "content"],
                "additionalProperties": false,
            }),
        )
    }

    fn default_permission(&self) -> Permission {
        Permission::Ask
    }

    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<String, ToolError> {
        let path = str_arg(&arguments, "path")?;
        let content = str_arg(&arguments, "content")?;
        let full = resolve(&context.work_dir, path)?;
        if let Some(parent) = full.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| io_error("create the directory of", path, &e))?;
        }
        tokio::fs::write(&full, content).await.map_err(|e| io_error("write", path, &e))?;
        Ok(format!("wrote {} bytes to {path}", content.len()))
    }
}

struct ListDir;

#[async_trait::async_trait]
impl Tool for ListDir {
    fn definition(&self) -> FunctionDefinition {
        function(
            "list_dir",
            "List a directory of the work dir: one entry per line, directories end with `/`.",
            json!({
                "type": "object",
                "properties": {"path": {"type": "string", "description": "Directory relative to the work dir; `.` by default."}},
                "additionalProperties": false,
            }),
        )
    }

    fn default_permission(&self) -> Permission {
        Permission::Allow
    }

    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<String, ToolError> {
        let path = optional_str(&arguments, "path")?.unwrap_or(".");
        let full = resolve(&context.work_dir, path)?;
        let mut reader = tokio::fs::read_dir(&full).await.map_err(|e| io_error("list", path, &e))?;
        let mut entries = Vec::new();
        while let Some(entry) = reader.next_entry().await.map_err(|e| io_error("list", path, &e))? {
            let mut name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().await.is_ok_and(|t| t.is_dir()) {
                name.push('/');
            }
            entries.push(name);
        }
        entries.sort();
        let total = entries.len();
        entries.truncate(LIST_LIMIT);
        let mut out = entries.join("\n");
        if total > LIST_LIMIT {
            out.push_str(&format!("\n[{} more entries not shown]", total - LIST_LIMIT));
        }
        Ok(out)
    }
}

struct SearchFiles;

#[async_trait::async_trait]
impl Tool for SearchFiles {
    fn definition(&self) -> FunctionDefinition {
        function(
            "search_files",
            "Search the text files under a directory of the work dir for lines matching a regular expression; \
             answers `path:line: text` per match.",
            json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "A regular expression (Rust regex syntax)."},
                    "path": {"type": "string", "description": "Directory to search, relative to the work dir; `.` by default."},
                },
                "required": ["pattern"],
                "additionalProperties": false,
            }),
        )
    }

    fn default_permission(&self) -> Permission {
        Permission::Allow
    }

    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<String, ToolError> {
        let pattern = str_arg(&arguments, "pattern")?;
        let regex = regex::Regex::new(pattern)
            .map_err(|e| ToolError::InvalidArguments(format!("`pattern` is not a valid regular expression: {e}")))?;
        let path = optional_str(&arguments, "path")?.unwrap_or(".").to_owned();
        let root = resolve(&context.work_dir, &path)?;
        let base = context.work_dir.canonicalize().unwrap_or_else(|_| context.work_dir.clone());
        // The walk is blocking file I/O: keep it off the async workers.
        tokio::task::spawn_blocking(move || search(&root, &base, &regex))
            .await
            .map_err(|e| ToolError::Failed(format!("the search failed: {e}")))
    }
}

/// Matching lines under `root`, named relative to `base`. Symlinks are not followed, so the
/// walk stays inside the work dir.
fn search(root: &Path, base: &Path, regex: &regex::Regex) -> String {
    let mut out = Vec::new();
    let mut more = false;
    'files: for entry in walkdir::WalkDir::new(root).follow_links(false).sort_by_file_name() {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() || entry.metadata().map_or(true, |m| m.len() > SEARCH_FILE_LIMIT) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
        let name = entry.path().strip_prefix(base).unwrap_or(entry.path()).display().to_string();
        for (number, line) in text.lines().enumerate() {
            if regex.is_match(line) {
                if out.len() == SEARCH_LIMIT {
                    more = true;
                    break 'files;
                }
                out.push(format!("{name}:{}: {line}", number + 1));
            }
        }
    }
    if out.is_empty() {
        return "no matches".into();
    }
    let mut text = out.join("\n");
    if more {
        text.push_str(&format!("\n[stopped after {SEARCH_LIMIT} matches]"));
    }
    text
}

struct RunCommand;

#[async_trait::async_trait]
impl Tool for RunCommand {
    fn definition(&self) -> FunctionDefinition {
        function(
            "run_command",
            "Run a shell command (sh -c) in the work dir; answers its exit status, stdout and stderr.",
            json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string"},
                    "timeout_s": {"type": "integer", "minimum": 1, "maximum": COMMAND_TIMEOUT_MAX_S,
                                  "description": "Seconds before the command is killed; 30 by default."},
                },
                "required": ["command"],
                "additionalProperties": false,
            }),
        )
    }

    fn default_permission(&self) -> Permission {
        Permission::Ask
    }

    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<String, ToolError> {
        let command = str_arg(&arguments, "command")?;
        let timeout_s = match arguments.get("timeout_s") {
            None | Some(Value::Null) => COMMAND_TIMEOUT_S,
            Some(v) => v.as_u64().filter(|t| (1..=COMMAND_TIMEOUT_MAX_S).contains(t)).ok_or_else(|| {
                ToolError::InvalidArguments(format!("`timeout_s` must be an integer from 1 to {COMMAND_TIMEOUT_MAX_S}"))
            })?,
        };
        // A cleared environment plus the allowlist: chorus's secrets (API keys, HF_TOKEN, the
        // database URL) never reach a command the model wrote.
        let inherited = INHERITED_ENV.iter().filter_map(|k| Some((*k, std::env::var_os(k)?)));
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env_clear()
            .envs(inherited)
            .current_dir(&context.work_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ToolError::Failed(format!("cannot start `sh`: {e}")))?;
        // On timeout the future is dropped with the child, which kills it.
        let output = tokio::time::timeout(Duration::from_secs(timeout_s), child.wait_with_output())
            .await
            .map_err(|_| ToolError::Timeout(timeout_s))?
            .map_err(|e| ToolError::Failed(format!("the command failed to run: {e}")))?;
        let status = output.status.code().map_or_else(|| "killed by a signal".to_owned(), |c| c.to_string());
        Ok(format!(
            "exit status: {status}\n[stdout]\n{}\n[stderr]\n{}",
            cap(String::from_utf8_lossy(&output.stdout).into_owned(), OUTPUT_LIMIT),
            cap(String::from_utf8_lossy(&output.stderr).into_owned(), OUTPUT_LIMIT),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tools::{ToolRegistry, ToolSet};

    async fn builtins() -> ToolSet {
        ToolRegistry::default().tool_set(None).await
    }

    fn setup() -> (tempfile::TempDir, ToolContext) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "hello\nworld\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/deep.txt"), "deep hello\n").unwrap();
        let context = ToolContext { work_dir: dir.path().to_path_buf() };
        (dir, context)
    }

    #[tokio::test]
    async fn file_tools_work_inside_the_work_dir() {
        let (_dir, cx) = setup();
        let tools = builtins().await;
        assert_eq!(tools.call(&cx, "read_file", r#"{"path": "notes.txt"}"#).await.unwrap(), "hello\nworld\n");
        assert_eq!(tools.call(&cx, "list_dir", "{}").await.unwrap(), "notes.txt\nsub/");
        let found = tools.call(&cx, "search_files", r#"{"pattern": "hel+o"}"#).await.unwrap();
        assert_eq!(found, "notes.txt:1: hello\nsub/deep.txt:1: deep hello");
        tools.call(&cx, "write_file", r#"{"path": "new/a.txt", "content": "x"}"#).await.unwrap();
        assert_eq!(std::fs::read_to_string(cx.work_dir.join("new/a.txt")).unwrap(), "x");
    }

    #[tokio::test]
    async fn escapes_are_refused() {
        let (dir, cx) = setup();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let tools = builtins().await;
        let secret = outside.path().join("secret.txt");
        for args in [
            json!({"path": "../secret.txt"}),
            json!({"path": "sub/../../secret.txt"}),
            json!({"path": secret.to_str().unwrap()}),
            json!({"path": "link/secret.txt"}),
        ] {
            let e = tools.call(&cx, "read_file", &args.to_string()).await.unwrap_err();
            assert_eq!(e.code(), "path_outside_work_dir", "{args}: {e}");
        }
        let e = tools.call(&cx, "write_file", r#"{"path": "link/new.txt", "content": "x"}"#).await.unwrap_err();
        assert_eq!(e.code(), "path_outside_work_dir");
        assert!(!outside.path().join("new.txt").exists());
        // An absolute path inside the work dir is fine.
        let inside = dir.path().join("notes.txt");
        let args = json!({"path": inside.to_str().unwrap()}).to_string();
        assert!(tools.call(&cx, "read_file", &args).await.is_ok());
    }

    #[tokio::test]
    async fn run_command_reports_status_and_times_out() {
        let (_dir, cx) = setup();
        let tools = builtins().await;
        let out =
            tools.call(&cx, "run_command", r#"{"command": "cat notes.txt; echo oops >&2; exit 3"}"#).await.unwrap();
        assert_eq!(out, "exit status: 3\n[stdout]\nhello\nworld\n\n[stderr]\noops\n");
        let e = tools.call(&cx, "run_command", r#"{"command": "sleep 5", "timeout_s": 1}"#).await.unwrap_err();
        assert_eq!(e, ToolError::Timeout(1));
    }

    #[tokio::test]
    async fn run_command_gets_only_the_allowlisted_environment() {
        let (_dir, cx) = setup();
        let tools = builtins().await;
        // cargo runs tests with CARGO_* variables set: a stand-in for chorus's secrets
        // (CHORUS_API_KEY, HF_TOKEN, CHORUS_DATABASE_URL), which are no more allowlisted.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some(), "the test needs a variable to hide");
        let out = tools.call(&cx, "run_command", r#"{"command": "env"}"#).await.unwrap();
        assert!(!out.contains("CARGO_MANIFEST_DIR="), "{out}");
        assert!(out.lines().any(|l| l.starts_with("PATH=")), "PATH is inherited: {out}");
        for line in out.lines().skip(2).take_while(|l| *l != "[stderr]").filter(|l| l.contains('=')) {
            let name = line.split('=').next().unwrap();
            // `sh` itself sets PWD, SHLVL and `_`.
            assert!(
                INHERITED_ENV.contains(&name) || ["PWD", "SHLVL", "_", "OLDPWD"].contains(&name),
                "{name} reached the command"
            );
        }
    }

    #[tokio::test]
    async fn bad_arguments_are_tool_errors() {
        let (_dir, cx) = setup();
        let tools = builtins().await;
        assert_eq!(tools.call(&cx, "read_file", "{}").await.unwrap_err().code(), "invalid_arguments");
        assert_eq!(tools.call(&cx, "read_file", "[1]").await.unwrap_err().code(), "invalid_arguments");
        assert_eq!(tools.call(&cx, "nope", "{}").await.unwrap_err().code(), "unknown_tool");
        assert_eq!(
            tools.call(&cx, "search_files", r#"{"pattern": "("}"#).await.unwrap_err().code(),
            "invalid_arguments"
        );
        assert_eq!(tools.call(&cx, "read_file", r#"{"path": "missing.txt"}"#).await.unwrap_err().code(), "failed");
    }
}
