//! Two sans-IO endpoints calling each other on a simulated clock (no sockets, no sleeps):
//! call setup, loss and retransmission, digest retry, CANCEL, BYE.

use bytes::Bytes;
use leadscaller::sip::digest::Credentials;
use leadscaller::sip::endpoint::{
    CallId, EndReason, Endpoint, EndpointConfig, Event, OutboundCall, Peer, Transmit, Transport,
};
use leadscaller::sip::headers::NameAddr;
use leadscaller::sip::message::{Message, Response};
use leadscaller::sip::parse::{ParseLimits, parse_datagram};
use leadscaller::sip::transaction::TimerConfig;
use leadscaller::sip::uri::Uri;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

fn cfg(port: u16) -> EndpointConfig {
    EndpointConfig {
        advertised_host: "127.0.0.1".into(),
        advertised_ports: HashMap::from([(Transport::Udp, port)]),
        user_agent: "test".into(),
        timers: TimerConfig::default(),
        limits: ParseLimits::default(),
    }
}

fn peer(port: u16) -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        conn: None,
    }
}

/// Decides whether a message is lost, from its direction and first line.
type LossRule = Box<dyn FnMut(bool, &str) -> bool>;

/// Caller `a` (port 5001) and callee `b` (port 5002) on a simulated network.
struct Net {
    a: Endpoint,
    b: Endpoint,
    now: Instant,
    start: Instant,
    a_events: Vec<(Duration, Event)>,
    b_events: Vec<(Duration, Event)>,
    /// Decides whether a message is lost: (from_a, first line) -> drop?
    lose: LossRule,
    /// First lines delivered, in order, with direction.
    wire: Vec<(bool, String)>,
    /// When set, `b` answers in-dialog requests (re-INVITE, UPDATE) with 200 at once.
    b_answers_in_dialog: bool,
}

impl Net {
    fn new() -> Net {
        let now = Instant::now();
        Net {
            a: Endpoint::new(cfg(5001), 1),
            b: Endpoint::new(cfg(5002), 2),
            now,
            start: now,
            a_events: Vec::new(),
            b_events: Vec::new(),
            lose: Box::new(|_, _| false),
            wire: Vec::new(),
            b_answers_in_dialog: false,
        }
    }

    fn deliver(&mut self, from_a: bool, t: Transmit) {
        let line = String::from_utf8_lossy(&t.bytes)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        if (self.lose)(from_a, &line) {
            return;
        }
        self.wire.push((from_a, line));
        let (dst, src_port) = if from_a {
            (&mut self.b, 5001)
        } else {
            (&mut self.a, 5002)
        };
        dst.handle_datagram(self.now, peer(src_port), &t.bytes);
    }

    /// Runs until both sides are idle and no timer is due before `until`.
    fn run(&mut self, until: Duration) {
        loop {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                moved = true;
                self.deliver(true, t);
            }
            while let Some(t) = self.b.poll_transmit() {
                moved = true;
                self.deliver(false, t);
            }
            while let Some(e) = self.a.poll_event() {
                self.a_events.push((self.now - self.start, e));
            }
            while let Some(e) = self.b.poll_event() {
                if let (true, Event::InDialogRequest { tx, .. }) = (self.b_answers_in_dialog, &e) {
                    let body = Some(("application/sdp", Bytes::from_static(SDP.as_bytes())));
                    self.b.respond(self.now, tx, 200, &[], body);
                    moved = true;
                }
                self.b_events.push((self.now - self.start, e));
            }
            if moved {
                continue;
            }
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= self.start + until => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                }
                _ => return,
            }
        }
    }

    fn call(&mut self, credentials: Option<Credentials>) -> CallId {
        let target = Uri::parse("sip:+15550100@127.0.0.1:5002").unwrap();
        let now = self.now;
        self.a.invite(
            now,
            OutboundCall {
                to: NameAddr::parse("<sip:+15550100@127.0.0.1>", "To").unwrap(),
                from: NameAddr::parse("<sip:+15550199@127.0.0.1>", "From").unwrap(),
                target,
                peer: peer(5002),
                sdp: Bytes::from_static(SDP.as_bytes()),
                credentials,
                headers: Vec::new(),
            },
        )
    }

    /// Lets `b` answer every new call with `status` (and SDP for 2xx).
    fn answer_all(&mut self, status: u16) {
        let now = self.now;
        let txs: Vec<_> = self
            .b_events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::IncomingCall { tx, .. } => Some(tx.clone()),
                _ => None,
            })
            .collect();
        for tx in txs {
            let body =
                (status < 300).then(|| ("application/sdp", Bytes::from_static(SDP.as_bytes())));
            self.b.respond(now, &tx, status, &[], body);
        }
    }
}

fn count(events: &[(Duration, Event)], f: impl Fn(&Event) -> bool) -> usize {
    events.iter().filter(|(_, e)| f(e)).count()
}

#[test]
fn call_setup_and_bye() {
    let mut net = Net::new();
    let call = net.call(None);
    net.run(Duration::from_millis(10));
    assert_eq!(
        count(&net.b_events, |e| matches!(e, Event::IncomingCall { .. })),
        1
    );
    net.answer_all(200);
    net.run(Duration::from_millis(20));
    assert_eq!(
        count(&net.a_events, |e| matches!(e, Event::CallAnswered { .. })),
        1
    );
    assert_eq!(
        count(&net.b_events, |e| matches!(e, Event::CallConfirmed { .. })),
        1
    );
    let now = net.now;
    net.a.hangup(now, call);
    net.run(Duration::from_secs(60));
    assert!(net.a_events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::LocalBye,
            ..
        }
    )));
    assert!(net.b_events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::RemoteBye,
            ..
        }
    )));
    assert_eq!(net.a.active_calls(), 0);
    assert_eq!(net.b.active_calls(), 0);
    let lines: Vec<&str> = net.wire.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        lines,
        vec![
            "INVITE sip:+15550100@127.0.0.1:5002 SIP/2.0",
            "SIP/2.0 100 Trying",
            "SIP/2.0 200 OK",
            "ACK sip:leadscaller@127.0.0.1:5002 SIP/2.0",
            "BYE sip:leadscaller@127.0.0.1:5002 SIP/2.0",
            "SIP/2.0 200 OK",
        ]
    );
}

#[test]
fn lost_invite_is_retransmitted_after_t1() {
    let mut net = Net::new();
    let mut lost = 0;
    net.lose = Box::new(move |from_a, line| {
        let drop = from_a && line.starts_with("INVITE") && lost < 2;
        lost += drop as u32;
        drop
    });
    net.call(None);
    net.run(Duration::from_secs(5));
    let (at, _) = net
        .b_events
        .iter()
        .find(|(_, e)| matches!(e, Event::IncomingCall { .. }))
        .expect("INVITE arrived");
    // Timer A: 500 ms, then 1 s later.
    assert_eq!(*at, Duration::from_millis(1500));
}

#[test]
fn lost_ack_makes_uas_retransmit_2xx_and_uac_reack() {
    let mut net = Net::new();
    let mut lost = false;
    net.lose = Box::new(move |from_a, line| {
        let drop = from_a && line.starts_with("ACK") && !lost;
        lost |= drop;
        drop
    });
    net.call(None);
    net.run(Duration::from_millis(10));
    net.answer_all(200);
    net.run(Duration::from_secs(10));
    let oks = net
        .wire
        .iter()
        .filter(|(a, l)| !a && l == "SIP/2.0 200 OK")
        .count();
    assert_eq!(oks, 2, "UAS resends the 2xx once after T1");
    assert_eq!(
        count(&net.b_events, |e| matches!(e, Event::CallConfirmed { .. })),
        1
    );
    assert_eq!(
        count(&net.a_events, |e| matches!(e, Event::CallAnswered { .. })),
        1,
        "retransmitted 2xx is not a new answer"
    );
}

#[test]
fn rejected_call_is_acked_and_reported() {
    let mut net = Net::new();
    net.call(None);
    net.run(Duration::from_millis(10));
    net.answer_all(486);
    net.run(Duration::from_secs(60));
    assert!(net.a_events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::Failed(486),
            ..
        }
    )));
    assert!(net.b_events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::Rejected(486),
            ..
        }
    )));
    assert!(net.wire.iter().any(|(a, l)| *a && l.starts_with("ACK ")));
}

#[test]
fn cancel_before_answer() {
    let mut net = Net::new();
    let call = net.call(None);
    net.run(Duration::from_millis(10));
    let now = net.now;
    net.a.hangup(now, call);
    net.run(Duration::from_secs(60));
    assert!(net.wire.iter().any(|(a, l)| *a && l.starts_with("CANCEL ")));
    assert!(
        net.wire
            .iter()
            .any(|(a, l)| !a && l == "SIP/2.0 487 Request Terminated")
    );
    assert!(net.a_events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::Cancelled,
            ..
        }
    )));
    assert!(net.b_events.iter().any(|(_, e)| matches!(
        e,
        Event::CallEnded {
            reason: EndReason::Cancelled,
            ..
        }
    )));
}

#[test]
fn no_answer_times_out_with_408() {
    let mut net = Net::new();
    net.lose = Box::new(|from_a, _| from_a);
    net.call(None);
    net.run(Duration::from_secs(40));
    let (at, _) = net
        .a_events
        .iter()
        .find(|(_, e)| {
            matches!(
                e,
                Event::CallEnded {
                    reason: EndReason::Failed(408),
                    ..
                }
            )
        })
        .expect("timer B fired");
    assert_eq!(*at, Duration::from_secs(32));
}

/// The UAS side here is driven by hand to send a digest challenge, as a carrier would.
#[test]
fn digest_challenge_is_answered_once() {
    let mut a = Endpoint::new(cfg(5001), 7);
    let now = Instant::now();
    a.invite(
        now,
        OutboundCall {
            to: NameAddr::parse("<sip:bob@127.0.0.1>", "To").unwrap(),
            from: NameAddr::parse("<sip:alice@127.0.0.1>", "From").unwrap(),
            target: Uri::parse("sip:bob@127.0.0.1:5002").unwrap(),
            peer: peer(5002),
            sdp: Bytes::from_static(SDP.as_bytes()),
            credentials: Some(Credentials::new("alice", "secret")),
            headers: Vec::new(),
        },
    );
    let challenge = |invite: &[u8]| -> Vec<u8> {
        let Ok(Message::Request(req)) = parse_datagram(invite, &ParseLimits::default()) else {
            panic!("not a request")
        };
        let mut r = Response::new(401, "Unauthorized");
        for n in ["Via", "From", "Call-ID", "CSeq"] {
            r.headers.push(n, req.headers.get(n).unwrap());
        }
        r.headers
            .push("To", format!("{};tag=srv", req.headers.get("To").unwrap()));
        r.headers.push(
            "WWW-Authenticate",
            "Digest realm=\"carrier\", nonce=\"n1\", qop=\"auth\", algorithm=MD5",
        );
        r.to_bytes()
    };
    let first = a.poll_transmit().unwrap();
    a.handle_datagram(now, peer(5002), &challenge(&first.bytes));
    let ack = a.poll_transmit().unwrap();
    assert!(ack.bytes.starts_with(b"ACK "));
    let second = a.poll_transmit().unwrap();
    let text = String::from_utf8_lossy(&second.bytes).to_string();
    assert!(text.starts_with("INVITE "));
    assert!(
        text.contains("Authorization: Digest username=\"alice\""),
        "{text}"
    );
    assert!(text.contains("realm=\"carrier\""));
    // The same nonce again means the password is wrong: give up instead of looping.
    a.handle_datagram(now, peer(5002), &challenge(&second.bytes));
    let _ack = a.poll_transmit().unwrap();
    assert!(a.poll_transmit().is_none(), "no third INVITE");
    let mut ended = None;
    while let Some(e) = a.poll_event() {
        if let Event::CallEnded { reason, .. } = e {
            ended = Some(reason);
        }
    }
    assert_eq!(ended, Some(EndReason::Failed(401)));
}

/// Answers a REGISTER as a registrar would, copying the transaction headers.
fn registrar_reply(register: &[u8], status: u16, extra: &[(&str, &str)]) -> Vec<u8> {
    let Ok(Message::Request(req)) = parse_datagram(register, &ParseLimits::default()) else {
        panic!("not a request")
    };
    let mut r = Response::new(status, "X");
    for n in ["Via", "From", "Call-ID", "CSeq"] {
        r.headers.push(n, req.headers.get(n).unwrap());
    }
    r.headers
        .push("To", format!("{};tag=reg", req.headers.get("To").unwrap()));
    for (k, v) in extra {
        r.headers.push(k, *v);
    }
    r.to_bytes()
}

#[test]
fn register_authenticates_refreshes_and_backs_off() {
    use leadscaller::sip::endpoint::Registration;
    let mut a = Endpoint::new(cfg(5001), 9);
    let t0 = Instant::now();
    let reg = a.register(
        t0,
        Registration {
            registrar: Uri::parse("sip:carrier.test").unwrap(),
            aor: Uri::parse("sip:trunkuser@carrier.test").unwrap(),
            contact_user: "leadscaller".into(),
            expires: 3600,
            credentials: Some(Credentials::new("trunkuser", "pw")),
            peer: peer(5002),
        },
    );
    let first = a.poll_transmit().unwrap();
    let text = String::from_utf8_lossy(&first.bytes).to_string();
    assert!(
        text.starts_with("REGISTER sip:carrier.test SIP/2.0"),
        "{text}"
    );
    assert!(text.contains("Expires: 3600"));
    a.handle_datagram(
        t0,
        peer(5002),
        &registrar_reply(
            &first.bytes,
            401,
            &[(
                "WWW-Authenticate",
                "Digest realm=\"carrier.test\", nonce=\"abc\", qop=\"auth\"",
            )],
        ),
    );
    let second = a.poll_transmit().unwrap();
    let text = String::from_utf8_lossy(&second.bytes).to_string();
    assert!(
        text.contains("Authorization: Digest username=\"trunkuser\""),
        "{text}"
    );
    assert!(text.contains("uri=\"sip:carrier.test\""));
    a.handle_datagram(
        t0,
        peer(5002),
        &registrar_reply(
            &second.bytes,
            200,
            &[("Contact", "<sip:leadscaller@127.0.0.1:5001>;expires=120")],
        ),
    );
    let mut got = Vec::new();
    while let Some(e) = a.poll_event() {
        got.push(e);
    }
    assert!(
        matches!(got.as_slice(), [Event::Registered { expires: 120, .. }]),
        "{got:?}"
    );
    // The refresh goes out 32 s before the 120 s binding lapses.
    let refresh = loop {
        let now = a.poll_timeout().expect("a refresh is scheduled");
        a.handle_timeout(now);
        if let Some(t) = a.poll_transmit() {
            break (now, t);
        }
    };
    let (now, refresh) = refresh;
    assert_eq!(now - t0, Duration::from_secs(88));
    assert!(refresh.bytes.starts_with(b"REGISTER "));
    // A 503 now schedules a retry after 30 s.
    a.handle_datagram(now, peer(5002), &registrar_reply(&refresh.bytes, 503, &[]));
    let e = a.poll_event().unwrap();
    assert!(
        matches!(e, Event::RegistrationFailed { reg: r, status: 503, retry_in } if r == reg && retry_in == Duration::from_secs(30)),
        "{e:?}"
    );
}

#[test]
fn options_ping_reports_rtt_and_timeout() {
    let mut a = Endpoint::new(cfg(5001), 11);
    let t0 = Instant::now();
    let target = Uri::parse("sip:carrier.test").unwrap();
    a.ping(t0, &target, peer(5002));
    let sent = a.poll_transmit().unwrap();
    let reply = registrar_reply(&sent.bytes, 200, &[]);
    a.handle_datagram(t0 + Duration::from_millis(40), peer(5002), &reply);
    assert!(
        matches!(a.poll_event(), Some(Event::PingResult { status: 200, rtt, .. }) if rtt == Duration::from_millis(40))
    );
    a.ping(t0, &target, peer(5002));
    while a.poll_transmit().is_some() {}
    while let Some(now) = a.poll_timeout() {
        a.handle_timeout(now);
        if let Some(e) = a.poll_event() {
            assert!(matches!(e, Event::PingResult { status: 408, .. }));
            assert_eq!(now - t0, Duration::from_secs(32));
            return;
        }
    }
    panic!("no timeout reported");
}

fn users_policy() -> leadscaller::sip::endpoint::InboundPolicy {
    let mut p = leadscaller::sip::endpoint::InboundPolicy::open();
    p.users.insert("alice".into(), "wonderland".into());
    p.realm = "leadscaller.test".into();
    p
}

#[test]
fn inbound_digest_admits_our_own_uac_and_refuses_wrong_password() {
    for (password, admitted) in [("wonderland", true), ("guess", false)] {
        let mut net = Net::new();
        net.b.set_inbound_policy(users_policy());
        net.call(Some(Credentials::new("alice", password)));
        net.run(Duration::from_millis(50));
        let incoming: Vec<_> = net
            .b_events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::IncomingCall { user, .. } => Some(user.clone()),
                _ => None,
            })
            .collect();
        let lines: Vec<&str> = net.wire.iter().map(|(_, l)| l.as_str()).collect();
        assert!(lines.contains(&"SIP/2.0 401 Unauthorized"), "{lines:?}");
        if admitted {
            assert_eq!(incoming, vec![Some("alice".to_string())], "{lines:?}");
        } else {
            assert!(incoming.is_empty());
            assert!(lines.contains(&"SIP/2.0 403 Forbidden"), "{lines:?}");
            assert!(net.a_events.iter().any(|(_, e)| matches!(
                e,
                Event::CallEnded {
                    reason: EndReason::Failed(403),
                    ..
                }
            )));
        }
    }
}

#[test]
fn allow_list_admits_trunk_and_refuses_others() {
    for (trusted_port, admitted) in [(5001u16, true), (9999, false)] {
        let mut net = Net::new();
        let mut p = leadscaller::sip::endpoint::InboundPolicy::open();
        p.require_trusted = true;
        p.trusted = std::sync::Arc::new(move |ip| {
            (trusted_port == 5001 && ip.is_loopback()).then(|| "carrier".to_string())
        });
        net.b.set_inbound_policy(p);
        net.call(None);
        net.run(Duration::from_millis(50));
        let trunks: Vec<_> = net
            .b_events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::IncomingCall { trunk, .. } => Some(trunk.clone()),
                _ => None,
            })
            .collect();
        if admitted {
            assert_eq!(trunks, vec![Some("carrier".to_string())]);
        } else {
            assert!(trunks.is_empty());
            assert!(net.wire.iter().any(|(_, l)| l == "SIP/2.0 403 Forbidden"));
        }
    }
}

#[test]
fn session_timer_refreshed_by_caller_keeps_call_up() {
    let mut net = Net::new();
    net.b_answers_in_dialog = true;
    net.call(None);
    net.run(Duration::from_millis(10));
    net.answer_all(200);
    net.run(Duration::from_secs(2000));
    let reinvites: Vec<Duration> = net
        .b_events
        .iter()
        .filter_map(|(at, e)| matches!(e, Event::InDialogRequest { .. }).then_some(*at))
        .collect();
    // UAC refreshes at half the 1800 s interval, twice within 2000 s.
    assert_eq!(reinvites.len(), 2, "{reinvites:?}");
    assert!(reinvites[0] >= Duration::from_secs(900) && reinvites[0] < Duration::from_secs(901));
    assert_eq!(net.a.active_calls(), 1);
    assert_eq!(net.b.active_calls(), 1);
    let oks = net
        .wire
        .iter()
        .filter(|(a, l)| !a && l == "SIP/2.0 200 OK")
        .count();
    let acks = net
        .wire
        .iter()
        .filter(|(a, l)| *a && l.starts_with("ACK "))
        .count();
    assert_eq!((oks, acks), (3, 3), "every 2xx to an INVITE is ACKed once");
}

#[test]
fn session_expires_without_refresh_ends_call_with_bye() {
    let mut net = Net::new();
    // The refresher's re-INVITEs never arrive.
    net.lose = Box::new(|from_a, line| {
        from_a && line.starts_with("INVITE") && line.contains("leadscaller@")
    });
    net.call(None);
    net.run(Duration::from_millis(10));
    net.answer_all(200);
    net.run(Duration::from_secs(2000));
    let (at, _) = net
        .b_events
        .iter()
        .find(|(_, e)| {
            matches!(
                e,
                Event::CallEnded {
                    reason: EndReason::SessionExpired,
                    ..
                }
            )
        })
        .expect("UAS ended the session");
    assert_eq!(*at, Duration::from_secs(1768));
    assert!(net.wire.iter().any(|(a, l)| !a && l.starts_with("BYE ")));
    assert!(
        net.a_events
            .iter()
            .any(|(_, e)| matches!(e, Event::CallEnded { .. }))
    );
}

#[test]
fn too_small_session_interval_gets_422() {
    let mut b = Endpoint::new(cfg(5002), 3);
    let invite = "INVITE sip:x@127.0.0.1:5002 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5001;branch=z9hG4bKse\r\n\
From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: se@test\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:a@127.0.0.1:5001>\r\nSupported: timer\r\nSession-Expires: 30\r\nContent-Length: 0\r\n\r\n";
    b.handle_datagram(Instant::now(), peer(5001), invite.as_bytes());
    let out = b.poll_transmit().unwrap();
    let text = String::from_utf8_lossy(&out.bytes).to_string();
    assert!(text.starts_with("SIP/2.0 422 "), "{text}");
    assert!(text.contains("Min-SE: 90"), "{text}");
    assert!(b.poll_event().is_none());
}

#[test]
fn rport_and_received_route_the_response_back_through_nat() {
    let mut b = Endpoint::new(cfg(5002), 4);
    // The client believes it is 10.0.0.5:5060; its packets arrive from 127.0.0.1:40123.
    let options = "OPTIONS sip:x@127.0.0.1:5002 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnat;rport\r\n\
From: <sip:a@10.0.0.5>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: nat@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    b.handle_datagram(Instant::now(), peer(40123), options.as_bytes());
    let out = b.poll_transmit().unwrap();
    assert_eq!(out.peer.addr, SocketAddr::from(([127, 0, 0, 1], 40123)));
    let text = String::from_utf8_lossy(&out.bytes).to_string();
    assert!(
        text.contains(
            "Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnat;rport=40123;received=127.0.0.1\r\n"
        ),
        "{text}"
    );
}

#[test]
fn required_100rel_is_rejected_cleanly_with_420() {
    let mut b = Endpoint::new(cfg(5002), 5);
    let invite = "INVITE sip:x@127.0.0.1:5002 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5001;branch=z9hG4bKprack\r\n\
From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: prack@test\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:a@127.0.0.1:5001>\r\nRequire: 100rel\r\nContent-Length: 0\r\n\r\n";
    b.handle_datagram(Instant::now(), peer(5001), invite.as_bytes());
    let text = String::from_utf8_lossy(&b.poll_transmit().unwrap().bytes).to_string();
    assert!(text.starts_with("SIP/2.0 420 "), "{text}");
    assert!(text.contains("Unsupported: 100rel"), "{text}");
    assert!(b.poll_event().is_none());
}

#[test]
fn invite_retransmitted_after_200_is_absorbed_not_a_new_call() {
    let mut b = Endpoint::new(cfg(5002), 6);
    let t0 = Instant::now();
    let invite = format!(
        "INVITE sip:x@127.0.0.1:5002 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5001;branch=z9hG4bKdup\r\n\
From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: dup@test\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:a@127.0.0.1:5001>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    );
    b.handle_datagram(t0, peer(5001), invite.as_bytes());
    let Some(Event::IncomingCall { tx, .. }) = b.poll_event() else {
        panic!("no call")
    };
    b.respond(
        t0,
        &tx,
        200,
        &[],
        Some(("application/sdp", Bytes::from_static(SDP.as_bytes()))),
    );
    while b.poll_transmit().is_some() {}
    // The caller did not see our 200 yet and retransmits its INVITE.
    b.handle_datagram(
        t0 + Duration::from_millis(500),
        peer(5001),
        invite.as_bytes(),
    );
    assert!(
        b.poll_event().is_none(),
        "a retransmission must not start a second call"
    );
    assert!(
        b.poll_transmit().is_none(),
        "absorbed: no 100 Trying, no new dialog"
    );
    assert_eq!(b.active_calls(), 1);
    // The UAS core still retransmits its 2xx on T1 until the ACK (§13.3.1.4).
    b.handle_timeout(t0 + Duration::from_millis(500));
    let resent = b.poll_transmit().expect("2xx retransmitted on T1");
    assert!(resent.bytes.starts_with(b"SIP/2.0 200 OK"));
}
