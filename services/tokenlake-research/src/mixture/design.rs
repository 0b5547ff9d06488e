//! The weights of the proxy runs: a seeded Dirichlet around the base weights (RegMix's
//! practice), or a space-filling design that keeps the Dirichlet's region but spreads the
//! runs apart, so a small design leaves no corner of that region unmeasured.

use serde::{Deserialize, Serialize};
use tokenlake_plan::SplitMix64;

/// How the runs' weights are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Design {
    /// Independent draws from a Dirichlet with the base weights as its mean.
    #[default]
    Dirichlet,
    /// Greedy maximin: from a pool of 32 Dirichlet draws per run, each run is the draw
    /// farthest (Euclidean) from the runs already chosen, starting from the draw nearest the
    /// base. The runs cover the Dirichlet's region evenly instead of clustering at its mean.
    SpaceFilling,
}

impl std::str::FromStr for Design {
    type Err = String;
    fn from_str(s: &str) -> Result<Design, String> {
        match s {
            "dirichlet" => Ok(Design::Dirichlet),
            "space-filling" => Ok(Design::SpaceFilling),
            other => Err(format!(
                "{other:?} is not a design (dirichlet or space-filling)"
            )),
        }
    }
}

/// Candidates drawn per run of a space-filling design.
const POOL_PER_RUN: usize = 32;

/// A uniform draw in (0, 1).
pub(crate) fn uniform(rng: &mut SplitMix64) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

pub(crate) fn normal(rng: &mut SplitMix64) -> f64 {
    let (u, v) = (uniform(rng), uniform(rng));
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// A Gamma(shape, 1) draw (Marsaglia and Tsang; shapes below one through the boost).
fn gamma(shape: f64, rng: &mut SplitMix64) -> f64 {
    if shape < 1.0 {
        return gamma(shape + 1.0, rng) * uniform(rng).powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        if uniform(rng).ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// `runs` weight vectors from a Dirichlet with mean `base` (normalised) and concentration
/// `concentration` (larger: closer to the base), seeded: the same seed, the same design.
pub fn design(base: &[f64], runs: usize, concentration: f64, seed: u64) -> Vec<Vec<f64>> {
    let total: f64 = base.iter().sum();
    let mut rng = SplitMix64::new(seed);
    (0..runs)
        .map(|_| {
            let draws: Vec<f64> = base
                .iter()
                .map(|w| gamma((concentration * w / total).max(1e-3), &mut rng).max(1e-12))
                .collect();
            let sum: f64 = draws.iter().sum();
            draws.iter().map(|g| g / sum).collect()
        })
        .collect()
}

/// `runs` weight vectors by `kind` (see [`Design`]), seeded.
pub fn design_by(
    kind: Design,
    base: &[f64],
    runs: usize,
    concentration: f64,
    seed: u64,
) -> Vec<Vec<f64>> {
    match kind {
        Design::Dirichlet => design(base, runs, concentration, seed),
        Design::SpaceFilling => {
            let pool = design(base, runs * POOL_PER_RUN, concentration, seed);
            maximin(&pool, base, runs)
        }
    }
}

fn distance2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// Greedy maximin selection of `runs` points of `pool`, starting from the one nearest the
/// (normalised) base: O(runs × pool × K).
fn maximin(pool: &[Vec<f64>], base: &[f64], runs: usize) -> Vec<Vec<f64>> {
    let total: f64 = base.iter().sum();
    let mean: Vec<f64> = base.iter().map(|w| w / total).collect();
    let first = (0..pool.len())
        .min_by(|&a, &b| distance2(&pool[a], &mean).total_cmp(&distance2(&pool[b], &mean)))
        .expect("a pool of at least one draw");
    let mut nearest: Vec<f64> = pool.iter().map(|p| distance2(p, &pool[first])).collect();
    let mut chosen = vec![first];
    while chosen.len() < runs.min(pool.len()) {
        // Ties go to the earlier draw, so the design depends on the seed only.
        let next = (0..pool.len())
            .max_by(|&a, &b| nearest[a].total_cmp(&nearest[b]).then(b.cmp(&a)))
            .expect("a non-empty pool");
        chosen.push(next);
        for (d, p) in nearest.iter_mut().zip(pool) {
            *d = d.min(distance2(p, &pool[next]));
        }
    }
    chosen.into_iter().map(|i| pool[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_design_is_seeded_and_around_its_base() {
        let a = design(&[0.5, 0.3, 0.2], 200, 50.0, 9);
        assert_eq!(a, design(&[0.5, 0.3, 0.2], 200, 50.0, 9));
        assert_ne!(a, design(&[0.5, 0.3, 0.2], 200, 50.0, 10));
        for j in 0..3 {
            let mean: f64 = a.iter().map(|r| r[j]).sum::<f64>() / 200.0;
            assert!((mean - [0.5, 0.3, 0.2][j]).abs() < 0.03, "{j}: {mean}");
        }
        assert!(
            a.iter()
                .all(|r| (r.iter().sum::<f64>() - 1.0).abs() < 1e-12)
        );
    }

    fn closest_pair(runs: &[Vec<f64>]) -> f64 {
        let mut best = f64::INFINITY;
        for (i, a) in runs.iter().enumerate() {
            for b in &runs[i + 1..] {
                best = best.min(distance2(a, b).sqrt());
            }
        }
        best
    }

    /// A space-filling design of the same size keeps its runs further apart than independent
    /// draws (on every seed tried) and covers at least the same range of each weight, while
    /// staying a seeded, valid design around the base.
    #[test]
    fn a_space_filling_design_spreads_its_runs() {
        let base = [0.4, 0.3, 0.2, 0.1];
        for seed in 0..5 {
            let plain = design_by(Design::Dirichlet, &base, 16, 10.0, seed);
            let spread = design_by(Design::SpaceFilling, &base, 16, 10.0, seed);
            assert_eq!(
                spread,
                design_by(Design::SpaceFilling, &base, 16, 10.0, seed)
            );
            assert_eq!(spread.len(), 16);
            assert!(
                closest_pair(&spread) > 1.5 * closest_pair(&plain),
                "seed {seed}: {} against {}",
                closest_pair(&spread),
                closest_pair(&plain)
            );
            for j in 0..4 {
                let range = |d: &[Vec<f64>]| {
                    let col = d.iter().map(|r| r[j]);
                    col.clone().fold(f64::MIN, f64::max) - col.fold(f64::MAX, f64::min)
                };
                assert!(range(&spread) >= range(&plain), "seed {seed}, weight {j}");
            }
            assert!(
                spread
                    .iter()
                    .all(|r| (r.iter().sum::<f64>() - 1.0).abs() < 1e-12)
            );
        }
        assert_eq!("space-filling".parse::<Design>(), Ok(Design::SpaceFilling));
        assert!("sobol".parse::<Design>().unwrap_err().contains("dirichlet"));
    }
}
