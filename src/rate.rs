//! Rate caps shared by every segment of a run, and the adaptive slow-down when DynamoDB throttles.
//!
//! A token bucket that may go into debt: a caller takes the tokens for a request up front (or
//! pays after a scan page, whose size it cannot know before) and sleeps until the debt is paid.
//! Concurrent callers queue behind each other's debt, so the achieved rate converges on the cap
//! whatever the number of segments. `governor` was not used because AIMD needs to change the
//! rate at run time, which its quotas do not allow.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;

/// What a cap counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    /// Items read or written per second.
    Items,
    /// Read or write capacity units per second, as DynamoDB bills them.
    CapacityUnits,
}

/// `--max-write-rate` / `--max-read-rate`: `2000` or `2000/s` items per second, or `800cu` (also
/// `800wcu`, `800rcu`) capacity units per second.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub struct RateCap {
    pub per_second: f64,
    pub unit: RateUnit,
}

impl FromStr for RateCap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let (number, unit) = if let Some(n) = ["wcu", "rcu", "cu"]
            .iter()
            .find_map(|suffix| t.strip_suffix(suffix))
        {
            (n, RateUnit::CapacityUnits)
        } else {
            let n = t
                .strip_suffix("/s")
                .or_else(|| t.strip_suffix("items"))
                .unwrap_or(&t);
            (n, RateUnit::Items)
        };
        match number.trim().parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 1.0 => Ok(RateCap {
                per_second: n,
                unit,
            }),
            _ => Err(format!(
                "{s:?} is not a rate: give items per second (2000) or capacity units per second \
                 (800cu), at least 1"
            )),
        }
    }
}

impl TryFrom<toml::Value> for RateCap {
    type Error = String;

    fn try_from(v: toml::Value) -> Result<Self, Self::Error> {
        match v {
            toml::Value::Integer(n) => n.to_string().parse(),
            toml::Value::Float(n) => n.to_string().parse(),
            toml::Value::String(s) => s.parse(),
            other => Err(format!(
                "{other} is not a rate: give items per second (2000) or \"800cu\""
            )),
        }
    }
}

impl fmt::Display for RateCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit {
            RateUnit::Items => write!(f, "{} items/s", self.per_second),
            RateUnit::CapacityUnits => write!(f, "{} capacity units/s", self.per_second),
        }
    }
}

/// A token bucket with AIMD. Every second, if some requests were throttled, the rate drops by
/// half the throttled fraction (all throttled: halved); if none were, it climbs back by a
/// twentieth of the ceiling. Judging whole seconds rather than single throttles keeps the many
/// requests in flight from collapsing the rate together, as one congestion event. The rate never
/// drops below a tenth of the cap (or of the best second achieved, uncapped): below that, the
/// retries' own exponential backoff spaces the requests out.
#[derive(Debug)]
pub struct Limiter {
    cap: Option<RateCap>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Tokens per second now; infinite while uncapped and never throttled.
    rate: f64,
    /// May be negative: debt that callers wait out.
    balance: f64,
    refilled: Instant,
    /// Additive increase per window; for an uncapped run, set at its first decrease.
    step: f64,
    window_start: Instant,
    window_tokens: f64,
    window_requests: u64,
    window_throttled: u64,
    /// The best second achieved, for an uncapped run's floor.
    peak: f64,
    throttles: u64,
}

const WINDOW: Duration = Duration::from_secs(1);

/// No run slows below this many tokens per second.
const FLOOR: f64 = 10.0;

impl Limiter {
    pub fn new(cap: Option<RateCap>) -> Limiter {
        let now = Instant::now();
        let rate = cap.map_or(f64::INFINITY, |c| c.per_second);
        Limiter {
            cap,
            state: Mutex::new(State {
                rate,
                balance: burst(rate),
                refilled: now,
                step: cap.map_or(0.0, |c| c.per_second / 20.0),
                window_start: now,
                window_tokens: 0.0,
                window_requests: 0,
                window_throttled: 0,
                peak: 0.0,
                throttles: 0,
            }),
        }
    }

    pub fn unlimited() -> Limiter {
        Limiter::new(None)
    }

    pub fn cap(&self) -> Option<RateCap> {
        self.cap
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tokens `items` items and `units` capacity units are worth under this cap.
    fn tokens(&self, items: f64, units: f64) -> f64 {
        match self.cap.map(|c| c.unit) {
            Some(RateUnit::CapacityUnits) => units,
            _ => items,
        }
    }

    fn update(&self) -> std::sync::MutexGuard<'_, State> {
        let mut s = self.lock();
        let ceiling = self.cap.map_or(f64::INFINITY, |c| c.per_second);
        s.refill();
        s.judge_window(ceiling);
        s
    }

    /// Takes the tokens for a request and waits until they are paid for.
    pub async fn take(&self, items: u64, units: f64) {
        let tokens = self.tokens(items as f64, units);
        let wait = {
            let mut s = self.update();
            s.charge(tokens);
            s.debt_wait()
        };
        if let Some(d) = wait {
            tokio::time::sleep(d).await;
        }
    }

    /// Waits until earlier takers' debt is paid, before a request whose cost is known only after
    /// it (a scan page); pay with [`Limiter::charge`].
    pub async fn ready(&self) {
        let wait = self.update().debt_wait();
        if let Some(d) = wait {
            tokio::time::sleep(d).await;
        }
    }

    /// Pays (or, negative, refunds) tokens without waiting.
    pub fn charge(&self, items: f64, units: f64) {
        let tokens = self.tokens(items, units);
        self.update().charge(tokens);
    }

    /// A request went through.
    pub fn succeeded(&self) {
        self.update().window_requests += 1;
    }

    /// DynamoDB throttled a request or left items of it unprocessed.
    pub fn throttled(&self) {
        let mut s = self.update();
        s.window_requests += 1;
        s.window_throttled += 1;
        s.throttles += 1;
    }

    /// The rate allowed now (tokens per second); infinite when uncapped and never throttled.
    pub fn rate(&self) -> f64 {
        self.update().rate
    }

    pub fn throttles(&self) -> u64 {
        self.lock().throttles
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::unlimited()
    }
}

/// Tokens a full bucket holds: 50 ms at the rate, so a start or a pause cannot burst far above it.
fn burst(rate: f64) -> f64 {
    if rate.is_finite() {
        (rate / 20.0).max(1.0)
    } else {
        0.0
    }
}

impl State {
    fn refill(&mut self) {
        let now = Instant::now();
        if self.rate.is_finite() {
            let dt = now.duration_since(self.refilled).as_secs_f64();
            self.balance = (self.balance + dt * self.rate).min(burst(self.rate));
        }
        self.refilled = now;
    }

    /// At the end of each window: multiplicative decrease by the throttled fraction, or
    /// additive increase.
    fn judge_window(&mut self, ceiling: f64) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.window_start);
        if self.window_requests == 0 && self.window_tokens == 0.0 {
            // Nothing happened yet (the run is still starting): no evidence either way.
            self.window_start = now;
            self.window_tokens = 0.0;
            return;
        }
        if elapsed < WINDOW {
            return;
        }
        let achieved = self.window_tokens / elapsed.as_secs_f64();
        self.peak = self.peak.max(achieved);
        if self.window_throttled > 0 {
            let floor = if ceiling.is_finite() {
                ceiling
            } else {
                self.peak
            } / 10.0;
            let from = if self.rate.is_finite() {
                self.rate
            } else {
                self.step = (achieved / 20.0).max(1.0);
                achieved
            };
            let fraction = self.window_throttled as f64 / self.window_requests.max(1) as f64;
            self.rate = (from * (1.0 - fraction / 2.0)).max(floor.max(FLOOR));
            self.balance = self.balance.min(burst(self.rate));
            tracing::debug!(
                rate = self.rate,
                throttled = fraction,
                "throttled: slowing down"
            );
        } else if self.rate < ceiling {
            self.rate = (self.rate + self.step).min(ceiling);
        }
        self.window_start = now;
        self.window_tokens = 0.0;
        self.window_requests = 0;
        self.window_throttled = 0;
    }

    fn charge(&mut self, tokens: f64) {
        if self.rate.is_finite() {
            self.balance -= tokens;
        }
        self.window_tokens += tokens;
    }

    fn debt_wait(&self) -> Option<Duration> {
        (self.rate.is_finite() && self.balance < 0.0)
            .then(|| Duration::from_secs_f64(-self.balance / self.rate))
    }
}

/// Seconds of its rate a key range's pace may save up after a pause: in any second it asks for
/// at most `1 + PACE_CREDIT_SECONDS` times its rate.
pub const PACE_CREDIT_SECONDS: f64 = 0.1;

/// How often slow start doubles a pace. A throttle answers within one request, so a quarter
/// second is many answers; a small table's whole copy takes a few seconds, and a climb of one
/// doubling a second would spend most of them below what the table takes.
const SLOW_START_STEP: Duration = Duration::from_millis(250);

/// The pace of one key range (one scan segment): a token bucket whose rate starts at the
/// segment's share of what the table takes at once, doubles each calm quarter second until
/// DynamoDB first throttles it (slow start; that first throttle halves it, back to the last pace
/// that drew none), falls by a fifth when DynamoDB throttles that key range (at
/// most once per half second: the requests in flight all meet the same hot partition), and
/// after the first throttle climbs back each calm second by a fiftieth of its start or a
/// twentieth of its rate, whichever is more, up to its ceiling (its share of the table's
/// maximum, else a partition's most). A throttle of one key range so slows only that segment;
/// the run's shared [`Limiter`] answers table-level throttles.
#[derive(Debug)]
pub struct KeyRangePace {
    state: Mutex<Pace>,
}

#[derive(Debug)]
struct Pace {
    rate: f64,
    start: f64,
    ceiling: f64,
    floor: f64,
    step: f64,
    balance: f64,
    refilled: Instant,
    last_throttle: Option<Instant>,
    last_step: Instant,
    throttles: u64,
}

impl KeyRangePace {
    /// Starts at `start` units per second, never above `ceiling`.
    pub fn new(start: f64, ceiling: f64) -> KeyRangePace {
        let now = Instant::now();
        // Under a small maximum shared by many segments, a segment's share is below a unit.
        let least = ceiling.clamp(0.01, 1.0);
        let start = start.clamp(least, ceiling.max(least));
        KeyRangePace {
            state: Mutex::new(Pace {
                rate: start,
                start,
                ceiling: ceiling.max(start),
                floor: (start / 20.0).max(least),
                step: (start / 50.0).max(0.1),
                balance: 0.0,
                refilled: now,
                last_throttle: None,
                last_step: now,
                throttles: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `units` and waits until they are paid for at this key range's rate.
    pub async fn take(&self, units: f64) {
        let wait = {
            let mut p = self.lock();
            let now = Instant::now();
            let dt = now.duration_since(p.refilled).as_secs_f64();
            // A little credit at most: no burst far above the rate after a pause.
            p.balance = (p.balance + dt * p.rate).min(p.rate * PACE_CREDIT_SECONDS);
            p.refilled = now;
            let slow_start = p.throttles == 0;
            let step = if slow_start { SLOW_START_STEP } else { WINDOW };
            if now.duration_since(p.last_step) >= step {
                let calm = p
                    .last_throttle
                    .is_none_or(|t| now.duration_since(t) >= WINDOW);
                if calm && slow_start {
                    // Slow start: doubling until DynamoDB first says no, so a table warmer
                    // than its stated start is found within a second or two.
                    p.rate = (p.rate * 2.0).min(p.ceiling);
                } else if calm {
                    // Additive near the start; multiplicative beyond it, so an on-demand table
                    // that has served far more than a new one is found within a minute or two.
                    p.rate = (p.rate + p.step.max(p.rate / 20.0)).min(p.ceiling);
                }
                p.last_step = now;
            }
            p.balance -= units;
            (p.balance < 0.0).then(|| Duration::from_secs_f64(-p.balance / p.rate))
        };
        if let Some(d) = wait {
            tokio::time::sleep(d).await;
        }
    }

    /// Gives back units not spent (items DynamoDB left unprocessed are paid again on retry).
    pub fn refund(&self, units: f64) {
        self.lock().balance += units;
    }

    /// DynamoDB throttled this key range.
    pub fn throttled(&self) {
        let mut p = self.lock();
        let now = Instant::now();
        p.throttles += 1;
        if p.throttles == 1 && p.rate > p.start {
            // The end of slow start: the last doubling overshot, so back to the pace before it.
            p.rate = (p.rate / 2.0).max(p.start);
            p.last_throttle = Some(now);
        } else if p
            .last_throttle
            .is_none_or(|t| now.duration_since(t) >= WINDOW / 2)
        {
            p.rate = (p.rate * 0.8).max(p.floor);
            p.last_throttle = Some(now);
            tracing::trace!(rate = p.rate, "key range throttled: slowing this segment");
        }
    }

    /// Units per second allowed now.
    pub fn rate(&self) -> f64 {
        self.lock().rate
    }

    pub fn throttles(&self) -> u64 {
        self.lock().throttles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_key_range_slows_on_its_own_throttles_and_recovers_without_them() {
        let pace = KeyRangePace::new(100.0, 1000.0);
        pace.throttled();
        assert_eq!(pace.rate(), 80.0);
        // Throttles of the same congestion, within half a second, count once.
        pace.throttled();
        assert_eq!(pace.rate(), 80.0);
        tokio::time::advance(Duration::from_millis(600)).await;
        pace.throttled();
        assert_eq!(pace.rate(), 64.0);
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(1)).await;
            pace.take(1.0).await;
        }
        assert!(
            pace.rate() > 64.0 && pace.rate() < 64.0 * 1.3,
            "{}",
            pace.rate()
        );
        // Paced: 200 units at under 100/s take over a second.
        let started = Instant::now();
        for _ in 0..200 {
            pace.take(1.0).await;
        }
        assert!(started.elapsed() > Duration::from_secs(1));
    }
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_key_range_doubles_until_its_first_throttle_and_never_passes_its_ceiling() {
        let pace = KeyRangePace::new(100.0, 1000.0);
        let mut rates = Vec::new();
        for _ in 0..5 {
            tokio::time::advance(Duration::from_millis(250)).await;
            pace.take(1.0).await;
            rates.push(pace.rate());
        }
        assert_eq!(rates, [200.0, 400.0, 800.0, 1000.0, 1000.0]);
        pace.throttled();
        assert_eq!(
            pace.rate(),
            500.0,
            "the first throttle undoes the last doubling"
        );
        tokio::time::advance(Duration::from_millis(250)).await;
        pace.take(1.0).await;
        assert_eq!(
            pace.rate(),
            500.0,
            "past slow start, a quarter second is not a step"
        );
        tokio::time::advance(Duration::from_millis(750)).await;
        pace.take(1.0).await;
        assert_eq!(
            pace.rate(),
            525.0,
            "after a throttle, the climb is additive"
        );
        pace.throttled();
        assert_eq!(pace.rate(), 420.0);
    }

    #[test]
    fn parses_items_and_capacity_units() {
        let p = |s: &str| s.parse::<RateCap>();
        assert_eq!(p("2000").unwrap().unit, RateUnit::Items);
        assert_eq!(p("2000/s").unwrap().per_second, 2000.0);
        assert_eq!(p("800wcu").unwrap().unit, RateUnit::CapacityUnits);
        assert_eq!(p("800 CU").unwrap().per_second, 800.0);
        for bad in ["", "0", "-5", "fast", "NaN", "0.5"] {
            assert!(p(bad).unwrap_err().contains("at least 1"), "{bad}");
        }
    }

    /// 8 segments taking batches of 25 at a 500 items/s cap: 10,000 items take 20 s.
    #[tokio::test(start_paused = true)]
    async fn shared_cap_paces_concurrent_takers() {
        let l = Arc::new(Limiter::new(Some("500".parse().unwrap())));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let l = l.clone();
            tasks.spawn(async move {
                for _ in 0..50 {
                    l.take(25, 0.0).await;
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let secs = start.elapsed().as_secs_f64();
        assert!((19.0..=20.5).contains(&secs), "{secs}");
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_unit_caps_count_units_not_items() {
        let l = Limiter::new(Some("100cu".parse().unwrap()));
        let start = Instant::now();
        for _ in 0..10 {
            l.take(1, 50.0).await;
        }
        let secs = start.elapsed().as_secs_f64();
        assert!((4.8..=5.1).contains(&secs), "{secs}");
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_windows_slow_down_and_quiet_ones_recover_additively() {
        let l = Limiter::new(Some("1000".parse().unwrap()));
        for _ in 0..10 {
            l.throttled();
        }
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(
            l.rate(),
            500.0,
            "all throttled: halved once for the whole window"
        );
        // A quarter throttled: down by an eighth.
        for i in 0..8 {
            if i < 2 { l.throttled() } else { l.succeeded() }
        }
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert_eq!(l.rate(), 437.5);
        for _ in 0..20 {
            l.succeeded();
            tokio::time::advance(Duration::from_millis(1001)).await;
            l.ready().await;
        }
        assert_eq!(
            l.rate(),
            1000.0,
            "back up by 50/s a second, never above the cap"
        );
        assert_eq!(l.throttles(), 12);
    }

    #[tokio::test(start_paused = true)]
    async fn uncapped_runs_flat_out_until_throttled_then_slows_from_the_achieved_rate() {
        let l = Limiter::unlimited();
        let start = Instant::now();
        for _ in 0..100 {
            l.take(25, 0.0).await;
            l.succeeded();
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        for _ in 0..100 {
            l.throttled();
        }
        tokio::time::advance(Duration::from_millis(1250)).await;
        // 2,500 items in 1.25 s: 2,000/s achieved; half the requests throttled: 1,500/s.
        assert!((l.rate() - 1500.0).abs() < 1.0, "{}", l.rate());
    }
}
