//! Retry with exponential backoff for transient registry failures: HTTP 429, 5xx, and transport errors
//! (connection refused/reset, timeouts). Opt-in: nothing in the client retries by itself; callers that
//! want it (the policy engine) wrap an operation in [`retry`] with a [`RetryPolicy`] and a deadline.
//!
//! The delay doubles from [`RetryPolicy::initial_backoff`] up to [`RetryPolicy::max_backoff`]; a retry is
//! never started when its delay would pass the deadline, so the last error is returned in time for the
//! caller to report it.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::ClientError;

/// How transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts in total (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub initial_backoff: Duration,
    /// Largest delay between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 50 ms doubling up to 1 s.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before retry number `retry` (0-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Whether `e` is worth retrying: 429, 5xx, or a transport error.
pub fn is_retryable(e: &ClientError) -> bool {
    match e {
        ClientError::Transport { .. } => true,
        ClientError::Registry { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

/// Runs `op` until it succeeds, fails with a non-retryable error, runs out of attempts, or the next
/// delay would end after `deadline`. Returns the last result.
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    deadline: Option<Instant>,
    op: F,
) -> Result<T, ClientError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    retry_when(policy, deadline, is_retryable, op).await
}

/// Like [`retry`] for any error type: `retryable` says which errors are transient.
pub async fn retry_when<T, E, F, Fut, P>(
    policy: &RetryPolicy,
    deadline: Option<Instant>,
    retryable: P,
    mut op: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    P: Fn(&E) -> bool,
    E: std::fmt::Display,
{
    let mut attempt = 0u32;
    loop {
        let err = match op().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        attempt += 1;
        if attempt >= policy.max_attempts.max(1) || !retryable(&err) {
            return Err(err);
        }
        let delay = policy.backoff(attempt - 1);
        if deadline.is_some_and(|d| Instant::now() + delay >= d) {
            return Err(err);
        }
        tracing::debug!(error = %err, ?delay, attempt, "retrying registry request");
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn err(status: u16) -> ClientError {
        ClientError::Registry {
            registry: "r".into(),
            status,
            code: None,
            message: String::new(),
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        };
        assert_eq!(p.backoff(0), Duration::from_millis(10));
        assert_eq!(p.backoff(1), Duration::from_millis(20));
        assert_eq!(p.backoff(2), Duration::from_millis(40));
        assert_eq!(p.backoff(3), Duration::from_millis(50));
        assert_eq!(p.backoff(40), Duration::from_millis(50));
    }

    #[tokio::test]
    async fn retries_transient_errors_until_success() {
        let calls = AtomicU32::new(0);
        let p = RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        };
        let r = retry(&p, None, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                Err(err(if n == 0 { 429 } else { 503 }))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn does_not_retry_client_errors_or_past_the_deadline() {
        let calls = AtomicU32::new(0);
        let p = RetryPolicy::default();
        let r: Result<(), _> = retry(&p, None, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(err(400))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        calls.store(0, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_millis(10);
        let p = RetryPolicy {
            max_attempts: 100,
            initial_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(1),
        };
        let r: Result<(), _> = retry(&p, Some(deadline), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(err(502))
        })
        .await;
        assert_eq!(r.unwrap_err().status(), Some(502));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
