//! The server's configuration: one TOML file (`deploy/config/serve.toml` is the commented reference),
//! with command-line flags laid over it. Everything a request may touch is named here: the
//! lakes it may read, who may call what, and where ingest jobs may read from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::error::ServeError;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to serve gRPC on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// No authentication at all. Allowed on loopback addresses only, unless
    /// `allow_open_on_network` says otherwise.
    #[serde(default)]
    pub open: bool,
    #[serde(default)]
    pub allow_open_on_network: bool,
    /// Lakes by the names requests use. A request can reach no other lake or path.
    #[serde(default)]
    pub lakes: BTreeMap<String, String>,
    /// Where token caches and plan indexes are kept [default: `<lake>/cache` of a local lake,
    /// the node's cache directory for a remote one].
    pub cache_dir: Option<PathBuf>,
    /// Token caches beyond this many GiB are evicted, least recently used first.
    pub cache_max_gib: Option<f64>,
    /// `auto` (a window when the selection's token store is larger than `cache_max_gib`),
    /// `full` (the whole selection in the local cache) or `window` (the token store read ahead
    /// of each rank into a bounded window; `tokenlake materialise` publishes stores).
    #[serde(default)]
    pub cache_mode: tokenlake_plan::CacheMode,
    /// Window mode: the bound, in MiB, of the documents held for all streams [default: 1024].
    pub window_max_mib: Option<u64>,
    /// Window mode: how far each stream reads ahead besides the bound: samples (`4096`),
    /// seconds of its consumption (`120s`) or `unbounded` [default: unbounded].
    pub window_horizon: Option<String>,
    /// Where token stores live [default: `token-stores/` inside each lake].
    pub token_stores: Option<String>,
    /// How to reach lakes in object storage (endpoint, region, credentials, allow_http,
    /// path_style, retry bounds); the AWS environment and profile fill in the rest.
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
    /// Bearer tokens and their roles.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    pub tls: Option<TlsConfig>,
    /// Address of the Prometheus metrics endpoint (`/metrics`); none serves no metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// An address serving gRPC health alone, in plaintext, for probes that cannot speak TLS
    /// (the kubelet's); none serves health only beside the other services on `listen`.
    pub health_listen: Option<SocketAddr>,
    /// Directories whose files Admin.Ingest may read; without any, server-side ingest is off.
    #[serde(default)]
    pub ingest_roots: Vec<PathBuf>,
    /// Where the shared-memory rings of co-located clients are made: a tmpfs directory the
    /// clients can read [default: /dev/shm].
    pub shm_dir: Option<PathBuf>,
    #[serde(default)]
    pub limits: Limits,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs; the token itself is never logged.
    pub name: String,
    pub role: Role,
    /// The token, or the environment variable that holds it (so the file can be shared).
    pub token: Option<String>,
    pub token_env: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain and private key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Micro-batches a stream assembles ahead of its client.
    pub prefetch_batches: usize,
    /// Bytes a stream assembles ahead of its client (at least one batch).
    pub prefetch_bytes: u64,
    /// The largest micro-batch message a stream sends.
    pub max_batch_bytes: u64,
    /// Rows a query returns at most; a request may ask for fewer.
    pub query_max_rows: u64,
    /// Time a query may run at most, in milliseconds; a request may ask for less.
    pub query_timeout_ms: u64,
    /// Memory one query's sorts, joins and aggregations may hold, in MiB (they spill to disk
    /// where they can; beyond it the query is refused as over the limit).
    pub query_max_memory_mb: u64,
    /// Seconds a shutdown waits for streams to end before closing them.
    pub shutdown_grace_secs: u64,
    /// The longest sample (`sample_len`, in tokens) a recipe may ask this server for.
    pub max_sample_len: u64,
    /// Streams open at once on this server, and per bearer token.
    pub max_streams: usize,
    pub max_streams_per_token: usize,
    /// Seconds a stream waits for a client that takes no batch before closing it (the
    /// client resumes from its cursor when it reads again).
    pub stall_timeout_secs: u64,
    /// Queries running at once; more are refused until one ends.
    pub max_queries: usize,
    /// Plans kept open (each maps a token cache and a plan index); beyond it the least
    /// recently used plan no stream reads is closed.
    pub max_plans: usize,
    /// Distinct plans one token's streams may read at once (at most `max_plans`, so that one
    /// token cannot hold every open plan).
    pub max_plans_per_token: usize,
    /// The most one query's result may hold, in MiB of Arrow memory; beyond it the result is
    /// cut, as at `query_max_rows`.
    pub query_max_result_mb: u64,
    /// Time the explorer's recipe preview (`serve --ui`) may spend planning, in milliseconds;
    /// beyond it the build is cancelled and the caller told to run `tokenlake plan`, whose
    /// cache later previews reuse.
    pub preview_timeout_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            prefetch_batches: 4,
            prefetch_bytes: 64 << 20,
            max_batch_bytes: 256 << 20,
            query_max_rows: 100_000,
            query_timeout_ms: 60_000,
            query_max_memory_mb: 1024,
            shutdown_grace_secs: 5,
            max_sample_len: 1 << 20,
            max_streams: 1024,
            max_streams_per_token: 256,
            stall_timeout_secs: 600,
            max_queries: 4,
            max_plans: 32,
            max_plans_per_token: 8,
            query_max_result_mb: 256,
            preview_timeout_ms: 120_000,
        }
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("the default address parses")
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            open: false,
            allow_open_on_network: false,
            lakes: BTreeMap::new(),
            cache_dir: None,
            cache_max_gib: None,
            cache_mode: tokenlake_plan::CacheMode::Auto,
            window_max_mib: None,
            window_horizon: None,
            token_stores: None,
            storage_options: BTreeMap::new(),
            tokens: Vec::new(),
            tls: None,
            metrics_listen: None,
            health_listen: None,
            ingest_roots: Vec::new(),
            shm_dir: None,
            limits: Limits::default(),
        }
    }
}

impl ServerConfig {
    pub fn load(path: &Path) -> Result<ServerConfig, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|e| ServeError::Config {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, path: &str) -> Result<ServerConfig, ServeError> {
        toml::from_str(text).map_err(|e| ServeError::Config {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// Adds `NAME=URI` as a lake (a flag overrides a file's lake of the same name).
    pub fn add_lake(&mut self, spec: &str) -> Result<(), ServeError> {
        let (name, uri) = spec.split_once('=').ok_or_else(|| {
            ServeError::Invalid(format!(
                "--lake {spec:?}: expected NAME=URI, e.g. --lake web=./lakes/web"
            ))
        })?;
        self.lakes
            .insert(name.trim().to_string(), uri.trim().to_string());
        Ok(())
    }

    /// The configured storage options, checked.
    pub fn storage(&self) -> Result<tokenlake_lake::StorageOptions, ServeError> {
        let mut options = tokenlake_lake::StorageOptions::new();
        for (key, value) in &self.storage_options {
            options
                .insert(key, value)
                .map_err(|e| ServeError::Invalid(format!("[storage_options]: {e}")))?;
        }
        Ok(options)
    }

    /// `cache_max_gib` in bytes.
    pub fn cache_max_bytes(&self) -> Result<Option<u64>, ServeError> {
        match self.cache_max_gib {
            None => Ok(None),
            Some(g) if g.is_finite() && g > 0.0 => Ok(Some((g * (1u64 << 30) as f64) as u64)),
            Some(g) => Err(ServeError::Invalid(format!(
                "cache_max_gib = {g}: must be a positive number"
            ))),
        }
    }

    /// The window of window-mode plans, checked.
    pub fn window(&self) -> Result<tokenlake_plan::WindowOptions, ServeError> {
        let mut window = tokenlake_plan::WindowOptions::default();
        if let Some(mib) = self.window_max_mib {
            if mib == 0 {
                return Err(ServeError::Invalid(
                    "window_max_mib = 0: must be at least 1".into(),
                ));
            }
            window.max_bytes = mib << 20;
        }
        if let Some(horizon) = &self.window_horizon {
            window.horizon = horizon
                .parse()
                .map_err(|e| ServeError::Invalid(format!("window_horizon: {e}")))?;
        }
        Ok(window)
    }

    /// Refuses a configuration that would serve nothing or serve it unsafely.
    pub fn validate(&self) -> Result<(), ServeError> {
        self.storage()?;
        self.cache_max_bytes()?;
        self.window()?;
        if self.lakes.is_empty() {
            return Err(ServeError::Invalid(
                "no lakes to serve: add `[lakes]` to the config or pass --lake NAME=URI".into(),
            ));
        }
        for name in self.lakes.keys() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(ServeError::Invalid(format!(
                    "lake name {name:?}: use letters, digits, '-', '_' and '.'"
                )));
            }
        }
        if self.open {
            if !self.tokens.is_empty() {
                return Err(ServeError::Invalid(
                    "the server is open and also has tokens: choose one (drop --open or the tokens)"
                        .into(),
                ));
            }
            if !self.listen.ip().is_loopback() && !self.allow_open_on_network {
                return Err(ServeError::Invalid(format!(
                    "an open server (no authentication) listens on loopback only, not on {}; \
                     configure tokens, or set allow_open_on_network = true \
                     (--allow-open-on-network) if the network is trusted",
                    self.listen
                )));
            }
        } else if self.tokens.is_empty() {
            return Err(ServeError::Invalid(
                "no tokens configured and the server is not open: add [[tokens]] to the config, \
                 or pass --open to serve without authentication on loopback"
                    .into(),
            ));
        }
        if self.health_listen == Some(self.listen) {
            return Err(ServeError::Invalid(
                "health_listen is `listen` `listen`: give plaintext health an address of \
                 its own"
                    .into(),
            ));
        }
        if self.limits.prefetch_batches == 0 {
            return Err(ServeError::Invalid(
                "limits.prefetch_batches must be at least 1".into(),
            ));
        }
        if self.limits.query_max_rows == 0 || self.limits.query_timeout_ms == 0 {
            return Err(ServeError::Invalid(
                "limits.query_max_rows and limits.query_timeout_ms must be at least 1".into(),
            ));
        }
        let l = &self.limits;
        for (key, value) in [
            ("max_streams", l.max_streams as u64),
            ("max_streams_per_token", l.max_streams_per_token as u64),
            ("stall_timeout_secs", l.stall_timeout_secs),
            ("max_queries", l.max_queries as u64),
            ("max_plans", l.max_plans as u64),
            ("max_plans_per_token", l.max_plans_per_token as u64),
            ("query_max_result_mb", l.query_max_result_mb),
            ("preview_timeout_ms", l.preview_timeout_ms),
        ] {
            if value == 0 {
                return Err(ServeError::Invalid(format!(
                    "limits.{key} must be at least 1"
                )));
            }
        }
        if l.max_plans_per_token > l.max_plans {
            return Err(ServeError::Invalid(format!(
                "limits.max_plans_per_token ({}) is more than limits.max_plans ({}): one token \
                 could then hold every open plan",
                l.max_plans_per_token, l.max_plans
            )));
        }
        if self.limits.query_max_memory_mb == 0 || self.limits.max_sample_len < 2 {
            return Err(ServeError::Invalid(
                "limits.query_max_memory_mb must be at least 1 and limits.max_sample_len at \
                 least 2"
                    .into(),
            ));
        }
        Ok(())
    }

    /// What `tokenlake serve --check-config` checks: everything [`ServerConfig::validate`]
    /// does, each token's settings and the TLS files. A token whose environment variable is
    /// not set where the check runs (a CI job, an operator's laptop) is a warning, not an
    /// error: the server's own environment is what counts. The warnings are returned.
    pub fn check(&self) -> Result<Vec<String>, ServeError> {
        self.validate()?;
        let mut warnings = Vec::new();
        for t in &self.tokens {
            match (&t.token, &t.token_env) {
                (Some(secret), None) if secret.len() < 16 => {
                    return Err(ServeError::Invalid(format!(
                        "token {:?} is shorter than 16 characters; use a long random token",
                        t.name
                    )));
                }
                (Some(_), None) => {}
                (None, Some(var)) => match std::env::var(var) {
                    Ok(secret) if secret.len() < 16 => {
                        return Err(ServeError::Invalid(format!(
                            "token {:?}: ${var} is shorter than 16 characters",
                            t.name
                        )));
                    }
                    Ok(_) => {}
                    Err(_) => warnings.push(format!(
                        "token {:?}: ${var} is not set here; the server refuses to start without it",
                        t.name
                    )),
                },
                _ => {
                    return Err(ServeError::Invalid(format!(
                        "token {:?}: give exactly one of `token` and `token_env`",
                        t.name
                    )));
                }
            }
        }
        if let Some(tls) = &self.tls {
            // Like a token's variable: the server's own files are what count (a mounted
            // Secret), so a file missing where the check runs is a warning; one that is there
            // and cannot be read is an error.
            for (what, path) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
                match std::fs::read(path) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => warnings.push(format!(
                        "{what} = {} is not here; the server refuses to start without it",
                        path.display()
                    )),
                    Err(e) => {
                        return Err(ServeError::Invalid(format!(
                            "{what} = {}: {e}",
                            path.display()
                        )));
                    }
                }
            }
        }
        Ok(warnings)
    }

    /// The built-in defaults as a configuration file (`tokenlake serve
    /// --print-default-config`): every key the server reads, with its default value; the
    /// commented reference, `deploy/config/serve.toml`, says what each one does.
    pub fn default_toml() -> String {
        let body = toml::to_string_pretty(&ServerConfig::default())
            .expect("the default configuration serializes");
        format!(
            "# tokenlake serve: the built-in defaults (deploy/config/serve.toml explains each key).\n\
             # Add [lakes] and [[tokens]] (or run with --open on loopback) to serve anything.\n\n{body}"
        )
    }

    /// The tokens with their secrets read (from the file or the environment).
    pub fn resolved_tokens(&self) -> Result<Vec<(String, String, Role)>, ServeError> {
        self.tokens
            .iter()
            .map(|t| {
                let secret = match (&t.token, &t.token_env) {
                    (Some(s), None) => s.clone(),
                    (None, Some(var)) => std::env::var(var).map_err(|_| {
                        ServeError::Invalid(format!(
                            "token {:?}: environment variable {var} is not set",
                            t.name
                        ))
                    })?,
                    _ => {
                        return Err(ServeError::Invalid(format!(
                            "token {:?}: give exactly one of `token` and `token_env`",
                            t.name
                        )));
                    }
                };
                if secret.len() < 16 {
                    return Err(ServeError::Invalid(format!(
                        "token {:?} is shorter than 16 characters; use a long random token",
                        t.name
                    )));
                }
                Ok((t.name.clone(), secret, t.role))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_config_in_deploy_loads_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/serve.toml");
        let config = ServerConfig::load(&path).unwrap();
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().unwrap());
        assert!(!config.open);
        assert_eq!(config.lakes.len(), 1);
        assert_eq!(config.tokens.len(), 2);
        assert_eq!(config.tokens[1].role, Role::Admin);
        let defaults = Limits::default();
        assert_eq!(config.limits.prefetch_batches, defaults.prefetch_batches);
        assert_eq!(config.limits.prefetch_bytes, defaults.prefetch_bytes);
        assert_eq!(config.limits.query_max_rows, defaults.query_max_rows);
        config.validate().unwrap();
    }

    #[test]
    fn the_printed_defaults_parse_back_to_the_defaults_and_name_every_limit() {
        let text = ServerConfig::default_toml();
        let parsed = ServerConfig::parse(&text, "defaults.toml").unwrap();
        assert_eq!(
            toml::to_string(&parsed).unwrap(),
            toml::to_string(&ServerConfig::default()).unwrap()
        );
        let reference = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/serve.toml"),
        )
        .unwrap();
        let limits = toml::to_string(&Limits::default()).unwrap();
        for line in limits.lines() {
            let key = line.split(" = ").next().unwrap();
            assert!(text.contains(key), "{key} is not printed");
            assert!(
                reference.contains(&format!("{key} = ")),
                "limits.{key} is not explained in deploy/config/serve.toml"
            );
        }
    }

    #[test]
    fn check_refuses_bad_tokens_and_unreadable_tls_files_and_warns_of_absent_secrets() {
        let mut config = ServerConfig::default();
        config.add_lake("a=./a").unwrap();
        config.tokens.push(TokenConfig {
            name: "trainers".into(),
            role: Role::Reader,
            token: None,
            token_env: Some("TOKENLAKE_TEST_SURELY_UNSET_TOKEN".into()),
        });
        let warnings = config.check().unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("TOKENLAKE_TEST_SURELY_UNSET_TOKEN"),
            "{warnings:?}"
        );
        config.tls = Some(TlsConfig {
            cert: "/nonexistent/server.pem".into(),
            key: "/nonexistent/server.key".into(),
        });
        let warnings = config.check().unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("tls.cert") && w.contains("server.pem")),
            "{warnings:?}"
        );
        config.tls = Some(TlsConfig {
            cert: "/".into(),
            key: "/".into(),
        });
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains("tls.cert"), "{err}");
        config.tls = None;
        config.tokens[0].token = Some("short".into());
        let err = config.check().unwrap_err().to_string();
        assert!(err.contains("exactly one"), "{err}");
    }

    #[test]
    fn unknown_keys_and_unsafe_setups_are_refused() {
        let err = ServerConfig::parse("listen = \"127.0.0.1:1\"\nprefetch = 3\n", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml") && err.contains("prefetch"), "{err}");

        let mut open = ServerConfig {
            open: true,
            listen: "0.0.0.0:7070".parse().unwrap(),
            ..ServerConfig::default()
        };
        open.add_lake("a=./a").unwrap();
        assert!(
            open.validate()
                .unwrap_err()
                .to_string()
                .contains("loopback")
        );
        open.allow_open_on_network = true;
        open.validate().unwrap();

        let mut closed = ServerConfig::default();
        closed.add_lake("a=./a").unwrap();
        assert!(
            closed
                .validate()
                .unwrap_err()
                .to_string()
                .contains("no tokens")
        );
        assert!(closed.add_lake("nameless").is_err());
        assert!(
            ServerConfig::default()
                .validate()
                .unwrap_err()
                .to_string()
                .contains("no lakes")
        );

        closed.tokens.push(TokenConfig {
            name: "t".into(),
            role: Role::Reader,
            token: Some("short".into()),
            token_env: None,
        });
        assert!(
            closed
                .resolved_tokens()
                .unwrap_err()
                .to_string()
                .contains("16 characters")
        );
    }
}
