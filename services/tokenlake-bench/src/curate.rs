//! Stage-by-stage throughput of curation, for `tokenlake bench curate`: every per-document
//! stage on one thread (documents per second per core), de-duplication's index, and the
//! per-document stages on every core.

use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use tokenlake_curate::config::Pipeline;
use tokenlake_curate::dedup::Deduplicator;
use tokenlake_curate::labeler::{Labeler, StageSeconds};

#[derive(Debug, Clone, Serialize)]
pub struct CurateStages {
    pub docs: u64,
    pub bytes: u64,
    /// Seconds on one thread, per stage.
    pub one_core: StageSeconds,
    /// Seconds on one thread to add every fingerprint to the de-duplication index.
    pub dedup_index_secs: f64,
    /// Wall seconds of the per-document stages on every core (rayon), and the threads used.
    pub all_cores_secs: f64,
    pub threads: usize,
}

impl CurateStages {
    /// Documents per second per core of the whole per-document pipeline plus the index.
    pub fn pipeline_per_core(&self) -> f64 {
        let s = &self.one_core;
        let total = s.preprocess
            + s.language
            + s.perplexity
            + s.rules
            + s.fingerprint
            + self.dedup_index_secs;
        self.docs as f64 / total.max(1e-9)
    }
}

pub fn measure(texts: &[String], pipeline: &Pipeline) -> CurateStages {
    let mut labeler = Labeler::new(pipeline);
    let mut prints = Vec::with_capacity(texts.len());
    for t in texts {
        let (_, f) = labeler.label(None, None, t, true);
        prints.extend(f);
    }
    let one_core = labeler.seconds.clone();
    let started = Instant::now();
    let mut dedup = Deduplicator::default();
    for f in &prints {
        dedup.add(f);
    }
    let _ = dedup.labels();
    let dedup_index_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let flags: u64 = texts
        .par_iter()
        .map_init(
            || Labeler::new(pipeline),
            |l, t| l.label(None, None, t, true).0.rule_flags & 1,
        )
        .sum();
    std::hint::black_box(flags);
    CurateStages {
        docs: texts.len() as u64,
        bytes: texts.iter().map(|t| t.len() as u64).sum(),
        one_core,
        dedup_index_secs,
        all_cores_secs: started.elapsed().as_secs_f64(),
        threads: rayon::current_num_threads(),
    }
}
