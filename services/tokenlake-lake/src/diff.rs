//! `diff`: what changed between two versions, by document identity (`doc_id`), per source.
//!
//! Comparing doc ids rather than fragments keeps the answer right after compaction or
//! re-ingest, which rewrite fragments without changing documents.

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use serde::Serialize;
use tokenlake_schemas::columns;

use crate::lake::scan_columns;
use crate::{Lake, Result, VersionSpec};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SourceDiff {
    pub source: String,
    pub rows_added: u64,
    pub tokens_added: u64,
    pub rows_removed: u64,
    pub tokens_removed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    pub lake: String,
    pub from_version: u64,
    pub to_version: u64,
    pub rows_added: u64,
    pub tokens_added: u64,
    pub rows_removed: u64,
    pub tokens_removed: u64,
    /// Sources with any change, by name.
    pub by_source: Vec<SourceDiff>,
}

/// One document as the diff sees it; sorted by `doc_id`.
#[derive(Clone, Copy)]
struct Entry {
    doc_id: u64,
    source: u32,
    tokens: u32,
}

/// Interns source names so an entry stays 16 bytes.
#[derive(Default)]
struct Sources {
    names: Vec<String>,
    index: BTreeMap<String, u32>,
}

impl Sources {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.index.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), id);
        id
    }
}

impl Lake {
    /// Rows and tokens added and removed, in total and by source, going from `from` to `to`.
    pub async fn diff(&self, from: &VersionSpec, to: &VersionSpec) -> Result<Diff> {
        let from_version = self.resolve(from).await?;
        let to_version = self.resolve(to).await?;
        let mut sources = Sources::default();
        let old = self.entries(from_version, &mut sources).await?;
        let new = self.entries(to_version, &mut sources).await?;
        let (added, removed) = changed_entries(&old, &new);

        let mut by_source: Vec<SourceDiff> = sources
            .names
            .iter()
            .map(|name| SourceDiff {
                source: name.clone(),
                ..SourceDiff::default()
            })
            .collect();
        for e in &added {
            let d = &mut by_source[e.source as usize];
            d.rows_added += 1;
            d.tokens_added += u64::from(e.tokens);
        }
        for e in &removed {
            let d = &mut by_source[e.source as usize];
            d.rows_removed += 1;
            d.tokens_removed += u64::from(e.tokens);
        }
        by_source.retain(|d| d.rows_added + d.rows_removed > 0);
        by_source.sort_by(|a, b| a.source.cmp(&b.source));
        Ok(Diff {
            lake: self.location().to_string(),
            from_version,
            to_version,
            rows_added: added.len() as u64,
            tokens_added: added.iter().map(|e| u64::from(e.tokens)).sum(),
            rows_removed: removed.len() as u64,
            tokens_removed: removed.iter().map(|e| u64::from(e.tokens)).sum(),
            by_source,
        })
    }

    async fn entries(&self, version: u64, sources: &mut Sources) -> Result<Vec<Entry>> {
        let dataset = self.checkout(&VersionSpec::Number(version)).await?;
        let mut out = Vec::new();
        let context = format!("reading version {version} of lake {}", self.location());
        scan_columns(
            &dataset,
            &[columns::DOC_ID, columns::SOURCE, columns::N_TOKENS],
            &context,
            |batch| {
                let ids = batch.column(0).as_primitive::<UInt64Type>();
                let names = batch.column(1).as_string::<i32>();
                let tokens = batch.column(2).as_primitive::<UInt32Type>();
                for i in 0..batch.num_rows() {
                    out.push(Entry {
                        doc_id: ids.value(i),
                        source: sources.id(names.value(i)),
                        tokens: tokens.value(i),
                    });
                }
            },
        )
        .await?;
        out.sort_unstable_by_key(|e| e.doc_id);
        Ok(out)
    }
}

/// Merges two id-sorted lists: entries only in `new` were added, only in `old` removed.
fn changed_entries(old: &[Entry], new: &[Entry]) -> (Vec<Entry>, Vec<Entry>) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        match old[i].doc_id.cmp(&new[j].doc_id) {
            std::cmp::Ordering::Less => {
                removed.push(old[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                added.push(new[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    removed.extend_from_slice(&old[i..]);
    added.extend_from_slice(&new[j..]);
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn entries(ids: &BTreeSet<u64>) -> Vec<Entry> {
        ids.iter()
            .map(|&doc_id| Entry {
                doc_id,
                source: (doc_id % 3) as u32,
                tokens: (doc_id % 100) as u32,
            })
            .collect()
    }

    proptest! {
        #[test]
        fn merge_finds_exactly_the_set_differences(
            old in proptest::collection::btree_set(0u64..500, 0..200),
            new in proptest::collection::btree_set(0u64..500, 0..200),
        ) {
            let (added, removed) = changed_entries(&entries(&old), &entries(&new));
            let added: BTreeSet<u64> = added.iter().map(|e| e.doc_id).collect();
            let removed: BTreeSet<u64> = removed.iter().map(|e| e.doc_id).collect();
            prop_assert_eq!(added, new.difference(&old).copied().collect::<BTreeSet<_>>());
            prop_assert_eq!(removed, old.difference(&new).copied().collect::<BTreeSet<_>>());
        }
    }
}
