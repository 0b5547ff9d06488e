//! The Query service: SQL over a version, answered as Arrow IPC, against an independent scan.

use tokenlake_client::Client;
use tokenlake_schemas::proto::QueryRequest;
use tonic::Code;

use crate::support::*;

/// A `tokenlake serve` process, killed when dropped.
use crate::serve::*;
use crate::serve_admin::read_sources_and_token_counts;

/// The rows of an Arrow IPC stream made of the chunks' bytes.
pub(crate) fn read_ipc(chunks: Vec<Vec<u8>>) -> Vec<arrow_array::RecordBatch> {
    let bytes: Vec<u8> = chunks.concat();
    arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

pub(crate) fn query(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    version: &str,
    sql: &str,
    max_rows: u64,
) -> Result<(Vec<arrow_array::RecordBatch>, bool), tonic::Status> {
    rt.block_on(async {
        let mut stream = client
            .query_client()
            .sql(QueryRequest {
                lake: "sample".into(),
                version: version.into(),
                sql: sql.into(),
                max_rows,
                timeout_ms: 0,
            })
            .await?
            .into_inner();
        let (mut chunks, mut truncated) = (Vec::new(), false);
        while let Some(chunk) = stream.message().await? {
            truncated |= chunk.truncated;
            chunks.push(chunk.ipc.to_vec());
        }
        Ok((read_ipc(chunks), truncated))
    })
}

#[test]
// Kept as one test: queries against one server's lake, each compared with the same independent
// scan.
fn sql_over_a_version_matches_an_independent_scan_and_refuses_writes() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let server = open_server(&lake, &[]);
    let rt = runtime();
    let _in_runtime = rt.enter(); // clients dial from the runtime
    let client = server.client(None);

    // Tokens per source, against the lake read back by the tests' own Lance scan.
    let (batches, truncated) = query(
        &rt,
        &client,
        "quickstart",
        "SELECT source, COUNT(*) AS docs, SUM(CAST(n_tokens AS BIGINT)) AS tokens \
         FROM documents GROUP BY source ORDER BY source",
        0,
    )
    .unwrap();
    assert!(!truncated);
    let mut got = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            got.push((
                b.column(0).as_string::<i32>().value(i).to_string(),
                b.column(1).as_primitive::<Int64Type>().value(i) as u64,
                b.column(2).as_primitive::<Int64Type>().value(i) as u64,
            ));
        }
    }
    let mut want: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (source, tokens) in read_sources_and_token_counts(&lake) {
        let e = want.entry(source).or_default();
        e.0 += 1;
        e.1 += tokens;
    }
    let want: Vec<(String, u64, u64)> = want.into_iter().map(|(s, (d, t))| (s, d, t)).collect();
    assert_eq!(got, want);

    // Another version and the lake's own tokenizer are reachable from a Query call too.
    let (rows, _) = query(
        &rt,
        &client,
        "",
        "SELECT COUNT(*) AS n FROM documents_at('quickstart') \
         WHERE detokenize(tokens) = text",
        0,
    )
    .unwrap();
    let total: u64 = want.iter().map(|(_, d, _)| d).sum();
    assert_eq!(
        rows[0].column(0).as_primitive::<Int64Type>().value(0) as u64,
        total
    );

    // Row bound: the result is cut and says so.
    let (rows, truncated) = query(&rt, &client, "", "SELECT doc_id FROM documents", 5).unwrap();
    assert!(truncated);
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 5);

    for (what, version, sql, code, needle) in [
        (
            "a write",
            "",
            "DELETE FROM documents WHERE n_tokens > 0",
            Code::InvalidArgument,
            "read-only",
        ),
        (
            "a table",
            "",
            "CREATE TABLE t AS SELECT 1",
            Code::InvalidArgument,
            "read-only",
        ),
        (
            "bad SQL",
            "",
            "SELEC doc_id FROM documents",
            Code::InvalidArgument,
            "SQL",
        ),
        (
            "an unknown column",
            "",
            "SELECT no_such_column FROM documents",
            Code::InvalidArgument,
            "no_such_column",
        ),
        (
            "an unknown version",
            "7",
            "SELECT doc_id FROM documents",
            Code::NotFound,
            "no version 7",
        ),
    ] {
        let err = query(&rt, &client, version, sql, 0).unwrap_err();
        assert_eq!(err.code(), code, "{what}: {}", err.message());
        assert!(
            err.message().contains(needle),
            "{what}: {:?} lacks {needle:?}",
            err.message()
        );
    }
}
