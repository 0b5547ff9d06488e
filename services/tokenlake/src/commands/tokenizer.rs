//! `tokenlake train-tokenizer`.

use std::process::ExitCode;

use tokenlake_ingest::{TrainOptions, read_texts, train_bpe};

use crate::cli::TrainTokenizerArgs;
use crate::output::count;

pub async fn train(args: TrainTokenizerArgs) -> anyhow::Result<ExitCode> {
    let options = TrainOptions {
        vocab_size: args.vocab_size,
        min_frequency: args.min_frequency,
        special_tokens: args.special_tokens,
        out: args.out,
    };
    let (docs, tokenizer) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let texts = read_texts(&args.inputs, &args.text_field, args.max_docs)?;
        if texts.is_empty() {
            anyhow::bail!(
                "the inputs hold no documents with a {:?} field",
                args.text_field
            );
        }
        eprintln!("training on {} documents ...", count(texts.len() as u64));
        let docs = texts.len();
        Ok((docs, train_bpe(texts.into_iter(), &options)?))
    })
    .await??;
    println!(
        "trained a byte-level BPE of {} ids ({} per token) on {} documents; sha256 {}",
        count(tokenizer.vocab_size() as u64),
        tokenizer.token_width(),
        count(docs as u64),
        tokenizer.sha256()
    );
    Ok(ExitCode::SUCCESS)
}
