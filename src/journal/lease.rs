//! One writer per table (and per environment's recovery mode): a lease in the journal, renewed
//! while its holder lives, with a fencing token that every write is checked against.
//!
//! - A holder that takes the lease makes a new token and the next fencing number; a holder that
//!   renews it keeps both. Workers of one execution (Lambda invocations) share its token.
//! - Before each write a holder reads the lease consistently ([`Fence::check`]); a check vouches
//!   for the writes sent within [`FRESH`] of it. A holder whose token is gone stops there.
//! - A write sent under a check lands within one attempt's timeout, so whoever displaces a live
//!   holder waits until the displaced holder's writes can no longer land ([`Lease::quiet_at`])
//!   before its own first write: no stale write lands after the new holder's first.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use super::{HolderKind, Journal, Lease, Operator};
use crate::error::{Error, Result};

/// How long a lease lives without renewal.
pub const TTL: Duration = Duration::from_secs(60);
const RENEW_EVERY: Duration = Duration::from_secs(15);
/// How long a consistent read of the token vouches for the writes sent after it.
pub const FRESH: Duration = Duration::from_secs(1);

/// How long a lease lives, how often it is renewed, and how long one write attempt may take.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub ttl: Duration,
    pub renew_every: Duration,
    /// One AWS call attempt's timeout (`--attempt-timeout`): how long after it was sent a write
    /// may still land.
    pub attempt_timeout: Duration,
    /// A Lambda invocation's deadline: Lambda stops it there.
    pub deadline: Option<Timestamp>,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            ttl: TTL,
            renew_every: RENEW_EVERY,
            attempt_timeout: Duration::from_secs(60),
            deadline: None,
        }
    }
}

impl Timing {
    /// A CLI run's lease, for AWS calls whose attempts time out after `attempt_timeout`.
    pub fn cli(attempt_timeout: Duration) -> Timing {
        Timing {
            attempt_timeout,
            ..Timing::default()
        }
    }

    /// An execution's lease, held across its workers: it outlives an invocation of the longest
    /// Lambda timeout (15 minutes) and the waits and retries between invocations, and lapses this
    /// long after the state machine stopped calling.
    pub fn execution(attempt_timeout: Duration, deadline: Option<Timestamp>) -> Timing {
        Timing {
            ttl: Duration::from_secs(20 * 60),
            renew_every: Duration::from_secs(60),
            attempt_timeout,
            deadline,
        }
    }

    fn grace(&self) -> Duration {
        FRESH + self.attempt_timeout
    }
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::from_secs(60)))
        .unwrap_or(t)
}

/// Whether a process is still running on this host (Linux /proc).
fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn new_token() -> String {
    format!(
        "{:016x}{:08x}",
        fastrand::u64(..),
        std::process::id() ^ fastrand::u32(..)
    )
}

impl Lease {
    /// When no write of this holder, displaced at `now`, can land any more, and how that is
    /// known. A write is sent within [`FRESH`] of a check that saw the token and lands within
    /// the holder's attempt timeout (together `grace_ms`); a holder stops sending once its lease
    /// is past expiry, a Lambda worker at its invocation's deadline, and either stops at its next
    /// check once displaced. A process that is gone may still have left a request on the wire.
    pub fn quiet_at(&self, now: Timestamp) -> (Timestamp, String) {
        if self.released {
            return (now, "its holder released it".into());
        }
        let grace = Duration::from_millis(self.grace_ms);
        let (last, why) = match (&self.kind, self.workers_until) {
            (HolderKind::Lambda { .. }, Some(until)) if until < now.min(self.expires_at) => {
                (until, format!("its last invocation's deadline ({until})"))
            }
            _ if self.expires_at < now => (self.expires_at, "its expiry".to_string()),
            _ => (
                now,
                "this take-over: it stops at its next token check".to_string(),
            ),
        };
        let quiet = plus(last, grace);
        let how = if quiet <= now {
            format!(
                "proved stopped: {why} was more than {} ms ago, the most a write it sent could \
                 take to land",
                self.grace_ms
            )
        } else {
            format!(
                "waited until {quiet}: {} ms after {why}, the most a write it sent could take to \
                 land",
                self.grace_ms
            )
        };
        (quiet.max(now), how)
    }
}

/// The lease `taker` writes over `held` (`None`: there is none).
fn fresh_lease(
    table: &str,
    execution_id: &str,
    held: Option<&Lease>,
    timing: &Timing,
    now: Timestamp,
) -> Lease {
    Lease {
        table: table.to_string(),
        execution_id: execution_id.to_string(),
        holder: Operator::current(),
        acquired_at: now,
        expires_at: plus(now, timing.ttl),
        token: new_token(),
        fence: held.map_or(0, |l| l.fence) + 1,
        kind: HolderKind::of(timing.deadline),
        workers_until: timing.deadline,
        grace_ms: timing.grace().as_millis() as u64,
        released: false,
    }
}

/// Waits until the displaced holder's writes can no longer land; returns what it waited for.
async fn settle(displaced: &Lease, now: Timestamp) -> String {
    let (at, why) = displaced.quiet_at(now);
    let wait = Timestamp::now().duration_until(at);
    if wait.is_positive() {
        let wait = Duration::try_from(wait).unwrap_or_default();
        tracing::warn!(table = %displaced.table, ?wait, "waiting for the displaced holder's last writes: {why}");
        tokio::time::sleep(wait).await;
    }
    why
}

/// Takes the lease on `table` for `execution_id` as this process. A live lease is refused
/// unless `break_lock`; an expired one, or one of this execution whose process on this host is
/// gone, is taken over. Returns the guard and, when an earlier holder was displaced, a sentence
/// for the journal saying so and how its writes were waited out.
pub async fn acquire(
    journal: Arc<dyn Journal>,
    table: &str,
    execution_id: &str,
    break_lock: bool,
    timing: Timing,
) -> Result<(LeaseGuard, Option<String>)> {
    for _ in 0..5 {
        let base = Instant::now();
        let now = Timestamp::now();
        let current = journal.read_lease(table).await?;
        let held = current.as_ref().map(|(l, _)| l);
        let note = match held {
            None => None,
            Some(h) if h.released => None,
            Some(h) => {
                let who = h.who(now);
                let me = Operator::current();
                let dead_here = h.execution_id == execution_id
                    && h.kind == HolderKind::Cli
                    && h.holder.host == me.host
                    && h.holder.pid != me.pid
                    && !pid_alive(h.holder.pid);
                if h.expires_at < now {
                    Some(format!("took over the lease on {table} of {who}"))
                } else if dead_here {
                    Some(format!(
                        "took over the lease on {table} of {who}, whose process is gone"
                    ))
                } else if break_lock {
                    Some(format!(
                        "LEASE BROKEN by the operator (--break-lock) on {table}; it was {who}"
                    ))
                } else {
                    return Err(refusal(table, h, now, "pass --break-lock"));
                }
            }
        };
        let lease = fresh_lease(table, execution_id, held, &timing, now);
        if journal
            .swap_lease(table, Some(&lease), current.as_ref().map(|(_, v)| *v))
            .await?
        {
            let note = match (note, held) {
                (Some(n), Some(h)) => Some(format!("{n}; {}", settle(h, now).await)),
                (n, _) => n,
            };
            if let Some(n) = &note {
                tracing::warn!("{n}");
            }
            let guard = LeaseGuard::held(journal, lease, base, timing);
            return Ok((guard, note));
        }
    }
    Err(Error::invalid(
        "table",
        format!("{table}: the lease kept changing under us; another run is starting. Try again"),
    ))
}

/// The refusal of a live lease, naming its holder and how long it has left.
fn refusal(table: &str, held: &Lease, now: Timestamp, otherwise: &str) -> Error {
    Error::invalid(
        "table",
        format!(
            "{table} is being changed by {}; one writer at a time. Wait for it (dynamo-dr status \
             {}), or, if it is dead, {otherwise}",
            held.who(now),
            held.execution_id
        ),
    )
}

/// Takes or joins the lease on `table` as execution `execution_id`'s own, not this process's:
/// for an execution that short-lived workers (Lambda invocations) advance in turn and at once.
/// A worker joining keeps the execution's token and pushes `workers_until` to its deadline. A
/// live lease of a CLI process or of another execution is refused; an expired one is taken
/// over once its holder's writes can no longer land. A worker ends with [`LeaseGuard::detach`],
/// the execution's end with [`LeaseGuard::release`].
pub async fn hold_for_execution(
    journal: Arc<dyn Journal>,
    table: &str,
    execution_id: &str,
    timing: Timing,
) -> Result<(LeaseGuard, Option<String>)> {
    for attempt in 0..20u32 {
        let base = Instant::now();
        let now = Timestamp::now();
        let current = journal.read_lease(table).await?;
        let held = current.as_ref().map(|(l, _)| l);
        let (lease, displaced) = match held {
            Some(h)
                if !h.is_free(now)
                    && h.execution_id == execution_id
                    && matches!(h.kind, HolderKind::Lambda { .. }) =>
            {
                let mut joined = h.clone();
                joined.expires_at = plus(now, timing.ttl);
                joined.workers_until = h.workers_until.max(timing.deadline);
                (joined, None)
            }
            Some(h) if !h.is_free(now) => {
                return Err(refusal(
                    table,
                    h,
                    now,
                    "stop it and let its lease lapse, or `dynamo-dr resume --break-lock` it from \
                     the CLI",
                ));
            }
            _ => (
                fresh_lease(table, execution_id, held, &timing, now),
                held.filter(|h| !h.released),
            ),
        };
        if !journal
            .swap_lease(table, Some(&lease), current.as_ref().map(|(_, v)| *v))
            .await?
        {
            // Another worker of this execution renewed it first, or another run took it.
            tokio::time::sleep(Duration::from_millis(fastrand::u64(
                0..50 << attempt.min(4),
            )))
            .await;
            continue;
        }
        let note = match displaced {
            Some(h) => {
                let who = h.who(now);
                Some(format!(
                    "took over the expired lease on {table} of {who}; {}",
                    settle(h, now).await
                ))
            }
            None => None,
        };
        let guard = LeaseGuard::held(journal, lease, base, timing);
        return Ok((guard, note));
    }
    Err(Error::Journal(format!(
        "{table}: the lease kept changing under this worker; Step Functions retries the step"
    )))
}

/// The check of a holder's token before each write, shared by everything that writes for it.
pub struct Fence {
    journal: Arc<dyn Journal>,
    table: String,
    token: String,
    number: u64,
    lost: AtomicBool,
    /// When the last read that showed our token was sent.
    checked: tokio::sync::Mutex<Option<Instant>>,
    /// Until when (ms after `base`) the last successful write of the lease holds it for us.
    held_until: AtomicU64,
    base: Instant,
    timing: Timing,
}

impl Fence {
    /// The fencing number, logged with each write.
    pub fn number(&self) -> u64 {
        self.number
    }

    fn stale(&self, now: String) -> Error {
        self.lost.store(true, Ordering::SeqCst);
        Error::Fenced {
            table: self.table.clone(),
            mine: self.number,
            now,
        }
    }

    /// Fails once the lease's token is not ours, so this holder stops writing; also once
    /// renewals have failed for so long that the lease has less than one renewal period left
    /// (another writer may take it when it lapses). Reads the lease consistently unless a read
    /// sent less than [`FRESH`] ago showed our token; concurrent callers share one read.
    pub async fn check(&self) -> Result<()> {
        let held_until = Duration::from_millis(self.held_until.load(Ordering::SeqCst));
        let elapsed = self.base.elapsed();
        if elapsed + self.timing.renew_every >= held_until {
            return Err(Error::Journal(format!(
                "the lease on {} could not be renewed for {:?} and is about to lapse, when another \
                 run could take it; this run stopped writing. Check the journal is reachable, \
                 then `dynamo-dr resume` continues from the checkpoints",
                self.table,
                elapsed.saturating_sub(held_until.saturating_sub(self.timing.ttl))
            )));
        }
        if self.lost.load(Ordering::SeqCst) {
            return Err(self.stale("held by another writer".into()));
        }
        let mut checked = self.checked.lock().await;
        if checked.is_some_and(|t| t.elapsed() < FRESH) {
            return Ok(());
        }
        let sent = Instant::now();
        match self.journal.read_lease(&self.table).await? {
            Some((l, _)) if l.token == self.token && !l.released => {
                *checked = Some(sent);
                Ok(())
            }
            Some((l, _)) => Err(self.stale(l.who(Timestamp::now()))),
            None => Err(self.stale("released".into())),
        }
    }
}

/// A held lease. Renewed in the background; released by [`LeaseGuard::release`].
pub struct LeaseGuard {
    journal: Arc<dyn Journal>,
    table: String,
    fence: Arc<Fence>,
    renewer: tokio::task::JoinHandle<()>,
}

/// What the renewer shares with the guard.
struct Renewal {
    fence: Arc<Fence>,
    timing: Timing,
}

/// Renews the lease while its token is ours: a read and a compare-and-swap, so that what other
/// workers of the execution wrote (their deadlines) is kept.
async fn renew(journal: Arc<dyn Journal>, table: String, r: Renewal) {
    loop {
        tokio::time::sleep(r.timing.renew_every).await;
        // Measured from before the write: the lease holds at least this long once it lands.
        let sent = r.fence.base.elapsed();
        let renewed = async {
            let (mut lease, v) = match journal.read_lease(&table).await? {
                Some((l, v)) if l.token == r.fence.token && !l.released => (l, v),
                Some((l, _)) => return Err(r.fence.stale(l.who(Timestamp::now()))),
                None => return Err(r.fence.stale("released".into())),
            };
            lease.expires_at = plus(Timestamp::now(), r.timing.ttl);
            lease.workers_until = lease.workers_until.max(r.timing.deadline);
            let swapped = journal.swap_lease(&table, Some(&lease), Some(v)).await?;
            Ok(swapped)
        };
        match renewed.await {
            Ok(true) => {
                let until = (sent + r.timing.ttl).as_millis() as u64;
                r.fence.held_until.fetch_max(until, Ordering::SeqCst);
            }
            // Another worker of the execution wrote it meanwhile: read again next time.
            Ok(false) => {}
            Err(e @ Error::Fenced { .. }) => {
                tracing::error!(table = %table, error = %e, "the lease was taken by another writer; stopping");
                return;
            }
            // Retried; writes stop (LeaseGuard::check) before the last renewal lapses.
            Err(e) => tracing::warn!(table = %table, error = %e, "lease renewal failed; retrying"),
        }
    }
}

impl LeaseGuard {
    /// The guard of `lease`, just written, renewed from now on.
    fn held(journal: Arc<dyn Journal>, lease: Lease, base: Instant, timing: Timing) -> LeaseGuard {
        let fence = Arc::new(Fence {
            journal: journal.clone(),
            table: lease.table.clone(),
            token: lease.token.clone(),
            number: lease.fence,
            lost: AtomicBool::new(false),
            checked: tokio::sync::Mutex::new(Some(base)),
            held_until: AtomicU64::new(timing.ttl.as_millis() as u64),
            base,
            timing,
        });
        let table = lease.table.clone();
        let renewer = tokio::spawn(renew(
            journal.clone(),
            table.clone(),
            Renewal {
                fence: fence.clone(),
                timing,
            },
        ));
        LeaseGuard {
            journal,
            table,
            fence,
            renewer,
        }
    }

    /// The fence every write of this holder is checked against.
    pub fn fence(&self) -> Arc<Fence> {
        self.fence.clone()
    }

    /// See [`Fence::check`].
    pub async fn check(&self) -> Result<()> {
        self.fence.check().await
    }

    /// Stops renewing without giving the lease up: the execution's next worker renews it.
    pub fn detach(self) {
        self.renewer.abort();
    }

    /// Gives the lease up, keeping its item (and fencing number) for the next holder; a lease
    /// another writer holds now is left alone.
    pub async fn release(self) -> Result<()> {
        self.renewer.abort();
        let _ = self.renewer.await;
        let Some((mut lease, v)) = self.journal.read_lease(&self.table).await? else {
            return Ok(());
        };
        if lease.token != self.fence.token || lease.released {
            return Ok(());
        }
        lease.released = true;
        lease.expires_at = Timestamp::now();
        self.journal
            .swap_lease(&self.table, Some(&lease), Some(v))
            .await?;
        Ok(())
    }
}
