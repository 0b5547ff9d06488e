//! Read-only SQL over one version of the documents table, on lance's own DataFusion table
//! provider (filters and projections reach the Lance scan). The server's Query call and
//! `tokenlake query` both plan here, so both refuse the same statements the same way.

use std::sync::Arc;

use arrow_array::RecordBatch;
use lance::Dataset;
use lance::datafusion::LanceTableProvider;
use lance::deps::datafusion::dataframe::DataFrame;
use lance::deps::datafusion::error::DataFusionError;
use lance::deps::datafusion::execution::context::SQLOptions;
use lance::deps::datafusion::prelude::SessionContext;

use crate::{LakeError, Result};

/// The table name queries use.
pub const QUERY_TABLE: &str = "documents";

/// Plans `sql` over `dataset` (registered as `documents`), refusing anything but a query.
pub async fn plan_query(dataset: Dataset, sql: &str) -> Result<DataFrame> {
    if sql.trim().is_empty() {
        return Err(LakeError::Query {
            message: format!("the query is empty; the table is `{QUERY_TABLE}`"),
        });
    }
    let ctx = SessionContext::new();
    ctx.register_table(
        QUERY_TABLE,
        Arc::new(LanceTableProvider::new(Arc::new(dataset), false, false)),
    )
    .map_err(|e| LakeError::QueryEngine {
        message: format!("registering the documents table: {e}"),
    })?;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    ctx.sql_with_options(sql, options).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("DDL not supported")
            || text.contains("DML not supported")
            || text.contains("Statement not supported")
        {
            LakeError::Query {
                message: format!(
                    "queries are read-only: only SELECT statements run ({})",
                    text.trim_start_matches("Error during planning: ")
                ),
            }
        } else {
            query_error(e)
        }
    })
}

/// The row bound of a query's result: planned as `max + 1` rows so that one more row than
/// allowed tells the result was cut, then admitted batch by batch.
#[derive(Debug, Clone, Copy)]
pub struct RowBound {
    max: u64,
    seen: u64,
}

impl RowBound {
    pub fn new(max: u64) -> RowBound {
        RowBound { max, seen: 0 }
    }

    /// `frame` limited to one row more than the bound.
    pub fn limit(&self, frame: DataFrame) -> Result<DataFrame> {
        frame
            .limit(0, Some(self.max as usize + 1))
            .map_err(query_error)
    }

    /// The part of `batch` within the bound, and whether rows beyond it were cut (then the
    /// caller stops reading).
    pub fn admit(&mut self, batch: RecordBatch) -> (RecordBatch, bool) {
        let room = self.max - self.seen;
        let cut = batch.num_rows() as u64 > room;
        let batch = if cut {
            batch.slice(0, room as usize)
        } else {
            batch
        };
        self.seen += batch.num_rows() as u64;
        (batch, cut)
    }

    /// Rows admitted so far.
    pub fn rows(&self) -> u64 {
        self.seen
    }
}

/// Bad SQL, unknown columns and type errors are the caller's; the rest is the engine's.
pub fn query_error(e: DataFusionError) -> LakeError {
    match e.find_root() {
        DataFusionError::SQL(..)
        | DataFusionError::Plan(_)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => LakeError::Query {
            message: format!("SQL: {e}"),
        },
        _ => LakeError::QueryEngine {
            message: format!("running the query: {e}"),
        },
    }
}
