//! `tokenlake versions`, `tag`, `describe` and `diff`: reading and naming versions.

use std::process::ExitCode;

use tokenlake_lake::{GroupTotals, Lake, VersionSpec};

use crate::cli::{DescribeArgs, DiffArgs, LakeArgs, TagAction, TagArgs};
use crate::output::{count, print_json, table};

async fn open(lake: &str) -> anyhow::Result<Lake> {
    Ok(Lake::open(&crate::commands::storage::location(lake)?).await?)
}

pub async fn versions(args: LakeArgs) -> anyhow::Result<ExitCode> {
    let lake = open(&args.lake).await?;
    let versions = lake.versions().await?;
    if args.json {
        print_json(&versions)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows = versions
        .iter()
        .map(|v| {
            let made_by = match v.properties.get("tokenlake.operation").map(String::as_str) {
                Some("ingest") => format!(
                    "ingest {} (source {})",
                    v.properties
                        .get("tokenlake.ingest_id")
                        .map_or("?", String::as_str),
                    v.properties
                        .get("tokenlake.source")
                        .map_or("?", String::as_str)
                ),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            vec![
                v.version.to_string(),
                v.committed_at.clone(),
                count(v.rows),
                v.tags.join(", "),
                made_by,
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &["version", "committed (UTC)", "rows", "tags", "made by"],
            rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn tag(args: TagArgs) -> anyhow::Result<ExitCode> {
    let lake = open(&args.lake).await?;
    match args.action {
        TagAction::Create { name, version } => {
            let spec = version.unwrap_or_default();
            let version = lake.create_tag(&name, &spec).await?;
            println!("tag {name:?} now names version {version}");
        }
        TagAction::List { json } => {
            let tags = lake.tags().await?;
            if json {
                print_json(&tags)?;
            } else {
                let rows = tags
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.version.to_string(),
                            t.created_at.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                println!("{}", table(&["tag", "version", "created (UTC)"], rows));
            }
        }
        TagAction::Delete { name } => {
            let version = lake.delete_tag(&name).await?;
            println!("deleted tag {name:?}; version {version} is kept");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn describe(args: DescribeArgs) -> anyhow::Result<ExitCode> {
    let lake = open(&args.lake).await?;
    let spec = args.version.spec();
    let d = lake.describe(&spec).await?;
    if args.json {
        print_json(&d)?;
        return Ok(ExitCode::SUCCESS);
    }
    let tags = if d.tags.is_empty() {
        String::new()
    } else {
        format!(" (tags: {})", d.tags.join(", "))
    };
    println!("{} at version {}{tags}", d.lake, d.version);
    println!(
        "{} documents, {} tokens, {} characters; {} token ids, vocabulary {}, tokenizer {:.12}",
        count(d.rows),
        count(d.tokens),
        count(d.chars),
        d.token_width,
        count(d.vocab_size as u64),
        d.tokenizer_sha256
    );
    let groups = |name: &str, groups: &[GroupTotals]| {
        let rows = groups
            .iter()
            .map(|g| {
                vec![
                    g.key.clone().unwrap_or_else(|| "(not identified)".into()),
                    count(g.rows),
                    count(g.tokens),
                    format!("{:.1} %", percent(g.tokens, d.tokens)),
                    format!(
                        "{:.0}",
                        if g.rows == 0 {
                            0.0
                        } else {
                            g.tokens as f64 / g.rows as f64
                        }
                    ),
                ]
            })
            .collect();
        table(&[name, "documents", "tokens", "share", "tokens/doc"], rows)
    };
    println!("{}", groups("source", &d.by_source));
    println!("{}", groups("language", &d.by_lang));
    let columns = d
        .columns
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.data_type.clone(),
                if c.nullable { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    println!("{}", table(&["column", "type", "nullable"], columns));
    Ok(ExitCode::SUCCESS)
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

pub async fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let lake = open(&args.lake).await?;
    let from: VersionSpec = args
        .from
        .parse()
        .map_err(|e| anyhow::anyhow!("first version {:?}: {e}", args.from))?;
    let to: VersionSpec = args
        .to
        .parse()
        .map_err(|e| anyhow::anyhow!("second version {:?}: {e}", args.to))?;
    let d = lake.diff(&from, &to).await?;
    if args.json {
        print_json(&d)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: version {} → {}: +{} / -{} documents, +{} / -{} tokens",
        d.lake,
        d.from_version,
        d.to_version,
        count(d.rows_added),
        count(d.rows_removed),
        count(d.tokens_added),
        count(d.tokens_removed)
    );
    let rows = d
        .by_source
        .iter()
        .map(|s| {
            vec![
                s.source.clone(),
                count(s.rows_added),
                count(s.tokens_added),
                count(s.rows_removed),
                count(s.tokens_removed),
            ]
        })
        .collect();
    println!(
        "{}",
        table(
            &[
                "source",
                "documents added",
                "tokens added",
                "documents removed",
                "tokens removed"
            ],
            rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
