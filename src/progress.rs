//! What the operator sees while a phase runs: a live counter on a terminal, periodic log lines
//! otherwise (CI logs, `nohup`, a pipe), so a long copy is never silent.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(10);

/// One display for every live counter: the tables of a multi-table restore each get a line
/// instead of overwriting each other's.
fn bars() -> &'static MultiProgress {
    static BARS: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// Where log lines go on stderr: written while the live bars are cleared, which are then drawn
/// again below them, so the screen never keeps stale copies of a bar (indicatif's
/// `MultiProgress::suspend`).
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        bars().suspend(|| std::io::stderr().write(buf))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        bars().suspend(|| std::io::stderr().write_all(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A counter for one phase. Cheap to clone; every segment adds to the same one.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    phase: String,
    /// False for a wait, which has no item counts to show.
    counts_items: bool,
    count: AtomicU64,
    message: Mutex<String>,
    started: Instant,
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = &self.ticker {
            t.abort();
        }
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            bars().remove(bar);
        }
    }
}

impl Progress {
    /// Starts counting items for `phase`.
    pub fn items(phase: &str) -> Progress {
        Self::items_of(phase, None)
    }

    /// Starts counting items for `phase`, of about `approx` (DescribeTable's count, which may be
    /// hours old, so it is shown as approximate and never as a percentage).
    pub fn items_of(phase: &str, approx: Option<u64>) -> Progress {
        let template = match approx {
            Some(n) if n > 0 => format!(
                "{{spinner}} {{prefix}}: {{human_pos}} of ~{} items ({{rate}}) [{{elapsed}}] {{msg}}",
                indicatif::HumanCount(n)
            ),
            _ => "{spinner} {prefix}: {human_pos} items ({rate}) [{elapsed}] {msg}".into(),
        };
        Self::new(phase, &template, true)
    }

    /// A spinner for waiting on AWS; the message carries the state.
    pub fn waiting(phase: &str) -> Progress {
        Self::new(phase, "{spinner} {prefix} [{elapsed}] {msg}", false)
    }

    fn new(phase: &str, template: &str, counts_items: bool) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = bars().add(ProgressBar::no_length());
            if let Ok(style) = ProgressStyle::with_template(template) {
                // Whole items per second: a fraction of an item says nothing.
                bar.set_style(style.with_key(
                    "rate",
                    |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.0}/s", s.per_sec());
                    },
                ));
            }
            bar.set_prefix(phase.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        tracing::info!(phase, "started");
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let ticker = match (&bar, tokio::runtime::Handle::try_current()) {
                (None, Ok(handle)) => {
                    let weak = weak.clone();
                    Some(handle.spawn(async move {
                        let mut tick = tokio::time::interval(LOG_EVERY);
                        tick.tick().await;
                        loop {
                            tick.tick().await;
                            let Some(inner) = weak.upgrade() else { return };
                            inner.log_line();
                        }
                    }))
                }
                _ => None,
            };
            Inner {
                phase: phase.to_string(),
                counts_items,
                count: AtomicU64::new(0),
                message: Mutex::new(String::new()),
                started: Instant::now(),
                bar,
                ticker,
            }
        });
        Progress { inner }
    }

    pub fn add(&self, n: u64) {
        self.inner.count.fetch_add(n, Ordering::Relaxed);
        if let Some(bar) = &self.inner.bar {
            bar.inc(n);
        }
    }

    /// Replaces the free-text part of the display, e.g. a table's state while waiting.
    pub fn set_message(&self, msg: &str) {
        if let Some(bar) = &self.inner.bar {
            bar.set_message(msg.to_string());
        }
        *self.inner.message.lock().unwrap_or_else(|p| p.into_inner()) = msg.to_string();
    }

    pub fn count(&self) -> u64 {
        self.inner.count.load(Ordering::Relaxed)
    }

    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }

    /// Ends the phase with a log line carrying its totals.
    pub fn finish(self) -> (u64, Duration) {
        let (n, d) = (self.count(), self.elapsed());
        let seconds = format!("{:.1}", d.as_secs_f64());
        // A wait, or a phase with nothing to do, has no item counts to report.
        if n == 0 {
            tracing::info!(phase = %self.inner.phase, seconds, "finished");
        } else {
            tracing::info!(
                phase = %self.inner.phase,
                items = n,
                seconds,
                items_per_sec = format!("{:.0}", rate(n, d)),
                "finished"
            );
        }
        (n, d)
    }
}

impl Inner {
    fn log_line(&self) {
        let n = self.count.load(Ordering::Relaxed);
        let d = self.started.elapsed();
        let state = self
            .message
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !self.counts_items {
            tracing::info!(phase = %self.phase, elapsed_s = d.as_secs(), %state, "waiting");
            return;
        }
        tracing::info!(
            phase = %self.phase,
            items = n,
            elapsed_s = d.as_secs(),
            items_per_sec = format!("{:.0}", rate(n, d)),
            %state,
            "progress"
        );
    }
}

pub fn rate(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}
