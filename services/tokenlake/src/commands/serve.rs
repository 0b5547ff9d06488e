//! `tokenlake serve`.

use std::process::ExitCode;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use tokenlake_explorer::{Access, Explorer};
use tokenlake_serve::{BoundServer, Role, ServerConfig};

use crate::cli::{ServeArgs, UiArgs};
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
    if let Some(ui) = args.ui
        && config.open
        && !ui.ip().is_loopback()
        && !config.allow_open_on_network
    {
        anyhow::bail!(
            "an open server's explorer (no sign-in) listens on loopback only, not on {ui}; \
             configure tokens, or --allow-open-on-network"
        );
    }
    let server = BoundServer::bind(config).await?;
    // The explorer: the same lakes, tokens and limits as the gRPC services, on its own address.
    let explorer = match args.ui {
        Some(addr) => {
            let config = &server.state().config;
            let access = if config.open {
                Access::Open
            } else {
                Access::Tokens(
                    config
                        .resolved_tokens()?
                        .into_iter()
                        .map(|(name, secret, role)| {
                            let role = match role {
                                Role::Admin => tokenlake_explorer::Role::Admin,
                                Role::Reader => tokenlake_explorer::Role::Reader,
                            };
                            (name, secret, role)
                        })
                        .collect(),
                )
            };
            let l = &config.limits;
            let explorer = Explorer {
                lakes: server
                    .state()
                    .lake_names()
                    .map(|(n, loc)| (n.clone(), loc.clone()))
                    .collect(),
                access,
                limits: tokenlake_explorer::Limits {
                    query_max_rows: l.query_max_rows,
                    query_timeout: Duration::from_millis(l.query_timeout_ms),
                    query_max_memory_bytes: Some((l.query_max_memory_mb as usize) << 20),
                    query_max_result_bytes: (l.query_max_result_mb as usize) << 20,
                    max_queries: l.max_queries,
                    max_sample_len: l.max_sample_len,
                    preview_timeout: Duration::from_millis(l.preview_timeout_ms),
                    cache_max_bytes: config.cache_max_bytes()?,
                    ..tokenlake_explorer::Limits::default()
                },
                cache_dir: config.cache_dir.clone(),
            };
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the explorer's address {addr}"))?;
            let addr = listener.local_addr()?;
            let task = tokio::spawn(tokenlake_explorer::serve(
                listener,
                explorer,
                first_signal(),
            ));
            Some((addr, task))
        }
        None => None,
    };
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
    // After the line above, which scripts read first.
    if let Some((addr, _)) = &explorer {
        eprintln!("tokenlake serve: explorer on http://{addr}");
    }
    server
        .run(async {
            first_signal().await;
            eprintln!("tokenlake serve: shutting down; open streams end with their cursor");
        })
        .await?;
    if let Some((_, task)) = explorer {
        task.abort();
    }
    eprintln!("tokenlake serve: stopped");
    Ok(ExitCode::SUCCESS)
}

/// `tokenlake ui`: the explorer over local lakes, open (no sign-in), on loopback only.
pub async fn ui(args: UiArgs) -> anyhow::Result<ExitCode> {
    if !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "`tokenlake ui` has no sign-in, so it listens on loopback only, not on {}; serve \
             others with `tokenlake serve --ui ADDR` and tokens",
            args.listen
        );
    }
    let mut lakes = BTreeMap::new();
    for lake in &args.lakes {
        let (name, uri) = match lake.split_once('=') {
            Some((name, uri)) if !name.contains('/') => (name.to_string(), uri.to_string()),
            _ => {
                let trimmed = lake.trim_end_matches('/');
                let name = trimmed.rsplit('/').next().unwrap_or(trimmed).to_string();
                (name, lake.clone())
            }
        };
        let location = crate::commands::storage::location(&uri)?;
        if lakes.insert(name.clone(), location).is_some() {
            anyhow::bail!("two lakes are named {name:?}: name them with NAME=URI");
        }
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    // Tests and scripts read the address from this line (port 0 picks a free port).
    eprintln!(
        "tokenlake ui: http://{} (open: no sign-in); lakes: {}",
        listener.local_addr()?,
        lakes
            .iter()
            .map(|(n, l)| format!("{n}={l}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let explorer = Explorer {
        lakes,
        access: Access::Open,
        limits: tokenlake_explorer::Limits::default(),
        cache_dir: args.cache_dir,
    };
    tokenlake_explorer::serve(listener, explorer, first_signal()).await?;
    eprintln!("tokenlake ui: stopped");
    Ok(ExitCode::SUCCESS)
}
