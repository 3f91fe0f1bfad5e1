//! `chorus.toml`, the configuration file: agents (`[[agents]]`: a named system prompt, model
//! and tool set) and tool permission policies (`[tools.permissions]`). It is read from
//! `--config FILE` (or `CHORUS_CONFIG`), else from `chorus.toml` in the platform config dir
//! (e.g. `~/.config/chorus/chorus.toml`) when that exists; flags win over the file
//! (`--tool-permission` after `[tools.permissions]`).
//!
//! ```toml
//! [[agents]]
//! name = "reader"
//! description = "reads files, never writes"
//! system_prompt = "You answer questions about the files in the work dir."
//! tools = ["read_file", "list_dir", "search_files"]
//!
//! [tools.permissions]
//! run_command = "deny"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chorus_engine::Agent;
use chorus_engine::tools::{Permission, ToolRegistry};
use serde::Deserialize;

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
    let config: ConfigFile =
        toml::from_str(&text).with_context(|| format!("the config file {} is not valid", path.display()))?;
    Ok((config, Some(path)))
}

impl ConfigFile {
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
                if tools.get(tool).is_none() {
                    let known: Vec<String> = tools.tools().iter().map(|t| t.definition().name).collect();
                    bail!(
                        "agent `{}` names the tool `{tool}`, which does not exist (tools: {})",
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

    /// The file's permission policies, applied to `tools`.
    ///
    /// # Errors
    /// A policy other than `allow`, `ask` or `deny`, or an unknown tool name.
    pub(crate) fn apply_permissions(&self, mut tools: ToolRegistry) -> Result<ToolRegistry> {
        for (name, policy) in &self.tools.permissions {
            let Some(permission) = Permission::parse(policy) else {
                bail!("[tools.permissions] {name} = \"{policy}\": use allow, ask or deny");
            };
            if tools.get(name).is_none() {
                bail!("[tools.permissions] names the tool `{name}`, which does not exist");
            }
            tools = tools.with_permission(name.clone(), permission);
        }
        Ok(tools)
    }
}
