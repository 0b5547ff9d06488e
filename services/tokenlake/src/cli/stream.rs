//! Plan, stream and serve: recipes to batches, locally and over gRPC.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug)]
pub struct RecipeArgs {
    /// The recipe (TOML): lake, version, seq_len, seed, components, stages
    pub recipe: PathBuf,
    #[command(flatten)]
    pub place: PlanPlace,
}

/// Where a recipe plans: over which lake and version, with which caches or window.
#[derive(Args, Debug, Clone)]
pub struct PlanPlace {
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
    #[command(flatten)]
    pub window: WindowArgs,
}

/// How a plan gets its tokens: a full local cache, or a token store through a window.
#[derive(Args, Debug, Clone)]
pub struct WindowArgs {
    /// full: copy the whole selection into the local cache first; window: read the selection's
    /// token store (`tokenlake materialise`) ahead of the stream into a bounded window; auto:
    /// window when the store is larger than --cache-max-gib, else full
    #[arg(long, default_value = "auto")]
    pub cache_mode: tokenlake_plan::CacheMode,
    /// Window mode: bound, in MiB, of the documents held ahead of the stream (fractions allowed)
    #[arg(long, default_value_t = 1024.0)]
    pub window_max_mib: f64,
    /// Window mode: how far ahead to read besides the bound: samples (4096), seconds of
    /// consumption (120s) or unbounded
    #[arg(long, default_value = "unbounded")]
    pub window_horizon: tokenlake_plan::Horizon,
    /// Where token stores live [default: token-stores/ inside the lake]
    #[arg(long)]
    pub token_stores: Option<String>,
}

#[derive(Args, Debug)]
pub struct MaterialiseArgs {
    /// The recipe (TOML) whose selection to publish
    pub recipe: PathBuf,
    /// The lake to plan over, instead of the recipe's `lake`
    #[arg(long)]
    pub lake: Option<String>,
    /// A version number or tag, instead of the recipe's `version`
    #[arg(long)]
    pub version: Option<String>,
    /// Where the local token cache is filled before it is published [default: as for `plan`]
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Where token stores live [default: token-stores/ inside the lake]
    #[arg(long)]
    pub token_stores: Option<String>,
    /// Size of the store's token chunks, in MiB
    #[arg(long, default_value_t = 64)]
    pub chunk_mib: u64,
    /// One task of a sharded build (I of N, from 0): publish the documents of the I-th of N
    /// slices of the version's fragments; then `--seal N` once every task has
    #[arg(long, value_name = "I/N", conflicts_with = "seal")]
    pub shard: Option<String>,
    /// The last step of a sharded build of N tasks: seal their outputs into the store and
    /// publish the plan index
    #[arg(long, value_name = "N")]
    pub seal: Option<u32>,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
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
    /// Bearer token for --server; prefer $TOKENLAKE_TOKEN or --token-file, since a command
    /// line is visible to every user of the machine (`ps`)
    #[arg(
        long,
        env = "TOKENLAKE_TOKEN",
        hide_env_values = true,
        requires = "server",
        conflicts_with = "token_file"
    )]
    pub token: Option<String>,
    /// A file holding the bearer token for --server (surrounding whitespace ignored)
    #[arg(long, value_name = "FILE", requires = "server")]
    pub token_file: Option<PathBuf>,
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
    /// Check this configuration file (with the flags below laid over it) and exit: unknown
    /// keys, unsafe set-ups, tokens and TLS files; serves nothing
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub check_config: Option<PathBuf>,
    /// Print the built-in defaults as a configuration file and exit
    #[arg(long, exclusive = true)]
    pub print_default_config: bool,
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
    /// Serve the corpus explorer (the lakes in a browser) at http://ADDR, with this server's
    /// lakes, tokens, roles and query limits
    #[arg(long, value_name = "ADDR")]
    pub ui: Option<std::net::SocketAddr>,
}

#[derive(Args, Debug)]
pub struct UiArgs {
    /// Lakes to explore: a path or URI (named by its last path part), or NAME=URI
    #[arg(required = true, value_name = "LAKE")]
    pub lakes: Vec<String>,
    /// Address to listen on; loopback only, since nobody signs in
    #[arg(long, default_value = "127.0.0.1:7080")]
    pub listen: std::net::SocketAddr,
    /// Where previewed recipes' token caches and plan indexes go [default: <lake>/cache]
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}
