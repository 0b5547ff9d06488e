//! The plan's only source of randomness: SplitMix64 and Fisher–Yates, written out here.
//!
//! The sample order is a contract that outlives any one build of tokenlake: a cursor saved today
//! must resume to the same bytes after an upgrade. General-purpose RNG crates reserve the right
//! to change their algorithms and their range sampling between releases, so the few lines that
//! decide the order live here and are pinned by golden values in the tests below.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny state, passes BigCrush, and every seed is usable.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// A uniform integer in `0..bound` (Lemire's multiply-and-reject: unbiased, one multiply in
    /// the common case). `bound` must be positive.
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0);
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }
}

/// The SplitMix64 finaliser; also used to derive independent seeds.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derives the seed of one shuffle from the recipe seed and what the shuffle is for, so that
/// every (component, epoch, purpose) gets an independent stream.
pub fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(mix64(seed ^ 0x746F_6B65_6E6C_616B), |acc, &p| {
            mix64(acc ^ mix64(p.wrapping_add(0x9E37_79B9_7F4A_7C15)))
        })
}

/// The identity permutation of `0..n`, shuffled in place by Fisher–Yates with `seed`. Positions
/// are `u64` (plan format 2): a component may hold more than 2³² documents; the values are those
/// the `u32` form gave, since Fisher–Yates never looks at them.
pub fn permutation(n: u64, seed: u64) -> Vec<u64> {
    let mut out: Vec<u64> = (0..n).collect();
    shuffle(&mut out, seed);
    out
}

/// Fisher–Yates (Durstenfeld's form): walks from the end, swapping each slot with a uniform
/// earlier-or-same one.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These values are the stream order: if this test fails, every plan and cursor ever made
    /// changes meaning. Do not update the numbers; fix the code.
    #[test]
    fn golden_values_are_pinned() {
        let mut rng = SplitMix64::new(1234567);
        assert_eq!(rng.next_u64(), 6457827717110365317);
        assert_eq!(rng.next_u64(), 3203168211198807973);
        assert_eq!(derive_seed(1234, &[1, 2, 3]), GOLDEN_DERIVED);
        assert_eq!(permutation(10, 42), GOLDEN_PERMUTATION);
    }

    const GOLDEN_DERIVED: u64 = 11786061086533681501;
    const GOLDEN_PERMUTATION: [u64; 10] = [8, 3, 6, 5, 4, 0, 9, 2, 1, 7];

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(7);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let v = rng.below(5);
            assert!(v < 5);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn permutation_is_a_permutation() {
        for n in [0u64, 1, 2, 17, 1000] {
            let mut p = permutation(n, 99);
            p.sort_unstable();
            assert_eq!(p, (0..n).collect::<Vec<_>>());
        }
    }
}
