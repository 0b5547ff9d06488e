//! The `tokenlake` command: thin glue from the command line to the lake and ingest crates.
//! Parsing, rendering and progress bars live here; no storage or tokenization logic does.
//!
//! A library as well as a binary so that the Python package's `tokenlake` command runs the
//! same code in its own process ([`main_with_args`]).

mod cli;
mod commands;
mod output;
mod progress;
mod signal;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::FromArgMatches;

use crate::cli::{Cli, Command};

/// The stack of every thread that may plan or run SQL (the main one, the runtime's workers and
/// its blocking pool). DataFusion clones and drops an expression tree recursively, a few
/// frames per level, so a 10,000-term `OR` (a list of ids in a query or a recipe filter)
/// needs megabytes: 8 MiB overflowed, and a worker's default 2 MiB far sooner. The memory is
/// reserved, not used, until a deep expression touches it.
const STACK_BYTES: usize = 64 << 20;

/// Runs the command line `args` (the program's name first) on a thread with the stack it
/// needs, and returns its exit code.
pub fn main_with_args(args: Vec<OsString>) -> ExitCode {
    std::thread::Builder::new()
        .name("main".into())
        .stack_size(STACK_BYTES)
        .spawn(move || run(args))
        .expect("starting the main thread")
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn run(args: Vec<OsString>) -> ExitCode {
    let matches = cli::command().get_matches_from(args);
    if let Some(("stream", stream)) = matches.subcommand()
        && stream.value_source("token") == Some(clap::parser::ValueSource::CommandLine)
    {
        eprintln!(
            "warning: a token on the command line is visible to every user of this machine \
             (ps); use TOKENLAKE_TOKEN or --token-file"
        );
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // Before any HTTPS client (object storage, the AWS SDK, gRPC over TLS) is made.
    tokenlake_schemas::install_tls_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            // TOKENLAKE_LOG first, then the ecosystem's RUST_LOG, else warnings only.
            tracing_subscriber::EnvFilter::try_from_env("TOKENLAKE_LOG")
                .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(STACK_BYTES)
        .build()
        .expect("starting the async runtime");
    if let Err(err) = commands::storage::set_options(&cli.storage_options) {
        eprintln!("error: {}", output::error_chain(&err));
        return ExitCode::FAILURE;
    }
    let result = runtime.block_on(async {
        match cli.command {
            Command::Init(args) => commands::storage::init(args).await,
            Command::Query(args) => commands::query::run(args).await,
            Command::Export(args) => commands::export::run(args).await,
            Command::Similarity(args) => commands::similarity::run(args).await,
            Command::Attributes(args) => commands::similarity::attributes(args).await,
            Command::Presign(args) => commands::storage::presign(args).await,
            Command::Ingest(args) => commands::ingest::run(args).await,
            Command::Commit(args) => commands::ingest::commit(args).await,
            Command::Dedup(cli::DedupCommand::Prepare(args)) => {
                commands::ingest::commit_or_prepare(args, true).await
            }
            Command::Dedup(cli::DedupCommand::Candidates(args)) => {
                commands::dedup::candidates(args)
            }
            Command::Dedup(cli::DedupCommand::Status(args)) => commands::dedup::status(args),
            Command::Versions(args) => commands::lake::versions(args).await,
            Command::Tag(args) => commands::lake::tag(args).await,
            Command::Describe(args) => commands::lake::describe(args).await,
            Command::Diff(args) => commands::lake::diff(args).await,
            Command::TrainTokenizer(args) => commands::tokenizer::train(args).await,
            Command::Sample(args) => commands::labels::sample(args).await,
            Command::Curate(args) => commands::curate::run(args).await,
            Command::Eval(args) => commands::eval::run(args).await,
            Command::Lm(command) => commands::lm::run(command).await,
            Command::ScalingLaw(cli::ScalingLawCommand::Fit(args)) => {
                commands::scaling_law::fit_command(args).await
            }
            Command::Label(cli::LabelCommand::Import { lake, file, json }) => {
                commands::labels::import(&lake, &file, json).await
            }
            Command::Mix(cli::MixCommand::Design(args)) => {
                commands::mix::design_command(args).await
            }
            Command::Mix(cli::MixCommand::Fit(args)) => commands::mix::fit_command(args).await,
            Command::Mix(cli::MixCommand::Propose(args)) => {
                commands::mix::propose_command(args).await
            }
            Command::Plan(args) => commands::plan::plan(args).await,
            Command::Materialise(args) => commands::plan::materialise(args).await,
            Command::Stream(args) if args.server.is_some() => commands::remote::stream(args).await,
            Command::Stream(args) => commands::plan::stream(args).await,
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Ui(args) => commands::serve::ui(args).await,
            Command::Bench(cli::BenchCommand::Ingest(args)) => commands::bench::ingest(args).await,
            Command::Bench(cli::BenchCommand::Plan(args)) => commands::bench::plan(args).await,
            Command::Bench(cli::BenchCommand::Window(args)) => {
                commands::bench_window::run(args).await
            }
            Command::Bench(cli::BenchCommand::Stream(args)) => commands::bench::stream(args).await,
            Command::Bench(cli::BenchCommand::Query(args)) => commands::bench::query(args).await,
            Command::Bench(cli::BenchCommand::Dedup(args)) => commands::bench::dedup(args),
            Command::Bench(cli::BenchCommand::Labels(args)) => commands::bench::labels(args).await,
            Command::Bench(cli::BenchCommand::Mix(args)) => commands::bench::mix(args).await,
            Command::Bench(cli::BenchCommand::Curate(args)) => {
                commands::bench_curate::run(args).await
            }
            Command::Completions { shell } => {
                use std::io::Write;
                // Into a buffer first: clap_complete panics on a write error, and a pager or
                // `head` closing the pipe is no error of ours.
                let script = cli::completions(shell);
                match std::io::stdout().write_all(&script) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                    _ => Ok(ExitCode::SUCCESS),
                }
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", output::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}
