//! A circuit breaker per delivery provider (in each worker process). Closed: every call goes
//! through and consecutive transient failures are counted. At `threshold` failures it opens:
//! the provider is skipped (traffic moves to the next provider) for `cooldown`. Then it is
//! half-open: one trial call is let through; success closes it, failure opens it again.

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed { failures: u32 },
    Open { until: DateTime<Utc> },
    HalfOpen { trial_in_flight: bool },
}

#[derive(Debug, Clone)]
pub struct Breaker {
    pub state: State,
    pub threshold: u32,
    pub cooldown: TimeDelta,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: TimeDelta) -> Self {
        Self {
            state: State::Closed { failures: 0 },
            threshold: threshold.max(1),
            cooldown,
        }
    }

    /// May a call go to this provider now? (A half-open breaker admits one trial.)
    pub fn allow(&mut self, now: DateTime<Utc>) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen {
                    trial_in_flight: true,
                };
                true
            }
            State::Open { .. } => false,
            State::HalfOpen { trial_in_flight } => {
                if trial_in_flight {
                    false
                } else {
                    self.state = State::HalfOpen {
                        trial_in_flight: true,
                    };
                    true
                }
            }
        }
    }

    pub fn success(&mut self) {
        self.state = State::Closed { failures: 0 };
    }

    /// A transient failure (permanent ones are about the message, not the provider).
    pub fn failure(&mut self, now: DateTime<Utc>) {
        self.state = match self.state {
            State::Closed { failures } if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            _ => State::Open {
                until: now + self.cooldown,
            },
        };
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(20_000) + TimeDelta::seconds(s)
    }

    #[test]
    fn opens_after_threshold_then_half_opens_and_recovers() {
        let mut b = Breaker::new(3, TimeDelta::seconds(30));
        for _ in 0..2 {
            assert!(b.allow(t(0)));
            b.failure(t(0));
        }
        assert!(b.allow(t(0)));
        b.failure(t(0));
        assert!(b.is_open());
        assert!(!b.allow(t(10)), "open: skipped");
        assert!(b.allow(t(30)), "half-open: one trial");
        assert!(!b.allow(t(30)), "only one trial at a time");
        b.failure(t(31));
        assert!(!b.allow(t(40)), "trial failed: open again");
        assert!(b.allow(t(61)));
        b.success();
        assert_eq!(b.state, State::Closed { failures: 0 });
        assert!(b.allow(t(62)));
    }

    #[test]
    fn a_success_resets_the_count() {
        let mut b = Breaker::new(2, TimeDelta::seconds(30));
        b.failure(t(0));
        b.success();
        b.failure(t(1));
        assert!(!b.is_open());
    }
}
