//! The echo app's media: every RTP packet received is sent back to where it came from
//! (symmetric RTP latching), re-stamped with our own SSRC.

use crate::rtp::packet::{RtpHeader, set_ssrc};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

/// What the echo media loop saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoStats {
    pub received: u64,
    pub echoed: u64,
    pub dropped: u64,
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
    pub async fn run(
        self,
        signalled: SocketAddr,
        timeout: Duration,
        mut stop: oneshot::Receiver<()>,
    ) -> EchoStats {
        let mut stats = EchoStats::default();
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
                        if RtpHeader::parse(&buf[..n]).is_none() {
                            stats.dropped += 1;
                            continue;
                        }
                        // Latch to the first source (NAT); the SDP address is only a hint.
                        let dest = *latched.get_or_insert(from);
                        if from != dest {
                            stats.dropped += 1;
                            continue;
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
        let _ = signalled;
        stats
    }
}
