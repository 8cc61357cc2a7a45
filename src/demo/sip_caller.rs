//! The demo's simulated caller, SIP side: one UDP dialog placed by hand with our own
//! message types (INVITE with a PCMU offer, ACK, BYE; a BYE from the server answered 200).

use crate::sip::message::{Message, Method, Request, Response};
use crate::sip::parse::{ParseLimits, parse_datagram};
use crate::sip::sdp::SessionDescription;
use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// The caller's SIP dialog with the demo server.
pub struct SipCaller {
    sock: UdpSocket,
    server: SocketAddr,
    local: SocketAddr,
    /// The request URI (`sip:<user>@<server>`).
    uri: String,
    /// The server's tag, once answered.
    to_tag: Option<String>,
    cseq: u32,
    buf: Vec<u8>,
}

/// What the 200 OK to the INVITE said.
#[derive(Debug, Clone, Copy)]
pub struct Answered {
    /// Where the server wants our RTP.
    pub remote_rtp: SocketAddr,
    /// INVITE sent → 200 OK received.
    pub setup_time: Duration,
}

impl SipCaller {
    /// A caller on a fresh loopback socket that will call `user` at `server`.
    pub async fn bind(server: SocketAddr, user: &str) -> io::Result<SipCaller> {
        let sock = UdpSocket::bind("127.0.0.1:0").await?;
        let local = sock.local_addr()?;
        Ok(SipCaller {
            sock,
            server,
            local,
            uri: format!("sip:{user}@{server}"),
            to_tag: None,
            cseq: 1,
            buf: vec![0u8; 65_536],
        })
    }

    /// Sends the INVITE offering PCMU on `rtp_port` (Timer A by hand), waits for the final
    /// response and ACKs a 200. `say` prints each step.
    pub async fn invite(&mut self, rtp_port: u16, say: &dyn Fn(&str)) -> io::Result<Answered> {
        let sdp = format!(
            "v=0\r\no=demo 1 1 IN IP4 127.0.0.1\r\ns=demo\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
        );
        let mut invite = self.request(Method::Invite);
        invite.headers.push("Content-Type", "application/sdp");
        invite.body = Bytes::from(sdp);
        let invite_bytes = invite.to_bytes();
        let started = Instant::now();
        say(&format!("caller: INVITE {}", self.uri));
        let mut ok = None;
        for attempt in 0..6 {
            self.sock.send_to(&invite_bytes, self.server).await?;
            while let Some(resp) = self
                .response(Duration::from_millis(500 << attempt.min(3)))
                .await?
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
        self.to_tag = ok
            .headers
            .get("To")
            .and_then(|t| t.split("tag=").nth(1))
            .map(|t| t.split(';').next().unwrap_or(t).to_string());
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
        // The ACK of a 2xx keeps the INVITE's CSeq number.
        let ack = self.request(Method::Ack);
        self.sock.send_to(&ack.to_bytes(), self.server).await?;
        Ok(Answered {
            remote_rtp,
            setup_time,
        })
    }

    /// Hangs up: sends BYE until a response; fails unless it is 200.
    pub async fn bye(&mut self, say: &dyn Fn(&str)) -> io::Result<()> {
        self.cseq += 1;
        let bye = self.request(Method::Bye).to_bytes();
        say("caller: -> BYE");
        for _ in 0..4 {
            self.sock.send_to(&bye, self.server).await?;
            if let Some(r) = self.response(Duration::from_millis(500)).await? {
                say(&format!("caller: <- {} {}", r.status, r.reason));
                if r.status == 200 {
                    return Ok(());
                }
                break;
            }
        }
        Err(io::Error::other("BYE was not answered with 200"))
    }

    /// Waits for the next request from the server and answers it: a BYE gets 200 and
    /// returns `true`; anything else gets 200 (a retransmitted 200 OK is ignored). Cancel-safe.
    pub async fn serve_one(&mut self) -> io::Result<bool> {
        loop {
            let (n, from) = self.sock.recv_from(&mut self.buf).await?;
            let Ok(Message::Request(req)) = parse_datagram(&self.buf[..n], &ParseLimits::default())
            else {
                continue;
            };
            if req.method == Method::Ack {
                continue;
            }
            let ok = response_to(&req, 200, "OK");
            self.sock.send_to(&ok.to_bytes(), from).await?;
            return Ok(req.method == Method::Bye);
        }
    }

    async fn response(&mut self, wait: Duration) -> io::Result<Option<Response>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let r = tokio::time::timeout_at(deadline, self.sock.recv_from(&mut self.buf)).await;
            let Ok(r) = r else { return Ok(None) };
            let (n, _) = r?;
            if let Ok(Message::Response(resp)) =
                parse_datagram(&self.buf[..n], &ParseLimits::default())
            {
                return Ok(Some(resp));
            }
        }
    }

    fn request(&self, method: Method) -> Request {
        let (uri, local, cseq) = (&self.uri, self.local, self.cseq);
        let mut r = Request::new(method.clone(), uri.as_str());
        r.headers.push(
            "Via",
            format!("SIP/2.0/UDP {local};branch=z9hG4bK-demo-{cseq}-{method};rport"),
        );
        r.headers.push("Max-Forwards", "70");
        r.headers.push(
            "From",
            format!("\"Demo Caller\" <sip:lead@{local}>;tag=demo-caller"),
        );
        match &self.to_tag {
            Some(t) => r.headers.push("To", format!("<{uri}>;tag={t}")),
            None => r.headers.push("To", format!("<{uri}>")),
        }
        r.headers.push("Call-ID", "demo-call@leadscaller");
        r.headers.push("CSeq", format!("{cseq} {method}"));
        r.headers.push("Contact", format!("<sip:lead@{local}>"));
        r.headers.push("User-Agent", "leadscaller-demo-caller");
        r
    }
}

/// A response to `req` with its Via, From, To, Call-ID and CSeq.
fn response_to(req: &Request, status: u16, reason: &str) -> Response {
    let mut r = Response::new(status, reason);
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for v in req.headers.get_all(name) {
            r.headers.push(name, v);
        }
    }
    r
}
