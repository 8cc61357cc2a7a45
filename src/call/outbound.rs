//! The new outbound leg of a bridged transfer: where it goes (a SIP URI as given, or a phone
//! number through the trunk the call came in on, else at the caller's host), the INVITE with
//! our SDP offer, and, once answered, its media leg running a [`BridgeApp`].
//!
//! The INVITE is placed by the call layer's event loop ([`PlaceCall`]) so that the new call's
//! events are routed to the session that asked for it from the very first response.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::bridge::BridgeApp;
use super::{MediaSettings, codec_prefs, leg_config, transfer_uri};
use crate::config::{SrtpMode, TrunkConfig};
use crate::leg::rtp::RtpLeg;
use crate::leg::worker::{LegHandle, LegSockets, MediaEngine};
use crate::rtp::ports::PortAllocator;
use crate::rtp::srtp::{SrtpKeys, SrtpSession, SrtpSuite};
use crate::sip::endpoint::{CallId, Event, OutboundCall, Peer, Transport};
use crate::sip::headers::NameAddr;
use crate::sip::sdp::{
    self, Direction, LocalMediaCapabilities, NegotiatedMedia, SessionDescription,
};
use crate::sip::sdp_crypto::CryptoAttribute;
use crate::sip::uri::Uri;

/// Adds SDES-SRTP to an offer we make, per `mode`: `mandatory` offers RTP/SAVP, `optional`
/// offers RTP/AVP with an `a=crypto` line the answerer may take up (RFC 8643, opportunistic);
/// returns our crypto attribute (`None` when off).
pub fn offer_srtp(offer: &mut SessionDescription, mode: SrtpMode) -> Option<CryptoAttribute> {
    if mode == SrtpMode::Off {
        return None;
    }
    let ours = CryptoAttribute::new(1, SrtpKeys::generate(SrtpSuite::AesCm128HmacSha1_80));
    if let Some(m) = offer.media.first_mut() {
        m.crypto = vec![ours.to_string()];
        if mode == SrtpMode::Mandatory {
            m.protocol = "RTP/SAVP".into();
        }
    }
    Some(ours)
}

/// The SRTP session for an answer to our offer: the answer's `a=crypto` with our tag and
/// suite; `None` for plain RTP; an error when `mode` is mandatory and the answer has none.
pub fn answered_srtp(
    ours: Option<&CryptoAttribute>,
    remote: &[String],
    mode: SrtpMode,
) -> Result<Option<SrtpSession>, String> {
    let session = ours.and_then(|ours| {
        let theirs = remote
            .iter()
            .filter_map(|c| CryptoAttribute::parse(c).ok())
            .find(|c| c.tag == ours.tag && c.suite() == ours.suite())?;
        ours.session_with(&theirs).ok()
    });
    match session {
        None if mode == SrtpMode::Mandatory => {
            Err("SRTP is mandatory and the answer has no matching a=crypto".into())
        }
        s => Ok(s),
    }
}

/// A call a session asks the call layer to place; its events go to `events`.
pub struct PlaceCall {
    /// The INVITE to send.
    pub call: OutboundCall,
    /// Where the new call's events go.
    pub events: mpsc::UnboundedSender<Event>,
    /// The new call's id, or `None` if the SIP task is gone.
    pub reply: oneshot::Sender<Option<CallId>>,
}

/// Where a bridged leg goes and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRoute {
    /// The Request-URI.
    pub target: Uri,
    /// The next hop, `host:port`, and the transport to it.
    pub hop: String,
    pub transport: Transport,
    /// Our From.
    pub from: String,
    /// The trunk it goes through, if any.
    pub trunk: Option<String>,
}

/// Works out the route of a bridged leg to `target` for a call from `caller` (its From URI)
/// that came in on `trunk`; `caller_id` overrides the From user (default: the caller's).
pub fn bridge_route(
    target: &str,
    caller: &str,
    trunk: Option<&TrunkConfig>,
    caller_id: Option<&str>,
    our_host: &str,
) -> Result<BridgeRoute, String> {
    let target = target.trim();
    let caller_user = Uri::parse(caller)
        .ok()
        .and_then(|u| u.user)
        .filter(|u| crate::agent::transfer::is_caller_id(u));
    let user = caller_id
        .map(str::to_owned)
        .or(caller_user)
        .unwrap_or_else(|| "leadscaller".to_owned());
    let is_uri = target.starts_with("sip:") || target.starts_with("sips:");
    if let (false, Some(t)) = (is_uri, trunk) {
        let uri = crate::dial::target_uri(target, t).map_err(|e| e.to_string())?;
        let hop = t
            .outbound_proxy
            .clone()
            .unwrap_or_else(|| t.host_port())
            .trim_start_matches("sip:")
            .to_owned();
        return Ok(BridgeRoute {
            target: uri,
            hop,
            transport: crate::server::map_transport(t.transport),
            from: format!("<sip:{}@{}>", t.format_number(&user), t.domain),
            trunk: Some(t.name.clone()),
        });
    }
    let uri = transfer_uri(target, caller)
        .ok_or_else(|| format!("transfer target {target:?} is not a SIP URI or a phone number"))?;
    let transport = match uri.param("transport").flatten() {
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
        None => Transport::Udp,
        Some(t) => {
            return Err(format!(
                "transport {t:?} is not supported for a bridged leg"
            ));
        }
    };
    if uri.scheme != crate::sip::uri::Scheme::Sip {
        return Err("a bridged leg goes to a sip: URI (sips: is not supported yet)".into());
    }
    let hop = match uri.port {
        Some(p) => format!("{}:{p}", uri.host),
        None => format!("{}:5060", uri.host),
    };
    Ok(BridgeRoute {
        target: uri,
        hop,
        transport,
        from: format!("<sip:{user}@{our_host}>"),
        trunk: None,
    })
}

/// A bridged leg being placed or running.
pub struct OutboundLeg {
    /// The SIP call.
    pub call: CallId,
    /// Where it went.
    pub target: Uri,
    /// Our offer and media capabilities (re-INVITEs are answered from them).
    offer: SessionDescription,
    pub caps: LocalMediaCapabilities,
    /// The RTP sockets until media starts, and their port (released by [`Self::stop_media`]).
    sockets: Option<LegSockets>,
    port: u16,
    ports: Arc<Mutex<PortAllocator>>,
    /// When the INVITE went out, and when it was answered.
    pub started: Instant,
    pub answered: Option<Instant>,
    /// Its media, once answered (or at early media).
    pub leg: Option<LegHandle>,
    /// Why we gave up on it before it answered (the ring timeout), for the conversation.
    pub failure: Option<String>,
    /// Our SDES key in the offer, and the SRTP policy the answer must meet.
    crypto: Option<CryptoAttribute>,
    srtp: SrtpMode,
}

/// What placing a bridged leg needs from the call layer.
pub struct PlaceContext<'a> {
    pub place: &'a mpsc::UnboundedSender<PlaceCall>,
    pub events: mpsc::UnboundedSender<Event>,
    pub ports: Arc<Mutex<PortAllocator>>,
    pub bind_ip: std::net::IpAddr,
    pub media_ip: std::net::IpAddr,
    pub codecs: &'a [String],
    pub trunk: Option<&'a TrunkConfig>,
    /// SRTP on the new leg: the transfer's setting, else the trunk's, else off.
    pub srtp: SrtpMode,
}

impl OutboundLeg {
    /// Sends the INVITE for `route`; the call's events then arrive on `ctx.events`.
    pub async fn place(route: BridgeRoute, ctx: PlaceContext<'_>) -> Result<OutboundLeg, String> {
        let addr: SocketAddr = tokio::net::lookup_host(&route.hop)
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", route.hop))?
            .next()
            .ok_or_else(|| format!("{}: no address", route.hop))?;
        let ports = ctx.ports.clone();
        let (port, sockets) = LegSockets::bind_free_pair(
            ctx.bind_ip,
            || ports.lock().ok()?.allocate(),
            |p| {
                if let Ok(mut a) = ports.lock() {
                    a.release(p);
                }
            },
        )
        .ok_or("no free RTP port pair for the bridged leg")?;
        let mut caps = LocalMediaCapabilities::new(ctx.media_ip, port);
        caps.codecs = codec_prefs(ctx.codecs);
        let mut offer = sdp::create_offer(&caps, Direction::SendRecv);
        let crypto = offer_srtp(&mut offer, ctx.srtp);
        let release = |why: String| {
            if let Ok(mut a) = ctx.ports.lock() {
                a.release(port);
            }
            why
        };
        let from = NameAddr::parse(&route.from, "From")
            .map_err(|_| release(format!("bad caller id in {:?}", route.from)))?;
        let to = NameAddr::parse(&format!("<{}>", route.target), "To")
            .map_err(|_| release(format!("bad target {}", route.target)))?;
        let call = OutboundCall {
            target: route.target.clone(),
            from,
            to,
            peer: Peer {
                transport: route.transport,
                addr,
                conn: None,
            },
            sdp: Bytes::from(offer.to_string()),
            credentials: ctx.trunk.and_then(crate::server::trunk_credentials),
            headers: Vec::new(),
        };
        let (reply, id) = oneshot::channel();
        let placed = ctx.place.send(PlaceCall {
            call,
            events: ctx.events,
            reply,
        });
        let id = match placed {
            Ok(()) => id.await.ok().flatten(),
            Err(_) => None,
        };
        let Some(call) = id else {
            return Err(release("the SIP task is gone".into()));
        };
        Ok(OutboundLeg {
            call,
            target: route.target,
            offer,
            caps,
            sockets: Some(sockets),
            port,
            ports: ctx.ports,
            started: Instant::now(),
            answered: None,
            leg: None,
            failure: None,
            crypto,
            srtp: ctx.srtp,
        })
    }

    /// The media the target's SDP answer `body` (in a 200, or a 183 for early media)
    /// negotiates, and its PCM rate (the caller's end of the bridge resamples to it).
    pub fn answer_rate(&self, body: &[u8]) -> Result<(NegotiatedMedia, u32), String> {
        let answer =
            std::str::from_utf8(body).map_err(|_| "the answer's SDP is not UTF-8".to_string())?;
        let answer = SessionDescription::parse(answer).map_err(|e| e.to_string())?;
        let media = NegotiatedMedia::from_answer(&self.offer, &answer, &self.caps)
            .map_err(|e| e.to_string())?;
        let rate =
            crate::codec::CodecSpec::from_sdp(&media.codec.encoding_name, media.codec.payload_type)
                .map(|c| c.pcm_rate)
                .ok_or_else(|| format!("codec {} is not supported", media.codec.encoding_name))?;
        Ok((media, rate))
    }

    /// Starts the answered leg's media with `app` on `engine`.
    pub fn start_media(
        &mut self,
        media: &NegotiatedMedia,
        settings: &MediaSettings,
        media_timeout: Duration,
        engine: &MediaEngine,
        app: BridgeApp,
    ) -> Result<(), String> {
        let cfg = leg_config(media, settings, media_timeout)
            .ok_or_else(|| format!("codec {} is not supported", media.codec.encoding_name))?;
        let mut leg = RtpLeg::new(cfg, Instant::now()).map_err(|e| e.to_string())?;
        if let Some(session) = answered_srtp(self.crypto.as_ref(), &media.remote_crypto, self.srtp)?
        {
            tracing::info!(
                suite = session.suite().sdp_name(),
                "SRTP on the bridged leg"
            );
            leg.set_srtp(session);
        }
        let sockets = self.sockets.take().ok_or("media already started")?;
        self.leg = Some(engine.attach(leg, sockets, Box::new(app), None));
        Ok(())
    }

    /// Stops its media (if it started) and gives the RTP port back.
    pub async fn stop_media(&mut self) {
        if let Some(l) = self.leg.as_mut() {
            super::stop_leg(l).await;
        }
        self.sockets = None;
        if let Ok(mut a) = self.ports.lock() {
            a.release(self.port);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sip_uri_goes_where_it_says_as_the_caller() {
        let r = bridge_route(
            "sip:sales@10.0.0.9:5080;transport=tcp",
            "sip:+14155550100@carrier.example",
            None,
            None,
            "192.0.2.1",
        )
        .unwrap();
        assert_eq!(r.hop, "10.0.0.9:5080");
        assert_eq!(r.transport, Transport::Tcp);
        assert_eq!(r.from, "<sip:+14155550100@192.0.2.1>");
        assert_eq!(r.trunk, None);
    }

    #[test]
    fn a_number_goes_to_the_callers_host_without_a_trunk() {
        let r = bridge_route(
            "+14155550199",
            "sip:alice@pbx.example:5070",
            None,
            Some("+18005550100"),
            "192.0.2.1",
        )
        .unwrap();
        assert_eq!(r.target.to_string(), "sip:+14155550199@pbx.example:5070");
        assert_eq!(r.hop, "pbx.example:5070");
        assert_eq!(r.from, "<sip:+18005550100@192.0.2.1>");
    }

    #[test]
    fn srtp_offers_and_answers_follow_the_policy() {
        let caps = LocalMediaCapabilities::new("192.0.2.1".parse().unwrap(), 4000);
        let plain = sdp::create_offer(&caps, Direction::SendRecv);
        let mut off = plain.clone();
        assert!(offer_srtp(&mut off, SrtpMode::Off).is_none());
        assert_eq!(off.to_string(), plain.to_string());
        let mut optional = plain.clone();
        let ours = offer_srtp(&mut optional, SrtpMode::Optional).unwrap();
        assert_eq!(optional.media[0].protocol, "RTP/AVP");
        assert_eq!(optional.media[0].crypto, [ours.to_string()]);
        let mut mandatory = plain.clone();
        let ours = offer_srtp(&mut mandatory, SrtpMode::Mandatory).unwrap();
        assert_eq!(mandatory.media[0].protocol, "RTP/SAVP");
        // The peer's answer: its own key under our tag and suite.
        let theirs = CryptoAttribute::new(1, SrtpKeys::generate(SrtpSuite::AesCm128HmacSha1_80));
        let answered = answered_srtp(Some(&ours), &[theirs.to_string()], SrtpMode::Mandatory);
        assert!(matches!(answered, Ok(Some(_))));
        assert!(answered_srtp(Some(&ours), &[], SrtpMode::Mandatory).is_err());
        assert!(matches!(
            answered_srtp(Some(&ours), &[], SrtpMode::Optional),
            Ok(None)
        ));
        let other_tag = CryptoAttribute::new(2, SrtpKeys::generate(SrtpSuite::AesCm128HmacSha1_80));
        assert!(answered_srtp(Some(&ours), &[other_tag.to_string()], SrtpMode::Mandatory).is_err());
    }

    #[test]
    fn bad_targets_are_refused_with_a_reason() {
        for t in ["sales", "sips:x@h", "sip:x@h;transport=sctp"] {
            let e = bridge_route(t, "sip:a@h", None, None, "192.0.2.1");
            assert!(e.is_err(), "{t}: {e:?}");
        }
        // A caller user that is not a plain id is not put in our From.
        let r = bridge_route("sip:b@h", "sip:a%20b@h", None, None, "192.0.2.1").unwrap();
        assert_eq!(r.from, "<sip:leadscaller@192.0.2.1>");
    }
}
