//! `ModelSource` and `HubFile`: where a model comes from, parsed from the
//! `--model` flag (`hf:OWNER/REPO/PATH/IN/REPO.gguf[@REVISION]` or a local path).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::HubError;

/// The revision used when a hub source names none.
pub const DEFAULT_REVISION: &str = "main";

/// The prefix that marks a hub source in the `--model` flag.
pub const HUB_PREFIX: &str = "hf:";

/// Where a model comes from.
///
/// Parsed from the `--model` flag: `hf:OWNER/REPO/PATH/IN/REPO.gguf`, optionally
/// followed by `@REVISION` (a branch, tag or commit hash; default `main`), is a
/// file on the hub; anything else is a local path (write `./hf:x` for a local
/// file whose name starts with `hf:`). The revision is split off at the last
/// `@`, so a file name containing `@` needs an explicit revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelSource {
    /// A GGUF file on the local file system.
    Local(PathBuf),
    /// A file in a Hugging Face hub repository.
    Hub(HubFile),
}

/// A file in a model repository on the Hugging Face hub.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HubFile {
    /// `OWNER/REPO`, e.g. `Qwen/Qwen2.5-0.5B-Instruct-GGUF`.
    pub repo: String,
    /// Path of the file inside the repository, `/`-separated, e.g.
    /// `qwen2.5-0.5b-instruct-q4_k_m.gguf`.
    pub file: String,
    /// Branch, tag or commit hash, e.g. `main`.
    pub revision: String,
}

impl ModelSource {
    /// The model used when none is given:
    /// `hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf`
    /// (about 490 MB).
    pub fn default_model() -> Self {
        ModelSource::Hub(HubFile {
            repo: "Qwen/Qwen2.5-0.5B-Instruct-GGUF".to_owned(),
            file: "qwen2.5-0.5b-instruct-q4_k_m.gguf".to_owned(),
            revision: DEFAULT_REVISION.to_owned(),
        })
    }
}

impl FromStr for ModelSource {
    type Err = HubError;

    /// Parses a `--model` value; see [`ModelSource`] for the forms. Errors with
    /// [`HubError::InvalidSource`] on an empty value or a malformed `hf:` value.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(invalid(input, "the value is empty"));
        }
        let Some(rest) = input.strip_prefix(HUB_PREFIX) else {
            return Ok(ModelSource::Local(PathBuf::from(input)));
        };
        let (path, revision) = match rest.rsplit_once('@') {
            Some((path, revision)) => (path, revision),
            None => (rest, DEFAULT_REVISION),
        };
        let mut parts = path.splitn(3, '/');
        let (Some(owner), Some(name), Some(file)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid(input, "expected hf:OWNER/REPO/FILE.gguf[@REVISION]"));
        };
        let hub = HubFile { repo: format!("{owner}/{name}"), file: file.to_owned(), revision: revision.to_owned() };
        hub.validate().map_err(|reason| invalid(input, reason))?;
        Ok(ModelSource::Hub(hub))
    }
}

impl fmt::Display for ModelSource {
    /// A local path as given; a hub file as `hf:OWNER/REPO/FILE`, with
    /// `@REVISION` when the revision is not `main` (so it parses back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSource::Local(path) => write!(f, "{}", path.display()),
            ModelSource::Hub(hub) => hub.fmt(f),
        }
    }
}

impl fmt::Display for HubFile {
    /// `hf:OWNER/REPO/FILE`, with `@REVISION` when the revision is not `main`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{HUB_PREFIX}{}/{}", self.repo, self.file)?;
        if self.revision != DEFAULT_REVISION {
            write!(f, "@{}", self.revision)?;
        }
        Ok(())
    }
}

impl HubFile {
    /// Checks that the parts are usable in a URL and as cache paths: the repo
    /// is two names of `[A-Za-z0-9._-]`; file and revision are `/`-separated
    /// segments, none empty, `.` or `..`, without `\` or control characters.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let mut repo_parts = self.repo.split('/');
        let (Some(owner), Some(name), None) = (repo_parts.next(), repo_parts.next(), repo_parts.next()) else {
            return Err(format!("repository `{}` is not OWNER/REPO", self.repo));
        };
        for part in [owner, name] {
            if !is_safe_name(part) {
                return Err(format!(
                    "repository `{}`: owner and name must be non-empty and use only letters, digits, `.`, `_` and `-`",
                    self.repo
                ));
            }
        }
        check_segments("file path", &self.file)?;
        check_segments("revision", &self.revision)?;
        Ok(())
    }
}

/// A name usable as one path component: non-empty, not `.` or `..`, only
/// ASCII letters, digits, `.`, `_` and `-`.
pub(crate) fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn check_segments(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if value.contains('\\') || value.chars().any(char::is_control) {
        return Err(format!("the {what} `{value}` contains `\\` or control characters"));
    }
    if value.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return Err(format!("the {what} `{value}` has an empty, `.` or `..` segment"));
    }
    Ok(())
}

fn invalid(input: &str, reason: impl Into<String>) -> HubError {
    HubError::InvalidSource { input: input.to_owned(), reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(repo: &str, file: &str, revision: &str) -> ModelSource {
        ModelSource::Hub(HubFile { repo: repo.into(), file: file.into(), revision: revision.into() })
    }

    fn parse(input: &str) -> Result<ModelSource, HubError> {
        input.parse()
    }

    #[test]
    fn hub_file_with_default_revision() {
        let parsed = parse("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf").ok();
        assert_eq!(parsed, Some(ModelSource::default_model()));
    }

    #[test]
    fn hub_file_in_subdirectory_with_revision() {
        let parsed = parse("hf:owner/repo/sub/dir/model.Q4_K_M.gguf@v1.2").ok();
        assert_eq!(parsed, Some(hub("owner/repo", "sub/dir/model.Q4_K_M.gguf", "v1.2")));
    }

    #[test]
    fn revision_is_split_at_last_at_sign_and_may_contain_slashes() {
        assert_eq!(parse("hf:o/r/a@b.gguf@refs/pr/1").ok(), Some(hub("o/r", "a@b.gguf", "refs/pr/1")));
    }

    #[test]
    fn anything_else_is_a_local_path() {
        for input in ["model.gguf", "/models/x.gguf", "./hf:odd.gguf", "C:\\models\\x.gguf", "hf/o/r/f.gguf"] {
            assert_eq!(parse(input).ok(), Some(ModelSource::Local(PathBuf::from(input))), "{input}");
        }
    }

    #[test]
    fn malformed_hub_values_are_rejected() {
        for input in [
            "",
            "hf:",
            "hf:owner",
            "hf:owner/repo",
            "hf:owner/repo/",
            "hf:/repo/file.gguf",
            "hf:owner/repo/file.gguf@",
            "hf:owner/repo/../escape.gguf",
            "hf:owner/repo/a//b.gguf",
            "hf:ow ner/repo/file.gguf",
            "hf:owner/../file.gguf",
            "hf:owner/repo/file.gguf@../../x",
            "hf:owner/repo/a\\b.gguf",
        ] {
            match parse(input) {
                Err(HubError::InvalidSource { input: got, .. }) => assert_eq!(got, input),
                other => panic!("{input:?} parsed as {other:?}"),
            }
        }
    }

    #[test]
    fn display_round_trips() {
        for input in ["hf:o/r/f.gguf", "hf:o/r/d/f.gguf@abc", "local/model.gguf"] {
            let parsed = parse(input).ok();
            assert_eq!(parsed.map(|s| s.to_string()).as_deref(), Some(input));
        }
        assert_eq!(parse("hf:o/r/f.gguf@main").ok().map(|s| s.to_string()).as_deref(), Some("hf:o/r/f.gguf"));
    }
}
