//! A call's life on the server: routes each incoming INVITE to an app (echo, play,
//! record, transfer, reject), negotiates media, runs the app on a media worker, and hangs
//! up when the app is done or the media times out.

pub mod agent;
pub mod agent_llm;
pub mod agent_pending;
pub mod agent_record;
pub mod agent_select;
pub mod bridge;
pub mod cdr;
pub mod echo;
pub mod fork;
pub mod outbound;
pub mod play;
pub mod record;
pub mod recording;
pub mod recording_policy;

use crate::agent::transfer::{TransferMethod, TransferSettings};
use crate::codec::{CodecSpec, Decoder};
use crate::config::SrtpMode;
use crate::leg::rtp::{RtpLeg, RtpLegConfig};
use crate::leg::worker::{LegSockets, MediaEngine};
use crate::leg::{LegCommand, LegEvent, LegStats, MediaApp};
use crate::media::playout::SilenceMode;
use crate::rtp::ports::PortAllocator;
use crate::rtp::srtp::{SrtpSession, SrtpSuite};
use crate::sip::dtmf_info;
use crate::sip::endpoint::{CallId, EndReason, Event, TxId};
use crate::sip::sdp::{self, LocalMediaCapabilities, SessionDescription};
use crate::sip::sdp_crypto::{self, CryptoAttribute};
use crate::sip::transport::Command;
use crate::sip::uri::Uri;
use bytes::Bytes;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What to do with an incoming call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppChoice {
    /// Answer and send the caller's audio back.
    Echo,
    /// Answer and play a prompt file, then hang up (or loop).
    Play {
        file: std::path::PathBuf,
        repeat: bool,
    },
    /// Answer and record the caller until `#`, silence after speech, or `max`.
    Record { max: Duration, silence: Duration },
    /// Refuse with this status.
    Reject(u16),
    /// Answer and echo, then transfer the caller to `target` after `after` (REFER, or a
    /// bridged outbound leg).
    Transfer {
        target: Uri,
        after: Duration,
        settings: TransferSettings,
    },
    /// Answer and fork the call to a bot at `url` speaking the Twilio protocol; keep
    /// reconnecting for `reconnect_window` after the socket drops.
    Fork {
        url: String,
        reconnect_window: Duration,
    },
    /// Answer and run the agent this file describes (scripted flow or LLM).
    Agent {
        agent: agent_select::SharedAgent,
        barge_in: Duration,
    },
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
    /// Jitter buffer bounds, comfort silence and in-band DTMF detection.
    pub media: MediaSettings,
    /// The media workers every call's leg runs on.
    pub engine: Arc<MediaEngine>,
    /// Decoded prompt files, shared by all calls.
    pub prompts: Arc<crate::media::prompt::PromptCache>,
    /// SRTP policy for calls from each trunk, and for calls from anywhere else.
    pub srtp_by_trunk: HashMap<String, SrtpMode>,
    pub srtp_default: SrtpMode,
    /// Where recordings go, and whether calls are recorded (server switch, account setting).
    pub recordings: Arc<dyn crate::media::storage::RecordingStorage>,
    pub recording_policy: Arc<recording_policy::RecordingPolicy>,
    /// The thread that encodes and writes recordings off the media threads.
    pub recording_writer: Arc<recording::RecordingWriter>,
    /// The embedded recognizer and voice, started when a route uses the agent.
    pub agent_services: Option<Arc<agent::AgentServices>>,
    pub recording_format: crate::media::recorder::RecordingFormat,
    pub router: Router,
    /// Keep-alive, buffer cap and TLS of the fork app's WebSocket (`[streams]`).
    pub fork: crate::leg::stream_client::ForkSettings,
    /// The configured trunks: a bridged transfer to a number leaves through the trunk the
    /// call came in on.
    pub trunks: Arc<std::collections::BTreeMap<String, crate::config::TrunkConfig>>,
}

/// Per-leg media settings from `[rtp]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaSettings {
    pub jitter_min_ms: u32,
    pub jitter_max_ms: u32,
    pub silence: SilenceMode,
    pub inband_dtmf: bool,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            jitter_min_ms: 20,
            jitter_max_ms: 200,
            silence: SilenceMode::Zeros,
            inband_dtmf: true,
        }
    }
}

/// The leg configuration for negotiated media, or `None` when the chosen codec is not one
/// we can run.
pub fn leg_config(
    media: &sdp::NegotiatedMedia,
    settings: &MediaSettings,
    media_timeout: Duration,
) -> Option<RtpLegConfig> {
    let codec = CodecSpec::from_sdp(&media.codec.encoding_name, media.codec.payload_type)?;
    let mut cfg = RtpLegConfig::new(codec);
    cfg.dtmf = media
        .telephone_event_pt
        .map(|pt| (pt, codec.rtp_clock_rate()));
    cfg.remote_rtp = Some(media.remote_addr);
    cfg.remote_rtcp = Some(media.remote_rtcp);
    cfg.rtcp_mux = media.rtcp_mux;
    cfg.media_timeout = media_timeout;
    cfg.jitter_min_ms = settings.jitter_min_ms;
    cfg.jitter_max_ms = settings.jitter_max_ms;
    cfg.silence = settings.silence;
    cfg.inband_dtmf = settings.inband_dtmf && codec.pcm_rate == 8000;
    cfg.remote_ptime_ms = media.ptime;
    Some(cfg)
}

/// SDP codec preferences for codec names from config, keeping only codecs we can run.
pub fn codec_prefs(names: &[String]) -> Vec<sdp::CodecPref> {
    names
        .iter()
        .filter_map(|c| {
            let pref = match c.to_ascii_lowercase().as_str() {
                "pcmu" => sdp::CodecPref::pcmu(),
                "pcma" => sdp::CodecPref::pcma(),
                "opus" => sdp::CodecPref::opus(),
                _ => return None,
            };
            let spec = CodecSpec::from_sdp(&pref.name, 0)?;
            Decoder::new(spec).ok().map(|_| pref)
        })
        .collect()
}

/// What the call layer reports about a call as it goes: the CDR writer turns these into
/// `call.started` / `call.answered` events and, at the end, the call record.
#[derive(Debug, Clone)]
pub enum CallUpdate {
    /// An INVITE was accepted for routing.
    Started {
        call: CallId,
        from: String,
        to: String,
        sip_call_id: Option<String>,
        trunk: Option<String>,
        at_ms: i64,
    },
    /// We answered (200 OK sent).
    Answered {
        call: CallId,
        sip_call_id: Option<String>,
        at_ms: i64,
    },
    /// The call is over.
    Ended(Box<CallRecord>),
}

/// The REFER target for an app's transfer: a `sip:`/`sips:` URI as given, or a phone number
/// (`+14155550100`) at the host the call came from (the carrier routes it).
fn transfer_uri(target: &str, from: &str) -> Option<Uri> {
    let target = target.trim();
    if target.starts_with("sip:") || target.starts_with("sips:") {
        return Uri::parse(target).ok();
    }
    let digits = target.strip_prefix('+').unwrap_or(target);
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let from = Uri::parse(from).ok()?;
    let host = match from.port {
        Some(p) => format!("{}:{p}", from.host),
        None => from.host,
    };
    Uri::parse(&format!("sip:{target}@{host}")).ok()
}

/// One line of call history printed/logged when a call ends.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub call: CallId,
    pub from: String,
    pub to: String,
    pub reason: EndReason,
    /// Why we hung up, when the app or the media ended the call.
    pub app_result: Option<String>,
    /// The leg's media counters, if media ran.
    pub media: Option<LegStats>,
    /// Digits the caller pressed (RFC 4733, SIP INFO or in-band), in order, each once.
    pub dtmf: String,
    /// The SIP Call-ID.
    pub sip_call_id: Option<String>,
    /// The trunk that admitted the call.
    pub trunk: Option<String>,
    /// When the INVITE arrived, epoch ms.
    pub setup_at_ms: i64,
    /// When we signalled ringing (180/183), epoch ms.
    pub ring_at_ms: Option<i64>,
    /// When we answered (200), epoch ms.
    pub answer_at_ms: Option<i64>,
    /// When the call ended, epoch ms.
    pub end_at_ms: i64,
    /// What the agent learned (transcript, tool calls, disposition), when an agent ran.
    pub agent: Option<Box<crate::agent::report::AgentReport>>,
}

impl CallRecord {
    /// Frames of audio we sent (for echo: the caller's frames sent back).
    pub fn frames_sent(&self) -> u64 {
        self.media.as_ref().map_or(0, |m| m.frames_sent_audio)
    }
}

/// Consumes endpoint events until the channel closes; returns nothing, logs each call.
/// `finished` receives a record per ended call (the demo and tests read it).
pub async fn run(
    cfg: CallServerConfig,
    mut events: mpsc::Receiver<Event>,
    commands: mpsc::Sender<Command>,
    finished: Option<mpsc::UnboundedSender<CallUpdate>>,
) {
    let ports = Arc::new(Mutex::new(PortAllocator::new(
        cfg.rtp_port_min,
        cfg.rtp_port_max,
    )));
    let mut calls: HashMap<CallId, mpsc::UnboundedSender<Event>> = HashMap::new();
    let (place_tx, mut place_rx) = mpsc::unbounded_channel::<outbound::PlaceCall>();
    // Events that arrived while a bridged leg's INVITE was being placed, in order.
    let mut backlog: std::collections::VecDeque<Event> = std::collections::VecDeque::new();
    loop {
        let ev = if let Some(ev) = backlog.pop_front() {
            ev
        } else {
            tokio::select! {
                biased;
                Some(p) = place_rx.recv() => {
                    place_call(p, &commands, &mut events, &mut calls, &mut backlog).await;
                    continue;
                }
                ev = events.recv() => match ev {
                    Some(ev) => ev,
                    None => break,
                },
            }
        };
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
                calls.insert(call, ctx.clone());
                let user = Uri::parse(&request.uri)
                    .ok()
                    .and_then(|u| u.user)
                    .unwrap_or_default();
                tracing::info!(%call, from = %from.uri, to = %to.uri, "incoming call");
                let sip_call_id = request.headers.get("Call-ID").map(str::to_owned);
                let session = CallSession {
                    setup_at_ms: crate::store::now_ms(),
                    trunk: trunk.clone(),
                    sip_call_id,
                    call,
                    cfg: cfg.clone(),
                    commands: commands.clone(),
                    ports: ports.clone(),
                    events: crx,
                    from: from.uri.to_string(),
                    to: to.uri.to_string(),
                    finished: finished.clone(),
                    place: place_tx.clone(),
                    own_events: ctx.downgrade(),
                    _active: ActiveCall::start(),
                };
                if let Some(f) = &finished {
                    let _ = f.send(CallUpdate::Started {
                        call,
                        from: session.from.clone(),
                        to: session.to.clone(),
                        sip_call_id: session.sip_call_id.clone(),
                        trunk: session.trunk.clone(),
                        at_ms: session.setup_at_ms,
                    });
                }
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

/// Sends a session's outbound INVITE and routes the new call's events to the session from
/// the first one: events that arrive while the SIP task assigns the call's id are held in
/// `backlog` (in order) and dispatched after the route exists.
async fn place_call(
    p: outbound::PlaceCall,
    commands: &mpsc::Sender<Command>,
    events: &mut mpsc::Receiver<Event>,
    calls: &mut HashMap<CallId, mpsc::UnboundedSender<Event>>,
    backlog: &mut std::collections::VecDeque<Event>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let invite = Command::Invite {
        call: Box::new(p.call),
        reply: tx,
    };
    if commands.send(invite).await.is_err() {
        let _ = p.reply.send(None);
        return;
    }
    tokio::pin!(rx);
    let id = loop {
        tokio::select! {
            id = &mut rx => break id.ok(),
            ev = events.recv() => match ev {
                Some(ev) => backlog.push_back(ev),
                None => break None,
            },
        }
    };
    if let Some(id) = id {
        calls.insert(id, p.events);
    }
    let _ = p.reply.send(id);
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
    finished: Option<mpsc::UnboundedSender<CallUpdate>>,
    setup_at_ms: i64,
    trunk: Option<String>,
    sip_call_id: Option<String>,
    /// Places a bridged transfer's outbound leg through the call layer.
    place: mpsc::UnboundedSender<outbound::PlaceCall>,
    /// This session's own event channel (a bridged leg's events are routed to it too). Weak,
    /// so the channel still closes when the call layer stops.
    own_events: mpsc::WeakUnboundedSender<Event>,
    _active: ActiveCall,
}

/// Counts a call in `leadscaller_calls_active` for as long as it lives.
struct ActiveCall;

impl ActiveCall {
    fn start() -> ActiveCall {
        metrics::gauge!(crate::telemetry::metrics::CALLS_ACTIVE).increment(1.0);
        ActiveCall
    }
}

impl Drop for ActiveCall {
    fn drop(&mut self) {
        metrics::gauge!(crate::telemetry::metrics::CALLS_ACTIVE).decrement(1.0);
    }
}

/// What a call collected while it ran.
#[derive(Default)]
struct Outcome {
    app_result: Option<String>,
    media: Option<LegStats>,
    dtmf: String,
    ring_at_ms: Option<i64>,
    answer_at_ms: Option<i64>,
}

impl CallSession {
    fn caps(&self, port: u16) -> LocalMediaCapabilities {
        let mut caps = LocalMediaCapabilities::new(self.cfg.media_ip, port);
        caps.codecs = codec_prefs(&self.cfg.codecs);
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

    async fn hangup(&self) {
        let _ = self
            .commands
            .send(Command::Hangup { call: self.call })
            .await;
    }

    async fn run(mut self, tx: TxId, user: String, trunk: Option<String>, offer: Bytes) {
        let (mut choice, ringing) = (self.cfg.router)(&user, trunk.as_deref());
        if matches!(choice, AppChoice::Record { .. })
            && !self.cfg.recording_policy.account_enabled()
        {
            tracing::warn!(call = %self.call, "record route refused: the account has recording off");
            choice = AppChoice::Reject(403);
        }
        if let AppChoice::Reject(code) = choice {
            self.respond(tx, code, None).await;
            let reason = self.wait_end().await;
            self.finish(reason, Outcome::default());
            return;
        }
        let ports = &self.ports;
        let bound = LegSockets::bind_free_pair(
            self.cfg.bind_ip,
            || ports.lock().ok()?.allocate(),
            |p| {
                if let Ok(mut a) = ports.lock() {
                    a.release(p);
                }
            },
        );
        let Some((port, sockets)) = bound else {
            tracing::warn!(call = %self.call, "no free RTP port pair in the range");
            self.respond(tx, 503, None).await;
            let reason = self.wait_end().await;
            self.finish(reason, Outcome::default());
            return;
        };
        let srtp_mode = trunk
            .as_deref()
            .and_then(|t| self.cfg.srtp_by_trunk.get(t).copied())
            .unwrap_or(self.cfg.srtp_default);
        let (reason, outcome) = self
            .answer_and_run(tx, port, sockets, &offer, (choice, ringing, srtp_mode))
            .await;
        if let Ok(mut p) = self.ports.lock() {
            p.release(port);
        }
        if let Some(key) = outcome.media.as_ref().and_then(|m| m.recording.clone()) {
            self.wait_until_stored(&key).await;
        }
        self.finish(reason, outcome);
    }

    /// Recordings are finalized on the writer thread after the leg stopped: the call's end
    /// is reported once its recording can be read (bounded wait).
    async fn wait_until_stored(&self, key: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.cfg.recordings.open(key).is_err() {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(call = %self.call, %key, "recording not finalized within 5 s");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn finish(&self, reason: EndReason, mut outcome: Outcome) {
        let agent = outcome.media.as_mut().and_then(|m| m.agent.take());
        let frames = outcome.media.as_ref().map_or(0, |m| m.frames_sent_audio);
        let recording = outcome
            .media
            .as_ref()
            .and_then(|m| m.recording.as_deref())
            .unwrap_or("");
        let mos = outcome.media.as_ref().and_then(|m| m.mos).unwrap_or(0.0);
        tracing::info!(call = %self.call, ?reason, frames_sent = frames, dtmf = %outcome.dtmf,
            app = outcome.app_result.as_deref().unwrap_or(""), recording, mos = format!("{mos:.2}"),
            "call ended");
        let end_ms = crate::store::now_ms();
        let result = if outcome.answer_at_ms.is_some() {
            "answered"
        } else {
            "not_answered"
        };
        metrics::counter!(crate::telemetry::metrics::CALLS_TOTAL, "direction" => "inbound", "result" => result)
            .increment(1);
        if let Some(answered) = outcome.answer_at_ms {
            metrics::histogram!(crate::telemetry::metrics::CALL_DURATION)
                .record((end_ms - answered).max(0) as f64 / 1000.0);
        }
        if let Some(f) = &self.finished {
            let _ = f.send(CallUpdate::Ended(Box::new(CallRecord {
                call: self.call,
                from: self.from.clone(),
                to: self.to.clone(),
                reason,
                app_result: outcome.app_result,
                media: outcome.media,
                dtmf: outcome.dtmf,
                sip_call_id: self.sip_call_id.clone(),
                trunk: self.trunk.clone(),
                setup_at_ms: self.setup_at_ms,
                ring_at_ms: outcome.ring_at_ms,
                answer_at_ms: outcome.answer_at_ms,
                end_at_ms: end_ms,
                agent,
            })));
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

    /// The media app for a routed call, at the negotiated PCM rate.
    async fn app_for(&self, choice: &AppChoice, rate: u32) -> Result<Box<dyn MediaApp>, String> {
        match choice {
            AppChoice::Play { file, repeat } => {
                let (prompts, file2) = (self.cfg.prompts.clone(), file.clone());
                // Decoding a file is blocking work (once per file and rate: it is cached).
                let prompt = tokio::task::spawn_blocking(move || prompts.get(&file2, rate))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                let after = if *repeat {
                    play::AfterPlay::Loop
                } else {
                    play::AfterPlay::Hangup
                };
                Ok(Box::new(play::PlayApp::new(prompt, after)))
            }
            AppChoice::Record { max, silence } => {
                let format = self.cfg.recording_format;
                let key = recording::recording_key("record", &self.call.to_string(), format);
                let tap = self
                    .cfg
                    .recording_writer
                    .tap(self.cfg.recordings.as_ref(), &key, rate, format)
                    .map_err(|e| e.to_string())?;
                Ok(Box::new(record::RecordApp::new(
                    tap,
                    max.as_millis() as u64,
                    silence.as_millis() as u64,
                )))
            }
            AppChoice::Fork {
                url,
                reconnect_window,
            } => {
                let params = [("from", &self.from), ("to", &self.to)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                let cfg = crate::leg::stream_client::ForkConfig {
                    url: url.clone(),
                    reconnect_window: *reconnect_window,
                    call_sid: self.call.to_string(),
                    account_sid: None,
                    custom_parameters: params,
                    settings: self.cfg.fork.clone(),
                };
                Ok(Box::new(fork::ForkApp::new(cfg, rate)?))
            }
            AppChoice::Agent {
                agent: config,
                barge_in,
            } => {
                let services = self
                    .cfg
                    .agent_services
                    .clone()
                    .ok_or_else(|| "agent services are not running".to_string())?;
                agent_select::build_agent_app(services, &config.0, *barge_in)
            }
            _ => Ok(Box::new(echo::EchoApp)),
        }
    }

    /// The whole-call recording tap, when `[recording] enabled` and the account records.
    fn call_tap(&self, rate: u32) -> Option<Box<dyn crate::leg::LegTap>> {
        if !self.cfg.recording_policy.records_calls() {
            return None;
        }
        let format = self.cfg.recording_format;
        let key = recording::recording_key("call", &self.call.to_string(), format);
        match self
            .cfg
            .recording_writer
            .tap(self.cfg.recordings.as_ref(), &key, rate, format)
        {
            Ok(t) => Some(Box::new(t)),
            Err(e) => {
                tracing::warn!(call = %self.call, error = %e, "cannot start the call recording");
                None
            }
        }
    }

    /// Answers with an SDP answer and runs the app until the call ends.
    async fn answer_and_run(
        &mut self,
        tx: TxId,
        port: u16,
        sockets: LegSockets,
        offer: &[u8],
        (choice, ringing, srtp_mode): (AppChoice, Ringing, SrtpMode),
    ) -> (EndReason, Outcome) {
        let mut outcome = Outcome::default();
        let mut caps = self.caps(port);
        caps.srtp = srtp_mode != SrtpMode::Off;
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
        let mut answer = match answer {
            Ok(a) => a,
            Err(e) => {
                tracing::info!(call = %self.call, error = %e, "SDP negotiation failed");
                self.respond(tx, e.sip_status(), None).await;
                return (self.wait_end().await, outcome);
            }
        };
        let srtp = match answer_srtp(&mut answer, srtp_mode) {
            Ok(s) => s,
            Err(why) => {
                tracing::info!(call = %self.call, reason = why, "SRTP negotiation failed");
                self.respond(tx, 488, None).await;
                return (self.wait_end().await, outcome);
            }
        };
        let leg_cfg = leg_config(&answer.media, &self.cfg.media, self.cfg.media_timeout);
        let mut leg = leg_cfg.and_then(|c| RtpLeg::new(c, Instant::now()).ok());
        if let (Some(l), Some(session)) = (leg.as_mut(), srtp) {
            tracing::info!(call = %self.call, suite = session.suite().sdp_name(), "SRTP negotiated");
            l.set_srtp(session);
        }
        let app = match leg.as_ref() {
            Some(l) => Some(self.app_for(&choice, l.codec().pcm_rate).await),
            None => None,
        };
        let (leg, app) = match (leg, app) {
            (Some(l), Some(Ok(a))) => (l, a),
            (_, Some(Err(e))) => {
                tracing::warn!(call = %self.call, error = %e, "cannot start the app");
                self.respond(tx, 500, None).await;
                outcome.app_result = Some(e);
                return (self.wait_end().await, outcome);
            }
            _ => {
                self.respond(tx, 488, None).await;
                return (self.wait_end().await, outcome);
            }
        };
        let sdp_answer = Bytes::from(answer.sdp.to_string());
        // Media starts at 183 (early media) or at 200, whichever comes first.
        let engine = self.cfg.engine.clone();
        let rate_a = leg.codec().pcm_rate;
        let tap = self.call_tap(rate_a);
        let mut pending = Some((leg, sockets, app, tap));
        let mut start_media = move || pending.take().map(|(l, s, a, t)| engine.attach(l, s, a, t));
        let mut handle = None;
        if !ringing.after.is_zero() {
            if ringing.early_media {
                outcome.ring_at_ms = Some(crate::store::now_ms());
                self.respond(tx.clone(), 183, Some(sdp_answer.clone()))
                    .await;
                handle = start_media();
            } else {
                outcome.ring_at_ms = Some(crate::store::now_ms());
                self.respond(tx.clone(), 180, None).await;
            }
            let ring = tokio::time::sleep(ringing.after);
            tokio::pin!(ring);
            loop {
                tokio::select! {
                    _ = &mut ring => break,
                    ev = self.events.recv() => match ev {
                        Some(Event::CallEnded { reason, .. }) => {
                            if let Some(h) = handle.as_mut() {
                                outcome.media = stop_leg(h).await;
                            }
                            return (reason, outcome);
                        }
                        Some(_) => {}
                        None => return (EndReason::LocalBye, outcome),
                    }
                }
            }
        }
        self.respond(tx, 200, Some(sdp_answer)).await;
        let answered = crate::store::now_ms();
        outcome.answer_at_ms = Some(answered);
        if let Some(f) = &self.finished {
            let _ = f.send(CallUpdate::Answered {
                call: self.call,
                sip_call_id: self.sip_call_id.clone(),
                at_ms: answered,
            });
        }
        if handle.is_none() {
            handle = start_media();
        }
        let Some(mut leg) = handle else {
            return (self.wait_end().await, outcome);
        };
        let transfer = transfer_settings(&choice);
        let (mut transfer_target, transfer_after) = match choice {
            AppChoice::Transfer { target, after, .. } => (Some(target), after),
            _ => (None, Duration::from_secs(3600 * 24)),
        };
        let transfer_at = tokio::time::sleep(transfer_after);
        tokio::pin!(transfer_at);
        let mut hung_up = false;
        // A transfer the app asked for: a failure ends the call (the agent has said goodbye).
        let mut app_transfer = false;
        // A bridged transfer's outbound leg, and when it stops ringing.
        let mut bridge: Option<outbound::OutboundLeg> = None;
        let ring_timeout = tokio::time::sleep(Duration::from_secs(3600 * 24));
        tokio::pin!(ring_timeout);
        loop {
            let ringing_b = bridge.as_ref().is_some_and(|b| b.answered.is_none());
            let b_media = bridge.as_mut().and_then(|b| b.leg.as_mut());
            let has_b_media = b_media.is_some();
            let b_event = async {
                match b_media {
                    Some(l) => l.events.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut transfer_at, if transfer_target.is_some() => {
                    if let Some(target) = transfer_target.take() {
                        if transfer.method == TransferMethod::Bridge {
                            let target = target.to_string();
                            let ctx = BridgeCtx { leg: &leg, rate_a, app_transfer: false };
                            bridge = self.start_bridge(&target, &transfer, ctx, &mut outcome, &mut hung_up).await;
                            if bridge.is_some() {
                                ring_timeout.as_mut().reset(tokio::time::Instant::now() + transfer.ring_timeout);
                            }
                        } else {
                            tracing::info!(call = %self.call, %target, "transferring (REFER)");
                            let _ = self.commands.send(Command::Refer { call: self.call, target: Box::new(target) }).await;
                        }
                    }
                }
                _ = &mut ring_timeout, if ringing_b => {
                    if let Some(b) = bridge.as_mut() {
                        tracing::info!(call = %self.call, target = %b.target, "bridged leg not answered in time; cancelling");
                        b.failure = Some(format!("{} did not answer", b.target));
                        let _ = self.commands.send(Command::Hangup { call: b.call }).await;
                    }
                    ring_timeout.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3600 * 24));
                }
                ev = b_event, if has_b_media => {
                    if matches!(ev, Some(LegEvent::MediaTimeout) | None) && !hung_up {
                        tracing::info!(call = %self.call, "bridged leg media timeout; hanging up both");
                        if let Some(b) = bridge.as_ref() {
                            let _ = self.commands.send(Command::Hangup { call: b.call }).await;
                        }
                        hung_up = true;
                        self.hangup().await;
                    }
                    if let (None, Some(b)) = (ev, bridge.as_mut()) {
                        b.leg = None;
                    }
                }
                ev = self.events.recv() => match ev {
                    Some(ev) if event_call(&ev).is_some_and(|c| c != self.call) => {
                        let ctx = BridgeCtx { leg: &leg, rate_a, app_transfer };
                        self.on_bridged_leg_event(ev, &mut bridge, ctx, &mut outcome, &mut hung_up).await;
                    }
                    Some(Event::CallEnded { reason, .. }) => {
                        if let Some(mut b) = bridge.take() {
                            self.end_bridged_leg(&mut b).await;
                        }
                        outcome.media = stop_leg(&mut leg).await;
                        return (reason, outcome);
                    }
                    Some(Event::InDialogRequest { tx, request, .. }) => {
                        self.answer_in_dialog(tx, &request, &mut caps, &leg.commands).await;
                    }
                    Some(Event::TransferProgress { status, from_notify, .. }) => {
                        tracing::info!(call = %self.call, status, from_notify, "transfer progress");
                        // RFC 5589 §6: once the transferee's new call succeeds, we leave.
                        if from_notify && (200..300).contains(&status) {
                            self.hangup().await;
                        } else if app_transfer && status >= 300 && !hung_up {
                            tracing::warn!(call = %self.call, status, "transfer failed; hanging up");
                            outcome.app_result = Some(format!("transfer failed ({status})"));
                            hung_up = true;
                            self.hangup().await;
                        }
                    }
                    Some(_) => {}
                    None => return (EndReason::LocalBye, outcome),
                },
                ev = leg.events.recv() => match ev {
                    Some(LegEvent::Dtmf { digit, source, duration_ms }) => {
                        tracing::info!(call = %self.call, %digit, ?source, duration_ms, "DTMF");
                        outcome.dtmf.push(digit);
                    }
                    Some(LegEvent::MediaTimeout) if !hung_up => {
                        tracing::info!(call = %self.call, "media timeout; hanging up");
                        outcome.app_result = Some("media timeout".into());
                        hung_up = true;
                        self.hangup().await;
                    }
                    Some(LegEvent::TransferRequested(target)) if !hung_up && bridge.is_none() => {
                        app_transfer = true;
                        if transfer.method == TransferMethod::Bridge {
                            let ctx = BridgeCtx { leg: &leg, rate_a, app_transfer: true };
                            bridge = self.start_bridge(&target, &transfer, ctx, &mut outcome, &mut hung_up).await;
                            if bridge.is_some() {
                                ring_timeout.as_mut().reset(tokio::time::Instant::now() + transfer.ring_timeout);
                            }
                            continue;
                        }
                        match transfer_uri(&target, &self.from) {
                            Some(uri) => {
                                tracing::info!(call = %self.call, target = %uri, "app transfers the caller (REFER)");
                                outcome.app_result = Some(format!("transferred to {uri}"));
                                let _ = self.commands.send(Command::Refer { call: self.call, target: Box::new(uri) }).await;
                            }
                            None => {
                                tracing::warn!(call = %self.call, %target, "transfer target is not a SIP URI or a phone number; hanging up");
                                outcome.app_result = Some(format!("bad transfer target {target:?}"));
                                hung_up = true;
                                self.hangup().await;
                            }
                        }
                    }
                    Some(LegEvent::AppFinished(why)) if !hung_up => {
                        tracing::info!(call = %self.call, reason = %why, "app finished; hanging up");
                        if bridge.is_none() || outcome.app_result.is_none() {
                            outcome.app_result = Some(why);
                        }
                        if let Some(b) = bridge.as_ref() {
                            let _ = self.commands.send(Command::Hangup { call: b.call }).await;
                        }
                        hung_up = true;
                        self.hangup().await;
                    }
                    Some(LegEvent::Stopped(stats)) => outcome.media = Some(*stats),
                    Some(_) => {}
                    None => {}
                },
            }
        }
    }

    /// Starts a bridged transfer to `target`: rings it on a new outbound leg while the caller
    /// hears ringback. A failure goes back to the app that asked ([`Self::transfer_failed`]).
    async fn start_bridge(
        &self,
        target: &str,
        settings: &TransferSettings,
        ctx: BridgeCtx<'_>,
        outcome: &mut Outcome,
        hung_up: &mut bool,
    ) -> Option<outbound::OutboundLeg> {
        let leg = ctx.leg;
        let trunk = self.trunk.as_deref().and_then(|t| self.cfg.trunks.get(t));
        let our_host = self.cfg.media_ip.to_string();
        let placed = match outbound::bridge_route(
            target,
            &self.from,
            trunk,
            settings.caller_id.as_deref(),
            &our_host,
        ) {
            Ok(route) => {
                tracing::info!(call = %self.call, target = %route.target, hop = %route.hop,
                    trunk = route.trunk.as_deref().unwrap_or(""), "transfer: calling the target to bridge");
                // Gone only while the call layer shuts down.
                let events = self.own_events.upgrade()?;
                let ctx = outbound::PlaceContext {
                    place: &self.place,
                    events,
                    ports: self.ports.clone(),
                    bind_ip: self.cfg.bind_ip,
                    media_ip: self.cfg.media_ip,
                    codecs: &self.cfg.codecs,
                    trunk,
                    srtp: settings
                        .srtp
                        .or(trunk.map(|t| t.srtp))
                        .unwrap_or(SrtpMode::Off),
                };
                outbound::OutboundLeg::place(route, ctx).await
            }
            Err(e) => Err(e),
        };
        match placed {
            Ok(b) => {
                let _ = leg
                    .commands
                    .send(LegCommand::ReplaceApp(crate::leg::AppSwap(Box::new(
                        bridge::RingbackApp::default(),
                    ))));
                Some(b)
            }
            Err(why) => {
                self.transfer_failed(why, ctx, outcome, hung_up).await;
                None
            }
        }
    }

    /// A transfer failed before the target answered. An app that asked for it gets its
    /// original app back and hears why ([`LegEvent::TransferFailed`]: an agent tells the
    /// caller and goes on); a route's transfer hangs up.
    async fn transfer_failed(
        &self,
        why: String,
        ctx: BridgeCtx<'_>,
        outcome: &mut Outcome,
        hung_up: &mut bool,
    ) {
        outcome.app_result = Some(format!("transfer failed: {why}"));
        if ctx.app_transfer && !*hung_up {
            tracing::info!(call = %self.call, reason = %why, "transfer failed; back to the app");
            let _ = ctx.leg.commands.send(LegCommand::RestoreApp);
            let _ = ctx.leg.commands.send(LegCommand::TransferFailed(why));
        } else if !*hung_up {
            tracing::warn!(call = %self.call, reason = %why, "transfer failed; hanging up");
            *hung_up = true;
            self.hangup().await;
        }
    }

    /// An event of the bridged leg's SIP call: its answer starts the bridge; its end (or a
    /// failure before answer) ends the caller's call too.
    async fn on_bridged_leg_event(
        &self,
        ev: Event,
        bridge: &mut Option<outbound::OutboundLeg>,
        ctx: BridgeCtx<'_>,
        outcome: &mut Outcome,
        hung_up: &mut bool,
    ) {
        let (leg, rate_a) = (ctx.leg, ctx.rate_a);
        let Some(b) = bridge.as_mut() else {
            return;
        };
        match ev {
            Event::CallProgress { status, body, .. } => {
                tracing::info!(call = %self.call, bridged = %b.call, status, "bridged leg progress");
                // Early media (a 183 or 180 with SDP): the caller hears the target's own
                // ringback or announcement instead of ours.
                if !body.is_empty() && b.leg.is_none() {
                    match self.bridge_media(b, &body, leg, rate_a) {
                        Ok(()) => {
                            tracing::info!(call = %self.call, status, "the target's early media is bridged to the caller");
                        }
                        Err(why) => {
                            tracing::info!(call = %self.call, reason = %why, "the target's early media is unusable; ringback goes on");
                        }
                    }
                }
            }
            Event::CallAnswered { body, .. } => {
                b.answered = Some(std::time::Instant::now());
                let started = if b.leg.is_some() {
                    // Media already runs on the early SDP (RFC 3261 §13.2.1: the answer
                    // in the 200 is the same one).
                    Ok(())
                } else {
                    self.bridge_media(b, &body, leg, rate_a)
                };
                match started {
                    Ok(()) => {
                        let after = b.started.elapsed().as_millis();
                        tracing::info!(call = %self.call, target = %b.target, answered_after_ms = after as u64, "caller bridged to the transfer target");
                        outcome.app_result = Some(format!("bridged to {}", b.target));
                    }
                    Err(why) => {
                        tracing::warn!(call = %self.call, reason = %why, "bridged leg unusable; hanging it up");
                        if let Some(mut b) = bridge.take() {
                            self.end_bridged_leg(&mut b).await;
                        }
                        self.transfer_failed(why, ctx, outcome, hung_up).await;
                    }
                }
            }
            Event::InDialogRequest { tx, request, .. } => {
                let (status, body) = in_dialog_answer(&request, &mut b.caps);
                self.respond(tx, status, body).await;
            }
            Event::CallEnded { reason, .. } => {
                let answered = b.answered.is_some();
                let why = b.failure.take().unwrap_or_else(|| match &reason {
                    EndReason::Failed(status) => format!("{} answered {status}", b.target),
                    other => format!("{} ended the call ({other:?})", b.target),
                });
                if let Some(mut b) = bridge.take() {
                    b.stop_media().await;
                }
                if !answered {
                    self.transfer_failed(why, ctx, outcome, hung_up).await;
                } else if !*hung_up {
                    tracing::info!(call = %self.call, ?reason, "bridged leg ended; hanging up the caller");
                    *hung_up = true;
                    self.hangup().await;
                }
            }
            _ => {}
        }
    }

    /// Starts the bridged leg's media from its SDP answer `body` and swaps the caller's app
    /// for its end of the bridge.
    fn bridge_media(
        &self,
        b: &mut outbound::OutboundLeg,
        body: &[u8],
        leg: &crate::leg::worker::LegHandle,
        rate_a: u32,
    ) -> Result<(), String> {
        let (media, rate_b) = b.answer_rate(body)?;
        let (a_side, b_side) = bridge::bridge_pair(rate_a, rate_b)
            .ok_or_else(|| format!("cannot bridge {rate_a} Hz to {rate_b} Hz"))?;
        b.start_media(
            &media,
            &self.cfg.media,
            self.cfg.media_timeout,
            &self.cfg.engine,
            b_side,
        )?;
        let _ = leg
            .commands
            .send(LegCommand::ReplaceApp(crate::leg::AppSwap(Box::new(
                a_side,
            ))));
        Ok(())
    }

    /// Hangs up (or cancels) the bridged leg and stops its media.
    async fn end_bridged_leg(&self, b: &mut outbound::OutboundLeg) {
        let _ = self.commands.send(Command::Hangup { call: b.call }).await;
        b.stop_media().await;
    }

    /// re-INVITE / UPDATE get a fresh answer to their offer (and hold stops our media);
    /// INFO carrying DTMF becomes a leg event.
    async fn answer_in_dialog(
        &self,
        tx: TxId,
        request: &crate::sip::message::Request,
        caps: &mut LocalMediaCapabilities,
        leg: &mpsc::UnboundedSender<LegCommand>,
    ) {
        if request.method == crate::sip::message::Method::Info {
            let ctype = request.headers.get("content-type").unwrap_or("");
            match dtmf_info::parse(ctype, &request.body) {
                Some((digit, duration_ms)) => {
                    let _ = leg.send(LegCommand::InjectDtmf(digit, duration_ms));
                }
                None => tracing::info!(call = %self.call, content_type = ctype, "INFO received"),
            }
        } else if !request.body.is_empty()
            && let Ok(offer) = std::str::from_utf8(&request.body).map(SessionDescription::parse)
            && let Ok(offer) = offer
        {
            // A peer that only sends (hold) or is inactive does not want our media.
            let _ = leg.send(LegCommand::SetSending(offer.media_direction(0).receives()));
        }
        let (status, body) = in_dialog_answer(request, caps);
        self.respond(tx, status, body).await;
    }
}

/// What a bridged transfer's steps need of the caller's side.
#[derive(Clone, Copy)]
struct BridgeCtx<'a> {
    /// The caller's media leg.
    leg: &'a crate::leg::worker::LegHandle,
    /// Its PCM rate.
    rate_a: u32,
    /// The app asked for the transfer (it takes the call back if the transfer fails).
    app_transfer: bool,
}

/// The call an event belongs to (a bridged leg's events come to its caller's session).
fn event_call(ev: &Event) -> Option<CallId> {
    match ev {
        Event::IncomingCall { call, .. }
        | Event::InDialogRequest { call, .. }
        | Event::CallConfirmed { call }
        | Event::CallProgress { call, .. }
        | Event::CallAnswered { call, .. }
        | Event::TransferProgress { call, .. }
        | Event::CallEnded { call, .. } => Some(*call),
        _ => None,
    }
}

/// How the call's transfers go: the agent file's `[transfer]`, or the route's method.
fn transfer_settings(choice: &AppChoice) -> TransferSettings {
    match choice {
        AppChoice::Agent { agent, .. } => agent.0.transfer.clone(),
        AppChoice::Transfer { settings, .. } => settings.clone(),
        _ => TransferSettings::default(),
    }
}

/// Adds our `a=crypto` line to an answer when the offer asked for SDES-SRTP and the policy
/// allows it; the session to run the leg with, or why the call cannot go ahead (488).
pub fn answer_srtp(
    answer: &mut sdp::Answer,
    mode: SrtpMode,
) -> Result<Option<SrtpSession>, &'static str> {
    let savp = answer.media.protocol.contains("SAVP");
    let offered: Vec<CryptoAttribute> = answer
        .media
        .remote_crypto
        .iter()
        .filter_map(|c| CryptoAttribute::parse(c).ok())
        .collect();
    let chosen = match mode {
        SrtpMode::Off => None,
        _ => sdp_crypto::choose(&offered, &SrtpSuite::ALL),
    };
    let Some(theirs) = chosen else {
        if savp {
            return Err("RTP/SAVP offered without a crypto suite we accept");
        }
        if mode == SrtpMode::Mandatory {
            return Err("SRTP is mandatory and the offer has no usable a=crypto");
        }
        return Ok(None);
    };
    let ours = theirs.answer();
    let session = ours
        .session_with(theirs)
        .map_err(|_| "the offered SRTP keys are unusable")?;
    if let Some(m) = answer
        .sdp
        .media
        .iter_mut()
        .find(|m| m.kind == sdp::MediaKind::Audio && m.port != 0)
    {
        m.crypto = vec![ours.to_string()];
    }
    Ok(Some(session))
}

/// Stops a leg and waits (bounded) for its final counters.
pub async fn stop_leg(leg: &mut crate::leg::worker::LegHandle) -> Option<LegStats> {
    let _ = leg.commands.send(LegCommand::Stop);
    let wait = async {
        while let Some(ev) = leg.events.recv().await {
            if let LegEvent::Stopped(stats) = ev {
                return Some(*stats);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(2), wait)
        .await
        .ok()
        .flatten()
}

#[cfg(test)]
mod transfer_tests {
    use super::transfer_uri;

    #[test]
    fn transfer_targets_are_sip_uris_or_numbers_at_the_callers_host() {
        let from = "sip:+14155552671@carrier.example:5080";
        let t = |s: &str| transfer_uri(s, from).map(|u| u.to_string());
        assert_eq!(t("sip:desk@10.0.0.5").as_deref(), Some("sip:desk@10.0.0.5"));
        assert_eq!(
            t("+14155550100").as_deref(),
            Some("sip:+14155550100@carrier.example:5080")
        );
        assert_eq!(t("the front desk"), None);
        assert_eq!(t(""), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_to(protocol: &str, crypto: Option<&str>) -> sdp::Answer {
        let mut offer = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 {protocol} 0\r\na=rtpmap:0 PCMU/8000\r\n"
        );
        if let Some(c) = crypto {
            offer.push_str(&format!("a=crypto:{c}\r\n"));
        }
        let offer = SessionDescription::parse(&offer).unwrap();
        let mut caps = LocalMediaCapabilities::new("192.0.2.9".parse().unwrap(), 5000);
        caps.srtp = true;
        sdp::negotiate_answer(&offer, &caps).unwrap()
    }

    const CRYPTO: &str =
        "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    #[test]
    fn srtp_policy_decides_the_answer() {
        // Plain offer: fine unless SRTP is mandatory.
        assert!(matches!(
            answer_srtp(&mut answer_to("RTP/AVP", None), SrtpMode::Optional),
            Ok(None)
        ));
        assert!(answer_srtp(&mut answer_to("RTP/AVP", None), SrtpMode::Mandatory).is_err());
        // SAVP with keys: accepted, and our own line goes into the answer.
        let mut a = answer_to("RTP/SAVP", Some(CRYPTO));
        assert!(answer_srtp(&mut a, SrtpMode::Optional).unwrap().is_some());
        let text = a.sdp.to_string();
        assert!(text.contains("m=audio 5000 RTP/SAVP 0"), "{text}");
        let line = a.sdp.media[0].crypto[0].clone();
        assert!(
            line.starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"),
            "{line}"
        );
        assert!(
            !line.contains("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"),
            "fresh keys"
        );
        // SAVP we will not do: policy off, or no usable suite.
        assert!(answer_srtp(&mut answer_to("RTP/SAVP", Some(CRYPTO)), SrtpMode::Off).is_err());
        assert!(
            answer_srtp(
                &mut answer_to("RTP/SAVP", Some("1 F8_128_HMAC_SHA1_80 inline:AAAA")),
                SrtpMode::Optional
            )
            .is_err()
        );
        // Opportunistic SRTP (RTP/AVP with a=crypto) is taken up when allowed.
        let mut a = answer_to("RTP/AVP", Some(CRYPTO));
        assert!(answer_srtp(&mut a, SrtpMode::Optional).unwrap().is_some());
        assert!(a.sdp.to_string().contains("RTP/AVP"));
    }
}
