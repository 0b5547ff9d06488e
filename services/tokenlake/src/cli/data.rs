//! Ingest and curate: making a lake and labelling it.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::VersionArgs;

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// The lake: a directory or s3://bucket/prefix (created on the first ingest)
    pub lake: String,
    /// Inputs: JSON lines (plain, gzip or zstd, recognised by content) or Parquet; local
    /// paths, or s3:// objects, prefixes and patterns such as s3://raw/cc/*.jsonl.zst
    #[arg(required = true)]
    pub inputs: Vec<String>,
    /// Where remote inputs are fetched to for the run [default: the system's temporary
    /// directory]; needs as much space as the run's inputs
    #[arg(long)]
    pub staging_dir: Option<PathBuf>,
    /// Source name stored with every document (e.g. web, wiki, code)
    #[arg(long)]
    pub source: String,
    /// Take each document's source from this field when it has one, else use --source
    #[arg(long, value_name = "FIELD")]
    pub source_field: Option<String>,
    /// Hugging Face tokenizer.json; a lake keeps the tokenizer of its first ingest
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Field (or Parquet column) holding the document text
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Field holding the input's own document id; without one the id is a hash of the text
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// Field holding the document URL, if any
    #[arg(long, default_value = "url")]
    pub url_field: String,
    /// Field holding a language code, if the input has one
    #[arg(long, default_value = "lang")]
    pub lang_field: String,
    /// Store the text beside the tokens (needed by curation and sampling for review)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub keep_text: bool,
    /// Curation pipeline file (TOML): texts are preprocessed before tokenization, and the new
    /// documents are then labelled (language, perplexity, rules, duplicates against everything
    /// before them) as one more version
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Where to write rejected lines [default: <lake>/rejects/<ingest id>.jsonl]
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Be shard I of N (0-based, e.g. 2/8) of a sharded ingest: take the I-th contiguous block
    /// of the input list, write it without committing (labelled, with --pipeline) and leave
    /// the results under <lake>/shards/<set>/ for `tokenlake commit`
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<tokenlake_lake::ShardSpec>,
    /// The shard set this shard belongs to (with --shard)
    #[arg(
        long,
        default_value = "default",
        requires = "shard",
        value_name = "NAME"
    )]
    pub shard_set: String,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

fn parse_shard(value: &str) -> Result<tokenlake_lake::ShardSpec, String> {
    tokenlake_lake::ShardSpec::parse(value)
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// The lake the shards wrote to
    pub lake: String,
    /// The shard set to commit
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub set: String,
    /// The curation pipeline the shards labelled with (with `ingest --shard --pipeline`)
    /// [default: the default pipeline]
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    #[command(flatten)]
    pub dedup: CommitDedupArgs,
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// Where and how a commit de-duplicates.
#[derive(Args, Debug)]
pub struct CommitDedupArgs {
    /// The de-duplication index's working directory, on a filesystem that every `tokenlake
    /// dedup candidates` task reaches; the index is copied there and published back to the
    /// lake by the commit [default: a local lake's own LAKE/curation/dedup, used in place; a
    /// temporary directory for a remote lake]
    #[arg(long, value_name = "DIR")]
    pub dedup_work: Option<PathBuf>,
    /// Partitions of the lake's de-duplication index when it is created (an existing index
    /// keeps its own)
    #[arg(long, default_value_t = 64)]
    pub dedup_partitions: u32,
    /// Memory for the candidate tasks the commit runs itself, together, in MiB
    #[arg(long, default_value_t = 2048)]
    pub dedup_budget_mb: u64,
}

#[derive(Subcommand, Debug)]
pub enum DedupCommand {
    /// Writes a labelled shard set's de-duplication keys into the lake's index and stops, so
    /// that the partitions' candidate tasks can run in parallel (`dedup candidates`) before
    /// `tokenlake commit`, which runs any task still missing itself
    Prepare(CommitArgs),
    /// Runs the candidate task of one partition of a prepared index: sorts its keys within the
    /// budget, merges them with the partition's earlier keys and writes its edges (safe to run
    /// again; any machine that reaches the index directory can run it)
    Candidates(DedupCandidatesArgs),
    /// Where an index's update stands: rows covered and pending, partitions not done
    Status(DedupStatusArgs),
}

#[derive(Args, Debug)]
pub struct DedupCandidatesArgs {
    /// The index: a local lake, its curation/dedup directory, or a commit's --dedup-work
    pub index: PathBuf,
    /// Which partition, as I/P (P must be the index's partition count); I may be a range
    /// `A-B` to run several one after another
    #[arg(long, value_name = "I/P")]
    pub partition: String,
    /// Memory budget of the task, in MiB (a quarter for each of its two sorts)
    #[arg(long, default_value_t = 2048)]
    pub budget_mb: u64,
    /// Print the task's figures as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DedupStatusArgs {
    /// The index: a local lake, its curation/dedup directory, or a commit's --dedup-work
    pub index: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TrainTokenizerArgs {
    /// JSON lines (plain, gzip, zstd) or Parquet inputs
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Where to write tokenizer.json
    #[arg(long)]
    pub out: PathBuf,
    /// Vocabulary size, special tokens included (≤ 65536 keeps the lake's ids at 16 bits)
    #[arg(long, default_value_t = 8192)]
    pub vocab_size: usize,
    /// Merges must occur at least this often
    #[arg(long, default_value_t = 2)]
    pub min_frequency: u64,
    /// Special tokens, given ids 0, 1, 2, … in this order
    #[arg(long, value_delimiter = ',', default_value = "<pad>,<s>,</s>")]
    pub special_tokens: Vec<String>,
    /// Field (or Parquet column) holding the text
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Train on at most this many documents, read from the start of the inputs
    #[arg(long, default_value_t = 100_000)]
    pub max_docs: usize,
}

#[derive(Args, Debug)]
pub struct CurateArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    /// Label this version's documents instead of the latest's (the labels are committed as
    /// the newest version)
    #[command(flatten)]
    pub version: VersionArgs,
    /// Pipeline file (TOML): preprocessing, perplexity models and tiers, rule thresholds
    /// [default: the published thresholds, no perplexity models]
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Label every document again, even those whose stored labels could be reused
    #[arg(long)]
    pub recompute: bool,
    /// Partitions of the lake's de-duplication index when it is created (an existing index
    /// keeps its own)
    #[arg(long, default_value_t = 64)]
    pub dedup_partitions: u32,
    /// Memory for de-duplication's candidate tasks, together, in MiB
    #[arg(long, default_value_t = 2048)]
    pub dedup_budget_mb: u64,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    #[command(flatten)]
    pub version: VersionArgs,
    /// Directory for report.html, report.json and the plots
    #[arg(long)]
    pub out: PathBuf,
    /// Fraction of documents sampled (deterministic for a seed)
    #[arg(long, default_value_t = 0.01)]
    pub fraction: f64,
    /// At least this many documents are sampled when the lake has them
    #[arg(long, default_value_t = 1000)]
    pub min_docs: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A metric complies when its rate is at most this many per thousand documents
    #[arg(long, default_value_t = 1.0)]
    pub max_per_mille: f64,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum LmCommand {
    /// Trains an interpolated modified Kneser-Ney n-gram model (KenLM's lmplz) on reference
    /// text and writes it as ARPA; the curation pipeline scores perplexity with it
    Train(LmTrainArgs),
    /// Perplexity of each line of a text file under an ARPA model
    Score(LmScoreArgs),
}

#[derive(Args, Debug)]
pub struct LmTrainArgs {
    /// Reference text: plain .txt files (a sentence or paragraph per line), or JSON lines
    /// (plain, .gz, .zst) or Parquet with a text field
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The ARPA file to write
    #[arg(long)]
    pub out: PathBuf,
    /// N-gram order, 2 to 6
    #[arg(long, default_value_t = 5)]
    pub order: usize,
    /// The text field of JSON lines and Parquet inputs
    #[arg(long, default_value = "text")]
    pub text_field: String,
}

#[derive(Args, Debug)]
pub struct LmScoreArgs {
    /// The ARPA model
    pub model: PathBuf,
    /// Text to score, one document per line (standard input when absent)
    pub input: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum LabelCommand {
    /// Merges a label file's columns by doc_id into a new version; refused whole when a doc_id
    /// is unknown or repeated, a column exists already, or a column mixes types
    Import {
        /// The lake: a directory or s3://bucket/prefix
        lake: String,
        /// JSON lines (plain, gzip, zstd) or Parquet with a `doc_id` and label columns
        file: PathBuf,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    #[command(flatten)]
    pub version: VersionArgs,
    /// Only documents where this SQL predicate holds
    #[arg(long)]
    pub filter: Option<String>,
    /// Documents to sample
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub count: usize,
    /// The same seed gives the same sample; a larger -n extends it
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Columns to export [default: every column but tokens]
    #[arg(long, value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Write here instead of standard output
    #[arg(long)]
    pub out: Option<PathBuf>,
}
