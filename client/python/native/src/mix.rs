//! Mixture design from Python (`tokenlake.mix`): the statistics of `tokenlake mix`, from
//! `tokenlake_research::mixture`, on weights and losses a notebook already holds.

use pyo3::prelude::*;
use tokenlake_research::mixture::{
    Constraints, Design, Law, MixFit, Runs, design_by, fit, propose, read_design, read_runs,
};

use crate::NativeError;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mix_design, m)?)?;
    m.add_function(wrap_pyfunction!(mix_fit, m)?)?;
    m.add_function(wrap_pyfunction!(mix_propose, m)?)?;
    m.add_function(wrap_pyfunction!(mix_read_runs, m)?)?;
    Ok(())
}

fn invalid(message: String) -> PyErr {
    NativeError::new_err(("InvalidArgument", message))
}

/// `runs` weight vectors around `base`: a seeded Dirichlet, or a space-filling selection.
#[pyfunction]
#[pyo3(signature = (base, runs, concentration, seed, kind="dirichlet"))]
fn mix_design(
    base: Vec<f64>,
    runs: usize,
    concentration: f64,
    seed: u64,
    kind: &str,
) -> PyResult<Vec<Vec<f64>>> {
    let kind: Design = kind.parse().map_err(invalid)?;
    if base.len() < 2 || base.iter().any(|w| !w.is_finite() || *w <= 0.0) {
        return Err(invalid("base needs two or more positive weights".into()));
    }
    if !(concentration.is_finite() && concentration > 0.0) {
        return Err(invalid("concentration must be a positive number".into()));
    }
    Ok(design_by(kind, &base, runs, concentration, seed))
}

/// The fit of `law` ("data-mixing", "regmix" or "ziya2") as JSON (what `tokenlake mix fit
/// --json` prints); Ziya2's law needs each run's tokens and each component's (CH, RA, SIM).
#[pyfunction]
#[pyo3(signature = (law, components, weights, losses, tokens=None, attributes=None))]
fn mix_fit(
    law: &str,
    components: Vec<String>,
    weights: Vec<Vec<f64>>,
    losses: Vec<f64>,
    tokens: Option<Vec<f64>>,
    attributes: Option<Vec<[f64; 3]>>,
) -> PyResult<String> {
    let law: Law = law.parse().map_err(invalid)?;
    let runs = Runs {
        components,
        weights,
        losses,
        tokens: tokens.unwrap_or_default(),
        attributes,
    };
    let f = fit(law, &runs).map_err(|e| invalid(e.to_string()))?;
    serde_json::to_string(&f).map_err(|e| invalid(e.to_string()))
}

/// The proposal for the fit `fit_json` under the constraints, as JSON.
#[pyfunction]
#[pyo3(signature = (fit_json, tokens, unique_tokens, max_epochs=4.0, min_share=0.0, max_share=1.0, other_tokens=None))]
fn mix_propose(
    fit_json: &str,
    tokens: f64,
    unique_tokens: Vec<Option<f64>>,
    max_epochs: f64,
    min_share: f64,
    max_share: f64,
    other_tokens: Option<Vec<f64>>,
) -> PyResult<String> {
    let f: MixFit = serde_json::from_str(fit_json).map_err(|e| invalid(format!("the fit: {e}")))?;
    let c = Constraints {
        tokens,
        unique_tokens,
        other_tokens: other_tokens.unwrap_or_default(),
        max_epochs,
        min_share,
        max_share,
    };
    let p = propose(&f, &c).map_err(|e| invalid(e.to_string()))?;
    serde_json::to_string(&p).map_err(|e| invalid(e.to_string()))
}

/// The runs of `runs_csv` (and, with `design`, design.json's attributes and single budget) as
/// JSON: components, weights, losses, tokens, attributes (what `fit` takes).
#[pyfunction]
#[pyo3(signature = (runs_csv, design=None))]
fn mix_read_runs(runs_csv: &str, design: Option<&str>) -> PyResult<String> {
    let mut runs = read_runs(std::path::Path::new(runs_csv)).map_err(|e| invalid(e.to_string()))?;
    if let Some(design) = design {
        read_design(std::path::Path::new(design), &mut runs).map_err(|e| invalid(e.to_string()))?;
    }
    let Runs {
        components,
        weights,
        losses,
        tokens,
        attributes,
    } = runs;
    Ok(serde_json::json!({
        "components": components,
        "weights": weights,
        "losses": losses,
        "tokens": (!tokens.is_empty()).then_some(tokens),
        "attributes": attributes,
    })
    .to_string())
}
