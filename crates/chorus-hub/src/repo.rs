//! A repository's files, and the GGUF file of a quantization: Ollama's
//! `hf.co/OWNER/REPO[:QUANT]` names (Ollama `docs/api.md` "Pull a Model", and the hub's "Use
//! this model with Ollama" names) resolved to one `hf:OWNER/REPO/FILE.gguf`. The file list is
//! the hub's model info, `GET {endpoint}/api/models/{repo}/revision/{revision}` (its
//! `siblings[].rfilename`), as huggingface_hub's `model_info` asks for it.

use percent_encoding::utf8_percent_encode;
use reqwest::Url;
use serde::Deserialize;

use crate::error::{error_chain, transport_cause};
use crate::remote::{Clients, SEGMENT, with_token};
use crate::{DEFAULT_REVISION, HubConfig, HubError, HubFile};

/// The quantization Ollama picks when a name has no tag (or `latest`).
pub const DEFAULT_QUANT: &str = "Q4_K_M";

/// The part of the hub's model info that is read.
#[derive(Deserialize)]
struct ModelInfo {
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Deserialize)]
struct Sibling {
    rfilename: String,
}

/// An Ollama name of a hub repository: `hf.co/OWNER/REPO[:QUANT]` (also
/// `huggingface.co/…`); `None` for any other name.
pub fn parse_ollama_name(name: &str) -> Option<(String, Option<String>)> {
    let rest = name.strip_prefix("hf.co/").or_else(|| name.strip_prefix("huggingface.co/"))?;
    let (repo, tag) = match rest.rsplit_once(':') {
        Some((repo, tag)) => (repo, Some(tag.to_owned()).filter(|t| !t.is_empty() && t != "latest")),
        None => (rest, None),
    };
    let mut parts = repo.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(owner), Some(repo), None) if !owner.is_empty() && !repo.is_empty() => {
            Some((format!("{owner}/{repo}"), tag))
        }
        _ => None,
    }
}

/// The files of `repo` at `revision` (`/`-separated paths).
///
/// # Errors
/// [`HubError::NotFound`] for a repository or revision the hub does not know,
/// [`HubError::Unauthorized`] / [`HubError::Gated`] for ones it will not show,
/// [`HubError::Unreachable`] when it cannot be reached, [`HubError::OfflineNotCached`]
/// offline, [`HubError::BadMetadata`] for an answer that is not model info.
pub async fn list_files(repo: &str, revision: &str, config: &HubConfig) -> Result<Vec<String>, HubError> {
    let model = format!("hf:{repo}");
    if config.offline {
        return Err(HubError::OfflineNotCached { model });
    }
    let revision_segment = utf8_percent_encode(revision, SEGMENT).to_string();
    let text = format!("{}/api/models/{repo}/revision/{revision_segment}", config.endpoint.trim_end_matches('/'));
    let url = Url::parse(&text)
        .map_err(|e| HubError::InvalidEndpoint { endpoint: config.endpoint.clone(), cause: e.to_string() })?;
    let clients = Clients::new()?;
    let response = with_token(clients.download.get(url.clone()), config.token.as_deref())
        .send()
        .await
        .map_err(|e| HubError::Unreachable { model: model.clone(), cause: transport_cause(e) })?;
    let status = response.status();
    if !status.is_success() {
        let file = HubFile { repo: repo.to_owned(), file: String::new(), revision: revision.to_owned() };
        let error = crate::remote::status_error(&file, &url, status, response.headers(), config.token.is_some());
        return Err(match error {
            HubError::NotFound { .. } => HubError::NotFound {
                model,
                what: format!("repository {repo} at revision {revision} (set HF_TOKEN if it is private)"),
            },
            other => other,
        });
    }
    let info: ModelInfo = response.json().await.map_err(|e| HubError::BadMetadata {
        model: model.clone(),
        reason: format!("the model info is not what the hub answers: {}", error_chain(&e)),
    })?;
    Ok(info.siblings.into_iter().map(|s| s.rfilename).collect())
}

/// The GGUF file of `quant` (case-insensitive, e.g. `Q8_0`; `None`: [`DEFAULT_QUANT`], or the
/// only GGUF file when there is one) among `files`: the shortest name that contains it, split
/// files (`-00001-of-00003`) and multimodal projectors (`mmproj`) left out.
///
/// # Errors
/// A message naming the quantizations there are, when none matches.
pub fn pick_quant(files: &[String], quant: Option<&str>) -> Result<String, String> {
    let ggufs: Vec<&String> = files
        .iter()
        .filter(|f| {
            let lower = f.to_ascii_lowercase();
            lower.ends_with(".gguf") && !lower.contains("mmproj") && !lower.contains("-of-0")
        })
        .collect();
    if ggufs.is_empty() {
        return Err("the repository has no GGUF file".to_owned());
    }
    let wanted = quant.unwrap_or(DEFAULT_QUANT).to_ascii_lowercase();
    let mut matching: Vec<&String> =
        ggufs.iter().copied().filter(|f| f.to_ascii_lowercase().contains(&wanted)).collect();
    matching.sort_by_key(|f| f.len());
    match (matching.first(), quant) {
        (Some(file), _) => Ok((*file).clone()),
        (None, None) if ggufs.len() == 1 => Ok(ggufs[0].clone()),
        _ => Err(format!(
            "no GGUF file of quantization {} in the repository; it has {}",
            quant.unwrap_or(DEFAULT_QUANT),
            ggufs.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// The hub file an Ollama name `hf.co/OWNER/REPO[:QUANT]` stands for, at the default revision.
///
/// # Errors
/// As [`list_files`]; [`HubError::NotFound`] when no file matches the quantization.
pub async fn resolve_ollama_name(repo: &str, quant: Option<&str>, config: &HubConfig) -> Result<HubFile, HubError> {
    let files = list_files(repo, DEFAULT_REVISION, config).await?;
    let file = pick_quant(&files, quant).map_err(|what| HubError::NotFound { model: format!("hf:{repo}"), what })?;
    Ok(HubFile { repo: repo.to_owned(), file, revision: DEFAULT_REVISION.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_names_parse() {
        let parsed = |n: &str| parse_ollama_name(n);
        assert_eq!(parsed("hf.co/o/r:Q8_0"), Some(("o/r".to_owned(), Some("Q8_0".to_owned()))));
        assert_eq!(parsed("hf.co/o/r"), Some(("o/r".to_owned(), None)));
        assert_eq!(parsed("hf.co/o/r:latest"), Some(("o/r".to_owned(), None)));
        assert_eq!(parsed("huggingface.co/o/r:q4_k_m"), Some(("o/r".to_owned(), Some("q4_k_m".to_owned()))));
        assert_eq!(parsed("llama3:8b"), None);
        assert_eq!(parsed("hf.co/o"), None);
        assert_eq!(parsed("hf.co/o/r/x"), None);
    }

    #[test]
    fn quantizations_are_picked_by_name() {
        let files: Vec<String> = [
            "README.md",
            "m-Q4_K_M.gguf",
            "m-Q8_0.gguf",
            "m-IQ4_XS.gguf",
            "big-Q4_K_M-00001-of-00002.gguf",
            "mmproj-m-f16.gguf",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(pick_quant(&files, Some("q8_0")), Ok("m-Q8_0.gguf".to_owned()));
        assert_eq!(pick_quant(&files, None), Ok("m-Q4_K_M.gguf".to_owned()));
        let missing = pick_quant(&files, Some("Q2_K")).unwrap_err();
        assert!(missing.contains("m-Q8_0.gguf") && !missing.contains("mmproj"), "{missing}");
        let one = vec!["only-f16.gguf".to_owned()];
        assert_eq!(pick_quant(&one, None), Ok("only-f16.gguf".to_owned()));
        assert!(pick_quant(&["a.txt".to_owned()], None).is_err());
    }
}
