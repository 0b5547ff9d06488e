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

use std::time::{Duration, Instant};

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

/// Slots a client asks for: enough for the server to run ahead while the trainer works, and
/// to keep batches flowing while releases travel back (the server may grant fewer).
const RING_SLOTS: u32 = 32;

/// An open shared-memory stream: the control channel both ways and the mapped ring.
struct ShmSession {
    control: tokio::sync::mpsc::UnboundedSender<proto::ShmClientMessage>,
    incoming: tonic::Streaming<proto::ShmServerMessage>,
    ring: std::sync::Arc<tokenlake_ring::RingReader>,
    /// Batches the server announced together, not yet handed out.
    pending: std::collections::VecDeque<proto::ShmBatch>,
    /// What the ring's announcement said every batch shares (its `path` aside).
    shared: proto::ShmRing,
    releases: std::sync::Arc<std::sync::Mutex<Releases>>,
    /// Releases are sent once this many have gathered (or when the client waits).
    release_at: usize,
}

/// Slots whose batches were dropped and not yet given back. Releases are gathered as the
/// server gathers its announcements, since each control message wakes the server's runtime
/// (which on a busy host takes a core from the producer): they go out when a few have
/// gathered, when the client is about to wait for the server, and at once while it waits
/// (the server may be waiting for exactly that slot).
#[derive(Default)]
struct Releases {
    slots: Vec<u32>,
    /// The client is waiting for the server's next message.
    waiting: bool,
}

impl Releases {
    /// Sends what has gathered, in one message.
    fn send(&mut self, control: &tokio::sync::mpsc::UnboundedSender<proto::ShmClientMessage>) {
        let Some((&slot, more)) = self.slots.split_first() else {
            return;
        };
        // A closed stream needs no release: its ring is gone with it.
        let _ = control.send(self::control(proto::shm_client_message::Message::Release(
            proto::ShmRelease {
                slot,
                more: more.to_vec(),
            },
        )));
        self.slots.clear();
    }
}

/// The client's control messages as they go out: releases pending at once travel in one
/// message (the server coalesces its announcements the same way).
fn coalesced_releases(
    rx: tokio::sync::mpsc::UnboundedReceiver<proto::ShmClientMessage>,
) -> impl tokio_stream::Stream<Item = proto::ShmClientMessage> {
    use proto::shm_client_message::Message;
    tokenlake_ring::coalesce(
        tokio_stream::wrappers::UnboundedReceiverStream::new(rx),
        |gathered: &mut proto::ShmClientMessage, item| match (&mut gathered.message, item.message) {
            (Some(Message::Release(release)), Some(Message::Release(r))) => {
                release.more.push(r.slot);
                release.more.extend(r.more);
                None
            }
            (_, other) => Some(proto::ShmClientMessage { message: other }),
        },
    )
}

/// A batch's tokens in their ring slot, handed out without a copy: the slot goes back to the
/// server when the last clone of the batch's `tokens` is dropped. A trainer that keeps as many
/// batches alive as the ring has slots (32, or fewer where 32 batches exceed the server's
/// `limits.prefetch_bytes`) stops the stream until it lets one go.
struct SlotTokens {
    ring: std::sync::Arc<tokenlake_ring::RingReader>,
    slot: u32,
    len: usize,
    control: tokio::sync::mpsc::UnboundedSender<proto::ShmClientMessage>,
    releases: std::sync::Arc<std::sync::Mutex<Releases>>,
}

impl AsRef<[u8]> for SlotTokens {
    fn as_ref(&self) -> &[u8] {
        self.ring
            .slot(self.slot, self.len)
            .expect("checked when the batch arrived")
    }
}

impl Drop for SlotTokens {
    fn drop(&mut self) {
        let mut releases = self.releases.lock().unwrap_or_else(|e| e.into_inner());
        releases.slots.push(self.slot);
        if releases.waiting {
            releases.send(&self.control);
        }
    }
}

enum Inner {
    Grpc(tonic::Streaming<proto::MicroBatch>),
    Shm(ShmSession),
}

fn control(message: proto::shm_client_message::Message) -> proto::ShmClientMessage {
    proto::ShmClientMessage {
        message: Some(message),
    }
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

/// Codes after which asking again from the last cursor can succeed: the server or the
/// connection went away, or a batch arrived damaged.
fn worth_retrying(status: &Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::Unknown | Code::Aborted | Code::Cancelled | Code::DataLoss => {
            true
        }
        // A connection broken at the HTTP/2 level, not an error of the server's making.
        Code::Internal => status.message().starts_with("h2 protocol error"),
        _ => false,
    }
}

/// Waits between attempts, doubling up to a limit, until the server has been unreachable for
/// longer than the policy allows.
struct Backoff {
    policy: RetryPolicy,
    delay: Duration,
    failing_since: Option<Instant>,
    attempts: u32,
}

impl Backoff {
    fn new(policy: RetryPolicy) -> Backoff {
        Backoff {
            delay: policy.initial_backoff,
            policy,
            failing_since: None,
            attempts: 0,
        }
    }

    async fn wait(&mut self, status: Status) -> Result<()> {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        self.attempts += 1;
        if since.elapsed() >= self.policy.give_up_after {
            return Err(ClientError::GaveUp {
                attempts: self.attempts,
                elapsed: since.elapsed(),
                last: status,
            });
        }
        tracing::info!(
            code = ?status.code(),
            message = status.message(),
            "stream interrupted; resuming from the last cursor"
        );
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(self.policy.max_backoff);
        Ok(())
    }
}

pub struct BatchStream {
    client: Client,
    request: StreamRequest,
    /// The cursor after the last batch handed out (or the request's).
    cursor: Option<String>,
    inner: Option<Inner>,
    delivered: u64,
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

    /// The next batch; `None` at the end of the plan or after `max_steps`.
    pub async fn next(&mut self) -> Result<Option<Batch>> {
        let mut backoff = Backoff::new(self.client.retry.clone());
        loop {
            if self.request.max_steps != 0 && self.delivered >= self.request.max_steps {
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
            Inner::Grpc(stream) => match stream.message().await? {
                Some(message) => message,
                None => return Ok(None),
            },
            // A ring slot's bytes never cross a network, and the control protocol keeps the
            // server from writing a slot the client holds: no checksum to check.
            Inner::Shm(session) => match session.next().await? {
                Some(message) => message,
                None => return Ok(None),
            },
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

/// Refusals after which gRPC payloads will work: another host, no shared memory on either
/// side, or a server that predates the transport.
fn shm_unavailable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::FailedPrecondition | Code::Unimplemented
    )
}

impl ShmSession {
    async fn open(client: &Client, request: StreamRequest) -> Result<ShmSession, Status> {
        use proto::shm_client_message::Message;
        let host = tokenlake_ring::host_identity().ok_or_else(|| {
            Status::failed_precondition("this client has no shared memory (it needs Linux)")
        })?;
        let (control_tx, control_rx) = tokio::sync::mpsc::unbounded_channel();
        control_tx
            .send(control(Message::Open(proto::ShmOpen {
                request: Some(request),
                slots: RING_SLOTS,
                host,
            })))
            .expect("the receiver is alive");
        let mut incoming = client
            .stream_client()
            .shared_batches(coalesced_releases(control_rx))
            .await?
            .into_inner();
        let ring = match incoming.message().await?.and_then(|m| m.message) {
            Some(proto::shm_server_message::Message::Ring(ring)) => ring,
            _ => return Err(Status::internal("the server did not announce its ring")),
        };
        let reader = tokenlake_ring::RingReader::open(
            std::path::Path::new(&ring.path),
            ring.slots,
            ring.slot_bytes as usize,
        )
        // A ring this process cannot open (another mount namespace, permissions) is as good
        // as none: gRPC payloads still work.
        .map_err(|e| Status::failed_precondition(e.to_string()))?;
        control_tx
            .send(control(Message::Mapped(proto::ShmMapped {})))
            .map_err(|_| Status::unavailable("the stream closed"))?;
        Ok(ShmSession {
            control: control_tx,
            incoming,
            ring: std::sync::Arc::new(reader),
            pending: std::collections::VecDeque::new(),
            release_at: (ring.slots as usize / 4).max(1),
            shared: ring,
            releases: Default::default(),
        })
    }

    /// The metadata of `shm` from its slot, after the tokens.
    fn slot_meta(&self, shm: &proto::ShmBatch) -> Result<proto::MicroBatch, Status> {
        use tokenlake_ring::SlotMeta;
        let at = SlotMeta::offset(shm.tokens_len as usize);
        let bytes = self
            .ring
            .slot(shm.slot, at + shm.meta_len as usize)
            .filter(|_| shm.meta_len > 0)
            .ok_or_else(|| Status::internal("a shared-memory batch without its metadata"))?;
        let bad = |what: String| Status::data_loss(format!("slot {}'s metadata: {what}", shm.slot));
        let (step, samples, spans, cursor) = SlotMeta::read(&bytes[at..]).map_err(bad)?;
        let name = |names: &[String], i: u32, what: &str| {
            names
                .get(i as usize)
                .cloned()
                .ok_or_else(|| bad(format!("{what} {i} is not in the ring's {}", names.len())))
        };
        let shared = &self.shared;
        Ok(proto::MicroBatch {
            step,
            tokens: Bytes::new(),
            token_width: shared.token_width,
            sample_len: shared.sample_len,
            samples: samples
                .into_iter()
                .map(|s| {
                    Ok(proto::SampleInfo {
                        index: s.index,
                        stage: name(&shared.stages, s.stage, "stage")?,
                        component: name(&shared.components, s.component, "component")?,
                        epoch: s.epoch,
                        span_start: s.span_start,
                        span_end: s.span_end,
                    })
                })
                .collect::<Result<_, Status>>()?,
            spans: spans
                .into_iter()
                .map(|s| proto::DocSpan {
                    doc_id: s.doc_id,
                    offset: s.offset,
                    len: s.len,
                    position: s.position,
                })
                .collect(),
            checksum: 0,
            cursor,
            plan_id: shared.plan_id.clone(),
        })
    }

    /// The next batch, its tokens still in their slot (see [`SlotTokens`]).
    async fn next(&mut self) -> Result<Option<proto::MicroBatch>, Status> {
        use proto::shm_server_message::Message;
        {
            let mut releases = self.releases.lock().unwrap_or_else(|e| e.into_inner());
            releases.waiting = self.pending.is_empty();
            if releases.waiting || releases.slots.len() >= self.release_at {
                releases.send(&self.control);
            }
        }
        if self.pending.is_empty() {
            let message = self.incoming.message().await;
            self.releases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .waiting = false;
            let Some(message) = message? else {
                return Ok(None);
            };
            match message.message {
                Some(Message::Batch(shm)) => self.pending.push_back(shm),
                Some(Message::Batches(all)) => self.pending.extend(all.batches),
                _ => {
                    return Err(Status::internal(
                        "expected a batch on the shared-memory stream",
                    ));
                }
            }
        }
        let Some(shm) = self.pending.pop_front() else {
            return Err(Status::internal("an empty batch announcement"));
        };
        let len = shm.tokens_len as usize;
        if self.ring.slot(shm.slot, len).is_none() {
            return Err(Status::data_loss("a batch names a slot outside the ring"));
        }
        let mut batch = match shm.batch {
            Some(batch) => batch,
            None => self.slot_meta(&shm)?,
        };
        batch.tokens = Bytes::from_owner(SlotTokens {
            ring: self.ring.clone(),
            slot: shm.slot,
            len,
            control: self.control.clone(),
            releases: self.releases.clone(),
        });
        Ok(Some(batch))
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

    #[tokio::test]
    async fn pending_releases_travel_in_one_message_and_other_messages_keep_their_place() {
        use proto::shm_client_message::Message;
        use tokio_stream::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let release = |slot| {
            control(Message::Release(proto::ShmRelease {
                slot,
                more: Vec::new(),
            }))
        };
        tx.send(control(Message::Mapped(proto::ShmMapped {})))
            .unwrap();
        for slot in [4, 1, 7] {
            tx.send(release(slot)).unwrap();
        }
        tx.send(control(Message::Mapped(proto::ShmMapped {})))
            .unwrap();
        tx.send(release(2)).unwrap();
        drop(tx);
        let out: Vec<_> = coalesced_releases(rx).collect().await;
        let shapes: Vec<Vec<u32>> = out
            .iter()
            .map(|m| match &m.message {
                Some(Message::Release(r)) => {
                    std::iter::once(r.slot).chain(r.more.clone()).collect()
                }
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(shapes, vec![vec![], vec![4, 1, 7], vec![], vec![2]]);
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
