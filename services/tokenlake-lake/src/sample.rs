//! Deterministic samples of a version for human review: the `n` matching documents with the
//! smallest seeded hash of their `doc_id`. The choice depends only on the seed and the matching
//! doc_ids, not on how the lake is laid out or scanned, and grows consistently with `n` (the
//! sample of 100 holds the sample of 10).

use std::collections::{BinaryHeap, HashMap};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{RecordBatch, UInt32Array};
use tokenlake_schemas::columns;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::lake::scan_where;
use crate::{Lake, LakeError, Result, VersionSpec};

/// A sample and what it was drawn from.
#[derive(Debug)]
pub struct Sample {
    pub version: u64,
    /// Documents the filter matched.
    pub matched: u64,
    /// The sampled rows, in sample order, with the requested columns.
    pub rows: RecordBatch,
}

impl Lake {
    /// Samples `n` documents of version `spec` that `filter` (SQL) matches, with `columns`
    /// (every column but `tokens` when `None`).
    // Kept as one function: choose rows, read them, keep the requested columns: one scan's steps.
    pub async fn sample(
        &self,
        spec: &VersionSpec,
        filter: Option<&str>,
        n: usize,
        seed: u64,
        columns: Option<Vec<String>>,
    ) -> Result<Sample> {
        let version = self.resolve(spec).await?;
        let dataset = self.checkout(&VersionSpec::Number(version)).await?;
        let context = match filter {
            Some(f) => format!("sampling documents where {f} from lake {}", self.location),
            None => format!("sampling documents from lake {}", self.location),
        };

        // Pass 1: the n smallest hashes (a max-heap of the kept ones).
        let mut kept: BinaryHeap<(u64, u64)> = BinaryHeap::with_capacity(n + 1);
        let mut matched = 0u64;
        scan_where(
            &dataset,
            &[columns::DOC_ID.to_string()],
            filter,
            &context,
            |batch| {
                for &id in batch.column(0).as_primitive::<UInt64Type>().values() {
                    matched += 1;
                    let key = (xxh3_64_with_seed(&id.to_le_bytes(), seed), id);
                    if kept.len() < n {
                        kept.push(key);
                    } else if n > 0 && key < *kept.peek().expect("full") {
                        kept.pop();
                        kept.push(key);
                    }
                }
                Ok(())
            },
        )
        .await?;
        let order: HashMap<u64, usize> = kept
            .into_sorted_vec()
            .into_iter()
            .enumerate()
            .map(|(rank, (_, id))| (id, rank))
            .collect();

        // Pass 2: the chosen rows, put in sample order.
        let wanted = match columns {
            Some(c) => c,
            None => dataset
                .schema()
                .fields
                .iter()
                .map(|f| f.name.clone())
                .filter(|name| name != columns::TOKENS)
                .collect(),
        };
        let mut projection = wanted.clone();
        if !projection.iter().any(|c| c == columns::DOC_ID) {
            projection.insert(0, columns::DOC_ID.to_string());
        }
        let mut parts = Vec::new();
        let mut ranks = Vec::new();
        scan_where(&dataset, &projection, filter, &context, |batch| {
            let ids = batch
                .column_by_name(columns::DOC_ID)
                .expect("projected")
                .as_primitive::<UInt64Type>();
            let mut take = Vec::new();
            for (row, id) in ids.values().iter().enumerate() {
                if let Some(&rank) = order.get(id) {
                    take.push(row as u32);
                    ranks.push(rank);
                }
            }
            if !take.is_empty() {
                let indices = UInt32Array::from(take);
                let columns = batch
                    .columns()
                    .iter()
                    .map(|c| arrow_select::take::take(c, &indices, None))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|source| LakeError::Arrow {
                        context: context.clone(),
                        source,
                    })?;
                parts.push(
                    RecordBatch::try_new(batch.schema(), columns).map_err(|source| {
                        LakeError::Arrow {
                            context: context.clone(),
                            source,
                        }
                    })?,
                );
            }
            Ok(())
        })
        .await?;
        let schema = match parts.first() {
            Some(p) => p.schema(),
            None => {
                let mut s = dataset.scan();
                s.project(&projection).map_err(LakeError::lance(&context))?;
                s.schema().await.map_err(LakeError::lance(&context))?
            }
        };
        let all = arrow_select::concat::concat_batches(&schema, &parts).map_err(|source| {
            LakeError::Arrow {
                context: context.clone(),
                source,
            }
        })?;
        let mut by_rank: Vec<u32> = (0..all.num_rows() as u32).collect();
        by_rank.sort_by_key(|&i| ranks[i as usize]);
        let indices = UInt32Array::from(by_rank);
        let wanted_columns = wanted
            .iter()
            .map(|name| {
                let column = all.column_by_name(name).expect("projected");
                arrow_select::take::take(column, &indices, None)
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|source| LakeError::Arrow {
                context: context.clone(),
                source,
            })?;
        let fields: Vec<_> = wanted
            .iter()
            .map(|name| schema.field_with_name(name).expect("projected").clone())
            .collect();
        let rows = RecordBatch::try_new(
            std::sync::Arc::new(arrow_schema::Schema::new(fields)),
            wanted_columns,
        )
        .map_err(|source| LakeError::Arrow { context, source })?;
        Ok(Sample {
            version,
            matched,
            rows,
        })
    }
}
