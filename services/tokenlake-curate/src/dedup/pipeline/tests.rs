//! The pipeline's labels against the in-memory index's, over random corpora with every kind of
//! duplicate planted, for any number of partitions, writers and increments.

use proptest::prelude::*;

use super::super::{Deduplicator, FINE_ROWS, PERMUTATIONS};
use super::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A corpus of `n` fingerprints with planted exact copies, URL variants, near copies of every
/// similarity around the threshold, SimHash-close pairs, a fine bucket far over 64 members, a
/// skewed SimHash bucket, and documents without words.
fn corpus(seed: u64, n: usize) -> Vec<Fingerprint> {
    let mut rng = Rng(seed);
    let mut mins: Vec<Option<[u64; PERMUTATIONS]>> = Vec::new();
    let mut prints: Vec<Fingerprint> = Vec::new();
    let template: [u64; PERMUTATIONS] = std::array::from_fn(|_| rng.next());
    let skewed_sim = rng.next();
    for i in 0..n {
        let fresh = |rng: &mut Rng| -> [u64; PERMUTATIONS] { std::array::from_fn(|_| rng.next()) };
        let url = |rng: &mut Rng| (rng.below(3) == 0).then(|| rng.below(40));
        let pick = if i < 3 { 19 } else { rng.below(20) };
        let earlier = rng.below(i.max(1) as u64) as usize;
        let (print, m) = match pick {
            0 | 1 => (
                Fingerprint {
                    url: url(&mut rng),
                    exact: rng.below(6), // "!!!" and "" repeat
                    simhash: None,
                    bands: None,
                    fine_bands: None,
                    minhash: Vec::new(),
                },
                None,
            ),
            2 | 3 => {
                let mut p = prints[earlier].clone();
                p.url = url(&mut rng);
                (p, mins[earlier])
            }
            4 | 5 => {
                let m = fresh(&mut rng);
                let p = Fingerprint::from_minimums(
                    prints[earlier].url.or(Some(rng.below(40))),
                    rng.next(),
                    Some(rng.next()),
                    &m,
                );
                (p, Some(m))
            }
            6..=8 if mins[earlier].is_some() && prints[earlier].simhash.is_some() => {
                // A near copy: some minimums replaced (similarity around the threshold), a
                // few SimHash bits flipped (sometimes more than 3).
                let mut m = mins[earlier].expect("checked");
                for _ in 0..rng.below(90) {
                    m[rng.below(PERMUTATIONS as u64) as usize] = rng.next();
                }
                let mut sim = prints[earlier].simhash.expect("checked");
                for _ in 0..rng.below(6) {
                    sim ^= 1 << rng.below(64);
                }
                (
                    Fingerprint::from_minimums(None, rng.next(), Some(sim), &m),
                    Some(m),
                )
            }
            9..=12 => {
                // One fine bucket (the template's first fine band) shared by a fifth of the
                // corpus, nothing else shared: the checks fail.
                let mut m = fresh(&mut rng);
                m[..FINE_ROWS].copy_from_slice(&template[..FINE_ROWS]);
                (
                    Fingerprint::from_minimums(url(&mut rng), rng.next(), Some(rng.next()), &m),
                    Some(m),
                )
            }
            13 => {
                // Similar to each other (≈ 0.58) but sharing no fine band or MinHash band
                // except that crowded first one: found only by its walk, when within 64.
                let mut m = template;
                for b in 1..PERMUTATIONS / FINE_ROWS {
                    m[b * FINE_ROWS + rng.below(FINE_ROWS as u64) as usize] = rng.next();
                }
                (
                    Fingerprint::from_minimums(None, rng.next(), None, &m),
                    Some(m),
                )
            }
            14 | 15 => {
                // One SimHash neighbourhood; whether the texts agree is up to the minimums.
                let mut m = fresh(&mut rng);
                let shared = rng.below(PERMUTATIONS as u64) as usize;
                m[..shared].copy_from_slice(&template[..shared]);
                let mut sim = skewed_sim;
                for _ in 0..rng.below(3) {
                    sim ^= 1 << rng.below(64);
                }
                (
                    Fingerprint::from_minimums(None, rng.next(), Some(sim), &m),
                    Some(m),
                )
            }
            _ => {
                let m = fresh(&mut rng);
                let sim = (rng.below(8) != 0).then(|| rng.next());
                (
                    Fingerprint::from_minimums(url(&mut rng), rng.next(), sim, &m),
                    Some(m),
                )
            }
        };
        prints.push(print);
        mins.push(m);
    }
    prints
}

fn in_memory(prints: &[Fingerprint]) -> Vec<RowLabel> {
    let mut dedup = Deduplicator::default();
    prints.iter().for_each(|p| {
        dedup.add(p);
    });
    dedup.labels().into_iter().map(RowLabel::from).collect()
}

/// The pipeline's labels, in `increments` (row counts), each written by `writers` writers.
fn partitioned(
    prints: &[Fingerprint],
    partitions: u32,
    writers: usize,
    increments: &[usize],
) -> (Vec<RowLabel>, Vec<TaskStats>) {
    let dir = tempfile::tempdir().unwrap();
    let mut labels: Vec<RowLabel> = Vec::new();
    let mut start = 0usize;
    let mut stats = Vec::new();
    for (round, &count) in increments.iter().enumerate() {
        // The index is reopened each round, as a later run would.
        let mut index = DedupIndex::open_or_create(dir.path(), partitions).unwrap();
        assert_eq!(index.covered(), start as u64);
        let end = start + count;
        for w in 0..writers {
            let (lo, hi) = (
                start + count * w / writers,
                start + count * (w + 1) / writers,
            );
            let mut writer = index.writer(&format!("r{round}-w{w}"), lo as u64).unwrap();
            for p in &prints[lo..hi] {
                writer.add(p).unwrap();
            }
            writer.finish().unwrap();
        }
        // A tiny budget: partitions spill their sorts.
        stats = index.all_candidates(4096, 2).unwrap();
        index
            .union(|row, label, changed| match labels.get_mut(row as usize) {
                Some(l) => {
                    assert_eq!(changed, *l != label, "row {row}");
                    *l = label
                }
                None => {
                    assert_eq!(row as usize, labels.len(), "new rows come in order");
                    assert!(changed);
                    labels.push(label)
                }
            })
            .unwrap();
        assert_eq!(labels.len(), end);
        index.commit(&format!("round {round}")).unwrap();
        assert_eq!(index.tag(), format!("round {round}"));
        start = end;
    }
    assert_eq!(labels.len(), prints.len());
    (labels, stats)
}

fn assert_same(want: &[RowLabel], got: &[RowLabel], what: &str) {
    for (row, (w, g)) in want.iter().zip(got).enumerate() {
        assert_eq!(w, g, "{what}: row {row}");
    }
}

#[test]
fn the_planted_corpus_plants_what_it_says() {
    let prints = corpus(11, 600);
    let want = in_memory(&prints);
    let kinds = |k| want.iter().filter(|l| l.kind == Some(k)).count();
    use super::super::DupKind::*;
    assert!(kinds(Url) > 10 && kinds(Exact) > 10, "{want:?}");
    assert!(kinds(SimHash) > 5 && kinds(MinHash) > 5, "{want:?}");
    let (got, stats) = partitioned(&prints, 1, 1, &[600]);
    assert_same(&want, &got, "one partition");
    assert!(
        stats[0].largest_group > 64,
        "a fine bucket over the walk: {stats:?}"
    );
    assert!(stats[0].edges_kept < stats[0].edges_found, "{stats:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn partitioned_labels_equal_the_in_memory_index(
        seed in any::<u64>(),
        n in 40usize..360,
        partitions in prop::sample::select(vec![1u32, 3, 17, 256]),
        writers in 1usize..=5,
        split in prop::option::of(0.1f64..0.9),
    ) {
        let prints = corpus(seed, n);
        let want = in_memory(&prints);
        let increments = match split {
            None => vec![n],
            Some(f) => {
                let first = ((n as f64) * f) as usize;
                vec![first, n - first]
            }
        };
        let (got, _) = partitioned(&prints, partitions, writers, &increments);
        assert_same(&want, &got, &format!("P={partitions}, {writers} writers, {increments:?}"));
    }
}

#[test]
fn an_update_stopped_before_its_commit_leaves_the_index_it_started_from() {
    let prints = corpus(5, 300);
    let want = in_memory(&prints);
    let dir = tempfile::tempdir().unwrap();
    let mut index = DedupIndex::open_or_create(dir.path(), 5).unwrap();
    let mut w = index.writer("first", 0).unwrap();
    prints[..200].iter().for_each(|p| {
        w.add(p).unwrap();
    });
    w.finish().unwrap();
    index.all_candidates(1 << 20, 1).unwrap();
    let mut labels = Vec::new();
    index.union(|_, l, _| labels.push(l)).unwrap();
    index.commit("200").unwrap();

    // The second increment: only some partitions run, then the process "dies".
    let mut w = index.writer("second", 200).unwrap();
    prints[200..].iter().for_each(|p| {
        w.add(p).unwrap();
    });
    w.finish().unwrap();
    index.candidates(0, 1 << 20).unwrap();
    index.candidates(3, 1 << 20).unwrap();
    let err = index.union(|_, _, _| {}).unwrap_err();
    assert!(err.to_string().contains("partition 1"), "{err}");
    drop(index);

    let mut index = DedupIndex::open(dir.path()).unwrap();
    assert_eq!(index.covered(), 200, "nothing was committed");
    // A scheduler may run a task twice: same files.
    index.all_candidates(1 << 20, 2).unwrap();
    index.candidates(3, 1 << 20).unwrap();
    index
        .union(|row, l, _| match labels.get_mut(row as usize) {
            Some(x) => *x = l,
            None => labels.push(l),
        })
        .unwrap();
    index.commit("300").unwrap();
    assert_eq!(index.covered(), 300);
    assert_eq!(index.tag(), "300");
    assert_same(&want, &labels, "after the interrupted update");

    // A writer that leaves a gap is refused by name.
    let w = index.writer("gap", 301).unwrap();
    w.finish().unwrap();
    let err = index.pending().unwrap_err();
    assert!(
        err.to_string().contains("writer gap starts at row 301"),
        "{err}"
    );
}

#[test]
fn the_union_costs_five_bytes_a_row_below_four_billion_rows() {
    let (union, _) = OrderedUnion::new(1_000_000, std::iter::empty()).unwrap();
    assert_eq!(union.heap_bytes(), 5_000_000);
    let err = OrderedUnion::new(
        3,
        [
            RowLabel {
                keeper: 0,
                kind: None,
            },
            RowLabel {
                keeper: 2,
                kind: None,
            },
        ],
    )
    .err()
    .unwrap();
    assert!(err.contains("row 1's stored keeper is row 2"), "{err}");
}

#[test]
fn a_second_update_of_one_index_is_refused_while_the_first_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let held = lock_dir(dir.path()).unwrap();
    let err = lock_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("another update"), "{err}");
    drop(held);
    lock_dir(dir.path()).unwrap();
}

#[test]
fn stopped_candidate_tasks_leave_nothing_the_union_would_take_for_done() {
    let prints = corpus(9, 200);
    let dir = tempfile::tempdir().unwrap();
    let mut index = DedupIndex::open_or_create(dir.path(), 4).unwrap();
    let mut w = index.writer("w", 0).unwrap();
    prints.iter().for_each(|p| {
        w.add(p).unwrap();
    });
    w.finish().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(true);
    let err = index.missing_candidates(1 << 20, 2, &stop).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Interrupted);
    assert_eq!(index.status().unwrap().missing, [0, 1, 2, 3]);
    // Started again, the update finishes with the in-memory index's labels.
    stop.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(index.missing_candidates(1 << 20, 2, &stop).unwrap(), 4);
    let mut labels = Vec::new();
    index.union(|_, l, _| labels.push(l)).unwrap();
    index.commit("done").unwrap();
    assert_same(&in_memory(&prints), &labels, "after a stop");
}
