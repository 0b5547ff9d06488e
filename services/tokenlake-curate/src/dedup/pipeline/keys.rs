//! The keys a document is grouped by, one record each: `[space][key: u64 BE][row: u64 BE]`.
//!
//! Spaces: 0 the URL, 1 the exact content, 2–15 the 14 MinHash bands, 16–43 the 28 fine
//! bands, 44–53 the 10 SimHash tables. A SimHash table's key is the whole hash with its bits
//! permuted so that the table's two blocks come first: the group is the key's leading 25 or 26
//! bits, and two keys' Hamming distance is their hashes' (a permutation of bits keeps it), so
//! the candidate step checks distances without the hashes themselves.
//!
//! A record goes to partition `hash(space, group) mod P`, so each group lies whole in one
//! partition and a partition's sorted records are its groups, one after another, each in row
//! order (SimHash groups in key order).

use xxhash_rust::xxh3::xxh3_64;

use super::super::{BANDS, DupKind, FINE_BANDS, Fingerprint};

pub const KEY_RECORD: usize = 17;
pub type KeyRecord = [u8; KEY_RECORD];

const URL: u8 = 0;
const EXACT: u8 = 1;
const BAND: u8 = 2;
const FINE: u8 = BAND + BANDS as u8;
const SIMHASH: u8 = FINE + FINE_BANDS as u8;
const SIMHASH_TABLES: u8 = 10;

/// Where each of the SimHash's five blocks starts, and its width (as [`super::super::SimHashTables`]).
const SIMHASH_BLOCKS: [(u32, u32); 5] = [(0, 13), (13, 13), (26, 13), (39, 13), (52, 12)];
/// Table `t`'s pair of blocks, for i < j in order.
const PAIRS: [(usize, usize); 10] = [
    (0, 1),
    (0, 2),
    (0, 3),
    (0, 4),
    (1, 2),
    (1, 3),
    (1, 4),
    (2, 3),
    (2, 4),
    (3, 4),
];

/// What a space's groups are and how their members are linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Every member after the first is linked to the first (URL, exact, MinHash bands).
    First(DupKind),
    /// Each member is checked against the 64 members before it (fine bands).
    Window,
    /// Every pair within distance 3 is checked (SimHash tables).
    Pairs,
}

pub fn group_of_space(space: u8) -> Group {
    match space {
        URL => Group::First(DupKind::Url),
        EXACT => Group::First(DupKind::Exact),
        s if s < FINE => Group::First(DupKind::MinHash),
        s if s < SIMHASH => Group::Window,
        _ => Group::Pairs,
    }
}

/// The part of a key that names its group.
pub fn group_key(space: u8, key: u64) -> u64 {
    if space >= SIMHASH {
        let (i, j) = PAIRS[(space - SIMHASH) as usize];
        key >> (64 - SIMHASH_BLOCKS[i].1 - SIMHASH_BLOCKS[j].1)
    } else {
        key
    }
}

/// The SimHash with table `t`'s two blocks moved to the top, then the other three in order.
fn permuted(sim: u64, t: usize) -> u64 {
    let block = |b: usize| {
        let (at, width) = SIMHASH_BLOCKS[b];
        (sim >> at) & ((1u64 << width) - 1)
    };
    let (i, j) = PAIRS[t];
    let mut key = 0u64;
    for b in [i, j]
        .into_iter()
        .chain((0..5).filter(|&b| b != i && b != j))
    {
        key = (key << SIMHASH_BLOCKS[b].1) | block(b);
    }
    key
}

/// Calls `each(space, key)` for every key of `fp`.
pub fn for_each_key(fp: &Fingerprint, mut each: impl FnMut(u8, u64)) {
    if let Some(url) = fp.url {
        each(URL, url);
    }
    each(EXACT, fp.exact);
    if let Some(bands) = &fp.bands {
        for (b, &h) in bands.iter().enumerate() {
            each(BAND + b as u8, h);
        }
    }
    if let Some(fine) = &fp.fine_bands {
        for (b, &h) in fine.iter().enumerate() {
            each(FINE + b as u8, u64::from(h));
        }
    }
    if let Some(sim) = fp.simhash {
        for t in 0..SIMHASH_TABLES as usize {
            each(SIMHASH + t as u8, permuted(sim, t));
        }
    }
}

/// The partition of `P` that holds the group of `(space, key)`.
pub fn partition(space: u8, key: u64, partitions: u32) -> u32 {
    let mut bytes = [0u8; 9];
    bytes[0] = space;
    bytes[1..].copy_from_slice(&group_key(space, key).to_le_bytes());
    (xxh3_64(&bytes) % u64::from(partitions)) as u32
}

pub fn encode(space: u8, key: u64, row: u64) -> KeyRecord {
    let mut r = [0u8; KEY_RECORD];
    r[0] = space;
    r[1..9].copy_from_slice(&key.to_be_bytes());
    r[9..].copy_from_slice(&row.to_be_bytes());
    r
}

pub fn decode(r: &KeyRecord) -> (u8, u64, u64) {
    let key = u64::from_be_bytes(r[1..9].try_into().expect("8 bytes"));
    let row = u64::from_be_bytes(r[9..].try_into().expect("8 bytes"));
    (r[0], key, row)
}

/// Keys a fingerprint has at most (URL, exact, bands, fine bands, SimHash tables).
pub const MAX_KEYS: usize = 2 + BANDS + FINE_BANDS + SIMHASH_TABLES as usize;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permuted_keys_keep_distances_and_group_by_the_tables_blocks() {
        let a = 0x0123_4567_89ab_cdefu64;
        for flips in [1u64 << 3 | 1 << 40, 1 << 63 | 1 << 0 | 1 << 27] {
            let b = a ^ flips;
            for (t, &(i, j)) in PAIRS.iter().enumerate() {
                let (ka, kb) = (permuted(a, t), permuted(b, t));
                assert_eq!((ka ^ kb).count_ones(), (a ^ b).count_ones());
                let untouched = |blk: usize| {
                    let (at, w) = SIMHASH_BLOCKS[blk];
                    flips >> at & ((1 << w) - 1) == 0
                };
                let space = SIMHASH + t as u8;
                assert_eq!(
                    group_key(space, ka) == group_key(space, kb),
                    untouched(i) && untouched(j),
                    "table {t}"
                );
            }
        }
    }
}
