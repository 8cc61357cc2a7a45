//! WebSocket keep-alive, sans-IO: a ping every interval, and the peer declared dead when
//! nothing (a pong or any other frame) has arrived for two intervals. The driver feeds it
//! the times frames arrive and asks, at [`KeepAlive::next_wakeup`], what to do.

use std::time::{Duration, Instant};

/// What the driver must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveAction {
    /// Nothing yet.
    Wait,
    /// Send a ping.
    Ping,
    /// The peer has been silent for two intervals: close with
    /// [`super::error::CLOSE_KEEPALIVE_TIMEOUT`].
    Dead,
}

/// The keep-alive state of one socket.
#[derive(Debug, Clone)]
pub struct KeepAlive {
    interval: Duration,
    /// When the peer last sent anything.
    last_heard: Instant,
    /// When the next ping is due.
    next_ping: Instant,
}

impl KeepAlive {
    /// Starts the clock at `now` (the connection just opened).
    pub fn new(interval: Duration, now: Instant) -> KeepAlive {
        let interval = interval.max(Duration::from_millis(10));
        KeepAlive {
            interval,
            last_heard: now,
            next_ping: now + interval,
        }
    }

    /// The peer sent a frame (any frame, pongs included) at `now`.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
    }

    /// The ping period.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When the driver must call [`KeepAlive::poll`] next.
    pub fn next_wakeup(&self) -> Instant {
        self.next_ping.min(self.deadline())
    }

    /// When the peer is declared dead if it stays silent.
    pub fn deadline(&self) -> Instant {
        self.last_heard + 2 * self.interval
    }

    /// What to do at `now`.
    pub fn poll(&mut self, now: Instant) -> KeepAliveAction {
        if now >= self.deadline() {
            return KeepAliveAction::Dead;
        }
        if now >= self.next_ping {
            // Catch up without a burst of pings after a stall.
            while self.next_ping <= now {
                self.next_ping += self.interval;
            }
            return KeepAliveAction::Ping;
        }
        KeepAliveAction::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_every_interval_and_gives_up_after_two_silent_intervals() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = KeepAlive::new(s, t0);
        assert_eq!(k.next_wakeup(), t0 + s);
        assert_eq!(k.poll(t0 + s / 2), KeepAliveAction::Wait);
        assert_eq!(k.poll(t0 + s), KeepAliveAction::Ping);
        assert_eq!(
            k.poll(t0 + s),
            KeepAliveAction::Wait,
            "one ping per interval"
        );
        // The pong arrives: the deadline moves.
        k.heard(t0 + s + Duration::from_millis(5));
        assert_eq!(k.poll(t0 + 2 * s), KeepAliveAction::Ping);
        assert_eq!(k.poll(t0 + 3 * s), KeepAliveAction::Ping);
        assert_eq!(k.next_wakeup(), t0 + 3 * s + Duration::from_millis(5));
        assert_eq!(
            k.poll(t0 + 3 * s + Duration::from_millis(4)),
            KeepAliveAction::Wait
        );
        assert_eq!(
            k.poll(t0 + 3 * s + Duration::from_millis(5)),
            KeepAliveAction::Dead
        );
    }

    #[test]
    fn a_stalled_driver_sends_one_ping_not_a_burst() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut k = KeepAlive::new(s, t0);
        k.heard(t0 + 5 * s);
        assert_eq!(k.poll(t0 + 5 * s), KeepAliveAction::Ping);
        assert_eq!(k.poll(t0 + 5 * s), KeepAliveAction::Wait);
        assert_eq!(k.next_wakeup(), t0 + 6 * s);
    }
}
