//! Packing one epoch of a component into samples of `sample_len` tokens.
//!
//! A document's *unit* is its tokens followed by one EOS, so a trainer always sees where a
//! document ends. Offsets inside a document count in unit positions: offset `len` is its EOS.

/// Concat packing: units are laid end to end in `order` and cut into windows of `sample_len`;
/// the tail shorter than a window is dropped (and counted). Returns each window's start as
/// (position in `order`, offset in that unit) and the dropped token count.
pub fn concat_starts(
    order_len: usize,
    unit_len: impl Fn(usize) -> u64,
    sample_len: u64,
) -> (Vec<(u32, u32)>, u64) {
    let total: u64 = (0..order_len).map(&unit_len).sum();
    let samples = total / sample_len;
    let mut starts = Vec::with_capacity(samples as usize);
    let mut next = 0u64; // stream position where the next window starts
    let mut unit_start = 0u64;
    for position in 0..order_len {
        let len = unit_len(position);
        while starts.len() < samples as usize && next < unit_start + len {
            starts.push((position as u32, (next - unit_start) as u32));
            next += sample_len;
        }
        unit_start += len;
        if starts.len() == samples as usize {
            break;
        }
    }
    (starts, total - samples * sample_len)
}

/// What bin packing made of one epoch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Bins {
    /// Bin b holds `docs[offsets[b]..offsets[b + 1]]`, in the order they were placed.
    pub offsets: Vec<u32>,
    /// Positions in the component's member list.
    pub docs: Vec<u32>,
    /// Tokens cut from units longer than a window.
    pub truncated: u64,
    /// PAD tokens that fill the bins.
    pub padding: u64,
}

/// Bin packing: the documents of each group, taken in `order`, go whole into the fullest open
/// bin of their group that still has room (best fit), else into a new bin. A unit longer than
/// the window is cut to it. Groups are packed in group order; bins are numbered as opened.
pub fn pack_bins(
    order: &[u32],
    group_of: impl Fn(u32) -> u32,
    groups: usize,
    unit_len: impl Fn(u32) -> u64,
    sample_len: u64,
) -> Bins {
    // A stable counting sort keeps each group's documents in shuffled order.
    let mut by_group: Vec<Vec<u32>> = vec![Vec::new(); groups.max(1)];
    for &m in order {
        by_group[group_of(m) as usize].push(m);
    }
    let cap = sample_len as usize;
    let mut bin_of = Vec::with_capacity(order.len());
    let mut fill: Vec<u64> = Vec::new();
    let mut truncated = 0;
    for members in by_group {
        // open[r] holds the open bins with exactly r free tokens; `free` marks the non-empty ones.
        let mut open: Vec<Vec<u32>> = vec![Vec::new(); cap + 1];
        let mut free = BitSet::new(cap + 1);
        for m in members {
            let full = unit_len(m);
            let len = full.min(sample_len);
            truncated += full - len;
            let bin = match free.next_set(len as usize) {
                Some(r) => {
                    let bin = open[r].pop().expect("marked non-empty");
                    if open[r].is_empty() {
                        free.clear(r);
                    }
                    bin
                }
                None => {
                    fill.push(0);
                    (fill.len() - 1) as u32
                }
            };
            fill[bin as usize] += len;
            let left = (sample_len - fill[bin as usize]) as usize;
            if left > 0 {
                open[left].push(bin);
                free.set(left);
            }
            bin_of.push((bin, m));
        }
    }
    // Counting sort by bin, stable: each bin keeps its documents in placement order.
    let mut offsets = vec![0u32; fill.len() + 1];
    for &(bin, _) in &bin_of {
        offsets[bin as usize + 1] += 1;
    }
    for b in 0..fill.len() {
        offsets[b + 1] += offsets[b];
    }
    let mut cursor = offsets.clone();
    let mut docs = vec![0u32; bin_of.len()];
    for &(bin, m) in &bin_of {
        docs[cursor[bin as usize] as usize] = m;
        cursor[bin as usize] += 1;
    }
    let padding = fill.iter().map(|f| sample_len - f).sum();
    Bins {
        offsets,
        docs,
        truncated,
        padding,
    }
}

/// A fixed-size bit set with "next set bit at or after" in O(size / 64).
struct BitSet {
    words: Vec<u64>,
}

impl BitSet {
    fn new(bits: usize) -> Self {
        BitSet {
            words: vec![0; bits.div_ceil(64)],
        }
    }

    fn set(&mut self, i: usize) {
        self.words[i / 64] |= 1 << (i % 64);
    }

    fn clear(&mut self, i: usize) {
        self.words[i / 64] &= !(1 << (i % 64));
    }

    fn next_set(&self, from: usize) -> Option<usize> {
        let mut w = from / 64;
        if w >= self.words.len() {
            return None;
        }
        let mut word = self.words[w] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some(w * 64 + word.trailing_zeros() as usize);
            }
            w += 1;
            if w == self.words.len() {
                return None;
            }
            word = self.words[w];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_cuts_windows_and_counts_the_tail() {
        // units of 3, 5, 2 tokens = 10 tokens; windows of 4: starts at 0, 4; 2 dropped.
        let lens = [3u64, 5, 2];
        let (starts, dropped) = concat_starts(3, |i| lens[i], 4);
        assert_eq!(starts, vec![(0, 0), (1, 1)]);
        assert_eq!(dropped, 2);
        // a unit longer than a window holds several starts
        let (starts, dropped) = concat_starts(1, |_| 9, 4);
        assert_eq!(starts, vec![(0, 0), (0, 4)]);
        assert_eq!(dropped, 1);
    }

    #[test]
    fn bins_hold_whole_documents_of_one_group() {
        let lens = [3u64, 3, 2, 1, 6, 4];
        let groups = [0u32, 0, 0, 0, 1, 1];
        let order = [0u32, 1, 2, 3, 4, 5];
        let bins = pack_bins(&order, |m| groups[m as usize], 2, |m| lens[m as usize], 5);
        // group 0: 3 → bin0 (2 free); 3 → bin1 (2 free); 2 → bin1 (best fit, LIFO) full;
        // 1 → bin0 (1 free). group 1: 6 is cut to 5 → bin2; 4 → bin3.
        assert_eq!(bins.offsets, vec![0, 2, 4, 5, 6]);
        assert_eq!(bins.docs, vec![0, 3, 1, 2, 4, 5]);
        assert_eq!(bins.truncated, 1);
        assert_eq!(bins.padding, 2, "bins 0 and 3 each have one free token");
    }

    #[test]
    fn bitset_finds_the_next_set_bit() {
        let mut b = BitSet::new(200);
        b.set(3);
        b.set(130);
        assert_eq!(b.next_set(0), Some(3));
        assert_eq!(b.next_set(4), Some(130));
        b.clear(130);
        assert_eq!(b.next_set(4), None);
        assert_eq!(b.next_set(199), None);
    }
}
