//! Command-line arguments, one file per workflow (`data`, `versions`, `stream`, `research`,
//! `bench`). Every command has `--help`; `--json` gives scripts the same content as the tables.
//! `tokenlake --help` lists the commands under their workflow ([`WORKFLOWS`]), in the order a
//! user meets them.

mod bench;
mod data;
mod research;
mod stream;
mod versions;

use clap::{Args, CommandFactory, Parser, Subcommand};
use tokenlake_lake::VersionSpec;

pub use bench::*;
pub use data::*;
pub use research::*;
pub use stream::*;
pub use versions::*;

#[derive(Parser, Debug)]
#[command(
    name = "tokenlake",
    version,
    about = "A versioned token lake for LLM pre-training data",
    long_about = "A versioned token lake for LLM pre-training data.\n\n\
        A lake is a directory or an s3://bucket/prefix; its documents table is the Lance \
        dataset <lake>/documents.lance. \
        Every ingest commits one new version; tags name versions.\n\n\
        Log level: TOKENLAKE_LOG=info (or RUST_LOG; debug, warn, ...)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How to reach lakes and inputs in object storage, as KEY=VALUE (repeat for more):
    /// endpoint, region, access_key_id, secret_access_key, session_token, allow_http,
    /// path_style, client_max_retries, client_retry_timeout. What is not given comes from the
    /// AWS environment (AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, AWS_ACCESS_KEY_ID …) and profile
    #[arg(
        long = "storage-option",
        value_name = "KEY=VALUE",
        global = true,
        env = "TOKENLAKE_STORAGE_OPTIONS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub storage_options: Vec<String>,
}

/// The workflows `tokenlake --help` groups commands under, each command in the order a user
/// meets it. A test checks that every command is listed exactly once.
pub const WORKFLOWS: &[(&str, &[&str])] = &[
    (
        "Ingest and curate",
        &[
            "init",
            "train-tokenizer",
            "ingest",
            "commit",
            "dedup",
            "lm",
            "curate",
            "eval",
            "label",
            "sample",
        ],
    ),
    (
        "Versions and tags",
        &["versions", "tag", "describe", "diff"],
    ),
    (
        "Plan, stream and serve",
        &["plan", "materialise", "stream", "serve"],
    ),
    (
        "Query, export and research",
        &[
            "ui",
            "query",
            "export",
            "similarity",
            "attributes",
            "scaling-law",
            "mix",
            "presign",
        ],
    ),
    ("Measure and set up", &["bench", "completions"]),
];

#[derive(Subcommand, Debug)]
pub enum Command {
    // Ingest and curate
    /// Makes a place ready for a lake: creates its S3 bucket or directory and checks that it
    /// can be written
    Init(InitArgs),
    /// Trains a byte-level BPE tokenizer.json on JSON lines or Parquet inputs
    TrainTokenizer(TrainTokenizerArgs),
    /// Tokenizes JSON lines (plain, .gz, .zst) or Parquet inputs into the lake as one new version
    Ingest(IngestArgs),
    /// Publishes every shard of a sharded ingest (`ingest --shard I/N`) as one version: repeats
    /// across shards dropped, and with labelled shards the duplicate clusters and tiers over
    /// the whole lake; refuses, changing nothing, while a shard is missing
    Commit(CommitArgs),
    /// De-duplication of big shard sets in steps: prepare the keys, run each partition's
    /// candidate task anywhere (a Kubernetes Indexed Job, a Slurm array), then commit
    #[command(subcommand)]
    Dedup(DedupCommand),
    /// N-gram language models for perplexity scoring
    #[command(subcommand)]
    Lm(LmCommand),
    /// Labels every document of a version as one new version (Ziya2's curation, as labels):
    /// language, perplexity and quality tier, rule signals and flags, duplicate clusters;
    /// documents curated before are not read again
    Curate(CurateArgs),
    /// Evaluates a version on a deterministic sample (Ziya2's Table 1): privacy, toxic,
    /// advertising and HTML rates, perplexity, readability, languages, lengths, rule failures
    /// by source, duplicates; writes report.html with plots and report.json
    Eval(EvalArgs),
    /// Adds label columns (doc_id plus labels, JSON lines or Parquet) as one new version
    #[command(subcommand)]
    Label(LabelCommand),
    /// Exports a deterministic sample of documents (JSON lines) for human review
    Sample(SampleArgs),

    // Versions and tags
    /// Lists the lake's versions with their row counts, tags and what made them
    Versions(LakeArgs),
    /// Creates, lists or deletes tags (names for versions)
    Tag(TagArgs),
    /// Rows and tokens of one version, in total and by source and language, and its schema
    Describe(DescribeArgs),
    /// Rows and tokens added and removed, by source, between two versions or tags
    Diff(DiffArgs),

    // Plan, stream and serve
    /// Dry-runs a recipe: resolved version, per stage and component documents, tokens,
    /// samples, epochs and what packing drops; builds the plan's caches for later streams
    Plan(PlanArgs),
    /// Publishes a recipe's selection once as a token store in object storage, with its plan
    /// index, for nodes that stream it through a window (--cache-mode window)
    Materialise(MaterialiseArgs),
    /// Streams one rank's micro-batches of a recipe's plan, locally or from a server
    /// (--server): batches as JSON lines, or with --checksums one line per sample
    Stream(StreamArgs),
    /// Serves lakes over gRPC: streams for training ranks, plans, catalog, SQL and admin jobs
    Serve(ServeArgs),

    // Query, export and research
    /// Mixture design: proxy recipes around a stage's weights, a law of loss in the weights
    /// fitted to their runs, and the weights it predicts best under an epoch cap
    #[command(subcommand)]
    Mix(MixCommand),
    /// The corpus explorer for local lakes, in a browser on loopback (no sign-in): versions,
    /// documents with their labels, duplicate clusters, SQL and recipe previews
    Ui(UiArgs),
    /// Read-only SQL over one version of the lake's `documents` table, bounded in rows and time
    Query(QueryArgs),
    /// Documents of one version (all, a filter's, or each component of a recipe) as
    /// Megatron-Core's indexed dataset (.bin/.idx), JSON lines or Parquet
    Export(ExportArgs),
    /// Each document's similarity to a target set (test questions) and its 13-gram overlap,
    /// a contamination flag, as label columns in a new version
    Similarity(SimilarityArgs),
    /// Ziya2's data attributes of a recipe: token-weighted mean coherence, readability and
    /// similarity of each component and stage, as scaling-law observation inputs
    Attributes(AttributesArgs),
    /// Ziya2's data-centric scaling law
    #[command(subcommand, name = "scaling-law")]
    ScalingLaw(ScalingLawCommand),
    /// Prints a presigned URL that downloads one object (a report, a rejects file) until it
    /// expires
    Presign(PresignArgs),

    // Measure and set up
    /// Measures throughput and prints figures against baselines from the same run
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Prints a shell completion script: `tokenlake completions bash > /etc/bash_completion.d/tokenlake`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Which version of a lake a reading command looks at: the latest unless one is named.
#[derive(Args, Debug, Clone)]
pub struct VersionArgs {
    /// This version instead of the latest: a number or a tag (as everywhere a version is named)
    #[arg(long, value_name = "N|TAG", conflicts_with = "tag")]
    pub version: Option<VersionSpec>,
    /// The version this tag names (the same as --version TAG)
    #[arg(long)]
    pub tag: Option<String>,
}

impl VersionArgs {
    pub fn spec(self) -> VersionSpec {
        match (self.version, self.tag) {
            (Some(v), _) => v,
            (None, Some(t)) => VersionSpec::Tag(t),
            (None, None) => VersionSpec::Latest,
        }
    }
}

/// The command line with its commands listed by workflow; what `main` parses and what
/// `tokenlake completions` describes.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    let mut listing = String::new();
    for (title, names) in WORKFLOWS {
        listing.push_str(&format!("{title}:\n"));
        for name in *names {
            let about = cmd
                .find_subcommand(name)
                .and_then(|sub| sub.get_about())
                .map(|about| about.to_string())
                .unwrap_or_default();
            listing.push_str(&listed(name, &about));
        }
        listing.push('\n');
    }
    cmd.help_template(format!(
        "{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{listing}Options:\n{{options}}{{after-help}}"
    ))
}

/// The completion script of `shell` for every command and flag.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command(), "tokenlake", &mut script);
    script
}

/// One command's line in the listing: its name, then its summary wrapped beside it.
fn listed(name: &str, about: &str) -> String {
    const NAME: usize = 17;
    const WIDTH: usize = 100;
    let mut out = format!("  {name:<NAME$} ");
    let mut column = 2 + NAME + 1;
    for word in about.split_whitespace() {
        if column + word.len() > WIDTH && column > 2 + NAME + 1 {
            out.push('\n');
            out.push_str(&" ".repeat(2 + NAME + 1));
            column = 2 + NAME + 1;
        }
        if column > 2 + NAME + 1 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.chars().count();
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_listed_under_exactly_one_workflow() {
        let cmd = Cli::command();
        let listed: Vec<&str> = WORKFLOWS
            .iter()
            .flat_map(|(_, names)| names.iter().copied())
            .collect();
        for sub in cmd.get_subcommands() {
            let name = sub.get_name();
            assert_eq!(
                listed.iter().filter(|n| **n == name).count(),
                1,
                "`{name}` must be listed under exactly one workflow"
            );
        }
        assert_eq!(listed.len(), cmd.get_subcommands().count(), "{listed:?}");
    }

    #[test]
    fn help_groups_commands_by_workflow_in_order() {
        let help = command().render_help().to_string();
        let mut at = 0;
        for (title, names) in WORKFLOWS {
            at += help[at..]
                .find(&format!("{title}:"))
                .unwrap_or_else(|| panic!("{help}"));
            for name in *names {
                at += help[at..]
                    .find(&format!("  {name} "))
                    .unwrap_or_else(|| panic!("{name} after {title}: {help}"));
            }
        }
        assert!(help.contains("--storage-option"), "{help}");
        command().debug_assert();
    }

    #[test]
    fn completions_know_every_command_and_its_flags() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let script = String::from_utf8(completions(shell)).unwrap();
            for word in ["ingest", "train-tokenizer", "scaling-law", "check-config"] {
                assert!(script.contains(word), "{shell:?} lacks {word}");
            }
        }
    }

    #[test]
    fn a_version_is_a_number_or_a_tag_everywhere() {
        let cli =
            Cli::try_parse_from(["tokenlake", "describe", "lake", "--version", "stage1"]).unwrap();
        let Command::Describe(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.version.spec(), VersionSpec::Tag("stage1".into()));
        let cli = Cli::try_parse_from(["tokenlake", "query", "lake", "SELECT 1", "--version", "3"])
            .unwrap();
        let Command::Query(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.version.spec(), VersionSpec::Number(3));
    }
}
