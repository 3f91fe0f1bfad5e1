//! `chorus.toml`, the configuration file: agents (`[[agents]]`: a named system prompt, model
//! and tool set), tool permission policies (`[tools.permissions]`) and external MCP servers
//! (`[[mcp.servers]]`, whose tools join the agents' as `SERVER.TOOL`). It is read from
//! `--config FILE` (or `CHORUS_CONFIG`), else from `chorus.toml` in the platform config dir
//! (e.g. `~/.config/chorus/chorus.toml`) when that exists; flags win over the file
//! (`--tool-permission` after `[tools.permissions]`).
//!
//! ```toml
//! [[agents]]
//! name = "reader"
//! description = "reads files, never writes"
//! system_prompt = "You answer questions about the files in the work dir."
//! tools = ["read_file", "list_dir", "search_files", "docs.*"]
//!
//! [tools.permissions]
//! run_command = "deny"
//! "github.create_issue" = "deny"   # one tool of an MCP server
//! "docs.*" = "allow"               # every tool of an MCP server
//!
//! # An MCP server run as a child process (stdio): `command`, `args`, `env`, `cwd`.
//! [[mcp.servers]]
//! name = "docs"
//! command = "npx"
//! args = ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/docs"]
//! env = { LOG_LEVEL = "warn" }
//!
//! # An MCP server at a URL (streamable HTTP): `url`, `headers`.
//! [[mcp.servers]]
//! name = "github"
//! url = "https://api.githubcopilot.com/mcp/"
//! headers = { Authorization = "Bearer ghp_…" }
//! timeout = 120   # seconds a tool call may take (default 60)
//! ```
//!
//! An MCP server's tools default to `allow` when the server marks them read-only, else `ask`.
//! A stdio server gets `env` plus these variables of chorus's environment: `HOME`, `LOGNAME`,
//! `PATH`, `SHELL`, `TERM`, `USER`, `LANG`, `TMPDIR` (nothing else, so chorus's secrets stay
//! its own); a relative `cwd` is relative to the file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chorus_engine::Agent;
use chorus_engine::tools::{Permission, ToolRegistry};
use chorus_server::mcp::client::{McpServerConfig, McpTransport};
use serde::Deserialize;

/// The variables of chorus's environment a stdio MCP server inherits (as the MCP SDKs' clients
/// do, and as `run_command` does); its `env` adds to them.
use chorus_engine::tools::builtin::INHERITED_ENV;

/// The file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// Agents beyond the built-in `default` (one named `default` replaces it).
    #[serde(default)]
    agents: Vec<AgentConfig>,
    /// Tool settings.
    #[serde(default)]
    tools: ToolsConfig,
    /// External MCP servers.
    #[serde(default)]
    mcp: McpConfig,
    /// The model registry (`[[models]]`).
    #[serde(default)]
    models: Vec<crate::registry::ModelEntry>,
    /// The content router (`[router]`), over the shipped defaults.
    #[serde(default)]
    router: Option<crate::router::RouterSection>,
    /// `mcp.servers` checked and resolved by [`load`].
    #[serde(skip)]
    mcp_servers: Vec<McpServerConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentConfig {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    system_prompt: String,
    model: Option<String>,
    /// Tool names; all tools when absent, none when empty.
    tools: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolsConfig {
    /// Tool name → `allow`, `ask` or `deny`.
    #[serde(default)]
    permissions: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpConfig {
    /// `[[mcp.servers]]`.
    #[serde(default)]
    servers: Vec<McpServerEntry>,
}

/// One `[[mcp.servers]]`: `command` (+ `args`, `env`, `cwd`) or `url` (+ `headers`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct McpServerEntry {
    name: String,
    command: Option<String>,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    cwd: Option<PathBuf>,
    url: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    /// Seconds one tool call may take.
    timeout: Option<u64>,
}

impl McpServerEntry {
    /// The server's configuration; a relative `cwd` is taken from `dir` (the file's directory).
    fn resolve(&self, dir: &Path) -> Result<McpServerConfig> {
        let name = &self.name;
        let transport = match (&self.command, &self.url) {
            (Some(_), Some(_)) => bail!(
                "[[mcp.servers]] `{name}` has both `command` and `url`: a server is either a command (stdio) or a url (streamable HTTP)"
            ),
            (None, None) => bail!(
                "[[mcp.servers]] `{name}` needs `command` (a program speaking MCP on stdio) or `url` (a streamable HTTP endpoint)"
            ),
            (Some(command), None) => {
                if self.headers.is_some() {
                    bail!("[[mcp.servers]] `{name}`: `headers` is for `url` servers; a `command` server takes `env`");
                }
                let mut env: BTreeMap<String, String> =
                    INHERITED_ENV.iter().filter_map(|k| Some(((*k).to_owned(), std::env::var(k).ok()?))).collect();
                env.extend(self.env.clone().unwrap_or_default());
                McpTransport::Stdio {
                    command: command.clone(),
                    args: self.args.clone().unwrap_or_default(),
                    env,
                    cwd: self.cwd.as_ref().map(|cwd| dir.join(cwd)),
                }
            }
            (None, Some(url)) => {
                if self.args.is_some() || self.env.is_some() || self.cwd.is_some() {
                    bail!(
                        "[[mcp.servers]] `{name}`: `args`, `env` and `cwd` are for `command` servers, not `url` ones"
                    );
                }
                McpTransport::Http { url: url.clone(), headers: self.headers.clone().unwrap_or_default() }
            }
        };
        let mut config = McpServerConfig::new(name.clone(), transport);
        if let Some(timeout) = self.timeout {
            if timeout == 0 {
                bail!("[[mcp.servers]] `{name}`: `timeout` is in seconds and must be at least 1");
            }
            config.call_timeout = Duration::from_secs(timeout);
        }
        config.validate().with_context(|| format!("[[mcp.servers]] `{name}`"))?;
        Ok(config)
    }
}

/// Read the file named by `--config`, else the default one if it exists.
///
/// # Errors
/// A named file that cannot be read, or any file that is not valid (the message names the
/// file and, for TOML errors, the line).
pub(crate) fn load(explicit: Option<&Path>) -> Result<(ConfigFile, Option<PathBuf>)> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => match directories::ProjectDirs::from("", "", "chorus") {
            Some(dirs) if dirs.config_dir().join("chorus.toml").is_file() => dirs.config_dir().join("chorus.toml"),
            _ => return Ok((ConfigFile::default(), None)),
        },
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("cannot read the config file {}", path.display()))?;
    let mut config: ConfigFile =
        toml::from_str(&text).with_context(|| format!("the config file {} is not valid", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    config.mcp_servers =
        config.resolve_mcp(dir).with_context(|| format!("the config file {} is not valid", path.display()))?;
    Ok((config, Some(path)))
}

impl ConfigFile {
    /// The MCP servers, checked: valid and distinct names, `command` or `url`.
    fn resolve_mcp(&self, dir: &Path) -> Result<Vec<McpServerConfig>> {
        let mut servers: Vec<McpServerConfig> = Vec::new();
        for entry in &self.mcp.servers {
            if servers.iter().any(|s| s.name == entry.name) {
                bail!("[[mcp.servers]] has two servers named `{}`; names must be distinct", entry.name);
            }
            servers.push(entry.resolve(dir)?);
        }
        Ok(servers)
    }

    /// The registered models (`[[models]]`), in file order.
    /// The router's configuration: the shipped defaults with `[router]` over them.
    pub(crate) fn router(&self) -> Result<chorus_engine::RouterConfig> {
        crate::router::config(self.router.as_ref())
    }

    pub(crate) fn models(&self) -> &[crate::registry::ModelEntry] {
        &self.models
    }

    /// The external MCP servers (`[[mcp.servers]]`), in file order.
    pub(crate) fn mcp_servers(&self) -> &[McpServerConfig] {
        &self.mcp_servers
    }

    /// The agents: the built-in `default` (unless the file redefines it) first, then the file's.
    ///
    /// # Errors
    /// Two agents with one name, or an agent naming a tool the registry does not have.
    pub(crate) fn agents(&self, tools: &ToolRegistry) -> Result<Vec<Agent>> {
        let mut agents = Vec::new();
        if !self.agents.iter().any(|a| a.name == "default") {
            agents.push(Agent::default_agent());
        }
        for a in &self.agents {
            if a.name.is_empty() || agents.iter().any(|b: &Agent| b.name == a.name) {
                bail!("agents must have distinct, non-empty names; `{}` is repeated or empty", a.name);
            }
            for tool in a.tools.iter().flatten() {
                if !known_tool(tools, tool) {
                    let known: Vec<String> = tools.tools().iter().map(|t| t.definition().name).collect();
                    bail!(
                        "agent `{}` names the tool `{tool}`, which does not exist (tools: {}; an MCP server's are `SERVER.TOOL`, or `SERVER.*` for all)",
                        a.name,
                        known.join(", ")
                    );
                }
            }
            agents.push(Agent {
                name: a.name.clone(),
                description: a.description.clone(),
                system_prompt: a.system_prompt.clone(),
                model: a.model.clone(),
                tools: a.tools.clone(),
            });
        }
        // The default agent first, as `GET /api/v1/agents` promises.
        if let Some(i) = agents.iter().position(|a| a.name == "default") {
            let default = agents.remove(i);
            agents.insert(0, default);
        }
        Ok(agents)
    }

    /// The file's permission policies, applied to `tools` (which holds the MCP servers already).
    ///
    /// # Errors
    /// A policy other than `allow`, `ask` or `deny`, or an unknown tool name.
    pub(crate) fn apply_permissions(&self, mut tools: ToolRegistry) -> Result<ToolRegistry> {
        for (name, policy) in &self.tools.permissions {
            let Some(permission) = Permission::parse(policy) else {
                bail!("[tools.permissions] {name} = \"{policy}\": use allow, ask or deny");
            };
            if !known_tool(&tools, name) {
                bail!(
                    "[tools.permissions] names the tool `{name}`, which does not exist (an MCP server's tools are `SERVER.TOOL`, or `SERVER.*` for all)"
                );
            }
            tools = tools.with_permission(name.clone(), permission);
        }
        Ok(tools)
    }
}

/// Whether `name` can name a tool: a tool of the registry, or `SERVER.TOOL` / `SERVER.*` of a
/// configured MCP server (whose tools are only known once it runs).
fn known_tool(tools: &ToolRegistry, name: &str) -> bool {
    tools.get(name).is_some()
        || name.split_once('.').is_some_and(|(server, tool)| !tool.is_empty() && tools.provider(server).is_some())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use chorus_server::mcp::client::McpServer;

    use super::*;

    /// Load `text` as a config file; the error's whole chain when it is refused.
    fn load_text(text: &str) -> Result<ConfigFile, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chorus.toml");
        std::fs::write(&path, text).unwrap();
        load(Some(&path)).map(|(config, _)| config).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn mcp_servers_are_commands_or_urls() {
        let config = load_text(
            r#"
            [[mcp.servers]]
            name = "docs"
            command = "docs-server"
            args = ["--root", "/srv"]
            env = { TOKEN = "x", PATH = "/opt/bin" }
            cwd = "work"

            [[mcp.servers]]
            name = "gh"
            url = "https://example.com/mcp"
            headers = { Authorization = "Bearer t" }
            timeout = 5
            "#,
        )
        .unwrap();
        let [docs, gh] = config.mcp_servers() else { panic!("two servers") };
        let McpTransport::Stdio { command, args, env, cwd } = &docs.transport else { panic!("stdio") };
        assert_eq!(
            (command.as_str(), args.as_slice()),
            ("docs-server", ["--root".to_owned(), "/srv".to_owned()].as_slice())
        );
        assert_eq!(env["TOKEN"], "x");
        assert_eq!(env["PATH"], "/opt/bin", "the file's env wins over the inherited one");
        assert!(cwd.as_ref().unwrap().is_absolute() && cwd.as_ref().unwrap().ends_with("work"));
        let McpTransport::Http { url, headers } = &gh.transport else { panic!("http") };
        assert_eq!((url.as_str(), headers["Authorization"].as_str()), ("https://example.com/mcp", "Bearer t"));
        assert_eq!(gh.call_timeout, Duration::from_secs(5));
    }

    #[test]
    fn bad_mcp_servers_are_refused_naming_the_file() {
        for (text, expected) in [
            ("[[mcp.servers]]\nname = \"a.b\"\ncommand = \"x\"", "`a.b` must be 1 to 32 letters"),
            ("[[mcp.servers]]\nname = \"\"\ncommand = \"x\"", "must be 1 to 32 letters"),
            ("[[mcp.servers]]\nname = \"a\"\ncommand = \"x\"\nurl = \"http://h\"", "has both `command` and `url`"),
            ("[[mcp.servers]]\nname = \"a\"", "needs `command`"),
            ("[[mcp.servers]]\nname = \"a\"\nurl = \"http://h\"\nargs = [\"1\"]", "are for `command` servers"),
            ("[[mcp.servers]]\nname = \"a\"\ncommand = \"x\"\nheaders = { A = \"b\" }", "`headers` is for `url`"),
            ("[[mcp.servers]]\nname = \"a\"\nurl = \"ftp://h\"", "give an http:// or https:// URL"),
            ("[[mcp.servers]]\nname = \"a\"\nurl = \"http://h\"\nheaders = { Accept = \"x\" }", "sets it itself"),
            ("[[mcp.servers]]\nname = \"a\"\ncommand = \" \"", "empty `command`"),
            ("[[mcp.servers]]\nname = \"a\"\ncommand = \"x\"\ntimeout = 0", "at least 1"),
            (
                "[[mcp.servers]]\nname = \"a\"\ncommand = \"x\"\n[[mcp.servers]]\nname = \"a\"\ncommand = \"y\"",
                "two servers named `a`",
            ),
            ("[[mcp.servers]]\nname = \"a\"\ncommand = \"x\"\nport = 1", "unknown field `port`"),
        ] {
            let error = load_text(text).unwrap_err();
            assert!(error.contains("chorus.toml is not valid"), "{text}: {error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn policies_and_agents_may_name_tools_of_configured_mcp_servers() {
        let config = load_text(
            r#"
            [[agents]]
            name = "docs"
            tools = ["read_file", "docs.lookup", "docs.*"]

            [tools.permissions]
            "docs.lookup" = "allow"
            "docs.*" = "deny"

            [[mcp.servers]]
            name = "docs"
            command = "docs-server"
            "#,
        )
        .unwrap();
        let mut tools = ToolRegistry::default();
        for server in config.mcp_servers() {
            tools = tools.with_provider(Arc::new(McpServer::new(server.clone()).unwrap()));
        }
        let tools = config.apply_permissions(tools).unwrap();
        assert_eq!(config.agents(&tools).unwrap()[1].name, "docs");

        let config = load_text("[tools.permissions]\n\"web.fetch\" = \"allow\"").unwrap();
        let error = config.apply_permissions(ToolRegistry::default()).unwrap_err().to_string();
        assert!(error.contains("`web.fetch`, which does not exist"), "{error}");
        let config = load_text("[[agents]]\nname = \"x\"\ntools = [\"web.*\"]").unwrap();
        let error = config.agents(&ToolRegistry::default()).unwrap_err().to_string();
        assert!(error.contains("names the tool `web.*`"), "{error}");
    }
}
