//! What the log says about slow calls: the first slow call of each operation at once, then one
//! summary per [`SLOW_SUMMARY_INTERVAL`] with the count and the worst call of each operation.
//!
//! A loaded host makes some calls slow all the time; a line per call (or per operation and
//! second) buries every other log line. The counts are exact in the metrics
//! (`solcache_slow_operations_total`); the log only has to say that it happens and how bad.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics::Operation;

/// Shortest time between two summaries of slow calls.
pub const SLOW_SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// Slow calls seen since the last line, per operation: how many and the slowest.
#[derive(Default)]
struct Window {
    /// Operations whose first slow call was logged (by [`Operation::index`]).
    announced: [bool; Operation::ALL.len()],
    count: [u64; Operation::ALL.len()],
    worst: [Duration; Operation::ALL.len()],
    /// When the last line was logged (None: never).
    last_line: Option<Instant>,
}

/// Decides when a slow call is logged and builds the line; [`crate::metrics::Metrics`] calls
/// it and hands the lines to the `log` crate.
pub struct SlowCalls {
    threshold: Duration,
    interval: Duration,
    /// Slow calls counted in the window and not logged yet: the one atomic load every call
    /// pays while there are none.
    pending: AtomicU64,
    window: Mutex<Window>,
}

impl SlowCalls {
    /// Report calls slower than `threshold`, summarised at most once per `interval`.
    pub fn new(threshold: Duration, interval: Duration) -> Self {
        SlowCalls {
            threshold,
            interval,
            pending: AtomicU64::new(0),
            window: Mutex::new(Window::default()),
        }
    }

    /// Note a call of `op` that took `elapsed` (over the threshold) at `now`. Returns the line
    /// to log: the operation's first slow call, or a summary that is due.
    pub fn slow(&self, op: Operation, elapsed: Duration, now: Instant) -> Option<String> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let i = op.index();
        if !w.announced[i] {
            w.announced[i] = true;
            w.last_line.get_or_insert(now);
            return Some(format!(
                "slow Redis operation: {} took {:.3} ms (budget {:.3} ms); later slow calls are summarised every {} s",
                op.name(),
                ms(elapsed),
                ms(self.threshold),
                self.interval.as_secs_f64(),
            ));
        }
        w.count[i] += 1;
        w.worst[i] = w.worst[i].max(elapsed);
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.summary_if_due(&mut w, now)
    }

    /// The summary of the slow calls not logged yet, when the interval since the last line has
    /// passed; cheap (one atomic load) while there are none.
    pub fn due(&self, now: impl FnOnce() -> Instant) -> Option<String> {
        if self.pending.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        self.summary_if_due(&mut w, now())
    }

    fn summary_if_due(&self, w: &mut Window, now: Instant) -> Option<String> {
        if let Some(last) = w.last_line {
            if now.saturating_duration_since(last) < self.interval {
                return None;
            }
        }
        let total: u64 = w.count.iter().sum();
        if total == 0 {
            return None;
        }
        let mut parts = Vec::new();
        for (i, op) in Operation::ALL.iter().enumerate() {
            if w.count[i] > 0 {
                parts.push(format!("{} {} (worst {:.3} ms)", op.name(), w.count[i], ms(w.worst[i])));
            }
        }
        let since = w
            .last_line
            .map(|last| {
                format!(
                    " in the last {:.0} s",
                    now.saturating_duration_since(last).as_secs_f64()
                )
            })
            .unwrap_or_default();
        w.count = Default::default();
        w.worst = Default::default();
        w.last_line = Some(now);
        self.pending.fetch_sub(total, Ordering::Relaxed);
        Some(format!(
            "{total} slow Redis call(s){since} over the {:.3} ms budget: {}",
            ms(self.threshold),
            parts.join(", ")
        ))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls() -> SlowCalls {
        SlowCalls::new(Duration::from_millis(1), Duration::from_secs(10))
    }

    #[test]
    fn the_first_slow_call_of_each_operation_is_logged_at_once() {
        let s = calls();
        let t0 = Instant::now();
        let line = s.slow(Operation::PriceGet, Duration::from_micros(3214), t0).unwrap();
        assert_eq!(
            line,
            "slow Redis operation: price_get took 3.214 ms (budget 1.000 ms); later slow calls are summarised every 10 s"
        );
        assert!(s.slow(Operation::PriceGet, Duration::from_millis(2), t0).is_none());
        let other = s.slow(Operation::PoolSetMany, Duration::from_millis(2), t0).unwrap();
        assert!(
            other.starts_with("slow Redis operation: pool_set_many took 2.000 ms"),
            "{other}"
        );
    }

    #[test]
    fn later_ones_are_summarised_once_per_interval_with_count_and_worst() {
        let s = calls();
        let t0 = Instant::now();
        s.slow(Operation::PriceSetMany, Duration::from_millis(2), t0).unwrap();
        for ms in [2, 9, 3] {
            let at = t0 + Duration::from_secs(1);
            assert!(s.slow(Operation::PriceSetMany, Duration::from_millis(ms), at).is_none());
        }
        s.slow(Operation::PoolGetMany, Duration::from_millis(4), t0).unwrap();
        assert!(s
            .slow(Operation::PoolGetMany, Duration::from_micros(1500), t0)
            .is_none());
        assert!(
            s.due(|| t0 + Duration::from_secs(9)).is_none(),
            "not before the interval"
        );
        let summary = s.due(|| t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(
            summary,
            "4 slow Redis call(s) in the last 10 s over the 1.000 ms budget: \
             price_set_many 3 (worst 9.000 ms), pool_get_many 1 (worst 1.500 ms)"
        );
        assert!(
            s.due(|| t0 + Duration::from_secs(30)).is_none(),
            "nothing left to report"
        );
        // After a quiet spell the next slow call is reported at once, in a summary of one.
        let next = s.slow(
            Operation::PriceSetMany,
            Duration::from_millis(5),
            t0 + Duration::from_secs(60),
        );
        assert_eq!(
            next.as_deref(),
            Some("1 slow Redis call(s) in the last 50 s over the 1.000 ms budget: price_set_many 1 (worst 5.000 ms)")
        );
        // And the one after waits for the interval again.
        let t1 = t0 + Duration::from_secs(61);
        assert!(s.slow(Operation::PriceSetMany, Duration::from_millis(5), t1).is_none());
        assert!(s.due(|| t1).is_none());
        assert!(s.due(|| t0 + Duration::from_secs(70)).is_some());
    }

    #[test]
    fn nothing_pending_costs_no_clock_read() {
        let s = calls();
        assert!(s.due(|| panic!("the clock was read with nothing to report")).is_none());
    }
}
