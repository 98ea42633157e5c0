//! Exponential backoff with jitter: the one schedule every retry loop of solcache waits by (the
//! subscription here, the gateway, the sources and the services through `solcache.backoff`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Delays of `initial`, times `multiplier` per consecutive failure up to `max`, each moved by up
/// to ±`jitter` (a fraction) so that clients cut off together do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: f64,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// Doubling from `initial` up to `max`, with ±10 % jitter.
    pub fn new(initial: Duration, max: Duration) -> Result<Self> {
        Backoff::with_shape(initial, max, 2.0, 0.1, None)
    }

    /// Any shape: `multiplier` ≥ 1, `0 ≤ jitter < 1`; `seed` makes the jitter repeatable.
    pub fn with_shape(
        initial: Duration,
        max: Duration,
        multiplier: f64,
        jitter: f64,
        seed: Option<u64>,
    ) -> Result<Self> {
        if initial.is_zero() || initial > max {
            return Err(Error::invalid(format!(
                "backoff needs 0 < initial <= max, got {} s and {} s",
                initial.as_secs_f64(),
                max.as_secs_f64()
            )));
        }
        if !(multiplier >= 1.0 && multiplier.is_finite() && (0.0..1.0).contains(&jitter)) {
            return Err(Error::invalid(format!(
                "backoff needs multiplier >= 1 and 0 <= jitter < 1, got {multiplier} and {jitter}"
            )));
        }
        let seed = seed.unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ (&initial as *const Duration as u64)
        });
        Ok(Backoff {
            initial,
            max,
            multiplier,
            jitter,
            failures: 0,
            rng: seed,
        })
    }

    /// The first delay.
    pub fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest delay (before jitter).
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Consecutive failures since the last [`Backoff::reset`].
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Count one more failure and return how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let grown = self.initial.as_secs_f64() * self.multiplier.powi(self.failures.min(64) as i32);
        let base = grown.min(self.max.as_secs_f64());
        self.failures = self.failures.saturating_add(1);
        let unit = self.next_unit() * 2.0 - 1.0; // in [-1, 1)
        Duration::from_secs_f64(base * (1.0 + self.jitter * unit))
    }

    /// Forget past failures (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// A uniform number in [0, 1) (splitmix64: jitter needs spread, not secrecy).
    fn next_unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::with_shape(ms(500), ms(4000), 2.0, 0.0, Some(1)).unwrap();
        let delays: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(delays, [ms(500), ms(1000), ms(2000), ms(4000), ms(4000), ms(4000)]);
        assert_eq!(b.failures(), 6);
        b.reset();
        assert_eq!(b.next_delay(), ms(500));
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_spreads() {
        let mut b = Backoff::with_shape(ms(1000), ms(1000), 2.0, 0.1, Some(7)).unwrap();
        let delays: Vec<_> = (0..200).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| (ms(900)..=ms(1100)).contains(d)), "{delays:?}");
        assert!(delays.iter().any(|d| *d < ms(980)) && delays.iter().any(|d| *d > ms(1020)));
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(Backoff::new(Duration::ZERO, ms(1)).is_err());
        assert!(Backoff::new(ms(2), ms(1)).is_err());
        assert!(Backoff::with_shape(ms(1), ms(2), 0.5, 0.0, None).is_err());
        assert!(Backoff::with_shape(ms(1), ms(2), 2.0, 1.0, None).is_err());
        assert!(Backoff::with_shape(ms(1), ms(2), f64::NAN, 0.0, None).is_err());
    }
}
