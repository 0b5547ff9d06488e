//! Fitting each law's parameters to proxy runs: RegMix's by linear least squares, the data
//! mixing law's and Ziya2's by Levenberg–Marquardt from starts that a linearisation gives.

use super::{Law, Runs};

/// Least squares of `law` over the runs `rows` of `runs`.
pub(super) fn solve(law: Law, runs: &Runs, rows: &[usize]) -> Vec<f64> {
    let w: Vec<Vec<f64>> = rows.iter().map(|&i| runs.weights[i].clone()).collect();
    let l: Vec<f64> = rows.iter().map(|&i| runs.losses[i]).collect();
    match law {
        Law::Regmix => least_squares(&w, &l, 1e-9),
        Law::DataMixing => {
            let min = l.iter().copied().fold(f64::INFINITY, f64::min);
            let mut best: Option<(f64, Vec<f64>)> = None;
            for frac in [0.0, 0.5, 0.8, 0.9, 0.95] {
                let c = min * frac;
                // With c fixed, log(L − c) is linear in r: a start for the joint fit.
                let y: Vec<f64> = l.iter().map(|l| (l - c).max(1e-9).ln()).collect();
                let t = least_squares(&w, &y, 1e-9);
                let mut p = vec![c];
                p.extend(t);
                // ∂L/∂c = 1, ∂L/∂tⱼ = rⱼ e^{Σ t r}.
                let model = |p: &[f64], i: usize| {
                    let e = w[i]
                        .iter()
                        .zip(&p[1..])
                        .map(|(r, t)| r * t)
                        .sum::<f64>()
                        .exp();
                    let mut row = vec![1.0];
                    row.extend(w[i].iter().map(|r| r * e));
                    (p[0] + e, row)
                };
                let p = levenberg_marquardt(p, &l, &model);
                let sse = sum_of_squares(&p, &l, &model);
                if best.as_ref().is_none_or(|(b, _)| sse < *b) {
                    best = Some((sse, p));
                }
            }
            best.expect("five starts").1
        }
        Law::Ziya2 => ziya2(runs, rows),
    }
}

/// The Ziya2 law over runs, by least squares like the other laws. Tokens are in units of the
/// runs' mean (so every parameter is of order one while fitting) and converted back after.
/// Starts: for each α and E of a small grid, the D each run's loss implies,
/// `Dᵢ = (Lᵢ − E)^(−1/α)`, is linear in (A, B, C, F), so a linear fit gives them; then
/// Levenberg–Marquardt moves all six together, and the best end point wins.
fn ziya2(runs: &Runs, rows: &[usize]) -> Vec<f64> {
    let unit = rows.iter().map(|&i| runs.tokens[i]).sum::<f64>() / rows.len() as f64;
    // Each run's V·CH, V·RA and V·SIM of its mixture, V in units.
    let x: Vec<[f64; 3]> = rows
        .iter()
        .map(|&i| {
            let v = runs.tokens[i] / unit;
            std::array::from_fn(|a| {
                v * runs.weights[i]
                    .iter()
                    .zip(runs.attributes())
                    .map(|(r, attr)| r * attr[a])
                    .sum::<f64>()
            })
        })
        .collect();
    let l: Vec<f64> = rows.iter().map(|&i| runs.losses[i]).collect();
    // p = [α, A, B, C, E, F]: pred = D^−α + E, D = A·x₀ + B·x₁ + C·x₂ + F.
    let model = |p: &[f64], i: usize| -> (f64, Vec<f64>) {
        let d = p[1] * x[i][0] + p[2] * x[i][1] + p[3] * x[i][2] + p[5];
        if d.is_nan() || d <= 0.0 {
            return (f64::INFINITY, vec![0.0; 6]);
        }
        let pow = d.powf(-p[0]);
        let dd = -p[0] * pow / d; // ∂pred/∂D
        (
            pow + p[4],
            vec![
                -d.ln() * pow,
                dd * x[i][0],
                dd * x[i][1],
                dd * x[i][2],
                1.0,
                dd,
            ],
        )
    };
    let min = l.iter().copied().fold(f64::INFINITY, f64::min);
    // The fewest and most tokens of a run, in units: the law must be defined (D > 0) for
    // every mixture there, not only at the runs measured.
    let extremes = rows.iter().fold([f64::INFINITY, 0.0f64], |[lo, hi], &i| {
        let t = runs.tokens[i] / unit;
        [lo.min(t), hi.max(t)]
    });
    let linear: Vec<Vec<f64>> = x.iter().map(|x| vec![x[0], x[1], x[2], 1.0]).collect();
    let mut best: Option<((bool, f64), Vec<f64>)> = None;
    for alpha in [0.05, 0.15, 0.4, 1.0] {
        for frac in [0.0, 0.5, 0.8, 0.9, 0.95] {
            let e = min * frac;
            let implied: Vec<f64> = l.iter().map(|l| (l - e).powf(-1.0 / alpha)).collect();
            if implied.iter().any(|d| !d.is_finite()) {
                continue;
            }
            let abcf = least_squares(&linear, &implied, 1e-9);
            let start = vec![alpha, abcf[0], abcf[1], abcf[2], e, abcf[3]];
            let p = levenberg_marquardt(start, &l, &model);
            let sse = sum_of_squares(&p, &l, &model);
            // A law defined for every mixture beats one that is not, whatever their errors.
            let rank = (!defined_everywhere(&p, runs.attributes(), &extremes), sse);
            if sse.is_finite() && best.as_ref().is_none_or(|(b, _)| rank < *b) {
                best = Some((rank, p));
            }
        }
    }
    match best {
        Some((_, p)) => vec![p[0], p[1] / unit, p[2] / unit, p[3] / unit, p[4], p[5]],
        // No start gives finite predictions: a law that predicts nothing, which `fit` refuses.
        None => vec![f64::NAN; 6],
    }
}

/// Whether D = V·(A·CH + B·RA + C·SIM) + F is positive for every mixture at both token
/// counts of `extremes`: D is linear in the shares and in V, so its vertices (each component
/// alone) at the extremes decide.
fn defined_everywhere(p: &[f64], attributes: &[[f64; 3]], extremes: &[f64; 2]) -> bool {
    attributes.iter().all(|a| {
        let q = p[1] * a[0] + p[2] * a[1] + p[3] * a[2];
        extremes.iter().all(|v| v * q + p[5] > 0.0)
    })
}

/// A model of run i's loss: its prediction at parameters p, and the prediction's gradient.
type Model<'a> = dyn Fn(&[f64], usize) -> (f64, Vec<f64>) + 'a;

fn sum_of_squares(p: &[f64], l: &[f64], model: &Model) -> f64 {
    l.iter()
        .enumerate()
        .map(|(i, y)| (model(p, i).0 - y).powi(2))
        .sum()
}

/// Levenberg–Marquardt least squares of each loss `l[i]` against `model(p, i)`, from `p`.
fn levenberg_marquardt(mut p: Vec<f64>, l: &[f64], model: &Model) -> Vec<f64> {
    let m = p.len();
    let mut lambda = 1e-3;
    let mut current = sum_of_squares(&p, l, model);
    for _ in 0..200 {
        let mut jtj = vec![vec![0.0; m]; m];
        let mut jtr = vec![0.0; m];
        for (i, y) in l.iter().enumerate() {
            let (pred, row) = model(&p, i);
            let resid = y - pred;
            for a in 0..m {
                jtr[a] += row[a] * resid;
                for b in 0..m {
                    jtj[a][b] += row[a] * row[b];
                }
            }
        }
        let mut improved = false;
        for _ in 0..10 {
            let mut a = jtj.clone();
            for (i, row) in a.iter_mut().enumerate() {
                row[i] += lambda * (jtj[i][i] + 1e-12);
            }
            let Some(step) = solve_linear(a, jtr.clone()) else {
                lambda *= 10.0;
                continue;
            };
            let trial: Vec<f64> = p.iter().zip(&step).map(|(p, s)| p + s).collect();
            let s = sum_of_squares(&trial, l, model);
            if s.is_finite() && s < current {
                p = trial;
                let gain = current - s;
                current = s;
                lambda = (lambda / 3.0).max(1e-12);
                improved = gain > 1e-15 * current.max(1e-30);
                break;
            }
            lambda *= 10.0;
        }
        if !improved {
            break;
        }
    }
    p
}

/// Ridge-regularised least squares `min |X b − y|² + ε|b|²`.
fn least_squares(x: &[Vec<f64>], y: &[f64], ridge: f64) -> Vec<f64> {
    let k = x[0].len();
    let mut a = vec![vec![0.0; k]; k];
    let mut b = vec![0.0; k];
    for (row, y) in x.iter().zip(y) {
        for i in 0..k {
            b[i] += row[i] * y;
            for j in 0..k {
                a[i][j] += row[i] * row[j];
            }
        }
    }
    for (i, row) in a.iter_mut().enumerate() {
        row[i] += ridge;
    }
    solve_linear(a, b).unwrap_or_else(|| vec![0.0; k])
}

/// Gaussian elimination with partial pivoting; None for a singular system.
fn solve_linear(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-300 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (top, rest) = a.split_at_mut(col + 1);
        let pivot_row = &top[col];
        for (offset, row) in rest.iter_mut().enumerate() {
            let f = row[col] / pivot_row[col];
            for (x, p) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *x -= f * p;
            }
            b[col + 1 + offset] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}
