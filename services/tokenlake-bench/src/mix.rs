//! What a proxy run of `tokenlake mix design` costs: planning its recipe in full (the plan
//! index, which grows with the selection) against identifying it (opening the shared token
//! cache and hashing the recipe: what the design does for every run after the first), over
//! synthetic token caches of several sizes, in the same run.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokenlake_plan::{
    Progress, Recipe, Result, SplitMix64, TokenCache, open_or_build, plan_dir_name, plan_id,
};

use crate::plan::{recipe_weighted, synthetic_cache};

/// A proxy recipe over the benchmark's three components: a short budget of `tokens`, the
/// stage's weights drawn around 0.7 / 0.2 / 0.1, seeded by the run.
fn proxy(run: u64, tokens: u64) -> Recipe {
    let mut rng = SplitMix64::new(run);
    let mut w =
        [0.7, 0.2, 0.1].map(|b| b * (0.5 + (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64));
    let total: f64 = w.iter().sum();
    w.iter_mut().for_each(|x| *x /= total);
    recipe_weighted(tokens, w)
}

#[derive(Debug, Clone, Serialize)]
pub struct MixDesignFigures {
    pub docs: u64,
    pub runs: u64,
    /// Tokens each proxy trains on.
    pub proxy_tokens: u64,
    /// Mean time to build one proxy's plan in full.
    pub plan_each: Duration,
    /// Mean plan index bytes one proxy's plan writes.
    pub plan_index_bytes_each: u64,
    /// Mean time to identify one proxy: open the token cache, hash the recipe.
    pub identify_each: Duration,
}

/// Plans and identifies `runs` proxies of `proxy_tokens` tokens over `docs` synthetic
/// documents in `dir` (which should be empty); checks that both give every proxy the same id.
pub fn bench_mix_design(
    dir: &Path,
    docs: u64,
    runs: u64,
    proxy_tokens: u64,
) -> Result<MixDesignFigures> {
    let progress = Progress::default();
    let cache = synthetic_cache(&dir.join("tokens"), docs, false)?;
    let recipes: Vec<Recipe> = (0..runs).map(|r| proxy(r, proxy_tokens)).collect();
    let started = Instant::now();
    let mut index_bytes = 0;
    let mut planned = Vec::new();
    for recipe in &recipes {
        let (plan, _) = open_or_build(recipe, cache.clone(), dir, &progress)?;
        index_bytes += plan.index_bytes();
        planned.push(plan.id());
    }
    let plan_each = started.elapsed() / runs as u32;
    let started = Instant::now();
    let mut identified = Vec::new();
    for recipe in &recipes {
        let opened = TokenCache::open(cache.dir())?;
        identified.push(plan_id(recipe, &opened));
    }
    let identify_each = started.elapsed() / runs as u32;
    assert_eq!(
        planned.iter().map(plan_dir_name).collect::<Vec<_>>(),
        identified.iter().map(plan_dir_name).collect::<Vec<_>>(),
        "identifying a proxy must give the id its plan gets"
    );
    Ok(MixDesignFigures {
        docs,
        runs,
        proxy_tokens,
        plan_each,
        plan_index_bytes_each: index_bytes / runs,
        identify_each,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Identified and planned, every proxy gets one id (the bench asserts it), and each
    /// plan writes an index that grows with the documents.
    #[test]
    fn identifying_a_proxy_gives_the_id_its_plan_gets() {
        let small = tempfile::tempdir().unwrap();
        let large = tempfile::tempdir().unwrap();
        let a = bench_mix_design(small.path(), 10_000, 3, 1 << 20).unwrap();
        let b = bench_mix_design(large.path(), 40_000, 3, 1 << 20).unwrap();
        assert!(
            b.plan_index_bytes_each > 3 * a.plan_index_bytes_each,
            "{a:?} {b:?}"
        );
    }
}
