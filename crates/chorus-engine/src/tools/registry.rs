//! The tools a session's agent loop can run: the [`Tool`] trait (built-in
//! tools here, MCP servers' tools later), the [`ToolRegistry`] with each
//! tool's [`Permission`] policy, and [`ToolError`], a failure the model is
//! told about (it becomes the call's result) rather than a server error.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::FunctionDefinition;
use super::builtin;

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

/// The tools and their policies. Cheap to clone.
#[derive(Clone)]
pub struct ToolRegistry {
    tools: Vec<Arc<dyn Tool>>,
    permissions: HashMap<String, Permission>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.tools.iter().map(|t| t.definition().name).collect();
        f.debug_struct("ToolRegistry").field("tools", &names).field("permissions", &self.permissions).finish()
    }
}

impl Default for ToolRegistry {
    /// The built-in tools with their default policies.
    fn default() -> Self {
        Self { tools: builtin::all(), permissions: HashMap::new() }
    }
}

impl ToolRegistry {
    /// A registry of `tools` with their default policies.
    pub fn new(tools: Vec<Arc<dyn Tool>>) -> Self {
        Self { tools, permissions: HashMap::new() }
    }

    /// Set a tool's policy (overriding its default).
    #[must_use]
    pub fn with_permission(mut self, name: impl Into<String>, permission: Permission) -> Self {
        self.permissions.insert(name.into(), permission);
        self
    }

    /// The tool named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.iter().find(|t| t.definition().name == name)
    }

    /// Every tool, in registration order.
    pub fn tools(&self) -> &[Arc<dyn Tool>] {
        &self.tools
    }

    /// The policy of the tool named `name` (deny for unknown names).
    pub fn permission(&self, name: &str) -> Permission {
        self.permissions
            .get(name)
            .copied()
            .or_else(|| self.get(name).map(|t| t.default_permission()))
            .unwrap_or(Permission::Deny)
    }

    /// Definitions of the tools named in `names` (all tools when `None`), for a request's `tools`.
    pub fn definitions(&self, names: Option<&[String]>) -> Vec<FunctionDefinition> {
        self.tools
            .iter()
            .map(|t| t.definition())
            .filter(|d| names.is_none_or(|names| names.contains(&d.name)))
            .collect()
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
