//! Registration to trunks (RFC 3261 §10) with refresh before expiry, digest retries,
//! 423 handling and exponential backoff; and OPTIONS pings used as trunk keep-alives.

use super::{Endpoint, Event, Other, Peer, TimerRef};
use crate::sip::digest::{Challenge, Credentials, DigestClient, pick_best};
use crate::sip::headers::NameAddr;
use crate::sip::message::{Method, Request, Response};
use crate::sip::uri::Uri;
use std::time::{Duration, Instant};

/// A handle on one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegId(pub u64);

/// A handle on one OPTIONS ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PingId(pub u64);

/// What to register where.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Request-URI of the REGISTER (the registrar's domain).
    pub registrar: Uri,
    /// Address of record (From/To).
    pub aor: Uri,
    /// User part of our Contact.
    pub contact_user: String,
    /// Requested binding lifetime in seconds.
    pub expires: u32,
    pub credentials: Option<Credentials>,
    /// Next hop (registrar or outbound proxy).
    pub peer: Peer,
}

/// Backoff after failures: 30 s doubling to 10 minutes (RFC 5626 §4.5 style).
fn backoff(failures: u32) -> Duration {
    Duration::from_secs((30u64 << failures.saturating_sub(1).min(5)).min(600))
}

/// When to refresh a binding granted for `granted` seconds: well before it lapses, leaving
/// room for a few retransmissions (at least 32 s early when the binding is long enough).
fn refresh_after(granted: u32) -> Duration {
    let g = u64::from(granted);
    let early = (g / 10).max(32).min(g / 2);
    Duration::from_secs(g - early)
}

#[derive(Debug)]
pub(super) struct RegState {
    reg: Registration,
    call_id: String,
    from_tag: String,
    cseq: u32,
    digest: DigestClient,
    /// The expiry to ask for next (raised by a 423's Min-Expires).
    expires: u32,
    failures: u32,
    next_at: Option<Instant>,
    /// True once `unregister` was called: the next 2xx removes the state.
    removing: bool,
}

impl Endpoint {
    /// Starts registering; results arrive as `Registered` / `RegistrationFailed`.
    pub fn register(&mut self, now: Instant, reg: Registration) -> RegId {
        let id = RegId(self.next_other);
        self.next_other += 1;
        let state = RegState {
            expires: reg.expires,
            reg,
            call_id: format!("{}@{}", self.random_token(), self.cfg.advertised_host),
            from_tag: self.random_token(),
            cseq: 1,
            digest: DigestClient::new(),
            failures: 0,
            next_at: None,
            removing: false,
        };
        self.registrations.insert(id, state);
        self.send_register(now, id, None);
        id
    }

    /// Removes the binding (REGISTER with Expires: 0) and stops refreshing.
    pub fn unregister(&mut self, now: Instant, id: RegId) {
        if let Some(r) = self.registrations.get_mut(&id) {
            r.removing = true;
            r.expires = 0;
            r.next_at = None;
            self.send_register(now, id, None);
        }
    }

    fn send_register(&mut self, now: Instant, id: RegId, auth: Option<(&'static str, String)>) {
        let ua = self.cfg.user_agent.clone();
        let Some(peer) = self.registrations.get(&id).map(|r| r.reg.peer) else {
            return;
        };
        let via = self.new_via(peer.transport);
        let port = self.cfg.port(peer.transport);
        let host = self.cfg.advertised_host.clone();
        let Some(r) = self.registrations.get_mut(&id) else {
            return;
        };
        r.cseq += 1;
        let mut req = Request::new(Method::Register, r.reg.registrar.to_string());
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        req.headers
            .push("From", format!("<{}>;tag={}", r.reg.aor, r.from_tag));
        req.headers.push("To", format!("<{}>", r.reg.aor));
        req.headers.push("Call-ID", r.call_id.clone());
        req.headers.push("CSeq", format!("{} REGISTER", r.cseq));
        let transport_param = match peer.transport {
            super::Transport::Udp => String::new(),
            t => format!(";transport={}", t.as_str().to_ascii_lowercase()),
        };
        req.headers.push(
            "Contact",
            format!(
                "<sip:{}@{host}:{port}{transport_param}>",
                r.reg.contact_user
            ),
        );
        req.headers.push("Expires", r.expires.to_string());
        req.headers.push("Allow", super::ALLOW);
        req.headers.push("User-Agent", ua);
        if let Some((name, value)) = auth {
            req.headers.push(name, value);
        }
        self.start_client_tx(now, req, peer, None, Some(Other::Register(id)));
    }

    /// Sends an OPTIONS to `target` via `peer`; the answer arrives as `PingResult`.
    pub fn ping(&mut self, now: Instant, target: &Uri, peer: Peer) -> PingId {
        let id = PingId(self.next_other);
        self.next_other += 1;
        let host = self.cfg.advertised_host.clone();
        let mut req = Request::new(Method::Options, target.to_string());
        req.headers.push("Via", self.new_via(peer.transport));
        req.headers.push("Max-Forwards", "70");
        req.headers.push(
            "From",
            format!("<sip:leadscaller@{host}>;tag={}", self.random_token()),
        );
        req.headers.push("To", format!("<{target}>"));
        req.headers
            .push("Call-ID", format!("{}@{host}", self.random_token()));
        req.headers.push("CSeq", "1 OPTIONS");
        req.headers.push("Accept", "application/sdp");
        req.headers.push("User-Agent", self.cfg.user_agent.clone());
        self.start_client_tx(now, req, peer, None, Some(Other::Ping(id, now)));
        id
    }

    pub(super) fn on_other_response(
        &mut self,
        now: Instant,
        key: String,
        other: Other,
        resp: Response,
    ) {
        let Some(super::Delivered { request, .. }) = self.step_client(now, &key, &resp) else {
            return;
        };
        if resp.status < 200 {
            return;
        }
        match other {
            Other::Ping(id, sent) => self.events.push_back(Event::PingResult {
                ping: id,
                status: resp.status,
                rtt: now.saturating_duration_since(sent),
            }),
            Other::Register(id) => self.on_register_final(now, id, &resp),
            Other::Refresh(call) => self.on_refresh_final(now, call, &resp, request.as_ref()),
            Other::Refer(call) => self.on_refer_final(call, &resp),
        }
    }

    pub(super) fn on_other_timeout(&mut self, now: Instant, other: Other) {
        match other {
            Other::Ping(id, sent) => self.events.push_back(Event::PingResult {
                ping: id,
                status: 408,
                rtt: now.saturating_duration_since(sent),
            }),
            Other::Register(id) => self.register_failed(now, id, 408),
            Other::Refresh(call) => {
                let resp = Response::new(408, "Request Timeout");
                self.on_refresh_final(now, call, &resp, None)
            }
            Other::Refer(call) => self.on_refer_final(call, &Response::new(408, "Request Timeout")),
        }
    }

    fn on_register_final(&mut self, now: Instant, id: RegId, resp: &Response) {
        let Some(r) = self.registrations.get_mut(&id) else {
            return;
        };
        match resp.status {
            200..=299 => {
                if r.removing {
                    self.registrations.remove(&id);
                    return;
                }
                let granted = granted_expires(resp, &r.reg.contact_user).unwrap_or(r.expires);
                r.failures = 0;
                r.digest.reset();
                let at = now + refresh_after(granted.max(1));
                r.next_at = Some(at);
                self.arm(Some(at), TimerRef::Register(id));
                self.events.push_back(Event::Registered {
                    reg: id,
                    expires: granted,
                });
            }
            401 | 407 => {
                let (header_in, header_out) = if resp.status == 407 {
                    ("Proxy-Authenticate", "Proxy-Authorization")
                } else {
                    ("WWW-Authenticate", "Authorization")
                };
                let challenges = Challenge::parse_all(resp.headers.get_all(header_in));
                let uri = r.reg.registrar.to_string();
                let auth = match (pick_best(&challenges), r.reg.credentials.as_ref()) {
                    (Some(ch), Some(creds)) if !r.digest.is_repeat_failure(ch) => {
                        r.digest.authorize(ch, "REGISTER", &uri, b"", creds).ok()
                    }
                    _ => None,
                };
                match auth {
                    Some(value) => self.send_register(now, id, Some((header_out, value))),
                    None => self.register_failed(now, id, resp.status),
                }
            }
            423 => {
                let min = resp
                    .headers
                    .get("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match min {
                    Some(m) if m > r.expires => {
                        r.expires = m;
                        self.send_register(now, id, None);
                    }
                    _ => self.register_failed(now, id, 423),
                }
            }
            status => self.register_failed(now, id, status),
        }
    }

    fn register_failed(&mut self, now: Instant, id: RegId, status: u16) {
        let Some(r) = self.registrations.get_mut(&id) else {
            return;
        };
        if r.removing {
            self.registrations.remove(&id);
            return;
        }
        r.failures += 1;
        r.digest.reset();
        let retry_in = backoff(r.failures);
        r.next_at = Some(now + retry_in);
        self.arm(Some(now + retry_in), TimerRef::Register(id));
        tracing::warn!(reg = id.0, status, ?retry_in, "registration failed");
        self.events.push_back(Event::RegistrationFailed {
            reg: id,
            status,
            retry_in,
        });
    }

    pub(super) fn fire_register(&mut self, now: Instant, id: RegId) {
        let due = self
            .registrations
            .get(&id)
            .and_then(|r| r.next_at)
            .is_some_and(|t| t <= now);
        if due {
            if let Some(r) = self.registrations.get_mut(&id) {
                r.next_at = None;
            }
            self.send_register(now, id, None);
        }
    }
}

/// The lifetime the registrar granted: our Contact's `expires` param, else Expires.
fn granted_expires(resp: &Response, contact_user: &str) -> Option<u32> {
    let ours = resp.headers.values("Contact").into_iter().find_map(|c| {
        let na = NameAddr::parse(c, "Contact").ok()?;
        (na.uri.user.as_deref() == Some(contact_user))
            .then(|| na.params.get("expires").flatten()?.parse().ok())
            .flatten()
    });
    ours.or_else(|| resp.headers.get("Expires")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_leaves_margin() {
        assert_eq!(refresh_after(3600), Duration::from_secs(3240));
        assert_eq!(refresh_after(120), Duration::from_secs(88));
        assert_eq!(refresh_after(60), Duration::from_secs(30));
        assert_eq!(refresh_after(1), Duration::from_secs(1));
    }

    #[test]
    fn backoff_doubles_to_ten_minutes() {
        let secs: Vec<u64> = (1..=8).map(|f| backoff(f).as_secs()).collect();
        assert_eq!(secs, vec![30, 60, 120, 240, 480, 600, 600, 600]);
    }
}
