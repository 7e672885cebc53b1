//! One run per table: a lease in the journal, renewed while the run lives, expiring when it dies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use super::{Journal, Lease, Operator};
use crate::error::{Error, Result};

/// How long a lease lives without renewal.
pub const TTL: Duration = Duration::from_secs(60);
const RENEW_EVERY: Duration = Duration::from_secs(15);

/// How long a lease lives and how often it is renewed; tests shorten both.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ttl: Duration,
    pub renew_every: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            ttl: TTL,
            renew_every: RENEW_EVERY,
        }
    }
}

impl Timing {
    /// An execution's lease, held across its workers: it outlives an invocation of the longest
    /// Lambda timeout (15 minutes) and the waits and retries between invocations, and lapses this
    /// long after the state machine stopped calling.
    pub fn execution() -> Timing {
        Timing {
            ttl: Duration::from_secs(20 * 60),
            renew_every: Duration::from_secs(60),
        }
    }
}

/// A held lease. Renewed in the background; released by [`LeaseGuard::release`].
pub struct LeaseGuard {
    journal: Arc<dyn Journal>,
    table: String,
    version: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
    /// Until when (ms after `base`) the last successful write of the lease holds it for us.
    held_until: Arc<AtomicU64>,
    base: Instant,
    timing: Timing,
    renewer: tokio::task::JoinHandle<()>,
}

/// Whether a process is still running on this host (Linux /proc).
fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn expiry(now: Timestamp, ttl: Duration) -> Timestamp {
    now.checked_add(SignedDuration::try_from(ttl).unwrap_or(SignedDuration::from_secs(60)))
        .unwrap_or(now)
}

/// Takes the lease on `table` for `execution_id`. Returns the guard and, when an earlier holder
/// was displaced, a sentence for the journal saying so.
pub async fn acquire(
    journal: Arc<dyn Journal>,
    table: &str,
    execution_id: &str,
    break_lock: bool,
) -> Result<(LeaseGuard, Option<String>)> {
    acquire_with(journal, table, execution_id, break_lock, Timing::default()).await
}

/// [`acquire`] with its own timing.
pub async fn acquire_with(
    journal: Arc<dyn Journal>,
    table: &str,
    execution_id: &str,
    break_lock: bool,
    timing: Timing,
) -> Result<(LeaseGuard, Option<String>)> {
    let me = Operator::current();
    for _ in 0..5 {
        let base = Instant::now();
        let now = Timestamp::now();
        let lease = Lease {
            table: table.to_string(),
            execution_id: execution_id.to_string(),
            holder: me.clone(),
            acquired_at: now,
            expires_at: expiry(now, timing.ttl),
        };
        let current = journal.read_lease(table).await?;
        let (expected, note) = match &current {
            None => (None, None),
            Some((held, version)) => {
                let expired = held.expires_at < now;
                let dead_here = held.holder.host == me.host
                    && held.holder.pid != me.pid
                    && !pid_alive(held.holder.pid);
                let who = format!(
                    "execution {} (user {}, host {}, pid {}, since {}, expires {})",
                    held.execution_id,
                    held.holder.user,
                    held.holder.host,
                    held.holder.pid,
                    held.acquired_at,
                    held.expires_at
                );
                let note = if held.execution_id == execution_id && (dead_here || expired) {
                    format!(
                        "took over the lease on {table} from a previous process of this execution that is gone: {who}"
                    )
                } else if expired {
                    format!("took over the expired lease on {table} of {who}")
                } else if break_lock {
                    format!(
                        "LEASE BROKEN by the operator (--break-lock) on {table}; it was held by {who}"
                    )
                } else {
                    return Err(Error::invalid(
                        "table",
                        format!(
                            "{table} is being recovered by {who}; one run per table at a time. Wait for it \
                             (dynamo-dr status {}), or, if that run is dead, pass --break-lock",
                            held.execution_id
                        ),
                    ));
                };
                (Some(*version), Some(note))
            }
        };
        if journal.swap_lease(table, Some(&lease), expected).await? {
            if let Some(n) = &note {
                tracing::warn!("{n}");
            }
            let guard = LeaseGuard::held(journal, lease, expected, base, timing, false);
            return Ok((guard, note));
        }
    }
    Err(Error::invalid(
        "table",
        format!("{table}: the lease kept changing under us; another run is starting. Try again"),
    ))
}

/// Takes or renews the lease on `table` as execution `execution_id`'s own, not this process's:
/// for an execution that short-lived workers (Lambda invocations) advance in turn and at once.
/// Any worker of the execution renews it, and it lasts `timing.ttl` past the last of them; a
/// worker ends with [`LeaseGuard::detach`], the execution's end with [`LeaseGuard::release`].
/// Another execution's live lease is refused, as by [`acquire`]; an expired one is taken over.
pub async fn hold_for_execution(
    journal: Arc<dyn Journal>,
    table: &str,
    execution_id: &str,
    timing: Timing,
) -> Result<(LeaseGuard, Option<String>)> {
    let me = Operator::current();
    for _ in 0..10 {
        let base = Instant::now();
        let now = Timestamp::now();
        let current = journal.read_lease(table).await?;
        let (expected, acquired_at, note) = match &current {
            None => (None, now, None),
            Some((held, v)) if held.execution_id == execution_id => {
                (Some(*v), held.acquired_at, None)
            }
            Some((held, v)) if held.expires_at < now => (
                Some(*v),
                now,
                Some(format!(
                    "took over the expired lease on {table} of execution {} (user {}, host {}, \
                     expired {})",
                    held.execution_id, held.holder.user, held.holder.host, held.expires_at
                )),
            ),
            Some((held, _)) => {
                return Err(Error::invalid(
                    "table",
                    format!(
                        "{table} is being recovered by execution {} (user {}, host {}, until {}); \
                         one run per table at a time. Wait for it (dynamo-dr status {}), or stop \
                         it and let its lease lapse",
                        held.execution_id,
                        held.holder.user,
                        held.holder.host,
                        held.expires_at,
                        held.execution_id
                    ),
                ));
            }
        };
        let lease = Lease {
            table: table.to_string(),
            execution_id: execution_id.to_string(),
            holder: me.clone(),
            acquired_at,
            expires_at: expiry(now, timing.ttl),
        };
        if !journal.swap_lease(table, Some(&lease), expected).await? {
            // Another worker of this execution renewed it first, or another run took it.
            continue;
        }
        let guard = LeaseGuard::held(journal, lease, expected, base, timing, true);
        return Ok((guard, note));
    }
    Err(Error::Journal(format!(
        "{table}: the lease kept changing under this worker; Step Functions retries the step"
    )))
}

/// What the renewer shares with the guard.
struct Renewal {
    /// Held by the execution, renewed by any of its workers: a write that lost the race to
    /// another worker of the same execution is no loss.
    shared: bool,
    version: Arc<AtomicU64>,
    lost: Arc<AtomicBool>,
    held_until: Arc<AtomicU64>,
    base: Instant,
    timing: Timing,
}

async fn renew(journal: Arc<dyn Journal>, mut lease: Lease, r: Renewal) {
    loop {
        tokio::time::sleep(r.timing.renew_every).await;
        // Measured from before the write: the lease holds at least this long once it lands.
        let sent = r.base.elapsed();
        lease.expires_at = expiry(Timestamp::now(), r.timing.ttl);
        let v = r.version.load(Ordering::SeqCst);
        match journal
            .swap_lease(&lease.table, Some(&lease), Some(v))
            .await
        {
            Ok(true) => {
                r.version.store(v + 1, Ordering::SeqCst);
                let until = (sent + r.timing.ttl).as_millis() as u64;
                r.held_until.store(until, Ordering::SeqCst);
            }
            Ok(false) if r.shared => match journal.read_lease(&lease.table).await {
                Ok(Some((held, v))) if held.execution_id == lease.execution_id => {
                    r.version.store(v, Ordering::SeqCst);
                    let until = (sent + r.timing.ttl).as_millis() as u64;
                    r.held_until.fetch_max(until, Ordering::SeqCst);
                }
                Ok(_) => {
                    tracing::error!(table = %lease.table, "the lease was taken by another run; stopping");
                    r.lost.store(true, Ordering::SeqCst);
                    return;
                }
                Err(e) => {
                    tracing::warn!(table = %lease.table, error = %e, "lease renewal failed; retrying")
                }
            },
            Ok(false) => {
                tracing::error!(table = %lease.table, "the lease was taken by someone else; stopping");
                r.lost.store(true, Ordering::SeqCst);
                return;
            }
            // Retried; writes stop (LeaseGuard::check) before the last renewal lapses.
            Err(e) => {
                tracing::warn!(table = %lease.table, error = %e, "lease renewal failed; retrying")
            }
        }
    }
}

impl LeaseGuard {
    /// The guard of a lease just written over version `expected`, renewed from now on.
    fn held(
        journal: Arc<dyn Journal>,
        lease: Lease,
        expected: Option<u64>,
        base: Instant,
        timing: Timing,
        shared: bool,
    ) -> LeaseGuard {
        let version = Arc::new(AtomicU64::new(expected.map_or(1, |v| v + 1)));
        let lost = Arc::new(AtomicBool::new(false));
        let held_until = Arc::new(AtomicU64::new(timing.ttl.as_millis() as u64));
        let table = lease.table.clone();
        let renewer = tokio::spawn(renew(
            journal.clone(),
            lease,
            Renewal {
                shared,
                version: version.clone(),
                lost: lost.clone(),
                held_until: held_until.clone(),
                base,
                timing,
            },
        ));
        LeaseGuard {
            journal,
            table,
            version,
            lost,
            held_until,
            base,
            timing,
            renewer,
        }
    }

    /// Fails once another run has taken the lease, so this one stops writing.
    /// Also fails once renewals have failed for so long that the lease has less than one
    /// renewal period left: another run may take it when it lapses, so this one stops writing
    /// first.
    pub fn check(&self) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::Journal(format!(
                "the lease on {} was taken over by another run (--break-lock?); this run stopped writing",
                self.table
            )));
        }
        let held_until = Duration::from_millis(self.held_until.load(Ordering::SeqCst));
        if self.base.elapsed() + self.timing.renew_every >= held_until {
            return Err(Error::Journal(format!(
                "the lease on {} could not be renewed for {:?} and is about to lapse, when another \
                 run could take it; this run stopped writing. Check the journal is reachable, \
                 then `dynamo-dr resume` continues from the checkpoints",
                self.table,
                self.base
                    .elapsed()
                    .saturating_sub(held_until.saturating_sub(self.timing.ttl))
            )));
        }
        Ok(())
    }

    /// Stops renewing without giving the lease up: the execution's next worker renews it.
    pub fn detach(self) {
        self.renewer.abort();
    }

    pub async fn release(self) -> Result<()> {
        self.renewer.abort();
        let _ = self.renewer.await;
        if self.lost.load(Ordering::SeqCst) {
            return Ok(());
        }
        let v = self.version.load(Ordering::SeqCst);
        self.journal.swap_lease(&self.table, None, Some(v)).await?;
        Ok(())
    }
}
