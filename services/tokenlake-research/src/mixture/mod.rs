//! Mixture design: choosing a stage's component weights from small proxy runs, as RegMix and
//! "Data Mixing Laws" do, with the repetition a finite corpus imposes.
//!
//! 1. [`design`](design_by): N weight vectors from a seeded Dirichlet around the base weights,
//!    or a space-filling selection of such draws.
//! 2. [`fit`]: how a run's loss depends on its weights, by one of three laws: the data mixing
//!    law `L(r) = c + exp(Σ tⱼ rⱼ)` (Ye et al., 2024; its scale is absorbed into `t`, since
//!    `Σ rⱼ = 1`); RegMix's linear regression `L(r) = Σ βⱼ rⱼ`; or Ziya2's data-centric
//!    scaling law `L = D^(−α) + E`, `D = Σⱼ Vⱼ (A·CHⱼ + B·RAⱼ + C·SIMⱼ) + F`, where `Vⱼ` are
//!    the tokens of component j and CH, RA, SIM its measured attributes: six parameters
//!    whatever the number of components, and the only one of the three that knows tokens.
//!    Each with k-fold cross-validated error, and the weight range the design covered.
//! 3. [`propose`]: the weights that minimise predicted loss within the bounds the design
//!    covered, the caller's share bounds and an epoch cap (each component's unique tokens are
//!    known from the plan, and the tokens other stages take of it), with Muennighoff et al.'s
//!    effective tokens for repeated data: `U` unique tokens seen for `E` epochs are worth
//!    `U (1 + R* (1 − e^{−(E−1)/R*}))`, `R* = 15.4`, so the law is evaluated at what the
//!    model effectively sees.

mod design;
mod files;
mod propose;
mod solve;
#[cfg(test)]
mod tests;

pub use design::{Design, design, design_by};
pub use files::{read_design, read_runs};
pub use propose::{Constraints, Proposal, effective_tokens, propose};

use serde::{Deserialize, Serialize};

use crate::scaling_law::{Fit, Observation};

/// Muennighoff et al.'s fitted decay of repeated tokens' value, in epochs.
pub const REPEAT_DECAY_EPOCHS: f64 = 15.4;

/// The law a fit uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Law {
    /// `L = c + exp(Σ tⱼ rⱼ)`.
    DataMixing,
    /// `L = Σ βⱼ rⱼ`.
    Regmix,
    /// `L = D^(−α) + E`, `D = Σⱼ Vⱼ (A·CHⱼ + B·RAⱼ + C·SIMⱼ) + F`.
    Ziya2,
}

impl std::str::FromStr for Law {
    type Err = String;
    fn from_str(s: &str) -> Result<Law, String> {
        match s {
            "data-mixing" => Ok(Law::DataMixing),
            "regmix" => Ok(Law::Regmix),
            "ziya2" => Ok(Law::Ziya2),
            other => Err(format!(
                "{other:?} is not a law (data-mixing, regmix or ziya2)"
            )),
        }
    }
}

/// Measured proxy runs: what a fit reads.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    pub components: Vec<String>,
    /// Each run's shares of the components (summing to one).
    pub weights: Vec<Vec<f64>>,
    pub losses: Vec<f64>,
    /// Tokens each run trained on; Ziya2's law needs them, the others ignore them (empty:
    /// not known).
    pub tokens: Vec<f64>,
    /// Each component's (CH, RA, SIM) in [0, 1]; Ziya2's law needs them.
    pub attributes: Option<Vec<[f64; 3]>>,
}

impl Runs {
    fn attributes(&self) -> &[[f64; 3]] {
        self.attributes.as_deref().unwrap_or(&[])
    }
}

/// A fitted law, with how well it predicts runs it did not see and the weights it saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MixFit {
    pub law: Law,
    pub components: Vec<String>,
    /// data-mixing: `[c, t₁ … t_K]`; regmix: `[β₁ … β_K]`; ziya2: `[α, A, B, C, E, F]`.
    pub params: Vec<f64>,
    /// Root-mean-square error of the fit on its own runs.
    pub rmse: f64,
    /// Mean relative error predicting held-out runs (k-fold cross-validation).
    pub cv_relative_error: f64,
    /// The lowest and highest weight each component had in the design.
    pub covered: Vec<(f64, f64)>,
    /// The fewest and most tokens a run trained on, where the runs said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<(f64, f64)>,
    /// Ziya2: each component's (CH, RA, SIM) the law was fitted with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<[f64; 3]>,
    pub runs: usize,
}

impl MixFit {
    /// The loss predicted for a run that trains on `v[j]` tokens of component j.
    pub fn predict_tokens(&self, v: &[f64]) -> f64 {
        predict(self.law, &self.params, &self.attributes, v)
    }

    /// The loss predicted for shares `r` of `tokens` tokens.
    pub fn predict_at(&self, r: &[f64], tokens: f64) -> f64 {
        let v: Vec<f64> = r.iter().map(|r| r * tokens).collect();
        self.predict_tokens(&v)
    }

    /// The loss predicted for shares `r` at the proxy runs' scale (the geometric mean of the
    /// tokens they trained on).
    pub fn predict(&self, r: &[f64]) -> f64 {
        self.predict_at(r, self.proxy_tokens())
    }

    pub fn proxy_tokens(&self) -> f64 {
        self.tokens.map_or(1.0, |(lo, hi)| (lo * hi).sqrt())
    }
}

/// The loss `law` with parameters `p` predicts for `v[j]` tokens of component j: the data
/// mixing and RegMix laws see only the shares `v / Σv`; Ziya2's sees the tokens themselves.
fn predict(law: Law, p: &[f64], attributes: &[[f64; 3]], v: &[f64]) -> f64 {
    let total: f64 = v.iter().sum();
    let share = v.iter().map(|v| v / total);
    match law {
        Law::DataMixing => p[0] + share.zip(&p[1..]).map(|(r, t)| r * t).sum::<f64>().exp(),
        Law::Regmix => share.zip(p).map(|(r, b)| r * b).sum(),
        Law::Ziya2 => {
            // The run's attributes are its mixture's token-weighted means: D's sum over
            // components is V·(A·CH + B·RA + C·SIM) of the mixture.
            let mix =
                |a: usize| v.iter().zip(attributes).map(|(v, x)| v * x[a]).sum::<f64>() / total;
            let run = Observation {
                ch: mix(0),
                ra: mix(1),
                sim: mix(2),
                tokens: total,
                loss: f64::NAN,
            };
            let law = Fit {
                alpha: p[0],
                a: p[1],
                b: p[2],
                c: p[3],
                e: p[4],
                f: p[5],
            };
            if total > 0.0 && law.data(&run) > 0.0 {
                law.predict(&run)
            } else {
                f64::INFINITY
            }
        }
    }
}

/// Observed against predicted loss of each run as an SVG scatter plot.
pub fn plot_svg(fit: &MixFit, runs: &Runs) -> String {
    let points: Vec<(f64, f64)> = runs
        .weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let tokens = runs.tokens.get(i).copied().unwrap_or(fit.proxy_tokens());
            (runs.losses[i], fit.predict_at(w, tokens))
        })
        .collect();
    tokenlake_curate::svg::scatter(
        "Proxy runs: observed and predicted loss",
        &points,
        "observed loss",
        "predicted loss",
    )
}

/// Why a fit cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum MixError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid<T>(message: String) -> Result<T, MixError> {
    Err(MixError::Invalid(message))
}

/// Checks what `law` needs of `runs`.
fn check(law: Law, runs: &Runs) -> Result<(), MixError> {
    let k = runs.components.len();
    let n = runs.weights.len();
    if n != runs.losses.len() {
        return invalid(format!("{n} weight rows but {} losses", runs.losses.len()));
    }
    let needed = params_of(law, k) + 1;
    if n < needed {
        return invalid(format!(
            "{n} runs cannot fit the {law:?} law over {k} components: it needs at least {needed}"
        ));
    }
    for (i, w) in runs.weights.iter().enumerate() {
        let sum: f64 = w.iter().sum();
        if w.len() != k || (sum - 1.0).abs() > 1e-3 || w.iter().any(|x| !(0.0..=1.0).contains(x)) {
            return invalid(format!(
                "run {} has weights {w:?}: {k} shares in [0, 1] summing to 1 are needed",
                i + 1
            ));
        }
    }
    if runs.losses.iter().any(|l| !l.is_finite() || *l <= 0.0) {
        return invalid("every loss must be a positive number".into());
    }
    if !runs.tokens.is_empty() {
        if runs.tokens.len() != n {
            return invalid(format!("{n} runs but {} token counts", runs.tokens.len()));
        }
        if let Some(i) = runs.tokens.iter().position(|t| !t.is_finite() || *t <= 0.0) {
            return invalid(format!(
                "run {} trained on {} tokens: a positive number is needed",
                i + 1,
                runs.tokens[i]
            ));
        }
    }
    if law == Law::Ziya2 {
        if runs.tokens.is_empty() {
            return invalid("the ziya2 law needs the tokens each run trained on".into());
        }
        let Some(attrs) = &runs.attributes else {
            return invalid(
                "the ziya2 law needs each component's CH, RA and SIM (mix design's design.json)"
                    .into(),
            );
        };
        if attrs.len() != k {
            return invalid(format!(
                "{k} components but {} with attributes",
                attrs.len()
            ));
        }
        for (name, a) in runs.components.iter().zip(attrs) {
            if a.iter().any(|x| !(0.0..=1.0).contains(x)) {
                return invalid(format!(
                    "component {name:?} has attributes {a:?}: CH, RA and SIM lie in [0, 1]"
                ));
            }
        }
    }
    Ok(())
}

/// Fits `law` to `runs`.
pub fn fit(law: Law, runs: &Runs) -> Result<MixFit, MixError> {
    check(law, runs)?;
    let k = runs.components.len();
    let n = runs.weights.len();
    let attributes = match law {
        Law::Ziya2 => runs.attributes().to_vec(),
        _ => Vec::new(),
    };
    let tokens_of = |i: usize| runs.tokens.get(i).copied().unwrap_or(1.0);
    let error = |p: &[f64], i: usize| {
        let v: Vec<f64> = runs.weights[i].iter().map(|r| r * tokens_of(i)).collect();
        predict(law, p, &attributes, &v) - runs.losses[i]
    };
    let all: Vec<usize> = (0..n).collect();
    let params = solve::solve(law, runs, &all);
    let rmse = (all.iter().map(|&i| error(&params, i).powi(2)).sum::<f64>() / n as f64).sqrt();
    if !rmse.is_finite() {
        return invalid(format!(
            "the {law:?} law found no parameters that predict every run (each start gave an \
             infinite or undefined loss)"
        ));
    }
    // k-fold cross-validation (5 folds, or leave-one-out below 5 runs).
    let folds = n.min(5);
    let mut rel = 0.0;
    for f in 0..folds {
        let train: Vec<usize> = (0..n).filter(|i| i % folds != f).collect();
        let p = solve::solve(law, runs, &train);
        for i in (0..n).filter(|i| i % folds == f) {
            rel += (error(&p, i) / runs.losses[i]).abs();
        }
    }
    let covered = (0..k)
        .map(|j| {
            let col = runs.weights.iter().map(|w| w[j]);
            (
                col.clone().fold(f64::INFINITY, f64::min),
                col.fold(f64::NEG_INFINITY, f64::max),
            )
        })
        .collect();
    let tokens = (!runs.tokens.is_empty()).then(|| {
        let t = runs.tokens.iter().copied();
        (
            t.clone().fold(f64::INFINITY, f64::min),
            t.fold(f64::NEG_INFINITY, f64::max),
        )
    });
    Ok(MixFit {
        law,
        components: runs.components.clone(),
        params,
        rmse,
        cv_relative_error: rel / n as f64,
        covered,
        tokens,
        attributes,
        runs: n,
    })
}

fn params_of(law: Law, k: usize) -> usize {
    match law {
        Law::DataMixing => k + 1,
        Law::Regmix => k,
        Law::Ziya2 => 6,
    }
}
