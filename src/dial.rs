//! `leadscaller dial`: one outbound call through a configured trunk, answered media echoed
//! back (a plain RTP echo until the media core lands), hung up after a set duration.

use crate::call::echo::EchoApp;
use crate::config::SrtpMode;
use crate::config::{Config, TrunkConfig};
use crate::leg::rtp::RtpLeg;
use crate::leg::worker::{LegSockets, MediaEngine};
use crate::rtp::ports::PortAllocator;

use crate::server::{
    advertised_address, endpoint_config, sip_listeners, trunk_credentials, trunk_peer,
};
use crate::sip::endpoint::{EndReason, Event, OutboundCall, Transport};
use crate::sip::headers::NameAddr;
use crate::sip::sdp::{
    self, Direction, LocalMediaCapabilities, NegotiatedMedia, SessionDescription,
};
use crate::sip::sdp_crypto::CryptoAttribute;
use crate::sip::transport::{self, Command};
use crate::sip::uri::Uri;
use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};

/// Why a dial attempt did not complete.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DialError {
    #[error("unknown trunk {0:?} (configured: {1})")]
    UnknownTrunk(String, String),
    #[error("bad destination {0:?}: expected an E.164 number (+...) or a sip: URI")]
    BadDestination(String),
    #[error("cannot resolve trunk host {0}: {1}")]
    Resolve(String, io::Error),
    #[error("call failed: {0:?}")]
    Failed(EndReason),
    #[error("the answer's SDP is unusable: {0}")]
    Sdp(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What happened on the call.
#[derive(Debug, Clone)]
pub struct DialReport {
    pub answered_after: Duration,
    pub media: NegotiatedMedia,
    pub packets_echoed: u64,
    pub end: EndReason,
}

pub(crate) fn target_uri(dest: &str, trunk: &TrunkConfig) -> Result<Uri, DialError> {
    if dest.starts_with("sip:") || dest.starts_with("sips:") {
        return Uri::parse(dest).map_err(|_| DialError::BadDestination(dest.into()));
    }
    let digits = dest.strip_prefix('+').unwrap_or("");
    if digits.len() < 6 || digits.len() > 15 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(DialError::BadDestination(dest.into()));
    }
    let user = trunk.format_number(dest);
    Uri::parse(&format!("sip:{user}@{}", trunk.host_port()))
        .map_err(|_| DialError::BadDestination(dest.into()))
}

/// Places the call and runs it for `duration` after answer.
pub async fn dial(
    cfg: &Config,
    trunk_name: &str,
    dest: &str,
    duration: Duration,
) -> Result<DialReport, DialError> {
    let trunk = cfg.trunks.get(trunk_name).ok_or_else(|| {
        DialError::UnknownTrunk(
            trunk_name.into(),
            cfg.trunks.keys().cloned().collect::<Vec<_>>().join(", "),
        )
    })?;
    let target = target_uri(dest, trunk)?;

    // UDP and TCP listeners on ephemeral ports of the configured bind address (TLS calls
    // ride on the connection we open).
    let bind_ip = sip_listeners(&cfg.server)
        .first()
        .map(|(_, a)| a.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let listeners = [
        (Transport::Udp, SocketAddr::new(bind_ip, 0)),
        (Transport::Tcp, SocketAddr::new(bind_ip, 0)),
    ];
    let (advertised, media_ip) = advertised_address(&cfg.server, listeners[0].1.ip());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ev_tx, mut events) = mpsc::channel(256);
    let sip = transport::start(
        &listeners,
        endpoint_config(&cfg.server, &advertised),
        ev_tx,
        shutdown_rx,
    )
    .await?;
    let peer = trunk_peer(trunk, &sip.commands)
        .await
        .map_err(|e| DialError::Resolve(trunk.host_port(), e))?;
    let remote = peer.addr;

    let mut ports = PortAllocator::new(cfg.server.rtp.port_min, cfg.server.rtp.port_max);
    let rtp_ip = if bind_ip.is_unspecified() {
        bind_ip
    } else {
        media_ip
    };
    let (port, media_sock) = LegSockets::bind_free_pair(rtp_ip, || ports.allocate(), |_| {})
        .ok_or_else(|| io::Error::other("no free RTP port pair in rtp.port_min..rtp.port_max"))?;
    let mut caps = LocalMediaCapabilities::new(media_ip, port);
    let names: Vec<String> = trunk
        .codecs
        .iter()
        .filter(|c| c.is_audio())
        .map(|c| c.name().to_string())
        .collect();
    caps.codecs = crate::call::codec_prefs(&names);
    if caps.codecs.is_empty() {
        caps.codecs = vec![sdp::CodecPref::pcmu(), sdp::CodecPref::pcma()];
    }
    let mut offer = sdp::create_offer(&caps, Direction::SendRecv);
    // SDES-SRTP per the trunk.
    let our_crypto = crate::call::outbound::offer_srtp(&mut offer, trunk.srtp);
    let domain = &trunk.domain;
    let from_user = trunk
        .from_number
        .clone()
        .unwrap_or_else(|| "leadscaller".into());
    let bad_from = |_| DialError::BadDestination(from_user.clone());
    let from = NameAddr::parse(
        &format!("<sip:{}@{domain}>", trunk.format_number(&from_user)),
        "From",
    )
    .map_err(bad_from)?;
    let to = NameAddr::parse(&format!("<{target}>"), "To")
        .map_err(|_| DialError::BadDestination(dest.into()))?;
    let credentials = trunk_credentials(trunk);
    let call = OutboundCall {
        target: target.clone(),
        from,
        to,
        peer,
        sdp: Bytes::from(offer.to_string()),
        credentials,
        headers: Vec::new(),
    };
    let started = Instant::now();
    println!("dial: INVITE {target} via {remote} (trunk {trunk_name})");
    let (reply_tx, reply_rx) = oneshot::channel();
    let _ = sip
        .commands
        .send(Command::Invite {
            call: Box::new(call),
            reply: reply_tx,
        })
        .await;
    let id = reply_rx
        .await
        .map_err(|_| io::Error::other("SIP task stopped"))?;
    let result = run_call(
        &sip.commands,
        &mut events,
        id,
        &offer,
        &mut caps,
        media_sock,
        duration,
        started,
        (our_crypto, trunk.srtp),
    )
    .await;
    let _ = shutdown_tx.send(true);
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_call(
    commands: &mpsc::Sender<Command>,
    events: &mut mpsc::Receiver<Event>,
    id: crate::sip::endpoint::CallId,
    offer: &SessionDescription,
    caps: &mut LocalMediaCapabilities,
    media_sock: LegSockets,
    duration: Duration,
    started: Instant,
    (our_crypto, srtp_mode): (Option<CryptoAttribute>, SrtpMode),
) -> Result<DialReport, DialError> {
    let engine = MediaEngine::start(1);
    let mut media_sock = Some(media_sock);
    let mut answered: Option<(Duration, NegotiatedMedia)> = None;
    let mut leg = None;
    let hangup_at = tokio::time::sleep(Duration::from_secs(3600 * 24));
    tokio::pin!(hangup_at);
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return Err(DialError::Io(io::Error::other("SIP task stopped"))) };
                match ev {
                    Event::CallProgress { call, status, .. } if call == id => println!("dial: <- {status}"),
                    Event::CallAnswered { call, body } if call == id => {
                        let after = started.elapsed();
                        let answer = std::str::from_utf8(&body).ok().map(SessionDescription::parse);
                        let media = match answer {
                            Some(Ok(a)) => NegotiatedMedia::from_answer(offer, &a, caps).map_err(|e| DialError::Sdp(e.to_string())),
                            Some(Err(e)) => Err(DialError::Sdp(e.to_string())),
                            None => Err(DialError::Sdp("not UTF-8".into())),
                        };
                        let media = match media {
                            Ok(m) => m,
                            Err(e) => {
                                let _ = commands.send(Command::Hangup { call: id }).await;
                                return Err(e);
                            }
                        };
                        println!(
                            "dial: answered after {:.0} ms: {} {}/{} to {}; hanging up in {:?}",
                            after.as_secs_f64() * 1e3, media.codec.payload_type, media.codec.encoding_name,
                            media.codec.clock_rate, media.remote_addr, duration
                        );
                        let leg_cfg = crate::call::leg_config(&media, &crate::call::MediaSettings::default(), Duration::from_secs(3600));
                        let mut rtp_leg = leg_cfg.and_then(|c| RtpLeg::new(c, Instant::now()).ok());
                        match (crate::call::outbound::answered_srtp(our_crypto.as_ref(), &media.remote_crypto, srtp_mode), rtp_leg.as_mut()) {
                            (Ok(Some(session)), Some(l)) => l.set_srtp(session),
                            (Err(why), _) => {
                                let _ = commands.send(Command::Hangup { call: id }).await;
                                return Err(DialError::Sdp(why));
                            }
                            _ => {}
                        }
                        match (rtp_leg, media_sock.take()) {
                            (Some(l), Some(sock)) => leg = Some(engine.attach(l, sock, Box::new(EchoApp), None)),
                            _ => {
                                let _ = commands.send(Command::Hangup { call: id }).await;
                                return Err(DialError::Sdp(format!("codec {} is not supported", media.codec.encoding_name)));
                            }
                        }
                        answered = Some((after, media));
                        hangup_at.as_mut().reset(tokio::time::Instant::now() + duration);
                    }
                    Event::InDialogRequest { call, tx, request } if call == id => {
                        let (status, body) = crate::call::in_dialog_answer(&request, caps);
                        let body = body.map(|b| ("application/sdp", b));
                        let _ = commands.send(Command::Respond { tx, status, headers: Vec::new(), body }).await;
                    }
                    Event::CallEnded { call, reason } if call == id => {
                        let echoed = match leg.as_mut() {
                            Some(l) => crate::call::stop_leg(l).await.map_or(0, |s| s.frames_sent_audio),
                            None => 0,
                        };
                        println!("dial: call ended: {reason:?}");
                        return match answered {
                            Some((answered_after, media)) => Ok(DialReport { answered_after, media, packets_echoed: echoed, end: reason }),
                            None => Err(DialError::Failed(reason)),
                        };
                    }
                    _ => {}
                }
            }
            _ = &mut hangup_at, if answered.is_some() => {
                println!("dial: -> BYE");
                let _ = commands.send(Command::Hangup { call: id }).await;
                hangup_at.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3600 * 24));
            }
        }
    }
}
