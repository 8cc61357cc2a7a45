//! The thin tokio driver around [`Endpoint`]: UDP sockets, TCP and TLS connections (accepted
//! and opened on demand) in, bytes out, timers from `poll_timeout`. One task owns the
//! endpoint; sockets talk to it by channels.

use super::endpoint::{
    CallId, Endpoint, EndpointConfig, Event, InboundPolicy, OutboundCall, Peer, RegId,
    Registration, Transport, TxId,
};
use super::message::Message;
use super::parse::{ParseFailure, StreamEvent, StreamFramer};
use super::uri::Uri;
use bytes::Bytes;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_rustls::rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A command from the call layer to the endpoint task.
#[derive(Debug)]
pub enum Command {
    /// Answer a server transaction (see [`Endpoint::respond`]).
    Respond {
        tx: TxId,
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Option<(&'static str, Bytes)>,
    },
    /// Hang up a call.
    Hangup { call: CallId },
    /// Blind-transfer a call's remote party to `target` (REFER).
    Refer { call: CallId, target: Box<Uri> },
    /// Start registering; the registration's id comes back on `reply`.
    Register {
        registration: Box<Registration>,
        reply: tokio::sync::oneshot::Sender<RegId>,
    },
    /// Remove a registration's binding.
    Unregister { reg: RegId },
    /// Send an OPTIONS ping (result arrives as `Event::PingResult`).
    Ping { target: Box<Uri>, peer: Peer },
    /// Remember the DNS name behind `addr`, used as the TLS server name (SNI and certificate
    /// check) when a TLS connection to that address is opened.
    NameHost { addr: SocketAddr, name: String },
    /// Place a call; the new call's id comes back on `reply`.
    Invite {
        call: Box<OutboundCall>,
        reply: tokio::sync::oneshot::Sender<CallId>,
    },
}

enum Input {
    Datagram(Peer, Bytes),
    Message(Peer, Message),
    Malformed(Peer, ParseFailure),
    KeepAlive(Peer),
    /// An accepted connection; sent on the same channel as its messages, before them.
    ConnOpened(u64, Transport, SocketAddr, mpsc::Sender<Bytes>),
    ConnClosed(u64),
}

/// What `start` returns: the command channel and the addresses actually bound.
#[derive(Clone)]
pub struct SipHandle {
    pub commands: mpsc::Sender<Command>,
    pub bound: Vec<(Transport, SocketAddr)>,
}

/// Optional parts of the driver.
#[derive(Clone)]
pub struct DriverOptions {
    /// Who may call in.
    pub policy: InboundPolicy,
    /// Certificate for TLS listeners; without it TLS listeners are skipped.
    pub tls_server: Option<Arc<ServerConfig>>,
    /// Trust for outbound TLS connections; `None` uses the system roots.
    pub tls_client: Option<Arc<ClientConfig>>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            policy: InboundPolicy::open(),
            tls_server: None,
            tls_client: None,
        }
    }
}

/// Binds every listener and spawns the endpoint task, admitting every inbound call.
/// Events for the call layer arrive on `events`; the task ends when `shutdown` becomes true.
pub async fn start(
    listeners: &[(Transport, SocketAddr)],
    cfg: EndpointConfig,
    events: mpsc::Sender<Event>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<SipHandle> {
    start_with(listeners, cfg, DriverOptions::default(), events, shutdown).await
}

/// Stream connections known to the endpoint task: writers by id, and ids by remote address
/// so that requests we originate reuse a connection (RFC 3261 §18.1.1).
#[derive(Default)]
struct Connections {
    writers: HashMap<u64, mpsc::Sender<Bytes>>,
    by_addr: HashMap<(Transport, SocketAddr), u64>,
}

/// Shared pieces a connection task needs.
#[derive(Clone)]
struct ConnCtx {
    input: mpsc::Sender<Input>,
    ids: Arc<AtomicU64>,
    limits: super::parse::ParseLimits,
}

/// Like [`start`], with an admission policy and TLS settings.
pub async fn start_with(
    listeners: &[(Transport, SocketAddr)],
    cfg: EndpointConfig,
    opts: DriverOptions,
    events: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<SipHandle> {
    let (in_tx, mut in_rx) = mpsc::channel::<Input>(4096);
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(4096);
    let mut udp: Vec<Arc<UdpSocket>> = Vec::new();
    let mut bound = Vec::new();
    let ctx = ConnCtx {
        input: in_tx.clone(),
        ids: Arc::new(AtomicU64::new(1)),
        limits: cfg.limits,
    };
    for &(t, addr) in listeners {
        match t {
            Transport::Udp => {
                let sock = Arc::new(
                    UdpSocket::bind(addr)
                        .await
                        .map_err(|e| with_addr(e, t, addr))?,
                );
                bound.push((t, sock.local_addr()?));
                udp.push(sock.clone());
                tokio::spawn(udp_reader(sock, in_tx.clone(), shutdown.clone()));
            }
            Transport::Tcp | Transport::Tls => {
                let acceptor = match (t, &opts.tls_server) {
                    (Transport::Tls, Some(cfg)) => Some(TlsAcceptor::from(cfg.clone())),
                    (Transport::Tls, None) => {
                        tracing::warn!(%addr, "TLS listener needs sip.tls_cert and sip.tls_key; skipped");
                        continue;
                    }
                    _ => None,
                };
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|e| with_addr(e, t, addr))?;
                bound.push((t, l.local_addr()?));
                tokio::spawn(acceptor_loop(l, t, acceptor, ctx.clone(), shutdown.clone()));
            }
        }
    }
    let tls_client = match opts.tls_client {
        Some(c) => c,
        None => super::tls::client_config(&[])?,
    };
    let connector = TlsConnector::from(tls_client);
    let mut cfg = cfg;
    for (t, a) in &bound {
        cfg.advertised_ports.entry(*t).or_insert(a.port());
    }
    let seed = rand::random::<u64>();
    let mut ep = Endpoint::new(cfg, seed);
    ep.set_inbound_policy(opts.policy);
    tokio::spawn(async move {
        let mut conns = Connections::default();
        let mut tls_names: HashMap<SocketAddr, String> = HashMap::new();
        loop {
            let deadline = ep.poll_timeout().map(Instant::from_std);
            tokio::select! {
                input = in_rx.recv() => {
                    let Some(input) = input else { break };
                    let now = Instant::now().into_std();
                    let malformed_before = ep.stats().malformed_in;
                    let transport = match &input {
                        Input::Datagram(p, _) | Input::Message(p, _) | Input::Malformed(p, _) => {
                            Some(p.transport)
                        }
                        _ => None,
                    };
                    match input {
                        Input::Datagram(peer, b) => ep.handle_datagram(now, peer, &b),
                        Input::Message(peer, m) => ep.handle_message(now, peer, m),
                        Input::Malformed(peer, f) => ep.handle_parse_failure(peer, f),
                        Input::KeepAlive(peer) => {
                            if let Some(c) = peer.conn.and_then(|c| conns.writers.get(&c)) {
                                let _ = c.try_send(Bytes::from_static(b"\r\n"));
                            }
                        }
                        Input::ConnOpened(id, t, addr, w) => {
                            conns.writers.insert(id, w);
                            conns.by_addr.insert((t, addr), id);
                        }
                        Input::ConnClosed(id) => {
                            conns.writers.remove(&id);
                            conns.by_addr.retain(|_, v| *v != id);
                        }
                    }
                    let malformed = ep.stats().malformed_in - malformed_before;
                    if let (Some(t), true) = (transport, malformed > 0) {
                        metrics::counter!(crate::telemetry::metrics::SIP_PARSE_ERRORS, "transport" => t.as_str())
                            .increment(malformed);
                    }
                }
                cmd = cmd_rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    let now = Instant::now().into_std();
                    match cmd {
                        Command::Respond { tx, status, headers, body } => {
                            ep.respond(now, &tx, status, &headers, body);
                        }
                        Command::Hangup { call } => ep.hangup(now, call),
                        Command::Refer { call, target } => {
                            ep.refer(now, call, &target);
                        }
                        Command::Invite { call, reply } => {
                            let _ = reply.send(ep.invite(now, *call));
                        }
                        Command::Register { registration, reply } => {
                            let _ = reply.send(ep.register(now, *registration));
                        }
                        Command::Unregister { reg } => ep.unregister(now, reg),
                        Command::Ping { target, peer } => {
                            ep.ping(now, &target, peer);
                        }
                        Command::NameHost { addr, name } => {
                            tls_names.insert(addr, name);
                        }
                    }
                }
                _ = sleep_until_opt(deadline) => {
                    ep.handle_timeout(Instant::now().into_std());
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break; }
                }
            }
            while let Some(t) = ep.poll_transmit() {
                if t.peer.transport == Transport::Udp {
                    let sock = udp
                        .iter()
                        .find(|s| {
                            s.local_addr()
                                .is_ok_and(|a| a.is_ipv4() == t.peer.addr.is_ipv4())
                        })
                        .or(udp.first());
                    if let Some(s) = sock
                        && let Err(e) = s.send_to(&t.bytes, t.peer.addr).await
                    {
                        tracing::debug!(peer = %t.peer.addr, error = %e, "UDP send failed");
                    }
                    continue;
                }
                let id = t
                    .peer
                    .conn
                    .filter(|id| conns.writers.contains_key(id))
                    .or_else(|| conns.by_addr.get(&(t.peer.transport, t.peer.addr)).copied());
                let writer = match id {
                    Some(id) => conns.writers.get(&id).cloned(),
                    None => {
                        let name = tls_names.get(&t.peer.addr).cloned();
                        let (id, w) = open_connection(&ctx, t.peer, name, connector.clone());
                        conns.writers.insert(id, w.clone());
                        conns.by_addr.insert((t.peer.transport, t.peer.addr), id);
                        Some(w)
                    }
                };
                match writer {
                    Some(w) if w.try_send(t.bytes).is_ok() => {}
                    _ => {
                        tracing::warn!(peer = %t.peer.addr, "stream connection gone or backlogged; message dropped")
                    }
                }
            }
            while let Some(ev) = ep.poll_event() {
                if events.send(ev).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(SipHandle {
        commands: cmd_tx,
        bound,
    })
}

fn with_addr(e: io::Error, t: Transport, addr: SocketAddr) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("cannot bind SIP {} listener on {addr}: {e}", t.as_str()),
    )
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn udp_reader(
    sock: Arc<UdpSocket>,
    tx: mpsc::Sender<Input>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let peer = Peer { transport: Transport::Udp, addr: from, conn: None };
                    if tx.send(Input::Datagram(peer, Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        return;
                    }
                }
                // ICMP port-unreachable surfaces as an error on some systems; keep serving.
                Err(e) => tracing::debug!(error = %e, "UDP receive error"),
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn acceptor_loop(
    l: TcpListener,
    transport: Transport,
    tls: Option<TlsAcceptor>,
    ctx: ConnCtx,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = l.accept() => match r {
                Ok((stream, from)) => {
                    let _ = stream.set_nodelay(true);
                    let id = ctx.ids.fetch_add(1, Ordering::Relaxed);
                    let (wtx, wrx) = mpsc::channel::<Bytes>(256);
                    // Registered before the reader starts, on the channel its messages use,
                    // so a response never finds the connection unknown.
                    if ctx.input.send(Input::ConnOpened(id, transport, from, wtx)).await.is_err() {
                        return;
                    }
                    let peer = Peer { transport, addr: from, conn: Some(id) };
                    let ctx = ctx.clone();
                    match tls.clone() {
                        Some(acceptor) => {
                            tokio::spawn(async move {
                                // A bounded handshake so a silent client cannot hold a task.
                                let hs = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await;
                                match hs {
                                    Ok(Ok(s)) => run_connection(s, peer, wrx, ctx).await,
                                    _ => {
                                        tracing::debug!(peer = %from, "TLS handshake failed");
                                        let _ = ctx.input.send(Input::ConnClosed(id)).await;
                                    }
                                }
                            });
                        }
                        None => { tokio::spawn(run_connection(stream, peer, wrx, ctx)); }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "accept failed"),
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Opens an outbound TCP or TLS connection; bytes queued before it is up are sent after.
fn open_connection(
    ctx: &ConnCtx,
    peer: Peer,
    host: Option<String>,
    connector: TlsConnector,
) -> (u64, mpsc::Sender<Bytes>) {
    let id = ctx.ids.fetch_add(1, Ordering::Relaxed);
    let (wtx, wrx) = mpsc::channel::<Bytes>(256);
    let ctx = ctx.clone();
    let peer = Peer {
        conn: Some(id),
        ..peer
    };
    tokio::spawn(async move {
        let connect = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            TcpStream::connect(peer.addr),
        )
        .await;
        let stream = match connect {
            Ok(Ok(s)) => s,
            _ => {
                tracing::warn!(peer = %peer.addr, transport = peer.transport.as_str(), "connect failed");
                let _ = ctx.input.send(Input::ConnClosed(id)).await;
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        if peer.transport == Transport::Tls {
            // The trunk's DNS name when we know it (certificates name hosts), else the IP.
            use tokio_rustls::rustls::pki_types::ServerName;
            let name = host
                .and_then(|h| ServerName::try_from(h).ok())
                .unwrap_or_else(|| ServerName::IpAddress(peer.addr.ip().into()));
            match connector.connect(name, stream).await {
                Ok(s) => run_connection(s, peer, wrx, ctx).await,
                Err(e) => {
                    tracing::warn!(peer = %peer.addr, error = %e, "TLS connect failed");
                    let _ = ctx.input.send(Input::ConnClosed(id)).await;
                }
            }
        } else {
            run_connection(stream, peer, wrx, ctx).await;
        }
    });
    (id, wtx)
}

/// Reads framed messages from a stream and writes queued bytes to it until either side ends.
async fn run_connection<S>(stream: S, peer: Peer, mut outgoing: mpsc::Receiver<Bytes>, ctx: ConnCtx)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let Some(id) = peer.conn else { return };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        while let Some(b) = outgoing.recv().await {
            if wr.write_all(&b).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
    });
    let mut framer = StreamFramer::new(ctx.limits);
    let mut buf = vec![0u8; 16_384];
    'read: loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.push(&buf[..n]);
        while let Some(ev) = framer.next_event() {
            let input = match ev {
                StreamEvent::Message(m) => Input::Message(peer, m),
                StreamEvent::KeepAlivePing => Input::KeepAlive(peer),
                StreamEvent::Malformed(f) => Input::Malformed(peer, f),
                StreamEvent::Fatal(f) => {
                    let _ = ctx.input.send(Input::Malformed(peer, f)).await;
                    // Give the writer a moment to flush the error response.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    break 'read;
                }
            };
            if ctx.input.send(input).await.is_err() {
                break 'read;
            }
        }
    }
    let _ = ctx.input.send(Input::ConnClosed(id)).await;
    writer.abort();
}
