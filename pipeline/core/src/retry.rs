//! Backing off and trying again when a step failed for a reason that can pass: a database
//! restarting, a dropped connection, a deadlock.
//!
//! Every step the runner retries is safe to repeat: a read starts again from the same position
//! (the caller owns it), and a sink write is idempotent and transactional (a failed batch left
//! nothing, or the same rows again). Errors an operator must fix (a wrong password, a missing
//! table) are never retried.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::metrics::{self, Metrics};

/// The first wait; each failure doubles it, up to [`MAX_WAIT`].
pub const FIRST_WAIT: Duration = Duration::from_millis(500);
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// How long one failing step is retried before the run fails (`pipeline.retry_for_secs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub give_up_after: Duration,
}

/// What to do after a failure.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// The wait is over: try again.
    Retry,
    /// Not retryable, or retried for too long: fail with the error.
    GiveUp,
    /// Shutdown was asked for while waiting.
    Shutdown,
}

/// The retries of one step.
pub struct Backoff<'a> {
    policy: RetryPolicy,
    metrics: &'a Metrics,
    stage: &'static str,
    first_failure: Option<Instant>,
    attempts: u32,
}

impl<'a> Backoff<'a> {
    pub fn new(policy: RetryPolicy, metrics: &'a Metrics, stage: &'static str) -> Self {
        Backoff { policy, metrics, stage, first_failure: None, attempts: 0 }
    }

    /// Decides about a failure of `what`: logs and counts it, and waits before a retry.
    pub async fn failed(
        &mut self,
        what: &str,
        error: &(dyn std::error::Error + Send + Sync + 'static),
        retryable: bool,
        shutdown: &CancellationToken,
    ) -> Next {
        let first = *self.first_failure.get_or_insert_with(Instant::now);
        if !retryable || first.elapsed() >= self.policy.give_up_after {
            return Next::GiveUp;
        }
        let wait = wait_before(self.attempts);
        self.attempts += 1;
        self.metrics.errors.with_label_values(&[self.stage, metrics::KIND_RETRYABLE]).inc();
        tracing::warn!(
            attempt = self.attempts,
            retry_in_seconds = wait.as_secs_f64(),
            giving_up_in_seconds = self.policy.give_up_after.saturating_sub(first.elapsed()).as_secs(),
            "{what} failed, retrying: {}",
            crate::status::with_causes(error)
        );
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => Next::Shutdown,
            _ = tokio::time::sleep(wait) => Next::Retry,
        }
    }

    /// The step succeeded: the next failure starts a new series. Returns whether it had
    /// failed before (a recovery).
    pub fn succeeded(&mut self) -> bool {
        let recovered = self.attempts > 0;
        if recovered {
            tracing::info!(attempts = self.attempts, "recovered after retrying");
        }
        self.first_failure = None;
        self.attempts = 0;
        recovered
    }
}

/// What a step retried by [`retrying!`] came to.
#[derive(Debug)]
pub enum Tried<T, E> {
    /// It succeeded, after failing first when `recovered`.
    Done { value: T, recovered: bool },
    /// It failed for good: not retryable, or retried for too long.
    GaveUp(E),
    /// Shutdown was asked for while waiting to retry after this failure.
    Shutdown(E),
}

/// Awaits `$step` (an expression evaluated anew on each try) until it succeeds, waiting and
/// trying again through the [`Backoff`] `$backoff` while its error `is_retryable()`. `$what`
/// names the step in the log ("reading db.orders"). Gives a [`Tried`].
macro_rules! retrying {
    ($backoff:expr, $what:expr, $shutdown:expr, $step:expr) => {
        loop {
            match $step {
                Ok(value) => break $crate::retry::Tried::Done { value, recovered: $backoff.succeeded() },
                Err(e) => match $backoff.failed($what, &e, e.is_retryable(), $shutdown).await {
                    $crate::retry::Next::Retry => continue,
                    $crate::retry::Next::GiveUp => break $crate::retry::Tried::GaveUp(e),
                    $crate::retry::Next::Shutdown => break $crate::retry::Tried::Shutdown(e),
                },
            }
        }
    };
}
pub(crate) use retrying;

/// The wait before retry number `attempt` (from 0): doubling, capped.
pub fn wait_before(attempt: u32) -> Duration {
    FIRST_WAIT.saturating_mul(1 << attempt.min(16)).min(MAX_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap() {
        let waits: Vec<u64> = (0..9).map(|a| wait_before(a).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(wait_before(u32::MAX), MAX_WAIT);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("down")]
    struct Down(bool);

    impl Down {
        fn is_retryable(&self) -> bool {
            self.0
        }
    }

    #[tokio::test]
    async fn retrying_runs_a_step_until_it_succeeds_and_says_it_recovered() {
        let metrics = Metrics::new("t").expect("metrics");
        let shutdown = CancellationToken::new();
        let policy = RetryPolicy { give_up_after: Duration::from_secs(60) };
        let mut failures = 1;
        let mut step = || {
            failures -= 1;
            if failures >= 0 { Err(Down(true)) } else { Ok(7) }
        };
        let mut b = Backoff::new(policy, &metrics, metrics::STAGE_LOAD);
        let tried = retrying!(b, "writing", &shutdown, step());
        assert!(matches!(tried, Tried::Done { value: 7, recovered: true }), "{tried:?}");
        let tried: Tried<(), Down> = retrying!(b, "writing", &shutdown, Err(Down(false)));
        assert!(matches!(tried, Tried::GaveUp(Down(false))), "{tried:?}");
    }

    #[tokio::test]
    async fn gives_up_on_operator_errors_and_after_the_policy_runs_out() {
        let metrics = Metrics::new("t").expect("metrics");
        let shutdown = CancellationToken::new();
        let e = std::io::Error::other("down");
        let policy = RetryPolicy { give_up_after: Duration::from_secs(60) };
        let mut b = Backoff::new(policy, &metrics, metrics::STAGE_EXTRACT);
        assert_eq!(b.failed("reading", &e, false, &shutdown).await, Next::GiveUp);

        let mut b = Backoff::new(RetryPolicy { give_up_after: Duration::ZERO }, &metrics, metrics::STAGE_EXTRACT);
        assert_eq!(b.failed("reading", &e, true, &shutdown).await, Next::GiveUp);

        let mut b = Backoff::new(policy, &metrics, metrics::STAGE_EXTRACT);
        shutdown.cancel();
        assert_eq!(b.failed("reading", &e, true, &shutdown).await, Next::Shutdown);
        let counted = metrics.errors.with_label_values(&[metrics::STAGE_EXTRACT, metrics::KIND_RETRYABLE]).get();
        assert_eq!(counted, 1, "only the retried failure is counted here");
    }
}
