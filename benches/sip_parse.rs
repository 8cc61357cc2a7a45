//! SIP hot-path micro-benchmarks: parse and serialize a carrier INVITE and a 200 OK (both
//! with SDP), validate the parsed INVITE, and one whole sans-IO `Endpoint` round for an
//! out-of-dialog OPTIONS (parse, validate, server transaction, 200 OK built and serialized,
//! transmit drained, the previous transaction expired by Timer J).
//!
//! Run: `cargo bench --bench sip_parse`. Every benchmark processes one message per
//! iteration (`Throughput::Elements(1)`), so criterion prints messages per second.
//! Method and recorded numbers: docs/benchmarks.md.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use leadscaller::sip::endpoint::{Endpoint, EndpointConfig, Peer, Transport};
use leadscaller::sip::message::Message;
use leadscaller::sip::parse::{ParseLimits, parse_datagram};
use leadscaller::sip::transaction::TimerConfig;
use leadscaller::sip::validate::validate_request;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The SDP offer of a typical carrier INVITE (PCMU/PCMA/telephone-event).
const OFFER_SDP: &str = "v=0\r\n\
o=root 1736214470 1736214470 IN IP4 54.172.60.10\r\n\
s=Twilio Media Gateway\r\n\
c=IN IP4 54.172.60.10\r\n\
t=0 0\r\n\
m=audio 16482 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// The SDP answer of a typical 200 OK.
const ANSWER_SDP: &str = "v=0\r\n\
o=leadscaller 4242 4242 IN IP4 203.0.113.10\r\n\
s=leadscaller\r\n\
c=IN IP4 203.0.113.10\r\n\
t=0 0\r\n\
m=audio 20000 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

/// A Twilio-like inbound INVITE: Record-Route, P-Asserted-Identity, X-Twilio-* headers and
/// an SDP offer.
fn carrier_invite() -> Vec<u8> {
    let head = "INVITE sip:+14155550100@203.0.113.10:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 54.172.60.1:5060;branch=z9hG4bK6e4c.8f3a1b2c9d0e7f6a5b4c3d2e1f0a9b8c.0;rport\r\n\
Record-Route: <sip:54.172.60.1:5060;lr;r2=on;ftag=94872615_6772d868_2c7e8f7a>\r\n\
Max-Forwards: 69\r\n\
From: \"+14155550123\" <sip:+14155550123@54.172.60.1>;tag=94872615_6772d868_2c7e8f7a\r\n\
To: <sip:+14155550100@example.pstn.twilio.com>\r\n\
Call-ID: 3f1c2a9e5b7d4c8a9e0f1a2b3c4d5e6f@0.0.0.0\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:+14155550123@54.172.60.1:5060;transport=udp>\r\n\
P-Asserted-Identity: \"+14155550123\" <sip:+14155550123@54.172.60.1>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, UPDATE, INFO\r\n\
User-Agent: Twilio Gateway\r\n\
X-Twilio-CallSid: CAfedcba9876543210fedcba9876543210\r\n\
Content-Type: application/sdp\r\n";
    with_body(head, OFFER_SDP)
}

/// A typical 200 OK with an SDP answer (as a carrier or our UAS sends it).
fn ok_200() -> Vec<u8> {
    let head = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 54.172.60.1:5060;branch=z9hG4bK6e4c.8f3a1b2c9d0e7f6a5b4c3d2e1f0a9b8c.0;rport=5060\r\n\
Record-Route: <sip:54.172.60.1:5060;lr;r2=on;ftag=94872615_6772d868_2c7e8f7a>\r\n\
From: \"+14155550123\" <sip:+14155550123@54.172.60.1>;tag=94872615_6772d868_2c7e8f7a\r\n\
To: <sip:+14155550100@example.pstn.twilio.com>;tag=5f1e2d3c4b5a6978\r\n\
Call-ID: 3f1c2a9e5b7d4c8a9e0f1a2b3c4d5e6f@0.0.0.0\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:leadscaller@203.0.113.10:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY\r\n\
Supported: timer, replaces\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Require: timer\r\n\
Server: leadscaller/0.1.0\r\n\
Content-Type: application/sdp\r\n";
    with_body(head, ANSWER_SDP)
}

fn with_body(head: &str, body: &str) -> Vec<u8> {
    format!("{head}Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// An out-of-dialog OPTIONS keepalive (as carriers send them); the branch is a fixed-width
/// hex field that the endpoint bench rewrites in place each iteration.
const OPTIONS: &str = "OPTIONS sip:203.0.113.10:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK0000000000000000;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:ping@127.0.0.1:5080>;tag=7a6b5c4d\r\n\
To: <sip:203.0.113.10:5060>\r\n\
Call-ID: options-keepalive-1@127.0.0.1\r\n\
CSeq: 1 OPTIONS\r\n\
User-Agent: bench\r\n\
Content-Length: 0\r\n\r\n";

fn parse_and_serialize(c: &mut Criterion) {
    let limits = ParseLimits::default();
    let invite = carrier_invite();
    let ok = ok_200();
    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Elements(1));

    g.bench_function(format!("parse_invite_{}B", invite.len()), |b| {
        b.iter(|| parse_datagram(black_box(&invite), &limits).expect("INVITE parses"))
    });
    g.bench_function(format!("parse_200ok_{}B", ok.len()), |b| {
        b.iter(|| parse_datagram(black_box(&ok), &limits).expect("200 OK parses"))
    });

    let invite_msg = parse_datagram(&invite, &limits).expect("INVITE parses");
    let ok_msg = parse_datagram(&ok, &limits).expect("200 OK parses");
    g.bench_function("serialize_invite", |b| {
        b.iter(|| black_box(&invite_msg).to_bytes())
    });
    g.bench_function("serialize_200ok", |b| {
        b.iter(|| black_box(&ok_msg).to_bytes())
    });

    let Message::Request(req) = &invite_msg else {
        panic!("INVITE parsed as a response")
    };
    validate_request(req).expect("INVITE validates");
    g.bench_function("validate_invite", |b| {
        b.iter(|| validate_request(black_box(req)).expect("INVITE validates"))
    });
    g.finish();
}

fn endpoint_round(c: &mut Criterion) {
    let cfg = EndpointConfig {
        advertised_host: "127.0.0.1".into(),
        advertised_ports: HashMap::new(),
        user_agent: "bench".into(),
        timers: TimerConfig::default(),
        limits: ParseLimits::default(),
    };
    // 64*T1 (Timer J) plus a margin: advancing the virtual clock by this much per round
    // makes each round also expire the previous round's transaction, so the endpoint stays
    // in a steady state (one live transaction) however many rounds criterion runs.
    let step = TimerConfig::default().t1 * 64 + Duration::from_millis(1);
    let peer = Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5080".parse().expect("address"),
        conn: None,
    };
    // Guard against silently benchmarking an error path: one round must yield a 200 OK.
    let mut ep = Endpoint::new(cfg.clone(), 1);
    ep.handle_datagram(Instant::now(), peer, OPTIONS.as_bytes());
    let t = ep.poll_transmit().expect("a response to OPTIONS");
    assert!(
        t.bytes.starts_with(b"SIP/2.0 200 "),
        "OPTIONS answered with {:?}",
        String::from_utf8_lossy(&t.bytes)
    );
    let mut datagram = OPTIONS.as_bytes().to_vec();
    let hex_at = OPTIONS.find("z9hG4bK").expect("branch") + "z9hG4bK".len();

    let mut g = c.benchmark_group("endpoint");
    g.throughput(Throughput::Elements(1));
    g.bench_function("options_round", |b| {
        let mut ep = Endpoint::new(cfg.clone(), 0x5eed);
        let mut now = Instant::now();
        let mut n: u64 = 0;
        b.iter(|| {
            n += 1;
            write_hex(&mut datagram[hex_at..hex_at + 16], n);
            now += step;
            ep.handle_timeout(now);
            ep.handle_datagram(now, peer, black_box(&datagram));
            let mut sent = 0;
            while let Some(t) = ep.poll_transmit() {
                black_box(&t.bytes);
                sent += 1;
            }
            while ep.poll_event().is_some() {}
            assert_eq!(sent, 1, "one 200 OK per OPTIONS");
            sent
        });
    });
    g.finish();
}

/// Writes `n` as 16 lowercase hex digits.
fn write_hex(out: &mut [u8], n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, o) in out.iter_mut().enumerate() {
        *o = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
}

criterion_group!(benches, parse_and_serialize, endpoint_round);
criterion_main!(benches);
