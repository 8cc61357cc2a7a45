//! The retry schedule of webhook deliveries, sans-IO: after a failed attempt, when (if ever)
//! to try again.

use std::time::Duration;

/// Exponential backoff with a cap on attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after failed attempt 1, 2, ...; the last entry repeats.
    pub delays: Vec<Duration>,
    /// Attempts in all, the first included; after the last one fails the delivery is `failed`.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 10 s, 1 min, 5 min, 30 min, 2 h, 6 h, 6 h: 8 attempts over about 15 hours.
    fn default() -> Self {
        Self {
            delays: [10, 60, 300, 1_800, 7_200, 21_600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            max_attempts: 8,
        }
    }
}

impl RetryPolicy {
    /// When to retry after attempt `attempt` (1-based) failed at `now_ms`; `None`: give up.
    pub fn next_attempt_at(&self, attempt: u32, now_ms: i64) -> Option<i64> {
        if attempt >= self.max_attempts {
            return None;
        }
        let i = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        let delay = self
            .delays
            .get(i)
            .or(self.delays.last())
            .copied()
            .unwrap_or_default();
        let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        Some(now_ms.saturating_add(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_backs_off_then_gives_up_after_eight_attempts() {
        let p = RetryPolicy::default();
        let waits: Vec<i64> = (1..8)
            .map(|a| p.next_attempt_at(a, 1_000).unwrap() - 1_000)
            .collect();
        assert_eq!(
            waits,
            [
                10_000, 60_000, 300_000, 1_800_000, 7_200_000, 21_600_000, 21_600_000
            ]
        );
        assert_eq!(p.next_attempt_at(8, 1_000), None);
        assert_eq!(p.next_attempt_at(9, 1_000), None);
    }

    #[test]
    fn a_policy_without_delays_retries_at_once() {
        let p = RetryPolicy {
            delays: vec![],
            max_attempts: 2,
        };
        assert_eq!(p.next_attempt_at(1, 5), Some(5));
        assert_eq!(p.next_attempt_at(2, 5), None);
    }
}
