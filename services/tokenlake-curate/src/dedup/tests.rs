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
