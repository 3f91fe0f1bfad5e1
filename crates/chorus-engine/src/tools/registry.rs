//! The tools a session's agent loop can run: the [`Tool`] trait (built-in
//! tools, and the tools of [`ToolProvider`]s such as external MCP servers,
//! named `SERVER.TOOL`), the [`ToolRegistry`] with each tool's
//! [`Permission`] policy, the [`ToolSet`] a prompt runs with (the registry's
//! tools at that moment), and [`ToolError`], a failure the model is told
//! about (it becomes the call's result) rather than a server error.
//!
//! Policies: an explicit entry for the tool's full name wins, then one for
//! its whole provider (`SERVER.*`), then the tool's own default.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::FunctionDefinition;
use super::builtin;
use super::provider::ToolProvider;

/// A tool's permission policy (the issue's `allow` | `ask` | `deny`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Runs without asking.
    Allow,
    /// A client must allow each call (`tool.permission_request`); no answer before the
    /// timeout is a refusal.
    Ask,
    /// Never runs.
    Deny,
}

impl Permission {
    /// `allow`, `ask` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Allow => "allow",
            Permission::Ask => "ask",
            Permission::Deny => "deny",
        }
    }

    /// Parse [`Permission::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "allow" => Permission::Allow,
            "ask" => Permission::Ask,
            "deny" => Permission::Deny,
            _ => return None,
        })
    }
}

/// Where a tool call runs.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The session's work dir: file tools stay inside it, commands start in it.
    pub work_dir: PathBuf,
}

/// Why a tool call failed. Its text goes back to the model as the call's result, so it says
/// what to do differently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// No tool has this name.
    #[error("there is no tool named `{0}`")]
    UnknownTool(String),
    /// The arguments do not fit the tool's parameters.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// A path leaves the work dir (`..`, an absolute path elsewhere, or a symlink out).
    #[error("{0}")]
    PathOutsideWorkDir(String),
    /// The policy is `deny`, or a client refused.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// Nobody answered the permission request in time.
    #[error("permission denied: no client answered the permission request within {0} s")]
    PermissionTimeout(u64),
    /// The tool ran past its time limit.
    #[error("timed out after {0} s")]
    Timeout(u64),
    /// The tool ran and failed (a missing file, a failed read).
    #[error("{0}")]
    Failed(String),
    /// The tool's provider cannot serve calls now (an MCP server that is restarting or failed
    /// to start).
    #[error("{0}")]
    Unavailable(String),
}

impl ToolError {
    /// The stable code `tool.call_error` events carry.
    pub fn code(&self) -> &'static str {
        match self {
            ToolError::UnknownTool(_) => "unknown_tool",
            ToolError::InvalidArguments(_) => "invalid_arguments",
            ToolError::PathOutsideWorkDir(_) => "path_outside_work_dir",
            ToolError::PermissionDenied(_) => "permission_denied",
            ToolError::PermissionTimeout(_) => "permission_timeout",
            ToolError::Timeout(_) => "timeout",
            ToolError::Failed(_) => "failed",
            ToolError::Unavailable(_) => "unavailable",
        }
    }
}

/// A tool the agent loop can call.
#[async_trait::async_trait]
pub trait Tool: Send + Sync {
    /// Name, description and JSON schema of the arguments, as the model sees them.
    fn definition(&self) -> FunctionDefinition;

    /// The policy when the configuration names none.
    fn default_permission(&self) -> Permission;

    /// Run one call with its arguments (a JSON object).
    ///
    /// # Errors
    /// [`ToolError`], which the model receives as the call's result.
    async fn call(&self, context: &ToolContext, arguments: Value) -> Result<String, ToolError>;
}

/// The tools and their policies: tools given at construction (the built-ins) and
/// [`ToolProvider`]s, whose tools are known once they run. Cheap to clone.
#[derive(Clone)]
pub struct ToolRegistry {
    tools: Vec<Arc<dyn Tool>>,
    providers: Vec<Arc<dyn ToolProvider>>,
    permissions: Arc<HashMap<String, Permission>>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.tools.iter().map(|t| t.definition().name).collect();
        let providers: Vec<&str> = self.providers.iter().map(|p| p.name()).collect();
        f.debug_struct("ToolRegistry")
            .field("tools", &names)
            .field("providers", &providers)
            .field("permissions", &self.permissions)
            .finish()
    }
}

impl Default for ToolRegistry {
    /// The built-in tools with their default policies, no providers.
    fn default() -> Self {
        Self::new(builtin::all())
    }
}

impl ToolRegistry {
    /// A registry of `tools` with their default policies.
    pub fn new(tools: Vec<Arc<dyn Tool>>) -> Self {
        Self { tools, providers: Vec::new(), permissions: Arc::new(HashMap::new()) }
    }

    /// Set a policy (overriding the default) for a tool's full name, or for every tool of a
    /// provider with `SERVER.*`.
    #[must_use]
    pub fn with_permission(mut self, name: impl Into<String>, permission: Permission) -> Self {
        Arc::make_mut(&mut self.permissions).insert(name.into(), permission);
        self
    }

    /// Add a provider; its tools join the registry once it runs.
    #[must_use]
    pub fn with_provider(mut self, provider: Arc<dyn ToolProvider>) -> Self {
        self.providers.push(provider);
        self
    }

    /// The tool given at construction named `name` (providers' tools are in [`Self::tool_set`]).
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.iter().find(|t| t.definition().name == name)
    }

    /// The tools given at construction, in registration order.
    pub fn tools(&self) -> &[Arc<dyn Tool>] {
        &self.tools
    }

    /// The providers, in registration order.
    pub fn providers(&self) -> &[Arc<dyn ToolProvider>] {
        &self.providers
    }

    /// The provider named `name`.
    pub fn provider(&self, name: &str) -> Option<&Arc<dyn ToolProvider>> {
        self.providers.iter().find(|p| p.name() == name)
    }

    /// The tools now, with their policies: those given at construction, then each provider's
    /// (started if needed; one that cannot start contributes none, and is logged), restricted to
    /// the names in `names` when given (an agent's tool list: full names, or `SERVER.*` for every
    /// tool of a provider). Only providers that `names` can match are asked, so an agent that
    /// names none of a provider's tools never starts it. A name seen twice keeps its first tool.
    pub async fn tool_set(&self, names: Option<&[String]>) -> ToolSet {
        let wanted = |name: &str| names.is_none_or(|names| names.iter().any(|n| tool_matches(n, name)));
        let mut tools: Vec<Arc<dyn Tool>> =
            self.tools.iter().filter(|t| wanted(&t.definition().name)).cloned().collect();
        let needed = self.providers.iter().filter(|p| {
            let prefix = format!("{}.", p.name());
            names.is_none_or(|names| names.iter().any(|n| n.starts_with(&prefix)))
        });
        let listed = futures::future::join_all(needed.map(|p| async move { (p.name(), p.tools().await) })).await;
        for (provider, result) in listed {
            match result {
                Ok(provided) => {
                    for tool in provided {
                        let name = tool.definition().name;
                        if !wanted(&name) {
                            continue;
                        }
                        if tools.iter().any(|t| t.definition().name == name) {
                            tracing::warn!(provider, tool = %name, "a tool of this name exists already; ignored");
                            continue;
                        }
                        tools.push(tool);
                    }
                }
                Err(e) => tracing::debug!(provider, error = %e, "the provider's tools are unavailable"),
            }
        }
        ToolSet { tools, permissions: Arc::clone(&self.permissions) }
    }
}

/// Whether an agent's tool entry `pattern` names the tool `name`: the same name, or
/// `SERVER.*` for a tool named `SERVER.…`.
pub fn tool_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(server) => name.strip_prefix(server).is_some_and(|rest| rest.starts_with('.')),
        None => pattern == name,
    }
}

/// The tools of one moment (one prompt, one listing) with their policies, from
/// [`ToolRegistry::tool_set`].
#[derive(Clone)]
pub struct ToolSet {
    tools: Vec<Arc<dyn Tool>>,
    permissions: Arc<HashMap<String, Permission>>,
}

impl std::fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.tools.iter().map(|t| t.definition().name).collect();
        f.debug_struct("ToolSet").field("tools", &names).finish()
    }
}

impl ToolSet {
    /// The tool named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.iter().find(|t| t.definition().name == name)
    }

    /// Every tool: the registry's own first, then the providers', in registration order.
    pub fn tools(&self) -> &[Arc<dyn Tool>] {
        &self.tools
    }

    /// The policy of the tool named `name`: the configured one for `name`, else the one for its
    /// provider (`SERVER.*` for `SERVER.TOOL`), else the tool's default; deny for unknown names.
    pub fn permission(&self, name: &str) -> Permission {
        let configured = self.permissions.get(name).copied().or_else(|| {
            let (server, _) = name.split_once('.')?;
            self.permissions.get(&format!("{server}.*")).copied()
        });
        configured.or_else(|| self.get(name).map(|t| t.default_permission())).unwrap_or(Permission::Deny)
    }

    /// Definitions of every tool, for a request's `tools`.
    pub fn definitions(&self) -> Vec<FunctionDefinition> {
        self.tools.iter().map(|t| t.definition()).collect()
    }

    /// Run a call, without any permission check (the caller did it).
    ///
    /// # Errors
    /// [`ToolError::UnknownTool`], [`ToolError::InvalidArguments`] when `arguments` is not a
    /// JSON object, or the tool's own error.
    pub async fn call(&self, context: &ToolContext, name: &str, arguments: &str) -> Result<String, ToolError> {
        let tool = self.get(name).ok_or_else(|| ToolError::UnknownTool(name.to_owned()))?;
        let arguments: Value = if arguments.trim().is_empty() {
            Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_str(arguments)
                .map_err(|e| ToolError::InvalidArguments(format!("the arguments are not JSON: {e}")))?
        };
        if !arguments.is_object() {
            return Err(ToolError::InvalidArguments("the arguments must be a JSON object".into()));
        }
        tool.call(context, arguments).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use serde_json::json;

    use super::*;
    use crate::tools::{ProviderState, ProviderStatus};

    /// A provider tool that echoes its arguments.
    struct Echo {
        name: String,
        read_only: bool,
    }

    #[async_trait::async_trait]
    impl Tool for Echo {
        fn definition(&self) -> FunctionDefinition {
            FunctionDefinition {
                name: self.name.clone(),
                description: None,
                parameters: json!({"type": "object"}),
                strict: false,
            }
        }

        fn default_permission(&self) -> Permission {
            if self.read_only { Permission::Allow } else { Permission::Ask }
        }

        async fn call(&self, _: &ToolContext, arguments: Value) -> Result<String, ToolError> {
            Ok(format!("{} {arguments}", self.name))
        }
    }

    /// A provider with fixed tools, or one that cannot start; counts how often it was asked.
    struct Fake {
        name: &'static str,
        tools: Option<Vec<(&'static str, bool)>>,
        asked: AtomicU32,
    }

    impl Fake {
        fn new(name: &'static str, tools: Option<Vec<(&'static str, bool)>>) -> Arc<Self> {
            Arc::new(Self { name, tools, asked: AtomicU32::new(0) })
        }
    }

    #[async_trait::async_trait]
    impl ToolProvider for Fake {
        fn name(&self) -> &str {
            self.name
        }

        async fn tools(&self) -> Result<Vec<Arc<dyn Tool>>, ToolError> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            let tools = self.tools.as_ref().ok_or_else(|| ToolError::Unavailable("cannot start".into()))?;
            Ok(tools
                .iter()
                .map(|(tool, read_only)| {
                    Arc::new(Echo { name: format!("{}.{tool}", self.name), read_only: *read_only }) as Arc<dyn Tool>
                })
                .collect())
        }

        fn status(&self) -> ProviderStatus {
            ProviderStatus {
                name: self.name.into(),
                transport: "stdio".into(),
                state: ProviderState::Idle,
                tools: Vec::new(),
                restarts: 0,
                error: None,
            }
        }
    }

    fn names(set: &ToolSet) -> Vec<String> {
        set.definitions().into_iter().map(|d| d.name).collect()
    }

    #[tokio::test]
    async fn providers_add_their_tools_and_a_broken_one_adds_none() {
        let docs = Fake::new("docs", Some(vec![("lookup", true), ("edit", false)]));
        let broken = Fake::new("broken", None);
        let registry = ToolRegistry::default().with_provider(docs.clone()).with_provider(broken.clone());
        let set = registry.tool_set(None).await;
        let all = names(&set);
        assert_eq!(all[..5], ["read_file", "write_file", "list_dir", "search_files", "run_command"]);
        assert_eq!(all[5..], ["docs.lookup", "docs.edit"]);
        assert_eq!(broken.asked.load(Ordering::SeqCst), 1);
        let cx = ToolContext { work_dir: ".".into() };
        assert_eq!(set.call(&cx, "docs.lookup", r#"{"q": 1}"#).await.unwrap(), r#"docs.lookup {"q":1}"#);
        assert_eq!(set.call(&cx, "broken.x", "{}").await.unwrap_err().code(), "unknown_tool");
    }

    #[tokio::test]
    async fn an_agent_list_asks_only_the_providers_it_names() {
        let docs = Fake::new("docs", Some(vec![("lookup", true), ("edit", false)]));
        let web = Fake::new("web", Some(vec![("fetch", true)]));
        let registry = ToolRegistry::default().with_provider(docs.clone()).with_provider(web.clone());
        let set = registry.tool_set(Some(&["read_file".into(), "docs.lookup".into()])).await;
        assert_eq!(names(&set), ["read_file", "docs.lookup"]);
        let set = registry.tool_set(Some(&["docs.*".into()])).await;
        assert_eq!(names(&set), ["docs.lookup", "docs.edit"]);
        assert_eq!(docs.asked.load(Ordering::SeqCst), 2);
        assert_eq!(web.asked.load(Ordering::SeqCst), 0, "no agent entry names a web tool");
        let set = registry.tool_set(Some(&[])).await;
        assert!(names(&set).is_empty());
    }

    #[tokio::test]
    async fn policies_name_a_tool_then_its_server_then_fall_back_to_its_default() {
        let docs = Fake::new("docs", Some(vec![("lookup", true), ("edit", false), ("drop", false)]));
        let registry = ToolRegistry::default()
            .with_provider(docs)
            .with_permission("docs.*", Permission::Deny)
            .with_permission("docs.edit", Permission::Allow)
            .with_permission("run_command", Permission::Allow);
        let set = registry.tool_set(None).await;
        assert_eq!(set.permission("docs.edit"), Permission::Allow, "the tool's own entry wins");
        assert_eq!(set.permission("docs.drop"), Permission::Deny, "then the server's");
        assert_eq!(set.permission("docs.lookup"), Permission::Deny);
        assert_eq!(set.permission("run_command"), Permission::Allow);
        assert_eq!(set.permission("read_file"), Permission::Allow);
        assert_eq!(set.permission("nope"), Permission::Deny);

        let registry =
            ToolRegistry::default().with_provider(Fake::new("docs", Some(vec![("lookup", true), ("edit", false)])));
        let set = registry.tool_set(None).await;
        assert_eq!(set.permission("docs.lookup"), Permission::Allow, "read-only tools default to allow");
        assert_eq!(set.permission("docs.edit"), Permission::Ask);
    }

    #[test]
    fn patterns_match_names_or_whole_servers() {
        assert!(tool_matches("read_file", "read_file"));
        assert!(tool_matches("docs.*", "docs.lookup"));
        assert!(!tool_matches("docs.*", "docsx.lookup"));
        assert!(!tool_matches("docs.*", "docs"));
        assert!(!tool_matches("docs.lookup", "docs.edit"));
    }
}
