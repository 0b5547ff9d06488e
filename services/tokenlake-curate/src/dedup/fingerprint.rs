//! A document's fingerprints: its URL key, the hash of its normalised content, its 64-bit
//! SimHash and its MinHash signature (with the finer bands' keys), computed once per document
//! and all the de-duplication index needs of it.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::{BANDS, FINE_BANDS, FINE_ROWS, PERMUTATIONS, ROWS, SHINGLE_WORDS, SIMHASH_MIN_WORDS};
use crate::words::for_each_word;

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
        Fingerprint::from_minimums(url.map(url_key), exact, simhash, &mins)
    }
}

impl Fingerprint {
    /// The fingerprint of a document with words, from its 112 minimum hashes: the LSH bands'
    /// keys and the low bits kept for Jaccard estimates are all derived here, so synthetic
    /// fingerprints (benchmarks, tests) band exactly as real ones.
    pub fn from_minimums(
        url: Option<u64>,
        exact: u64,
        simhash: Option<u64>,
        mins: &[u64; PERMUTATIONS],
    ) -> Fingerprint {
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
            url,
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
pub(super) fn url_key(url: &str) -> u64 {
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
