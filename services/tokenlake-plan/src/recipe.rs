//! Recipes: what a training run streams. Parsed from TOML into typed structs that refuse
//! unknown keys, then checked into a [`Recipe`] whose every error names the file and line.
//!
//! What a recipe cannot check alone (that filters parse, name existing columns and select
//! something; that token ids fit the vocabulary) is checked against the lake at plan time.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenlake_lake::VersionSpec;
use toml::Spanned;

use crate::error::{PlanError, Result};

/// Components per recipe: blend positions store the component as one byte.
pub const MAX_COMPONENTS: usize = 255;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeFile {
    lake: Option<String>,
    version: Option<Spanned<VersionValue>>,
    seq_len: Spanned<u64>,
    sample_len: Option<Spanned<u64>>,
    seed: u64,
    eos_token: Spanned<u32>,
    pad_token: Spanned<u32>,
    components: BTreeMap<Spanned<String>, Spanned<ComponentFile>>,
    stages: Vec<Spanned<StageFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum VersionValue {
    Number(i64),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentFile {
    filter: Spanned<String>,
    packing: Packing,
    task: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageFile {
    name: String,
    tokens: Option<Spanned<u64>>,
    samples: Option<Spanned<u64>>,
    weights: Spanned<BTreeMap<String, Spanned<Number>>>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn value(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

/// How a component's documents become samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Packing {
    /// Documents joined with EOS and cut into windows of `sample_len` tokens (Ziya2 stage 1).
    Concat,
    /// Whole documents of the same task packed into a window and padded (Ziya2 stages 2–3).
    Bin,
}

impl fmt::Display for Packing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Packing::Concat => "concat",
            Packing::Bin => "bin",
        })
    }
}

/// A checked recipe.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Where the recipe came from, for error messages.
    pub path: String,
    pub lake: Option<String>,
    pub version: VersionSpec,
    /// Tokens a model sees per sample; a stage budget in tokens counts these.
    pub seq_len: u64,
    /// Tokens per sample: `seq_len + 1` unless set, so inputs and shifted labels are both
    /// `seq_len` long.
    pub sample_len: u64,
    pub seed: u64,
    pub eos_token: u32,
    pub pad_token: u32,
    /// Sorted by name: the order of components never depends on how the file is laid out.
    pub components: Vec<Component>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    pub name: String,
    /// SQL predicate over the documents table's columns.
    pub filter: String,
    pub packing: Packing,
    /// SQL expression (usually just a column) whose value groups documents for bin packing;
    /// without it a component's documents form one group.
    pub task: Option<String>,
    /// The recipe line of `filter`, named by errors found at plan time.
    #[serde(skip)]
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    pub name: String,
    pub budget: Budget,
    /// Samples this stage streams.
    pub samples: u64,
    /// One weight per component, in component order; zero for components the stage leaves out.
    pub weights: Vec<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Budget {
    Tokens(u64),
    Samples(u64),
}

impl Recipe {
    pub fn load(path: &Path) -> Result<Recipe> {
        let text = std::fs::read_to_string(path)
            .map_err(PlanError::io(format!("reading recipe {}", path.display())))?;
        Recipe::parse(&text, &path.display().to_string())
    }

    /// Parses and checks recipe `text`; `path` only names it in errors.
    // Kept as one function: one table of the recipe after another, each checked where it is read so
    // that every error names its line.
    pub fn parse(text: &str, path: &str) -> Result<Recipe> {
        let lines = LineIndex::new(text);
        let error = |span: Option<Range<usize>>, message: String| PlanError::Recipe {
            path: path.to_string(),
            line: span.map(|s| lines.line(s.start)),
            message,
        };
        let file: RecipeFile =
            toml::from_str(text).map_err(|e| error(e.span(), e.message().to_string()))?;

        let version = match file.version {
            None => VersionSpec::Latest,
            Some(v) => {
                let span = v.span();
                match v.into_inner() {
                    VersionValue::Number(n) if n > 0 => VersionSpec::Number(n as u64),
                    VersionValue::Number(n) => {
                        return Err(error(
                            Some(span),
                            format!("version {n} is not a version number; versions start at 1"),
                        ));
                    }
                    VersionValue::Name(s) => s
                        .parse()
                        .map_err(|e| error(Some(span), format!("version {s:?}: {e}")))?,
                }
            }
        };

        let seq_len = *file.seq_len.get_ref();
        if seq_len == 0 {
            return Err(error(
                Some(file.seq_len.span()),
                "seq_len must be positive".into(),
            ));
        }
        let sample_len = match &file.sample_len {
            None => seq_len + 1,
            Some(s) if *s.get_ref() >= 2 && *s.get_ref() <= u64::from(u32::MAX) => *s.get_ref(),
            Some(s) => {
                return Err(error(
                    Some(s.span()),
                    format!(
                        "sample_len {} must be between 2 and {}",
                        s.get_ref(),
                        u32::MAX
                    ),
                ));
            }
        };
        if sample_len > u64::from(u32::MAX) {
            return Err(error(
                Some(file.seq_len.span()),
                format!("seq_len {seq_len} is too large"),
            ));
        }

        if file.components.is_empty() {
            return Err(error(
                None,
                "the recipe has no components; add [components.NAME] tables".into(),
            ));
        }
        if file.components.len() > MAX_COMPONENTS {
            return Err(error(
                None,
                format!(
                    "{} components; at most {MAX_COMPONENTS} are supported",
                    file.components.len()
                ),
            ));
        }
        let mut components = Vec::with_capacity(file.components.len());
        for (name, component) in &file.components {
            let line = lines.line(component.span().start);
            let c = component.get_ref();
            check_name(name.get_ref()).map_err(|m| {
                error(
                    Some(name.span()),
                    format!("component name {:?} {m}", name.get_ref()),
                )
            })?;
            if c.filter.get_ref().trim().is_empty() {
                return Err(error(
                    Some(c.filter.span()),
                    format!(
                        "component {:?}: the filter is empty; use \"true\" to select every document",
                        name.get_ref()
                    ),
                ));
            }
            let task = match &c.task {
                Some(t) if c.packing != Packing::Bin => {
                    return Err(error(
                        Some(t.span()),
                        format!(
                            "component {:?}: `task` groups bin packing only; it has packing = \"{}\"",
                            name.get_ref(),
                            c.packing
                        ),
                    ));
                }
                Some(t) if t.get_ref().trim().is_empty() => {
                    return Err(error(
                        Some(t.span()),
                        format!("component {:?}: `task` is empty", name.get_ref()),
                    ));
                }
                t => t.as_ref().map(|t| t.get_ref().clone()),
            };
            components.push(Component {
                name: name.get_ref().clone(),
                filter: c.filter.get_ref().clone(),
                packing: c.packing,
                task,
                line: lines.line(c.filter.span().start).max(line),
            });
        }

        if file.stages.is_empty() {
            return Err(error(
                None,
                "the recipe has no stages; add [[stages]] tables".into(),
            ));
        }
        let mut stages = Vec::with_capacity(file.stages.len());
        let mut used = vec![false; components.len()];
        for stage in &file.stages {
            let span = stage.span();
            let s = stage.get_ref();
            let at = |m: String| error(Some(span.clone()), format!("stage {:?}: {m}", s.name));
            if stages.iter().any(|st: &Stage| st.name == s.name) {
                return Err(at("another stage has this name".into()));
            }
            let (budget, samples) = match (&s.tokens, &s.samples) {
                (Some(t), None) => (Budget::Tokens(*t.get_ref()), t.get_ref().div_ceil(seq_len)),
                (None, Some(n)) => (Budget::Samples(*n.get_ref()), *n.get_ref()),
                _ => {
                    return Err(at(
                        "give exactly one budget: `tokens = …` or `samples = …`".into()
                    ));
                }
            };
            if samples == 0 {
                return Err(at("the budget is zero".into()));
            }
            let mut weights = vec![0.0; components.len()];
            for (name, weight) in s.weights.get_ref() {
                let w = weight.get_ref().value();
                let Some(i) = components.iter().position(|c| &c.name == name) else {
                    return Err(error(
                        Some(weight.span()),
                        format!(
                            "stage {:?}: weight for unknown component {name:?}; the components are {}",
                            s.name,
                            component_names(&components)
                        ),
                    ));
                };
                if !w.is_finite() || w < 0.0 {
                    return Err(error(
                        Some(weight.span()),
                        format!(
                            "stage {:?}: weight of {name:?} is {w}; weights are finite and not negative",
                            s.name
                        ),
                    ));
                }
                weights[i] = w;
                used[i] |= w > 0.0;
            }
            let total: f64 = weights.iter().sum();
            if !(total > 0.0 && total.is_finite()) {
                return Err(error(
                    Some(s.weights.span()),
                    format!(
                        "stage {:?}: weights sum to {total}; they must sum to a positive number",
                        s.name
                    ),
                ));
            }
            stages.push(Stage {
                name: s.name.clone(),
                budget,
                samples,
                weights,
            });
        }
        if let Some(i) = used.iter().position(|u| !u) {
            let c = &components[i];
            return Err(PlanError::Component {
                path: path.to_string(),
                line: c.line,
                component: c.name.clone(),
                message: "no stage gives it a positive weight; use it or remove it".into(),
            });
        }

        Ok(Recipe {
            path: path.to_string(),
            lake: file.lake,
            version,
            seq_len,
            sample_len,
            seed: file.seed,
            eos_token: *file.eos_token.get_ref(),
            pad_token: *file.pad_token.get_ref(),
            components,
            stages,
        })
    }

    /// The error for a component, naming the recipe line of its filter.
    pub fn component_error(&self, component: usize, message: impl Into<String>) -> PlanError {
        let c = &self.components[component];
        PlanError::Component {
            path: self.path.clone(),
            line: c.line,
            component: c.name.clone(),
            message: message.into(),
        }
    }

    pub fn total_samples(&self) -> u64 {
        self.stages.iter().map(|s| s.samples).sum()
    }

    /// Everything that decides the plan besides the data and the seed, in a canonical form:
    /// the lake's location and version are left out (the data fingerprint stands for them), so a
    /// copied lake plans the same.
    pub fn canonical(&self) -> String {
        #[derive(Serialize)]
        struct Canonical<'a> {
            seq_len: u64,
            sample_len: u64,
            eos_token: u32,
            pad_token: u32,
            components: &'a [Component],
            stages: &'a [Stage],
        }
        serde_json::to_string(&Canonical {
            seq_len: self.seq_len,
            sample_len: self.sample_len,
            eos_token: self.eos_token,
            pad_token: self.pad_token,
            components: &self.components,
            stages: &self.stages,
        })
        .expect("a recipe serialises")
    }
}

fn component_names(components: &[Component]) -> String {
    components
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("may hold only letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// Byte offset → 1-based line number.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
lake = "./lake"
version = "stage1"
seq_len = 4096
seed = 1234
eos_token = 2
pad_token = 0
[components.en]
filter = "lang = 'en' AND NOT is_dup"
packing = "concat"
[components.sft]
filter = "task IS NOT NULL"
packing = "bin"
task = "task"
[[stages]]
name = "stage1"
tokens = 650_000_000_000
weights = { en = 0.7, sft = 0.3 }
[[stages]]
name = "stage2"
samples = 100
weights = { sft = 1 }
"#;

    fn parse_err(text: &str) -> String {
        Recipe::parse(text, "r.toml").unwrap_err().to_string()
    }

    #[test]
    fn the_example_parses() {
        let r = Recipe::parse(EXAMPLE, "r.toml").unwrap();
        assert_eq!(r.version, VersionSpec::Tag("stage1".into()));
        assert_eq!(r.sample_len, 4097);
        assert_eq!(r.components.len(), 2);
        assert_eq!(r.components[1].task.as_deref(), Some("task"));
        assert_eq!(r.components[0].line, 9);
        assert_eq!(r.stages[0].samples, 650_000_000_000u64.div_ceil(4096));
        assert_eq!(r.stages[0].weights, vec![0.7, 0.3]);
        assert_eq!(r.stages[1].weights, vec![0.0, 1.0]);
    }

    #[test]
    fn the_canonical_form_ignores_location_version_seed_and_layout() {
        let a = Recipe::parse(EXAMPLE, "a.toml").unwrap();
        let moved = EXAMPLE
            .replace("lake = \"./lake\"", "lake = \"s3://bucket/lake\"")
            .replace("version = \"stage1\"", "version = 7")
            .replace("seed = 1234", "seed = 99");
        let b = Recipe::parse(&moved, "b.toml").unwrap();
        assert_eq!(a.canonical(), b.canonical());
        let changed = EXAMPLE.replace("0.7", "0.6");
        assert_ne!(
            a.canonical(),
            Recipe::parse(&changed, "c.toml").unwrap().canonical()
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_err(&EXAMPLE.replace(
            "packing = \"concat\"",
            "packing = \"concat\"\nshuffle = true",
        ));
        assert!(e.contains("r.toml line 11") && e.contains("shuffle"), "{e}");
        let e = parse_err(&EXAMPLE.replace("sft = 1 }", "sft = 1, math = 2 }"));
        assert!(
            e.contains("line 22") && e.contains("unknown component \"math\""),
            "{e}"
        );
        let e = parse_err(&EXAMPLE.replace("sft = 1 }", "sft = -1 }"));
        assert!(e.contains("line 22") && e.contains("not negative"), "{e}");
        let e = parse_err(&EXAMPLE.replace("sft = 1 }", "sft = 0 }"));
        assert!(e.contains("sum to 0"), "{e}");
        let e = parse_err(&EXAMPLE.replace("samples = 100", "samples = 100\ntokens = 5"));
        assert!(e.contains("exactly one budget"), "{e}");
        let e = parse_err(&EXAMPLE.replace(
            "weights = { en = 0.7, sft = 0.3 }",
            "weights = { sft = 0.3 }",
        ));
        assert!(
            e.contains("component \"en\"") && e.contains("line 9"),
            "{e}"
        );
        let e = parse_err(&EXAMPLE.replace("task = \"task\"", "task = \"task\"\n[components.x]\nfilter = \"true\"\npacking = \"concat\"\ntask = \"t\""));
        assert!(e.contains("bin packing only"), "{e}");
        let e = parse_err(&EXAMPLE.replace("seq_len = 4096", "seq_len = 0"));
        assert!(e.contains("line 4") && e.contains("seq_len"), "{e}");
        let e = parse_err(&EXAMPLE.replace("packing = \"bin\"", "packing = \"bins\""));
        assert!(e.contains("line 13"), "{e}");
    }
}
