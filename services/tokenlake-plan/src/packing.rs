//! Packing one epoch of a component into samples of `sample_len` tokens.
//!
//! A document's *unit* is its tokens followed by one EOS, so a trainer always sees where a
//! document ends. Offsets inside a document count in unit positions: offset `len` is its EOS.

use std::collections::BTreeMap;

/// Concat packing: units are laid end to end in `order` and cut into windows of `sample_len`;
/// the tail shorter than a window is dropped (and counted). Returns each window's start as
/// (position in `order`, offset in that unit) and the dropped token count.
pub fn concat_starts(
    order_len: u64,
    unit_len: impl Fn(u64) -> u64,
    sample_len: u64,
) -> (Vec<(u64, u32)>, u64) {
    let total: u64 = (0..order_len).map(&unit_len).sum();
    let samples = total / sample_len;
    let mut starts = Vec::with_capacity(samples as usize);
    let mut next = 0u64; // stream position where the next window starts
    let mut unit_start = 0u64;
    for position in 0..order_len {
        let len = unit_len(position);
        while starts.len() < samples as usize && next < unit_start + len {
            starts.push((position, (next - unit_start) as u32));
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
    pub offsets: Vec<u64>,
    /// Positions in the component's member list.
    pub docs: Vec<u64>,
    /// Tokens cut from units longer than a window.
    pub truncated: u64,
    /// PAD tokens that fill the bins.
    pub padding: u64,
}

/// Bin packing: the documents of each group, taken in `order`, go whole into the fullest open
/// bin of their group that still has room (best fit), else into a new bin. A unit longer than
/// the window is cut to it. Groups are packed in group order; bins are numbered as opened.
pub fn pack_bins(
    order: &[u64],
    group_of: impl Fn(u64) -> u32,
    groups: usize,
    unit_len: impl Fn(u64) -> u64,
    sample_len: u64,
) -> Bins {
    // A stable counting sort keeps each group's documents in shuffled order.
    let mut by_group: Vec<Vec<u64>> = vec![Vec::new(); groups.max(1)];
    for &m in order {
        by_group[group_of(m) as usize].push(m);
    }
    let mut bin_of = Vec::with_capacity(order.len());
    let mut fill: Vec<u64> = Vec::new();
    let mut truncated = 0;
    for members in by_group {
        // The group's open bins by free tokens, each list in the order the bins got there (the
        // last one is taken first): best fit in O(log bins) per document, and memory for the
        // open bins only, whatever `sample_len` is.
        let mut open: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for m in members {
            let full = unit_len(m);
            let len = full.min(sample_len);
            truncated += full - len;
            let fit = open.range_mut(len..).next().map(|(&free, bins)| {
                let bin = bins.pop().expect("lists in the map are not empty");
                (free, bin, bins.is_empty())
            });
            let bin = match fit {
                Some((free, bin, emptied)) => {
                    if emptied {
                        open.remove(&free);
                    }
                    bin
                }
                None => {
                    fill.push(0);
                    (fill.len() - 1) as u64
                }
            };
            fill[bin as usize] += len;
            let left = sample_len - fill[bin as usize];
            if left > 0 {
                open.entry(left).or_default().push(bin);
            }
            bin_of.push((bin, m));
        }
    }
    // Counting sort by bin, stable: each bin keeps its documents in placement order.
    let mut offsets = vec![0u64; fill.len() + 1];
    for &(bin, _) in &bin_of {
        offsets[bin as usize + 1] += 1;
    }
    for b in 0..fill.len() {
        offsets[b + 1] += offsets[b];
    }
    let mut cursor = offsets.clone();
    let mut docs = vec![0u64; bin_of.len()];
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_cuts_windows_and_counts_the_tail() {
        // units of 3, 5, 2 tokens = 10 tokens; windows of 4: starts at 0, 4; 2 dropped.
        let lens = [3u64, 5, 2];
        let (starts, dropped) = concat_starts(3, |i| lens[i as usize], 4);
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
        let order = [0u64, 1, 2, 3, 4, 5];
        let bins = pack_bins(&order, |m| groups[m as usize], 2, |m| lens[m as usize], 5);
        // group 0: 3 → bin0 (2 free); 3 → bin1 (2 free); 2 → bin1 (best fit, LIFO) full;
        // 1 → bin0 (1 free). group 1: 6 is cut to 5 → bin2; 4 → bin3.
        assert_eq!(bins.offsets, vec![0, 2, 4, 5, 6]);
        assert_eq!(bins.docs, vec![0, 3, 1, 2, 4, 5]);
        assert_eq!(bins.truncated, 1);
        assert_eq!(bins.padding, 2, "bins 0 and 3 each have one free token");
    }

    /// A window of four billion tokens costs what its documents cost: bin packing used to
    /// allocate a list per possible free count (about 100 GB here) before placing anything.
    #[test]
    fn a_huge_window_costs_what_its_documents_cost() {
        let lens = [5u64, 7, 3];
        let order = [2u64, 0, 1];
        let window = u64::from(u32::MAX) - 1;
        let bins = pack_bins(&order, |_| 0, 1, |m| lens[m as usize], window);
        assert_eq!(bins.offsets, vec![0, 3]);
        assert_eq!(bins.docs, vec![2, 0, 1]);
        assert_eq!(bins.padding, window - 15);
    }

    /// Best fit by brute force: the open bin with the fewest free tokens that still has room;
    /// among equals, the one that got there last.
    fn reference(order: &[u64], lens: &[u64], window: u64) -> Vec<Vec<u64>> {
        let mut bins: Vec<(u64, Vec<u64>)> = Vec::new();
        let mut open: Vec<(u64, u64, usize)> = Vec::new(); // free, when it got there, bin
        for (step, &m) in order.iter().enumerate() {
            let len = lens[m as usize].min(window);
            let best = open
                .iter()
                .enumerate()
                .filter(|(_, o)| o.0 >= len)
                .min_by_key(|(_, o)| (o.0, std::cmp::Reverse(o.1)))
                .map(|(i, _)| i);
            let bin = match best {
                Some(i) => open.swap_remove(i).2,
                None => {
                    bins.push((0, Vec::new()));
                    bins.len() - 1
                }
            };
            bins[bin].0 += len;
            bins[bin].1.push(m);
            if bins[bin].0 < window {
                open.push((window - bins[bin].0, step as u64, bin));
            }
        }
        bins.into_iter().map(|(_, docs)| docs).collect()
    }

    proptest::proptest! {
        #[test]
        fn bins_are_best_fit_as_by_brute_force(
            lens in proptest::collection::vec(1u64..40, 0..60),
            window in 1u64..48,
        ) {
            let order: Vec<u64> = (0..lens.len() as u64).rev().collect();
            let bins = pack_bins(&order, |_| 0, 1, |m| lens[m as usize], window);
            let packed: Vec<Vec<u64>> = bins
                .offsets
                .windows(2)
                .map(|w| bins.docs[w[0] as usize..w[1] as usize].to_vec())
                .collect();
            proptest::prop_assert_eq!(packed, reference(&order, &lens, window));
        }
    }
}
