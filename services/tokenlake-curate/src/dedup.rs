//! De-duplication (Ziya2's content de-duplication, FineWeb's MinHash): URL duplicates, exact
//! duplicates of the normalised content (punctuation, case and whitespace ignored), SimHash
//! near-duplicates (64 bits, Hamming distance ≤ 3, as Ziya2) and MinHash-LSH near-duplicates
//! (5-word shingles, 112 hashes as 14 bands × 8 rows, as FineWeb).
//!
//! Documents are added in ingest order. A document that matches an earlier one joins that
//! one's cluster; clusters that a document links are merged. Every cluster's keeper is its
//! earliest document, so the labels depend only on the documents and their order, never on
//! threads or batch sizes.

use std::collections::HashMap;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::words::for_each_word;

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

/// What de-duplication keeps of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub url: Option<u64>,
    pub exact: u64,
    /// None when the document has too few words for SimHash to mean anything.
    pub simhash: Option<u64>,
    /// One hash per LSH band; None when the document has no words.
    pub bands: Option<[u64; BANDS]>,
    /// One hash per fine band (32 bits: a collision only costs a verification).
    pub fine_bands: Option<[u32; FINE_BANDS]>,
    /// The low 16 bits of the 112 minimum hashes, to estimate the Jaccard similarity of a
    /// match (equal by chance once in 65 536); empty when the document has no words.
    pub minhash: Vec<u16>,
}

impl Fingerprint {
    /// Appends a stable little-endian encoding (what a sharded ingest keeps for the commit's
    /// cross-shard de-duplication); [`Fingerprint::decode`] reads it back.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let present = u8::from(self.url.is_some())
            | u8::from(self.simhash.is_some()) << 1
            | u8::from(self.bands.is_some()) << 2
            | u8::from(self.fine_bands.is_some()) << 3;
        out.push(present);
        out.extend_from_slice(&self.exact.to_le_bytes());
        if let Some(url) = self.url {
            out.extend_from_slice(&url.to_le_bytes());
        }
        if let Some(simhash) = self.simhash {
            out.extend_from_slice(&simhash.to_le_bytes());
        }
        for band in self.bands.iter().flatten() {
            out.extend_from_slice(&band.to_le_bytes());
        }
        for band in self.fine_bands.iter().flatten() {
            out.extend_from_slice(&band.to_le_bytes());
        }
        out.extend_from_slice(&(self.minhash.len() as u32).to_le_bytes());
        for h in &self.minhash {
            out.extend_from_slice(&h.to_le_bytes());
        }
    }

    /// Reads one fingerprint written by [`Fingerprint::encode`]; `None` when the bytes are not
    /// one.
    pub fn decode(bytes: &mut &[u8]) -> Option<Fingerprint> {
        fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
            let (head, tail) = bytes.split_first_chunk::<N>()?;
            *bytes = tail;
            Some(*head)
        }
        let present = take::<1>(bytes)?[0];
        let exact = u64::from_le_bytes(take(bytes)?);
        let url = if present & 1 != 0 {
            Some(u64::from_le_bytes(take(bytes)?))
        } else {
            None
        };
        let simhash = if present & 2 != 0 {
            Some(u64::from_le_bytes(take(bytes)?))
        } else {
            None
        };
        let bands = if present & 4 != 0 {
            let mut bands = [0u64; BANDS];
            for b in &mut bands {
                *b = u64::from_le_bytes(take(bytes)?);
            }
            Some(bands)
        } else {
            None
        };
        let fine_bands = if present & 8 != 0 {
            let mut bands = [0u32; FINE_BANDS];
            for b in &mut bands {
                *b = u32::from_le_bytes(take(bytes)?);
            }
            Some(bands)
        } else {
            None
        };
        let n = u32::from_le_bytes(take(bytes)?) as usize;
        let mut minhash = Vec::with_capacity(n.min(PERMUTATIONS));
        for _ in 0..n {
            minhash.push(u16::from_le_bytes(take(bytes)?));
        }
        Some(Fingerprint {
            url,
            exact,
            simhash,
            bands,
            fine_bands,
            minhash,
        })
    }
}

/// Seeds of the 112 hash functions, fixed so that labels never change between releases.
fn permutation_seeds() -> [u64; PERMUTATIONS] {
    let mut seeds = [0u64; PERMUTATIONS];
    let mut state = 0x746f_6b65_6e6c_616b_u64; // "tokenlak"
    for s in &mut seeds {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        *s = mix(state);
    }
    seeds
}

/// The SplitMix64 finaliser: a bijection that spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Computes fingerprints; holds the permutation seeds and scratch buffers.
pub struct Fingerprinter {
    seeds: [u64; PERMUTATIONS],
    word_hashes: Vec<u64>,
    normalised: String,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Fingerprinter {
            seeds: permutation_seeds(),
            word_hashes: Vec::new(),
            normalised: String::new(),
        }
    }
}

impl Fingerprinter {
    pub fn fingerprint(&mut self, url: Option<&str>, text: &str) -> Fingerprint {
        self.word_hashes.clear();
        for_each_word(text, |w| self.word_hashes.push(xxh3_64(w.as_bytes())));
        // Exact duplicates: the letters and digits alone, lower-cased, so that copies that
        // lost or gained punctuation and spacing (`core::arch` → `corearch`) still match.
        self.normalised.clear();
        for c in text.chars().filter(|c| c.is_alphanumeric()) {
            self.normalised.extend(c.to_lowercase());
        }
        let exact = xxh3_64(self.normalised.as_bytes());
        let words = &self.word_hashes;
        if words.is_empty() {
            // No letters or digits: only the exact text (whitespace collapsed) can match.
            let collapsed: Vec<&str> = text.split_whitespace().collect();
            return Fingerprint {
                url: url.map(url_key),
                exact: xxh3_64_with_seed(collapsed.join(" ").as_bytes(), 1),
                simhash: None,
                bands: None,
                fine_bands: None,
                minhash: Vec::new(),
            };
        }

        // SimHash over the words, each as often as it occurs (Charikar's weighting): edits
        // that drop, swap or repeat a few words move few votes.
        let simhash = (words.len() >= SIMHASH_MIN_WORDS).then(|| {
            let mut votes = [0i32; 64];
            for &w in words {
                let f = mix(w);
                for (bit, vote) in votes.iter_mut().enumerate() {
                    *vote += if f >> bit & 1 == 1 { 1 } else { -1 };
                }
            }
            votes.iter().enumerate().fold(
                0u64,
                |acc, (bit, &v)| if v > 0 { acc | 1 << bit } else { acc },
            )
        });

        // MinHash over 5-word shingles (a shorter document is one shingle).
        let mut mins = [u64::MAX; PERMUTATIONS];
        let n = SHINGLE_WORDS.min(words.len());
        for shingle in words.windows(n) {
            let mut h = 0u64;
            for (i, w) in shingle.iter().enumerate() {
                h ^= w.rotate_left(13 * i as u32);
            }
            let h = mix(h);
            for (m, seed) in mins.iter_mut().zip(&self.seeds) {
                *m = (*m).min(mix(h ^ seed));
            }
        }
        let band_hash = |rows: &[u64], seed: u64| {
            let mut bytes = [0u8; ROWS * 8];
            for (chunk, v) in bytes.chunks_exact_mut(8).zip(rows) {
                chunk.copy_from_slice(&v.to_le_bytes());
            }
            xxh3_64_with_seed(&bytes[..rows.len() * 8], seed)
        };
        let mut bands = [0u64; BANDS];
        for (b, band) in bands.iter_mut().enumerate() {
            *band = band_hash(&mins[b * ROWS..(b + 1) * ROWS], b as u64);
        }
        let mut fine_bands = [0u32; FINE_BANDS];
        for (b, band) in fine_bands.iter_mut().enumerate() {
            *band = band_hash(&mins[b * FINE_ROWS..(b + 1) * FINE_ROWS], 1000 + b as u64) as u32;
        }
        Fingerprint {
            url: url.map(url_key),
            exact,
            simhash,
            bands: Some(bands),
            fine_bands: Some(fine_bands),
            minhash: mins.iter().map(|&m| m as u16).collect(),
        }
    }
}

/// URLs that differ only in scheme, a `www.` or the case of the host, or a trailing slash are
/// one. Queries and fragments are kept: they often name different documents of one page.
fn url_key(url: &str) -> u64 {
    let url = url.trim();
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (host, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = host.to_ascii_lowercase();
    let key = format!(
        "{}{}",
        host.trim_start_matches("www."),
        path.strip_suffix('/').unwrap_or(path)
    );
    xxh3_64(key.as_bytes())
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

/// The de-duplication index over the documents added so far.
#[derive(Default)]
pub struct Deduplicator {
    url: HashMap<u64, u32>,
    exact: HashMap<u64, u32>,
    /// SimHash split into four 16-bit blocks: two hashes within distance 3 share a block.
    simhash_blocks: [HashMap<u16, Vec<u32>>; 4],
    simhashes: Vec<u64>,
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
            for (block, table) in self.simhash_blocks.iter().enumerate() {
                if let Some(docs) = table.get(&((sim >> (16 * block)) as u16)) {
                    for &m in docs {
                        if (self.simhashes[m as usize] ^ sim).count_ones() <= SIMHASH_MAX_DISTANCE
                            && self.estimated_jaccard(m, &fp.minhash) >= NEAR_MIN_JACCARD
                        {
                            self.candidates.push((m, DupKind::SimHash));
                        }
                    }
                }
            }
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
            for (block, table) in self.simhash_blocks.iter_mut().enumerate() {
                table
                    .entry((sim >> (16 * block)) as u16)
                    .or_default()
                    .push(idx);
            }
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
            + self
                .simhash_blocks
                .iter()
                .map(|t| map(t) + t.values().map(vec).sum::<usize>())
                .sum::<usize>()
            + vec(&self.simhashes)
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
        out.extend_from_slice(&(self.minhashes.len() as u64).to_le_bytes());
        self.minhashes
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        u32s(out, &self.minhash_at);
        u32s(out, &self.fine_next);
        map(out, &self.url, |k| k, |v| v);
        map(out, &self.exact, |k| k, |v| v);
        for table in &self.simhash_blocks {
            let mut keys: Vec<&u16> = table.keys().collect();
            keys.sort_unstable();
            out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
            for k in keys {
                out.extend_from_slice(&k.to_le_bytes());
                u32s(out, &table[k]);
            }
        }
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
        let n = len(bytes, 2)?;
        let minhashes = (0..n)
            .map(|_| Some(u16::from_le_bytes(take(bytes, 2)?.try_into().ok()?)))
            .collect::<Option<Vec<_>>>()?;
        let minhash_at = u32s(bytes)?;
        let fine_next = u32s(bytes)?;
        let url = map(bytes, Some)?;
        let exact = map(bytes, Some)?;
        let mut simhash_blocks: [HashMap<u16, Vec<u32>>; 4] = Default::default();
        for table in &mut simhash_blocks {
            let n = len(bytes, 10)?;
            for _ in 0..n {
                let k = u16::from_le_bytes(take(bytes, 2)?.try_into().ok()?);
                table.insert(k, u32s(bytes)?);
            }
        }
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
        consistent.then_some(Deduplicator {
            url,
            exact,
            simhash_blocks,
            simhashes,
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
        let equal = theirs.iter().zip(minhash).filter(|(a, b)| a == b).count();
        equal as f64 / PERMUTATIONS as f64
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
mod tests {

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

    use super::*;

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
}
