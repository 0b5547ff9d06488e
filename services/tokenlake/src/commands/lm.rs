//! `tokenlake lm train` and `tokenlake lm score`.

use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokenlake_curate::lm::{NgramModel, Trainer};
use tokenlake_lake::Progress;

use crate::cli::{LmCommand, LmScoreArgs, LmTrainArgs};
use crate::progress::run_job;
use crate::signal::EXIT_INTERRUPTED;

pub async fn run(command: LmCommand) -> anyhow::Result<ExitCode> {
    match command {
        LmCommand::Train(args) => {
            let progress = Arc::new(Progress::default());
            let job = progress.clone();
            run_job(
                "lm train",
                "inputs",
                "stopping: no model is written",
                progress,
                tokio::task::spawn_blocking(move || train(args, &job)),
            )
            .await?
        }
        LmCommand::Score(args) => score(args),
    }
}

fn train(args: LmTrainArgs, progress: &Progress) -> anyhow::Result<ExitCode> {
    let mut trainer = Trainer::new(args.order)?;
    progress.start("reading reference text", args.inputs.len() as u64);
    for input in &args.inputs {
        if progress.is_cancelled() {
            eprintln!("interrupted: no model was written");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        let is_text = input.extension().is_some_and(|e| e == "txt");
        if is_text {
            let text = std::fs::read_to_string(input)
                .with_context(|| format!("reading reference text {}", input.display()))?;
            trainer.add_text(&text);
        } else {
            let texts = tokenlake_ingest::read_texts(
                std::slice::from_ref(input),
                &args.text_field,
                usize::MAX,
            )
            .with_context(|| format!("reading reference documents {}", input.display()))?;
            for t in &texts {
                trainer.add_text(t);
            }
        }
        progress.add(1);
    }
    progress.start("estimating the model", 0);
    eprintln!(
        "estimating a {}-gram model from {} sentences",
        args.order,
        trainer.sentences()
    );
    // Written beside the target and renamed, so a failed run leaves no half-written model.
    let tmp = args.out.with_extension("arpa.partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = BufWriter::new(file);
    trainer.write_arpa(&mut out)?;
    out.flush()
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(out);
    if progress.is_cancelled() {
        let _ = std::fs::remove_file(&tmp);
        eprintln!("interrupted: no model was written");
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    std::fs::rename(&tmp, &args.out).with_context(|| format!("writing {}", args.out.display()))?;
    let model = NgramModel::read_arpa(
        std::io::BufReader::new(std::fs::File::open(&args.out)?),
        &args.out.display().to_string(),
    )?;
    println!(
        "wrote {}: order {}, {} words, n-grams per order {:?}",
        args.out.display(),
        model.order(),
        model.vocab_size(),
        model.counts()
    );
    Ok(ExitCode::SUCCESS)
}

fn score(args: LmScoreArgs) -> anyhow::Result<ExitCode> {
    let model = NgramModel::read_arpa(
        std::io::BufReader::new(
            std::fs::File::open(&args.model)
                .with_context(|| format!("opening {}", args.model.display()))?,
        ),
        &args.model.display().to_string(),
    )?;
    let reader: Box<dyn BufRead> = match &args.input {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in reader.lines() {
        let line = line?;
        match model.perplexity(&line) {
            Some(p) => writeln!(out, "{p:.2}")?,
            None => writeln!(out, "-")?,
        }
    }
    Ok(ExitCode::SUCCESS)
}
