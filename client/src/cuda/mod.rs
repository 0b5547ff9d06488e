//! Batches into GPU memory (feature `cuda`).
//!
//! [`BatchStream::to_device`] turns a stream of host batches into one of [`DeviceBatch`]es:
//! each batch's tokens are copied into one of two page-locked staging buffers (which frees
//! its shared-memory slot or gRPC frame at once) and from there, asynchronously on the
//! uploader's own CUDA stream, into a fresh device buffer. An event recorded after the copy
//! tells when the tokens are on the device ([`DeviceBatch::wait_on`] orders a compute stream
//! after it without blocking the host). With two staging buffers the copy of one batch runs
//! while the host receives and stages the next, and a staging buffer is only rewritten once
//! the copy out of it has finished.
//!
//! The driver is loaded at run time (cudarc's dynamic loading), so the same binary runs where
//! there is no GPU: without a driver or a device, [`Uploader::new`] says why, and
//! [`DeviceStream`] says so once in the log and hands out the host batches
//! ([`Delivered::Host`]).
//!
//! This module's `unsafe` is CUDA's: allocations whose contents the copy that follows
//! overwrites, and kernel launches whose arguments match the PTX signatures below.
#![allow(unsafe_code)]

use std::sync::{Arc, Once};

use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream, DevicePtr, DriverError,
    LaunchConfig, PinnedHostSlice, PushKernelArg,
};

use crate::{Batch, BatchStream, DocSpan, Result, SampleInfo};

/// Staging buffers: one being copied to the device while the host fills the other.
const STAGING_BUFFERS: usize = 2;

/// Why batches cannot go to a GPU here, or a CUDA call that failed.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    #[error("no CUDA driver library (libcuda) could be loaded")]
    NoDriver,
    #[error("CUDA device {ordinal} is not available: {reason}")]
    NoDevice { ordinal: usize, reason: String },
    #[error("CUDA {what}: {source}")]
    Driver {
        what: &'static str,
        source: DriverError,
    },
}

fn driver(what: &'static str) -> impl FnOnce(DriverError) -> CudaError {
    move |source| CudaError::Driver { what, source }
}

/// Whether the CUDA driver library can be loaded on this machine.
pub fn driver_present() -> bool {
    // SAFETY: only tries to open the library; nothing is called through it.
    std::panic::catch_unwind(|| unsafe { cudarc::driver::sys::is_culib_present() }).unwrap_or(false)
}

/// One micro-batch whose tokens are (or are being copied) in GPU memory.
pub struct DeviceBatch {
    /// Steps handed out by the stream before this one.
    pub step: u64,
    pub token_width: usize,
    pub sample_len: usize,
    pub samples: Vec<SampleInfo>,
    pub spans: Vec<DocSpan>,
    /// Resume here to continue after this batch.
    pub cursor: String,
    pub plan_id: String,
    /// At least `len` bytes (one when the batch is empty: CUDA allocates no zero bytes).
    tokens: CudaSlice<u8>,
    len: usize,
    copied: CudaEvent,
}

impl DeviceBatch {
    /// The row-major `[samples, sample_len]` little-endian ids on the device (the first
    /// [`DeviceBatch::len_bytes`] bytes of the allocation). Kernels launched
    /// through cudarc on any stream are ordered after the copy by cudarc itself; for raw
    /// pointers ([`DeviceBatch::device_ptr`]) use [`DeviceBatch::wait_on`] first.
    pub fn tokens(&self) -> &CudaSlice<u8> {
        &self.tokens
    }

    /// The device address of the tokens (a `CUdeviceptr`), for other frameworks; valid while
    /// this batch lives.
    pub fn device_ptr(&self) -> u64 {
        let (ptr, _sync) = self.tokens.device_ptr(self.tokens.stream());
        ptr
    }

    pub fn len_bytes(&self) -> usize {
        self.len
    }

    /// Makes `stream` wait (on the device, not the host) until the tokens have arrived.
    pub fn wait_on(&self, stream: &CudaStream) -> Result<(), CudaError> {
        stream.wait(&self.copied).map_err(driver("stream wait"))
    }

    /// Whether the copy to the device has finished.
    pub fn is_ready(&self) -> bool {
        self.copied.is_complete()
    }

    /// Blocks the host until the tokens have arrived.
    pub fn synchronize(&self) -> Result<(), CudaError> {
        self.copied
            .synchronize()
            .map_err(driver("event synchronize"))
    }
}

impl std::fmt::Debug for DeviceBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBatch")
            .field("step", &self.step)
            .field("bytes", &self.len)
            .field("samples", &self.samples.len())
            .field("cursor", &self.cursor)
            .finish()
    }
}

/// Copies host batches to one GPU through page-locked staging buffers (see the module doc).
pub struct Uploader {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    staging: Vec<Option<PinnedHostSlice<u8>>>,
    next: usize,
    uploaded_bytes: u64,
}

impl Uploader {
    /// An uploader to device `ordinal`, or why there is none.
    pub fn new(ordinal: usize) -> Result<Uploader, CudaError> {
        if !driver_present() {
            return Err(CudaError::NoDriver);
        }
        let no_device = |reason: String| CudaError::NoDevice { ordinal, reason };
        // cudarc panics where a driver lacks a symbol it expects; that is "no device" too.
        let ctx = std::panic::catch_unwind(|| CudaContext::new(ordinal))
            .map_err(|_| no_device("the CUDA driver is too old for this client".into()))?
            .map_err(|e| no_device(e.to_string()))?;
        let stream = ctx.new_stream().map_err(driver("stream creation"))?;
        Ok(Uploader {
            ctx,
            stream,
            staging: (0..STAGING_BUFFERS).map(|_| None).collect(),
            next: 0,
            uploaded_bytes: 0,
        })
    }

    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// The stream the copies run on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Bytes copied to the device so far.
    pub fn uploaded_bytes(&self) -> u64 {
        self.uploaded_bytes
    }

    /// Stages `batch`'s tokens (releasing its host buffer) and starts their copy to the device.
    pub fn upload(&mut self, batch: Batch) -> Result<DeviceBatch, CudaError> {
        let Batch {
            step,
            tokens,
            token_width,
            sample_len,
            samples,
            spans,
            cursor,
            plan_id,
        } = batch;
        let n = tokens.len();
        let k = self.next;
        self.next = (k + 1) % STAGING_BUFFERS;
        let slot = &mut self.staging[k];
        // Batches of one stream have one size (a short last one aside): buffers are made once.
        if slot.as_ref().is_none_or(|s| s.len() != n) {
            *slot = None; // waits for the copy out of the old buffer before freeing it
            // SAFETY: the buffer is fully written below before anything reads it.
            *slot = Some(
                unsafe { self.ctx.alloc_pinned::<u8>(n.max(1)) }
                    .map_err(driver("page-locked allocation"))?,
            );
        }
        let staging = slot.as_mut().expect("made above");
        // Waits until the copy out of this buffer (two batches ago) has finished.
        let host = staging.as_mut_slice().map_err(driver("staging wait"))?;
        host[..n].copy_from_slice(&tokens);
        drop(tokens); // the ring slot (or gRPC frame) goes back now
        // SAFETY: the copy below writes all `n` bytes before the event that publishes them.
        let mut device =
            unsafe { self.stream.alloc::<u8>(n.max(1)) }.map_err(driver("device allocation"))?;
        if n > 0 {
            self.stream
                .memcpy_htod(&*staging, &mut device)
                .map_err(driver("host-to-device copy"))?;
        }
        let copied = self
            .stream
            .record_event(None)
            .map_err(driver("event record"))?;
        self.uploaded_bytes += n as u64;
        Ok(DeviceBatch {
            step,
            token_width,
            sample_len,
            samples,
            spans,
            cursor,
            plan_id,
            tokens: device,
            len: n,
            copied,
        })
    }
}

/// What [`DeviceStream::next`] hands out: device batches, or host batches where there is no
/// GPU.
#[derive(Debug)]
pub enum Delivered {
    Device(DeviceBatch),
    Host(Batch),
}

impl Delivered {
    pub fn cursor(&self) -> &str {
        match self {
            Delivered::Device(b) => &b.cursor,
            Delivered::Host(b) => &b.cursor,
        }
    }
}

/// A [`BatchStream`] whose batches land in GPU memory (see [`BatchStream::to_device`]).
pub struct DeviceStream {
    inner: BatchStream,
    uploader: Option<Uploader>,
}

static NO_GPU_SAID: Once = Once::new();

impl BatchStream {
    /// The same stream with every batch copied to CUDA device `ordinal`. Where there is no
    /// driver or no such device, says so once in the log and hands out host batches.
    pub fn to_device(self, ordinal: usize) -> DeviceStream {
        let uploader = match Uploader::new(ordinal) {
            Ok(uploader) => Some(uploader),
            Err(e) => {
                NO_GPU_SAID.call_once(|| {
                    tracing::warn!("{e}; serving batches in host memory");
                });
                None
            }
        };
        DeviceStream {
            inner: self,
            uploader,
        }
    }
}

impl DeviceStream {
    /// Whether batches go to a GPU (false: the host fallback).
    pub fn on_device(&self) -> bool {
        self.uploader.is_some()
    }

    pub fn uploader(&self) -> Option<&Uploader> {
        self.uploader.as_ref()
    }

    /// The underlying host stream (its cursor, transport and reconnects).
    pub fn host_stream(&self) -> &BatchStream {
        &self.inner
    }

    pub fn into_host_stream(self) -> BatchStream {
        self.inner
    }

    /// The next batch, its copy to the device started; `None` at the end of the plan.
    pub async fn next(&mut self) -> Result<Option<Delivered>> {
        let Some(batch) = self.inner.next().await? else {
            return Ok(None);
        };
        Ok(Some(match &mut self.uploader {
            Some(uploader) => Delivered::Device(uploader.upload(batch)?),
            None => Delivered::Host(batch),
        }))
    }
}

/// [`crate::token_checksum`] computed on the device, to check that what arrived there is what
/// was sent.
pub struct DeviceChecksum {
    u16_ids: CudaFunction,
    u32_ids: CudaFunction,
    out: CudaSlice<u64>,
    stream: Arc<CudaStream>,
}

const CHECKSUM_PTX: &str = include_str!("checksum.ptx");

impl DeviceChecksum {
    /// Loads the kernels into `ctx`; they run on a stream of their own, ordered after each
    /// batch's copy by its event.
    pub fn new(ctx: &Arc<CudaContext>) -> Result<DeviceChecksum, CudaError> {
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_src(CHECKSUM_PTX))
            .map_err(driver("loading the checksum kernels"))?;
        let load = |name| module.load_function(name).map_err(driver("kernel lookup"));
        let stream = ctx.new_stream().map_err(driver("stream creation"))?;
        Ok(DeviceChecksum {
            u16_ids: load("tokenlake_checksum_u16")?,
            u32_ids: load("tokenlake_checksum_u32")?,
            out: stream.alloc_zeros::<u64>(1).map_err(driver("allocation"))?,
            stream,
        })
    }

    /// The checksum of `batch`'s tokens, read on the device after its copy has arrived.
    pub fn checksum(&mut self, batch: &DeviceBatch) -> Result<u64, CudaError> {
        let func = match batch.token_width {
            2 => &self.u16_ids,
            4 => &self.u32_ids,
            w => {
                return Err(CudaError::NoDevice {
                    ordinal: self.stream.context().ordinal(),
                    reason: format!("token width {w} has no checksum kernel"),
                });
            }
        };
        let ids = (batch.len_bytes() / batch.token_width) as u64;
        batch.wait_on(&self.stream)?;
        self.stream
            .memset_zeros(&mut self.out)
            .map_err(driver("memset"))?;
        let blocks = ids.div_ceil(256).clamp(1, 1024) as u32;
        let config = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut launch = self.stream.launch_builder(func);
        launch.arg(batch.tokens()).arg(&ids).arg(&mut self.out);
        // SAFETY: the arguments match the PTX entry's (ids pointer, count, output pointer),
        // and `ids` elements of `token_width` bytes lie inside the batch's allocation.
        unsafe { launch.launch(config) }.map_err(driver("checksum kernel"))?;
        let sum = self
            .stream
            .clone_dtoh(&self.out)
            .map_err(driver("device-to-host copy"))?;
        Ok(sum[0])
    }
}

/// Host-to-device bandwidth of a plain copy from page-locked memory, `bytes` at a time,
/// `rounds` times: the ceiling a stream into the device is measured against.
pub fn pinned_copy_seconds(ordinal: usize, bytes: usize, rounds: u32) -> Result<f64, CudaError> {
    let uploader = Uploader::new(ordinal)?;
    let stream = uploader.stream();
    // SAFETY: both buffers are fully written before they are read.
    let mut host = unsafe { uploader.ctx.alloc_pinned::<u8>(bytes.max(1)) }
        .map_err(driver("page-locked allocation"))?;
    host.as_mut_slice()
        .map_err(driver("staging wait"))?
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    let mut device =
        unsafe { stream.alloc::<u8>(bytes.max(1)) }.map_err(driver("device allocation"))?;
    stream
        .memcpy_htod(&host, &mut device)
        .map_err(driver("host-to-device copy"))?;
    stream.synchronize().map_err(driver("synchronize"))?;
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        stream
            .memcpy_htod(&host, &mut device)
            .map_err(driver("host-to-device copy"))?;
    }
    stream.synchronize().map_err(driver("synchronize"))?;
    Ok(started.elapsed().as_secs_f64())
}
