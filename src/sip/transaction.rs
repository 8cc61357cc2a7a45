//! SIP transaction state machines (RFC 3261 §17), sans-IO: they are told what was sent and
//! received and what time it is, and answer with bytes to (re)send and their next deadline.

use bytes::Bytes;
use std::time::{Duration, Instant};

/// RFC 3261 timer base values.
#[derive(Debug, Clone, Copy)]
pub struct TimerConfig {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Maximum time a message remains in the network (5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// What a transaction wants done when one of its timers fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerAction {
    /// Nothing to do (a stale timer).
    None,
    /// Resend these bytes to the peer.
    Resend(Bytes),
    /// The transaction is over; remove it.
    Terminated,
    /// Client: no final response arrived (Timer B/F) — report a 408 to the TU.
    /// Server: no ACK arrived for a non-2xx final (Timer H).
    TimedOut,
}

/// Server transaction states (INVITE and non-INVITE share the names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    Trying,
    Proceeding,
    /// INVITE answered with 2xx (RFC 6026): retransmitted INVITEs are absorbed (the UAS
    /// core keeps retransmitting the 2xx) until Timer L (64·T1), never seen as new calls.
    Accepted,
    Completed,
    Confirmed,
    Terminated,
}

/// A server transaction: absorbs request retransmissions and retransmits responses.
#[derive(Debug)]
pub struct ServerTransaction {
    pub is_invite: bool,
    /// Reliable transports (TCP/TLS) need no retransmission timers.
    pub reliable: bool,
    pub state: ServerState,
    timers: TimerConfig,
    last_response: Option<Bytes>,
    last_status: u16,
    /// Timer G: next retransmission of a non-2xx final response (INVITE, unreliable).
    resend_at: Option<Instant>,
    resend_interval: Duration,
    /// Timer H, I or J: when the transaction ends.
    end_at: Option<Instant>,
}

impl ServerTransaction {
    /// A new transaction for a request just received.
    pub fn new(is_invite: bool, reliable: bool, timers: TimerConfig) -> ServerTransaction {
        ServerTransaction {
            is_invite,
            reliable,
            state: if is_invite {
                ServerState::Proceeding
            } else {
                ServerState::Trying
            },
            timers,
            last_response: None,
            last_status: 0,
            resend_at: None,
            resend_interval: timers.t1,
            end_at: None,
        }
    }

    /// The status of the last response sent (0 if none).
    pub fn last_status(&self) -> u16 {
        self.last_status
    }

    /// True while a final response may still be sent.
    pub fn awaiting_final(&self) -> bool {
        matches!(self.state, ServerState::Trying | ServerState::Proceeding)
    }

    /// A retransmission of the request arrived: the bytes to send back, if any.
    pub fn on_request_retransmission(&self) -> Option<Bytes> {
        match self.state {
            ServerState::Proceeding | ServerState::Completed => self.last_response.clone(),
            // RFC 6026 §7.1: the UAS core retransmits its 2xx on its own timer until the ACK;
            // a retransmitted INVITE is simply absorbed.
            _ => None,
        }
    }

    /// Records that the TU sent a response with `status`; returns false if not allowed now.
    pub fn on_send_response(&mut self, now: Instant, status: u16, bytes: Bytes) -> bool {
        if !self.awaiting_final() {
            return false;
        }
        self.last_status = status;
        self.last_response = Some(bytes);
        if status < 200 {
            self.state = ServerState::Proceeding;
            return true;
        }
        if self.is_invite && status < 300 {
            // 2xx retransmission belongs to the UAS core (§13.3.1.4); the transaction only
            // absorbs INVITE retransmissions until Timer L (RFC 6026 §7.1).
            self.state = ServerState::Accepted;
            self.end_at = Some(now + self.timers.t1 * 64);
            // Nothing is ever resent from this state; free the bytes for the 32 s it lives.
            self.last_response = None;
            return true;
        }
        self.state = ServerState::Completed;
        let t1x64 = self.timers.t1 * 64;
        if self.is_invite {
            if !self.reliable {
                self.resend_interval = self.timers.t1;
                self.resend_at = Some(now + self.resend_interval);
            }
            self.end_at = Some(now + t1x64);
        } else {
            self.end_at = Some(if self.reliable { now } else { now + t1x64 });
        }
        true
    }

    /// An ACK matched this (INVITE) transaction.
    pub fn on_ack(&mut self, now: Instant) {
        if self.state == ServerState::Completed {
            self.state = ServerState::Confirmed;
            self.resend_at = None;
            self.end_at = Some(if self.reliable {
                now
            } else {
                now + self.timers.t4
            });
        }
    }

    /// The next instant `on_timer` must be called.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.resend_at, self.end_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires due timers.
    pub fn on_timer(&mut self, now: Instant) -> TimerAction {
        if self.end_at.is_some_and(|t| t <= now) {
            let timed_out = self.state == ServerState::Completed && self.is_invite;
            self.state = ServerState::Terminated;
            self.resend_at = None;
            self.end_at = None;
            return if timed_out {
                TimerAction::TimedOut
            } else {
                TimerAction::Terminated
            };
        }
        if let Some(at) = self.resend_at
            && at <= now
        {
            self.resend_interval = (self.resend_interval * 2).min(self.timers.t2);
            self.resend_at = Some(now + self.resend_interval);
            if let Some(b) = &self.last_response {
                return TimerAction::Resend(b.clone());
            }
        }
        TimerAction::None
    }
}

/// Client transaction states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

/// What to do with a response that reached a client transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseAction {
    /// Pass it to the TU.
    Deliver,
    /// Pass it to the TU and send this ACK (non-2xx final to INVITE).
    DeliverAndAck(Bytes),
    /// A retransmitted final response: resend the ACK if any, do not deliver.
    Absorb(Option<Bytes>),
}

/// A client transaction: retransmits the request until answered (on unreliable transports).
#[derive(Debug)]
pub struct ClientTransaction {
    pub is_invite: bool,
    pub reliable: bool,
    pub state: ClientState,
    timers: TimerConfig,
    request: Bytes,
    ack: Option<Bytes>,
    /// Timer A/E.
    resend_at: Option<Instant>,
    resend_interval: Duration,
    /// Timer B/F (no final response), then D/K (absorb retransmissions).
    end_at: Option<Instant>,
}

impl ClientTransaction {
    /// Starts a transaction whose request bytes have just been sent at `now`.
    pub fn new(
        is_invite: bool,
        reliable: bool,
        timers: TimerConfig,
        request: Bytes,
        now: Instant,
    ) -> ClientTransaction {
        ClientTransaction {
            is_invite,
            reliable,
            state: if is_invite {
                ClientState::Calling
            } else {
                ClientState::Trying
            },
            timers,
            request,
            ack: None,
            resend_at: (!reliable).then_some(now + timers.t1),
            resend_interval: timers.t1,
            end_at: Some(now + timers.t1 * 64),
        }
    }

    /// A response matched this transaction. `ack` builds the ACK for a non-2xx final.
    pub fn on_response(
        &mut self,
        now: Instant,
        status: u16,
        ack: impl FnOnce() -> Bytes,
    ) -> ResponseAction {
        match self.state {
            ClientState::Completed | ClientState::Terminated => {
                return ResponseAction::Absorb(self.ack.clone());
            }
            _ => {}
        }
        if status < 200 {
            self.state = ClientState::Proceeding;
            if self.is_invite {
                self.resend_at = None;
            } else if self.resend_at.is_some() {
                self.resend_interval = self.timers.t2;
            }
            return ResponseAction::Deliver;
        }
        self.resend_at = None;
        if self.is_invite && status < 300 {
            self.state = ClientState::Terminated;
            self.end_at = None;
            return ResponseAction::Deliver;
        }
        self.state = ClientState::Completed;
        let wait = if self.reliable {
            Duration::ZERO
        } else if self.is_invite {
            Duration::from_secs(32)
        } else {
            self.timers.t4
        };
        self.end_at = Some(now + wait);
        if self.is_invite {
            let bytes = ack();
            self.ack = Some(bytes.clone());
            ResponseAction::DeliverAndAck(bytes)
        } else {
            ResponseAction::Deliver
        }
    }

    /// The next instant `on_timer` must be called.
    pub fn deadline(&self) -> Option<Instant> {
        match (self.resend_at, self.end_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires due timers.
    pub fn on_timer(&mut self, now: Instant) -> TimerAction {
        if self.end_at.is_some_and(|t| t <= now) {
            let timed_out = matches!(
                self.state,
                ClientState::Calling | ClientState::Trying | ClientState::Proceeding
            );
            self.state = ClientState::Terminated;
            self.resend_at = None;
            self.end_at = None;
            return if timed_out {
                TimerAction::TimedOut
            } else {
                TimerAction::Terminated
            };
        }
        if let Some(at) = self.resend_at
            && at <= now
        {
            self.resend_interval = if self.is_invite {
                self.resend_interval * 2
            } else {
                (self.resend_interval * 2).min(self.timers.t2)
            };
            self.resend_at = Some(now + self.resend_interval);
            return TimerAction::Resend(self.request.clone());
        }
        TimerAction::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_until(
        tx: &mut ClientTransaction,
        start: Instant,
        until: Duration,
    ) -> Vec<(Duration, TimerAction)> {
        let mut out = Vec::new();
        while let Some(d) = tx.deadline() {
            if d > start + until {
                break;
            }
            let a = tx.on_timer(d);
            out.push((d - start, a.clone()));
            if matches!(a, TimerAction::Terminated | TimerAction::TimedOut) {
                break;
            }
        }
        out
    }

    #[test]
    fn invite_client_timer_a_doubles_then_b_times_out() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            true,
            false,
            TimerConfig::default(),
            Bytes::from_static(b"INVITE"),
            t0,
        );
        let events = run_until(&mut tx, t0, Duration::from_secs(40));
        let resends: Vec<u64> = events
            .iter()
            .filter(|(_, a)| matches!(a, TimerAction::Resend(_)))
            .map(|(d, _)| d.as_millis() as u64)
            .collect();
        assert_eq!(resends, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(
            events.last().unwrap(),
            &(Duration::from_secs(32), TimerAction::TimedOut)
        );
    }

    #[test]
    fn non_invite_client_caps_at_t2() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            false,
            false,
            TimerConfig::default(),
            Bytes::from_static(b"BYE"),
            t0,
        );
        let events = run_until(&mut tx, t0, Duration::from_secs(40));
        let resends: Vec<u64> = events
            .iter()
            .filter(|(_, a)| matches!(a, TimerAction::Resend(_)))
            .map(|(d, _)| d.as_millis() as u64)
            .collect();
        assert_eq!(&resends[..6], &[500, 1500, 3500, 7500, 11500, 15500]);
        assert_eq!(events.last().unwrap().1, TimerAction::TimedOut);
    }

    #[test]
    fn reliable_client_never_resends() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            false,
            true,
            TimerConfig::default(),
            Bytes::from_static(b"BYE"),
            t0,
        );
        let events = run_until(&mut tx, t0, Duration::from_secs(40));
        assert_eq!(
            events,
            vec![(Duration::from_secs(32), TimerAction::TimedOut)]
        );
    }

    #[test]
    fn invite_client_acks_non_2xx_and_absorbs_retransmission() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(
            true,
            false,
            TimerConfig::default(),
            Bytes::from_static(b"INVITE"),
            t0,
        );
        assert_eq!(
            tx.on_response(t0, 180, || unreachable!()),
            ResponseAction::Deliver
        );
        let ack = Bytes::from_static(b"ACK");
        assert_eq!(
            tx.on_response(t0, 486, || ack.clone()),
            ResponseAction::DeliverAndAck(ack.clone())
        );
        assert_eq!(
            tx.on_response(t0, 486, || unreachable!()),
            ResponseAction::Absorb(Some(ack))
        );
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
    }

    #[test]
    fn invite_server_retransmits_final_until_ack() {
        let t0 = Instant::now();
        let mut tx = ServerTransaction::new(true, false, TimerConfig::default());
        assert!(tx.on_send_response(t0, 486, Bytes::from_static(b"486")));
        assert!(!tx.on_send_response(t0, 200, Bytes::from_static(b"200")));
        let mut at = Vec::new();
        let mut now = t0;
        while let Some(d) = tx.deadline() {
            now = d;
            if let TimerAction::Resend(_) = tx.on_timer(d) {
                at.push((d - t0).as_millis() as u64);
            }
            if at.len() == 4 {
                break;
            }
        }
        assert_eq!(at, vec![500, 1500, 3500, 7500]);
        tx.on_ack(now);
        assert_eq!(tx.state, ServerState::Confirmed);
        assert_eq!(
            tx.on_timer(now + Duration::from_secs(5)),
            TimerAction::Terminated
        );
    }

    #[test]
    fn invite_server_timer_h_reports_missing_ack() {
        let t0 = Instant::now();
        let mut tx = ServerTransaction::new(true, true, TimerConfig::default());
        tx.on_send_response(t0, 603, Bytes::from_static(b"603"));
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(
            tx.on_timer(t0 + Duration::from_secs(32)),
            TimerAction::TimedOut
        );
    }

    #[test]
    fn invite_server_absorbs_retransmissions_after_2xx_until_timer_l() {
        let t0 = Instant::now();
        let mut tx = ServerTransaction::new(true, false, TimerConfig::default());
        tx.on_send_response(t0, 200, Bytes::from_static(b"200"));
        assert_eq!(tx.state, ServerState::Accepted);
        assert_eq!(tx.on_request_retransmission(), None);
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(
            tx.on_timer(t0 + Duration::from_secs(32)),
            TimerAction::Terminated
        );
    }

    #[test]
    fn non_invite_server_replays_final_on_retransmission() {
        let t0 = Instant::now();
        let mut tx = ServerTransaction::new(false, false, TimerConfig::default());
        assert_eq!(tx.on_request_retransmission(), None);
        tx.on_send_response(t0, 200, Bytes::from_static(b"200"));
        assert_eq!(
            tx.on_request_retransmission(),
            Some(Bytes::from_static(b"200"))
        );
        assert_eq!(tx.deadline(), Some(t0 + Duration::from_secs(32)));
    }
}
