//! The index's labels against hand-made copies and near copies.

use super::*;

#[test]
fn fingerprints_round_trip_through_their_encoding() {
    let mut f = Fingerprinter::default();
    let prints = [
        f.fingerprint(
            Some("https://example.com/a"),
            "the quick brown fox jumps over the lazy dog again and again",
        ),
        f.fingerprint(None, "short"),
        f.fingerprint(None, ""),
    ];
    let mut bytes = Vec::new();
    prints.iter().for_each(|p| p.encode(&mut bytes));
    let mut rest = &bytes[..];
    for p in &prints {
        assert_eq!(Fingerprint::decode(&mut rest).as_ref(), Some(p));
    }
    assert!(rest.is_empty());
    let mut first = Vec::new();
    prints[0].encode(&mut first);
    assert!(Fingerprint::decode(&mut &first[..first.len() - 1]).is_none());
}

fn labels(docs: &[(&str, &str)]) -> Vec<DupLabel> {
    let mut fp = Fingerprinter::default();
    let mut dedup = Deduplicator::default();
    for (url, text) in docs {
        let url = (!url.is_empty()).then_some(*url);
        dedup.add(&fp.fingerprint(url, text));
    }
    dedup.labels()
}

const PROSE: &str = "The kernel schedules tasks on every processor according to their \
    priority and the time they have already used. A task that sleeps for input gives \
    its processor to another task, and the scheduler keeps a red-black tree of runnable \
    tasks ordered by virtual runtime so that the next one is found quickly. Real-time \
    tasks are handled by separate classes with strict priorities and their own queues.";

#[test]
fn exact_copies_ignore_case_punctuation_and_spacing() {
    let shouted = PROSE.to_uppercase().replace(". ", "!!  \n");
    let got = labels(&[
        ("", PROSE),
        ("", "Something else entirely, about gardens."),
        ("", &shouted),
    ]);
    assert!(!got[0].is_dup && !got[1].is_dup);
    assert_eq!(
        got[2],
        DupLabel {
            keeper: 0,
            is_dup: true,
            kind: Some(DupKind::Exact)
        }
    );
}

#[test]
fn near_copies_are_found_and_different_texts_are_not() {
    let edited = PROSE
        .replace("every processor", "each processor")
        .replace("quickly", "fast");
    let other = "Gardens need water in summer and shade in the afternoon; tomatoes and \
        beans grow well beside each other, while mint spreads everywhere unless it is \
        kept in a pot. Compost from kitchen scraps feeds the soil for the next season.";
    let got = labels(&[("", PROSE), ("", other), ("", &edited)]);
    assert!(!got[1].is_dup, "{got:?}");
    assert!(got[2].is_dup && got[2].keeper == 0, "{got:?}");
    assert!(matches!(
        got[2].kind,
        Some(DupKind::SimHash | DupKind::MinHash)
    ));
}

#[test]
fn urls_match_across_scheme_host_case_and_trailing_slash() {
    let got = labels(&[
        ("https://Example.org/a/b/", "one text here"),
        ("http://www.example.org/a/b", "a completely different text"),
        ("https://example.org/a/c", "yet another text"),
        (
            "https://example.org/a/b#part-2",
            "the second part of the page",
        ),
    ]);
    assert_eq!(got[1].kind, Some(DupKind::Url));
    assert!(!got[2].is_dup && !got[3].is_dup, "{got:?}");
}

#[test]
fn clusters_merge_and_keep_their_earliest_document() {
    let a = PROSE;
    let b = "Compost from kitchen scraps feeds the soil for the next season, and worms \
        turn it into humus within a few months when it is kept moist and turned often.";
    let got = labels(&[("u0", a), ("u1", b), ("u2", b), ("u1", a)]);
    // 2 copies 1's text; 3 has 1's URL and 0's text, so it links both clusters, and 0,
    // the earliest, keeps them all; 1 is marked with the link that joined its cluster.
    assert_eq!(
        got[0],
        DupLabel {
            keeper: 0,
            is_dup: false,
            kind: None
        }
    );
    assert_eq!(
        got[1],
        DupLabel {
            keeper: 0,
            is_dup: true,
            kind: Some(DupKind::Exact)
        }
    );
    assert_eq!(
        got[2],
        DupLabel {
            keeper: 0,
            is_dup: true,
            kind: Some(DupKind::Exact)
        }
    );
    assert_eq!(
        got[3],
        DupLabel {
            keeper: 0,
            is_dup: true,
            kind: Some(DupKind::Url)
        }
    );
}

#[test]
fn an_encoded_index_decodes_to_one_that_labels_alike() {
    let docs = [
        ("u0", PROSE),
        ("", "short"),
        ("u0", "other"),
        ("", "short"),
        ("", "!!!"),
    ];
    let mut fp = Fingerprinter::default();
    let mut whole = Deduplicator::default();
    let mut first = Deduplicator::default();
    for (i, (url, text)) in docs.iter().enumerate() {
        let url = (!url.is_empty()).then_some(*url);
        let print = fp.fingerprint(url, text);
        whole.add(&print);
        if i < 3 {
            first.add(&print);
        }
    }
    let mut bytes = Vec::new();
    first.encode(&mut bytes);
    let mut restored = Deduplicator::decode(&mut &bytes[..]).unwrap();
    let mut again = Vec::new();
    restored.encode(&mut again);
    assert_eq!(bytes, again, "encoding is deterministic");
    for (url, text) in &docs[3..] {
        let url = (!url.is_empty()).then_some(*url);
        restored.add(&fp.fingerprint(url, text));
    }
    assert_eq!(restored.labels(), whole.labels());
    assert!(Deduplicator::decode(&mut &bytes[..bytes.len() / 2]).is_none());
}

#[test]
fn labels_do_not_depend_on_how_often_they_are_computed() {
    let docs = [
        ("", PROSE),
        ("", "short"),
        ("", "short"),
        ("", "!!!"),
        ("", "!!!"),
    ];
    assert_eq!(labels(&docs), labels(&docs));
    let got = labels(&docs);
    assert!(got[2].is_dup && got[4].is_dup && !got[3].is_dup);
}

/// Fingerprints that differ only in their SimHash (every Jaccard estimate is 1), so the labels
/// are decided by SimHash distance alone.
fn simhash_only(doc: usize, sim: u64) -> Fingerprint {
    Fingerprint {
        url: None,
        exact: doc as u64, // no two documents are exact copies
        simhash: Some(sim),
        bands: None,
        fine_bands: None,
        minhash: vec![7; PERMUTATIONS],
    }
}

/// Every pair of hashes within distance 3 is found, whichever bits differ, and no pair
/// farther apart: the index's clusters are those of a brute-force comparison of all pairs.
#[test]
fn simhash_matches_are_every_pair_within_distance_three_and_no_other() {
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for round in 0..4 {
        let mut hashes: Vec<u64> = Vec::new();
        for i in 0..1500 {
            let sim = if i < 200 || next().is_multiple_of(3) {
                next()
            } else {
                // A variant of an earlier hash: 0 to 5 bits flipped, the flipped bits often in
                // one block or straddling two (the cases a block scheme could miss).
                let mut sim = hashes[(next() % hashes.len() as u64) as usize];
                let flips = next() % 6;
                let base = next() % 64;
                for f in 0..flips {
                    let bit = if round % 2 == 0 {
                        (base + f * (1 + next() % 3)) % 64
                    } else {
                        next() % 64
                    };
                    sim ^= 1 << bit;
                }
                sim
            };
            hashes.push(sim);
        }
        let mut dedup = Deduplicator::default();
        hashes.iter().enumerate().for_each(|(doc, &h)| {
            dedup.add(&simhash_only(doc, h));
        });
        let got = dedup.labels();

        // Brute force: union every pair within distance 3; the earliest document keeps.
        let mut parent: Vec<usize> = (0..hashes.len()).collect();
        fn find(parent: &mut [usize], mut i: usize) -> usize {
            while parent[i] != i {
                i = parent[i];
            }
            i
        }
        for j in 0..hashes.len() {
            for i in 0..j {
                if (hashes[i] ^ hashes[j]).count_ones() <= SIMHASH_MAX_DISTANCE {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    let (keep, join) = (a.min(b), a.max(b));
                    parent[join] = keep;
                }
            }
        }
        let mut dups = 0;
        for (j, label) in got.iter().enumerate() {
            let keeper = find(&mut parent, j);
            assert_eq!(label.keeper as usize, keeper, "round {round}, document {j}");
            assert_eq!(label.is_dup, keeper != j);
            if label.is_dup {
                dups += 1;
                assert_eq!(label.kind, Some(DupKind::SimHash));
            }
        }
        assert!(
            dups > 300,
            "round {round}: only {dups} duplicates were planted"
        );
    }
}
