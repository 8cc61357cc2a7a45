//! RFC 4475 torture suite against the real SIP driver on loopback, over UDP and TCP.
//!
//! Every message of `shared/sip-torture/rfc4475` is sent to a fresh in-process server (one
//! per message and transport, so that messages which share a branch, such as cparam01 and
//! cparam02, are not taken for retransmissions of each other). The answer is checked against
//! `CASES`, then a well-formed OPTIONS must still get a 200 from the same server. The test
//! prints a table and fails once, listing every mismatch.
//!
//! UDP responses go where RFC 3261 §18.2.2 says: the source IP and the port of the top Via
//! (5060 when absent) unless the Via carries `rport`. So each UDP case binds, on its own
//! loopback address 127.x.y.z (Linux routes all of 127/8 to lo), one socket per Via port the
//! torture messages use, and sends from the 5060 one.
//!
//! On TCP a message is framed by its Content-Length. When the bytes sent do not complete a
//! message (clerr.dat announces 9999 body bytes; baddn.dat, as archived, has no blank line
//! after its headers), the server must wait for more. For those the test half-closes its
//! write side after the no-answer window and asserts that nothing came back before the
//! server closed the connection (no 400 invented for a message that never completed), and
//! the probe on a fresh connection then shows the server is still serving.

use leadscaller::sip::endpoint::{EndpointConfig, Event, Transport};
use leadscaller::sip::headers::Via;
use leadscaller::sip::message::{Headers, Message, Response};
use leadscaller::sip::parse::{ParseError, ParseLimits, StreamEvent, StreamFramer, parse_datagram};
use leadscaller::sip::transaction::TimerConfig;
use leadscaller::sip::transport::{self, Command};
use leadscaller::sip::validate::{validate_request, validate_response};
use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};

const TORTURE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/sip-torture/rfc4475");

/// How long to wait for an answer that must come.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
/// How long to listen when no answer must come.
const SILENCE_WAIT: Duration = Duration::from_millis(500);

/// What the server must do with one torture message.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Processed as a valid request by this UA: a final response that is 200 (OPTIONS),
    /// 486 (our responder busies every INVITE, after a 100), 405/501 (methods we do not
    /// serve) or 481 (in-dialog request without a dialog). Never a 4xx for syntax.
    Accepted,
    /// A final response with one of `codes`; when given, the reason phrase must contain
    /// `reason` (case-insensitive) and the response must carry header `header`.
    Status {
        codes: &'static [u16],
        reason: Option<&'static str>,
        header: Option<&'static str>,
    },
    /// No answer at all (responses without a transaction; incomplete stream messages).
    Silence,
}

const ACCEPTED_CODES: &[u16] = &[200, 405, 481, 486, 501];

const fn bad(reason: &'static str) -> Expect {
    Expect::Status {
        codes: &[400],
        reason: Some(reason),
        header: None,
    }
}

const fn status(code: &'static [u16], header: Option<&'static str>) -> Expect {
    Expect::Status {
        codes: code,
        reason: None,
        header,
    }
}

impl Expect {
    fn describe(&self) -> String {
        match self {
            Expect::Accepted => "accepted (200/405/481/486/501)".into(),
            Expect::Silence => "no answer".into(),
            Expect::Status {
                codes,
                reason,
                header,
            } => {
                let mut s = codes
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join("/");
                if let Some(r) = reason {
                    s.push_str(&format!(" ~'{r}'"));
                }
                if let Some(h) = header {
                    s.push_str(&format!(" +{h}"));
                }
                s
            }
        }
    }
}

/// One torture message, its RFC 4475 class, and what we expect over UDP and over TCP.
struct Case {
    file: &'static str,
    class: &'static str,
    udp: Expect,
    /// `None`: same as UDP.
    tcp: Option<Expect>,
}

const fn case(file: &'static str, class: &'static str, udp: Expect) -> Case {
    Case {
        file,
        class,
        udp,
        tcp: None,
    }
}

/// The expectations, in RFC 4475 order (see shared/sip-torture/README.md).
const CASES: &[Case] = &[
    // 3.1.1 valid messages
    case("wsinv.dat", "valid", Expect::Accepted), // To has a tag: 481, no such dialog
    case("intmeth.dat", "valid", Expect::Accepted), // unknown method: 501
    case("esc01.dat", "valid", Expect::Accepted),
    case("escnull.dat", "valid", Expect::Accepted),
    case("esc02.dat", "valid", Expect::Accepted),
    case("lwsdisp.dat", "valid", Expect::Accepted),
    case("longreq.dat", "valid", Expect::Accepted),
    // Over UDP the trailing INVITE is ignored; over TCP it is a second message whose answers
    // come after the REGISTER's 405, which is the one judged.
    case("dblreq.dat", "valid", Expect::Accepted),
    case("semiuri.dat", "valid", Expect::Accepted),
    case("transports.dat", "valid", Expect::Accepted),
    case("mpart01.dat", "valid", Expect::Accepted),
    case("unreason.dat", "valid", Expect::Silence), // a response with no transaction
    case("noreason.dat", "valid", Expect::Silence),
    // 3.1.2 invalid messages
    case("badinv01.dat", "invalid", bad("Via")),
    Case {
        file: "clerr.dat",
        class: "invalid",
        udp: bad("Content-Length"),
        // On a stream the server waits for the 9999 announced bytes; EOF ends it silently.
        tcp: Some(Expect::Silence),
    },
    case("ncl.dat", "invalid", bad("Content-Length")),
    case("scalar02.dat", "invalid", bad("CSeq")),
    case("scalarlg.dat", "invalid", Expect::Silence), // a response: dropped
    case("quotbal.dat", "invalid", bad("To")),
    case("ltgtruri.dat", "invalid", bad("Request-URI")),
    case("lwsruri.dat", "invalid", bad("Request-URI")),
    case("lwsstart.dat", "invalid", bad("line")),
    case("trws.dat", "invalid", bad("line")),
    case("escruri.dat", "invalid", bad("Request-URI")),
    case("baddate.dat", "invalid", bad("Date")),
    case("regbadct.dat", "invalid", bad("Contact")),
    case("badaspec.dat", "invalid", bad("To")),
    Case {
        file: "baddn.dat",
        class: "invalid",
        udp: bad("From"),
        // As archived the file has no blank line after its headers: a datagram still ends
        // there, a stream does not, so over TCP the server waits and EOF ends it silently.
        tcp: Some(Expect::Silence),
    },
    case(
        "badvers.dat",
        "invalid",
        Expect::Status {
            codes: &[505],
            reason: Some("version"),
            header: None,
        },
    ),
    case("mismatch01.dat", "invalid", bad("CSeq")),
    // RFC 4475 §3.1.2.18: 501 is preferred, 400 acceptable.
    case(
        "mismatch02.dat",
        "invalid",
        Expect::Status {
            codes: &[400, 501],
            reason: None,
            header: None,
        },
    ),
    case("bigcode.dat", "invalid", Expect::Silence), // a response: dropped
    // 3.2 transaction layer
    case("badbranch.dat", "semantic", Expect::Accepted), // RFC 2543 matching: 200
    // 3.3 application layer
    case("insuf.dat", "semantic", bad("Missing")),
    case("unkscm.dat", "semantic", status(&[416], None)),
    case("novelsc.dat", "semantic", status(&[416], None)),
    // §3.3.4: "a registrar would reject this request with a 400" (To must be a SIP AOR);
    // a UA that is not a registrar may equally answer 405.
    case(
        "unksm2.dat",
        "semantic",
        Expect::Status {
            codes: &[400, 405],
            reason: None,
            header: None,
        },
    ),
    case(
        "bext01.dat",
        "semantic",
        status(&[420], Some("Unsupported")),
    ),
    case("invut.dat", "semantic", status(&[415], Some("Accept"))),
    case("regaut01.dat", "semantic", Expect::Accepted), // not a registrar: 405
    case("multi01.dat", "semantic", bad("Multiple")),
    case("mcl01.dat", "semantic", bad("Content-Length")),
    case("bcast.dat", "semantic", Expect::Silence), // a response: dropped, never sent on
    // §3.3.11: "an endpoint should process the request as if Max-Forwards were still
    // positive" — we are the endpoint, so OPTIONS gets its 200.
    case("zeromf.dat", "semantic", status(&[200], None)),
    case("cparam01.dat", "semantic", Expect::Accepted), // not a registrar: 405
    case("cparam02.dat", "semantic", Expect::Accepted),
    case("regescrt.dat", "semantic", Expect::Accepted),
    case("sdp01.dat", "semantic", status(&[406], Some("Accept"))),
    // 3.4 backward compatibility
    case("inv2543.dat", "valid", Expect::Accepted),
];

// ---------------------------------------------------------------------------------------
// The server under test.

struct Server {
    udp: SocketAddr,
    tcp: SocketAddr,
    shutdown: watch::Sender<bool>,
    responder: JoinHandle<()>,
}

impl Server {
    /// Starts the real driver on loopback plus a call layer that busies every INVITE.
    async fn start() -> Server {
        let (events_tx, mut events_rx) = mpsc::channel::<Event>(64);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let cfg = EndpointConfig {
            advertised_host: "127.0.0.1".into(),
            advertised_ports: HashMap::new(),
            user_agent: "test".into(),
            timers: TimerConfig::default(),
            limits: ParseLimits::default(),
        };
        let listeners = [
            (Transport::Udp, "127.0.0.1:0".parse().unwrap()),
            (Transport::Tcp, "127.0.0.1:0".parse().unwrap()),
        ];
        let handle = transport::start(&listeners, cfg, events_tx, shutdown_rx)
            .await
            .expect("start the SIP driver on loopback");
        let addr = |t| {
            handle
                .bound
                .iter()
                .find(|(bt, _)| *bt == t)
                .map(|(_, a)| *a)
                .expect("listener bound")
        };
        let (udp, tcp) = (addr(Transport::Udp), addr(Transport::Tcp));
        let commands = handle.commands.clone();
        let responder = tokio::spawn(async move {
            while let Some(ev) = events_rx.recv().await {
                if let Event::IncomingCall { tx, .. } = ev {
                    let respond = Command::Respond {
                        tx,
                        status: 486,
                        headers: Vec::new(),
                        body: None,
                    };
                    if commands.send(respond).await.is_err() {
                        return;
                    }
                }
            }
        });
        Server {
            udp,
            tcp,
            shutdown,
            responder,
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.responder.abort();
    }
}

// ---------------------------------------------------------------------------------------
// Clients.

/// A response as the client saw it (or bytes it could not parse).
#[derive(Debug, Clone)]
enum Received {
    Response(Response),
    Garbage(String),
}

impl Received {
    fn status(&self) -> Option<u16> {
        match self {
            Received::Response(r) => Some(r.status),
            Received::Garbage(_) => None,
        }
    }

    fn call_id(&self) -> Option<&str> {
        match self {
            Received::Response(r) => r.headers.get("Call-ID"),
            Received::Garbage(_) => None,
        }
    }

    fn summary(&self) -> String {
        match self {
            Received::Response(r) => format!("{} {}", r.status, r.reason),
            Received::Garbage(e) => format!("unparseable ({e})"),
        }
    }
}

fn received_from_datagram(bytes: &[u8]) -> Received {
    match parse_datagram(bytes, &ParseLimits::default()) {
        Ok(Message::Response(r)) => Received::Response(r),
        Ok(Message::Request(r)) => Received::Garbage(format!("a {} request", r.method)),
        Err(e) => Received::Garbage(e.error.to_string()),
    }
}

/// Hands out loopback addresses 127.b.c.d, unique in this process and, through the
/// process id, unlikely to collide with another run of this test on the same machine.
fn next_loopback() -> Ipv4Addr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let b = 1 + (pid % 250) as u8;
    let c = 1 + ((pid / 250 + n / 250) % 250) as u8;
    let d = 1 + (n % 250) as u8;
    Ipv4Addr::new(127, b, c, d)
}

/// UDP sockets on one loopback address, one per port the server may answer to.
struct UdpClient {
    ip: Ipv4Addr,
    sender: Arc<UdpSocket>,
    rx: mpsc::UnboundedReceiver<Received>,
    readers: Vec<JoinHandle<()>>,
}

impl UdpClient {
    async fn bind(ports: &BTreeSet<u16>) -> Result<UdpClient, String> {
        let mut last_err = String::new();
        'ip: for _ in 0..20 {
            let ip = next_loopback();
            let mut sockets = Vec::new();
            for &port in ports {
                match UdpSocket::bind((ip, port)).await {
                    Ok(s) => sockets.push((port, Arc::new(s))),
                    Err(e) => {
                        last_err = format!("cannot bind {ip}:{port}: {e}");
                        continue 'ip;
                    }
                }
            }
            let sender = sockets
                .iter()
                .find(|(p, _)| *p == 5060)
                .map(|(_, s)| s.clone())
                .ok_or("port 5060 missing")?;
            let (tx, rx) = mpsc::unbounded_channel();
            let readers = sockets
                .into_iter()
                .map(|(_, s)| {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65_536];
                        while let Ok((n, _)) = s.recv_from(&mut buf).await {
                            if tx.send(received_from_datagram(&buf[..n])).is_err() {
                                return;
                            }
                        }
                    })
                })
                .collect();
            return Ok(UdpClient {
                ip,
                sender,
                rx,
                readers,
            });
        }
        Err(format!(
            "no free loopback address to receive UDP responses on the Via ports {ports:?} ({last_err})"
        ))
    }

    fn local(&self) -> SocketAddr {
        SocketAddr::new(self.ip.into(), 5060)
    }
}

impl Drop for UdpClient {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

/// One TCP connection; responses are framed by the crate's own `StreamFramer`. The channel
/// closes when the server closes the connection.
struct TcpClient {
    local: SocketAddr,
    write: Option<tokio::net::tcp::OwnedWriteHalf>,
    rx: mpsc::UnboundedReceiver<Received>,
    reader: JoinHandle<()>,
}

impl TcpClient {
    async fn connect(server: SocketAddr) -> Result<TcpClient, String> {
        let stream = TcpStream::connect(server)
            .await
            .map_err(|e| format!("TCP connect to {server}: {e}"))?;
        let local = stream.local_addr().map_err(|e| e.to_string())?;
        let (mut rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut framer = StreamFramer::new(ParseLimits::default());
            let mut buf = vec![0u8; 16_384];
            loop {
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                framer.push(&buf[..n]);
                while let Some(ev) = framer.next_event() {
                    let r = match ev {
                        StreamEvent::Message(Message::Response(r)) => Received::Response(r),
                        StreamEvent::Message(Message::Request(r)) => {
                            Received::Garbage(format!("a {} request", r.method))
                        }
                        StreamEvent::KeepAlivePing => continue,
                        StreamEvent::Malformed(f) | StreamEvent::Fatal(f) => {
                            Received::Garbage(f.error.to_string())
                        }
                    };
                    if tx.send(r).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(TcpClient {
            local,
            write: Some(wr),
            rx,
            reader,
        })
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        match self.write.as_mut() {
            Some(w) => w
                .write_all(bytes)
                .await
                .map_err(|e| format!("TCP write: {e}")),
            None => Err("write side already closed".into()),
        }
    }

    /// Half-closes: the server sees EOF but can still answer.
    async fn shutdown_write(&mut self) {
        if let Some(mut w) = self.write.take() {
            let _ = w.shutdown().await;
        }
    }
}

impl Drop for TcpClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Collects responses until a final one arrives (when `until_final`), the deadline passes,
/// or the channel closes. Returns the responses and whether the channel closed.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Received>,
    deadline: Instant,
    until_final: bool,
) -> (Vec<Received>, bool) {
    let mut got = Vec::new();
    loop {
        match timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) => {
                let is_final = r.status().is_none_or(|s| s >= 200);
                got.push(r);
                if until_final && is_final {
                    return (got, false);
                }
            }
            Ok(None) => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

fn probe_request(transport: &str, local: SocketAddr, n: u32) -> Vec<u8> {
    format!(
        "OPTIONS sip:probe@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bKprobe{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{ip}>;tag=probe{n}\r\n\
         To: <sip:leadscaller@127.0.0.1>\r\n\
         Call-ID: probe-{n}@{ip}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        ip = local.ip()
    )
    .into_bytes()
}

/// Waits for the probe's answer; anything else that arrives meanwhile is returned as late.
async fn await_probe(
    rx: &mut mpsc::UnboundedReceiver<Received>,
    call_id: &str,
) -> (Option<Received>, Vec<Received>) {
    let deadline = Instant::now() + ANSWER_WAIT;
    let mut late = Vec::new();
    loop {
        match timeout_at(deadline, rx.recv()).await {
            Ok(Some(r)) if r.call_id() == Some(call_id) => {
                if r.status().is_some_and(|s| s < 200) {
                    continue;
                }
                return (Some(r), late);
            }
            Ok(Some(r)) => late.push(r),
            Ok(None) | Err(_) => return (None, late),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running and judging.

struct Outcome {
    file: &'static str,
    transport: &'static str,
    class: &'static str,
    expected: String,
    got: String,
    problems: Vec<String>,
}

fn judge(expect: &Expect, got: &[Received], late: &[Received]) -> Vec<String> {
    let mut problems = Vec::new();
    let final_resp = got.iter().find(|r| r.status().is_none_or(|s| s >= 200));
    match expect {
        Expect::Silence => {
            if !got.is_empty() || !late.is_empty() {
                problems.push("expected no answer".into());
            }
        }
        Expect::Accepted | Expect::Status { .. } => {
            let (codes, reason, header) = match expect {
                Expect::Status {
                    codes,
                    reason,
                    header,
                } => (*codes, *reason, *header),
                _ => (ACCEPTED_CODES, None, None),
            };
            match final_resp {
                None => problems.push("no final response".into()),
                Some(Received::Garbage(e)) => problems.push(format!("unparseable answer: {e}")),
                Some(Received::Response(r)) => {
                    if !codes.contains(&r.status) {
                        problems.push(format!("status {} not in {codes:?}", r.status));
                    }
                    if let Some(want) = reason
                        && !r.reason.to_lowercase().contains(&want.to_lowercase())
                    {
                        problems.push(format!("reason {:?} does not name {want:?}", r.reason));
                    }
                    if let Some(h) = header
                        && r.headers.get(h).is_none_or(str::is_empty)
                    {
                        problems.push(format!("missing {h} header"));
                    }
                }
            }
            for r in got.iter().filter(|r| r.status().is_some_and(|s| s < 200)) {
                if r.status() != Some(100) {
                    problems.push(format!("unexpected provisional {}", r.summary()));
                }
            }
        }
    }
    problems
}

fn describe_got(got: &[Received], late: &[Received], note: &str) -> String {
    let mut s = if got.is_empty() {
        "none".to_string()
    } else {
        got.iter()
            .map(Received::summary)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !late.is_empty() {
        let l = late.iter().map(Received::summary).collect::<Vec<_>>();
        s.push_str(&format!(" (late: {})", l.join(", ")));
    }
    s.push_str(note);
    s
}

fn probe_problem(probe: Option<Received>) -> Option<String> {
    match probe {
        Some(r) if r.status() == Some(200) => None,
        Some(r) => Some(format!("probe OPTIONS got {}", r.summary())),
        None => Some("probe OPTIONS got no answer: server stopped serving".into()),
    }
}

fn wait_for(expect: &Expect) -> Duration {
    match expect {
        Expect::Silence => SILENCE_WAIT,
        _ => ANSWER_WAIT,
    }
}

async fn run_udp(case: &Case, msg: &[u8], ports: &BTreeSet<u16>, n: u32) -> Outcome {
    let expect = case.udp;
    let mut out = Outcome {
        file: case.file,
        transport: "UDP",
        class: case.class,
        expected: expect.describe(),
        got: String::new(),
        problems: Vec::new(),
    };
    let server = Server::start().await;
    let mut client = match UdpClient::bind(ports).await {
        Ok(c) => c,
        Err(e) => {
            out.problems.push(e);
            server.stop().await;
            return out;
        }
    };
    if let Err(e) = client.sender.send_to(msg, server.udp).await {
        out.problems.push(format!("UDP send: {e}"));
    }
    let deadline = Instant::now() + wait_for(&expect);
    let (got, _) = collect(&mut client.rx, deadline, true).await;
    let probe = probe_request("UDP", client.local(), n);
    let _ = client.sender.send_to(&probe, server.udp).await;
    let call_id = format!("probe-{n}@{}", client.ip);
    let (probe_answer, mut late) = await_probe(&mut client.rx, &call_id).await;
    // Retransmissions of an answer already seen are expected over UDP; only a response to a
    // message that must stay unanswered matters here.
    if !matches!(expect, Expect::Silence) {
        late.clear();
    }
    out.problems.extend(judge(&expect, &got, &late));
    out.problems.extend(probe_problem(probe_answer));
    out.got = describe_got(&got, &late, "");
    drop(client);
    server.stop().await;
    out
}

async fn run_tcp(case: &Case, msg: &[u8], n: u32) -> Outcome {
    let expect = case.tcp.unwrap_or(case.udp);
    let mut out = Outcome {
        file: case.file,
        transport: "TCP",
        class: case.class,
        expected: expect.describe(),
        got: String::new(),
        problems: Vec::new(),
    };
    let server = Server::start().await;
    let mut conn = match TcpClient::connect(server.tcp).await {
        Ok(c) => c,
        Err(e) => {
            out.problems.push(e);
            server.stop().await;
            return out;
        }
    };
    if let Err(e) = conn.send(msg).await {
        out.problems.push(e);
    }
    let deadline = Instant::now() + wait_for(&expect);
    let (mut got, closed) = collect(&mut conn.rx, deadline, true).await;
    let has_final = got.iter().any(|r| r.status().is_none_or(|s| s >= 200));
    let note = if !has_final && !closed {
        // Nothing final yet: the server may be waiting for the rest of a message. Half-close;
        // whatever it says before closing its side still counts.
        conn.shutdown_write().await;
        let (more, eof) = collect(&mut conn.rx, Instant::now() + ANSWER_WAIT, false).await;
        got.extend(more);
        if eof {
            " [half-closed; server closed]"
        } else {
            " [half-closed; server kept the connection open]"
        }
    } else if closed {
        " [server closed]"
    } else {
        ""
    };
    let mut probe_conn = match TcpClient::connect(server.tcp).await {
        Ok(c) => c,
        Err(e) => {
            out.problems.push(format!("probe: {e}"));
            server.stop().await;
            return out;
        }
    };
    let probe = probe_request("TCP", probe_conn.local, n);
    let call_id = format!("probe-{n}@{}", probe_conn.local.ip());
    let probe_answer = match probe_conn.send(&probe).await {
        Ok(()) => await_probe(&mut probe_conn.rx, &call_id).await.0,
        Err(_) => None,
    };
    // Anything the first connection said meanwhile, for messages that must stay unanswered.
    let late = if matches!(expect, Expect::Silence) {
        let mut late = Vec::new();
        while let Ok(r) = conn.rx.try_recv() {
            late.push(r);
        }
        late
    } else {
        Vec::new()
    };
    out.problems.extend(judge(&expect, &got, &late));
    out.problems.extend(probe_problem(probe_answer));
    out.got = describe_got(&got, &late, note);
    drop(conn);
    drop(probe_conn);
    server.stop().await;
    out
}

fn load_messages() -> Vec<(&'static Case, Vec<u8>)> {
    let dir = Path::new(TORTURE_DIR);
    assert!(
        dir.is_dir(),
        "RFC 4475 torture messages not found at {TORTURE_DIR}: this test needs the shared/ \
         folder beside the repository checkout (../shared/sip-torture/rfc4475 relative to \
         the crate)"
    );
    let mut on_disk: BTreeSet<String> = std::fs::read_dir(dir)
        .expect("read the torture directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dat"))
        .collect();
    let mut out = Vec::new();
    for c in CASES {
        let path = dir.join(c.file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        on_disk.remove(c.file);
        out.push((c, bytes));
    }
    assert!(
        on_disk.is_empty(),
        "torture files without an expectation in CASES: {on_disk:?}"
    );
    assert_eq!(out.len(), 49, "RFC 4475 has 49 torture messages");
    out
}

/// Every port a response may be sent to: 5060 plus the top-Via ports of the messages.
fn via_ports(messages: &[(&Case, Vec<u8>)]) -> BTreeSet<u16> {
    let mut ports = BTreeSet::from([5060]);
    for (_, bytes) in messages {
        let headers: Option<Headers> = match parse_datagram(bytes, &ParseLimits::default()) {
            Ok(m) => Some(m.headers().clone()),
            Err(f) => f.request_headers,
        };
        let port = headers.and_then(|h| {
            h.values("Via")
                .first()
                .and_then(|v| Via::parse(v).ok())
                .and_then(|v| v.port)
        });
        ports.extend(port);
    }
    ports
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "\n{:<15} {:<4} {:<9} {:<34} got",
        "file", "tx", "class", "expected"
    );
    println!("{}", "-".repeat(110));
    for o in outcomes {
        let mark = if o.problems.is_empty() {
            ""
        } else {
            "  <-- MISMATCH"
        };
        println!(
            "{:<15} {:<4} {:<9} {:<34} {}{mark}",
            o.file, o.transport, o.class, o.expected, o.got
        );
    }
    let bad = outcomes.iter().filter(|o| !o.problems.is_empty()).count();
    println!(
        "{} cases, {} passed, {} mismatched\n",
        outcomes.len(),
        outcomes.len() - bad,
        bad
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc4475_torture_messages_over_udp_and_tcp() {
    let messages = load_messages();
    let ports = via_ports(&messages);
    let mut outcomes = Vec::new();
    // UDP and TCP runs are independent (separate servers and sockets): run them side by side.
    let udp = async {
        let mut v = Vec::new();
        for (i, (c, bytes)) in messages.iter().enumerate() {
            v.push(run_udp(c, bytes, &ports, i as u32).await);
        }
        v
    };
    let tcp = async {
        let mut v = Vec::new();
        for (i, (c, bytes)) in messages.iter().enumerate() {
            v.push(run_tcp(c, bytes, 1000 + i as u32).await);
        }
        v
    };
    let (u, t) = tokio::join!(udp, tcp);
    for (a, b) in u.into_iter().zip(t) {
        outcomes.push(a);
        outcomes.push(b);
    }
    print_table(&outcomes);
    let mismatches: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.problems.is_empty())
        .map(|o| {
            format!(
                "{} over {}: expected {}, got {}: {}",
                o.file,
                o.transport,
                o.expected,
                o.got,
                o.problems.join("; ")
            )
        })
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} torture mismatches:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
}

/// One server gets every torture message, over both transports, back to back; it must
/// still answer an OPTIONS afterwards (accumulated transactions and dialogs break nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_survives_every_torture_message() {
    let messages = load_messages();
    let ports = via_ports(&messages);
    let server = Server::start().await;
    let mut client = UdpClient::bind(&ports).await.expect("bind UDP client");
    for (_, bytes) in &messages {
        client
            .sender
            .send_to(bytes, server.udp)
            .await
            .expect("UDP send");
        let mut conn = TcpClient::connect(server.tcp).await.expect("TCP connect");
        conn.send(bytes).await.expect("TCP write");
        conn.shutdown_write().await;
    }
    // Let the server chew, then drain whatever it answered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while client.rx.try_recv().is_ok() {}
    let probe = probe_request("UDP", client.local(), 9999);
    client
        .sender
        .send_to(&probe, server.udp)
        .await
        .expect("UDP send");
    let (answer, _) = await_probe(&mut client.rx, &format!("probe-9999@{}", client.ip)).await;
    assert_eq!(
        answer.and_then(|r| r.status()),
        Some(200),
        "the server stopped serving UDP"
    );
    let mut conn = TcpClient::connect(server.tcp).await.expect("TCP connect");
    let probe = probe_request("TCP", conn.local, 9998);
    conn.send(&probe).await.expect("TCP write");
    let call_id = format!("probe-9998@{}", conn.local.ip());
    let (answer, _) = await_probe(&mut conn.rx, &call_id).await;
    assert_eq!(
        answer.and_then(|r| r.status()),
        Some(200),
        "the server stopped serving TCP"
    );
    server.stop().await;
}

/// The parser-level invariants the fuzz target checks, on the torture messages themselves:
/// no panic, and whatever parses re-serializes to bytes that parse back to the same message.
#[test]
fn torture_messages_round_trip_through_the_parser() {
    for (c, bytes) in load_messages() {
        check_parser_invariants(&bytes).unwrap_or_else(|e| panic!("{}: {e}", c.file));
    }
}

/// Inputs that once broke the parser (found by `fuzz/`, or by hand), kept as regressions.
const PARSER_REGRESSIONS: &[(&str, &[u8])] = &[
    // Headers ended by the end of the datagram, without the blank line (baddn.dat).
    (
        "datagram without blank line",
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nl: 0\r\n",
    ),
    // fuzz crash-e767c607: byte 4 of the start line inside a UTF-8 character ('¿') made
    // `&line[..4]` panic in parse_start_line (likewise parse_head and parse_version).
    (
        "UTF-8 across byte 4 of a start line",
        b"RE&\xc2\xbfexample\r\n\r\n",
    ),
    (
        "UTF-8 across byte 4 of a SIP version",
        b"INVITE sip:a@b SIP\xc3\xa9/2.0\r\nl: 0\r\n\r\n",
    ),
    // fuzz crash-9d001016: `end + term + len` overflowed in StreamFramer::next_event for a
    // Content-Length near usize::MAX (in release it wrapped and `advance` panicked).
    (
        "stream Content-Length of usize::MAX",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 18446744073709551615\r\n\r\n",
    ),
    // The same overflow on the path that skips the body of a message with a bad head.
    (
        "huge Content-Length after a bad start line",
        b"OPTIONS  sip:a@b SIP/2.0\r\nContent-Length: 18446744073709551614\r\n\r\n",
    ),
    ("lone line end", b"\r\n"),
    ("lone LF", b"\n"),
];

#[test]
fn fuzz_regressions() {
    for (name, input) in PARSER_REGRESSIONS {
        check_parser_invariants(input).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// A body longer than the size limit ends the stream at once, whether or not the head
/// parsed, instead of buffering until the peer has sent it all.
#[test]
fn framer_refuses_bodies_beyond_the_limit() {
    for head in ["OPTIONS sip:a@b SIP/2.0", "OPTIONS  sip:a@b SIP/2.0"] {
        for len in ["70000", "18446744073709551614", "18446744073709551615"] {
            let mut framer = StreamFramer::new(ParseLimits::default());
            framer.push(format!("{head}\r\nContent-Length: {len}\r\n\r\n").as_bytes());
            let ev = framer.next_event();
            assert!(
                matches!(ev, Some(StreamEvent::Fatal(_))),
                "{head:?} with Content-Length {len}: {ev:?}"
            );
        }
    }
}

/// Headers without Content-Length, which serialization rewrites from the body.
fn without_content_length(h: &Headers) -> Vec<(String, String)> {
    h.iter()
        .filter(|x| !x.name.is("Content-Length"))
        .map(|x| (x.name.as_str().to_string(), x.value.clone()))
        .collect()
}

/// What `fuzz/fuzz_targets/sip_message.rs` asserts, usable on regression inputs (a panic
/// inside the crate fails the calling test as well).
fn check_parser_invariants(data: &[u8]) -> Result<(), String> {
    let limits = ParseLimits::default();
    let check = |msg: &Message| -> Result<(), String> {
        match msg {
            Message::Request(r) => {
                let _ = validate_request(r);
            }
            Message::Response(r) => {
                let _ = validate_response(r);
            }
        }
        let bytes = msg.to_bytes();
        let again = match parse_datagram(&bytes, &limits) {
            Ok(m) => m,
            Err(f) if matches!(f.error, ParseError::TooLarge(_)) => return Ok(()),
            Err(f) => return Err(format!("re-serialized message does not parse: {}", f.error)),
        };
        let same = match (msg, &again) {
            (Message::Request(a), Message::Request(b)) => {
                a.method == b.method && a.uri == b.uri && a.body == b.body
            }
            (Message::Response(a), Message::Response(b)) => {
                a.status == b.status && a.reason == b.reason && a.body == b.body
            }
            _ => false,
        };
        if !same || without_content_length(msg.headers()) != without_content_length(again.headers())
        {
            return Err(format!(
                "round trip changed the message:\n{msg:?}\n{again:?}"
            ));
        }
        Ok(())
    };
    if let Ok(msg) = parse_datagram(data, &limits) {
        check(&msg)?;
    }
    let split = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let mut framer = StreamFramer::new(limits);
    for chunk in [&data[..split], &data[split..]] {
        framer.push(chunk);
        let mut events = 0;
        while let Some(ev) = framer.next_event() {
            events += 1;
            if events > data.len() + 1 {
                return Err("StreamFramer keeps producing events without consuming input".into());
            }
            if let StreamEvent::Message(m) = ev {
                check(&m)?;
            }
        }
    }
    Ok(())
}
