//! Binding, wiring and shutting down: tokenlake's five services behind their role checks,
//! gRPC health and reflection beside them, and the metrics endpoint.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokenlake_schemas::proto::{
    self, admin_server::AdminServer, catalog_server::CatalogServer, plan_server::PlanServer,
    query_server::QueryServer, stream_server::StreamServer,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, ServerTlsConfig};

use crate::admin::AdminService;
use crate::auth::{Auth, Role};
use crate::catalog::CatalogService;
use crate::config::ServerConfig;
use crate::error::ServeError;
use crate::query::QueryService;
use crate::state::ServerState;
use crate::stream::{PlanService, StreamService};

/// Flow-control windows big enough that one stream of multi-megabyte batches is not held back
/// by round trips (HTTP/2's default window is 64 KiB).
pub const STREAM_WINDOW: u32 = 8 << 20;
pub const CONNECTION_WINDOW: u32 = 32 << 20;
/// HTTP/2 frames of up to 1 MiB (the default is 16 KiB): fewer frames per micro-batch.
pub const MAX_FRAME: u32 = 1 << 20;

/// A server bound to its address, ready to run.
pub struct BoundServer {
    state: Arc<ServerState>,
    listener: TcpListener,
    auth: Auth,
}

impl BoundServer {
    /// Checks `config` and binds its address (port 0 picks a free one).
    pub async fn bind(config: ServerConfig) -> Result<BoundServer, ServeError> {
        config.validate()?;
        let auth = if config.open {
            Auth::open()
        } else {
            Auth::with_tokens(config.resolved_tokens()?)
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Io {
                context: format!("binding {}", config.listen),
                source,
            })?;
        let state = Arc::new(ServerState::new(config)?);
        Ok(BoundServer {
            state,
            listener,
            auth,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &Arc<ServerState> {
        &self.state
    }

    /// Serves until `shutdown` resolves; then open streams end with UNAVAILABLE and their
    /// cursor, and whatever is still open after the grace period is closed.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let BoundServer {
            state,
            listener,
            auth,
        } = self;
        let config = &state.config;
        if let Some(addr) = config.metrics_listen {
            install_metrics(addr)?;
        }
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<StreamServer<StreamService>>().await;
        health.set_serving::<PlanServer<PlanService>>().await;
        health.set_serving::<CatalogServer<CatalogService>>().await;
        health.set_serving::<QueryServer<QueryService>>().await;
        health.set_serving::<AdminServer<AdminService>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ServeError::Invalid(format!("building server reflection: {e}")))?;

        let mut builder = tonic::transport::Server::builder()
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(30)));
        if let Some(tls) = &config.tls {
            tokenlake_schemas::install_tls_provider();
            let read = |path: &std::path::Path| {
                std::fs::read(path).map_err(|source| ServeError::Io {
                    context: format!("reading TLS file {}", path.display()),
                    source,
                })
            };
            let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
            builder = builder.tls_config(ServerTlsConfig::new().identity(identity))?;
        }
        // Probes that cannot speak TLS (the kubelet's gRPC probes) get health alone, in
        // plaintext, on an address of its own.
        let health_only = match config.health_listen {
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Io {
                        context: format!("listening for health checks on {addr}"),
                        source,
                    })?;
                let health_service = health_service.clone();
                Some(tokio::spawn(async move {
                    let served = tonic::transport::Server::builder()
                        .add_service(health_service)
                        .serve_with_incoming(TcpListenerStream::new(listener))
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "the health listener stopped");
                    }
                }))
            }
            None => None,
        };
        let read = Role::Reader;
        let router = builder
            .layer(crate::sent_errors::SentErrorsLayer)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(StreamServer::with_interceptor(
                StreamService::new(state.clone()),
                auth.require(read),
            ))
            .add_service(PlanServer::with_interceptor(
                PlanService::new(state.clone()),
                auth.require(read),
            ))
            .add_service(CatalogServer::with_interceptor(
                CatalogService::new(state.clone()),
                auth.require(read),
            ))
            .add_service(QueryServer::with_interceptor(
                QueryService::new(state.clone()),
                auth.require(read),
            ))
            .add_service(tonic::service::interceptor::InterceptedService::new(
                // Label files travel in one message.
                AdminServer::new(AdminService::new(state.clone()))
                    .max_decoding_message_size(1 << 30),
                auth.require(Role::Admin),
            ));

        let (fired_tx, mut fired_rx) = tokio::sync::watch::channel(false);
        let shutting_down = state.shutting_down.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: streams end with their cursor");
            shutting_down.store(true, Ordering::SeqCst);
            let _ = fired_tx.send(true);
        };
        let serve = router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal);
        let grace = Duration::from_secs(config.limits.shutdown_grace_secs);
        tokio::select! {
            served = serve => served?,
            _ = async {
                let _ = fired_rx.wait_for(|fired| *fired).await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!("closing the streams still open {grace:?} after shutdown began"),
        }
        if let Some(health_only) = health_only {
            health_only.abort();
        }
        Ok(())
    }
}

/// Serves Prometheus metrics at `addr`; once per process (the recorder is global).
fn install_metrics(addr: SocketAddr) -> Result<(), ServeError> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| ServeError::Invalid(format!("serving metrics on {addr}: {e}")))?;
    metrics::describe_gauge!("tokenlake_streams_active", "streams open now");
    metrics::describe_gauge!("tokenlake_plans_open", "plans open now (limits.max_plans)");
    metrics::describe_counter!(
        "tokenlake_streams_stalled_total",
        "streams closed because their client took no batch within limits.stall_timeout_secs"
    );
    metrics::describe_counter!(
        "tokenlake_stream_failures_total",
        "streams whose producer failed (each ended ABORTED; the client resumes)"
    );
    metrics::describe_counter!("tokenlake_streams_total", "streams opened");
    metrics::describe_counter!(
        "tokenlake_window_fetches_total",
        "window mode: ranged GETs of the token store, hedges and retries included"
    );
    metrics::describe_counter!(
        "tokenlake_window_fetched_bytes_total",
        "window mode: bytes fetched from the token store"
    );
    metrics::describe_counter!(
        "tokenlake_window_served_bytes_total",
        "window mode: token bytes copied into batches"
    );
    metrics::describe_counter!(
        "tokenlake_window_misses_total",
        "window mode: ranges a stream needed at once, not reserved ahead"
    );
    metrics::describe_counter!(
        "tokenlake_window_retries_total",
        "window mode: GETs retried"
    );
    metrics::describe_counter!(
        "tokenlake_window_corrupt_total",
        "window mode: bodies of the wrong length or checksum, fetched again"
    );
    metrics::describe_counter!("tokenlake_window_hedges_total", "window mode: hedged GETs");
    metrics::describe_gauge!(
        "tokenlake_window_stall_seconds",
        "window mode: seconds streams waited for data, in all"
    );
    metrics::describe_gauge!("tokenlake_window_slab_bytes", "window mode: bytes held");
    metrics::describe_gauge!(
        "tokenlake_window_slab_high_water_bytes",
        "window mode: most bytes held at once"
    );
    metrics::describe_gauge!("tokenlake_window_in_flight", "window mode: GETs in flight");
    metrics::describe_gauge!(
        "tokenlake_queries_running",
        "SQL queries and catalog scans running now (limits.max_queries)"
    );
    metrics::describe_counter!(
        "tokenlake_plan_index_page_fetches_total",
        "window mode: GETs of plan index pages a read needed before the download brought them"
    );
    metrics::describe_counter!(
        "tokenlake_plan_index_corrupt_total",
        "window mode: plan index pages that failed their checksum, fetched again"
    );
    metrics::describe_gauge!(
        "tokenlake_plan_index_present_bytes",
        "window mode: bytes of a plan index read page by page that are on the node"
    );
    metrics::describe_gauge!(
        "tokenlake_plan_index_bytes",
        "window mode: bytes of the plan index"
    );
    metrics::describe_counter!("tokenlake_batches_total", "micro-batches sent");
    metrics::describe_counter!("tokenlake_bytes_total", "token bytes sent");
    metrics::describe_counter!(
        "tokenlake_tokens_total",
        "tokens sent (rate() gives tokens/s)"
    );
    metrics::describe_histogram!(
        "tokenlake_prefetch_depth",
        "batches waiting for their client when a stream queues one more"
    );
    metrics::describe_counter!(
        "tokenlake_errors_total",
        "error statuses sent to clients, by gRPC code"
    );
    Ok(())
}
