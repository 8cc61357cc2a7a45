//! Session timers (RFC 4028): negotiate Session-Expires/Min-SE/refresher, refresh the
//! session when we are the refresher, and end it with BYE when the refresher stays silent.

use super::{CallId, EndReason, Endpoint, Other, TimerRef};
use crate::sip::headers::parse_params;
use crate::sip::message::{Method, Request, Response};
use bytes::Bytes;
use std::time::{Duration, Instant};

/// The smallest session interval we accept (RFC 4028 §4: at least 90 s).
pub const MIN_SE: u32 = 90;
/// The interval we ask for on our own INVITEs.
pub const DEFAULT_SE: u32 = 1800;

/// Who refreshes the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    Uac,
    Uas,
}

/// A parsed Session-Expires header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    pub interval: u32,
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// Parses `1800;refresher=uac` (compact form `x` is expanded by the parser).
    pub fn parse(v: &str) -> Option<SessionExpires> {
        let (num, params) = match v.find(';') {
            Some(i) => (&v[..i], &v[i..]),
            None => (v, ""),
        };
        let interval = num.trim().parse().ok()?;
        let params = parse_params(params, "Session-Expires").ok()?;
        let refresher = match params.get("refresher").flatten() {
            Some(r) if r.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
            Some(r) if r.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
            _ => None,
        };
        Some(SessionExpires {
            interval,
            refresher,
        })
    }
}

/// The running session timer of a dialog.
#[derive(Debug, Clone)]
pub(super) struct SessionTimer {
    interval: u32,
    we_refresh: bool,
    /// When we refresh (if refresher) or give up (if not).
    due: Instant,
    /// The SDP of our last offer/answer, re-sent unchanged in a refreshing re-INVITE.
    sdp: Option<Bytes>,
}

impl SessionTimer {
    fn new(now: Instant, interval: u32, we_refresh: bool, sdp: Option<Bytes>) -> SessionTimer {
        let i = Duration::from_secs(interval.into());
        // §10: the refresher refreshes at half the interval; the other side waits until
        // the interval minus min(32 s, interval/3) before giving up.
        let due = if we_refresh {
            now + i / 2
        } else {
            now + i - Duration::from_secs(32).min(i / 3)
        };
        SessionTimer {
            interval,
            we_refresh,
            due,
            sdp,
        }
    }
}

/// True when a request or response lists `timer` in Supported or Require.
fn supports_timer(h: &crate::sip::message::Headers) -> bool {
    h.values("Supported")
        .into_iter()
        .chain(h.values("Require"))
        .any(|t| t.eq_ignore_ascii_case("timer"))
}

impl Endpoint {
    /// §5: a Session-Expires below our minimum earns a 422 with our Min-SE.
    pub(super) fn session_too_small(req: &Request) -> bool {
        req.headers
            .get("Session-Expires")
            .and_then(SessionExpires::parse)
            .is_some_and(|se| se.interval < MIN_SE)
    }

    /// Called as we send a 2xx to an INVITE/UPDATE of `call`: the headers to add, and the
    /// session timer (re)armed from the request's Session-Expires.
    pub(super) fn session_on_2xx(
        &mut self,
        now: Instant,
        call: CallId,
        req: &Request,
        body: Option<&Bytes>,
    ) -> Vec<(&'static str, String)> {
        let Some(se) = req
            .headers
            .get("Session-Expires")
            .and_then(SessionExpires::parse)
        else {
            return Vec::new();
        };
        let uac_supports = supports_timer(&req.headers);
        // §9: the UAS picks the refresher when the UAC left it open; we let a capable
        // caller refresh, and refresh ourselves otherwise.
        let refresher = se.refresher.unwrap_or(if uac_supports {
            Refresher::Uac
        } else {
            Refresher::Uas
        });
        let interval = se.interval.max(MIN_SE);
        let Some(d) = self.dialogs.get_mut(&call) else {
            return Vec::new();
        };
        let sdp = body
            .cloned()
            .or_else(|| d.session.as_ref().and_then(|s| s.sdp.clone()));
        let timer = SessionTimer::new(now, interval, refresher == Refresher::Uas, sdp);
        let due = timer.due;
        d.session = Some(timer);
        self.arm(Some(due), TimerRef::Session(call));
        let mut headers = vec![(
            "Session-Expires",
            format!(
                "{interval};refresher={}",
                if refresher == Refresher::Uac {
                    "uac"
                } else {
                    "uas"
                }
            ),
        )];
        if uac_supports {
            headers.push(("Require", "timer".to_string()));
        }
        headers
    }

    /// Called on the 2xx to our INVITE: arms the timer the answerer agreed to.
    pub(super) fn session_from_2xx(
        &mut self,
        now: Instant,
        call: CallId,
        resp: &Response,
        offer: Bytes,
    ) {
        let Some(se) = resp
            .headers
            .get("Session-Expires")
            .and_then(SessionExpires::parse)
        else {
            return;
        };
        let we_refresh = se.refresher != Some(Refresher::Uas);
        let Some(d) = self.dialogs.get_mut(&call) else {
            return;
        };
        let timer = SessionTimer::new(now, se.interval.max(MIN_SE), we_refresh, Some(offer));
        let due = timer.due;
        d.session = Some(timer);
        self.arm(Some(due), TimerRef::Session(call));
    }

    pub(super) fn fire_session(&mut self, now: Instant, call: CallId) {
        let Some(d) = self.dialogs.get_mut(&call) else {
            return;
        };
        let Some(s) = d.session.as_mut() else { return };
        if s.due > now {
            return;
        }
        if !s.we_refresh {
            tracing::info!(%call, "session expired without refresh; sending BYE");
            d.session = None;
            self.send_bye(now, call);
            self.end_call(call, EndReason::SessionExpired);
            return;
        }
        // Until the refresh succeeds, the session ends at the full interval.
        let interval = s.interval;
        s.we_refresh = false;
        s.due = now + Duration::from_secs(interval.into()) / 2;
        let due = s.due;
        let sdp = s.sdp.clone();
        self.arm(Some(due), TimerRef::Session(call));
        self.send_refresh(now, call, interval, sdp);
    }

    /// A refreshing re-INVITE carrying our last SDP unchanged (RFC 3264 §8: same version).
    fn send_refresh(&mut self, now: Instant, call: CallId, interval: u32, sdp: Option<Bytes>) {
        let Some((mut req, peer)) = self.in_dialog_request(call, Method::Invite) else {
            return;
        };
        req.headers.push("Contact", self.contact(peer.transport));
        req.headers
            .push("Session-Expires", format!("{interval};refresher=uac"));
        req.headers.push("Supported", "timer");
        if let Some(sdp) = sdp {
            req.headers.push("Content-Type", "application/sdp");
            req.body = sdp;
        }
        self.start_client_tx(now, req, peer, Some(call), Some(Other::Refresh(call)));
    }

    /// The final response to our refreshing re-INVITE.
    pub(super) fn on_refresh_final(
        &mut self,
        now: Instant,
        call: CallId,
        resp: &Response,
        request: Option<&Request>,
    ) {
        match resp.status {
            200..=299 => {
                // ACK the 2xx end to end (§13.2.2.4) and restart the refresh cycle.
                let seq = request
                    .and_then(|r| r.headers.get("CSeq"))
                    .and_then(|c| c.split_whitespace().next()?.parse().ok());
                if let Some(seq) = seq {
                    self.send_ack_2xx(call, seq);
                }
                let interval = resp
                    .headers
                    .get("Session-Expires")
                    .and_then(SessionExpires::parse)
                    .map(|s| s.interval.max(MIN_SE));
                if let Some(d) = self.dialogs.get_mut(&call)
                    && let Some(s) = d.session.as_mut()
                {
                    let interval = interval.unwrap_or(s.interval);
                    *s = SessionTimer::new(now, interval, true, s.sdp.clone());
                    let due = s.due;
                    self.arm(Some(due), TimerRef::Session(call));
                }
            }
            // §10: a refresh answered 408 or 481 means the session is gone.
            408 | 481 => {
                self.send_bye(now, call);
                self.end_call(call, EndReason::SessionExpired);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_session_expires() {
        assert_eq!(
            SessionExpires::parse("1800;refresher=uac"),
            Some(SessionExpires {
                interval: 1800,
                refresher: Some(Refresher::Uac)
            })
        );
        assert_eq!(
            SessionExpires::parse(" 90 "),
            Some(SessionExpires {
                interval: 90,
                refresher: None
            })
        );
        assert_eq!(SessionExpires::parse("soon"), None);
    }

    #[test]
    fn refresher_refreshes_at_half_and_waiter_gives_up_early() {
        let t0 = Instant::now();
        assert_eq!(
            SessionTimer::new(t0, 1800, true, None).due - t0,
            Duration::from_secs(900)
        );
        assert_eq!(
            SessionTimer::new(t0, 1800, false, None).due - t0,
            Duration::from_secs(1768)
        );
        assert_eq!(
            SessionTimer::new(t0, 90, false, None).due - t0,
            Duration::from_secs(60)
        );
    }
}
