//! Command-line arguments. Every command has `--help`; `--json` gives scripts the same content
//! as the tables.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tokenlake_lake::VersionSpec;

#[derive(Parser, Debug)]
#[command(
    name = "tokenlake",
    version,
    about = "A versioned token lake for LLM pre-training data",
    long_about = "A versioned token lake for LLM pre-training data.\n\n\
        A lake is a directory or an s3://bucket/prefix; its documents table is the Lance \
        dataset <lake>/documents.lance. \
        Every ingest commits one new version; tags name versions.\n\n\
        Log level: TOKENLAKE_LOG=info (or debug, warn, ...)."
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

#[derive(Subcommand, Debug)]
pub enum Command {
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
    /// Makes a place ready for a lake: creates its S3 bucket or directory and checks that it
    /// can be written
    Init(InitArgs),
    /// Prints a presigned URL that downloads one object (a report, a rejects file) until it
    /// expires
    Presign(PresignArgs),
    /// Tokenizes JSON lines (plain, .gz, .zst) or Parquet inputs into the lake as one new version
    Ingest(IngestArgs),
    /// Publishes every shard of a sharded ingest (`ingest --shard I/N`) as one version: repeats
    /// across shards dropped, and with labelled shards the duplicate clusters and tiers over
    /// the whole lake; refuses, changing nothing, while a shard is missing
    Commit(CommitArgs),
    /// Lists the lake's versions with their row counts, tags and what made them
    Versions(LakeArgs),
    /// Creates, lists or deletes tags (names for versions)
    Tag(TagArgs),
    /// Rows and tokens of one version, in total and by source and language, and its schema
    Describe(DescribeArgs),
    /// Rows and tokens added and removed, by source, between two versions or tags
    Diff(DiffArgs),
    /// Trains a byte-level BPE tokenizer.json on JSON lines or Parquet inputs
    TrainTokenizer(TrainTokenizerArgs),
    /// Exports a deterministic sample of documents (JSON lines) for human review
    Sample(SampleArgs),
    /// Labels every document of a version as one new version (Ziya2's curation, as labels):
    /// language, perplexity and quality tier, rule signals and flags, duplicate clusters;
    /// documents curated before are not read again
    Curate(CurateArgs),
    /// Evaluates a version on a deterministic sample (Ziya2's Table 1): privacy, toxic,
    /// advertising and HTML rates, perplexity, readability, languages, lengths, rule failures
    /// by source, duplicates; writes report.html with plots and report.json
    Eval(EvalArgs),
    /// N-gram language models for perplexity scoring
    #[command(subcommand)]
    Lm(LmCommand),
    /// Ziya2's data-centric scaling law
    #[command(subcommand, name = "scaling-law")]
    ScalingLaw(ScalingLawCommand),
    /// Adds label columns (doc_id plus labels, JSON lines or Parquet) as one new version
    #[command(subcommand)]
    Label(LabelCommand),
    /// Dry-runs a recipe: resolved version, per stage and component documents, tokens,
    /// samples, epochs and what packing drops; builds the plan's caches for later streams
    Plan(PlanArgs),
    /// Streams one rank's micro-batches of a recipe's plan, locally or from a server
    /// (--server): batches as JSON lines, or with --checksums one line per sample
    Stream(StreamArgs),
    /// Serves lakes over gRPC: streams for training ranks, plans, catalog, SQL and admin jobs
    Serve(ServeArgs),
    /// Measures throughput and prints figures against baselines from the same run
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Which version of a lake a reading command looks at: the latest unless one is named.
#[derive(Args, Debug, Clone)]
pub struct VersionArgs {
    /// This version instead of the latest
    #[arg(long, conflicts_with = "tag")]
    pub version: Option<u64>,
    /// The version this tag names
    #[arg(long)]
    pub tag: Option<String>,
}

impl VersionArgs {
    pub fn spec(self) -> VersionSpec {
        VersionSpec::from_options(self.version, self.tag)
    }
}

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// The lake directory
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

#[derive(Args, Debug)]
pub struct CurateArgs {
    /// The lake directory
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
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The lake directory
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
pub enum ScalingLawCommand {
    /// Fits L(D) = D^(−α) + E, D = (A·CH + B·RA + C·SIM)·V + F to measured runs (a CSV with
    /// columns ch, ra, sim, tokens, loss), by Huber loss on log loss with L-BFGS from Ziya2's
    /// grid of 32,768 starting points; prints the fit and its residuals
    Fit(ScalingLawFitArgs),
}

#[derive(Args, Debug)]
pub struct ScalingLawFitArgs {
    /// One row per measured run: ch, ra, sim, tokens, loss (other columns are ignored)
    pub observations: PathBuf,
    /// Also write observed against fitted loss as an SVG plot here
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Start from every K-th point of the grid only (a quicker, coarser search)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub grid_step: u64,
    /// Print JSON (alpha, A, B, C, E, F, objective, residuals) instead of a table
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
        /// The lake directory
        lake: String,
        /// JSON lines (plain, gzip, zstd) or Parquet with a `doc_id` and label columns
        file: PathBuf,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Ingest throughput: read + parse, + tokenize, and a full ingest into a scratch lake
    Ingest(BenchIngestArgs),
    /// Plan build time and index size for synthetic corpora, and resume latency at the start,
    /// middle and end of the plan
    Plan(BenchPlanArgs),
    /// Micro-batch assembly throughput against plain memcpy of the same bytes; with --server,
    /// gRPC streams on loopback against in-process assembly, and idle streams' memory
    Stream(BenchStreamArgs),
    /// Curation throughput: each stage per core, the whole pipeline per core and on every
    /// core, `curate` on a scratch lake, and datatrove's rate for the same four rule sets
    /// measured in the same run (when Python has datatrove)
    Curate(BenchCurateArgs),
    /// A label GROUP BY (documents, tokens and mean perplexity per source, language and
    /// quality tier) over synthetic lakes, against a Lance scan of the same columns grouped by
    /// hand
    Query(BenchQueryArgs),
}

#[derive(Args, Debug)]
pub struct BenchQueryArgs {
    /// Lake sizes, in documents (synthetic labels, empty token lists)
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    pub rows: Vec<u64>,
    /// Times each measurement is repeated; the best is reported
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Scratch directory for the lakes [default: the system's temporary directory]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchCurateArgs {
    /// JSON lines (plain, gzip, zstd) or Parquet inputs, e.g. the shared corpus
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Pipeline file [default: published thresholds, no perplexity models]
    #[arg(long)]
    pub pipeline: Option<PathBuf>,
    /// Tokenizer for the scratch lake of the end-to-end `curate` measurement
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Python with datatrove installed [default: $TOKENLAKE_PYTHON, else python3]
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Documents datatrove is timed on (it runs at tens of documents per second)
    #[arg(long, default_value_t = 1000)]
    pub datatrove_docs: usize,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchPlanArgs {
    /// Corpus sizes to plan, in documents (synthetic token lengths)
    #[arg(long, value_delimiter = ',', default_value = "1000000,10000000")]
    pub docs: Vec<u64>,
    /// Scratch directory for the caches [default: the system's temporary directory]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchStreamArgs {
    /// Synthetic documents with real tokens in the token cache
    #[arg(long, default_value_t = 100_000)]
    pub docs: u64,
    /// Samples to assemble (at most the plan's; 100 000 documents make about 38 000)
    #[arg(long, default_value_t = 40_000)]
    pub samples: u64,
    #[arg(long, default_value_t = 8)]
    pub micro_batch: u32,
    /// Scratch directory for the caches [default: the system's temporary directory]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Measure an in-process server on loopback: 1 and 8 concurrent gRPC streams and one
    /// shared-memory stream against in-process assembly and plain memcpy, then the memory of
    /// --idle-streams open but idle streams
    #[arg(long)]
    pub server: bool,
    /// The same as --server (`--transport shm` names the transport compared there)
    #[arg(long, value_enum)]
    pub transport: Option<BenchTransport>,
    /// With --server or --transport: also stream through shared memory into this GPU's memory
    /// (cuda or cuda:N), next to a plain copy of the same size from page-locked memory
    #[arg(long, value_parser = parse_device)]
    pub device: Option<usize>,
    /// Idle streams to hold open for the memory figure (with --server)
    #[arg(long, default_value_t = 64)]
    pub idle_streams: u32,
    /// Measure a real lake (local or s3://) through this recipe instead of synthetic data:
    /// cold (token cache filled from the lake) and warm (cache reused) tokens/s, and object
    /// store GET requests per million tokens of each
    #[arg(long, conflicts_with_all = ["server", "transport", "device"])]
    pub recipe: Option<PathBuf>,
    /// The lake to plan over, instead of the recipe's `lake` (with --recipe)
    #[arg(long, requires = "recipe")]
    pub lake: Option<String>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RecipeArgs {
    /// The recipe (TOML): lake, version, seq_len, seed, components, stages
    pub recipe: PathBuf,
    /// The lake to plan over, instead of the recipe's `lake`
    #[arg(long)]
    pub lake: Option<String>,
    /// A version number or tag, instead of the recipe's `version`
    #[arg(long)]
    pub version: Option<String>,
    /// Where token caches and plan indexes are kept [default: <lake>/cache for a local lake;
    /// $TOKENLAKE_CACHE_DIR, else ~/.cache/tokenlake, for a remote one]
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Evict the least recently used token caches beyond this many GiB
    #[arg(long)]
    pub cache_max_gib: Option<f64>,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Print JSON instead of tables
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct StreamArgs {
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// This process's rank, 0..world
    #[arg(long, default_value_t = 0)]
    pub rank: u32,
    /// Number of ranks
    #[arg(long, default_value_t = 1)]
    pub world: u32,
    /// Samples per rank per step
    #[arg(long, default_value_t = 1)]
    pub micro_batch: u32,
    /// Steps to stream [default: to the end of the plan]
    #[arg(long)]
    pub steps: Option<u64>,
    /// Resume from this cursor (as written by --cursor-out)
    #[arg(long)]
    pub cursor: Option<String>,
    /// Write here instead of standard output
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the cursor after the last streamed step to this file
    #[arg(long)]
    pub cursor_out: Option<PathBuf>,
    /// One tab-separated line per sample instead of batches: global index, component,
    /// xxh3-64 of the sample's token bytes in hex
    #[arg(long)]
    pub checksums: bool,
    /// Stream from this server (http://HOST:PORT or https://…) instead of planning locally;
    /// the recipe's `lake` then names one of the server's lakes
    #[arg(long, conflicts_with = "cache_dir")]
    pub server: Option<String>,
    /// Bearer token for --server
    #[arg(
        long,
        env = "TOKENLAKE_TOKEN",
        hide_env_values = true,
        requires = "server"
    )]
    pub token: Option<String>,
    /// PEM certificate of the CA that signed an https server's certificate
    #[arg(long, requires = "server")]
    pub ca_cert: Option<PathBuf>,
    /// With --server: tokens through shared memory (shm; the server must run on this host),
    /// inside the gRPC messages (grpc), or shared memory where the server offers it (auto)
    #[arg(long, value_enum, default_value_t = TransportArg::Auto, requires = "server")]
    pub transport: TransportArg,
    /// With --server: one tab-separated line per batch instead of samples: step, samples and
    /// the batch's position-weighted token checksum in hex (computed where --device says)
    #[arg(long, requires = "server", conflicts_with = "checksums")]
    pub batch_checksums: bool,
    /// With --batch-checksums: copy every batch into this GPU's memory (cuda or cuda:N,
    /// through page-locked staging buffers) and compute its checksum there; without a CUDA
    /// driver or device this says so and computes it on the host
    #[arg(long, value_parser = parse_device, requires = "batch_checksums")]
    pub device: Option<usize>,
}

/// `cuda` or `cuda:N`: the ordinal of a CUDA device.
pub fn parse_device(value: &str) -> Result<usize, String> {
    match value.strip_prefix("cuda") {
        Some("") => Ok(0),
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("{value:?} is not cuda or cuda:N")),
        None => Err(format!("{value:?} is not a device: give cuda or cuda:N")),
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchTransport {
    Shm,
    Grpc,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportArg {
    Auto,
    Shm,
    Grpc,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Server configuration (TOML; see deploy/config/serve.toml); the flags below override it
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7070]
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// A lake to serve, as NAME=URI (repeat for more); recipes and requests name it by NAME
    #[arg(long = "lake", value_name = "NAME=URI")]
    pub lakes: Vec<String>,
    /// Where token caches and plan indexes are kept [default: <lake>/cache]
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Where co-located clients' shared-memory rings are made [default: /dev/shm]
    #[arg(long)]
    pub shm_dir: Option<PathBuf>,
    /// No authentication (loopback addresses only, unless --allow-open-on-network)
    #[arg(long)]
    pub open: bool,
    /// Let an open server listen on a non-loopback address
    #[arg(long, requires = "open")]
    pub allow_open_on_network: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics
    #[arg(long)]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Args, Debug)]
pub struct BenchIngestArgs {
    /// JSON lines (plain, gzip, zstd) or Parquet inputs
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Hugging Face tokenizer.json
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Field (or Parquet column) holding the text
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    /// One SELECT statement over the table `documents`
    pub sql: String,
    #[command(flatten)]
    pub version: VersionArgs,
    /// table (for reading), csv, json (one object per row, one row a line) or parquet
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
    /// Write here instead of standard output (parquet needs a file)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// At most this many rows; more are cut, with a note on stderr
    #[arg(long, default_value_t = 10_000)]
    pub limit: u64,
    /// Give up after this many seconds
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    /// One output per component of this recipe, PREFIX_COMPONENT, at the recipe's version,
    /// Megatron documents ending in its eos_token; prints each stage's Megatron --data-path
    #[arg(long, conflicts_with = "filter")]
    pub recipe: Option<PathBuf>,
    /// Only documents where this SQL predicate holds [default: every document]
    #[arg(long)]
    pub filter: Option<String>,
    #[command(flatten)]
    pub version: VersionArgs,
    #[arg(long, value_enum)]
    pub format: ExportFormatArg,
    /// Path prefix of the files: PREFIX.bin and PREFIX.idx, PREFIX.jsonl or PREFIX.parquet
    #[arg(long)]
    pub out: PathBuf,
    /// Megatron: append this token to every document (overrides the recipe's eos_token)
    #[arg(long)]
    pub eos: Option<u32>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct AttributesArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    /// The recipe whose components and stages are described
    #[arg(long)]
    pub recipe: PathBuf,
    /// This version instead of the recipe's
    #[command(flatten)]
    pub version: VersionArgs,
    /// Coherence of a document, SQL in [0, 1] [default: 1 - quality_tier / 2]
    #[arg(long)]
    pub ch: Option<String>,
    /// Readability of a document, SQL in [0, 1] [default: the share of the Gopher quality,
    /// Gopher repetition, C4 and FineWeb rule sets it passes]
    #[arg(long)]
    pub ra: Option<String>,
    /// Similarity of a document to the downstream tasks, SQL in [0, 1] [default: the lake's
    /// one sim_NAME column]
    #[arg(long)]
    pub sim: Option<String>,
    /// Print the stages as CSV with the scaling-law columns ch,ra,sim,tokens (add each run's
    /// measured loss to make observations for `scaling-law fit`)
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// Print JSON instead of tables
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SimilarityArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    /// Target sets: JSON lines (plain or .gz) or .parquet, one test question per record
    #[arg(long, required = true, num_args = 1..)]
    pub targets: Vec<PathBuf>,
    /// Names the columns sim_NAME, ngram13_NAME and contaminated_NAME [default: the first
    /// target file's name]
    #[arg(long)]
    pub name: Option<String>,
    /// The record fields that hold a target's text [default: every string in the record]
    #[arg(long = "field")]
    pub fields: Vec<String>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormatArg {
    Megatron,
    Jsonl,
    Parquet,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PresignArgs {
    /// The object, as s3://bucket/key
    pub uri: String,
    /// How long the URL works: 90s, 15m, 12h, 7d (at most 7 days)
    #[arg(long, default_value = "24h")]
    pub expires: String,
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
    /// Print the summary as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LakeArgs {
    /// The lake directory
    pub lake: String,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    /// The lake directory
    pub lake: String,
    #[command(subcommand)]
    pub action: TagAction,
}

#[derive(Subcommand, Debug)]
pub enum TagAction {
    /// Names a version (the latest unless --version is given)
    Create {
        /// Letters, digits, '-', '_' and '.'; not all digits
        name: String,
        #[arg(long)]
        version: Option<u64>,
    },
    /// Lists tags and the versions they name
    List {
        #[arg(long)]
        json: bool,
    },
    /// Deletes a tag; the version it named is kept
    Delete { name: String },
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// The lake directory
    pub lake: String,
    #[command(flatten)]
    pub version: VersionArgs,
    /// Print JSON instead of tables
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The lake directory
    pub lake: String,
    /// The older version: a number or a tag
    pub from: String,
    /// The newer version: a number or a tag
    pub to: String,
    /// Print JSON instead of a table
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
