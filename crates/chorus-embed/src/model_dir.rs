//! [`ModelDir`]: what a sentence-transformers model directory says, read and checked before
//! any weight is loaded: `modules.json` (which modules, where), the Transformer module's
//! `config.json`, `sentence_bert_config.json`, `tokenizer.json` and safetensors files, and the
//! Pooling module's `config.json`.

use std::path::{Path, PathBuf};

use candle_transformers::models::bert;
use serde::Deserialize;

use crate::EmbedError;
use crate::pooling::Pooling;

/// A model directory, checked.
#[derive(Debug)]
pub(crate) struct ModelDir {
    /// The BERT config (`config.json`).
    pub(crate) bert: bert::Config,
    /// How token states become one vector.
    pub(crate) pooling: Pooling,
    /// The most tokens one input may have, special tokens included.
    pub(crate) limit: usize,
    /// Where `limit` comes from, for `ModelInfo::context_choice`.
    pub(crate) context_choice: String,
    /// `do_lower_case` of `sentence_bert_config.json`: sentence-transformers lower-cases the
    /// text itself before the tokenizer sees it.
    pub(crate) lower_case: bool,
    /// `tokenizer.json`.
    pub(crate) tokenizer: PathBuf,
    /// The safetensors files, one or the shards of an index.
    pub(crate) weights: Vec<PathBuf>,
}

/// One entry of `modules.json`.
#[derive(Deserialize)]
struct Module {
    /// Such as `sentence_transformers.models.Pooling`.
    #[serde(rename = "type")]
    kind: String,
    /// The module's folder, relative to the model directory; empty for the directory itself.
    #[serde(default)]
    path: String,
}

/// `sentence_bert_config.json`.
#[derive(Deserialize, Default)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
    #[serde(default)]
    do_lower_case: bool,
}

/// `model.safetensors.index.json` (only the part that names the shards).
#[derive(Deserialize)]
struct SafetensorsIndex {
    weight_map: std::collections::BTreeMap<String, String>,
}

impl ModelDir {
    /// Read and check the directory.
    pub(crate) fn read(dir: &Path) -> Result<Self, EmbedError> {
        let (transformer, pooling_dir) = modules(dir)?;

        let config_file = transformer.join("config.json");
        let config: serde_json::Value = read_json(&config_file, "BERT config", "the BERT model's configuration")?;
        match config.get("model_type").and_then(|t| t.as_str()) {
            Some("bert") | None => {}
            Some(other) => {
                return Err(EmbedError::UnsupportedArchitecture { file: config_file, model_type: other.to_owned() });
            }
        }
        let bert: bert::Config = serde_json::from_value(config).map_err(|e| EmbedError::Parse {
            file: config_file.clone(),
            what: "BERT config",
            message: e.to_string(),
        })?;

        let pooling_file = pooling_dir.join("config.json");
        let pooling = pooling(&pooling_file, bert.hidden_size)?;

        let st_file = transformer.join("sentence_bert_config.json");
        let st: SentenceBertConfig = if st_file.is_file() {
            read_json(&st_file, "sentence-transformers config", "")?
        } else {
            Default::default()
        };
        let (limit, context_choice) = match st.max_seq_length {
            Some(n) if n <= bert.max_position_embeddings => {
                (n, "max_seq_length in sentence_bert_config.json".to_owned())
            }
            Some(n) => (
                bert.max_position_embeddings,
                format!(
                    "max_position_embeddings in config.json (sentence_bert_config.json's max_seq_length {n} is more)"
                ),
            ),
            None => (bert.max_position_embeddings, "max_position_embeddings in config.json".to_owned()),
        };

        let tokenizer = transformer.join("tokenizer.json");
        if !tokenizer.is_file() {
            return Err(EmbedError::Missing {
                file: tokenizer,
                why: "the tokenizer in Hugging Face's tokenizers format (vocab.txt alone is not read)",
            });
        }

        Ok(Self {
            bert,
            pooling,
            limit,
            context_choice,
            lower_case: st.do_lower_case,
            tokenizer,
            weights: weights(&transformer)?,
        })
    }
}

/// The Transformer module's folder and the Pooling module's, from `modules.json`; without it,
/// the directory itself and `1_Pooling`.
fn modules(dir: &Path) -> Result<(PathBuf, PathBuf), EmbedError> {
    let file = dir.join("modules.json");
    if !file.is_file() {
        return Ok((dir.to_owned(), dir.join("1_Pooling")));
    }
    let modules: Vec<Module> = read_json(&file, "sentence-transformers module list", "")?;
    let (mut transformer, mut pooling) = (None, None);
    for m in modules {
        let folder = dir.join(&m.path);
        match m.kind.rsplit('.').next().unwrap_or_default() {
            "Transformer" if transformer.is_none() => transformer = Some(folder),
            "Pooling" if pooling.is_none() => pooling = Some(folder),
            "Normalize" => {} // Vectors are always normalised.
            _ => return Err(EmbedError::UnsupportedModule { file, module: m.kind }),
        }
    }
    match (transformer, pooling) {
        (Some(t), Some(p)) => Ok((t, p)),
        (None, _) => Err(EmbedError::Parse {
            file,
            what: "sentence-transformers module list",
            message: "it names no sentence_transformers.models.Transformer module".into(),
        }),
        (_, None) => Err(EmbedError::Parse {
            file,
            what: "sentence-transformers module list",
            message: "it names no sentence_transformers.models.Pooling module".into(),
        }),
    }
}

/// The one pooling mode `file` turns on; its `word_embedding_dimension` must be `hidden`.
fn pooling(file: &Path, hidden: usize) -> Result<Pooling, EmbedError> {
    let config: serde_json::Map<String, serde_json::Value> =
        read_json(file, "pooling config", "the pooling config (sentence-transformers' 1_Pooling/config.json)")?;
    if let Some(dim) = config.get("word_embedding_dimension").and_then(serde_json::Value::as_u64)
        && dim != hidden as u64
    {
        return Err(EmbedError::Dimension { file: file.to_owned(), pooling: dim as usize, hidden });
    }
    let on: Vec<String> = config
        .iter()
        .filter(|(k, v)| k.starts_with("pooling_mode") && v.as_bool() == Some(true))
        .map(|(k, _)| k.clone())
        .collect();
    let mut modes = Vec::new();
    for key in &on {
        match Pooling::from_key(key) {
            Some(mode) => modes.push(mode),
            None => return Err(EmbedError::UnsupportedPooling { file: file.to_owned(), mode: key.clone() }),
        }
    }
    match modes.as_slice() {
        [one] => Ok(*one),
        _ => Err(EmbedError::PoolingModes { file: file.to_owned(), found: on }),
    }
}

/// The safetensors files in `dir`: `model.safetensors`, or the shards that
/// `model.safetensors.index.json` names.
fn weights(dir: &Path) -> Result<Vec<PathBuf>, EmbedError> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index_file = dir.join("model.safetensors.index.json");
    if index_file.is_file() {
        let index: SafetensorsIndex = read_json(&index_file, "safetensors index", "")?;
        let mut shards: Vec<PathBuf> = index.weight_map.values().map(|f| dir.join(f)).collect();
        shards.sort();
        shards.dedup();
        if let Some(missing) = shards.iter().find(|s| !s.is_file()) {
            return Err(EmbedError::Missing { file: missing.clone(), why: "a shard that the safetensors index names" });
        }
        return Ok(shards);
    }
    Err(EmbedError::Missing {
        file: single,
        why: "the weights in safetensors format (pytorch_model.bin is not read; convert it to safetensors)",
    })
}

/// Parse the JSON file `file` (a `what`); `why` says what a missing file would have held
/// (empty for a file that is only read when present).
fn read_json<T: serde::de::DeserializeOwned>(
    file: &Path,
    what: &'static str,
    why: &'static str,
) -> Result<T, EmbedError> {
    let text = std::fs::read_to_string(file).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound && !why.is_empty() {
            EmbedError::Missing { file: file.to_owned(), why }
        } else {
            EmbedError::Read { file: file.to_owned(), source }
        }
    })?;
    serde_json::from_str(&text).map_err(|e| EmbedError::Parse { file: file.to_owned(), what, message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    const CONFIG: &str = r#"{"model_type": "bert", "vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1,
        "num_attention_heads": 1, "intermediate_size": 8, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "max_position_embeddings": 16, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0}"#;

    /// A directory with everything but the weights' contents (read() only checks they exist).
    fn dir_with(pooling: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "config.json", CONFIG);
        write(d.path(), "1_Pooling/config.json", pooling);
        write(d.path(), "tokenizer.json", "{}");
        write(d.path(), "model.safetensors", "");
        d
    }

    fn err(d: &tempfile::TempDir) -> String {
        ModelDir::read(d.path()).unwrap_err().to_string()
    }

    #[test]
    fn a_plain_directory_reads_with_its_defaults() {
        let d = dir_with(r#"{"word_embedding_dimension": 4, "pooling_mode_cls_token": true}"#);
        let m = ModelDir::read(d.path()).unwrap();
        assert_eq!(m.pooling, Pooling::Cls);
        assert_eq!((m.limit, m.context_choice.as_str()), (16, "max_position_embeddings in config.json"));
        write(d.path(), "sentence_bert_config.json", r#"{"max_seq_length": 8, "do_lower_case": true}"#);
        let m = ModelDir::read(d.path()).unwrap();
        assert_eq!((m.limit, m.lower_case), (8, true));
        write(d.path(), "sentence_bert_config.json", r#"{"max_seq_length": 100}"#);
        assert_eq!(ModelDir::read(d.path()).unwrap().limit, 16);
    }

    #[test]
    fn missing_files_are_named() {
        let d = dir_with(r#"{"pooling_mode_mean_tokens": true}"#);
        std::fs::remove_file(d.path().join("config.json")).unwrap();
        assert!(err(&d).contains("config.json is missing"), "{}", err(&d));
        write(d.path(), "config.json", CONFIG);
        std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
        assert!(err(&d).contains("model.safetensors is missing"), "{}", err(&d));
        write(d.path(), "model.safetensors", "");
        std::fs::remove_dir_all(d.path().join("1_Pooling")).unwrap();
        assert!(err(&d).contains("1_Pooling/config.json is missing"), "{}", err(&d));
    }

    #[test]
    fn poolings_other_than_one_of_cls_mean_max_are_refused() {
        let d = dir_with(r#"{"pooling_mode_lasttoken": true}"#);
        assert!(err(&d).contains("pooling `pooling_mode_lasttoken` is not supported"), "{}", err(&d));
        let d = dir_with(r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}"#);
        assert!(err(&d).contains("exactly one pooling mode"), "{}", err(&d));
        let d = dir_with(r#"{"pooling_mode_mean_tokens": false}"#);
        assert!(err(&d).contains("exactly one pooling mode"), "{}", err(&d));
        let d = dir_with(r#"{"word_embedding_dimension": 8, "pooling_mode_mean_tokens": true}"#);
        assert!(err(&d).contains("word_embedding_dimension is 8 but config.json has hidden_size 4"), "{}", err(&d));
    }

    #[test]
    fn modules_and_architectures_outside_bert_are_refused() {
        let d = dir_with(r#"{"pooling_mode_mean_tokens": true}"#);
        write(
            d.path(),
            "modules.json",
            r#"[{"type": "sentence_transformers.models.Transformer", "path": ""},
                {"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"},
                {"type": "sentence_transformers.models.Dense", "path": "2_Dense"}]"#,
        );
        assert!(err(&d).contains("module `sentence_transformers.models.Dense` is not supported"), "{}", err(&d));
        std::fs::remove_file(d.path().join("modules.json")).unwrap();
        write(d.path(), "config.json", &CONFIG.replace(r#""bert""#, r#""xlm-roberta""#));
        assert!(err(&d).contains("model_type `xlm-roberta` is not supported"), "{}", err(&d));
    }
}
