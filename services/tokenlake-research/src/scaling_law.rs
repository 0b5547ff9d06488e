//! Ziya2's data-centric scaling law: L(D) = D^(−α) + E with D = (A·CH + B·RA + C·SIM)·V + F,
//! where CH, RA and SIM are the data's coherence, readability and similarity attributes and V
//! the tokens trained on. Fitted as the paper (and Chinchilla) did: the Huber loss (δ = 1e-3)
//! of log predicted against log observed loss, minimised by L-BFGS from every point of a grid
//! of starting values, keeping the best. F is fitted in units of 10^12 tokens so that every
//! parameter has the same order of magnitude.
//!
//! The fit is deterministic: the grid, its order and the optimiser have no randomness, and
//! ties between equally good starts go to the first.

use rayon::prelude::*;
use serde::Serialize;

pub const HUBER_DELTA: f64 = 1e-3;
/// F's unit in the optimiser.
const F_UNIT: f64 = 1e12;

/// One measured training run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub ch: f64,
    pub ra: f64,
    pub sim: f64,
    pub tokens: f64,
    pub loss: f64,
}

/// The fitted parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fit {
    pub alpha: f64,
    #[serde(rename = "A")]
    pub a: f64,
    #[serde(rename = "B")]
    pub b: f64,
    #[serde(rename = "C")]
    pub c: f64,
    #[serde(rename = "E")]
    pub e: f64,
    #[serde(rename = "F")]
    pub f: f64,
}

impl Fit {
    fn from_params(p: &[f64; 6]) -> Fit {
        Fit {
            alpha: p[0],
            a: p[1],
            b: p[2],
            c: p[3],
            e: p[4],
            f: p[5] * F_UNIT,
        }
    }

    /// The effective data size D of an observation.
    pub fn data(&self, o: &Observation) -> f64 {
        (self.a * o.ch + self.b * o.ra + self.c * o.sim) * o.tokens + self.f
    }

    pub fn predict(&self, o: &Observation) -> f64 {
        self.data(o).powf(-self.alpha) + self.e
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FitError {
    #[error("{0} observations are too few to fit six parameters; measure at least 7 runs")]
    TooFew(usize),
    #[error("observation {row}: {reason}")]
    Bad { row: usize, reason: String },
    #[error("no starting point of the grid gives a finite loss for these observations")]
    NoStart,
}

/// The result of a fit: the parameters, the objective, and each observation's residual.
#[derive(Debug, Clone, Serialize)]
pub struct FitReport {
    #[serde(flatten)]
    pub fit: Fit,
    /// Sum of Huber losses of the log residuals at the optimum.
    pub objective: f64,
    /// log(predicted) − log(observed), per observation.
    pub residuals: Vec<f64>,
    pub starts: usize,
}

fn huber(r: f64) -> (f64, f64) {
    if r.abs() <= HUBER_DELTA {
        (0.5 * r * r, r)
    } else {
        (
            HUBER_DELTA * (r.abs() - 0.5 * HUBER_DELTA),
            HUBER_DELTA * r.signum(),
        )
    }
}

/// Objective and gradient at `p`; infinite where a prediction is not positive.
fn objective(p: &[f64; 6], obs: &[Observation]) -> (f64, [f64; 6]) {
    let fit = Fit::from_params(p);
    let mut value = 0.0;
    let mut grad = [0.0; 6];
    for o in obs {
        let d = fit.data(o);
        if d.is_nan() || d <= 0.0 {
            return (f64::INFINITY, grad);
        }
        let dpow = d.powf(-fit.alpha);
        let pred = dpow + fit.e;
        if pred.is_nan() || pred <= 0.0 || !pred.is_finite() {
            return (f64::INFINITY, grad);
        }
        let (h, dh) = huber(pred.ln() - o.loss.ln());
        value += h;
        let scale = dh / pred;
        // ∂pred/∂α = −ln(D)·D^−α; ∂pred/∂D = −α·D^(−α−1); ∂pred/∂E = 1.
        let dd = -fit.alpha * dpow / d;
        grad[0] += scale * (-d.ln() * dpow);
        grad[1] += scale * dd * o.ch * o.tokens;
        grad[2] += scale * dd * o.ra * o.tokens;
        grad[3] += scale * dd * o.sim * o.tokens;
        grad[4] += scale;
        grad[5] += scale * dd * F_UNIT;
    }
    (value, grad)
}

fn dot(a: &[f64; 6], b: &[f64; 6]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// L-BFGS (memory 8) with a backtracking Armijo line search, from `start`.
fn lbfgs(start: [f64; 6], obs: &[Observation]) -> ([f64; 6], f64) {
    const MEMORY: usize = 8;
    let mut x = start;
    let (mut fx, mut g) = objective(&x, obs);
    if !fx.is_finite() {
        return (x, fx);
    }
    let mut history: Vec<([f64; 6], [f64; 6], f64)> = Vec::with_capacity(MEMORY);
    for _ in 0..500 {
        // Two-loop recursion: the search direction −H·g.
        let mut q = g;
        let mut alphas = Vec::with_capacity(history.len());
        for (s, y, rho) in history.iter().rev() {
            let a = rho * dot(s, &q);
            for i in 0..6 {
                q[i] -= a * y[i];
            }
            alphas.push(a);
        }
        if let Some((s, y, _)) = history.last() {
            let gamma = dot(s, y) / dot(y, y);
            q.iter_mut().for_each(|v| *v *= gamma);
        }
        for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
            let b = rho * dot(y, &q);
            for i in 0..6 {
                q[i] += s[i] * (a - b);
            }
        }
        let mut dir = q.map(|v| -v);
        let mut slope = dot(&g, &dir);
        if slope.is_nan() || slope >= 0.0 {
            // Not a descent direction: fall back to steepest descent and forget the history.
            history.clear();
            dir = g.map(|v| -v);
            slope = dot(&g, &dir);
        }
        if slope.abs() < 1e-20 {
            break;
        }
        let mut step = 1.0;
        let mut moved = None;
        for _ in 0..60 {
            let mut trial = x;
            for i in 0..6 {
                trial[i] += step * dir[i];
            }
            let (ft, gt) = objective(&trial, obs);
            if ft.is_finite() && ft <= fx + 1e-4 * step * slope {
                moved = Some((trial, ft, gt));
                break;
            }
            step *= 0.5;
        }
        let Some((next, fnext, gnext)) = moved else {
            break;
        };
        let s: [f64; 6] = std::array::from_fn(|i| next[i] - x[i]);
        let y: [f64; 6] = std::array::from_fn(|i| gnext[i] - g[i]);
        let sy = dot(&s, &y);
        if sy > 1e-18 {
            if history.len() == MEMORY {
                history.remove(0);
            }
            history.push((s, y, 1.0 / sy));
        }
        let improvement = fx - fnext;
        x = next;
        fx = fnext;
        g = gnext;
        if improvement.abs() < 1e-16 * fx.abs().max(1e-30) || g.iter().all(|v| v.abs() < 1e-14) {
            break;
        }
    }
    (x, fx)
}

/// The grid of starting points (Ziya2's): α ∈ {0, .67, 1.33, 2}; A, B, C ∈ {0, 0.29, …, 2};
/// E ∈ {0, .67, 1.33, 2}; F ∈ {1, 1.67, 2.33, 3}·10^12.
pub fn grid() -> Vec<[f64; 6]> {
    let four = |lo: f64, hi: f64| (0..4).map(move |i| lo + (hi - lo) * i as f64 / 3.0);
    let eight: Vec<f64> = (0..8).map(|i| 2.0 * i as f64 / 7.0).collect();
    let mut out = Vec::new();
    for alpha in four(0.0, 2.0) {
        for &a in &eight {
            for &b in &eight {
                for &c in &eight {
                    for e in four(0.0, 2.0) {
                        for f in four(1.0, 3.0) {
                            out.push([alpha, a, b, c, e, f]);
                        }
                    }
                }
            }
        }
    }
    out
}

pub fn fit(obs: &[Observation]) -> Result<FitReport, FitError> {
    fit_from(obs, &grid())
}

/// Fits from the given starting points (the full grid in [`fit`]).
pub fn fit_from(obs: &[Observation], starts: &[[f64; 6]]) -> Result<FitReport, FitError> {
    if obs.len() < 7 {
        return Err(FitError::TooFew(obs.len()));
    }
    for (i, o) in obs.iter().enumerate() {
        let bad = |reason: &str| FitError::Bad {
            row: i + 1,
            reason: reason.to_string(),
        };
        if ![o.ch, o.ra, o.sim, o.tokens, o.loss]
            .iter()
            .all(|v| v.is_finite())
        {
            return Err(bad("every value must be a finite number"));
        }
        if o.loss <= 0.0 {
            return Err(bad("loss must be positive"));
        }
        if o.tokens <= 0.0 {
            return Err(bad("tokens must be positive"));
        }
    }
    // Every start in parallel; the best objective wins, the earliest start on a tie.
    let results: Vec<([f64; 6], f64)> = starts.par_iter().map(|s| lbfgs(*s, obs)).collect();
    let (best, value) = results
        .iter()
        .filter(|(_, v)| v.is_finite())
        .fold(None, |best: Option<&([f64; 6], f64)>, r| match best {
            Some(b) if b.1 <= r.1 => Some(b),
            _ => Some(r),
        })
        .ok_or(FitError::NoStart)?;
    let fit = Fit::from_params(best);
    Ok(FitReport {
        fit,
        objective: *value,
        residuals: obs
            .iter()
            .map(|o| fit.predict(o).ln() - o.loss.ln())
            .collect(),
        starts: starts.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Observations from known parameters, with multiplicative noise from a fixed sequence.
    fn synthetic(truth: Fit, noise: f64) -> Vec<Observation> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..60)
            .map(|i| {
                let mut o = Observation {
                    ch: 0.2 + 0.8 * next(),
                    ra: 0.2 + 0.8 * next(),
                    sim: 0.1 + 0.9 * next(),
                    tokens: 1e9 * 10f64.powf(1.0 + 2.0 * (i % 10) as f64 / 9.0),
                    loss: 0.0,
                };
                o.loss = truth.predict(&o) * (1.0 + noise * (2.0 * next() - 1.0));
                o
            })
            .collect()
    }

    const ZIYA2: Fit = Fit {
        alpha: 0.06,
        a: 1.66,
        b: 1.98,
        c: 0.70,
        e: 0.31,
        f: 1.24e10,
    };

    #[test]
    fn recovers_known_parameters_from_noisy_observations_deterministically() {
        let obs = synthetic(ZIYA2, 0.001);
        // A coarse grid keeps the test fast; the command uses the full one.
        let starts: Vec<[f64; 6]> = grid().into_iter().step_by(97).collect();
        let first = fit_from(&obs, &starts).unwrap();
        let again = fit_from(&obs, &starts).unwrap();
        assert_eq!(first.fit, again.fit);
        // Predictions match the truth across the range (the parameters trade off against
        // each other, so the law, not each parameter, is what the data pins down).
        for o in &obs {
            let (p, t) = (first.fit.predict(o), ZIYA2.predict(o));
            assert!((p / t - 1.0).abs() < 0.005, "{p} vs {t}");
        }
        assert!(
            (first.fit.alpha - ZIYA2.alpha).abs() < 0.02,
            "{:?}",
            first.fit
        );
        assert!((first.fit.e - ZIYA2.e).abs() < 0.05, "{:?}", first.fit);
        assert!(first.residuals.iter().all(|r| r.abs() < 0.01));
    }

    #[test]
    fn bad_observations_are_refused_with_their_row() {
        let mut obs = synthetic(ZIYA2, 0.0);
        assert_eq!(
            fit_from(&obs[..3], &grid()).unwrap_err(),
            FitError::TooFew(3)
        );
        obs[4].loss = -1.0;
        let err = fit_from(&obs, &grid()[..1]).unwrap_err();
        assert!(err.to_string().contains("observation 5"), "{err}");
    }

    #[test]
    fn gradients_match_finite_differences() {
        let obs = synthetic(ZIYA2, 0.01);
        let p = [0.3, 1.0, 1.2, 0.5, 0.2, 1.5];
        let (_, g) = objective(&p, &obs);
        for i in 0..6 {
            let h = 1e-6;
            let (mut up, mut down) = (p, p);
            up[i] += h;
            down[i] -= h;
            let numeric = (objective(&up, &obs).0 - objective(&down, &obs).0) / (2.0 * h);
            assert!(
                (numeric - g[i]).abs() <= 1e-5 * numeric.abs().max(1e-3),
                "{i}: {numeric} vs {}",
                g[i]
            );
        }
    }
}

/// Reads observations from CSV text with a header naming `ch`, `ra`, `sim`, `tokens` and
/// `loss` (any order, other columns ignored). Errors name the line.
pub fn read_csv(text: &str) -> Result<Vec<Observation>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or("the file is empty: expected a header line")?;
    let names: Vec<String> = header
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let at = |name: &str| {
        names.iter().position(|n| n == name).ok_or_else(|| {
            format!("line 1: no column {name:?} (the header needs ch, ra, sim, tokens, loss)")
        })
    };
    let columns = [at("ch")?, at("ra")?, at("sim")?, at("tokens")?, at("loss")?];
    let mut out = Vec::new();
    for (i, line) in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let mut values = [0f64; 5];
        for (v, (&c, name)) in values
            .iter_mut()
            .zip(columns.iter().zip(["ch", "ra", "sim", "tokens", "loss"]))
        {
            let field = fields
                .get(c)
                .ok_or_else(|| format!("line {}: no value for {name}", i + 1))?;
            *v = field
                .parse()
                .map_err(|_| format!("line {}: {name} {field:?} is not a number", i + 1))?;
        }
        out.push(Observation {
            ch: values[0],
            ra: values[1],
            sim: values[2],
            tokens: values[3],
            loss: values[4],
        });
    }
    Ok(out)
}

/// Observed against predicted loss as an SVG scatter plot, with the diagonal.
pub fn plot_svg(obs: &[Observation], fit: &Fit) -> String {
    let points: Vec<(f64, f64)> = obs.iter().map(|o| (o.loss, fit.predict(o))).collect();
    tokenlake_curate::svg::scatter(
        "Observed and fitted loss",
        &points,
        "observed loss",
        "fitted loss",
    )
}

#[cfg(test)]
mod csv_tests {
    use super::*;

    #[test]
    fn csv_columns_in_any_order_and_errors_with_lines() {
        let obs = read_csv(
            "loss,tokens,ch,ra,sim,run\n2.5,1e11,0.5,0.6,0.7,a\n\n2.4,2e11,0.5,0.6,0.7,b\n",
        )
        .unwrap();
        assert_eq!(obs.len(), 2);
        assert_eq!(obs[1].tokens, 2e11);
        assert!(
            read_csv("ch,ra,sim,loss\n")
                .unwrap_err()
                .contains("\"tokens\"")
        );
        assert!(
            read_csv("ch,ra,sim,tokens,loss\n1,1,1,x,2\n")
                .unwrap_err()
                .contains("line 2: tokens \"x\"")
        );
        assert!(read_csv("").unwrap_err().contains("empty"));
    }
}
