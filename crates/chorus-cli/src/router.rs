//! `[router]` of `chorus.toml` over the shipped defaults (`router_default.toml`: the
//! categories `general`, `code`, `math`, `translation` and `image`, with TBot's category
//! names as aliases, rules, keywords and example utterances), into the engine's
//! [`RouterConfig`].
//!
//! ```toml
//! [router]
//! embedding_model = "minilm"   # default: the first registered model that only embeds
//! threshold = 0.30             # lowest semantic score that decides
//! margin = 0.03                # how far the best must lead the second
//! llm_model = "gemma"          # optional: a small LLM for what stays undecided
//!
//! [[router.categories]]
//! name = "code"                # a shipped category: the fields given replace its own
//! model = "qwen-coder"
//!
//! [[router.categories]]
//! name = "sql"                 # a new one, tried after the shipped ones
//! model = "sqlcoder"
//! keywords = ["SELECT", "JOIN"]
//! examples = ["write a query that lists the customers of last month"]
//! ```

use anyhow::{Context, Result};
use chorus_engine::{CategoryConfig, RouterConfig};
use serde::Deserialize;

/// The shipped defaults.
const DEFAULTS: &str = include_str!("router_default.toml");

/// `[router]`, or the defaults file: every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouterSection {
    id: Option<String>,
    default_category: Option<String>,
    embedding_model: Option<String>,
    threshold: Option<f32>,
    margin: Option<f32>,
    top_k: Option<usize>,
    llm_model: Option<String>,
    #[serde(default)]
    categories: Vec<CategorySection>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategorySection {
    name: String,
    aliases: Option<Vec<String>>,
    model: Option<String>,
    rules: Option<Vec<String>>,
    keywords: Option<Vec<String>>,
    examples: Option<Vec<String>>,
}

impl CategorySection {
    /// Put the fields this section gives over `c`'s.
    fn apply(self, c: &mut CategoryConfig) {
        if let Some(v) = self.aliases {
            c.aliases = v;
        }
        if self.model.is_some() {
            c.model = self.model;
        }
        if let Some(v) = self.rules {
            c.rules = v;
        }
        if let Some(v) = self.keywords {
            c.keywords = v;
        }
        if let Some(v) = self.examples {
            c.examples = v;
        }
    }
}

impl RouterSection {
    fn apply(self, config: &mut RouterConfig) {
        if let Some(v) = self.id {
            config.id = v;
        }
        if let Some(v) = self.default_category {
            config.default_category = v;
        }
        if self.embedding_model.is_some() {
            config.embedding_model = self.embedding_model;
        }
        if let Some(v) = self.threshold {
            config.threshold = v;
        }
        if let Some(v) = self.margin {
            config.margin = v;
        }
        if let Some(v) = self.top_k {
            config.top_k = v;
        }
        if self.llm_model.is_some() {
            config.llm_model = self.llm_model;
        }
        for section in self.categories {
            match config.categories.iter_mut().find(|c| c.name == section.name) {
                Some(c) => section.apply(c),
                None => {
                    let mut c = CategoryConfig { name: section.name.clone(), ..CategoryConfig::default() };
                    section.apply(&mut c);
                    config.categories.push(c);
                }
            }
        }
    }
}

/// The shipped defaults with `section` (the config file's `[router]`) over them.
///
/// # Errors
/// When the shipped defaults do not parse (a build defect, caught by the tests).
pub(crate) fn config(section: Option<&RouterSection>) -> Result<RouterConfig> {
    let defaults: RouterSection = toml::from_str(DEFAULTS).context("the shipped router defaults are not valid")?;
    let mut config = RouterConfig::default();
    defaults.apply(&mut config);
    if let Some(section) = section {
        section.clone().apply(&mut config);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_have_five_categories_with_examples_and_tbot_aliases() {
        let c = config(None).expect("defaults");
        let names: Vec<&str> = c.categories.iter().map(|c| c.name.as_str()).collect();
        for name in ["general", "code", "math", "translation", "image"] {
            assert!(names.contains(&name), "{names:?}");
        }
        for cat in &c.categories {
            assert!(cat.examples.len() >= 20, "{} has {} examples", cat.name, cat.examples.len());
        }
        let code = c.categories.iter().find(|c| c.name == "code").expect("code");
        assert!(code.aliases.iter().any(|a| a == "code_generation"));
        assert_eq!(c.default_category, "general");
    }

    #[test]
    fn a_section_replaces_the_fields_it_gives_and_adds_categories() {
        let section: RouterSection = toml::from_str(
            r#"
            threshold = 0.5
            [[categories]]
            name = "code"
            model = "qwen-coder"
            [[categories]]
            name = "sql"
            keywords = ["SELECT"]
            "#,
        )
        .expect("section");
        let c = config(Some(&section)).expect("config");
        assert_eq!(c.threshold, 0.5);
        let code = c.categories.iter().find(|c| c.name == "code").expect("code");
        assert_eq!(code.model.as_deref(), Some("qwen-coder"));
        assert!(code.examples.len() >= 20, "the shipped examples stay");
        assert_eq!(c.categories.last().map(|c| c.name.as_str()), Some("sql"));
    }
}
