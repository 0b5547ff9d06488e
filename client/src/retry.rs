//! When and how long a stream waits before asking again from its last cursor.

use std::time::{Duration, Instant};

use tonic::{Code, Status};

use crate::{ClientError, Result, RetryPolicy};

/// Codes after which asking again from the last cursor can succeed: the server or the
/// connection went away, or a batch arrived damaged.
pub(crate) fn worth_retrying(status: &Status) -> bool {
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
pub(crate) struct Backoff {
    policy: RetryPolicy,
    delay: Duration,
    failing_since: Option<Instant>,
    attempts: u32,
}

impl Backoff {
    pub(crate) fn new(policy: RetryPolicy) -> Backoff {
        Backoff {
            delay: policy.initial_backoff,
            policy,
            failing_since: None,
            attempts: 0,
        }
    }

    pub(crate) async fn wait(&mut self, status: Status) -> Result<()> {
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
