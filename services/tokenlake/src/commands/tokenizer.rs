//! `tokenlake train-tokenizer`.

use std::process::ExitCode;
use std::sync::Arc;

use tokenlake_ingest::{TrainOptions, read_texts, train_bpe};
use tokenlake_lake::Progress;

use crate::cli::TrainTokenizerArgs;
use crate::output::count;
use crate::progress::run_job;
use crate::signal::EXIT_INTERRUPTED;

pub async fn train(args: TrainTokenizerArgs) -> anyhow::Result<ExitCode> {
    let options = TrainOptions {
        vocab_size: args.vocab_size,
        min_frequency: args.min_frequency,
        special_tokens: args.special_tokens,
        out: args.out,
    };
    let progress = Arc::new(Progress::default());
    let job = progress.clone();
    let trained = run_job(
        "train-tokenizer",
        "",
        "stopping: no tokenizer is written",
        progress,
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            job.start("reading documents", 0);
            let texts = read_texts(&args.inputs, &args.text_field, args.max_docs)?;
            if texts.is_empty() {
                anyhow::bail!(
                    "the inputs hold no documents with a {:?} field",
                    args.text_field
                );
            }
            if job.is_cancelled() {
                return Ok(None);
            }
            let docs = texts.len();
            job.start(&format!("training on {} documents", count(docs as u64)), 0);
            let tokenizer = train_bpe(texts.into_iter(), &options)?;
            Ok(Some((docs, tokenizer)))
        }),
    )
    .await??;
    let Some((docs, tokenizer)) = trained else {
        eprintln!("interrupted: no tokenizer was written");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    };
    println!(
        "trained a byte-level BPE of {} ids ({} per token) on {} documents; sha256 {}",
        count(tokenizer.vocab_size() as u64),
        tokenizer.token_width(),
        count(docs as u64),
        tokenizer.sha256()
    );
    Ok(ExitCode::SUCCESS)
}
