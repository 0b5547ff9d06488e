//! `tokenlake serve`.

use std::process::ExitCode;

use tokenlake_serve::{BoundServer, ServerConfig};

use crate::cli::ServeArgs;
use crate::signal::first_signal;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    if args.print_default_config {
        print!("{}", ServerConfig::default_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = match args.config.as_ref().or(args.check_config.as_ref()) {
        Some(path) => ServerConfig::load(path)?,
        None => ServerConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    for lake in &args.lakes {
        config.add_lake(lake)?;
    }
    if args.cache_dir.is_some() {
        config.cache_dir = args.cache_dir.clone();
    }
    if args.shm_dir.is_some() {
        config.shm_dir = args.shm_dir.clone();
    }
    if args.open {
        config.open = true;
    }
    if args.allow_open_on_network {
        config.allow_open_on_network = true;
    }
    if args.metrics_listen.is_some() {
        config.metrics_listen = args.metrics_listen;
    }
    if let Some(path) = &args.check_config {
        for warning in config.check()? {
            eprintln!("warning: {warning}");
        }
        println!(
            "{}: valid ({} lakes, {} tokens{})",
            path.display(),
            config.lakes.len(),
            config.tokens.len(),
            if config.open { ", open" } else { "" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let server = BoundServer::bind(config).await?;
    let config = &server.state().config;
    let lakes: Vec<String> = server
        .state()
        .lake_names()
        .map(|(name, location)| format!("{name}={location}"))
        .collect();
    // Tests and scripts read the address from this line (port 0 picks a free port).
    eprintln!(
        "tokenlake serve: listening on {}{} ({}); lakes: {}{}",
        if config.tls.is_some() {
            "https://"
        } else {
            "http://"
        },
        server.local_addr(),
        if config.open {
            "open: no authentication".to_string()
        } else {
            format!("{} tokens", config.tokens.len())
        },
        lakes.join(", "),
        config
            .metrics_listen
            .map(|m| format!("; metrics on http://{m}/metrics"))
            .unwrap_or_default(),
    );
    server
        .run(async {
            first_signal().await;
            eprintln!("tokenlake serve: shutting down; open streams end with their cursor");
        })
        .await?;
    eprintln!("tokenlake serve: stopped");
    Ok(ExitCode::SUCCESS)
}
