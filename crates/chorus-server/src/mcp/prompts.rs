//! The MCP prompts (MCP specification 2025-06-18, "Prompts"): one per configured agent, named
//! by the agent, described by its description, taking no arguments. `prompts/get` returns the
//! agent's system prompt as one message.
//!
//! MCP prompt messages are `user` or `assistant` messages (the protocol has no system role), so
//! the system prompt comes as a `user` message: a client that wants the agent's behaviour puts
//! that text where its own model takes instructions. An unknown name is invalid params
//! (`-32602`), as the specification asks.

use chorus_engine::Engine;
use rmcp::ErrorData;
use rmcp::model::{GetPromptResult, ListPromptsResult, Prompt, PromptMessage, Role};

/// `prompts/list`: the agents, the default first.
pub(super) fn list(engine: &Engine) -> ListPromptsResult {
    let prompts = engine
        .agents()
        .iter()
        .map(|agent| {
            Prompt::new(&agent.name, Some(description(&agent.description, &agent.name)), None)
                .with_title(format!("Agent {}", agent.name))
        })
        .collect();
    ListPromptsResult::with_all_items(prompts)
}

/// `prompts/get`: the agent's system prompt.
pub(super) fn get(engine: &Engine, name: &str) -> Result<GetPromptResult, ErrorData> {
    let Some(agent) = engine.agents().iter().find(|a| a.name == name) else {
        let known: Vec<&str> = engine.agents().iter().map(|a| a.name.as_str()).collect();
        return Err(ErrorData::invalid_params(
            format!("no prompt `{name}`; the prompts are the agents: {}", known.join(", ")),
            Some(serde_json::json!({ "name": name })),
        ));
    };
    Ok(GetPromptResult::new(vec![PromptMessage::new_text(Role::User, agent.system_prompt.clone())])
        .with_description(description(&agent.description, &agent.name)))
}

fn description(description: &str, name: &str) -> String {
    if description.trim().is_empty() {
        format!("The system prompt of the agent `{name}`")
    } else {
        format!("The system prompt of the agent `{name}`: {description}")
    }
}
