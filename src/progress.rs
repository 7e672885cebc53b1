//! What the operator sees while a phase runs: a live counter on a terminal, periodic log lines
//! otherwise (CI logs, `nohup`, a pipe), so a long copy is never silent.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

const LOG_EVERY: Duration = Duration::from_secs(10);

/// One display for every live counter: the tables of a multi-table restore each get a line
/// instead of overwriting each other's.
fn bars() -> &'static MultiProgress {
    static BARS: std::sync::OnceLock<MultiProgress> = std::sync::OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A counter for one phase. Cheap to clone; every segment adds to the same one.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    phase: String,
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
        Self::new(
            phase,
            "{spinner} {prefix}: {human_pos} items ({per_sec}) [{elapsed}] {msg}",
        )
    }

    /// A spinner for waiting on AWS; the message carries the state.
    pub fn waiting(phase: &str) -> Progress {
        Self::new(phase, "{spinner} {prefix} [{elapsed}] {msg}")
    }

    fn new(phase: &str, template: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = bars().add(ProgressBar::no_length());
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
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
        tracing::info!(
            phase = %self.inner.phase,
            items = n,
            seconds = format!("{:.1}", d.as_secs_f64()),
            items_per_sec = format!("{:.0}", rate(n, d)),
            "finished"
        );
        (n, d)
    }
}

impl Inner {
    fn log_line(&self) {
        let n = self.count.load(Ordering::Relaxed);
        let d = self.started.elapsed();
        tracing::info!(
            phase = %self.phase,
            items = n,
            elapsed_s = d.as_secs(),
            items_per_sec = format!("{:.0}", rate(n, d)),
            state = %self.message.lock().unwrap_or_else(|p| p.into_inner()),
            "progress"
        );
    }
}

pub fn rate(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}
