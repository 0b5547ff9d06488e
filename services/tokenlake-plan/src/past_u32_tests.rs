//! A plan of more than 2³² documents and samples, read where positions, offsets and byte
//! addresses are past 2³².
//!
//! Building such a plan takes hours and a third of a terabyte, so the test writes its index by
//! hand instead: a sparse file of the plan format's layout for 5·10⁹ documents of 7 tokens (one
//! per sample, concat packing, one stage, one component, the shuffle reversed) in which only
//! the entries the test reads are written. Tokens come from a store that computes them from
//! their offsets. Locating, resolving, streaming and fetching then run the real code on
//! numbers a `u32` cannot hold anywhere along the way.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

use crate::build::{
    BLEND_BLOCK, ComponentIndex, DOC_ENTRY, EpochIndex, FORMAT, PlanManifest, START_WORDS, Section,
    StageIndex,
};
use crate::cursor::PlanId;
use crate::plan::Plan;
use crate::publish::COMPLETE_MARKER;
use crate::recipe::Packing;
use crate::stream::{MicroBatch, RankSpec, RankStream};
use crate::token_cache::TokenManifest;
use crate::window::{ChunkSource, ReadFuture, Window, WindowOptions};

const DOCS: u64 = 5_000_000_000;
/// Tokens per document; a sample is one document and its EOS.
const DOC_TOKENS: u64 = 7;
const EOS: u32 = 50_001;
const FINGERPRINT: u64 = 0x7e57_0000_0000_0001;
const CHUNK_BYTES: u64 = 64 << 20;

/// Token `t` of the store.
fn token(t: u64) -> u32 {
    (t % 50_000) as u32
}

/// Document `p`'s tokens, as stored (u32, little-endian).
fn doc_bytes(p: u64) -> Vec<u8> {
    (p * DOC_TOKENS..(p + 1) * DOC_TOKENS)
        .flat_map(|t| token(t).to_le_bytes())
        .collect()
}

/// Document ids sit far above the positions too.
fn doc_id(p: u64) -> u64 {
    (1 << 40) + p
}

/// Tokens computed from their offsets: any chunk of an 140 GB store.
struct Computed;

impl ChunkSource for Computed {
    fn read(&self, chunk: u64, range: std::ops::Range<u64>) -> ReadFuture {
        let (from, to) = (
            chunk * CHUNK_BYTES + range.start,
            chunk * CHUNK_BYTES + range.end,
        );
        assert!(from % 4 == 0 && to % 4 == 0, "reads are whole tokens");
        let bytes: Vec<u8> = (from / 4..to / 4)
            .flat_map(|t| token(t).to_le_bytes())
            .collect();
        Box::pin(async move { Ok(Bytes::from(bytes)) })
    }
}

/// The index's sections, back to back as `build.rs` lays them out.
struct Layout {
    blend: Section,
    checkpoints: Section,
    shuffle: Section,
    starts: Section,
    order: Section,
    bytes: u64,
}

fn layout() -> Layout {
    let samples = DOCS;
    let blend = Section {
        offset: 0,
        len: samples,
    };
    let mut at = samples.next_multiple_of(8);
    let mut section = |len: u64, size: u64| {
        let s = Section { offset: at, len };
        at += len * size;
        s
    };
    let checkpoints = section(samples.div_ceil(BLEND_BLOCK), 8);
    let shuffle = section(samples, 8);
    let starts = section(START_WORDS as u64 * samples, 8);
    let order = section(DOC_ENTRY as u64 * DOCS, 4);
    Layout {
        blend,
        checkpoints,
        shuffle,
        starts,
        order,
        bytes: at,
    }
}

/// Global sample `g` reads document `DOCS - 1 - g` (the shuffle is reversed).
fn packed_of(g: u64) -> u64 {
    DOCS - 1 - g
}

/// Writes what reading global sample `g` needs into the sparse index: its block's checkpoint,
/// its shuffle entry, its window's start and its document's entry. The blend is all zeros:
/// every sample is component 0's.
fn write_sample(file: &std::fs::File, l: &Layout, g: u64) {
    let put = |offset: u64, bytes: &[u8]| file.write_all_at(bytes, offset).unwrap();
    let block = g / BLEND_BLOCK;
    put(
        l.checkpoints.offset + 8 * block,
        &(block * BLEND_BLOCK).to_le_bytes(),
    );
    let p = packed_of(g);
    put(l.shuffle.offset + 8 * g, &p.to_le_bytes());
    let start = l.starts.offset + 8 * START_WORDS as u64 * p;
    // position p, offset 0; no parts of documents, so no piece checksums
    put(start, &p.to_le_bytes());
    let mut entry = Vec::with_capacity(DOC_ENTRY * 4);
    entry.extend((p * DOC_TOKENS).to_le_bytes());
    entry.extend((DOC_TOKENS as u32).to_le_bytes());
    entry.extend(doc_id(p).to_le_bytes());
    entry.extend(xxh3_64(&doc_bytes(p)).to_le_bytes());
    put(l.order.offset + 4 * DOC_ENTRY as u64 * p, &entry);
}

fn manifest(l: &Layout) -> PlanManifest {
    let samples = DOCS;
    PlanManifest {
        format: FORMAT,
        plan_id: PlanId {
            data: FINGERPRINT,
            recipe: 1,
            seed: 2,
        },
        seq_len: DOC_TOKENS,
        sample_len: DOC_TOKENS + 1,
        eos_token: EOS,
        pad_token: 0,
        token_width: 4,
        total_samples: samples,
        piece_checksums: true,
        stages: vec![StageIndex {
            name: "main".into(),
            start: 0,
            samples,
            blend: l.blend,
            checkpoints: l.checkpoints,
            base: vec![0],
            counts: vec![samples],
        }],
        components: vec![ComponentIndex {
            name: "all".into(),
            packing: Packing::Concat,
            docs: DOCS,
            tokens: DOCS * DOC_TOKENS,
            samples_used: samples,
            epochs: vec![EpochIndex {
                first: 0,
                samples,
                order: Some(l.order),
                starts: Some(l.starts),
                bin_offsets: None,
                bin_docs: None,
                bin_checksums: None,
                shuffle: l.shuffle,
                dropped_tokens: 0,
                truncated_tokens: 0,
                padding_tokens: 0,
            }],
        }],
    }
}

/// Sample `g`'s expected tokens: its document's, then EOS.
fn expected_tokens(g: u64) -> Vec<u8> {
    let mut t = doc_bytes(packed_of(g));
    t.extend(EOS.to_le_bytes());
    t
}

#[test]
fn a_plan_past_two_to_the_32_documents_locates_streams_and_fetches_the_right_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let l = layout();
    assert!(l.bytes > 300 << 30, "the index addresses {} bytes", l.bytes);
    let file = std::fs::File::create(dir.path().join("plan.idx")).unwrap();
    file.set_len(l.bytes).unwrap();
    let u32_max = u64::from(u32::MAX);
    // A cursor past 2³², then a step of two ranks of two samples from it.
    let cursor_at = u32_max + 3;
    let step: Vec<u64> = (cursor_at..cursor_at + 4).collect();
    let singles = [0, u32_max - 1, u32_max, u32_max + 1, DOCS / 2, DOCS - 1];
    for &g in singles.iter().chain(&step) {
        write_sample(&file, &l, g);
    }
    drop(file);
    std::fs::write(
        dir.path().join(COMPLETE_MARKER),
        serde_json::to_vec(&manifest(&l)).unwrap(),
    )
    .unwrap();
    let data: TokenManifest = serde_json::from_value(serde_json::json!({
        "format": 2,
        "token_width": 4,
        "docs": DOCS,
        "tokens": DOCS * DOC_TOKENS,
        "fingerprint": FINGERPRINT,
        "components": [{"docs": DOCS, "tokens": DOCS * DOC_TOKENS, "fingerprint": 3, "groups": null}],
    }))
    .unwrap();
    let window = Window::new(Arc::new(Computed), CHUNK_BYTES, 4, WindowOptions::default()).unwrap();
    let plan = Plan::open_windowed(dir.path(), data, Arc::new(window)).unwrap();
    assert_eq!(plan.total_samples(), DOCS);

    let mut out = vec![0u8; plan.sample_bytes()];
    let mut spans = Vec::new();
    for g in singles {
        let meta = plan.read_sample(g, &mut out, &mut spans).unwrap();
        let p = packed_of(g);
        assert_eq!((meta.index, meta.packed), (g, p), "sample {g}");
        assert_eq!(out, expected_tokens(g), "sample {g}");
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].doc_id, doc_id(p), "sample {g}");
        // Token offsets, and byte offsets four times those, are past 2³² for most.
        let ranges = plan.fetch_ranges(g, true).unwrap();
        assert_eq!(ranges.len(), 1);
        assert_eq!((ranges[0].offset, ranges[0].len), (p * DOC_TOKENS, 7));
    }

    // Rank 1 of 2, micro-batches of 2, from a cursor past 2³²: the step's last two samples.
    let cursor = plan.cursor(cursor_at);
    let spec = RankSpec::new(1, 2, 2).unwrap();
    let mut stream = RankStream::new(&plan, spec, Some(&cursor)).unwrap();
    assert_eq!(stream.steps_left(), (DOCS - cursor_at) / 4);
    let mut batch = MicroBatch::default();
    assert!(stream.next_batch(&mut batch).unwrap());
    let indexes: Vec<u64> = batch.samples.iter().map(|m| m.index).collect();
    assert_eq!(indexes, vec![step[2], step[3]]);
    let expected: Vec<u8> = [step[2], step[3]]
        .iter()
        .flat_map(|&g| expected_tokens(g))
        .collect();
    assert_eq!(batch.tokens, expected);
    assert_eq!(stream.cursor().consumed, cursor_at + 4);
}
