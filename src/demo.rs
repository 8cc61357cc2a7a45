//! `leadscaller demo`: a whole call on loopback with no configuration and no network.
//! A built-in simulated caller places a SIP call to the server's echo app, streams a
//! second of µ-law tone, checks the echo, and hangs up.

use crate::call::CallRecord;
use crate::codec::g711::linear_to_ulaw;
use crate::config::{Config, ServerConfig};
use crate::rtp::packet::RtpHeader;
use crate::server;
use crate::sip::endpoint::Transport;
use crate::sip::message::{Message, Method, Request};
use crate::sip::parse::{ParseLimits, parse_datagram};
use crate::sip::sdp::SessionDescription;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub packets_sent: u32,
    pub packets_echoed: u32,
    /// Median round trip of an RTP packet through the echo app.
    pub median_rtt: Duration,
    /// INVITE sent → 200 OK received.
    pub setup_time: Duration,
    pub server_record: Option<CallRecord>,
}

const DEMO_CONFIG: &str = r#"
[sip]
listen = [ { transport = "udp", addr = "127.0.0.1:0" } ]
[http]
listen = "127.0.0.1:0"
[rtp]
port_min = 40000
port_max = 40100
media_timeout_s = 10
[[routes]]
match_user = "*"
app = "echo"
"#;

fn say(line: &str) {
    println!("{line}");
}

/// Runs the demo, printing the call as it happens.
pub async fn run(packets: u32) -> io::Result<DemoReport> {
    let mut server_cfg =
        ServerConfig::from_toml_str(DEMO_CONFIG, "<demo>", Path::new("."), &|_| None)
            .map_err(|e| io::Error::other(e.to_string()))?;
    // The demo keeps its call records in a throwaway database, not in the working directory.
    let scratch = std::env::temp_dir().join(format!("leadscaller-demo-{}", std::process::id()));
    server_cfg.database_url = format!("sqlite://{}", scratch.join("demo.db").display());
    server_cfg.data_dir = scratch.clone();
    let cfg = Config {
        server: server_cfg,
        trunks: BTreeMap::new(),
        warnings: Vec::new(),
    };
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let srv = server::start(&cfg, Some(done_tx)).await?;
    let server_addr = srv
        .addr(Transport::Udp)
        .ok_or_else(|| io::Error::other("no UDP listener"))?;
    say(&format!(
        "server: SIP/UDP on {server_addr}, route * -> echo"
    ));
    let result = call(server_addr, packets).await;
    let record = tokio::time::timeout(Duration::from_secs(2), done_rx.recv())
        .await
        .ok()
        .flatten();
    srv.stop();
    let _ = std::fs::remove_dir_all(&scratch);
    let mut report = result?;
    if let Some(r) = &record {
        say(&format!(
            "server: {} ended ({:?}), {} frames sent back",
            r.call,
            r.reason,
            r.frames_sent()
        ));
    }
    report.server_record = record;
    Ok(report)
}

async fn recv_response(
    sock: &UdpSocket,
    wait: Duration,
) -> io::Result<Option<crate::sip::message::Response>> {
    let mut buf = vec![0u8; 65_536];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let r = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await;
        let Ok(r) = r else { return Ok(None) };
        let (n, _) = r?;
        if let Ok(Message::Response(resp)) = parse_datagram(&buf[..n], &ParseLimits::default()) {
            return Ok(Some(resp));
        }
    }
}

fn caller_request(
    method: Method,
    uri: &str,
    local: SocketAddr,
    cseq: u32,
    to_tag: Option<&str>,
) -> Request {
    let mut r = Request::new(method.clone(), uri);
    r.headers.push(
        "Via",
        format!("SIP/2.0/UDP {local};branch=z9hG4bK-demo-{cseq}-{method};rport"),
    );
    r.headers.push("Max-Forwards", "70");
    r.headers.push(
        "From",
        format!("\"Demo Caller\" <sip:lead@{local}>;tag=demo-caller"),
    );
    match to_tag {
        Some(t) => r.headers.push("To", format!("<{uri}>;tag={t}")),
        None => r.headers.push("To", format!("<{uri}>")),
    }
    r.headers.push("Call-ID", "demo-call@leadscaller");
    r.headers.push("CSeq", format!("{cseq} {method}"));
    r.headers.push("Contact", format!("<sip:lead@{local}>"));
    r.headers.push("User-Agent", "leadscaller-demo-caller");
    r
}

async fn call(server: SocketAddr, packets: u32) -> io::Result<DemoReport> {
    let sip = UdpSocket::bind("127.0.0.1:0").await?;
    let rtp = UdpSocket::bind("127.0.0.1:0").await?;
    let local = sip.local_addr()?;
    let rtp_port = rtp.local_addr()?.port();
    let uri = format!("sip:echo@{server}");
    let sdp = format!(
        "v=0\r\no=demo 1 1 IN IP4 127.0.0.1\r\ns=demo\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    );
    let mut invite = caller_request(Method::Invite, &uri, local, 1, None);
    invite.headers.push("Content-Type", "application/sdp");
    invite.body = Bytes::from(sdp);
    let invite_bytes = invite.to_bytes();
    let started = Instant::now();
    say(&format!("caller: INVITE {uri}"));
    let mut ok = None;
    // Timer A by hand: resend the INVITE until a response arrives.
    for attempt in 0..6 {
        if attempt == 0 || ok.is_none() {
            sip.send_to(&invite_bytes, server).await?;
        }
        while let Some(resp) =
            recv_response(&sip, Duration::from_millis(500 << attempt.min(3))).await?
        {
            say(&format!("caller: <- {} {}", resp.status, resp.reason));
            if resp.status >= 200 {
                ok = Some(resp);
                break;
            }
        }
        if ok.is_some() {
            break;
        }
    }
    let ok = ok.ok_or_else(|| io::Error::other("no final response to INVITE"))?;
    let setup_time = started.elapsed();
    if ok.status != 200 {
        return Err(io::Error::other(format!(
            "call rejected with {}",
            ok.status
        )));
    }
    let to_tag = ok
        .headers
        .get("To")
        .and_then(|t| t.split("tag=").nth(1))
        .map(|t| t.split(';').next().unwrap_or(t).to_string())
        .unwrap_or_default();
    let answer = std::str::from_utf8(&ok.body)
        .ok()
        .and_then(|s| SessionDescription::parse(s).ok())
        .ok_or_else(|| io::Error::other("200 OK without a usable SDP answer"))?;
    let m = answer
        .media
        .first()
        .ok_or_else(|| io::Error::other("answer has no m-line"))?;
    let ip = answer
        .media_connection(0)
        .ok_or_else(|| io::Error::other("answer has no c= line"))?;
    let remote_rtp = SocketAddr::new(ip, m.port);
    say(&format!(
        "caller: answered in {:.1} ms, media {remote_rtp} (PCMU)",
        setup_time.as_secs_f64() * 1e3
    ));
    let ack = caller_request(Method::Ack, &uri, local, 1, Some(&to_tag));
    sip.send_to(&ack.to_bytes(), server).await?;
    say("caller: -> ACK; streaming a 440 Hz tone");

    let (sent, echoed, median_rtt) = stream_tone(&rtp, remote_rtp, packets).await?;
    say(&format!(
        "caller: sent {sent} RTP packets, {echoed} came back, median RTT {:.2} ms",
        median_rtt.as_secs_f64() * 1e3
    ));
    let bye = caller_request(Method::Bye, &uri, local, 2, Some(&to_tag));
    say("caller: -> BYE");
    let bye_bytes = bye.to_bytes();
    let mut bye_ok = false;
    for _ in 0..4 {
        sip.send_to(&bye_bytes, server).await?;
        if let Some(r) = recv_response(&sip, Duration::from_millis(500)).await? {
            say(&format!("caller: <- {} {}", r.status, r.reason));
            bye_ok = r.status == 200;
            break;
        }
    }
    if !bye_ok {
        return Err(io::Error::other("BYE was not answered with 200"));
    }
    Ok(DemoReport {
        packets_sent: sent,
        packets_echoed: echoed,
        median_rtt,
        setup_time,
        server_record: None,
    })
}

/// Two µ-law bytes naming packet `seq` (base 100, never 0x7f, which µ-law re-encodes
/// as 0xff).
fn echo_tag(seq: u32) -> [u8; 2] {
    [0x10 + (seq / 100 % 100) as u8, 0x10 + (seq % 100) as u8]
}

/// The packet number in an [`echo_tag`].
fn echo_seq(tag: [u8; 2]) -> Option<u32> {
    let hi = tag[0].checked_sub(0x10).filter(|&v| v < 100)?;
    let lo = tag[1].checked_sub(0x10).filter(|&v| v < 100)?;
    Some(u32::from(hi) * 100 + u32::from(lo))
}

/// Sends `count` 20 ms µ-law packets in real time and collects the echoes.
async fn stream_tone(
    rtp: &UdpSocket,
    dest: SocketAddr,
    count: u32,
) -> io::Result<(u32, u32, Duration)> {
    let ssrc = 0x1eadca11u32;
    let mut sent_at = vec![None::<Instant>; count as usize];
    let mut rtts = Vec::new();
    let mut buf = [0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut phase = 0f64;
    let mut seq_sent = 0u32;
    let drain_until = |now: tokio::time::Instant| now + Duration::from_millis(300);
    let mut stop_at: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            t = tick.tick(), if seq_sent < count => {
                let mut pkt = Vec::with_capacity(172);
                pkt.extend_from_slice(&[0x80, if seq_sent == 0 { 0x80 } else { 0 }]);
                pkt.extend_from_slice(&(seq_sent as u16).to_be_bytes());
                pkt.extend_from_slice(&(seq_sent * 160).to_be_bytes());
                pkt.extend_from_slice(&ssrc.to_be_bytes());
                // The first two bytes tag the packet so its echo can be recognized: the
                // server decodes and re-encodes, and µ-law survives that byte for byte.
                pkt.extend_from_slice(&echo_tag(seq_sent));
                for _ in 2..160 {
                    phase += 2.0 * std::f64::consts::PI * 440.0 / 8000.0;
                    pkt.push(linear_to_ulaw((phase.sin() * 8000.0) as i16));
                }
                rtp.send_to(&pkt, dest).await?;
                sent_at[seq_sent as usize] = Some(Instant::now());
                seq_sent += 1;
                if seq_sent == count {
                    stop_at = Some(drain_until(t));
                }
            }
            r = rtp.recv_from(&mut buf) => {
                let (n, _) = r?;
                if let Some(h) = RtpHeader::parse(&buf[..n])
                    && let Some(tag) = buf.get(h.payload_offset..h.payload_offset + 2)
                    && let Some(seq) = echo_seq([tag[0], tag[1]])
                    && let Some(at) = sent_at.get_mut(seq as usize).and_then(Option::take)
                {
                    rtts.push(at.elapsed());
                }
            }
            _ = async { match stop_at { Some(s) => tokio::time::sleep_until(s).await, None => std::future::pending().await } } => break,
        }
    }
    rtts.sort();
    let median = rtts.get(rtts.len() / 2).copied().unwrap_or_default();
    Ok((seq_sent, rtts.len() as u32, median))
}
