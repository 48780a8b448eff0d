//! The retry schedule of deliveries: exponential steps (by default 5 s, 30 s, 2 min, 10 min,
//! then 10 min again) with ±20 % jitter so retries of many messages that failed together do
//! not hit the provider together, and a bounded number of attempts.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Delay before attempt 2, 3, …; the last one repeats.
    pub delays: Vec<Duration>,
    /// Fraction of the delay added or removed at random (0.2 = ±20 %).
    pub jitter: f64,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            delays: [5, 30, 120, 600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.2,
            max_attempts: 6,
        }
    }
}

impl Schedule {
    /// Parses `5,30,120,600` (seconds; decimals allowed).
    pub fn parse_delays(raw: &str) -> Result<Vec<Duration>, String> {
        let delays = raw
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("{p:?} is not a delay in seconds"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.is_empty() {
            return Err("no delay given".to_owned());
        }
        Ok(delays)
    }

    /// After `attempts_made` failed attempts: `None` when no attempt is left, else the wait
    /// before the next one. `unit` is a uniform random number in [0, 1).
    pub fn next_delay(&self, attempts_made: u32, unit: f64) -> Option<Duration> {
        if attempts_made >= self.max_attempts {
            return None;
        }
        let index = usize::try_from(attempts_made.saturating_sub(1)).unwrap_or(usize::MAX);
        let base = self.delays.get(index).or(self.delays.last())?;
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Some(base.mul_f64(factor.max(0.0)))
    }

    /// The delay queue tier a wait goes to (`passgate.delivery.delay.<tier>`).
    pub fn tier(&self, attempts_made: u32) -> usize {
        usize::try_from(attempts_made.saturating_sub(1))
            .unwrap_or(0)
            .min(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_steps_with_bounded_jitter_and_a_limit() {
        let s = Schedule::default();
        assert_eq!(s.next_delay(1, 0.5), Some(Duration::from_secs(5)));
        assert_eq!(s.next_delay(2, 0.5), Some(Duration::from_secs(30)));
        assert_eq!(s.next_delay(4, 0.5), Some(Duration::from_secs(600)));
        assert_eq!(
            s.next_delay(5, 0.5),
            Some(Duration::from_secs(600)),
            "the last step repeats"
        );
        assert_eq!(s.next_delay(6, 0.5), None, "six attempts in all");
        assert_eq!(s.next_delay(1, 0.0), Some(Duration::from_secs(4)));
        assert_eq!(s.next_delay(1, 1.0), Some(Duration::from_secs(6)));
        for i in 0..100 {
            let d = s.next_delay(2, f64::from(i) / 100.0).unwrap_or_default();
            assert!(
                d >= Duration::from_secs(24) && d <= Duration::from_secs(36),
                "{d:?}"
            );
        }
        assert_eq!(s.tier(1), 0);
        assert_eq!(s.tier(9), 3);
    }

    #[test]
    fn parses_delay_lists() {
        assert_eq!(
            Schedule::parse_delays("1, 0.5"),
            Ok(vec![Duration::from_secs(1), Duration::from_millis(500)])
        );
        assert!(Schedule::parse_delays("").is_err());
        assert!(Schedule::parse_delays("5,-1").is_err());
    }
}
