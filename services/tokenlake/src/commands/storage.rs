//! Where lakes live, from the command line: the global `--storage-option KEY=VALUE` flags,
//! `tokenlake init` (create a lake's bucket or directory and prove it can be written) and
//! `tokenlake presign` (a URL to share one object).

use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use serde::Serialize;
use tokenlake_lake::{Lake, LakeLocation, StorageOptions, StorageUri};
use tokenlake_storage::{BucketState, ObjectStorage, S3Admin};

use crate::cli::{InitArgs, PresignArgs};
use crate::output::{key_values, print_json};

static OPTIONS: OnceLock<StorageOptions> = OnceLock::new();

/// Records the options given on the command line, once, before any command runs.
pub fn set_options(pairs: &[String]) -> anyhow::Result<()> {
    let options = StorageOptions::from_pairs(pairs).context("--storage-option")?;
    OPTIONS
        .set(options)
        .map_err(|_| anyhow::anyhow!("storage options set twice"))
}

/// The command line's storage options.
pub fn options() -> StorageOptions {
    OPTIONS.get().cloned().unwrap_or_default()
}

/// A LAKE argument, reached with the command line's storage options.
pub fn location(lake: &str) -> anyhow::Result<LakeLocation> {
    Ok(LakeLocation::parse(lake)?.with_options(options()))
}

#[derive(Serialize)]
struct InitReport {
    lake: String,
    /// For an s3:// lake: whether its bucket existed or was created.
    bucket: Option<BucketState>,
    /// Whether a lake was already committed there.
    existing_lake: bool,
    latest_version: Option<u64>,
}

/// Makes a place ready for a lake: creates the bucket (S3) or directory (local), then writes,
/// reads back and deletes a probe object, so missing permissions show now and not mid-ingest.
pub async fn init(args: InitArgs) -> anyhow::Result<ExitCode> {
    let location = location(&args.lake)?;
    let bucket = match location.root() {
        uri @ StorageUri::S3 { .. } => Some(
            S3Admin::new(location.options())
                .await?
                .ensure_bucket(uri)
                .await?,
        ),
        StorageUri::Local(path) => {
            std::fs::create_dir_all(path)
                .with_context(|| format!("creating lake directory {}", path.display()))?;
            None
        }
        StorageUri::Memory { .. } => None,
    };
    let storage: ObjectStorage = location.storage()?;
    let probe = location
        .root()
        .join(&format!(".tokenlake-init-{}", std::process::id()));
    let payload = Bytes::from_static(b"tokenlake init probe");
    storage.write(&probe, payload.clone()).await?;
    let back = storage.read(&probe).await?;
    storage.delete(&probe).await?;
    anyhow::ensure!(
        back == payload,
        "{probe} read back different bytes than were written"
    );
    let lake = Lake::open_if_exists(&location).await?;
    let report = InitReport {
        lake: location.to_string(),
        bucket,
        existing_lake: lake.is_some(),
        latest_version: lake.as_ref().map(Lake::latest_version),
    };
    if args.json {
        print_json(&report)?;
    } else {
        let mut rows: Vec<(&str, String)> = vec![("lake", report.lake.clone())];
        if let Some(bucket) = report.bucket {
            rows.push((
                "bucket",
                match bucket {
                    BucketState::Created => "created".into(),
                    BucketState::Existed => "exists".into(),
                },
            ));
        }
        rows.push(("writable", "yes".into()));
        rows.push((
            "contents",
            match report.latest_version {
                Some(v) => format!("exists, latest version {v}"),
                None => "empty: the first ingest creates it".into(),
            },
        ));
        println!("{}", key_values(rows));
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a presigned GET URL for one object (a report, a rejects file) that anyone holding
/// it can download until it expires.
pub async fn presign(args: PresignArgs) -> anyhow::Result<ExitCode> {
    let uri = StorageUri::parse(&args.uri)?;
    anyhow::ensure!(
        uri.is_s3(),
        "presign needs an s3:// URI; {uri} is not in object storage"
    );
    let expires =
        parse_duration(&args.expires).with_context(|| format!("--expires {:?}", args.expires))?;
    anyhow::ensure!(
        expires <= Duration::from_secs(7 * 24 * 3600),
        "--expires may be at most 7 days (S3's limit)"
    );
    let options = options();
    let storage = ObjectStorage::for_uri(&uri, &options)?;
    anyhow::ensure!(storage.exists(&uri).await?, "{uri} does not exist");
    let url = S3Admin::new(&options)
        .await?
        .presign_get(&uri, expires)
        .await?;
    println!("{url}");
    Ok(ExitCode::SUCCESS)
}

/// `90s`, `15m`, `12h`, `7d` or plain seconds.
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("expected a number with s, m, h or d, as in 12h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        other => anyhow::bail!("unknown unit {other:?}; use s, m, h or d"),
    };
    anyhow::ensure!(secs > 0, "the duration must be positive");
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_duration("2w").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("h").is_err());
    }
}
