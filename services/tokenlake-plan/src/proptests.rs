//! Property tests of the streaming contract over random recipes and documents: the same plan
//! gives the same bytes; ranks partition the global stream for any world size; a cursor resumes
//! exactly, also with another world size; blending stays within one sample; every epoch
//! delivers each token (concat) or document (bin) exactly once; samples hold the documents'
//! real tokens where their spans say.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use proptest::prelude::*;
use tokenlake_schemas::TokenWidth;

use crate::blend::Weights;
use crate::plan::{Plan, SampleMeta, Span};
use crate::prepare::open_or_build;
use crate::recipe::{Packing, Recipe};
use crate::stream::{MicroBatch, RankSpec, RankStream};
use crate::token_cache::{ComponentSelection, TokenCache, TokenCacheBuilder};
use crate::{Cursor, PlanError};
use tokenlake_lake::Progress;

const EOS: u16 = 2;
const PAD: u16 = 0;

#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) docs: Vec<Vec<u16>>,
    pub(crate) components: Vec<ComponentCase>,
    stages: Vec<(u64, Vec<u32>)>,
    pub(crate) sample_len: u64,
    seed: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct ComponentCase {
    pub(crate) packing: Packing,
    pub(crate) members: Vec<usize>,
    tasks: Option<Vec<u8>>,
}

impl Case {
    /// One concat component over every document, one stage of `samples`.
    pub(crate) fn single_concat(docs: Vec<Vec<u16>>, sample_len: u64, samples: u64) -> Case {
        let members = (0..docs.len()).collect();
        Case {
            docs,
            components: vec![ComponentCase {
                packing: Packing::Concat,
                members,
                tasks: None,
            }],
            stages: vec![(samples, vec![1])],
            sample_len,
            seed: 7,
        }
    }
}

pub(crate) fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(prop::collection::vec(3u16..500, 0..30), 1..40),
        1usize..4,
        2u64..24,
        any::<u64>(),
    )
        .prop_flat_map(|(docs, n_components, sample_len, seed)| {
            let n = docs.len();
            let component = (
                any::<bool>(),
                prop::collection::vec(any::<bool>(), n),
                prop::option::of(prop::collection::vec(0u8..3, n)),
            )
                .prop_map(move |(bin, chosen, tasks)| {
                    let mut members: Vec<usize> = (0..n).filter(|&i| chosen[i]).collect();
                    if members.is_empty() {
                        members.push(0);
                    }
                    let tasks = if bin {
                        tasks.map(|t| members.iter().map(|&m| t[m]).collect())
                    } else {
                        None
                    };
                    ComponentCase {
                        packing: if bin { Packing::Bin } else { Packing::Concat },
                        members,
                        tasks,
                    }
                });
            let stage = (1u64..120, prop::collection::vec(0u32..5, n_components)).prop_map(
                |(samples, mut weights)| {
                    if weights.iter().all(|&w| w == 0) {
                        weights[0] = 1;
                    }
                    (samples, weights)
                },
            );
            (
                Just(docs),
                prop::collection::vec(component, n_components),
                prop::collection::vec(stage, 1..4),
                Just(sample_len),
                Just(seed),
            )
        })
        .prop_map(|(docs, components, mut stages, sample_len, seed)| {
            // every component must be used by some stage
            for c in 0..components.len() {
                if stages.iter().all(|s| s.1[c] == 0) {
                    stages[0].1[c] = 1;
                }
            }
            Case {
                docs,
                components,
                stages,
                sample_len,
                seed,
            }
        })
}

pub(crate) fn recipe_text(case: &Case) -> String {
    let mut text = format!(
        "seq_len = {}\nsample_len = {}\nseed = {}\neos_token = {EOS}\npad_token = {PAD}\n",
        case.sample_len - 1,
        case.sample_len,
        case.seed
    );
    for (c, component) in case.components.iter().enumerate() {
        text += &format!(
            "[components.c{c}]\nfilter = \"component {c}\"\npacking = \"{}\"\n",
            component.packing
        );
        if component.tasks.is_some() {
            text += "task = \"task\"\n";
        }
    }
    for (s, (samples, weights)) in case.stages.iter().enumerate() {
        let weights: Vec<String> = weights
            .iter()
            .enumerate()
            .map(|(c, w)| format!("c{c} = {w}"))
            .collect();
        text += &format!(
            "[[stages]]\nname = \"s{s}\"\nsamples = {samples}\nweights = {{ {} }}\n",
            weights.join(", ")
        );
    }
    text
}

pub(crate) fn doc_id(d: usize) -> u64 {
    crate::rng::mix64(d as u64 + 1)
}

/// Writes the case's token cache, pushing documents in `push_order`.
pub(crate) fn cache(case: &Case, dir: &Path, push_order: &[usize]) -> TokenCache {
    let mut builder = TokenCacheBuilder::new(dir, TokenWidth::U16).unwrap();
    let mut index = vec![0u64; case.docs.len()];
    for &d in push_order {
        let bytes: Vec<u8> = case.docs[d].iter().flat_map(|t| t.to_le_bytes()).collect();
        index[d] = builder.push(doc_id(d), &bytes).unwrap();
    }
    let selections = case
        .components
        .iter()
        .map(|c| ComponentSelection {
            members: c.members.iter().map(|&m| index[m]).collect(),
            groups: c
                .tasks
                .as_ref()
                .map(|t| t.iter().map(|g| Some(format!("task{g}"))).collect()),
        })
        .collect();
    builder.finish(selections).unwrap()
}

fn plan(case: &Case, dir: &Path, push_order: &[usize]) -> Result<Plan, PlanError> {
    let recipe = Recipe::parse(&recipe_text(case), "case.toml").unwrap();
    let cache = cache(case, &dir.join("tokens"), push_order);
    open_or_build(&recipe, cache, dir, &Progress::default()).map(|(p, _)| p)
}

/// The concat components too small for one sample make planning fail; anything else must plan.
pub(crate) fn plan_or_expected_error(
    case: &Case,
    dir: &Path,
    push_order: &[usize],
) -> Option<Plan> {
    match plan(case, dir, push_order) {
        Ok(plan) => Some(plan),
        Err(e) => {
            let too_small = case.components.iter().any(|c| {
                c.packing == Packing::Concat
                    && c.members
                        .iter()
                        .map(|&m| case.docs[m].len() as u64 + 1)
                        .sum::<u64>()
                        < case.sample_len
            });
            assert!(
                too_small && e.to_string().contains("fewer than one sample"),
                "unexpected: {e}"
            );
            None
        }
    }
}

pub(crate) fn read_all(plan: &Plan) -> Vec<(SampleMeta, Vec<u8>, Vec<Span>)> {
    let mut out = Vec::new();
    for g in 0..plan.total_samples() {
        let mut bytes = vec![0u8; plan.sample_bytes()];
        let mut spans = Vec::new();
        let meta = plan.read_sample(g, &mut bytes, &mut spans).unwrap();
        out.push((meta, bytes, spans));
    }
    out
}

/// Streams a rank from `cursor` for up to `steps` steps; returns (global index, bytes) per sample
/// and the final cursor.
pub(crate) fn run_rank(
    plan: &Plan,
    spec: RankSpec,
    cursor: Option<&Cursor>,
    steps: u64,
) -> (Vec<(u64, Vec<u8>)>, Cursor) {
    let mut stream = RankStream::new(plan, spec, cursor).unwrap();
    let mut batch = MicroBatch::default();
    let mut out = Vec::new();
    for _ in 0..steps {
        if !stream.next_batch(&mut batch).unwrap() {
            break;
        }
        for (i, meta) in batch.samples.iter().enumerate() {
            let size = plan.sample_bytes();
            out.push((meta.index, batch.tokens[i * size..(i + 1) * size].to_vec()));
        }
    }
    (out, stream.cursor())
}

fn tokens_of(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn same_plan_same_bytes_whatever_the_scan_order(case in case()) {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let order: Vec<usize> = (0..case.docs.len()).collect();
        let reversed: Vec<usize> = order.iter().rev().copied().collect();
        let Some(pa) = plan_or_expected_error(&case, a.path(), &order) else { return Ok(()) };
        let pb = plan(&case, b.path(), &reversed).unwrap();
        prop_assert_eq!(pa.id(), pb.id());
        let (ra, rb) = (read_all(&pa), read_all(&pb));
        prop_assert_eq!(ra, rb);
    }

    #[test]
    fn samples_hold_the_documents_tokens_where_the_spans_say(case in case()) {
        let dir = tempfile::tempdir().unwrap();
        let order: Vec<usize> = (0..case.docs.len()).collect();
        let Some(plan) = plan_or_expected_error(&case, dir.path(), &order) else { return Ok(()) };
        let by_id: HashMap<u64, &Vec<u16>> = case.docs.iter().enumerate().map(|(d, t)| (doc_id(d), t)).collect();
        for (meta, bytes, spans) in read_all(&plan) {
            let tokens = tokens_of(&bytes);
            let packing = case.components[usize::from(meta.component)].packing;
            let mut covered = vec![false; tokens.len()];
            let mut next = 0u32;
            for span in &spans {
                prop_assert_eq!(span.position, next, "spans are contiguous from the start");
                let doc = by_id[&span.doc_id];
                for k in 0..span.len {
                    let at = (span.offset + k) as usize;
                    let expected = if at < doc.len() { doc[at] } else { EOS };
                    prop_assert_eq!(at <= doc.len(), true);
                    prop_assert_eq!(tokens[(span.position + k) as usize], expected);
                    covered[(span.position + k) as usize] = true;
                }
                next += span.len;
                if packing == Packing::Bin {
                    prop_assert_eq!(span.offset, 0, "bins hold whole documents");
                }
            }
            for (i, c) in covered.iter().enumerate() {
                if !c {
                    prop_assert_eq!(packing, Packing::Bin, "only bins are padded");
                    prop_assert_eq!(tokens[i], PAD);
                }
            }
        }
    }

    #[test]
    fn ranks_partition_the_global_stream(case in case(), micro_batch in 1u32..4) {
        let dir = tempfile::tempdir().unwrap();
        let order: Vec<usize> = (0..case.docs.len()).collect();
        let Some(plan) = plan_or_expected_error(&case, dir.path(), &order) else { return Ok(()) };
        let single: Vec<Vec<u8>> = read_all(&plan).into_iter().map(|(_, b, _)| b).collect();
        for world in [1u32, 2, 3, 8] {
            let global = u64::from(world * micro_batch);
            let steps = plan.total_samples() / global;
            let mut seen = BTreeMap::new();
            for rank in 0..world {
                let (samples, cursor) = run_rank(&plan, RankSpec::new(rank, world, micro_batch).unwrap(), None, u64::MAX);
                prop_assert_eq!(samples.len() as u64, steps * u64::from(micro_batch));
                prop_assert_eq!(cursor.consumed, steps * global);
                for (i, (g, bytes)) in samples.into_iter().enumerate() {
                    let (t, j) = (i as u64 / u64::from(micro_batch), i as u64 % u64::from(micro_batch));
                    prop_assert_eq!(g, t * global + u64::from(rank * micro_batch) + j);
                    prop_assert_eq!(&bytes, &single[g as usize]);
                    prop_assert!(seen.insert(g, rank).is_none(), "sample {} streamed twice", g);
                }
            }
            prop_assert_eq!(seen.keys().copied().collect::<Vec<_>>(), (0..steps * global).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_cursor_resumes_exactly_also_with_another_world(
        case in case(), w1 in 1u32..5, b1 in 1u32..4, w2 in 1u32..5, b2 in 1u32..4, cut in 0u64..40
    ) {
        let dir = tempfile::tempdir().unwrap();
        let order: Vec<usize> = (0..case.docs.len()).collect();
        let Some(plan) = plan_or_expected_error(&case, dir.path(), &order) else { return Ok(()) };
        let single: Vec<Vec<u8>> = read_all(&plan).into_iter().map(|(_, b, _)| b).collect();

        // same world: an interrupted run resumed from its cursor equals the uninterrupted one
        let spec = RankSpec::new(w1 - 1, w1, b1).unwrap();
        let (whole, _) = run_rank(&plan, spec, None, u64::MAX);
        let (first, cursor) = run_rank(&plan, spec, None, cut);
        let text = cursor.to_string();
        let (rest, _) = run_rank(&plan, spec, Some(&text.parse().unwrap()), u64::MAX);
        let joined: Vec<_> = first.into_iter().chain(rest).collect();
        prop_assert_eq!(joined, whole);

        // another world after the cut: all ranks together continue exactly where it stopped
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut resume_at = None;
        for rank in 0..w1 {
            let (samples, c) = run_rank(&plan, RankSpec::new(rank, w1, b1).unwrap(), None, cut);
            before.extend(samples.into_iter().map(|(g, _)| g));
            resume_at = Some(c);
        }
        let cursor = resume_at.unwrap();
        for rank in 0..w2 {
            let (samples, _) = run_rank(&plan, RankSpec::new(rank, w2, b2).unwrap(), Some(&cursor), u64::MAX);
            for (g, bytes) in samples {
                prop_assert_eq!(&bytes, &single[g as usize]);
                after.push(g);
            }
        }
        before.sort_unstable();
        after.sort_unstable();
        prop_assert_eq!(before.clone(), (0..cursor.consumed).collect::<Vec<_>>());
        let end = cursor.consumed + (plan.total_samples() - cursor.consumed) / u64::from(w2 * b2) * u64::from(w2 * b2);
        prop_assert_eq!(after, (cursor.consumed..end).collect::<Vec<_>>());
    }

    #[test]
    fn blending_stays_within_one_sample_and_epochs_deliver_exactly_once(case in case()) {
        let dir = tempfile::tempdir().unwrap();
        let order: Vec<usize> = (0..case.docs.len()).collect();
        let Some(plan) = plan_or_expected_error(&case, dir.path(), &order) else { return Ok(()) };
        let samples = read_all(&plan);
        let sample_len = case.sample_len;

        let mut start = 0u64;
        for (samples_in_stage, weights) in &case.stages {
            let w: Vec<f64> = weights.iter().map(|&w| f64::from(w)).collect();
            let exact = Weights::new(&w);
            let mut counts = vec![0i128; w.len()];
            for i in 0..*samples_in_stage {
                let meta = samples[(start + i) as usize].0;
                counts[usize::from(meta.component)] += 1;
                for (c, &n) in counts.iter().enumerate() {
                    let deviation = n * exact.total() - exact.target_numerator(c, i + 1);
                    prop_assert!(deviation.abs() <= exact.total(), "component {} at {} of stage", c, i + 1);
                }
            }
            start += samples_in_stage;
        }

        // group samples by (component, epoch)
        let mut epochs: BTreeMap<(u16, u32), Vec<usize>> = BTreeMap::new();
        for (i, (meta, _, _)) in samples.iter().enumerate() {
            epochs.entry((meta.component, meta.epoch)).or_default().push(i);
        }
        let manifest = plan.manifest();
        for ((c, e), members) in epochs {
            let epoch = &manifest.components[usize::from(c)].epochs[e as usize];
            let mut packed: Vec<u64> = members.iter().map(|&i| samples[i].0.packed).collect();
            packed.sort_unstable();
            packed.dedup();
            prop_assert_eq!(packed.len(), members.len(), "a packed sample repeats within an epoch");
            if members.len() as u64 != epoch.samples {
                continue; // only complete epochs must cover everything
            }
            let component = &case.components[usize::from(c)];
            match component.packing {
                Packing::Concat => {
                    // every unit position is delivered at most once; all but the dropped tail are
                    let mut seen: HashMap<(u64, u32), u32> = HashMap::new();
                    for &i in &members {
                        for s in &samples[i].2 {
                            for k in 0..s.len {
                                *seen.entry((s.doc_id, s.offset + k)).or_default() += 1;
                            }
                        }
                    }
                    prop_assert!(seen.values().all(|&n| n == 1));
                    let total: u64 = component.members.iter().map(|&m| case.docs[m].len() as u64 + 1).sum();
                    prop_assert_eq!(seen.len() as u64, total - epoch.dropped_tokens);
                    prop_assert!(epoch.dropped_tokens < sample_len);
                }
                Packing::Bin => {
                    let mut docs: Vec<u64> = members.iter().flat_map(|&i| samples[i].2.iter().map(|s| s.doc_id)).collect();
                    docs.sort_unstable();
                    let mut expected: Vec<u64> = component.members.iter().map(|&m| doc_id(m)).collect();
                    expected.sort_unstable();
                    prop_assert_eq!(docs, expected, "each document once per epoch");
                    if let Some(tasks) = &component.tasks {
                        let task_of: HashMap<u64, u8> = component.members.iter().zip(tasks).map(|(&m, &t)| (doc_id(m), t)).collect();
                        for &i in &members {
                            let t: Vec<u8> = samples[i].2.iter().map(|s| task_of[&s.doc_id]).collect();
                            prop_assert!(t.windows(2).all(|w| w[0] == w[1]), "a bin mixes tasks");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_cursor_of_another_plan_is_refused_naming_the_difference() {
    let case = Case {
        docs: (0..20)
            .map(|d| (0..(d % 7 + 3)).map(|t| 3 + t as u16).collect())
            .collect(),
        components: vec![ComponentCase {
            packing: Packing::Concat,
            members: (0..20).collect(),
            tasks: None,
        }],
        stages: vec![(10, vec![1])],
        sample_len: 8,
        seed: 7,
    };
    let order: Vec<usize> = (0..20).collect();
    let dir = tempfile::tempdir().unwrap();
    let plan_a = plan(&case, &dir.path().join("a"), &order).unwrap();
    let reseeded = Case {
        seed: 8,
        ..case.clone()
    };
    let plan_b = plan(&reseeded, &dir.path().join("b"), &order).unwrap();
    let mut fewer = case.clone();
    fewer.components[0].members.pop();
    let plan_c = plan(&fewer, &dir.path().join("c"), &order).unwrap();

    let cursor = plan_a.cursor(4);
    let spec = RankSpec::new(0, 1, 1).unwrap();
    let err = RankStream::new(&plan_b, spec, Some(&cursor))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("seed differs (this plan's 8, cursor's 7)") && !err.contains("data differs"),
        "{err}"
    );
    let err = RankStream::new(&plan_c, spec, Some(&cursor))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("data differs") && !err.contains("seed"),
        "{err}"
    );
    assert!(RankStream::new(&plan_a, spec, Some(&cursor)).is_ok());
}

/// A stage budget far beyond what a selection can give (a reader's `samples = 1e15`) is
/// refused before the plan writes anything: its blend alone would be a petabyte.
#[test]
fn a_budget_beyond_the_epoch_limit_is_refused_before_anything_is_written() {
    let case = Case {
        docs: (0..20)
            .map(|d| (0..(d % 7 + 3)).map(|t| 3 + t as u16).collect())
            .collect(),
        components: vec![
            ComponentCase {
                packing: Packing::Concat,
                members: (0..20).collect(),
                tasks: None,
            },
            ComponentCase {
                packing: Packing::Bin,
                members: (0..20).collect(),
                tasks: None,
            },
        ],
        stages: vec![(1_000_000_000_000_000, vec![1, 1])],
        sample_len: 8,
        seed: 7,
    };
    let order: Vec<usize> = (0..20).collect();
    let dir = tempfile::tempdir().unwrap();
    let err = plan(&case, dir.path(), &order).err().unwrap().to_string();
    assert!(err.contains("epochs") && err.contains("c0"), "{err}");
    let written: u64 = walk_bytes(&dir.path().join("plans"));
    assert!(
        written < 1 << 20,
        "{written} bytes written for a refused plan"
    );
}

fn walk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk_bytes(&path)
            } else {
                path.metadata().map_or(0, |m| m.len())
            }
        })
        .sum()
}
