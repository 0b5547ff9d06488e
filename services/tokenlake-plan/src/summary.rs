//! What `tokenlake plan` reports: per stage and component, documents, tokens, samples, epochs
//! and what packing cut, dropped or padded.

use serde::Serialize;

use crate::plan::Plan;
use crate::prepare::PreparedPlan;
use crate::recipe::{Packing, Recipe};

#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    pub plan_id: String,
    pub data_fingerprint: String,
    pub recipe_fingerprint: String,
    pub seed: u64,
    pub seq_len: u64,
    pub sample_len: u64,
    pub token_width: usize,
    pub samples: u64,
    /// `samples × seq_len`: the tokens a model trains on.
    pub tokens: u64,
    pub stages: Vec<StageSummary>,
    pub components: Vec<ComponentSummary>,
    pub token_cache_docs: u64,
    pub token_cache_bytes: u64,
    pub plan_index_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub name: String,
    pub first_sample: u64,
    pub samples: u64,
    pub tokens: u64,
    pub components: Vec<StageComponent>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageComponent {
    pub name: String,
    pub weight: f64,
    pub samples: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentSummary {
    pub name: String,
    pub filter: String,
    pub packing: Packing,
    pub task: Option<String>,
    pub docs: u64,
    /// Tokens of the selected documents (EOS not counted).
    pub tokens: u64,
    /// Task groups, for bin packing by task.
    pub groups: Option<usize>,
    /// Samples the plan takes from this component over all stages.
    pub samples: u64,
    /// Samples one epoch packs into (the first epoch's, for bin packing, where it varies).
    pub samples_per_epoch: u64,
    /// Epochs the plan passes through, fractional for the last one.
    pub epochs: f64,
    /// Concat: tokens of the last, partial window of each epoch, not streamed.
    pub dropped_tokens_per_epoch: u64,
    /// Bin: tokens cut from documents longer than a sample, per epoch.
    pub truncated_tokens_per_epoch: u64,
    /// Bin: PAD tokens per epoch (the first epoch's).
    pub padding_tokens_per_epoch: u64,
}

impl PlanSummary {
    pub fn new(recipe: &Recipe, plan: &Plan) -> PlanSummary {
        let m = plan.manifest();
        let data = plan.data();
        let stages = m
            .stages
            .iter()
            .zip(&recipe.stages)
            .map(|(s, r)| {
                let total: f64 = r.weights.iter().sum();
                StageSummary {
                    name: s.name.clone(),
                    first_sample: s.start,
                    samples: s.samples,
                    tokens: s.samples * m.seq_len,
                    components: m
                        .components
                        .iter()
                        .enumerate()
                        .filter(|&(c, _)| r.weights[c] > 0.0)
                        .map(|(c, comp)| StageComponent {
                            name: comp.name.clone(),
                            weight: r.weights[c] / total,
                            samples: s.counts[c],
                        })
                        .collect(),
                }
            })
            .collect();
        let components = m
            .components
            .iter()
            .zip(&recipe.components)
            .enumerate()
            .map(|(c, (ci, rc))| {
                let first = ci.epochs.first();
                let epochs = match ci.epochs.last() {
                    None => 0.0,
                    Some(last) => {
                        let in_last = ci.samples_used - last.first;
                        (ci.epochs.len() - 1) as f64 + in_last as f64 / last.samples as f64
                    }
                };
                ComponentSummary {
                    name: ci.name.clone(),
                    filter: rc.filter.clone(),
                    packing: ci.packing,
                    task: rc.task.clone(),
                    docs: ci.docs,
                    tokens: ci.tokens,
                    groups: data.components[c].groups.as_ref().map(|g| g.len()),
                    samples: ci.samples_used,
                    samples_per_epoch: first.map_or(0, |e| e.samples),
                    epochs,
                    dropped_tokens_per_epoch: first.map_or(0, |e| e.dropped_tokens),
                    truncated_tokens_per_epoch: first.map_or(0, |e| e.truncated_tokens),
                    padding_tokens_per_epoch: first.map_or(0, |e| e.padding_tokens),
                }
            })
            .collect();
        let id = plan.id();
        PlanSummary {
            plan_id: id.hex(),
            data_fingerprint: format!("{:016x}", id.data),
            recipe_fingerprint: format!("{:016x}", id.recipe),
            seed: id.seed,
            seq_len: m.seq_len,
            sample_len: m.sample_len,
            token_width: plan.token_width().bytes(),
            samples: m.total_samples,
            tokens: m.total_samples * m.seq_len,
            stages,
            components,
            token_cache_docs: data.docs,
            token_cache_bytes: plan.token_cache().map_or(0, |c| c.size_bytes()),
            plan_index_bytes: plan.index_bytes(),
        }
    }
}

/// What `tokenlake plan --json` prints (and the Python package's `Lake.plan` returns): where the
/// plan lives and how it gets its tokens, with its summary.
#[derive(Debug, Serialize)]
pub struct PlanReport<'a> {
    pub lake: &'a str,
    pub version: u64,
    pub plan_dir: String,
    /// `full` (a local token cache) or `window` (a token store read through a window).
    pub cache_mode: &'static str,
    /// The token store a window reads, in window mode.
    pub token_store: Option<String>,
    #[serde(flatten)]
    pub summary: &'a PlanSummary,
}

impl<'a> PlanReport<'a> {
    pub fn new(prepared: &'a PreparedPlan, summary: &'a PlanSummary) -> PlanReport<'a> {
        PlanReport {
            lake: &prepared.lake,
            version: prepared.version,
            plan_dir: prepared.plan_dir.display().to_string(),
            cache_mode: match prepared.store {
                Some(_) => "window",
                None => "full",
            },
            token_store: prepared.store.as_ref().map(|s| s.to_string()),
            summary,
        }
    }
}
