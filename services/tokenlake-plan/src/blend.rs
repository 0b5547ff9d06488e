//! Deterministic blending of a stage's components: at every prefix of the stage each
//! component's count of samples stays within one sample of `weight × position`.
//!
//! The rule is the largest-deficit one (nginx's smooth weighted round robin, Megatron's
//! blended dataset): before each sample every component earns its weight, the one with the
//! most credit is chosen and pays the total; ties go to the earlier component. Weights are
//! turned into integers once so that the sequence is exact and the same on every machine.

/// Fixed-point scale of the weights: 2^40 keeps the rounding error of a weight below one
/// sample over 2^40 positions, and `weight × position` within `i128`.
const SCALE: f64 = (1u64 << 40) as f64;

/// The components' integer weights, proportional to the recipe's.
#[derive(Debug, Clone)]
pub struct Weights {
    units: Vec<i128>,
    total: i128,
}

impl Weights {
    /// `weights` must be finite, not negative, with a positive sum (the recipe checks this).
    pub fn new(weights: &[f64]) -> Self {
        let sum: f64 = weights.iter().sum();
        let units: Vec<i128> = weights
            .iter()
            .map(|w| (w / sum * SCALE).round() as i128)
            .collect();
        let total = units.iter().sum();
        Weights { units, total }
    }

    /// The exact share of component `c` that blending follows.
    pub fn share(&self, c: usize) -> f64 {
        self.units[c] as f64 / self.total as f64
    }

    /// The exact target count `share × position` as a fraction `numerator / total`.
    pub fn target_numerator(&self, c: usize, position: u64) -> i128 {
        self.units[c] * i128::from(position)
    }

    pub fn total(&self) -> i128 {
        self.total
    }
}

/// Produces the component of each position of a stage, in order.
pub struct Blender {
    weights: Weights,
    credit: Vec<i128>,
}

impl Blender {
    pub fn new(weights: Weights) -> Self {
        let credit = vec![0; weights.units.len()];
        Blender { weights, credit }
    }

    /// The component of the next position.
    #[inline]
    pub fn next_component(&mut self) -> usize {
        let mut best = 0;
        for c in 0..self.credit.len() {
            self.credit[c] += self.weights.units[c];
            if self.credit[c] > self.credit[best] {
                best = c;
            }
        }
        self.credit[best] -= self.weights.total;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_weights_within_one_sample() {
        let weights = Weights::new(&[0.7, 0.2, 0.1]);
        let mut blender = Blender::new(weights.clone());
        let mut counts = [0i128; 3];
        for t in 1..=10_000u64 {
            counts[blender.next_component()] += 1;
            for (c, &n) in counts.iter().enumerate() {
                let deviation = n * weights.total() - weights.target_numerator(c, t);
                assert!(deviation.abs() < weights.total(), "component {c} at {t}");
            }
        }
    }

    #[test]
    fn zero_weights_are_never_chosen() {
        let mut blender = Blender::new(Weights::new(&[0.0, 1.0, 0.0]));
        assert!((0..100).all(|_| blender.next_component() == 1));
    }
}
