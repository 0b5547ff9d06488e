//! `tokenlake dedup`: the steps of a big commit's de-duplication, for schedulers
//! (`deploy/k8s/dedup-job.yaml`, `deploy/slurm/sharded-ingest.sh`): `prepare` writes a shard
//! set's keys, `candidates` runs partitions' tasks wherever the index directory is reachable,
//! `status` says what is left; `tokenlake commit` then runs any task still missing and
//! publishes the version.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokenlake_curate::dedup::pipeline::DedupIndex;

use crate::cli::{DedupCandidatesArgs, DedupStatusArgs};
use crate::output::{count, key_values, print_json};

/// The index directory a path names: a lake directory (its `curation/dedup`) or the index.
fn index_dir(path: &Path) -> anyhow::Result<PathBuf> {
    let in_lake = path.join("curation").join("dedup");
    for dir in [in_lake, path.to_path_buf()] {
        if dir.join("manifest.json").is_file() {
            return Ok(dir);
        }
    }
    anyhow::bail!(
        "{} holds no de-duplication index: name a local lake, its curation/dedup directory, or a commit's --dedup-work directory after `tokenlake dedup prepare`",
        path.display()
    )
}

/// `I/P` or `A-B/P`: the partitions to run and the partition count.
fn parse_partitions(spec: &str) -> anyhow::Result<(Vec<u32>, u32)> {
    let bad = || anyhow::anyhow!("--partition {spec:?}: expected I/P or A-B/P, as 3/64 or 0-15/64");
    let (which, of) = spec.split_once('/').ok_or_else(bad)?;
    let of: u32 = of.trim().parse().map_err(|_| bad())?;
    let (a, b) = match which.split_once('-') {
        Some((a, b)) => (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        ),
        None => {
            let i: u32 = which.trim().parse().map_err(|_| bad())?;
            (i, i)
        }
    };
    anyhow::ensure!(
        a <= b && b < of,
        "--partition {spec:?}: partitions run from 0 to {}",
        of.saturating_sub(1)
    );
    Ok(((a..=b).collect(), of))
}

pub fn candidates(args: DedupCandidatesArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.budget_mb >= 16, "--budget-mb must be at least 16");
    let (partitions, of) = parse_partitions(&args.partition)?;
    let dir = index_dir(&args.index)?;
    let index = DedupIndex::open(&dir)?;
    anyhow::ensure!(
        of == index.partitions(),
        "--partition {}: the index in {} has {} partitions, not {of}",
        args.partition,
        dir.display(),
        index.partitions()
    );
    let status = index.status()?;
    anyhow::ensure!(
        status.pending_rows > 0,
        "the index in {} has nothing pending: run `tokenlake dedup prepare` first",
        dir.display()
    );
    let budget = tokenlake_curate::dedup::pipeline::task_sort_budget(args.budget_mb << 20);
    let mut all = Vec::new();
    for p in partitions {
        let stats = index.candidates(p, budget)?;
        if !args.json {
            eprintln!(
                "partition {p}/{of}: {} keys in {} groups, {} edges kept of {} found",
                count(stats.key_records),
                count(stats.groups),
                count(stats.edges_kept),
                count(stats.edges_found)
            );
        }
        all.push(stats);
    }
    if args.json {
        print_json(&all)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn status(args: DedupStatusArgs) -> anyhow::Result<ExitCode> {
    let dir = index_dir(&args.index)?;
    let status = DedupIndex::open(&dir)?.status()?;
    if args.json {
        print_json(&status)?;
        return Ok(ExitCode::SUCCESS);
    }
    let missing = if status.pending_rows == 0 {
        "nothing pending".to_string()
    } else if status.missing.is_empty() {
        "none: `tokenlake commit` can publish".to_string()
    } else {
        format!("{} of {}", status.missing.len(), status.partitions)
    };
    println!(
        "{}",
        key_values(vec![
            ("index", status.dir.clone()),
            ("partitions", status.partitions.to_string()),
            ("rows covered", count(status.covered)),
            ("rows pending", count(status.pending_rows)),
            ("writers pending", status.writers.join(", ")),
            ("candidate tasks not done", missing),
        ])
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_partitions;

    #[test]
    fn partitions_are_one_or_a_range_below_the_count() {
        assert_eq!(parse_partitions("3/64").unwrap(), (vec![3], 64));
        assert_eq!(parse_partitions("0-2/3").unwrap(), (vec![0, 1, 2], 3));
        for bad in ["64/64", "3", "2-1/8", "a/8", "0-8/8"] {
            assert!(parse_partitions(bad).is_err(), "{bad}");
        }
    }
}
