//! The Rust client of `tokenlake serve`.
//!
//! [`Client::stream`] gives one rank's micro-batches as typed [`Batch`]es and makes resumption
//! impossible to get wrong: when the connection or the server goes away, the stream reconnects
//! (with backoff) and asks for the rest from the cursor after the last batch it handed out, so
//! the caller sees every step exactly once. Every batch carries its cursor; keeping the last
//! one in a checkpoint is all a trainer needs to resume after its own restart.
//!
//! On the server's host the batches can come through shared memory ([`Transport::Shm`]): the
//! server writes tokens into a ring of slots both processes map, and gRPC carries only the
//! batches' metadata and the client's releases. [`Transport::Auto`] uses it where it can and
//! falls back to gRPC payloads, saying so once.

use std::time::Duration;

use tokenlake_schemas::proto::{
    self, PlanReply, PlanRequest, PlanSource, StreamRequest, admin_client::AdminClient,
    catalog_client::CatalogClient, plan_client::PlanClient, query_client::QueryClient,
    stream_client::StreamClient,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};
use xxhash_rust::xxh3::xxh3_64;

#[cfg(feature = "cuda")]
pub mod cuda;
mod retry;
mod shm;

use retry::{Backoff, worth_retrying};
use shm::{ShmSession, shm_unavailable};

pub use tokenlake_schemas::prost::bytes::Bytes;
pub use tokenlake_schemas::proto::{DocSpan, SampleInfo};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server address {url:?}: {reason}")]
    Address { url: String, reason: String },

    #[error("{} ({:?})", .0.message(), .0.code())]
    Status(#[from] Status),

    #[error(
        "gave up after {attempts} attempts over {elapsed:?} to reach the server: {} ({:?})",
        last.message(),
        last.code()
    )]
    GaveUp {
        attempts: u32,
        elapsed: Duration,
        last: Status,
    },

    /// Copying a batch to the GPU failed (feature `cuda`).
    #[cfg(feature = "cuda")]
    #[error(transparent)]
    Cuda(#[from] cuda::CudaError),
}

impl ClientError {
    /// The gRPC status behind the error, if any.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Status(s) | ClientError::GaveUp { last: s, .. } => Some(s.code()),
            ClientError::Address { .. } => None,
            #[cfg(feature = "cuda")]
            ClientError::Cuda(_) => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// How long a stream keeps trying to reach the server after losing it.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Give up when the server has been unreachable this long since the last batch.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            give_up_after: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Bearer token (the server's `[[tokens]]`); none for an open server.
    pub token: Option<String>,
    /// PEM certificate of the CA that signed the server's certificate (for https:// URLs).
    pub ca_cert: Option<Vec<u8>>,
    pub retry: RetryPolicy,
    /// HTTP/2 receive window per stream [default: 8 MiB]: what the server may send ahead of
    /// the reader. Large keeps one stream fast; small bounds what an idle stream buffers.
    /// Streams on one connection share 4× this, so give each rank its own `Client`.
    pub window_bytes: Option<u32>,
}

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Bearer>;

/// A connection to one server; cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    bearer: Bearer,
    retry: RetryPolicy,
}

impl Client {
    /// Connects lazily: the first call (and every call after the server went away) dials.
    pub fn connect(url: &str, options: ClientOptions) -> Result<Client> {
        let address = |reason: String| ClientError::Address {
            url: url.to_string(),
            reason,
        };
        let window = options.window_bytes.unwrap_or(8 << 20);
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| address(e.to_string()))?
            .connect_timeout(Duration::from_secs(10))
            .initial_stream_window_size(window)
            .initial_connection_window_size(window.saturating_mul(4))
            // Lets the server send a micro-batch in few large frames (HTTP/2's default: 16 KiB).
            .max_frame_size(1 << 20)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if url.starts_with("https://") {
            tokenlake_schemas::install_tls_provider();
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &options.ca_cert {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| address(e.to_string()))?;
        }
        let bearer = match &options.token {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| address("the token is not printable ASCII".into()))?,
            ),
            None => None,
        };
        Ok(Client {
            channel: endpoint.connect_lazy(),
            bearer: Bearer(bearer),
            retry: options.retry,
        })
    }

    fn authed(&self) -> Authed {
        InterceptedService::new(self.channel.clone(), self.bearer.clone())
    }

    pub fn stream_client(&self) -> StreamClient<Authed> {
        StreamClient::new(self.authed()).max_decoding_message_size(usize::MAX)
    }

    pub fn plan_client(&self) -> PlanClient<Authed> {
        PlanClient::new(self.authed())
    }

    pub fn catalog_client(&self) -> CatalogClient<Authed> {
        CatalogClient::new(self.authed())
    }

    pub fn query_client(&self) -> QueryClient<Authed> {
        QueryClient::new(self.authed()).max_decoding_message_size(usize::MAX)
    }

    pub fn admin_client(&self) -> AdminClient<Authed> {
        AdminClient::new(self.authed()).max_encoding_message_size(1 << 30)
    }

    /// Prepares (or finds) the plan on the server: a dry run, as `tokenlake plan`.
    pub async fn plan(&self, source: PlanSource) -> Result<PlanReply> {
        Ok(self
            .plan_client()
            .prepare(PlanRequest { plan: Some(source) })
            .await?
            .into_inner())
    }

    /// One rank's batches over the default transport ([`Transport::Auto`], as the CLI and the
    /// Python client: shared memory where the server offers it to this host, gRPC payloads
    /// otherwise), reconnecting and resuming as needed.
    pub fn stream(&self, request: StreamRequest) -> BatchStream {
        self.stream_with(request, Transport::default())
    }

    /// One rank's batches over `transport`, reconnecting and resuming as needed.
    pub fn stream_with(&self, request: StreamRequest, transport: Transport) -> BatchStream {
        BatchStream {
            client: self.clone(),
            cursor: (!request.cursor.is_empty()).then(|| request.cursor.clone()),
            request,
            inner: None,
            delivered: 0,
            since_open: 0,
            finished: false,
            opened: false,
            reconnects: 0,
            transport,
        }
    }
}

/// How batches reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Tokens inside the gRPC messages: works across hosts.
    Grpc,
    /// Tokens in a shared-memory ring: the client must run on the server's host.
    Shm,
    /// Shared memory where the server offers it to this host, gRPC payloads otherwise.
    #[default]
    Auto,
}

enum Inner {
    Grpc(tonic::Streaming<proto::MicroBatch>),
    Shm(ShmSession),
}

/// A recipe file's text as the plan of a request.
pub fn recipe_source(
    recipe_toml: String,
    lake: Option<String>,
    version: Option<String>,
) -> PlanSource {
    PlanSource {
        source: Some(proto::plan_source::Source::RecipeToml(recipe_toml)),
        lake: lake.unwrap_or_default(),
        version: version.unwrap_or_default(),
    }
}

/// One micro-batch: `samples.len()` rows of `sample_len` tokens of `token_width` bytes.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Steps handed out by this stream before this one.
    pub step: u64,
    /// Row-major `[samples, sample_len]` little-endian ids; shares the received frame.
    pub tokens: Bytes,
    pub token_width: usize,
    pub sample_len: usize,
    pub samples: Vec<SampleInfo>,
    pub spans: Vec<DocSpan>,
    /// Resume here to continue after this batch (the same on every rank).
    pub cursor: String,
    pub plan_id: String,
}

impl Batch {
    pub fn sample_bytes(&self, i: usize) -> &[u8] {
        let size = self.sample_len * self.token_width;
        &self.tokens[i * size..(i + 1) * size]
    }

    /// The token ids of sample `i`.
    pub fn token_ids(&self, i: usize) -> Vec<u32> {
        self.sample_bytes(i)
            .chunks_exact(self.token_width)
            .map(|b| match b {
                [a, b] => u32::from(u16::from_le_bytes([*a, *b])),
                [a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
                _ => unreachable!("token widths are 2 or 4 bytes"),
            })
            .collect()
    }

    pub fn sample_spans(&self, i: usize) -> &[DocSpan] {
        let s = &self.samples[i];
        &self.spans[s.span_start as usize..s.span_end as usize]
    }
}

/// A position-weighted checksum of little-endian token ids of `width` bytes: the sum of
/// `id[i] × (i + 1)` modulo 2^64. Unlike a byte hash it is cheap to compute on a GPU (the
/// `cuda` feature's `DeviceChecksum` runs the same sum there), and it tells reordered tokens
/// apart.
pub fn token_checksum(tokens: &[u8], width: usize) -> u64 {
    let weighted = |i: usize, id: u64| id.wrapping_mul(i as u64 + 1);
    match width {
        2 => tokens
            .chunks_exact(2)
            .enumerate()
            .fold(0u64, |sum, (i, b)| {
                sum.wrapping_add(weighted(i, u64::from(u16::from_le_bytes([b[0], b[1]]))))
            }),
        4 => tokens
            .chunks_exact(4)
            .enumerate()
            .fold(0u64, |sum, (i, b)| {
                sum.wrapping_add(weighted(
                    i,
                    u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                ))
            }),
        _ => panic!("token widths are 2 or 4 bytes, not {width}"),
    }
}

pub struct BatchStream {
    client: Client,
    request: StreamRequest,
    /// The cursor after the last batch handed out (or the request's).
    cursor: Option<String>,
    inner: Option<Inner>,
    delivered: u64,
    /// Batches received since the server stream was last opened.
    since_open: u64,
    /// The server said the stream has ended.
    finished: bool,
    opened: bool,
    reconnects: u64,
    transport: Transport,
}

impl BatchStream {
    /// The cursor after the last batch handed out: resume here (with the same rank, world
    /// and micro-batch, or another world at this step boundary).
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// Batches handed out by this stream.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// How often the stream had to reconnect.
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// The next batch; `None` at the end of the plan or after `max_steps`, as the server says
    /// (any other end of the server's stream is an interruption, resumed from the cursor).
    pub async fn next(&mut self) -> Result<Option<Batch>> {
        let mut backoff = Backoff::new(self.client.retry.clone());
        loop {
            if self.finished
                || (self.request.max_steps != 0 && self.delivered >= self.request.max_steps)
            {
                return Ok(None);
            }
            let status = match self.receive().await {
                Ok(batch) => return Ok(batch),
                Err(status) if worth_retrying(&status) => status,
                Err(status) => return Err(status.into()),
            };
            self.inner = None;
            backoff.wait(status).await?;
        }
    }

    /// The transport in use: after `Auto` has chosen, the one it chose.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// One batch from the open server stream, opening it first when needed.
    async fn receive(&mut self) -> Result<Option<Batch>, Status> {
        if self.inner.is_none() {
            self.open().await?;
        }
        let message = match self.inner.as_mut().expect("opened above") {
            Inner::Grpc(stream) => stream.message().await?,
            // A ring slot's bytes never cross a network, and the control protocol keeps the
            // server from writing a slot the client holds: no checksum to check.
            Inner::Shm(session) => session.next().await?,
        };
        // Only the server's end-of-stream message ends the stream; a stream that stops
        // without one (a server gone, a producer failed) is resumed from the cursor.
        let message = match message {
            Some(proto::MicroBatch { end: Some(end), .. }) => {
                if end.batches != self.since_open {
                    return Err(Status::data_loss(format!(
                        "the server sent {} batches on this connection, and this client \
                         received {}",
                        end.batches, self.since_open
                    )));
                }
                self.finished = true;
                return Ok(None);
            }
            Some(message) => message,
            None => {
                return Err(Status::unavailable(
                    "the stream stopped before the server said it had ended",
                ));
            }
        };
        if matches!(self.inner, Some(Inner::Grpc(_)))
            && xxh3_64(&message.tokens) != message.checksum
        {
            return Err(Status::data_loss("a batch arrived damaged (checksum)"));
        }
        let batch = Batch {
            step: self.delivered,
            tokens: message.tokens,
            token_width: message.token_width as usize,
            sample_len: message.sample_len as usize,
            samples: message.samples,
            spans: message.spans,
            cursor: message.cursor,
            plan_id: message.plan_id,
        };
        self.cursor = Some(batch.cursor.clone());
        self.delivered += 1;
        self.since_open += 1;
        Ok(Some(batch))
    }

    /// (Re)opens the server stream after the last cursor, for the steps still wanted.
    async fn open(&mut self) -> Result<(), Status> {
        let mut request = self.request.clone();
        request.cursor = self.cursor.clone().unwrap_or_default();
        if request.max_steps != 0 {
            request.max_steps -= self.delivered;
        }
        if self.opened {
            self.reconnects += 1;
        }
        self.since_open = 0;
        self.opened = true;
        if self.transport != Transport::Grpc {
            match ShmSession::open(&self.client, request.clone()).await {
                Ok(session) => {
                    self.transport = Transport::Shm;
                    self.inner = Some(Inner::Shm(session));
                    return Ok(());
                }
                Err(status) if self.transport == Transport::Auto && shm_unavailable(&status) => {
                    tracing::warn!(
                        "shared memory is not available ({}); streaming over gRPC payloads",
                        status.message()
                    );
                    self.transport = Transport::Grpc;
                }
                Err(status) => return Err(status),
            }
        }
        let stream = self
            .client
            .stream_client()
            .batches(request)
            .await?
            .into_inner();
        self.inner = Some(Inner::Grpc(stream));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_checksum_weighs_ids_by_position_in_either_width() {
        let ids: [u32; 3] = [7, 65_535, 1];
        let narrow: Vec<u8> = ids.iter().flat_map(|&i| (i as u16).to_le_bytes()).collect();
        let wide: Vec<u8> = ids.iter().flat_map(|&i| i.to_le_bytes()).collect();
        let want = 7 + 65_535 * 2 + 3;
        assert_eq!(token_checksum(&narrow, 2), want);
        assert_eq!(token_checksum(&wide, 4), want);
        // Swapped ids give another sum; large ids wrap instead of overflowing.
        let swapped: Vec<u8> = [65_535u16, 7, 1]
            .iter()
            .flat_map(|i| i.to_le_bytes())
            .collect();
        assert_ne!(token_checksum(&swapped, 2), want);
        let big: Vec<u8> = vec![0xff; 4 * 1000];
        assert_eq!(
            token_checksum(&big, 4),
            (1..=1000u64).map(|i| i * u64::from(u32::MAX)).sum::<u64>()
        );
        assert_eq!(token_checksum(&[], 4), 0);
    }

    #[cfg(feature = "cuda")]
    #[test]
    fn without_a_cuda_driver_the_uploader_says_so() {
        if cuda::driver_present() {
            return; // a GPU machine: tests/gpu-check.sh covers it
        }
        let err = cuda::Uploader::new(0)
            .err()
            .expect("no driver, no uploader");
        assert!(matches!(err, cuda::CudaError::NoDriver), "{err}");
        assert!(err.to_string().contains("libcuda"), "{err}");
    }
}
