//! `leadscaller demo --echo`: the simulated caller places a SIP call to the server's echo
//! app, streams µ-law tone, checks the echo (each packet comes back) and hangs up.

use super::sip_caller::SipCaller;
use super::{DemoError, DemoServer, say};
use crate::call::CallRecord;
use crate::codec::g711::linear_to_ulaw;
use crate::rtp::packet::RtpHeader;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// What the echo demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// RTP packets the caller sent.
    pub packets_sent: u32,
    /// Sent packets that came back (each matched by its tag).
    pub packets_echoed: u32,
    /// Median round trip of an RTP packet through the echo app.
    pub median_rtt: Duration,
    /// INVITE sent → 200 OK received.
    pub setup_time: Duration,
    /// The server's record of the call, when it arrived in time.
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

/// Runs the echo demo, printing the call as it happens.
pub async fn run(packets: u32) -> Result<DemoReport, DemoError> {
    // The demo keeps its call records in a throwaway directory, removed at the end.
    let scratch = tempfile::Builder::new()
        .prefix("leadscaller-demo-echo-")
        .tempdir()?;
    let mut server = DemoServer::start(DEMO_CONFIG, "<demo>", scratch.path()).await?;
    say(&format!(
        "server: SIP/UDP on {}, route * -> echo",
        server.addr
    ));
    let result = call(server.addr, packets).await;
    let record = server.record(Duration::from_secs(2)).await;
    server.srv.stop();
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

async fn call(server: SocketAddr, packets: u32) -> io::Result<DemoReport> {
    let rtp = UdpSocket::bind("127.0.0.1:0").await?;
    let mut sip = SipCaller::bind(server, "echo").await?;
    let answered = sip.invite(rtp.local_addr()?.port(), &say).await?;
    say("caller: -> ACK; streaming a 440 Hz tone");
    let (sent, echoed, median_rtt) = stream_tone(&rtp, answered.remote_rtp, packets).await?;
    say(&format!(
        "caller: sent {sent} RTP packets, {echoed} came back, median RTT {:.2} ms",
        median_rtt.as_secs_f64() * 1e3
    ));
    sip.bye(&say).await?;
    Ok(DemoReport {
        packets_sent: sent,
        packets_echoed: echoed,
        median_rtt,
        setup_time: answered.setup_time,
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
