//! `tokenlake bench …`: the figures are measured by `tokenlake-bench`; these are its flags.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::parse_device;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Ingest throughput: read + parse, + tokenize, and a full ingest into a scratch lake
    Ingest(BenchIngestArgs),
    /// Plan build time and index size for synthetic corpora, and resume latency at the start,
    /// middle and end of the plan
    Plan(BenchPlanArgs),
    /// Micro-batch assembly throughput against plain memcpy of the same bytes; with --loopback,
    /// gRPC streams on loopback against in-process assembly, and idle streams' memory
    Stream(BenchStreamArgs),
    /// One node of a large world reading a token store through a window, simulated over a real
    /// plan index with a latency model: stalls, GETs, bytes fetched over served, slab, cold
    /// start, for 7B, 1B and 125M models
    Window(BenchWindowArgs),
    /// Curation throughput: each stage per core, the whole pipeline per core and on every
    /// core, `curate` on a scratch lake, and datatrove's rate for the same four rule sets
    /// measured in the same run (when Python has datatrove)
    Curate(BenchCurateArgs),
    /// A label GROUP BY (documents, tokens and mean perplexity per source, language and
    /// quality tier) over synthetic lakes, against a Lance scan of the same columns grouped by
    /// hand
    Query(BenchQueryArgs),
    /// De-duplication's SimHash candidates over synthetic hashes: comparisons per document
    /// and documents per second as the index grows, the index's tables beside the four
    /// 16-bit block tables used before, in the same run
    Dedup(BenchDedupArgs),
    /// Label writes over synthetic lakes of about a million rows per fragment: each fragment
    /// given only its own rows' labels (the lake's write) against every fragment given the
    /// whole batch (the write it replaced), in the same run
    Labels(BenchLabelsArgs),
    /// What a proxy run of `mix design` costs over synthetic token caches of several sizes:
    /// its plan built in full (time, index bytes) against identified (the token cache opened,
    /// the recipe hashed), in the same run
    Mix(BenchMixArgs),
}

#[derive(Args, Debug)]
pub struct BenchMixArgs {
    /// Corpus sizes, in documents (synthetic token lengths, about 1,600 tokens each)
    #[arg(long, value_delimiter = ',', default_value = "100000,400000,1600000")]
    pub docs: Vec<u64>,
    /// Proxy recipes per size
    #[arg(long, default_value_t = 8)]
    pub runs: u64,
    /// Tokens each proxy trains on
    #[arg(long, default_value_t = 100_000_000)]
    pub proxy_tokens: u64,
    /// Scratch directory for the caches [default: the system's temporary directory]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchLabelsArgs {
    /// Lake sizes, in documents (Lance writes about a million rows per fragment)
    #[arg(long, value_delimiter = ',', default_value = "2000000,10000000")]
    pub rows: Vec<u64>,
    /// Scratch directory for the lakes [default: the system's temporary directory]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchDedupArgs {
    /// Corpus sizes, in documents
    #[arg(long, value_delimiter = ',', default_value = "250000,1000000,4000000")]
    pub docs: Vec<u64>,
    /// Partitions of the pipeline's index
    #[arg(long, default_value_t = 64)]
    pub partitions: u32,
    /// Memory budget of one candidate task, in MiB (a quarter for each of its two sorts)
    #[arg(long, default_value_t = 2048)]
    pub task_budget_mb: u64,
    /// Largest size at which today's in-memory index is measured beside the pipeline
    #[arg(long, default_value_t = 4_000_000)]
    pub index_max: u64,
    /// Also compare the SimHash candidate tables (ten pair-of-blocks against four 16-bit)
    #[arg(long)]
    pub simhash: bool,
    /// Scratch directory for the index [default: the system's temporary directory]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
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
pub struct BenchWindowArgs {
    /// Synthetic documents in the plan (the planner benchmark's lake)
    #[arg(long, default_value_t = 10_000_000)]
    pub docs: u64,
    /// Ranks in the world
    #[arg(long, default_value_t = 512)]
    pub world: u32,
    /// Ranks on the simulated node
    #[arg(long, default_value_t = 8)]
    pub ranks: u32,
    /// Samples per rank per step
    #[arg(long, default_value_t = 1)]
    pub micro_batch: u32,
    /// Simulated seconds per model
    #[arg(long, default_value_t = 600.0)]
    pub seconds: f64,
    /// The window's bound, in MiB
    #[arg(long, default_value_t = 1024.0)]
    pub window_max_mib: f64,
    /// How far each rank reads ahead besides the bound: samples, seconds (120s) or unbounded
    #[arg(long, default_value = "unbounded")]
    pub window_horizon: tokenlake_plan::Horizon,
    /// Ranged GETs in flight at once on the node
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Median latency of one GET, in milliseconds
    #[arg(long, default_value_t = 20.0)]
    pub p50_ms: f64,
    /// 99th percentile latency of one GET, in milliseconds
    #[arg(long, default_value_t = 200.0)]
    pub p99_ms: f64,
    /// Fetch parts of documents whole, as a plan without piece checksums does (a sealed
    /// store's plan)
    #[arg(long)]
    pub whole_documents: bool,
    /// The rate a cold node downloads the plan index at, in MB/s; a low rate makes a small
    /// synthetic index take as long as a large one would (111 GB at 1 GB/s: 111 s)
    #[arg(long, default_value_t = 1000.0)]
    pub index_mb_per_s: f64,
    /// Scratch directory for the plan [default: the system's temporary directory]
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
    /// --idle-streams open but idle streams (`--server` is an old name of this flag; on
    /// `stream`, --server names a server's URL)
    #[arg(long, alias = "server")]
    pub loopback: bool,
    /// The same as --loopback (`--transport shm` names the transport compared there)
    #[arg(long, value_enum)]
    pub transport: Option<BenchTransport>,
    /// With --loopback or --transport: also stream through shared memory into this GPU's memory
    /// (cuda or cuda:N), next to a plain copy of the same size from page-locked memory
    #[arg(long, value_parser = parse_device)]
    pub device: Option<usize>,
    /// Idle streams to hold open for the memory figure (with --loopback)
    #[arg(long, default_value_t = 64)]
    pub idle_streams: u32,
    /// Measure a real lake (local or s3://) through this recipe instead of synthetic data:
    /// cold (token cache filled from the lake) and warm (cache reused) tokens/s, and object
    /// store GET requests per million tokens of each
    #[arg(long, conflicts_with_all = ["loopback", "transport", "device"])]
    pub recipe: Option<PathBuf>,
    /// The lake to plan over, instead of the recipe's `lake` (with --recipe)
    #[arg(long, requires = "recipe")]
    pub lake: Option<String>,
    /// With --recipe: a full local cache, or the token store through a window
    #[command(flatten)]
    pub window: super::WindowArgs,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchTransport {
    Shm,
    Grpc,
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
