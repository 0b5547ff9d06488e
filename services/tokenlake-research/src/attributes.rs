//! Ziya2's data attributes of a training mixture: the token-weighted mean coherence (CH),
//! readability (RA) and similarity to downstream tasks (SIM) of each recipe component and
//! stage, the inputs of an observation of the data-centric scaling law ([`crate::scaling_law`]).
//!
//! Each attribute is a SQL expression over a document's label columns, in `[0, 1]`. The
//! defaults read what `tokenlake curate` and `tokenlake similarity` store:
//! - CH: `1 − quality_tier / 2`, the document's perplexity tier within its language (a fluent
//!   text is one a language model finds probable);
//! - RA: the share of the four published rule sets (Gopher quality and repetition, C4,
//!   FineWeb) the document passes, each a test of readable prose (word lengths, symbols,
//!   line endings, repetition);
//! - SIM: the lake's `sim_NAME` column, when there is exactly one.
//!
//! A document whose expression is null (not yet labelled) is left out of that attribute's mean.

use serde::Serialize;
use tokenlake_lake::{Lake, LakeError, VersionSpec, plan_query, query_error};
use tokenlake_plan::{Budget, Recipe};

pub const DEFAULT_CH: &str = "1.0 - CAST(quality_tier AS DOUBLE) / 2.0";
pub const DEFAULT_RA: &str = "(CAST(keep_gopher_quality AS DOUBLE) + CAST(keep_gopher_repetition AS DOUBLE) \
     + CAST(keep_c4 AS DOUBLE) + CAST(keep_fineweb AS DOUBLE)) / 4.0";

/// The SQL of each attribute.
#[derive(Debug, Clone, Serialize)]
pub struct AttributeExprs {
    pub ch: String,
    pub ra: String,
    pub sim: String,
}

impl AttributeExprs {
    /// The defaults, with SIM from the lake's one `sim_*` column (an error names the choices
    /// when there are none or several).
    pub fn defaults(lake: &Lake, sim: Option<String>) -> Result<AttributeExprs, LakeError> {
        let sim = match sim {
            Some(sim) => sim,
            None => {
                let schema = lake.arrow_schema();
                let sims: Vec<&str> = schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .filter(|n| n.starts_with("sim_"))
                    .collect();
                match sims.as_slice() {
                    [one] => one.to_string(),
                    [] => {
                        return Err(LakeError::Query {
                            message:
                                "the lake has no similarity column: run `tokenlake similarity` \
                                      against a test set first, or give --sim"
                                    .into(),
                        });
                    }
                    many => {
                        return Err(LakeError::Query {
                            message: format!(
                                "the lake has several similarity columns ({}); choose one with --sim",
                                many.join(", ")
                            ),
                        });
                    }
                }
            }
        };
        Ok(AttributeExprs {
            ch: DEFAULT_CH.into(),
            ra: DEFAULT_RA.into(),
            sim,
        })
    }
}

/// Token-weighted means of one component or stage; `None` where no document had a value.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attributes {
    pub name: String,
    /// Tokens of the documents the component selects (for a stage: the tokens it trains on).
    pub tokens: u64,
    pub ch: Option<f64>,
    pub ra: Option<f64>,
    pub sim: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttributesReport {
    pub version: u64,
    pub exprs: AttributeExprs,
    pub components: Vec<Attributes>,
    pub stages: Vec<Attributes>,
}

pub async fn attributes(
    lake: &Lake,
    recipe: &Recipe,
    version: &VersionSpec,
    exprs: &AttributeExprs,
) -> Result<AttributesReport, LakeError> {
    let version_number = lake.resolve(version).await?;
    let mut components = Vec::with_capacity(recipe.components.len());
    for component in &recipe.components {
        // Aliased, so that two attributes with the same expression (or none, NULL) still
        // make distinct columns.
        let weighted = |expr: &str, name: &str| {
            format!(
                "SUM(CASE WHEN ({expr}) IS NOT NULL THEN CAST(n_tokens AS DOUBLE) END) AS \
                 {name}_tokens, SUM(CAST(n_tokens AS DOUBLE) * ({expr})) AS {name}_sum"
            )
        };
        let sql = format!(
            "SELECT CAST(SUM(n_tokens) AS DOUBLE) AS tokens, {}, {}, {} FROM documents WHERE {}",
            weighted(&exprs.ch, "ch"),
            weighted(&exprs.ra, "ra"),
            weighted(&exprs.sim, "sim"),
            component.filter
        );
        let in_component = |e: LakeError| LakeError::Query {
            message: format!(
                "component {} of {}, at version {version_number}: {e} (label columns are in the \
                 versions committed after curation or similarity; choose one with --version \
                 or --tag)",
                component.name, recipe.path
            ),
        };
        let frame = plan_query(lake, version, &sql)
            .await
            .map_err(in_component)?;
        let batches = frame
            .collect()
            .await
            .map_err(|e| in_component(query_error(e)))?;
        let mut sums = [0.0f64; 7];
        for batch in &batches {
            for (i, sum) in sums.iter_mut().enumerate() {
                let column = arrow_array::cast::AsArray::as_primitive::<
                    arrow_array::types::Float64Type,
                >(batch.column(i));
                if batch.num_rows() > 0 && arrow_array::Array::is_valid(column, 0) {
                    *sum += column.value(0);
                }
            }
        }
        let mean = |weight: f64, total: f64| (weight > 0.0).then(|| total / weight);
        components.push(Attributes {
            name: component.name.clone(),
            tokens: sums[0] as u64,
            ch: mean(sums[1], sums[2]),
            ra: mean(sums[3], sums[4]),
            sim: mean(sums[5], sums[6]),
        });
    }
    let stages = recipe
        .stages
        .iter()
        .map(|stage| stage_attributes(recipe, stage, &components))
        .collect();
    Ok(AttributesReport {
        version: version_number,
        exprs: exprs.clone(),
        components,
        stages,
    })
}

/// A stage's attributes: its components' means weighted by the stage's token shares (a
/// recipe's weights are shares of the stage's tokens), over the components that have a value.
fn stage_attributes(
    recipe: &Recipe,
    stage: &tokenlake_plan::Stage,
    components: &[Attributes],
) -> Attributes {
    let blend = |get: fn(&Attributes) -> Option<f64>| {
        let (mut weight, mut total) = (0.0, 0.0);
        for (c, &w) in components.iter().zip(&stage.weights) {
            if let (Some(v), true) = (get(c), w > 0.0) {
                weight += w;
                total += w * v;
            }
        }
        (weight > 0.0).then(|| total / weight)
    };
    let tokens = match stage.budget {
        Budget::Tokens(t) => t,
        Budget::Samples(_) => stage.samples * recipe.seq_len,
    };
    Attributes {
        name: stage.name.clone(),
        tokens,
        ch: blend(|a| a.ch),
        ra: blend(|a| a.ra),
        sim: blend(|a| a.sim),
    }
}
