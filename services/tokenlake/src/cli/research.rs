//! Query, export and research: asking the lake questions and taking data out.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{PlanPlace, RecipeArgs, VersionArgs};

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The lake: a directory or s3://bucket/prefix
    pub lake: String,
    /// One SELECT statement over the table `documents`; `@FILE` reads it from a file and `-`
    /// from standard input (a statement with thousands of ids is longer than a command line)
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
    /// Memory the query's sorts, joins and aggregations may hold, in MiB (they spill to disk
    /// first) [default: what the machine has]
    #[arg(long, value_name = "MIB")]
    pub max_memory_mb: Option<u64>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryFormat {
    Table,
    Csv,
    Json,
    Parquet,
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

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormatArg {
    Megatron,
    Jsonl,
    Parquet,
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

#[derive(Args, Debug)]
pub struct PresignArgs {
    /// The object, as s3://bucket/key
    pub uri: String,
    /// How long the URL works: 90s, 15m, 12h, 7d (at most 7 days)
    #[arg(long, default_value = "24h")]
    pub expires: String,
}

#[derive(Subcommand, Debug)]
pub enum MixCommand {
    /// Derives N proxy recipes from a stage of RECIPE, its weights drawn from a seeded
    /// Dirichlet around the stage's (or a space-filling selection of such draws), each with a
    /// budget of T tokens; writes them, runs.csv (weights, and a loss column to fill in after
    /// training each) and design.json (the components' CH, RA and SIM)
    Design(MixDesignArgs),
    /// Fits how a run's loss depends on its weights (the data mixing law, RegMix's linear one,
    /// or Ziya2's law on the components' attributes and the tokens) to a filled-in runs.csv;
    /// reports the held-out error and the weights covered
    Fit(MixFitArgs),
    /// The stage weights that minimise the fit's predicted loss within what the design covered,
    /// --min/--max shares and --max-epochs of each component's unique tokens (from the plan),
    /// with repeated tokens discounted; written as a recipe
    Propose(MixProposeArgs),
}

#[derive(Args, Debug)]
pub struct MixDesignArgs {
    /// The base recipe, and where its proxies plan (the first is planned in full; the others
    /// get their plan ids from the same token cache or store without building plan indexes)
    #[command(flatten)]
    pub base: RecipeArgs,
    /// Proxy runs to design
    #[arg(long)]
    pub runs: usize,
    /// Tokens each proxy run trains on; several (comma-separated) take turns, so that
    /// `--law ziya2` can fit how loss falls with tokens
    #[arg(long, value_delimiter = ',', required = true)]
    pub tokens: Vec<u64>,
    /// dirichlet (independent draws around the base) or space-filling (the runs spread
    /// evenly over the same region)
    #[arg(long, default_value = "dirichlet")]
    pub design: tokenlake_research::mixture::Design,
    /// The stage whose mixture is designed [default: the first]
    #[arg(long)]
    pub stage: Option<String>,
    /// How closely runs stay around the base weights (the Dirichlet's concentration)
    #[arg(long, default_value_t = 20.0)]
    pub concentration: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Directory for the proxy recipes, runs.csv and design.json
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct MixFitArgs {
    /// runs.csv of `mix design` with its loss column filled in
    pub runs: PathBuf,
    /// data-mixing (L = c + exp(Σ t·r)), regmix (L = Σ β·r) or ziya2
    /// (L = D^−α + E, D = Σ V·(A·CH + B·RA + C·SIM) + F over the components)
    #[arg(long, default_value = "data-mixing")]
    pub law: tokenlake_research::mixture::Law,
    /// The design.json of `mix design`, for the components' attributes and the runs' tokens
    /// [default: design.json beside RUNS]
    #[arg(long)]
    pub design: Option<PathBuf>,
    /// Write the fit (for `mix propose`) here
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write each run's observed against predicted loss as an SVG plot here
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct MixProposeArgs {
    /// The fit `mix fit --out` wrote
    pub fit: PathBuf,
    /// The recipe whose stage gets the proposed weights (the others are kept)
    #[arg(long)]
    pub base: PathBuf,
    /// Tokens the stage will train on
    #[arg(long)]
    pub tokens: u64,
    #[arg(long)]
    pub stage: Option<String>,
    /// Where the base recipe plans (for each component's unique tokens and the tokens the
    /// other stages take of it)
    #[command(flatten)]
    pub place: PlanPlace,
    /// No component repeated more than this many epochs over the whole recipe, its other
    /// stages' tokens of it included (returns fall after about 4)
    #[arg(long, default_value_t = 4.0)]
    pub max_epochs: f64,
    #[arg(long, default_value_t = 0.0)]
    pub min: f64,
    #[arg(long, default_value_t = 1.0)]
    pub max: f64,
    /// Where to write the proposed recipe
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}
