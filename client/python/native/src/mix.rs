//! Mixture design from Python (`tokenlake.mix`): the statistics of `tokenlake mix`, from
//! `tokenlake_research::mixture`, on weights and losses a notebook already holds.

use pyo3::prelude::*;
use tokenlake_research::mixture::{Constraints, Law, MixFit, design, fit, propose};

use crate::NativeError;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(mix_design, m)?)?;
    m.add_function(wrap_pyfunction!(mix_fit, m)?)?;
    m.add_function(wrap_pyfunction!(mix_propose, m)?)?;
    Ok(())
}

fn invalid(message: String) -> PyErr {
    NativeError::new_err(("InvalidArgument", message))
}

/// `runs` weight vectors from a seeded Dirichlet around `base`.
#[pyfunction]
fn mix_design(
    base: Vec<f64>,
    runs: usize,
    concentration: f64,
    seed: u64,
) -> PyResult<Vec<Vec<f64>>> {
    if base.len() < 2 || base.iter().any(|w| !w.is_finite() || *w <= 0.0) {
        return Err(invalid("base needs two or more positive weights".into()));
    }
    if !(concentration.is_finite() && concentration > 0.0) {
        return Err(invalid("concentration must be a positive number".into()));
    }
    Ok(design(&base, runs, concentration, seed))
}

/// The fit of `law` ("data-mixing" or "regmix") as JSON (what `tokenlake mix fit --json`
/// prints).
#[pyfunction]
fn mix_fit(
    law: &str,
    components: Vec<String>,
    weights: Vec<Vec<f64>>,
    losses: Vec<f64>,
) -> PyResult<String> {
    let law: Law = law.parse().map_err(invalid)?;
    let f = fit(law, &components, &weights, &losses).map_err(|e| invalid(e.to_string()))?;
    serde_json::to_string(&f).map_err(|e| invalid(e.to_string()))
}

/// The proposal for the fit `fit_json` under the constraints, as JSON.
#[pyfunction]
#[pyo3(signature = (fit_json, tokens, unique_tokens, max_epochs=4.0, min_share=0.0, max_share=1.0))]
fn mix_propose(
    fit_json: &str,
    tokens: f64,
    unique_tokens: Vec<Option<f64>>,
    max_epochs: f64,
    min_share: f64,
    max_share: f64,
) -> PyResult<String> {
    let f: MixFit = serde_json::from_str(fit_json).map_err(|e| invalid(format!("the fit: {e}")))?;
    let c = Constraints {
        tokens,
        unique_tokens,
        max_epochs,
        min_share,
        max_share,
    };
    let p = propose(&f, &c).map_err(|e| invalid(e.to_string()))?;
    serde_json::to_string(&p).map_err(|e| invalid(e.to_string()))
}
