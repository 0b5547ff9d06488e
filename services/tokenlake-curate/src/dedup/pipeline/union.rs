//! The ordered union-find that turns edges into labels. Edges are applied in `(row, kind)`
//! order, exactly as [`super::super::Deduplicator`] unions a document's candidates when it is
//! added (strongest evidence first), so the labels are the same: every cluster's keeper is its
//! earliest row, and a row that stops being a keeper is marked with the kind of the edge that
//! joined its cluster to an earlier one. The order of edges with one `(row, kind)` changes
//! nothing, which is why edges from any number of partitions can be merged.
//!
//! Memory is dense: 4 bytes of parent per row (8 where a row number needs more than 32 bits)
//! and one byte of kind, 5 (or 9) bytes per document.

use super::super::{DupKind, DupLabel};

enum Parents {
    Narrow(Vec<u32>),
    Wide(Vec<u64>),
}

impl Parents {
    fn get(&self, i: u64) -> u64 {
        match self {
            Parents::Narrow(p) => u64::from(p[i as usize]),
            Parents::Wide(p) => p[i as usize],
        }
    }

    fn set(&mut self, i: u64, v: u64) {
        match self {
            Parents::Narrow(p) => p[i as usize] = v as u32,
            Parents::Wide(p) => p[i as usize] = v,
        }
    }
}

/// A row's label: its cluster's keeper (itself when it keeps) and how it joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowLabel {
    pub keeper: u64,
    pub kind: Option<DupKind>,
}

impl RowLabel {
    pub fn is_dup(&self, row: u64) -> bool {
        self.keeper != row
    }
}

impl From<DupLabel> for RowLabel {
    fn from(l: DupLabel) -> RowLabel {
        RowLabel {
            keeper: u64::from(l.keeper),
            kind: l.kind,
        }
    }
}

pub struct OrderedUnion {
    parent: Parents,
    /// 0 for none, else `DupKind as u8 + 1`.
    kind: Vec<u8>,
}

fn kind_code(k: Option<DupKind>) -> u8 {
    k.map_or(0, |k| k as u8 + 1)
}

pub(super) fn kind_of_code(code: u8) -> Option<DupKind> {
    match code {
        1 => Some(DupKind::Url),
        2 => Some(DupKind::Exact),
        3 => Some(DupKind::SimHash),
        4 => Some(DupKind::MinHash),
        _ => None,
    }
}

impl OrderedUnion {
    /// `rows` rows, each its own cluster, except the first ones, which start from their
    /// stored labels (`before`, in row order); returns the union-find and how many stored
    /// labels there were. A stored keeper after its row, or more labels than rows, is refused.
    pub fn new(
        rows: u64,
        before: impl IntoIterator<Item = RowLabel>,
    ) -> Result<(OrderedUnion, u64), String> {
        let mut parent = if rows <= u64::from(u32::MAX) {
            Parents::Narrow((0..rows as u32).collect())
        } else {
            Parents::Wide((0..rows).collect())
        };
        let mut kind = vec![0u8; rows as usize];
        let mut count = 0u64;
        for (row, label) in before.into_iter().enumerate() {
            let row = row as u64;
            if row >= rows {
                return Err(format!("more stored labels than the {rows} rows"));
            }
            if label.keeper > row {
                return Err(format!(
                    "row {row}'s stored keeper is row {}, after it",
                    label.keeper
                ));
            }
            parent.set(row, label.keeper);
            kind[row as usize] = kind_code(label.kind);
            count += 1;
        }
        Ok((OrderedUnion { parent, kind }, count))
    }

    pub fn rows(&self) -> u64 {
        self.kind.len() as u64
    }

    /// Heap bytes of the arrays.
    pub fn heap_bytes(&self) -> usize {
        let parents = match &self.parent {
            Parents::Narrow(p) => p.capacity() * 4,
            Parents::Wide(p) => p.capacity() * 8,
        };
        parents + self.kind.capacity()
    }

    fn find(&mut self, mut i: u64) -> u64 {
        loop {
            let p = self.parent.get(i);
            if p == i {
                return i;
            }
            let grandparent = self.parent.get(p);
            self.parent.set(i, grandparent);
            i = grandparent;
        }
    }

    /// Applies the edge `row → earlier` found as `kind`; edges must come in `(row, kind)`
    /// order.
    pub fn union(&mut self, row: u64, earlier: u64, kind: DupKind) {
        let (ra, rb) = (self.find(row), self.find(earlier));
        if ra == rb {
            return;
        }
        let (keeper, joined) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent.set(joined, keeper);
        let k = &mut self.kind[joined as usize];
        if *k == 0 {
            *k = kind_code(Some(kind));
        }
    }

    pub fn label(&mut self, row: u64) -> RowLabel {
        let keeper = self.find(row);
        RowLabel {
            keeper,
            kind: if keeper == row {
                None
            } else {
                kind_of_code(self.kind[row as usize])
            },
        }
    }
}
