//! A call's life on the server: routes each incoming INVITE to an app (echo, reject),
//! negotiates media, runs the app's media task, and hangs up on media timeout.

pub mod echo;

use crate::rtp::ports::PortAllocator;
use crate::sip::endpoint::{CallId, EndReason, Event, TxId};
use crate::sip::sdp::{self, LocalMediaCapabilities, SessionDescription};
use crate::sip::transport::Command;
use crate::sip::uri::Uri;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// What to do with an incoming call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppChoice {
    /// Answer and send the caller's RTP back.
    Echo,
    /// Refuse with this status.
    Reject(u16),
    /// Answer and echo, then blind-transfer the caller to `target` after `after`.
    Transfer { target: Uri, after: Duration },
}

/// How long to ring before answering, and whether to send early media meanwhile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ringing {
    pub after: Duration,
    pub early_media: bool,
}

/// Picks an app from the called user (Request-URI user part) and the trunk the call came
/// from (when its source address is on a trunk's allow-list).
pub type Router = Arc<dyn Fn(&str, Option<&str>) -> (AppChoice, Ringing) + Send + Sync>;

/// Settings of the call layer.
#[derive(Clone)]
pub struct CallServerConfig {
    /// Local IP the RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// IP advertised in SDP (public address behind NAT).
    pub media_ip: IpAddr,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Codec names in preference order (PCMU, PCMA, opus, G722).
    pub codecs: Vec<String>,
    /// End the call when no RTP arrives for this long.
    pub media_timeout: Duration,
    pub router: Router,
}

/// One line of call history printed/logged when a call ends.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub call: CallId,
    pub from: String,
    pub to: String,
    pub reason: EndReason,
    pub packets_echoed: u64,
    /// RFC 4733 digits the caller pressed, in order.
    pub dtmf: String,
}

/// Consumes endpoint events until the channel closes; returns nothing, logs each call.
/// `finished` receives a record per ended call (the demo and tests read it).
pub async fn run(
    cfg: CallServerConfig,
    mut events: mpsc::Receiver<Event>,
    commands: mpsc::Sender<Command>,
    finished: Option<mpsc::UnboundedSender<CallRecord>>,
) {
    let ports = Arc::new(Mutex::new(PortAllocator::new(
        cfg.rtp_port_min,
        cfg.rtp_port_max,
    )));
    let mut calls: HashMap<CallId, mpsc::UnboundedSender<Event>> = HashMap::new();
    while let Some(ev) = events.recv().await {
        match ev {
            Event::IncomingCall {
                call,
                tx,
                request,
                from,
                to,
                trunk,
                ..
            } => {
                let (ctx, crx) = mpsc::unbounded_channel();
                calls.insert(call, ctx);
                let user = Uri::parse(&request.uri)
                    .ok()
                    .and_then(|u| u.user)
                    .unwrap_or_default();
                tracing::info!(%call, from = %from.uri, to = %to.uri, "incoming call");
                let session = CallSession {
                    call,
                    cfg: cfg.clone(),
                    commands: commands.clone(),
                    ports: ports.clone(),
                    events: crx,
                    from: from.uri.to_string(),
                    to: to.uri.to_string(),
                    finished: finished.clone(),
                };
                tokio::spawn(session.run(tx, user, trunk, request.body));
            }
            Event::InDialogRequest { call, .. }
            | Event::CallConfirmed { call }
            | Event::CallProgress { call, .. }
            | Event::CallAnswered { call, .. }
            | Event::TransferProgress { call, .. }
            | Event::CallEnded { call, .. } => {
                let ended = matches!(ev, Event::CallEnded { .. });
                if let Some(c) = calls.get(&call) {
                    let _ = c.send(ev);
                }
                if ended {
                    calls.remove(&call);
                }
            }
            Event::Registered { reg, expires } => {
                tracing::info!(reg = reg.0, expires, "registered");
            }
            Event::RegistrationFailed {
                reg,
                status,
                retry_in,
            } => {
                tracing::warn!(reg = reg.0, status, ?retry_in, "registration failed");
            }
            Event::PingResult { ping, status, rtt } => {
                tracing::debug!(ping = ping.0, status, ?rtt, "OPTIONS ping answered");
            }
        }
    }
}

/// The answer to an in-dialog request of a call whose media we terminate: a re-INVITE or
/// UPDATE with an offer gets a fresh SDP answer (RFC 3264 §8, next o= version), anything
/// else (INFO, offerless refresh) a plain 200.
pub fn in_dialog_answer(
    request: &crate::sip::message::Request,
    caps: &mut LocalMediaCapabilities,
) -> (u16, Option<Bytes>) {
    if request.method == crate::sip::message::Method::Info || request.body.is_empty() {
        return (200, None);
    }
    caps.session_version += 1;
    let answer = std::str::from_utf8(&request.body)
        .ok()
        .map(SessionDescription::parse)
        .and_then(Result::ok)
        .map(|o| sdp::negotiate_answer(&o, caps));
    match answer {
        Some(Ok(a)) => (200, Some(Bytes::from(a.sdp.to_string()))),
        Some(Err(e)) => (e.sip_status(), None),
        None => (488, None),
    }
}

struct CallSession {
    call: CallId,
    cfg: CallServerConfig,
    commands: mpsc::Sender<Command>,
    ports: Arc<Mutex<PortAllocator>>,
    events: mpsc::UnboundedReceiver<Event>,
    from: String,
    to: String,
    finished: Option<mpsc::UnboundedSender<CallRecord>>,
}

impl CallSession {
    fn caps(&self, port: u16) -> LocalMediaCapabilities {
        let mut caps = LocalMediaCapabilities::new(self.cfg.media_ip, port);
        caps.codecs = self
            .cfg
            .codecs
            .iter()
            .filter_map(|c| match c.to_ascii_lowercase().as_str() {
                "pcmu" => Some(sdp::CodecPref::pcmu()),
                "pcma" => Some(sdp::CodecPref::pcma()),
                "opus" => Some(sdp::CodecPref::opus()),
                "g722" => Some(sdp::CodecPref::g722()),
                _ => None,
            })
            .collect();
        caps
    }

    async fn respond(&self, tx: TxId, status: u16, body: Option<Bytes>) {
        let _ = self
            .commands
            .send(Command::Respond {
                tx,
                status,
                headers: Vec::new(),
                body: body.map(|b| ("application/sdp", b)),
            })
            .await;
    }

    async fn run(mut self, tx: TxId, user: String, trunk: Option<String>, offer: Bytes) {
        let reason;
        let mut media_stats = echo::EchoStats::default();
        let (choice, ringing) = (self.cfg.router)(&user, trunk.as_deref());
        match choice {
            AppChoice::Reject(code) => {
                self.respond(tx, code, None).await;
                reason = self.wait_end().await;
            }
            choice @ (AppChoice::Echo | AppChoice::Transfer { .. }) => {
                let transfer = match choice {
                    AppChoice::Transfer { target, after } => Some((target, after)),
                    _ => None,
                };
                let Some((port, media)) = self.bind_media().await else {
                    tracing::warn!(call = %self.call, "no free RTP port pair in the range");
                    self.respond(tx, 503, None).await;
                    let reason = self.wait_end().await;
                    self.finish(reason, &media_stats);
                    return;
                };
                let result = self.echo(tx, port, media, &offer, transfer, ringing).await;
                if let Ok(mut p) = self.ports.lock() {
                    p.release(port);
                }
                (reason, media_stats) = result;
            }
        }
        self.finish(reason, &media_stats);
    }

    /// Allocates an RTP/RTCP port pair and binds it, skipping ports another process holds.
    async fn bind_media(&self) -> Option<(u16, echo::EchoMedia)> {
        let ports = &self.ports;
        echo::EchoMedia::bind_free_pair(
            self.cfg.bind_ip,
            || ports.lock().ok()?.allocate(),
            |p| {
                if let Ok(mut a) = ports.lock() {
                    a.release(p);
                }
            },
        )
        .await
    }

    fn finish(&self, reason: EndReason, media: &echo::EchoStats) {
        let packets_echoed = media.echoed;
        tracing::info!(call = %self.call, ?reason, packets_echoed, dtmf = %media.digits, "call ended");
        if let Some(f) = &self.finished {
            let _ = f.send(CallRecord {
                call: self.call,
                from: self.from.clone(),
                to: self.to.clone(),
                reason,
                packets_echoed,
                dtmf: media.digits.clone(),
            });
        }
    }

    async fn wait_end(&mut self) -> EndReason {
        while let Some(ev) = self.events.recv().await {
            if let Event::CallEnded { reason, .. } = ev {
                return reason;
            }
        }
        EndReason::LocalBye
    }

    /// Answers with an SDP answer and echoes RTP until the call ends.
    async fn echo(
        &mut self,
        tx: TxId,
        port: u16,
        media: echo::EchoMedia,
        offer: &[u8],
        transfer: Option<(Uri, Duration)>,
        ringing: Ringing,
    ) -> (EndReason, echo::EchoStats) {
        let mut caps = self.caps(port);
        let answer = match std::str::from_utf8(offer)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .map(SessionDescription::parse)
        {
            Some(Ok(o)) => sdp::negotiate_answer(&o, &caps),
            Some(Err(e)) => Err(e),
            // Offerless INVITE (RFC 3264 §4): we would have to offer in the 200 and take
            // the answer from the ACK; not supported yet.
            None => Err(sdp::SdpError::NoAudioStream),
        };
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(call = %self.call, error = %e, "SDP negotiation failed");
                self.respond(tx, e.sip_status(), None).await;
                return (self.wait_end().await, echo::EchoStats::default());
            }
        };
        let sdp_answer = Bytes::from(answer.sdp.to_string());
        let (stop_tx, stop_rx) = oneshot::channel();
        let timeout = self.cfg.media_timeout;
        let dtmf = answer
            .media
            .telephone_event_pt
            .map(|pt| (pt, answer.media.codec.clock_rate));
        // The media task starts at 183 (early media) or at 200, whichever comes first.
        let mut pending_media = Some((media, stop_rx));
        let mut start_media = move || {
            pending_media
                .take()
                .map(|(m, rx)| tokio::spawn(m.run(dtmf, timeout, rx)))
        };
        let mut media_task = None;
        if !ringing.after.is_zero() {
            if ringing.early_media {
                self.respond(tx.clone(), 183, Some(sdp_answer.clone()))
                    .await;
                media_task = start_media();
            } else {
                self.respond(tx.clone(), 180, None).await;
            }
            let ring = tokio::time::sleep(ringing.after);
            tokio::pin!(ring);
            loop {
                tokio::select! {
                    _ = &mut ring => break,
                    ev = self.events.recv() => match ev {
                        Some(Event::CallEnded { reason, .. }) => {
                            let _ = stop_tx.send(());
                            let stats = match media_task {
                                Some(t) => t.await.unwrap_or_default(),
                                None => echo::EchoStats::default(),
                            };
                            return (reason, stats);
                        }
                        Some(_) => {}
                        None => return (EndReason::LocalBye, echo::EchoStats::default()),
                    }
                }
            }
        }
        self.respond(tx, 200, Some(sdp_answer)).await;
        if media_task.is_none() {
            media_task = start_media();
        }
        let mut stop_tx = Some(stop_tx);
        let mut hung_up_for_timeout = false;
        let (transfer_target, transfer_after) = match transfer {
            Some((t, after)) => (Some(t), after),
            None => (None, Duration::from_secs(3600 * 24)),
        };
        let mut transfer_target = transfer_target;
        let transfer_at = tokio::time::sleep(transfer_after);
        tokio::pin!(transfer_at);
        loop {
            tokio::select! {
                _ = &mut transfer_at, if transfer_target.is_some() => {
                    if let Some(target) = transfer_target.take() {
                        tracing::info!(call = %self.call, %target, "transferring (REFER)");
                        let _ = self.commands.send(Command::Refer { call: self.call, target: Box::new(target) }).await;
                    }
                }
                ev = self.events.recv() => match ev {
                    Some(Event::CallEnded { reason, .. }) => {
                        if let Some(s) = stop_tx.take() { let _ = s.send(()); }
                        let stats = match media_task.take() {
                            Some(t) => t.await.unwrap_or_default(),
                            None => echo::EchoStats::default(),
                        };
                        return (reason, stats);
                    }
                    Some(Event::InDialogRequest { tx, request, .. }) => {
                        self.answer_in_dialog(tx, &request, &mut caps).await;
                    }
                    Some(Event::TransferProgress { status, from_notify, .. }) => {
                        tracing::info!(call = %self.call, status, from_notify, "transfer progress");
                        // RFC 5589 §6: once the transferee's new call succeeds, we leave.
                        if from_notify && (200..300).contains(&status) {
                            let _ = self.commands.send(Command::Hangup { call: self.call }).await;
                        }
                    }
                    Some(_) => {}
                    None => return (EndReason::LocalBye, echo::EchoStats::default()),
                },
                done = async { match media_task.as_mut() { Some(t) => t.await.ok(), None => std::future::pending().await } } => {
                    media_task = None;
                    if let Some(stats) = done && stats.timed_out && !hung_up_for_timeout {
                        tracing::info!(call = %self.call, "media timeout; hanging up");
                        hung_up_for_timeout = true;
                        let _ = self.commands.send(Command::Hangup { call: self.call }).await;
                    }
                }
            }
        }
    }

    /// re-INVITE / UPDATE get a fresh answer to their offer; INFO (DTMF relay) gets 200.
    async fn answer_in_dialog(
        &self,
        tx: TxId,
        request: &crate::sip::message::Request,
        caps: &mut LocalMediaCapabilities,
    ) {
        if request.method == crate::sip::message::Method::Info
            && let Ok(body) = std::str::from_utf8(&request.body)
        {
            tracing::info!(call = %self.call, body = body.trim(), "INFO received");
        }
        let (status, body) = in_dialog_answer(request, caps);
        self.respond(tx, status, body).await;
    }
}
