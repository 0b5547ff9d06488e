//! What kind of failure an error is, in words every transport understands. Each library error
//! type says its own kind (`error_code()`, next to where its variants are defined, as an
//! exhaustive `match`), so a new variant cannot reach a client without someone deciding
//! whether it is the caller's fault, retryable, or ours. The gRPC server turns a code into a
//! status in one place; the command line could turn it into an exit code the same way.

/// The kind of a failure, named after the gRPC codes they become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is wrong and will stay wrong: a bad recipe, filter, name or input.
    InvalidArgument,
    /// What the request names does not exist: a lake, version, tag, job.
    NotFound,
    /// What the request would create exists already (a tag).
    AlreadyExists,
    /// The request is well formed but the state does not allow it (a cursor of another plan,
    /// a shard set that is incomplete).
    FailedPrecondition,
    /// A limit refused it; the message names the limit.
    ResourceExhausted,
    /// Stopped on purpose: interrupted, cancelled, the client went away.
    Cancelled,
    /// A store or network failed or throttled us: retrying later may succeed.
    Unavailable,
    /// Our fault or the machine's (local I/O, a damaged cache, a bug): logged by the server.
    Internal,
}

impl ErrorCode {
    /// Whether the same request may succeed if sent again later.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::Unavailable)
    }
}

/// An error that knows its [`ErrorCode`].
pub trait ServiceError: std::error::Error {
    fn error_code(&self) -> ErrorCode;
}
