//! The curation pipeline file (`ingest --pipeline`, `curate --pipeline`): which stages run and
//! with what settings. Every key is optional; a missing file section means the defaults (the
//! published thresholds, no perplexity models). Unknown keys are errors, so a typo never
//! silently falls back to a default.
//!
//! ```toml
//! [preprocess]
//! remove_emoji = true
//!
//! [perplexity]
//! models = { en = "lm/en.arpa", zh = "lm/zh.arpa" }  # relative to this file
//! tiers = [0.3, 0.6]        # high: best 30 % within a language, medium: next 30 %
//!
//! [rules]
//! gopher_min_words = 30
//! toxic_words = ["lists/toxic-en.txt"]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::lm::{LmError, NgramModel};
use crate::preprocess::PreprocessOptions;
use crate::rules::{RuleSettings, ToxicWords};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading pipeline file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pipeline file {path}: {message}")]
    Parse { path: String, message: String },
    #[error(
        "pipeline file {path}: perplexity.tiers must be two increasing fractions in (0, 1), got {tiers:?}"
    )]
    Tiers { path: String, tiers: [f64; 2] },
    #[error("pipeline file {path}: perplexity model for {lang:?}: {source}")]
    Model {
        path: String,
        lang: String,
        #[source]
        source: LmError,
    },
    #[error("pipeline file {path}: toxic word list {list}: {source}")]
    ToxicList {
        path: String,
        list: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    pub preprocess: PreprocessOptions,
    pub perplexity: PerplexityConfig,
    pub rules: RuleSettings,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerplexityConfig {
    /// Language code → ARPA model file.
    pub models: BTreeMap<String, PathBuf>,
    /// Percentile cut points of `quality_tier` within a language, lowest perplexity first.
    pub tiers: [f64; 2],
}

impl Default for PerplexityConfig {
    fn default() -> Self {
        PerplexityConfig {
            models: BTreeMap::new(),
            tiers: [0.3, 0.6],
        }
    }
}

impl PipelineConfig {
    /// Reads a pipeline file; relative paths in it are resolved against its directory.
    pub fn load(path: &Path) -> Result<PipelineConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut config: PipelineConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for model in config.perplexity.models.values_mut() {
            if model.is_relative() {
                *model = base.join(&*model);
            }
        }
        for list in &mut config.rules.toxic_words {
            if list.is_relative() {
                *list = base.join(&*list);
            }
        }
        let [a, b] = config.perplexity.tiers;
        if !(0.0 < a && a < b && b < 1.0) {
            return Err(ConfigError::Tiers {
                path: shown,
                tiers: config.perplexity.tiers,
            });
        }
        Ok(config)
    }

    /// A short fingerprint of the settings that decide per-document labels, recorded with each
    /// curation so that a later run knows whether stored labels can be reused.
    pub fn fingerprint(&self) -> String {
        let mut text = toml::to_string(self).unwrap_or_default();
        // Model and list contents matter, not just their paths.
        for path in self
            .perplexity
            .models
            .values()
            .chain(&self.rules.toxic_words)
        {
            let metadata = std::fs::metadata(path).ok();
            let size = metadata.as_ref().map_or(0, |m| m.len());
            let modified = metadata
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            text.push_str(&format!("\n{}:{size}:{modified}", path.display()));
        }
        format!("{:016x}", xxh3_64(text.as_bytes()))
    }
}

/// The commit property in which a curation records the rule settings it ran with (TOML), so
/// that whoever reads its labels later (the explorer) shows the thresholds that decided them.
pub const RULES_PROPERTY: &str = "tokenlake.rules";

/// [`RULES_PROPERTY`] for `rules`, to add to a curation's commit.
pub fn rules_property(rules: &RuleSettings) -> (String, String) {
    (
        RULES_PROPERTY.to_string(),
        toml::to_string(rules).unwrap_or_default(),
    )
}

/// The rule settings behind the labels of `version`: those the latest curation at or before
/// it recorded, with that curation's version; None where no curation recorded them (curated
/// before they were recorded, or never).
pub fn recorded_rules<'a>(
    commits: impl IntoIterator<Item = (u64, &'a tokenlake_lake::CommitProperties)>,
    version: u64,
) -> Option<(u64, RuleSettings)> {
    commits
        .into_iter()
        .filter(|(v, p)| *v <= version && p.contains_key("tokenlake.pipeline"))
        .max_by_key(|(v, _)| *v)
        .and_then(|(v, p)| {
            let rules = toml::from_str(p.get(RULES_PROPERTY)?).ok()?;
            Some((v, rules))
        })
}

/// A pipeline ready to label documents: the config with its models and word lists loaded.
#[derive(Clone)]
pub struct Pipeline {
    pub config: PipelineConfig,
    pub models: BTreeMap<String, Arc<NgramModel>>,
    pub toxic: ToxicWords,
    pub fingerprint: String,
}

impl Pipeline {
    pub fn load(config: PipelineConfig, source: &str) -> Result<Pipeline, ConfigError> {
        let mut models = BTreeMap::new();
        for (lang, path) in &config.perplexity.models {
            let file = std::fs::File::open(path).map_err(|e| ConfigError::Model {
                path: source.to_string(),
                lang: lang.clone(),
                source: LmError::Io {
                    path: path.display().to_string(),
                    source: e,
                },
            })?;
            let model =
                NgramModel::read_arpa(std::io::BufReader::new(file), &path.display().to_string())
                    .map_err(|e| ConfigError::Model {
                    path: source.to_string(),
                    lang: lang.clone(),
                    source: e,
                })?;
            tracing::info!(lang, model = %path.display(), order = model.order(), "perplexity model loaded");
            models.insert(lang.clone(), Arc::new(model));
        }
        let mut toxic = ToxicWords::default();
        for list in &config.rules.toxic_words {
            let text = std::fs::read_to_string(list).map_err(|e| ConfigError::ToxicList {
                path: source.to_string(),
                list: list.display().to_string(),
                source: e,
            })?;
            toxic.add_list(&text);
        }
        let fingerprint = config.fingerprint();
        Ok(Pipeline {
            config,
            models,
            toxic,
            fingerprint,
        })
    }

    /// The default pipeline: published thresholds, no perplexity models.
    pub fn default_pipeline() -> Pipeline {
        Pipeline::load(PipelineConfig::default(), "<defaults>").expect("the defaults load")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_curation_at_or_before_a_version_decides_its_thresholds() {
        let strict = RuleSettings {
            gopher_min_words: 120.0,
            ..RuleSettings::default()
        };
        let curated = |rules: Option<&RuleSettings>| {
            let mut p = tokenlake_lake::CommitProperties::new();
            p.insert("tokenlake.pipeline".into(), "f".into());
            if let Some(rules) = rules {
                let (k, v) = rules_property(rules);
                p.insert(k, v);
            }
            p
        };
        let ingest = tokenlake_lake::CommitProperties::new();
        let (old, new) = (curated(None), curated(Some(&strict)));
        let commits = [
            (1, &ingest),
            (2, &old),
            (3, &ingest),
            (4, &new),
            (5, &ingest),
        ];
        assert_eq!(recorded_rules(commits, 1), None);
        // Curated before rules were recorded: unknown, not the next curation's.
        assert_eq!(recorded_rules(commits, 3), None);
        assert_eq!(recorded_rules(commits, 5), Some((4, strict.clone())));
        assert_eq!(
            recorded_rules(commits, 4).unwrap().1.gopher_min_words,
            120.0
        );
    }

    fn repo(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }

    #[test]
    fn the_reference_pipeline_file_is_the_defaults() {
        let config = PipelineConfig::load(&repo("deploy/pipelines/curation.toml")).unwrap();
        assert_eq!(config, PipelineConfig::default());
    }

    #[test]
    fn bad_pipeline_files_say_what_is_wrong_and_where() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, "[rules]\ngopher_min_wordz = 3\n").unwrap();
        let err = PipelineConfig::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("p.toml") && err.contains("gopher_min_wordz"),
            "{err}"
        );
        std::fs::write(&file, "[perplexity]\ntiers = [0.6, 0.3]\n").unwrap();
        let err = PipelineConfig::load(&file).unwrap_err().to_string();
        assert!(err.contains("tiers"), "{err}");
        std::fs::write(&file, "[perplexity]\nmodels = { en = \"lm/en.arpa\" }\n").unwrap();
        let config = PipelineConfig::load(&file).unwrap();
        assert_eq!(
            config.perplexity.models["en"],
            dir.path().join("lm/en.arpa")
        );
        let err = Pipeline::load(config, "p.toml").err().unwrap().to_string();
        assert!(
            err.contains("lm/en.arpa") && err.contains("\"en\""),
            "{err}"
        );
    }

    #[test]
    fn the_schema_description_lists_every_signal_and_check() {
        let doc = std::fs::read_to_string(repo("docs/documents-table.md")).unwrap();
        for s in crate::rules::SIGNALS {
            assert!(
                doc.contains(&format!("`{}`", s.column)),
                "{} is not documented",
                s.column
            );
        }
        for (bit, c) in crate::rules::CHECKS.iter().enumerate() {
            assert!(
                doc.contains(&format!("| {bit} | `{}` |", c.name)),
                "bit {bit} {} is not documented",
                c.name
            );
        }
    }
}
