//! The SIP user agent core, sans-IO: feed it messages and time, take out bytes to send,
//! events for the call layer, and the next deadline. It owns transactions and dialogs; the
//! call layer decides what to answer (`respond`) and when to hang up (`hangup`).

use super::headers::{CSeq, NameAddr, Via};
use super::message::{Message, Method, Request, Response, reason_phrase};
use super::parse::{ParseFailure, ParseLimits, parse_datagram};
use super::transaction::{
    ClientTransaction, ResponseAction, ServerTransaction, TimerAction, TimerConfig,
};
use super::uri::Uri;
use super::validate::{Rejection, RequestCore, validate_request, validate_response};
use bytes::Bytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The transport a message travelled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    /// The Via transport token.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Stream transports deliver reliably, so no retransmission timers run on them.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }
}

/// Where a message came from or goes to: transport, address and (for streams) connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// The stream connection id assigned by the driver; `None` for UDP.
    pub conn: Option<u64>,
}

/// Bytes the driver must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub peer: Peer,
    pub bytes: Bytes,
}

/// A handle on one call (one INVITE dialog).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// A handle on a server transaction awaiting the call layer's response.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxId(String);

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The remote party sent BYE.
    RemoteBye,
    /// We sent BYE (and it completed or timed out).
    LocalBye,
    /// The caller cancelled before answer.
    Cancelled,
    /// No ACK arrived for our 2xx within 64*T1.
    AckTimeout,
    /// We rejected the call with this status.
    Rejected(u16),
    /// The session timer ran out without a refresh (RFC 4028).
    SessionExpired,
    /// Our outbound INVITE failed with this final status (408 when nothing answered).
    Failed(u16),
}

/// What the endpoint tells the call layer.
// A few events per call, never per packet: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A new INVITE: answer it with `respond` (1xx/2xx/reject).
    IncomingCall {
        call: CallId,
        tx: TxId,
        request: Box<Request>,
        from: NameAddr,
        to: NameAddr,
        peer: Peer,
        /// The trunk whose allow-list admitted the source address.
        trunk: Option<String>,
        /// The digest user that authenticated.
        user: Option<String>,
    },
    /// An in-dialog request the call layer must answer (re-INVITE, UPDATE, INFO).
    InDialogRequest {
        call: CallId,
        tx: TxId,
        request: Box<Request>,
    },
    /// The ACK for our 2xx arrived: media may flow both ways.
    CallConfirmed { call: CallId },
    /// Our outbound INVITE got a provisional response (180/183, with early SDP if any).
    CallProgress {
        call: CallId,
        status: u16,
        body: Bytes,
    },
    /// Our outbound INVITE was answered (the ACK is already sent); `body` is the SDP answer.
    CallAnswered { call: CallId, body: Bytes },
    /// A registration succeeded; it is refreshed automatically before `expires` runs out.
    Registered { reg: RegId, expires: u32 },
    /// A registration attempt failed (408 when unanswered); it is retried after `retry_in`.
    RegistrationFailed {
        reg: RegId,
        status: u16,
        retry_in: Duration,
    },
    /// Progress of a blind transfer we asked for: the REFER's final status
    /// (`from_notify` false; 202 means accepted), then the transferee's call status from
    /// each NOTIFY sipfrag (`from_notify` true; a 2xx means the transfer succeeded).
    TransferProgress {
        call: CallId,
        status: u16,
        from_notify: bool,
    },
    /// An OPTIONS ping was answered (408 when it timed out).
    PingResult {
        ping: PingId,
        status: u16,
        rtt: Duration,
    },
    /// The call is over; no more events for it.
    CallEnded { call: CallId, reason: EndReason },
}

/// Static settings of the endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Host (or IP) we advertise in Via and Contact.
    pub advertised_host: String,
    /// Advertised port per transport.
    pub advertised_ports: HashMap<Transport, u16>,
    /// Value of our User-Agent / Server header.
    pub user_agent: String,
    pub timers: TimerConfig,
    pub limits: ParseLimits,
}

impl EndpointConfig {
    fn port(&self, t: Transport) -> u16 {
        self.advertised_ports.get(&t).copied().unwrap_or(match t {
            Transport::Tls => 5061,
            _ => 5060,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// INVITE received, no final response yet.
    Early,
    /// 2xx sent, waiting for ACK.
    Answered,
    Confirmed,
    /// BYE sent, waiting for its response.
    Terminating,
}

#[derive(Debug)]
struct Dialog {
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    /// Our URI as the remote sees it (the To of their INVITE).
    local: NameAddr,
    /// Their From of the INVITE.
    remote: NameAddr,
    remote_target: Uri,
    route_set: Vec<String>,
    local_seq: u32,
    remote_seq: u32,
    peer: Peer,
    state: CallState,
    invite_tx: Option<String>,
    /// Our last 2xx to an INVITE, retransmitted until ACK (§13.3.1.4).
    ok_bytes: Option<Bytes>,
    ok_resend_at: Option<Instant>,
    ok_interval: Duration,
    ok_give_up: Option<Instant>,
    /// CSeq of the INVITE whose 2xx awaits ACK.
    ok_cseq: u32,
    /// Present when we placed the call.
    uac: Option<uac::UacState>,
    /// RFC 4028 session timer, when negotiated.
    session: Option<session_timer::SessionTimer>,
}

impl Dialog {
    fn deadline(&self) -> Option<Instant> {
        match (self.ok_resend_at, self.ok_give_up) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[derive(Debug)]
struct ServerEntry {
    tx: ServerTransaction,
    request: Request,
    peer: Peer,
    call: Option<CallId>,
}

#[derive(Debug)]
struct ClientEntry {
    tx: ClientTransaction,
    call: Option<CallId>,
    peer: Peer,
    method: Method,
    /// Kept for INVITEs: the ACK of a non-2xx final copies its headers.
    request: Option<Request>,
    /// Set for transactions that serve a registration or an OPTIONS ping.
    other: Option<Other>,
}

/// A response that a client transaction passed on, with what the owner needs.
struct Delivered {
    call: Option<CallId>,
    request: Option<Request>,
}

/// Non-call owners of a client transaction.
#[derive(Debug, Clone, Copy)]
enum Other {
    Register(RegId),
    Ping(PingId, Instant),
    /// A session-refresh re-INVITE of this call.
    Refresh(CallId),
    /// A REFER (blind transfer) of this call.
    Refer(CallId),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerRef {
    Server(String),
    Client(String),
    Dialog(CallId),
    Register(RegId),
    Session(CallId),
}

/// Counters for monitoring.
#[derive(Debug, Default, Clone, Copy)]
pub struct EndpointStats {
    pub requests_in: u64,
    pub responses_in: u64,
    /// Messages that failed to parse or to validate (requests among them got a 4xx).
    pub malformed_in: u64,
    pub retransmissions_absorbed: u64,
}

/// The SIP UA core.
pub struct Endpoint {
    cfg: EndpointConfig,
    server: HashMap<String, ServerEntry>,
    client: HashMap<String, ClientEntry>,
    dialogs: HashMap<CallId, Dialog>,
    /// (Call-ID, local tag) → call, for in-dialog request matching.
    by_dialog: HashMap<(String, String), CallId>,
    registrations: HashMap<RegId, register::RegState>,
    gate: inbound::Gate,
    next_other: u64,
    timers: BinaryHeap<Reverse<(Instant, TimerRef)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_call: u64,
    rng_state: u64,
    stats: EndpointStats,
}

mod inbound;
mod refer;
mod register;
mod session_timer;
mod uac;
pub use inbound::{InboundPolicy, TrustedSources};
pub use register::{PingId, RegId, Registration};
pub use uac::OutboundCall;

/// Allowed methods advertised in Allow headers.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY";

impl Endpoint {
    /// A new endpoint; `seed` feeds tag and branch generation (pass real randomness).
    pub fn new(cfg: EndpointConfig, seed: u64) -> Endpoint {
        Endpoint {
            cfg,
            server: HashMap::new(),
            client: HashMap::new(),
            dialogs: HashMap::new(),
            by_dialog: HashMap::new(),
            registrations: HashMap::new(),
            gate: inbound::Gate::new(InboundPolicy::open()),
            next_other: 1,
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_call: 1,
            rng_state: seed | 1,
            stats: EndpointStats::default(),
        }
    }

    /// Counters since start.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// Number of live calls (dialogs, early or confirmed).
    pub fn active_calls(&self) -> usize {
        self.dialogs.len()
    }

    /// Next bytes to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the call layer, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    fn random_token(&mut self) -> String {
        // xorshift64*: tags and branches need uniqueness, not secrecy.
        let mut x = self.rng_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng_state = x;
        format!("{:016x}", x.wrapping_mul(0x2545_f491_4f6c_dd1d))
    }

    fn arm(&mut self, at: Option<Instant>, r: TimerRef) {
        if let Some(at) = at {
            self.timers.push(Reverse((at, r)));
        }
    }

    fn send(&mut self, peer: Peer, bytes: Bytes) {
        self.transmits.push_back(Transmit { peer, bytes });
    }

    /// Feeds one UDP datagram.
    pub fn handle_datagram(&mut self, now: Instant, peer: Peer, data: &[u8]) {
        match parse_datagram(data, &self.cfg.limits) {
            Ok(msg) => self.handle_message(now, peer, msg),
            Err(failure) => self.handle_parse_failure(peer, failure),
        }
    }

    /// Answers a request that failed to parse (if enough of it was readable); responses
    /// that fail to parse are dropped.
    pub fn handle_parse_failure(&mut self, peer: Peer, failure: ParseFailure) {
        self.stats.malformed_in += 1;
        tracing::debug!(peer = %peer.addr, error = %failure.error, "malformed SIP message");
        let Some(headers) = failure.request_headers else {
            return;
        };
        let rejection = Rejection {
            status: failure.error.status(),
            reason: reason_for(&failure.error),
            headers: Vec::new(),
        };
        self.send_stateless(peer, &headers, &rejection);
    }

    /// Sends an error response built from whatever headers the bad request had.
    fn send_stateless(&mut self, peer: Peer, h: &super::message::Headers, rej: &Rejection) {
        // Without Via we cannot route a response; without the dialog-forming headers the
        // peer could not match it anyway.
        if h.count("Via") == 0 {
            return;
        }
        let mut resp = Response::new(rej.status, rej.reason.clone());
        for v in h.get_all("Via") {
            resp.headers.push("Via", v);
        }
        for name in ["From", "To", "Call-ID", "CSeq"] {
            if let Some(v) = h.get(name) {
                let v = if name == "To" && !v.contains("tag=") && rej.status > 100 {
                    format!("{v};tag={}", self.random_token())
                } else {
                    v.to_string()
                };
                resp.headers.push(name, v);
            }
        }
        for (k, v) in &rej.headers {
            resp.headers.push(k, v.clone());
        }
        resp.headers.push("Server", self.cfg.user_agent.clone());
        let dest = response_destination(peer, h.values("Via").first().copied());
        self.send(dest, Bytes::from(resp.to_bytes()));
    }

    /// Feeds one parsed message (stream transports frame messages themselves).
    pub fn handle_message(&mut self, now: Instant, peer: Peer, msg: Message) {
        match msg {
            Message::Request(req) => {
                self.stats.requests_in += 1;
                self.handle_request(now, peer, req);
            }
            Message::Response(resp) => {
                self.stats.responses_in += 1;
                self.handle_response(now, resp);
            }
        }
    }

    fn handle_request(&mut self, now: Instant, peer: Peer, mut req: Request) {
        let core = match validate_request(&req) {
            Ok(c) => {
                stamp_received(&mut req, peer);
                c
            }
            Err(rej) => {
                self.stats.malformed_in += 1;
                tracing::debug!(peer = %peer.addr, status = rej.status, reason = %rej.reason, "rejecting request");
                if req.method != Method::Ack {
                    self.send_stateless(peer, &req.headers, &rej);
                }
                return;
            }
        };
        let key = server_key(&core, &req.method);
        if req.method == Method::Ack {
            self.handle_ack(now, &core, &key);
            return;
        }
        if let Some(entry) = self.server.get(&key) {
            self.stats.retransmissions_absorbed += 1;
            if let Some(bytes) = entry.tx.on_request_retransmission() {
                let p = entry.peer;
                self.send(p, bytes);
            }
            return;
        }
        if req.method == Method::Cancel {
            self.handle_cancel(now, peer, req, &key);
            return;
        }
        let reliable = peer.transport.is_reliable();
        let is_invite = req.method == Method::Invite;
        let dest = response_destination(peer, req.headers.values("Via").first().copied());
        let mut entry = ServerEntry {
            tx: ServerTransaction::new(is_invite, reliable, self.cfg.timers),
            request: req,
            peer: dest,
            call: None,
        };
        if let Some(tag) = core.to.tag().map(str::to_string) {
            // In-dialog request.
            let Some(&call) = self.by_dialog.get(&(core.call_id.clone(), tag)) else {
                self.server.insert(key.clone(), entry);
                self.respond_simple(now, &key, 481, &[]);
                return;
            };
            entry.call = Some(call);
            let method = entry.request.method.clone();
            if let Some(d) = self.dialogs.get_mut(&call) {
                if core.cseq.seq <= d.remote_seq && method != Method::Ack {
                    self.server.insert(key.clone(), entry);
                    self.respond_simple(now, &key, 500, &[("Retry-After", "1".into())]);
                    return;
                }
                d.remote_seq = core.cseq.seq;
                if let Some(c) = core.contacts.first()
                    && matches!(method, Method::Invite | Method::Update)
                {
                    d.remote_target = c.uri.clone();
                }
            }
            self.server.insert(key.clone(), entry);
            match method {
                Method::Bye => {
                    self.respond_simple(now, &key, 200, &[]);
                    self.end_call(call, EndReason::RemoteBye);
                }
                Method::Invite | Method::Update
                    if Self::session_too_small(&self.server[&key].request) =>
                {
                    let min = ("Min-SE", session_timer::MIN_SE.to_string());
                    self.respond_simple(now, &key, 422, &[min]);
                }
                Method::Invite | Method::Update | Method::Info => {
                    if method == Method::Invite {
                        self.respond_simple(now, &key, 100, &[]);
                    }
                    let request = self.server[&key].request.clone();
                    self.events.push_back(Event::InDialogRequest {
                        call,
                        tx: TxId(key),
                        request: Box::new(request),
                    });
                }
                Method::Notify => {
                    let status = self.on_notify(call, &self.server[&key].request.clone());
                    self.respond_simple(now, &key, status, &[]);
                }
                Method::Options => self.respond_simple(now, &key, 200, &[]),
                Method::Other(_) => self.respond_simple(now, &key, 501, &[("Allow", ALLOW.into())]),
                _ => self.respond_simple(now, &key, 405, &[("Allow", ALLOW.into())]),
            }
            return;
        }
        let method = entry.request.method.clone();
        self.server.insert(key.clone(), entry);
        match method {
            Method::Invite if Self::session_too_small(&self.server[&key].request) => {
                let min = ("Min-SE", session_timer::MIN_SE.to_string());
                self.respond_simple(now, &key, 422, &[min]);
            }
            Method::Invite => match self.gate.admit(now, peer, &self.server[&key].request) {
                inbound::Admission::Accept { trunk, user } => {
                    self.new_incoming_call(now, peer, &key, core, trunk, user)
                }
                inbound::Admission::Challenge(www) => {
                    self.respond_simple(now, &key, 401, &[("WWW-Authenticate", www)])
                }
                inbound::Admission::Forbidden => self.respond_simple(now, &key, 403, &[]),
            },
            Method::Options => self.respond_simple(
                now,
                &key,
                200,
                &[
                    ("Allow", ALLOW.into()),
                    ("Accept", "application/sdp".into()),
                    ("Supported", "timer, replaces".into()),
                ],
            ),
            Method::Bye => self.respond_simple(now, &key, 481, &[]),
            Method::Other(_) => self.respond_simple(now, &key, 501, &[("Allow", ALLOW.into())]),
            _ => self.respond_simple(now, &key, 405, &[("Allow", ALLOW.into())]),
        }
    }

    fn new_incoming_call(
        &mut self,
        now: Instant,
        peer: Peer,
        key: &str,
        core: RequestCore,
        trunk: Option<String>,
        user: Option<String>,
    ) {
        let call = CallId(self.next_call);
        self.next_call += 1;
        let local_tag = self.random_token();
        let remote_target = core
            .contacts
            .first()
            .map(|c| c.uri.clone())
            .unwrap_or_else(|| core.from.uri.clone());
        let request = self.server[key].request.clone();
        let route_set: Vec<String> = request
            .headers
            .values("Record-Route")
            .into_iter()
            .map(str::to_string)
            .collect();
        let dest = self.server[key].peer;
        let dialog = Dialog {
            call_id: core.call_id.clone(),
            local_tag: local_tag.clone(),
            remote_tag: core.from.tag().map(str::to_string),
            local: core.to.clone(),
            remote: core.from.clone(),
            remote_target,
            route_set,
            local_seq: self.random_seq(),
            remote_seq: core.cseq.seq,
            peer: dest,
            state: CallState::Early,
            invite_tx: Some(key.to_string()),
            ok_bytes: None,
            ok_resend_at: None,
            ok_interval: self.cfg.timers.t1,
            ok_give_up: None,
            ok_cseq: core.cseq.seq,
            uac: None,
            session: None,
        };
        self.by_dialog
            .insert((core.call_id.clone(), local_tag), call);
        self.dialogs.insert(call, dialog);
        if let Some(e) = self.server.get_mut(key) {
            e.call = Some(call);
        }
        self.respond_simple(now, key, 100, &[]);
        self.events.push_back(Event::IncomingCall {
            call,
            tx: TxId(key.to_string()),
            request: Box::new(request),
            from: core.from,
            to: core.to,
            peer,
            trunk,
            user,
        });
    }

    fn random_seq(&mut self) -> u32 {
        (u64::from_str_radix(&self.random_token()[..8], 16).unwrap_or(1) as u32 & 0x0fff_ffff) + 1
    }

    fn handle_ack(&mut self, now: Instant, core: &RequestCore, key: &str) {
        // ACK for a non-2xx final shares the INVITE's branch.
        let invite_key = key.replacen("|ACK", "|INVITE", 1);
        if let Some(e) = self.server.get_mut(&invite_key)
            && e.tx.last_status() >= 300
        {
            e.tx.on_ack(now);
            let d = e.tx.deadline();
            self.arm(d, TimerRef::Server(invite_key));
            return;
        }
        let Some(tag) = core.to.tag() else { return };
        let Some(&call) = self.by_dialog.get(&(core.call_id.clone(), tag.to_string())) else {
            return;
        };
        if let Some(d) = self.dialogs.get_mut(&call)
            && d.state == CallState::Answered
            && core.cseq.seq == d.ok_cseq
        {
            d.state = CallState::Confirmed;
            d.ok_bytes = None;
            d.ok_resend_at = None;
            d.ok_give_up = None;
            self.events.push_back(Event::CallConfirmed { call });
        }
    }

    fn handle_cancel(&mut self, now: Instant, peer: Peer, req: Request, key: &str) {
        let invite_key = key.replacen("|CANCEL", "|INVITE", 1);
        let dest = response_destination(peer, req.headers.values("Via").first().copied());
        let reliable = peer.transport.is_reliable();
        let invite = self.server.get(&invite_key);
        let pending = invite.is_some_and(|e| e.tx.awaiting_final());
        // §9.2: the 200 to CANCEL carries the same To tag as the INVITE's responses.
        let call = invite.and_then(|e| e.call);
        self.server.insert(
            key.to_string(),
            ServerEntry {
                tx: ServerTransaction::new(false, reliable, self.cfg.timers),
                request: req,
                peer: dest,
                call,
            },
        );
        if pending {
            self.respond_simple(now, key, 200, &[]);
            self.respond_simple(now, &invite_key, 487, &[]);
        } else {
            self.respond_simple(now, key, 481, &[]);
        }
    }

    /// Builds a response to the request of server transaction `key`, adding our To tag and
    /// Contact where the dialog needs them.
    fn build_response(
        &mut self,
        key: &str,
        status: u16,
        extra: &[(&str, String)],
        body: Option<(&str, Bytes)>,
    ) -> Option<Response> {
        let fresh_tag = self.random_token();
        let entry = self.server.get(key)?;
        let req = &entry.request;
        let mut resp = Response::new(status, reason_phrase(status));
        for v in req.headers.get_all("Via") {
            resp.headers.push("Via", v);
        }
        let dialog = entry.call.and_then(|c| self.dialogs.get(&c));
        let to = req.headers.get("To").unwrap_or("");
        let to = if status > 100 && !to.contains("tag=") {
            let tag = match dialog {
                Some(d) => d.local_tag.clone(),
                None => fresh_tag,
            };
            format!("{to};tag={tag}")
        } else {
            to.to_string()
        };
        let entry = self.server.get(key)?;
        let req = &entry.request;
        for name in ["From", "Call-ID", "CSeq"] {
            if name == "Call-ID" {
                resp.headers.push("To", to.clone());
            }
            if let Some(v) = req.headers.get(name) {
                resp.headers.push(name, v);
            }
        }
        let dialog_forming = req.method == Method::Invite && (101..300).contains(&status);
        if dialog_forming {
            for rr in req.headers.get_all("Record-Route") {
                resp.headers.push("Record-Route", rr);
            }
            let contact = self.contact(entry.peer.transport);
            resp.headers.push("Contact", contact);
            resp.headers.push("Allow", ALLOW);
            resp.headers.push("Supported", "timer, replaces");
        }
        resp.headers.push("Server", self.cfg.user_agent.clone());
        for (k, v) in extra {
            resp.headers.push(k, v.clone());
        }
        if let Some((ct, b)) = body {
            resp.headers.push("Content-Type", ct);
            resp.body = b;
        }
        Some(resp)
    }

    /// Our Contact header value for a transport.
    pub fn contact(&self, t: Transport) -> String {
        let port = self.cfg.port(t);
        let host = &self.cfg.advertised_host;
        match t {
            Transport::Udp => format!("<sip:leadscaller@{host}:{port}>"),
            Transport::Tcp => format!("<sip:leadscaller@{host}:{port};transport=tcp>"),
            Transport::Tls => format!("<sips:leadscaller@{host}:{port}>"),
        }
    }

    fn respond_simple(&mut self, now: Instant, key: &str, status: u16, extra: &[(&str, String)]) {
        self.respond_inner(now, key, status, extra, None);
    }

    /// Answers a server transaction handed out in an event. `body` is (content type, bytes).
    /// For the INVITE of a call, a 2xx starts 2xx retransmission until the ACK and a final
    /// non-2xx ends the call.
    pub fn respond(
        &mut self,
        now: Instant,
        tx: &TxId,
        status: u16,
        extra: &[(&str, String)],
        body: Option<(&str, Bytes)>,
    ) -> bool {
        self.respond_inner(now, &tx.0, status, extra, body)
    }

    fn respond_inner(
        &mut self,
        now: Instant,
        key: &str,
        status: u16,
        extra: &[(&str, String)],
        body: Option<(&str, Bytes)>,
    ) -> bool {
        let mut extra: Vec<(&str, String)> = extra.to_vec();
        let session_request = self.server.get(key).and_then(|e| {
            let m = &e.request.method;
            let wants = (200..300).contains(&status)
                && matches!(m, Method::Invite | Method::Update)
                && e.tx.awaiting_final();
            wants
                .then(|| (e.call, e.request.clone()))
                .and_then(|(c, r)| c.map(|c| (c, r)))
        });
        if let Some((call, req)) = session_request {
            let headers = self.session_on_2xx(now, call, &req, body.as_ref().map(|(_, b)| b));
            extra.extend(headers);
        }
        let Some(resp) = self.build_response(key, status, &extra, body) else {
            return false;
        };
        let bytes = Bytes::from(resp.to_bytes());
        let Some(entry) = self.server.get_mut(key) else {
            return false;
        };
        if !entry.tx.on_send_response(now, status, bytes.clone()) {
            return false;
        }
        let peer = entry.peer;
        let call = entry.call;
        let is_invite = entry.tx.is_invite;
        let reliable = entry.tx.reliable;
        let deadline = entry.tx.deadline();
        let cseq = entry
            .request
            .headers
            .get("CSeq")
            .and_then(|c| CSeq::parse(c).ok())
            .map(|c| c.seq)
            .unwrap_or(0);
        let terminated = entry.tx.state == super::transaction::ServerState::Terminated;
        if status >= 200 {
            // After the final response only the key matters (retransmissions, ACK, CANCEL);
            // the request's headers and body would just sit in memory until Timer J/L.
            entry.request = Request::new(entry.request.method.clone(), String::new());
        }
        self.send(peer, bytes.clone());
        if terminated {
            self.server.remove(key);
        } else {
            self.arm(deadline, TimerRef::Server(key.to_string()));
        }
        if let (true, Some(call)) = (is_invite, call) {
            let t1 = self.cfg.timers.t1;
            if (200..300).contains(&status) {
                if let Some(d) = self.dialogs.get_mut(&call) {
                    d.state = CallState::Answered;
                    d.invite_tx = None;
                    d.ok_bytes = Some(bytes);
                    d.ok_cseq = cseq;
                    d.ok_interval = t1;
                    d.ok_resend_at = (!reliable).then_some(now + t1);
                    d.ok_give_up = Some(now + t1 * 64);
                    let dl = d.deadline();
                    self.arm(dl, TimerRef::Dialog(call));
                }
            } else if status >= 300
                && self
                    .dialogs
                    .get(&call)
                    .is_some_and(|d| d.state == CallState::Early)
            {
                // We only send 487 in answer to a CANCEL.
                let reason = if status == 487 {
                    EndReason::Cancelled
                } else {
                    EndReason::Rejected(status)
                };
                self.end_call(call, reason);
            }
        }
        true
    }

    fn end_call(&mut self, call: CallId, reason: EndReason) {
        if let Some(d) = self.dialogs.remove(&call) {
            self.by_dialog.remove(&(d.call_id, d.local_tag));
            self.events.push_back(Event::CallEnded { call, reason });
        }
    }

    /// Hangs up a call: BYE when confirmed (or answered), 480 while still ringing.
    pub fn hangup(&mut self, now: Instant, call: CallId) {
        let Some(d) = self.dialogs.get(&call) else {
            return;
        };
        match d.state {
            CallState::Early if d.uac.is_some() => self.send_cancel(now, call),
            CallState::Early => {
                if let Some(key) = d.invite_tx.clone() {
                    self.respond_simple(now, &key, 480, &[]);
                }
            }
            CallState::Answered | CallState::Confirmed => self.send_bye(now, call),
            CallState::Terminating => {}
        }
    }

    /// Builds an in-dialog request (§12.2.1.1): remote target as Request-URI, our tags,
    /// the next local CSeq, the route set, and a fresh branch. Returns it with its peer.
    fn in_dialog_request(&mut self, call: CallId, method: Method) -> Option<(Request, Peer)> {
        self.dialog_request(call, method, None)
    }

    /// The ACK for a 2xx to our INVITE with CSeq `seq` (§13.2.2.4): sent straight to the
    /// peer, outside any transaction. Returns the bytes, which a retransmitted 2xx reuses.
    fn send_ack_2xx(&mut self, call: CallId, seq: u32) -> Option<Bytes> {
        let (ack, peer) = self.dialog_request(call, Method::Ack, Some(seq))?;
        let bytes = Bytes::from(ack.to_bytes());
        self.send(peer, bytes.clone());
        Some(bytes)
    }

    /// [`Self::in_dialog_request`] with an explicit CSeq number (for ACK) or the next one.
    fn dialog_request(
        &mut self,
        call: CallId,
        method: Method,
        seq: Option<u32>,
    ) -> Option<(Request, Peer)> {
        let ua = self.cfg.user_agent.clone();
        let peer = self.dialogs.get(&call)?.peer;
        let via = self.new_via(peer.transport);
        let d = self.dialogs.get_mut(&call)?;
        let seq = match seq {
            Some(n) => n,
            None => {
                d.local_seq += 1;
                d.local_seq
            }
        };
        let mut req = Request::new(method.clone(), d.remote_target.to_string());
        req.headers.push("Via", via);
        req.headers.push("Max-Forwards", "70");
        let mut from = d.local.clone();
        from.params.set("tag", Some(&d.local_tag));
        let mut to = d.remote.clone();
        if let Some(t) = &d.remote_tag {
            to.params.set("tag", Some(t));
        }
        req.headers.push("From", from.to_string());
        req.headers.push("To", to.to_string());
        req.headers.push("Call-ID", d.call_id.clone());
        req.headers.push("CSeq", format!("{seq} {method}"));
        for r in &d.route_set {
            req.headers.push("Route", r.clone());
        }
        req.headers.push("User-Agent", ua);
        Some((req, peer))
    }

    /// A Via header value for a request we originate, with a fresh branch and rport.
    fn new_via(&mut self, t: Transport) -> String {
        let branch = self.random_token();
        format!(
            "SIP/2.0/{} {}:{};branch=z9hG4bK{branch};rport",
            t.as_str(),
            self.cfg.advertised_host,
            self.cfg.port(t),
        )
    }

    /// Feeds a response to client transaction `key`: resends the ACK the transaction owes
    /// and absorbs retransmissions. Returns the transaction's call and request when the
    /// response is new and must be acted on.
    fn step_client(&mut self, now: Instant, key: &str, resp: &Response) -> Option<Delivered> {
        let entry = self.client.get_mut(key)?;
        let request = entry.request.clone();
        let action = entry.tx.on_response(now, resp.status, || {
            Bytes::from(uac::ack_for_non_2xx(request.as_ref(), resp).to_bytes())
        });
        let (peer, call, deadline) = (entry.peer, entry.call, entry.tx.deadline());
        let delivered = match action {
            ResponseAction::Absorb(ack) => {
                self.stats.retransmissions_absorbed += 1;
                if let Some(a) = ack {
                    self.send(peer, a);
                }
                false
            }
            ResponseAction::DeliverAndAck(a) => {
                self.send(peer, a);
                true
            }
            ResponseAction::Deliver => true,
        };
        let is_invite = request.as_ref().is_some_and(|r| r.method == Method::Invite);
        if is_invite && (200..300).contains(&resp.status) {
            // An INVITE client transaction ends with its 2xx (§17.1.1.2).
            self.client.remove(key);
        } else {
            self.arm(deadline, TimerRef::Client(key.to_string()));
        }
        delivered.then_some(Delivered { call, request })
    }

    /// Sends `req` in a new client transaction keyed by its branch and method.
    fn start_client_tx(
        &mut self,
        now: Instant,
        req: Request,
        peer: Peer,
        call: Option<CallId>,
        other: Option<Other>,
    ) {
        let branch = req
            .headers
            .get("Via")
            .and_then(|v| Via::parse(v).ok())
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let method = req.method.clone();
        let bytes = Bytes::from(req.to_bytes());
        let is_invite = method == Method::Invite;
        let tx = ClientTransaction::new(
            is_invite,
            peer.transport.is_reliable(),
            self.cfg.timers,
            bytes.clone(),
            now,
        );
        let deadline = tx.deadline();
        let key = format!("{branch}|{method}");
        self.client.insert(
            key.clone(),
            ClientEntry {
                tx,
                call,
                peer,
                request: is_invite.then_some(req),
                method,
                other,
            },
        );
        self.send(peer, bytes);
        self.arm(deadline, TimerRef::Client(key));
    }

    fn send_bye(&mut self, now: Instant, call: CallId) {
        let Some((req, peer)) = self.in_dialog_request(call, Method::Bye) else {
            return;
        };
        if let Some(d) = self.dialogs.get_mut(&call) {
            d.state = CallState::Terminating;
            d.ok_resend_at = None;
            d.ok_give_up = None;
        }
        self.start_client_tx(now, req, peer, Some(call), None);
    }

    fn handle_response(&mut self, now: Instant, resp: Response) {
        let Some(core) = validate_response(&resp) else {
            self.stats.malformed_in += 1;
            return;
        };
        let Some(branch) = core.via.branch() else {
            return;
        };
        let key = format!("{branch}|{}", core.cseq.method);
        let Some(entry) = self.client.get_mut(&key) else {
            if core.cseq.method == Method::Invite && (200..300).contains(&resp.status) {
                self.on_2xx_retransmission(&core);
            }
            return;
        };
        if let Some(other) = entry.other {
            self.on_other_response(now, key, other, resp);
            return;
        }
        if entry.method == Method::Invite {
            self.on_invite_response(now, key, resp, core);
            return;
        }
        let Some(Delivered { call, .. }) = self.step_client(now, &key, &resp) else {
            return;
        };
        if let (true, Some(call)) = (resp.status >= 200 && core.cseq.method == Method::Bye, call) {
            self.end_call(call, EndReason::LocalBye);
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, r))) = self.timers.pop() else {
                break;
            };
            match r {
                TimerRef::Server(key) => self.fire_server(now, key),
                TimerRef::Client(key) => self.fire_client(now, key),
                TimerRef::Dialog(call) => self.fire_dialog(now, call),
                TimerRef::Register(reg) => self.fire_register(now, reg),
                TimerRef::Session(call) => self.fire_session(now, call),
            }
        }
    }

    fn fire_server(&mut self, now: Instant, key: String) {
        let Some(e) = self.server.get_mut(&key) else {
            return;
        };
        if e.tx.deadline().is_none_or(|d| d > now) {
            return;
        }
        match e.tx.on_timer(now) {
            TimerAction::Resend(b) => {
                let peer = e.peer;
                let d = e.tx.deadline();
                self.send(peer, b);
                self.arm(d, TimerRef::Server(key));
            }
            TimerAction::Terminated | TimerAction::TimedOut => {
                self.server.remove(&key);
            }
            TimerAction::None => {
                let d = e.tx.deadline();
                self.arm(d, TimerRef::Server(key));
            }
        }
    }

    fn fire_client(&mut self, now: Instant, key: String) {
        let Some(e) = self.client.get_mut(&key) else {
            return;
        };
        if e.tx.deadline().is_none_or(|d| d > now) {
            return;
        }
        match e.tx.on_timer(now) {
            TimerAction::Resend(b) => {
                let (peer, d) = (e.peer, e.tx.deadline());
                self.send(peer, b);
                self.arm(d, TimerRef::Client(key));
            }
            TimerAction::TimedOut => {
                let e = self.client.remove(&key);
                match e {
                    Some(ClientEntry {
                        call: Some(call),
                        method: Method::Bye,
                        ..
                    }) => self.end_call(call, EndReason::LocalBye),
                    Some(ClientEntry {
                        call: Some(call),
                        method: Method::Invite,
                        ..
                    }) => self.end_call(call, EndReason::Failed(408)),
                    Some(ClientEntry {
                        other: Some(other), ..
                    }) => self.on_other_timeout(now, other),
                    _ => {}
                }
            }
            TimerAction::Terminated => {
                self.client.remove(&key);
            }
            TimerAction::None => {
                let d = e.tx.deadline();
                self.arm(d, TimerRef::Client(key));
            }
        }
    }

    fn fire_dialog(&mut self, now: Instant, call: CallId) {
        let t2 = self.cfg.timers.t2;
        let Some(d) = self.dialogs.get_mut(&call) else {
            return;
        };
        if d.deadline().is_none_or(|t| t > now) {
            return;
        }
        if d.ok_give_up.is_some_and(|t| t <= now) {
            // §13.3.1.4: no ACK — confirm and immediately terminate the session.
            d.state = CallState::Confirmed;
            d.ok_bytes = None;
            d.ok_resend_at = None;
            d.ok_give_up = None;
            self.send_bye(now, call);
            // The BYE's client transaction lives on without the dialog.
            self.end_call(call, EndReason::AckTimeout);
            return;
        }
        if let Some(at) = d.ok_resend_at
            && at <= now
        {
            d.ok_interval = (d.ok_interval * 2).min(t2);
            d.ok_resend_at = Some(now + d.ok_interval);
            let (peer, bytes) = (d.peer, d.ok_bytes.clone());
            let dl = d.deadline();
            if let Some(b) = bytes {
                self.send(peer, b);
            }
            self.arm(dl, TimerRef::Dialog(call));
        }
    }
}

fn reason_for(e: &super::parse::ParseError) -> String {
    let s = e.to_string();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => "Bad Request".into(),
    }
}

/// Records where a request really came from in its top Via (RFC 3261 §18.2.1 `received`,
/// RFC 3581 `rport`), so that responses and proxies can route back through NAT.
fn stamp_received(req: &mut Request, peer: Peer) {
    let Some(first_line) = req.headers.get("Via").map(str::to_string) else {
        return;
    };
    let mut parts = super::message::split_list(&first_line);
    let Some(top) = parts.first().copied() else {
        return;
    };
    let Ok(mut via) = Via::parse(top) else { return };
    let ip = peer.addr.ip().to_string();
    let wants_rport = via.params.get("rport").is_some();
    if wants_rport {
        via.params.set("rport", Some(&peer.addr.port().to_string()));
    }
    if wants_rport || via.host.trim_start_matches('[').trim_end_matches(']') != ip {
        via.params.set("received", Some(&ip));
    } else {
        return;
    }
    let rebuilt = via.to_string();
    parts[0] = &rebuilt;
    req.headers.replace_first("Via", parts.join(", "));
}

/// The server transaction key (RFC 3261 §17.2.3), with the RFC 2543 fallback for branches
/// without the magic cookie.
fn server_key(core: &RequestCore, method: &Method) -> String {
    let top = &core.vias[0];
    let sent_by = format!("{}:{}", top.host, top.port.unwrap_or(0));
    match top.branch() {
        Some(b) if b.starts_with("z9hG4bK") && b.len() > 7 => {
            format!("{b}|{sent_by}|{method}")
        }
        _ => format!(
            "2543:{}:{}:{}|{sent_by}|{method}",
            core.call_id,
            core.cseq.seq,
            core.from.tag().unwrap_or("")
        ),
    }
}

/// Where to send a response (RFC 3261 §18.2.2 with RFC 3581 rport): stream responses go
/// back on the connection; UDP responses go to the source address, using the Via port only
/// when the peer did not ask for rport and named a port of its own.
fn response_destination(peer: Peer, top_via: Option<&str>) -> Peer {
    if peer.transport.is_reliable() {
        return peer;
    }
    let Some(via) = top_via.and_then(|v| Via::parse(v).ok()) else {
        return peer;
    };
    if via.params.get("rport").is_some() {
        return peer;
    }
    match via.port {
        Some(port) => Peer {
            addr: SocketAddr::new(peer.addr.ip(), port),
            ..peer
        },
        None => Peer {
            addr: SocketAddr::new(peer.addr.ip(), 5060),
            ..peer
        },
    }
}
