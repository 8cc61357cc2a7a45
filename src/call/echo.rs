//! The echo app's media: every RTP packet received is sent back to where it came from
//! (symmetric RTP latching), re-stamped with our own SSRC.

use crate::rtp::dtmf::{DtmfReceiver, TelephoneEvent};
use crate::rtp::packet::{RtpHeader, set_ssrc};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// What the echo media loop saw.
#[derive(Debug, Clone, Default)]
pub struct EchoStats {
    pub received: u64,
    pub echoed: u64,
    pub dropped: u64,
    /// RFC 4733 digits received, in order (each press once).
    pub digits: String,
    /// True when the loop ended because no RTP arrived within the media timeout.
    pub timed_out: bool,
}

/// The bound RTP and RTCP sockets of one echo call.
pub struct EchoMedia {
    rtp: UdpSocket,
    /// Held so that the RTCP port stays ours; RTCP is read and discarded for now.
    rtcp: UdpSocket,
}

impl EchoMedia {
    /// Binds RTP on `port` and RTCP on `port + 1`.
    pub async fn bind(ip: IpAddr, port: u16) -> io::Result<EchoMedia> {
        let rtp = UdpSocket::bind(SocketAddr::new(ip, port)).await?;
        let rtcp = UdpSocket::bind(SocketAddr::new(ip, port + 1)).await?;
        Ok(EchoMedia { rtp, rtcp })
    }

    /// Binds the first free pair handed out by `allocate` (up to 16 tries), giving ports
    /// that another process holds back through `release`.
    pub async fn bind_free_pair(
        ip: IpAddr,
        mut allocate: impl FnMut() -> Option<u16>,
        mut release: impl FnMut(u16),
    ) -> Option<(u16, EchoMedia)> {
        for _ in 0..16 {
            let port = allocate()?;
            match EchoMedia::bind(ip, port).await {
                Ok(m) => return Some((port, m)),
                Err(e) => {
                    tracing::debug!(port, error = %e, "RTP port busy; trying the next");
                    release(port);
                }
            }
        }
        None
    }

    /// Echoes until `stop` fires or no packet arrives for `timeout`.
    /// `dtmf` is the negotiated telephone-event payload type and its clock rate: those
    /// packets are echoed too, and each press is logged once and collected in the stats.
    pub async fn run(
        self,
        dtmf: Option<(u8, u32)>,
        timeout: Duration,
        mut stop: oneshot::Receiver<()>,
    ) -> EchoStats {
        let mut stats = EchoStats::default();
        let mut digits = DtmfReceiver::new(dtmf.map_or(8000, |(_, rate)| rate));
        let ssrc: u32 = rand::random();
        let mut buf = vec![0u8; 2048];
        let mut rtcp_buf = vec![0u8; 2048];
        let mut latched: Option<SocketAddr> = None;
        loop {
            tokio::select! {
                _ = &mut stop => break,
                r = tokio::time::timeout(timeout, self.rtp.recv_from(&mut buf)) => match r {
                    Err(_) => { stats.timed_out = true; break; }
                    Ok(Err(e)) => { tracing::debug!(error = %e, "RTP receive error"); }
                    Ok(Ok((n, from))) => {
                        stats.received += 1;
                        let Some(header) = RtpHeader::parse(&buf[..n]) else {
                            stats.dropped += 1;
                            continue;
                        };
                        // Latch to the first source (NAT); the SDP address is only a hint.
                        let dest = *latched.get_or_insert(from);
                        if from != dest {
                            stats.dropped += 1;
                            continue;
                        }
                        let digit = match dtmf {
                            Some((pt, _)) if header.payload_type == pt => {
                                TelephoneEvent::parse(&buf[header.payload_offset..n])
                                    .ok()
                                    .and_then(|ev| digits.push(header.timestamp, header.marker, ev))
                            }
                            // Audio moves the clock on, closing a press whose end packets were lost.
                            _ => digits.on_timeout(header.timestamp),
                        };
                        if let Some(d) = digit {
                            tracing::info!(digit = %d.digit, duration_ms = d.duration_ms, "DTMF");
                            stats.digits.push(d.digit);
                        }
                        set_ssrc(&mut buf[..n], ssrc);
                        if self.rtp.send_to(&buf[..n], dest).await.is_ok() {
                            stats.echoed += 1;
                        }
                    }
                },
                _ = self.rtcp.recv_from(&mut rtcp_buf) => {}
            }
        }
        stats
    }
}
