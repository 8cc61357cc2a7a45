//! The thin tokio driver around [`Endpoint`]: UDP sockets and TCP listeners in, bytes out,
//! timers from `poll_timeout`. One task owns the endpoint; sockets talk to it by channels.

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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

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
    /// Start registering; the registration's id comes back on `reply`.
    Register {
        registration: Box<Registration>,
        reply: tokio::sync::oneshot::Sender<RegId>,
    },
    /// Remove a registration's binding.
    Unregister { reg: RegId },
    /// Send an OPTIONS ping (result arrives as `Event::PingResult`).
    Ping { target: Box<Uri>, peer: Peer },
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
    ConnOpened(u64, mpsc::Sender<Bytes>),
    ConnClosed(u64),
}

/// What `start` returns: the command channel and the addresses actually bound.
#[derive(Clone)]
pub struct SipHandle {
    pub commands: mpsc::Sender<Command>,
    pub bound: Vec<(Transport, SocketAddr)>,
}

/// Binds every listener and spawns the endpoint task, admitting every inbound call.
/// Events for the call layer arrive on `events`; the task ends when `shutdown` becomes true.
pub async fn start(
    listeners: &[(Transport, SocketAddr)],
    cfg: EndpointConfig,
    events: mpsc::Sender<Event>,
    shutdown: watch::Receiver<bool>,
) -> io::Result<SipHandle> {
    start_with_policy(listeners, cfg, InboundPolicy::open(), events, shutdown).await
}

/// Like [`start`], with an admission policy for inbound calls (allow-lists, digest users).
pub async fn start_with_policy(
    listeners: &[(Transport, SocketAddr)],
    cfg: EndpointConfig,
    policy: InboundPolicy,
    events: mpsc::Sender<Event>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<SipHandle> {
    let (in_tx, mut in_rx) = mpsc::channel::<Input>(4096);
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(4096);
    let mut udp: Vec<Arc<UdpSocket>> = Vec::new();
    let mut bound = Vec::new();
    let next_conn = Arc::new(std::sync::atomic::AtomicU64::new(1));
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
            Transport::Tcp => {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|e| with_addr(e, t, addr))?;
                bound.push((t, l.local_addr()?));
                tokio::spawn(tcp_acceptor(
                    l,
                    in_tx.clone(),
                    next_conn.clone(),
                    cfg.limits,
                    shutdown.clone(),
                ));
            }
            Transport::Tls => {
                tracing::warn!(%addr, "TLS listener not available in this build; skipped");
            }
        }
    }
    let mut cfg = cfg;
    for (t, a) in &bound {
        cfg.advertised_ports.entry(*t).or_insert(a.port());
    }
    let seed = rand::random::<u64>();
    let mut ep = Endpoint::new(cfg, seed);
    ep.set_inbound_policy(policy);
    tokio::spawn(async move {
        let mut conns: HashMap<u64, mpsc::Sender<Bytes>> = HashMap::new();
        loop {
            let deadline = ep.poll_timeout().map(Instant::from_std);
            tokio::select! {
                input = in_rx.recv() => {
                    let Some(input) = input else { break };
                    let now = Instant::now().into_std();
                    match input {
                        Input::Datagram(peer, b) => ep.handle_datagram(now, peer, &b),
                        Input::Message(peer, m) => ep.handle_message(now, peer, m),
                        Input::Malformed(peer, f) => ep.handle_parse_failure(peer, f),
                        Input::KeepAlive(peer) => {
                            if let Some(c) = peer.conn.and_then(|c| conns.get(&c)) {
                                let _ = c.try_send(Bytes::from_static(b"\r\n"));
                            }
                        }
                        Input::ConnOpened(id, w) => { conns.insert(id, w); }
                        Input::ConnClosed(id) => { conns.remove(&id); }
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
                match t.peer.conn {
                    Some(id) => {
                        if let Some(w) = conns.get(&id)
                            && w.try_send(t.bytes).is_err()
                        {
                            tracing::warn!(conn = id, "TCP writer backlog full; message dropped");
                        }
                    }
                    None => {
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

async fn tcp_acceptor(
    l: TcpListener,
    tx: mpsc::Sender<Input>,
    ids: Arc<std::sync::atomic::AtomicU64>,
    limits: super::parse::ParseLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = l.accept() => match r {
                Ok((stream, from)) => {
                    let id = ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::spawn(tcp_connection(stream, from, id, tx.clone(), limits));
                }
                Err(e) => tracing::warn!(error = %e, "TCP accept failed"),
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn tcp_connection(
    stream: TcpStream,
    from: SocketAddr,
    id: u64,
    tx: mpsc::Sender<Input>,
    limits: super::parse::ParseLimits,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (wtx, mut wrx) = mpsc::channel::<Bytes>(256);
    if tx.send(Input::ConnOpened(id, wtx)).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(b) = wrx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    let peer = Peer {
        transport: Transport::Tcp,
        addr: from,
        conn: Some(id),
    };
    let mut framer = StreamFramer::new(limits);
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
                    let _ = tx.send(Input::Malformed(peer, f)).await;
                    // Give the writer a moment to flush the error response.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    break 'read;
                }
            };
            if tx.send(input).await.is_err() {
                break 'read;
            }
        }
    }
    let _ = tx.send(Input::ConnClosed(id)).await;
    writer.abort();
}
