//! Exponential backoff with full jitter, under a bounded budget; and the poll loop built on it.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// How long to wait between attempts and when to give up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    /// Attempts allowed in a row without progress before the run stops.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(20),
            max_attempts: 15,
        }
    }
}

impl RetryPolicy {
    pub fn start(&self) -> Backoff<'_> {
        Backoff {
            policy: self,
            attempts: 0,
            started: Instant::now(),
        }
    }

    /// Full jitter: a uniform draw from [0, min(cap, base * 2^attempt)].
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(30)))
            .min(self.cap);
        ceiling.mul_f64(fastrand::f64())
    }
}

/// One retry sequence. Call [`Backoff::progressed`] when an attempt got some work through, so that
/// only attempts in a row that achieved nothing count against the budget.
#[derive(Debug)]
pub struct Backoff<'a> {
    policy: &'a RetryPolicy,
    attempts: u32,
    started: Instant,
}

impl Backoff<'_> {
    pub fn progressed(&mut self) {
        self.attempts = 0;
    }

    /// Sleeps before the next attempt, or returns `None` when the budget is spent.
    pub async fn wait(&mut self) -> Option<()> {
        if self.attempts >= self.policy.max_attempts {
            return None;
        }
        let delay = self.policy.delay(self.attempts);
        self.attempts += 1;
        tokio::time::sleep(delay).await;
        Some(())
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// How often to look at a long-running AWS operation, and for how long.
#[derive(Debug, Clone)]
pub struct PollPolicy {
    pub initial: Duration,
    pub cap: Duration,
    pub deadline: Duration,
}

impl PollPolicy {
    pub fn new(deadline: Duration) -> Self {
        PollPolicy {
            initial: Duration::from_millis(250),
            cap: Duration::from_secs(30),
            deadline,
        }
    }
}

/// The result of one look at a long-running operation.
pub enum Poll<T> {
    Ready(T),
    /// Not done yet; the string is the state shown to the operator.
    Pending(String),
}

/// Calls `check` until it is ready, sleeping with exponential backoff and jitter in between. The
/// SDK's waiters are not used because their 20 s floor would slow every emulator run and small
/// restore.
pub async fn poll_until<T, F, Fut>(
    what: &str,
    policy: &PollPolicy,
    mut on_pending: impl FnMut(&str, Duration),
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    let started = Instant::now();
    let mut interval = policy.initial;
    loop {
        match check().await? {
            Poll::Ready(v) => return Ok(v),
            Poll::Pending(state) => {
                let waited = started.elapsed();
                if waited >= policy.deadline {
                    return Err(Error::WaitTimeout {
                        what: what.to_string(),
                        waited,
                        last_state: state,
                    });
                }
                on_pending(&state, waited);
                // Jitter of +-20% keeps many pollers from lining up on the control plane.
                let sleep = interval.mul_f64(0.8 + 0.4 * fastrand::f64());
                tokio::time::sleep(sleep.min(policy.deadline.saturating_sub(waited))).await;
                interval = (interval * 2).min(policy.cap);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_within_the_exponential_ceiling_and_cap() {
        let p = RetryPolicy {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(500),
            max_attempts: 5,
        };
        for attempt in 0..40 {
            let ceiling = Duration::from_millis(10)
                .saturating_mul(2u32.saturating_pow(attempt.min(30)))
                .min(Duration::from_millis(500));
            for _ in 0..50 {
                assert!(p.delay(attempt) <= ceiling);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn budget_counts_only_attempts_without_progress() {
        let p = RetryPolicy {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(2),
            max_attempts: 3,
        };
        let mut b = p.start();
        for _ in 0..3 {
            assert!(b.wait().await.is_some());
        }
        assert!(b.wait().await.is_none());
        b.progressed();
        assert!(b.wait().await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn poll_times_out_with_the_last_state() {
        let policy = PollPolicy {
            initial: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            deadline: Duration::from_secs(5),
        };
        let err = poll_until(
            "table X",
            &policy,
            |_, _| {},
            || async { Ok(Poll::<()>::Pending("CREATING".into())) },
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, Error::WaitTimeout { ref last_state, .. } if last_state == "CREATING")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn poll_returns_once_ready() {
        let mut n = 0;
        let policy = PollPolicy::new(Duration::from_secs(60));
        let v = poll_until(
            "x",
            &policy,
            |_, _| {},
            || {
                n += 1;
                let ready = n >= 3;
                async move {
                    Ok(if ready {
                        Poll::Ready(n)
                    } else {
                        Poll::Pending("no".into())
                    })
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 3);
    }
}
