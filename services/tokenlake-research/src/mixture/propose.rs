//! The proposal: the weights of least predicted loss within what the design covered, the
//! caller's share bounds and an epoch cap, with repeated tokens discounted.

use serde::Serialize;

use super::{MixError, MixFit, REPEAT_DECAY_EPOCHS};

/// What constrains a proposal.
#[derive(Debug, Clone)]
pub struct Constraints {
    /// Tokens the stage will train on (its budget).
    pub tokens: f64,
    /// Unique tokens of each component (from the plan); None: never repeated.
    pub unique_tokens: Vec<Option<f64>>,
    /// Tokens of each component the recipe's other stages train on (from the plan; empty:
    /// none): they count towards its epochs, and the stage's tokens of it are worth what they
    /// add after them.
    pub other_tokens: Vec<f64>,
    /// No component is repeated more than this many epochs over the whole recipe.
    pub max_epochs: f64,
    pub min_share: f64,
    pub max_share: f64,
}

impl Constraints {
    fn other(&self, j: usize) -> f64 {
        self.other_tokens.get(j).copied().unwrap_or(0.0)
    }
}

/// A proposed mixture and the bounds that shaped it.
#[derive(Debug, Clone, Serialize)]
pub struct Proposal {
    pub weights: Vec<f64>,
    pub predicted_loss: f64,
    /// Epochs of each component's unique tokens over the whole recipe, this stage's at the
    /// proposed weights included.
    pub epochs: Vec<f64>,
    /// Each component's bounds: (lowest, highest, why the highest).
    pub bounds: Vec<(f64, f64, String)>,
}

/// What `seen` tokens of a component of `unique` unique tokens are worth (Muennighoff et
/// al.): all of the first epoch, then each repeat less.
fn worth(seen: f64, unique: Option<f64>) -> f64 {
    match unique {
        Some(u) if u > 0.0 && seen > u => {
            let repeats = seen / u - 1.0;
            u * (1.0 + REPEAT_DECAY_EPOCHS * (1.0 - (-repeats / REPEAT_DECAY_EPOCHS).exp()))
        }
        _ => seen,
    }
}

/// The tokens of each component the stage effectively trains on at weights `r`: what its
/// tokens add to those the other stages take, discounted for repetition.
pub fn effective_tokens(r: &[f64], c: &Constraints) -> Vec<f64> {
    r.iter()
        .zip(&c.unique_tokens)
        .enumerate()
        .map(|(j, (r, u))| {
            let other = c.other(j);
            worth(other + r * c.tokens, *u) - worth(other, *u)
        })
        .collect()
}

/// The weights that minimise `fit`'s predicted loss at the effective mixture, within the range
/// the design covered (never extrapolating), `c`'s shares and epoch cap.
pub fn propose(fit: &MixFit, c: &Constraints) -> Result<Proposal, MixError> {
    let k = fit.components.len();
    if c.unique_tokens.len() != k {
        return Err(MixError::Invalid(format!(
            "{} components have unique-token counts; the fit has {k}",
            c.unique_tokens.len()
        )));
    }
    if !c.other_tokens.is_empty() && c.other_tokens.len() != k {
        return Err(MixError::Invalid(format!(
            "{} components have other stages' token counts; the fit has {k}",
            c.other_tokens.len()
        )));
    }
    if !(c.tokens.is_finite() && c.tokens > 0.0) {
        return Err(MixError::Invalid(format!(
            "the stage trains on {} tokens: a positive number is needed",
            c.tokens
        )));
    }
    let mut bounds = Vec::with_capacity(k);
    for j in 0..k {
        let (lo_cov, hi_cov) = fit.covered[j];
        let mut hi = hi_cov;
        let mut why = format!("the design covered up to {hi_cov:.3}");
        if c.max_share < hi {
            hi = c.max_share;
            why = format!("--max {:.3}", c.max_share);
        }
        if let Some(u) = c.unique_tokens[j] {
            let other = c.other(j);
            let cap = ((c.max_epochs * u - other) / c.tokens).max(0.0);
            if cap < hi {
                hi = cap;
                why = if other > 0.0 {
                    format!(
                        "{} epochs of its {u:.0} tokens, {:.2} of them in other stages",
                        c.max_epochs,
                        other / u
                    )
                } else {
                    format!("{} epochs of its {u:.0} tokens", c.max_epochs)
                };
            }
        }
        let lo = lo_cov.max(c.min_share);
        bounds.push((lo, hi, why));
    }
    let lo_sum: f64 = bounds.iter().map(|b| b.0).sum();
    let hi_sum: f64 = bounds.iter().map(|b| b.1).sum();
    if lo_sum > 1.0 + 1e-9 || hi_sum < 1.0 - 1e-9 || bounds.iter().any(|b| b.0 > b.1) {
        let names: Vec<String> = fit
            .components
            .iter()
            .zip(&bounds)
            .map(|(n, (lo, hi, why))| format!("{n} in [{lo:.3}, {hi:.3}] ({why})"))
            .collect();
        return Err(MixError::Invalid(format!(
            "no mixture meets the bounds: {}; widen the design (more runs, lower concentration) \
             or relax --min/--max/--max-epochs",
            names.join(", ")
        )));
    }
    let lo: Vec<f64> = bounds.iter().map(|b| b.0).collect();
    let hi: Vec<f64> = bounds.iter().map(|b| b.1).collect();
    let objective = |r: &[f64]| fit.predict_tokens(&effective_tokens(r, c));
    // Projected gradient descent from several starts (the centre of the box and each corner
    // direction), numerical gradients; K is small.
    let mut starts = vec![project(&vec![1.0 / k as f64; k], &lo, &hi)];
    for j in 0..k {
        let mut v = vec![0.0; k];
        v[j] = 1.0;
        starts.push(project(&v, &lo, &hi));
    }
    let mut best: Option<(f64, Vec<f64>)> = None;
    for mut r in starts {
        let mut step = 0.1;
        let mut value = objective(&r);
        for _ in 0..2000 {
            let g: Vec<f64> = (0..k)
                .map(|j| {
                    let h = 1e-6;
                    let mut a = r.clone();
                    a[j] += h;
                    (objective(&a) - value) / h
                })
                .collect();
            let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
            let trial = project(
                &r.iter()
                    .zip(&g)
                    .map(|(r, g)| r - step * g / norm)
                    .collect::<Vec<_>>(),
                &lo,
                &hi,
            );
            let v = objective(&trial);
            if v < value {
                r = trial;
                value = v;
                step = (step * 1.2).min(1.0);
            } else {
                step *= 0.5;
                if step < 1e-10 {
                    break;
                }
            }
        }
        if best.as_ref().is_none_or(|(b, _)| value < *b) {
            best = Some((value, r));
        }
    }
    let (predicted_loss, weights) = best.expect("k + 1 starts");
    let epochs = weights
        .iter()
        .zip(&c.unique_tokens)
        .enumerate()
        .map(|(j, (r, u))| u.map_or(0.0, |u| (c.other(j) + r * c.tokens) / u))
        .collect();
    Ok(Proposal {
        weights,
        predicted_loss,
        epochs,
        bounds,
    })
}

/// The point of `{Σ r = 1, lo ≤ r ≤ hi}` nearest `v`: `rⱼ = clamp(vⱼ − λ)` for the λ that
/// makes the sum one (bisection).
fn project(v: &[f64], lo: &[f64], hi: &[f64]) -> Vec<f64> {
    let at = |l: f64| -> Vec<f64> {
        v.iter()
            .zip(lo.iter().zip(hi))
            .map(|(v, (a, b))| (v - l).clamp(*a, *b))
            .collect()
    };
    // At a every share is at its highest (their sum ≥ 1), at b at its lowest (≤ 1).
    let gaps = |bound: &[f64]| -> Vec<f64> { v.iter().zip(bound).map(|(v, x)| v - x).collect() };
    let mut a = gaps(hi).into_iter().fold(f64::INFINITY, f64::min) - 1.0;
    let mut b = gaps(lo).into_iter().fold(f64::NEG_INFINITY, f64::max) + 1.0;
    for _ in 0..200 {
        let m = 0.5 * (a + b);
        if at(m).iter().sum::<f64>() > 1.0 {
            a = m;
        } else {
            b = m;
        }
    }
    at(0.5 * (a + b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A point far outside the box (a long gradient step) still projects onto it, summing
    /// to one.
    #[test]
    fn projection_lands_in_the_box_from_anywhere() {
        let (lo, hi) = ([0.0, 0.1, 0.0], [0.5, 0.6, 0.7]);
        for v in [
            [1e9, -1e9, 3.0],
            [-5.0, -5.0, -5.0],
            [0.2, 0.3, 0.5],
            [1e12, 1e12, 0.0],
        ] {
            let r = project(&v, &lo, &hi);
            assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{v:?}: {r:?}");
            for j in 0..3 {
                assert!(
                    r[j] >= lo[j] - 1e-12 && r[j] <= hi[j] + 1e-12,
                    "{v:?}: {r:?}"
                );
            }
        }
        let inside = project(&[0.2, 0.3, 0.5], &lo, &hi);
        for (got, want) in inside.iter().zip([0.2, 0.3, 0.5]) {
            assert!((got - want).abs() < 1e-12, "{inside:?}");
        }
    }
}
