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
pub const FRESH: Duration = Duration::from_secs(2);

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
            attempt_timeout: Duration::from_secs(crate::aws::DEFAULT_ATTEMPT_TIMEOUT_SECONDS),
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

/// Times another machine wrote (an expiry, an invocation's deadline) are trusted only this much
/// later: two machines' clocks may differ by as much.
pub const CLOCK_SKEW: Duration = Duration::from_secs(2);
/// How long a request a killed process left on the wire may still take to be served.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(5);

impl Lease {
    /// Its CLI process is gone: it ran on this host, and its pid is no longer alive.
    fn process_gone(&self) -> bool {
        let me = Operator::current();
        self.kind == HolderKind::Cli
            && self.holder.host == me.host
            && self.holder.pid != me.pid
            && !pid_alive(self.holder.pid)
    }

    /// When no write of this holder, displaced at `now`, can land any more, and how that is
    /// known. A write is sent within [`FRESH`] of a check that saw the token and lands within
    /// the holder's attempt timeout (together `grace_ms`). A holder stops sending once it
    /// released the lease or (a renewal period before) the lease expired, a Lambda worker at its
    /// invocation's deadline, a killed process at once; any of them at its next token check
    /// once displaced.
    pub fn quiet_at(&self, now: Timestamp) -> (Timestamp, String) {
        let grace = Duration::from_millis(self.grace_ms);
        let after = |t: Timestamp| plus(t, CLOCK_SKEW + grace);
        let (quiet, why) = match (&self.kind, self.workers_until) {
            (HolderKind::Lambda { .. }, Some(until)) if until < now.min(self.expires_at) => (
                after(until),
                format!("its last invocation's deadline ({until})"),
            ),
            _ if self.released => match self.in_flight_until {
                Some(until) => (
                    plus(until, CLOCK_SKEW),
                    "its release after a failure, with writes perhaps in flight".to_string(),
                ),
                None => (now, "its release once every write was answered".to_string()),
            },
            _ if self.expires_at < now => (after(self.expires_at), "its expiry".to_string()),
            _ if self.process_gone() => (
                plus(now, ORPHAN_GRACE.min(grace)),
                format!("the take-over of pid {}, which is gone", self.holder.pid),
            ),
            _ => (
                plus(now, grace),
                "the take-over: it stops at its next token check".to_string(),
            ),
        };
        let how = if quiet <= now {
            format!(
                "proved stopped: {why} was long enough ago for any write it sent to have landed"
            )
        } else {
            format!(
                "waited until {quiet} after {why}, for any write it sent to land (a write lands \
                 within {} ms of its token check)",
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
        in_flight_until: None,
    }
}

/// After a released lease, waits (rarely: a release just now) until the writes its holder's
/// aborted tasks may have left in flight have landed; a sentence when it waited.
async fn settle_released(released: &Lease) -> Option<String> {
    let (at, _) = released.quiet_at(Timestamp::now());
    (at > Timestamp::now()).then_some(())?;
    Some(format!(
        "the lease on {} was released just before; {}",
        released.table,
        settle(released).await
    ))
}

/// Waits until the displaced holder's writes can no longer land, measured from after the
/// take-over was written; returns what it waited for.
async fn settle(displaced: &Lease) -> String {
    let (at, why) = displaced.quiet_at(Timestamp::now());
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
                if h.expires_at < now {
                    Some(format!("took over the lease on {table} of {who}"))
                } else if h.execution_id == execution_id && h.process_gone() {
                    Some(format!(
                        "took over the lease on {table} of {who}, whose process is gone"
                    ))
                } else if break_lock {
                    Some(format!(
                        "LEASE BROKEN by the operator (--break-lock) on {table}; it was {who}"
                    ))
                } else {
                    return Err(refusal(table, h, now, false));
                }
            }
        };
        let lease = fresh_lease(table, execution_id, held, &timing, now);
        if !swap_or_ours(&journal, &lease, current.as_ref().map(|(_, v)| *v)).await? {
            continue;
        }
        // Renewed from now on: the wait below may outlast the lease's time to live.
        let guard = LeaseGuard::held(journal, lease, base, timing);
        let note = match (note, held) {
            (Some(n), Some(h)) => Some(format!("{n}; {}", settle(h).await)),
            (None, Some(h)) => settle_released(h).await,
            (n, None) => n,
        };
        if let Some(n) = &note {
            tracing::warn!("{n}");
        }
        return Ok((guard, note));
    }
    Err(Error::invalid(
        "table",
        format!("{table}: the lease kept changing under us; another run is starting. Try again"),
    ))
}

/// Writes `lease` over version `expected`; true also when the write landed but its answer was
/// lost (the journal's retry then fails its condition): the lease read back is ours.
async fn swap_or_ours(
    journal: &Arc<dyn Journal>,
    lease: &Lease,
    expected: Option<u64>,
) -> Result<bool> {
    if journal
        .swap_lease(&lease.table, Some(lease), expected)
        .await?
    {
        return Ok(true);
    }
    Ok(journal
        .read_lease(&lease.table)
        .await?
        .is_some_and(|(l, _)| l.token == lease.token && l.fence == lease.fence))
}

/// The refusal of a live lease, naming its holder and how long it has left.
fn refusal(table: &str, held: &Lease, now: Timestamp, by_lambda: bool) -> Error {
    let otherwise = if table.starts_with(super::ENVIRONMENT_LEASE) {
        "wait until its lease expires (60 s after it stopped renewing) and run the change again"
    } else if by_lambda {
        "wait until its lease expires; then start the state machine again with the same input"
    } else if matches!(held.kind, HolderKind::Lambda { .. }) {
        "stop its state machine's execution, then `dynamo-dr resume --break-lock` it from the CLI"
    } else {
        "pass --break-lock"
    };
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
                return Err(refusal(table, h, now, true));
            }
            _ => (fresh_lease(table, execution_id, held, &timing, now), held),
        };
        let expected = current.as_ref().map(|(_, v)| *v);
        // A fresh token is ours alone, so a lost answer is told by reading it back; a joined
        // one is every worker's, so only the write itself says it landed.
        let joined = held.is_some_and(|h| h.token == lease.token);
        let swapped = if joined {
            journal.swap_lease(table, Some(&lease), expected).await?
        } else {
            swap_or_ours(&journal, &lease, expected).await?
        };
        if !swapped {
            // Another worker of this execution renewed it first, or another run took it.
            tokio::time::sleep(Duration::from_millis(fastrand::u64(
                0..50 << attempt.min(4),
            )))
            .await;
            continue;
        }
        let guard = LeaseGuard::held(journal, lease, base, timing);
        let note = match displaced {
            Some(h) if !h.released => Some(format!(
                "took over the expired lease on {table} of {}; {}",
                h.who(now),
                settle(h).await
            )),
            Some(h) => settle_released(h).await,
            None => None,
        };
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
        // A read that took longer than FRESH vouches for nothing: read again.
        for _ in 0..3 {
            let sent = Instant::now();
            match self.journal.read_lease(&self.table).await? {
                Some((l, _)) if l.token == self.token && !l.released => {
                    if sent.elapsed() < FRESH {
                        *checked = Some(sent);
                        return Ok(());
                    }
                }
                Some((l, _)) => return Err(self.stale(l.who(Timestamp::now()))),
                None => return Err(self.stale("released".into())),
            }
        }
        Err(Error::Journal(format!(
            "the lease on {} could not be read back within {FRESH:?} three times, so this \
             writer cannot prove it still holds it and stopped writing. Check the journal is \
             reachable, then `dynamo-dr resume` continues from the checkpoints",
            self.table
        )))
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

    /// Gives the lease up once every write was answered, keeping its item (and fencing number)
    /// for the next holder; a lease another writer holds now is left alone.
    pub async fn release(self) -> Result<()> {
        self.give_up(false).await
    }

    /// Gives the lease up after a failure: writes of aborted tasks may still be in flight, so
    /// the next holder waits out their grace.
    pub async fn release_after_failure(self) -> Result<()> {
        self.give_up(true).await
    }

    async fn give_up(self, aborted: bool) -> Result<()> {
        self.renewer.abort();
        let _ = self.renewer.await;
        let Some((mut lease, v)) = self.journal.read_lease(&self.table).await? else {
            return Ok(());
        };
        if lease.token != self.fence.token || lease.released {
            return Ok(());
        }
        let now = Timestamp::now();
        lease.released = true;
        lease.expires_at = now;
        // A request its aborted tasks dropped is no longer retried: the server serves it or not,
        // within ORPHAN_GRACE, as for a killed process.
        let grace = Duration::from_millis(lease.grace_ms).min(ORPHAN_GRACE);
        lease.in_flight_until = aborted.then(|| plus(now, grace));
        self.journal
            .swap_lease(&self.table, Some(&lease), Some(v))
            .await?;
        Ok(())
    }
}
