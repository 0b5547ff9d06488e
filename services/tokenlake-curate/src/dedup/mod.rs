//! De-duplication (Ziya2's content de-duplication, FineWeb's MinHash): URL duplicates, exact
//! duplicates of the normalised content (punctuation, case and whitespace ignored), SimHash
//! near-duplicates (64 bits, Hamming distance ≤ 3, as Ziya2) and MinHash-LSH near-duplicates
//! (5-word shingles, 112 hashes as 14 bands × 8 rows, as FineWeb).
//!
//! Documents are added in ingest order. A document that matches an earlier one joins that
//! one's cluster; clusters that a document links are merged. Every cluster's keeper is its
//! earliest document, so the labels depend only on the documents and their order, never on
//! threads or batch sizes.

mod fingerprint;
pub mod pipeline;

use std::collections::HashMap;

pub use fingerprint::{Fingerprint, Fingerprinter};

pub const SIMHASH_MAX_DISTANCE: u32 = 3;
pub const SHINGLE_WORDS: usize = 5;
pub const BANDS: usize = 14;
pub const ROWS: usize = 8;
pub const PERMUTATIONS: usize = BANDS * ROWS;
/// Fine bands: the same minimum hashes as 28 bands of 4 rows find pairs of lower similarity
/// than FineWeb's bands (which aim at about 0.75); such a candidate counts when its estimated
/// Jaccard similarity is at least `NEAR_MIN_JACCARD`.
pub const FINE_BANDS: usize = 28;
pub const FINE_ROWS: usize = PERMUTATIONS / FINE_BANDS;
/// Estimated word 5-shingle Jaccard similarity a SimHash or fine-band match must reach:
/// word-count SimHash also brings together different texts with one vocabulary (two files of
/// constants), and their shingles tell them apart.
pub const NEAR_MIN_JACCARD: f64 = 0.45;
/// Members of one fine bucket verified per document, latest first.
const FINE_BUCKET_WALK: usize = 64;
const NONE: u32 = u32::MAX;
/// SimHash of fewer words than this is too coarse to compare.
const SIMHASH_MIN_WORDS: usize = 10;

/// How a duplicate was found, strongest evidence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DupKind {
    Url,
    Exact,
    SimHash,
    MinHash,
}

impl DupKind {
    pub fn name(self) -> &'static str {
        match self {
            DupKind::Url => "url",
            DupKind::Exact => "exact",
            DupKind::SimHash => "simhash",
            DupKind::MinHash => "minhash",
        }
    }
}

/// The labels of one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DupLabel {
    /// Index (in the order added) of the cluster's keeper; its own index when it keeps.
    pub keeper: u32,
    pub is_dup: bool,
    /// How this document joined its cluster (None for keepers).
    pub kind: Option<DupKind>,
}

/// SimHash candidates in time that grows with the matches, not with the index: the 64 bits are
/// five blocks (13, 13, 13, 13 and 12 bits), and each of the C(5,2) = 10 tables keys a hash by
/// one pair of blocks (25 or 26 bits). Two hashes within distance 3 differ in at most three
/// blocks, so they agree on at least two, and meet in that pair's table: every such pair is
/// found, as with the four 16-bit tables before, but a bucket holds about N/2²⁵ unrelated
/// hashes instead of N/2¹⁶, so the N-th document is compared with ≈10N/2²⁵ others, not 4N/2¹⁶
/// (at 10⁸ documents: ≈30 instead of ≈6,100).
#[derive(Default)]
pub struct SimHashTables {
    /// Per table, each key's latest entry.
    heads: [HashMap<u32, u32>; 10],
    /// `next[entry * 10 + t]`: the entry before it in the same bucket of table `t` (`NONE`
    /// ends), so a bucket costs no allocation of its own: most keys of 25 bits or more hold
    /// one document, and a list per key would cost ten allocations per document.
    next: Vec<u32>,
    /// The document of each entry (documents without a SimHash have none).
    docs: Vec<u32>,
}

/// Where each of the five blocks starts, and its width.
const SIMHASH_BLOCKS: [(u32, u32); 5] = [(0, 13), (13, 13), (26, 13), (39, 13), (52, 12)];

impl SimHashTables {
    /// The key of `sim` in each table: its blocks i and j, side by side, for i < j.
    fn keys(sim: u64) -> [u32; 10] {
        let block = |b: usize| {
            let (at, width) = SIMHASH_BLOCKS[b];
            ((sim >> at) & ((1u64 << width) - 1)) as u32
        };
        let mut keys = [0u32; 10];
        let pairs = (0..5).flat_map(|i| (i + 1..5).map(move |j| (i, j)));
        for (key, (i, j)) in keys.iter_mut().zip(pairs) {
            *key = (block(i) << SIMHASH_BLOCKS[j].1) | block(j);
        }
        keys
    }

    pub fn insert(&mut self, sim: u64, doc: u32) {
        let entry = self.docs.len() as u32;
        self.docs.push(doc);
        for (table, key) in self.heads.iter_mut().zip(Self::keys(sim)) {
            let previous = table.insert(key, entry).unwrap_or(NONE);
            self.next.push(previous);
        }
    }

    /// Calls `each` with every document in a bucket `sim` falls in: every earlier hash within
    /// distance 3 is among them (some more than once, from several tables).
    pub fn for_each_candidate(&self, sim: u64, mut each: impl FnMut(u32)) {
        for (t, (table, key)) in self.heads.iter().zip(Self::keys(sim)).enumerate() {
            let mut entry = table.get(&key).copied().unwrap_or(NONE);
            while entry != NONE {
                each(self.docs[entry as usize]);
                entry = self.next[entry as usize * 10 + t];
            }
        }
    }

    /// Bytes the tables hold on the heap (capacities; hashbrown's buckets and control bytes).
    pub fn heap_bytes(&self) -> usize {
        self.heads
            .iter()
            .map(|t| t.capacity() * 8 / 7 * (std::mem::size_of::<(u32, u32)>() + 1))
            .sum::<usize>()
            + self.next.capacity() * 4
            + self.docs.capacity() * 4
    }
}

/// The share of equal minimum hashes of two documents (0 where either has none): their
/// estimated word-shingle Jaccard similarity.
pub fn estimated_jaccard(a: &[u16], b: &[u16]) -> f64 {
    let equal = a.iter().zip(b).filter(|(a, b)| a == b).count();
    equal as f64 / PERMUTATIONS as f64
}

/// The de-duplication index over the documents added so far.
#[derive(Default)]
pub struct Deduplicator {
    url: HashMap<u64, u32>,
    exact: HashMap<u64, u32>,
    /// SimHash candidates: one table per pair of the hash's five blocks ([`SimHashTables`]).
    simhash_tables: SimHashTables,
    /// Each document's SimHash (0 where it has none, as `has_simhash` says).
    simhashes: Vec<u64>,
    has_simhash: Vec<bool>,
    /// `PERMUTATIONS` minimum hashes (low 16 bits) per document with words.
    minhashes: Vec<u16>,
    minhash_at: Vec<u32>,
    bands: Vec<HashMap<u64, u32>>,
    /// Fine band → its latest document; `fine_next[doc * FINE_BANDS + band]` is the one
    /// before it in the same bucket (`NONE` ends), so a bucket costs no allocation.
    fine_heads: Vec<HashMap<u32, u32>>,
    fine_next: Vec<u32>,
    parent: Vec<u32>,
    kind: Vec<Option<DupKind>>,
    candidates: Vec<(u32, DupKind)>,
}

impl Deduplicator {
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// Adds the next document; returns its index.
    pub fn add(&mut self, fp: &Fingerprint) -> u32 {
        let idx = self.parent.len() as u32;
        self.parent.push(idx);
        self.kind.push(None);
        self.simhashes.push(fp.simhash.unwrap_or(0));
        self.has_simhash.push(fp.simhash.is_some());
        self.minhash_at
            .push(self.minhashes.len() as u32 / PERMUTATIONS as u32);
        self.minhashes.extend_from_slice(&fp.minhash);
        if self.bands.is_empty() {
            self.bands = (0..BANDS).map(|_| HashMap::new()).collect();
            self.fine_heads = (0..FINE_BANDS).map(|_| HashMap::new()).collect();
        }

        // Earlier documents this one matches, strongest evidence first.
        self.candidates.clear();
        if let Some(&m) = fp.url.and_then(|u| self.url.get(&u)) {
            self.candidates.push((m, DupKind::Url));
        }
        if let Some(&m) = self.exact.get(&fp.exact) {
            self.candidates.push((m, DupKind::Exact));
        }
        if let Some(sim) = fp.simhash {
            let mut near = std::mem::take(&mut self.candidates);
            self.simhash_tables.for_each_candidate(sim, |m| {
                if (self.simhashes[m as usize] ^ sim).count_ones() <= SIMHASH_MAX_DISTANCE
                    && self.estimated_jaccard(m, &fp.minhash) >= NEAR_MIN_JACCARD
                {
                    near.push((m, DupKind::SimHash));
                }
            });
            self.candidates = near;
        }
        if let Some(bands) = &fp.bands {
            for (b, h) in bands.iter().enumerate() {
                if let Some(&m) = self.bands[b].get(h) {
                    self.candidates.push((m, DupKind::MinHash));
                }
            }
        }
        if let Some(fine) = &fp.fine_bands {
            for (b, h) in fine.iter().enumerate() {
                let mut m = self.fine_heads[b].get(h).copied().unwrap_or(NONE);
                // The latest members of a bucket suffice: the earlier ones are in their clusters.
                for _ in 0..FINE_BUCKET_WALK {
                    if m == NONE {
                        break;
                    }
                    if self.estimated_jaccard(m, &fp.minhash) >= NEAR_MIN_JACCARD {
                        self.candidates.push((m, DupKind::MinHash));
                    }
                    m = self.fine_next[m as usize * FINE_BANDS + b];
                }
            }
        }
        let candidates = std::mem::take(&mut self.candidates);
        for &(m, kind) in &candidates {
            self.union(idx, m, kind);
        }
        self.candidates = candidates;

        if let Some(u) = fp.url {
            self.url.entry(u).or_insert(idx);
        }
        self.exact.entry(fp.exact).or_insert(idx);
        if let Some(sim) = fp.simhash {
            self.simhash_tables.insert(sim, idx);
        }
        if let Some(bands) = &fp.bands {
            for (b, h) in bands.iter().enumerate() {
                self.bands[b].entry(*h).or_insert(idx);
            }
        }
        for b in 0..FINE_BANDS {
            let previous = match &fp.fine_bands {
                Some(fine) => self.fine_heads[b].insert(fine[b], idx).unwrap_or(NONE),
                None => NONE,
            };
            self.fine_next.push(previous);
        }
        idx
    }

    /// Bytes the index holds on the heap (table capacities, not just what is used).
    pub fn heap_bytes(&self) -> usize {
        fn map<K, V>(m: &HashMap<K, V>) -> usize {
            // hashbrown: one control byte per bucket, buckets = capacity × 8 / 7
            m.capacity() * 8 / 7 * (std::mem::size_of::<(K, V)>() + 1)
        }
        fn vec<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        map(&self.url)
            + map(&self.exact)
            + self.simhash_tables.heap_bytes()
            + vec(&self.simhashes)
            + vec(&self.has_simhash)
            + vec(&self.minhashes)
            + vec(&self.minhash_at)
            + self.bands.iter().map(map).sum::<usize>()
            + self.fine_heads.iter().map(map).sum::<usize>()
            + vec(&self.fine_next)
            + vec(&self.parent)
            + vec(&self.kind)
    }

    /// Appends the whole index to `out` in a stable little-endian layout (maps in key order,
    /// so equal indexes encode to equal bytes). [`Deduplicator::decode`] reads it back.
    pub fn encode(&self, out: &mut Vec<u8>) {
        fn u32s(out: &mut Vec<u8>, v: &[u32]) {
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            v.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        fn map<K: Copy + Ord, V: Copy>(
            out: &mut Vec<u8>,
            m: &HashMap<K, V>,
            k: impl Fn(K) -> u64,
            v: impl Fn(V) -> u32,
        ) {
            let mut entries: Vec<(K, V)> = m.iter().map(|(a, b)| (*a, *b)).collect();
            entries.sort_unstable_by_key(|e| e.0);
            out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            for (a, b) in entries {
                out.extend_from_slice(&k(a).to_le_bytes());
                out.extend_from_slice(&v(b).to_le_bytes());
            }
        }
        u32s(out, &self.parent);
        out.extend(self.kind.iter().map(|k| k.map_or(0u8, |k| k as u8 + 1)));
        out.extend_from_slice(&(self.simhashes.len() as u64).to_le_bytes());
        self.simhashes
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        out.extend(self.has_simhash.iter().map(|&h| u8::from(h)));
        out.extend_from_slice(&(self.minhashes.len() as u64).to_le_bytes());
        self.minhashes
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        u32s(out, &self.minhash_at);
        u32s(out, &self.fine_next);
        map(out, &self.url, |k| k, |v| v);
        map(out, &self.exact, |k| k, |v| v);
        // The SimHash tables are not written: they are the hashes' blocks, rebuilt on decode.
        out.push(u8::from(!self.bands.is_empty()));
        for table in &self.bands {
            map(out, table, |k| k, |v| v);
        }
        for table in &self.fine_heads {
            map(out, table, u64::from, |v| v);
        }
    }

    /// Reads an index written by [`Deduplicator::encode`]; `None` when the bytes are not one.
    pub fn decode(bytes: &mut &[u8]) -> Option<Deduplicator> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if bytes.len() < n {
                return None;
            }
            let (head, tail) = bytes.split_at(n);
            *bytes = tail;
            Some(head)
        }
        fn u64_(bytes: &mut &[u8]) -> Option<u64> {
            Some(u64::from_le_bytes(take(bytes, 8)?.try_into().ok()?))
        }
        fn u32_(bytes: &mut &[u8]) -> Option<u32> {
            Some(u32::from_le_bytes(take(bytes, 4)?.try_into().ok()?))
        }
        fn len(bytes: &mut &[u8], item: usize) -> Option<usize> {
            let n = usize::try_from(u64_(bytes)?).ok()?;
            // A corrupt length must not allocate more than the bytes could hold.
            (n.checked_mul(item)? <= bytes.len()).then_some(n)
        }
        fn u32s(bytes: &mut &[u8]) -> Option<Vec<u32>> {
            let n = len(bytes, 4)?;
            (0..n).map(|_| u32_(bytes)).collect()
        }
        fn map<K: std::hash::Hash + Eq>(
            bytes: &mut &[u8],
            k: impl Fn(u64) -> Option<K>,
        ) -> Option<HashMap<K, u32>> {
            let n = len(bytes, 12)?;
            let mut m = HashMap::with_capacity(n);
            for _ in 0..n {
                let key = k(u64_(bytes)?)?;
                m.insert(key, u32_(bytes)?);
            }
            Some(m)
        }
        let parent = u32s(bytes)?;
        let kind = take(bytes, parent.len())?
            .iter()
            .map(|&k| match k {
                0 => Some(None),
                1 => Some(Some(DupKind::Url)),
                2 => Some(Some(DupKind::Exact)),
                3 => Some(Some(DupKind::SimHash)),
                4 => Some(Some(DupKind::MinHash)),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let n = len(bytes, 8)?;
        let simhashes = (0..n).map(|_| u64_(bytes)).collect::<Option<Vec<_>>>()?;
        let has_simhash = take(bytes, n)?
            .iter()
            .map(|&b| match b {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            })
            .collect::<Option<Vec<bool>>>()?;
        let n = len(bytes, 2)?;
        let minhashes = (0..n)
            .map(|_| Some(u16::from_le_bytes(take(bytes, 2)?.try_into().ok()?)))
            .collect::<Option<Vec<_>>>()?;
        let minhash_at = u32s(bytes)?;
        let fine_next = u32s(bytes)?;
        let url = map(bytes, Some)?;
        let exact = map(bytes, Some)?;
        let has_bands = take(bytes, 1)?[0] == 1;
        let (mut bands, mut fine_heads) = (Vec::new(), Vec::new());
        if has_bands {
            for _ in 0..BANDS {
                bands.push(map(bytes, Some)?);
            }
            for _ in 0..FINE_BANDS {
                fine_heads.push(map(bytes, |k| u32::try_from(k).ok())?);
            }
        }
        let docs = parent.len();
        let consistent = kind.len() == docs
            && simhashes.len() == docs
            && minhash_at.len() == docs
            && fine_next.len() == docs * FINE_BANDS
            && minhashes.len() % PERMUTATIONS == 0
            && parent.iter().all(|&p| (p as usize) < docs);
        if !consistent {
            return None;
        }
        let mut simhash_tables = SimHashTables::default();
        for (idx, (&sim, &present)) in simhashes.iter().zip(&has_simhash).enumerate() {
            if present {
                simhash_tables.insert(sim, idx as u32);
            }
        }
        Some(Deduplicator {
            url,
            exact,
            simhash_tables,
            simhashes,
            has_simhash,
            minhashes,
            minhash_at,
            bands,
            fine_heads,
            fine_next,
            parent,
            kind,
            candidates: Vec::new(),
        })
    }

    /// The share of equal minimum hashes of document `m` and `minhash`.
    fn estimated_jaccard(&self, m: u32, minhash: &[u16]) -> f64 {
        let at = self.minhash_at[m as usize] as usize * PERMUTATIONS;
        let Some(theirs) = self.minhashes.get(at..at + PERMUTATIONS) else {
            return 0.0; // m has no words
        };
        estimated_jaccard(theirs, minhash)
    }

    fn find(&mut self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            let grandparent = self.parent[self.parent[i as usize] as usize];
            self.parent[i as usize] = grandparent;
            i = grandparent;
        }
        i
    }

    /// Joins the clusters of `a` and `b`; the earlier keeper keeps, the other is marked with
    /// how it was found.
    fn union(&mut self, a: u32, b: u32, kind: DupKind) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return;
        }
        let (keeper, joined) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[joined as usize] = keeper;
        self.kind[joined as usize].get_or_insert(kind);
    }

    /// The label of every document, in the order added.
    pub fn labels(&mut self) -> Vec<DupLabel> {
        (0..self.parent.len() as u32)
            .map(|i| {
                let keeper = self.find(i);
                DupLabel {
                    keeper,
                    is_dup: keeper != i,
                    kind: if keeper != i {
                        self.kind[i as usize]
                    } else {
                        None
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
