//! SDP (RFC 8866, formerly RFC 4566) parsing and serialization, plus the RFC 3264
//! offer/answer model, scoped to what a SIP user agent carrying telephone audio needs.
//!
//! The parser is lenient where real-world UAs are sloppy (LF vs CRLF, blank lines,
//! trailing whitespace, unknown line types and attributes) and strict where a mistake
//! would send media to the wrong place or decode it with the wrong codec (`v=`, `o=`,
//! `c=`, `m=` syntax, ports, payload types, `a=rtpmap`).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Dynamic payload type we use for opus in our offers (the common WebRTC/baresip choice).
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// Dynamic payload type we use for RFC 4733 telephone-event in our offers.
pub const TELEPHONE_EVENT_PAYLOAD_TYPE: u8 = 101;
/// Opus format parameters we advertise (RFC 7587): 10 ms minimum frames, in-band FEC on.
pub const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";
/// Telephone-event events we advertise: DTMF 0-9, *, #, A-D and flash (RFC 4733).
pub const TELEPHONE_EVENT_FMTP: &str = "0-16";

/// RFC 3551 static audio payload types that are valid without an `a=rtpmap`.
const STATIC_AUDIO: &[(u8, &str, u32)] = &[
    (0, "PCMU", 8000),
    (3, "GSM", 8000),
    (4, "G723", 8000),
    (8, "PCMA", 8000),
    (9, "G722", 8000),
    (13, "CN", 8000),
    (18, "G729", 8000),
];

/// Errors from SDP parsing and offer/answer negotiation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The SDP text is malformed at the given 1-based line.
    #[error("invalid SDP at line {line}: {reason}")]
    Parse {
        /// 1-based line number in the SDP text.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// The offer holds no audio stream with a non-zero port and a transport we speak.
    #[error("offer contains no usable audio stream")]
    NoAudioStream,
    /// None of our codecs appears in the remote description (answer with SIP 488).
    #[error("no codec in common with the remote side")]
    NoCommonCodec,
    /// Neither the media section nor the session carries a `c=` address.
    #[error("no connection address (c=) for the audio stream")]
    MissingConnection,
    /// A received answer violates RFC 3264 relative to the offer we sent.
    #[error("invalid SDP answer: {0}")]
    InvalidAnswer(String),
}

impl SdpError {
    /// SIP status to reject an INVITE whose offer produced this error (400 or 488).
    pub fn sip_status(&self) -> u16 {
        match self {
            SdpError::Parse { .. } => 400,
            _ => 488,
        }
    }
}

fn perr(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError::Parse {
        line,
        reason: reason.into(),
    }
}

/// Media stream direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default when no direction attribute is present).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The direction the other party must use: sendonly <-> recvonly, others unchanged.
    pub fn reverse(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Builds a direction from "may send" / "may receive" flags.
    pub fn from_flags(send: bool, recv: bool) -> Self {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether this side may send media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side may receive media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The narrower of two directions (what both allow).
    pub fn intersect(self, other: Self) -> Self {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }

    /// The attribute name, e.g. `"sendrecv"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses a direction attribute name; `None` for anything else.
    pub fn from_attr(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Address type of an `o=` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
}

impl AddrType {
    /// The address type matching an IP address.
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            AddrType::Ip4
        } else {
            AddrType::Ip6
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            AddrType::Ip4 => "IP4",
            AddrType::Ip6 => "IP6",
        }
    }
}

/// The `o=` line; the address is kept as text because it may legally be a hostname.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Username, `-` when none.
    pub username: String,
    /// Session id, stable for the lifetime of the session.
    pub session_id: u64,
    /// Session version, incremented on every changed re-offer.
    pub session_version: u64,
    /// Address type of `address`.
    pub addr_type: AddrType,
    /// Originating address (IP literal or FQDN).
    pub address: String,
}

/// The `t=` line (start and stop NTP times; `0 0` for an unbounded session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// Start time.
    pub start: u64,
    /// Stop time.
    pub stop: u64,
}

/// Media type of an `m=` line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `audio`.
    Audio,
    /// `video`.
    Video,
    /// `image` (T.38 fax).
    Image,
    /// `application`.
    Application,
    /// Anything else, kept verbatim.
    Other(String),
}

impl MediaKind {
    /// The token as written on the `m=` line.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Image => "image",
            MediaKind::Application => "application",
            MediaKind::Other(s) => s,
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "image" => MediaKind::Image,
            "application" => MediaKind::Application,
            other => MediaKind::Other(other.to_string()),
        }
    }
}

/// One `a=rtpmap:<pt> <name>/<rate>[/<channels>]` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// RTP payload type (0..=127).
    pub payload_type: u8,
    /// Encoding name as written (case preserved; compare case-insensitively).
    pub encoding_name: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count, when given.
    pub channels: Option<u16>,
}

/// A payload type resolved to its codec: rtpmap (or static table) plus fmtp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// RTP payload type (0..=127).
    pub payload_type: u8,
    /// Encoding name, e.g. `PCMU`, `opus`, `telephone-event`.
    pub encoding_name: String,
    /// RTP clock rate in Hz.
    pub clock_rate: u32,
    /// Channel count, when given.
    pub channels: Option<u16>,
    /// Format parameters from `a=fmtp`, when given.
    pub fmtp: Option<String>,
}

impl Codec {
    /// The static RFC 3551 audio codec for `pt`, if it has one.
    pub fn from_static(pt: u8) -> Option<Self> {
        STATIC_AUDIO
            .iter()
            .find(|(p, _, _)| *p == pt)
            .map(|&(payload_type, name, clock_rate)| Codec {
                payload_type,
                encoding_name: name.to_string(),
                clock_rate,
                channels: None,
                fmtp: None,
            })
    }

    /// Whether this is RFC 4733 telephone-event.
    pub fn is_telephone_event(&self) -> bool {
        self.encoding_name.eq_ignore_ascii_case("telephone-event")
    }

    // Telephone-event, comfort noise and redundancy are never the "main" codec.
    fn is_auxiliary(&self) -> bool {
        is_auxiliary_name(&self.encoding_name)
    }

    fn same_format(&self, other: &Codec) -> bool {
        self.encoding_name
            .eq_ignore_ascii_case(&other.encoding_name)
            && self.clock_rate == other.clock_rate
    }
}

fn is_auxiliary_name(name: &str) -> bool {
    ["telephone-event", "CN", "red"]
        .iter()
        .any(|a| name.eq_ignore_ascii_case(a))
}

/// An `a=rtcp:<port> [IN IP4|IP6 <addr>]` attribute (RFC 3605).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpAttr {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when it differs from the RTP address.
    pub address: Option<IpAddr>,
}

/// One `m=` section with the attributes we interpret and the rest preserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type (`audio`, `video`, ...).
    pub kind: MediaKind,
    /// Transport port; 0 means the stream is rejected/disabled.
    pub port: u16,
    /// Optional `/<number of ports>` suffix on the port.
    pub port_count: Option<u16>,
    /// Transport protocol, e.g. `RTP/AVP`, `RTP/SAVP`, `udptl`.
    pub protocol: String,
    /// Payload types in preference order (RTP protocols only).
    pub payload_types: Vec<u8>,
    /// Non-RTP format tokens such as `t38` (empty for RTP protocols).
    pub formats: Vec<String>,
    /// Media-level `c=` address, overriding the session one.
    pub connection: Option<IpAddr>,
    /// Raw `b=` values, e.g. `AS:64`.
    pub bandwidths: Vec<String>,
    /// `a=rtpmap` lines in the order received.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines as (payload type, parameters).
    pub fmtps: Vec<(u8, String)>,
    /// `a=ptime` in milliseconds.
    pub ptime: Option<u32>,
    /// `a=maxptime` in milliseconds.
    pub maxptime: Option<u32>,
    /// Media-level direction attribute, if any.
    pub direction: Option<Direction>,
    /// `a=rtcp-mux` present (RFC 5761).
    pub rtcp_mux: bool,
    /// `a=rtcp` port/address (RFC 3605).
    pub rtcp: Option<RtcpAttr>,
    /// Raw `a=crypto` values (RFC 4568), kept for an SRTP layer to interpret.
    pub crypto: Vec<String>,
    /// Every other attribute as (name, value) in order received.
    pub attributes: Vec<(String, Option<String>)>,
}

impl MediaDescription {
    /// An empty media section with the given type, port and protocol.
    pub fn new(kind: MediaKind, port: u16, protocol: impl Into<String>) -> Self {
        MediaDescription {
            kind,
            port,
            port_count: None,
            protocol: protocol.into(),
            payload_types: Vec::new(),
            formats: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ptime: None,
            maxptime: None,
            direction: None,
            rtcp_mux: false,
            rtcp: None,
            crypto: Vec::new(),
            attributes: Vec::new(),
        }
    }

    /// Whether the protocol is an RTP profile (formats are payload type numbers).
    pub fn is_rtp(&self) -> bool {
        is_rtp_protocol(&self.protocol)
    }

    /// Resolves one payload type via its rtpmap or the static table, with fmtp attached.
    pub fn codec(&self, pt: u8) -> Option<Codec> {
        let mut codec = match self.rtpmaps.iter().find(|r| r.payload_type == pt) {
            Some(r) => Codec {
                payload_type: pt,
                encoding_name: r.encoding_name.clone(),
                clock_rate: r.clock_rate,
                channels: r.channels,
                fmtp: None,
            },
            None => Codec::from_static(pt)?,
        };
        codec.fmtp = self.fmtp(pt).map(str::to_string);
        Some(codec)
    }

    /// All resolvable codecs in m-line order; dynamic types lacking an rtpmap are skipped.
    pub fn codecs(&self) -> Vec<Codec> {
        self.payload_types
            .iter()
            .filter_map(|&pt| self.codec(pt))
            .collect()
    }

    /// The fmtp parameters for a payload type.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, s)| s.as_str())
    }

    /// Hold per media-level info only: sendonly/inactive, or `c=0.0.0.0` (RFC 2543 hold).
    pub fn is_hold(&self) -> bool {
        matches!(
            self.direction,
            Some(Direction::SendOnly | Direction::Inactive)
        ) || self.connection.is_some_and(|ip| ip.is_unspecified())
    }

    // A rejected copy for an answer: RFC 3264 §6 keeps type, proto and formats, port 0.
    fn rejected(&self) -> Self {
        let mut m = MediaDescription::new(self.kind.clone(), 0, self.protocol.clone());
        m.payload_types.clone_from(&self.payload_types);
        m.formats.clone_from(&self.formats);
        m
    }

    fn apply_line(&mut self, kind: char, value: &str) -> Result<(), String> {
        match kind {
            'c' => self.connection = Some(parse_connection(value)?),
            'b' => self.bandwidths.push(value.to_string()),
            'a' => self.apply_attribute(value)?,
            'v' | 'o' | 's' | 't' => {
                return Err(format!("{kind}= line not allowed inside a media section"));
            }
            // i=, k= and unknown types carry nothing we act on (RFC 8866 §5: ignore).
            _ => {}
        }
        Ok(())
    }

    fn apply_attribute(&mut self, value: &str) -> Result<(), String> {
        let (name, val) = split_attr(value);
        if val.is_none()
            && let Some(d) = Direction::from_attr(name)
        {
            self.direction = Some(d);
            return Ok(());
        }
        let rtp = self.is_rtp();
        match (name, val) {
            ("rtpmap", Some(v)) if rtp => self.rtpmaps.push(parse_rtpmap(v)?),
            ("fmtp", Some(v)) if rtp => {
                let (pt, params) = split_first_token(v);
                self.fmtps.push((parse_pt(pt)?, params.to_string()));
            }
            // Non-critical numeric attributes fall back to raw so odd values survive.
            ("ptime", Some(v)) if v.trim().parse::<u32>().is_ok() => {
                self.ptime = v.trim().parse().ok();
            }
            ("maxptime", Some(v)) if v.trim().parse::<u32>().is_ok() => {
                self.maxptime = v.trim().parse().ok();
            }
            ("rtcp", Some(v)) if parse_rtcp(v).is_some() => self.rtcp = parse_rtcp(v),
            ("rtcp-mux", None) => self.rtcp_mux = true,
            ("crypto", Some(v)) => self.crypto.push(v.to_string()),
            _ => self
                .attributes
                .push((name.to_string(), val.map(str::to_string))),
        }
        Ok(())
    }
}

impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.kind.as_str(), self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.protocol)?;
        for pt in &self.payload_types {
            write!(f, " {pt}")?;
        }
        for fmt_token in &self.formats {
            write!(f, " {fmt_token}")?;
        }
        f.write_str("\r\n")?;
        if let Some(ip) = self.connection {
            write_connection(f, ip)?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        // Merge rtpmaps and fmtps so each fmtp follows its rtpmap while both keep their
        // received order; that makes parse(display(x)) == x for any parsed input.
        let mut fmtps = self.fmtps.iter().peekable();
        for (i, r) in self.rtpmaps.iter().enumerate() {
            write!(
                f,
                "a=rtpmap:{} {}/{}",
                r.payload_type, r.encoding_name, r.clock_rate
            )?;
            if let Some(ch) = r.channels {
                write!(f, "/{ch}")?;
            }
            f.write_str("\r\n")?;
            let emitted = self.rtpmaps.get(..=i).unwrap_or_default();
            while let Some((pt, params)) = fmtps.next_if(|(pt, _)| {
                emitted.iter().any(|r| r.payload_type == *pt)
                    || !self.rtpmaps.iter().any(|r| r.payload_type == *pt)
            }) {
                write!(f, "a=fmtp:{pt} {params}\r\n")?;
            }
        }
        for (pt, params) in fmtps {
            write!(f, "a=fmtp:{pt} {params}\r\n")?;
        }
        if let Some(p) = self.ptime {
            write!(f, "a=ptime:{p}\r\n")?;
        }
        if let Some(p) = self.maxptime {
            write!(f, "a=maxptime:{p}\r\n")?;
        }
        if let Some(r) = self.rtcp {
            write!(f, "a=rtcp:{}", r.port)?;
            if let Some(ip) = r.address {
                write!(f, " IN {} {ip}", AddrType::of(ip).as_str())?;
            }
            f.write_str("\r\n")?;
        }
        if self.rtcp_mux {
            f.write_str("a=rtcp-mux\r\n")?;
        }
        for c in &self.crypto {
            write!(f, "a=crypto:{c}\r\n")?;
        }
        write_attributes(f, &self.attributes)?;
        if let Some(d) = self.direction {
            write!(f, "a={d}\r\n")?;
        }
        Ok(())
    }
}

/// A complete session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// The `o=` line.
    pub origin: Origin,
    /// The `s=` line (`-` when absent).
    pub session_name: String,
    /// Session-level `c=` address.
    pub connection: Option<IpAddr>,
    /// Raw session-level `b=` values.
    pub bandwidths: Vec<String>,
    /// The first `t=` line (`0 0` when absent).
    pub timing: Timing,
    /// Session-level direction attribute, inherited by media without their own.
    pub direction: Option<Direction>,
    /// Other session-level attributes as (name, value).
    pub attributes: Vec<(String, Option<String>)>,
    /// Media sections in order.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// Parses SDP text, accepting LF or CRLF line ends.
    pub fn parse(input: &str) -> Result<Self, SdpError> {
        let mut lines = input
            .split('\n')
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end()))
            .filter(|(_, l)| !l.is_empty());
        let v_line = match lines.next() {
            Some((n, "v=0")) => n,
            Some((n, _)) => return Err(perr(n, "first line must be v=0")),
            None => return Err(perr(1, "empty SDP, expected v=0")),
        };
        let (o_line, o_text) = lines
            .next()
            .ok_or_else(|| perr(v_line + 1, "missing o= line after v=0"))?;
        let origin = o_text
            .strip_prefix("o=")
            .ok_or_else(|| perr(o_line, "expected o= line after v=0"))
            .and_then(|v| parse_origin(v).map_err(|r| perr(o_line, r)))?;
        let mut sdp = SessionDescription {
            origin,
            session_name: "-".to_string(),
            connection: None,
            bandwidths: Vec::new(),
            timing: Timing::default(),
            direction: None,
            attributes: Vec::new(),
            media: Vec::new(),
        };
        let mut seen_t = false;
        for (n, line) in lines {
            let (kind, value) =
                split_line(line).ok_or_else(|| perr(n, "expected <type>=<value>"))?;
            let result = if kind == 'm' {
                parse_media_line(value).map(|m| sdp.media.push(m))
            } else if let Some(m) = sdp.media.last_mut() {
                m.apply_line(kind, value)
            } else {
                sdp.apply_session_line(kind, value, &mut seen_t)
            };
            result.map_err(|r| perr(n, r))?;
        }
        Ok(sdp)
    }

    /// Effective direction of media `idx`: media-level, else session-level, else sendrecv.
    pub fn media_direction(&self, idx: usize) -> Direction {
        self.media
            .get(idx)
            .and_then(|m| m.direction)
            .or(self.direction)
            .unwrap_or_default()
    }

    /// Effective `c=` address of media `idx`: media-level, else session-level.
    pub fn media_connection(&self, idx: usize) -> Option<IpAddr> {
        self.media
            .get(idx)
            .and_then(|m| m.connection)
            .or(self.connection)
    }

    /// Whether media `idx` is put on hold (sendonly/inactive or `c=0.0.0.0`), session fallbacks applied.
    pub fn is_media_hold(&self, idx: usize) -> bool {
        matches!(
            self.media_direction(idx),
            Direction::SendOnly | Direction::Inactive
        ) || self
            .media_connection(idx)
            .is_some_and(|ip| ip.is_unspecified())
    }

    /// Whether the first active audio stream is on hold.
    pub fn is_hold(&self) -> bool {
        first_active_audio(self, true).is_some_and(|i| self.is_media_hold(i))
    }

    fn apply_session_line(
        &mut self,
        kind: char,
        value: &str,
        seen_t: &mut bool,
    ) -> Result<(), String> {
        match kind {
            'v' => return Err("duplicate v= line".to_string()),
            'o' => return Err("duplicate o= line".to_string()),
            's' => self.session_name = value.to_string(),
            'c' => self.connection = Some(parse_connection(value)?),
            'b' => self.bandwidths.push(value.to_string()),
            // Several t= lines are legal; telephony only ever uses the first.
            't' if !*seen_t => {
                self.timing = parse_timing(value)?;
                *seen_t = true;
            }
            'a' => {
                let (name, val) = split_attr(value);
                match (Direction::from_attr(name), val) {
                    (Some(d), None) => self.direction = Some(d),
                    _ => self
                        .attributes
                        .push((name.to_string(), val.map(str::to_string))),
                }
            }
            // i=, u=, e=, p=, r=, z=, k=, extra t= and unknown types: informational only.
            _ => {}
        }
        Ok(())
    }
}

impl FromStr for SessionDescription {
    type Err = SdpError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionDescription::parse(s)
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        f.write_str("v=0\r\n")?;
        write!(
            f,
            "o={} {} {} IN {} {}\r\n",
            token_or_dash(&o.username),
            o.session_id,
            o.session_version,
            o.addr_type.as_str(),
            token_or_dash(&o.address)
        )?;
        // RFC 8866 §5.3: an empty session name is written as a single space.
        if self.session_name.is_empty() {
            f.write_str("s= \r\n")?;
        } else {
            write!(f, "s={}\r\n", self.session_name)?;
        }
        if let Some(ip) = self.connection {
            write_connection(f, ip)?;
        }
        for b in &self.bandwidths {
            write!(f, "b={b}\r\n")?;
        }
        write!(f, "t={} {}\r\n", self.timing.start, self.timing.stop)?;
        write_attributes(f, &self.attributes)?;
        if let Some(d) = self.direction {
            write!(f, "a={d}\r\n")?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

/// A codec we are willing to use, identified by name and clock rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecPref {
    /// Encoding name, matched case-insensitively (`PCMU`, `PCMA`, `opus`, `G722`).
    pub name: String,
    /// RTP clock rate in Hz (note G722 is 8000 in SDP per RFC 3551).
    pub clock_rate: u32,
    /// Channel count to advertise, when relevant (opus is always 2).
    pub channels: Option<u16>,
}

impl CodecPref {
    /// A preference for `name`/`clock_rate`[/`channels`].
    pub fn new(name: impl Into<String>, clock_rate: u32, channels: Option<u16>) -> Self {
        CodecPref {
            name: name.into(),
            clock_rate,
            channels,
        }
    }

    /// G.711 µ-law.
    pub fn pcmu() -> Self {
        CodecPref::new("PCMU", 8000, None)
    }

    /// G.711 A-law.
    pub fn pcma() -> Self {
        CodecPref::new("PCMA", 8000, None)
    }

    /// G.722 (advertised at 8000 Hz per RFC 3551).
    pub fn g722() -> Self {
        CodecPref::new("G722", 8000, None)
    }

    /// Opus (RFC 7587: always opus/48000/2).
    pub fn opus() -> Self {
        CodecPref::new("opus", 48000, Some(2))
    }

    /// Whether a remote codec is this one (name case-insensitive and clock rate).
    pub fn matches(&self, codec: &Codec) -> bool {
        self.name.eq_ignore_ascii_case(&codec.encoding_name) && self.clock_rate == codec.clock_rate
    }
}

/// What our side can do for audio, used to build offers and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMediaCapabilities {
    /// Codecs in our preference order.
    pub codecs: Vec<CodecPref>,
    /// Whether we send/receive RFC 4733 telephone-event.
    pub telephone_event: bool,
    /// Packetization time we want to receive, in ms.
    pub ptime: u32,
    /// Our RTP address (goes into `o=` and `c=`).
    pub address: IpAddr,
    /// Our RTP port (RTCP is port+1 unless rtcp-mux is negotiated).
    pub rtp_port: u16,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` session version; bump it for each changed re-offer.
    pub session_version: u64,
    /// `o=` username.
    pub username: String,
    /// Whether our RTP stack demultiplexes RTCP on the RTP port (RFC 5761).
    pub rtcp_mux: bool,
    /// Whether `RTP/SAVP(F)` offers may be answered (the caller adds the `a=crypto` line).
    pub srtp: bool,
}

impl LocalMediaCapabilities {
    /// Defaults: PCMU, PCMA, telephone-event, 20 ms, no rtcp-mux, time-based session id.
    pub fn new(address: IpAddr, rtp_port: u16) -> Self {
        // RFC 8866 §5.2 suggests an NTP-format timestamp; seconds are unique enough here.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        LocalMediaCapabilities {
            codecs: vec![CodecPref::pcmu(), CodecPref::pcma()],
            telephone_event: true,
            ptime: 20,
            address,
            rtp_port,
            session_id: now,
            session_version: now,
            username: "leadscaller".to_string(),
            rtcp_mux: false,
            srtp: false,
        }
    }

    fn origin(&self) -> Origin {
        Origin {
            username: token_or_dash(&self.username).to_string(),
            session_id: self.session_id,
            session_version: self.session_version,
            addr_type: AddrType::of(self.address),
            address: self.address.to_string(),
        }
    }

    fn ptime_or_default(&self) -> u32 {
        if self.ptime == 0 { 20 } else { self.ptime }
    }
}

/// The outcome of offer/answer for the audio stream, from our point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedMedia {
    /// Where to send RTP.
    pub remote_addr: SocketAddr,
    /// Where to send RTCP (a=rtcp, else RTP port+1, or the RTP address with rtcp-mux).
    pub remote_rtcp: SocketAddr,
    /// The codec to send, with the payload type the remote side expects.
    pub codec: Codec,
    /// Payload type for telephone-event, when both sides support it.
    pub telephone_event_pt: Option<u8>,
    /// Packetization time to send with, in ms.
    pub ptime: u32,
    /// Our direction (may we send / receive).
    pub direction: Direction,
    /// Whether RTCP is multiplexed on the RTP port.
    pub rtcp_mux: bool,
    /// The remote's media protocol (`RTP/AVP`, `RTP/SAVP`...).
    pub protocol: String,
    /// The remote's raw `a=crypto` lines (RFC 4568) for the audio stream.
    pub remote_crypto: Vec<String>,
}

/// An SDP answer to send plus the media parameters it commits us to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer SDP (send in the 200 OK / ACK).
    pub sdp: SessionDescription,
    /// The negotiated audio parameters.
    pub media: NegotiatedMedia,
}

/// Builds an audio offer from our capabilities with the given direction.
pub fn create_offer(caps: &LocalMediaCapabilities, direction: Direction) -> SessionDescription {
    let mut m = MediaDescription::new(MediaKind::Audio, caps.rtp_port, "RTP/AVP");
    let mut reserved = vec![OPUS_PAYLOAD_TYPE];
    if caps.telephone_event {
        reserved.push(TELEPHONE_EVENT_PAYLOAD_TYPE);
    }
    for pref in &caps.codecs {
        if is_auxiliary_name(&pref.name) || m.codecs().iter().any(|c| pref.matches(c)) {
            continue;
        }
        let static_pt = STATIC_AUDIO.iter().find(|(_, name, rate)| {
            name.eq_ignore_ascii_case(&pref.name) && *rate == pref.clock_rate
        });
        let is_opus = pref.name.eq_ignore_ascii_case("opus") && pref.clock_rate == 48000;
        let (pt, name, channels) = if let Some(&(pt, name, _)) = static_pt {
            (pt, name.to_string(), None)
        } else if is_opus && !m.payload_types.contains(&OPUS_PAYLOAD_TYPE) {
            (OPUS_PAYLOAD_TYPE, "opus".to_string(), Some(2))
        } else {
            // Other codecs take the lowest free dynamic type; out of types means skip.
            let Some(pt) =
                (96..=127u8).find(|p| !reserved.contains(p) && !m.payload_types.contains(p))
            else {
                continue;
            };
            (pt, pref.name.clone(), pref.channels)
        };
        m.payload_types.push(pt);
        m.rtpmaps.push(RtpMap {
            payload_type: pt,
            encoding_name: name,
            clock_rate: pref.clock_rate,
            channels,
        });
        if is_opus {
            m.fmtps.push((pt, OPUS_FMTP.to_string()));
        }
    }
    if caps.telephone_event {
        push_telephone_event(
            &mut m,
            TELEPHONE_EVENT_PAYLOAD_TYPE,
            8000,
            TELEPHONE_EVENT_FMTP,
        );
    }
    m.ptime = Some(caps.ptime_or_default());
    m.rtcp_mux = caps.rtcp_mux;
    m.direction = Some(direction);
    SessionDescription {
        origin: caps.origin(),
        session_name: "-".to_string(),
        connection: Some(caps.address),
        bandwidths: Vec::new(),
        timing: Timing::default(),
        direction: None,
        attributes: Vec::new(),
        media: vec![m],
    }
}

/// Answers a remote offer per RFC 3264 §6; `NoCommonCodec`/`NoAudioStream` map to SIP 488.
pub fn negotiate_answer(
    offer: &SessionDescription,
    caps: &LocalMediaCapabilities,
) -> Result<Answer, SdpError> {
    let idx = first_active_audio(offer, caps.srtp).ok_or(SdpError::NoAudioStream)?;
    let offered = offer.media.get(idx).ok_or(SdpError::NoAudioStream)?;
    let offered_codecs = offered.codecs();
    // Our preference order wins; the payload type number is always the offer's.
    let chosen = caps
        .codecs
        .iter()
        .filter(|p| !is_auxiliary_name(&p.name))
        .find_map(|pref| offered_codecs.iter().find(|c| pref.matches(c)))
        .cloned()
        .ok_or(SdpError::NoCommonCodec)?;
    let te = if caps.telephone_event {
        pick_telephone_event(&offered_codecs, chosen.clock_rate)
    } else {
        None
    };
    let remote_ip = offer
        .media_connection(idx)
        .ok_or(SdpError::MissingConnection)?;
    let their_dir = effective_remote_direction(offer.media_direction(idx), remote_ip);
    let our_dir = their_dir.reverse();
    let rtcp_mux = offered.rtcp_mux && caps.rtcp_mux;

    let mut m = MediaDescription::new(MediaKind::Audio, caps.rtp_port, offered.protocol.clone());
    m.payload_types.push(chosen.payload_type);
    m.rtpmaps.push(RtpMap {
        payload_type: chosen.payload_type,
        encoding_name: chosen.encoding_name.clone(),
        clock_rate: chosen.clock_rate,
        channels: chosen.channels,
    });
    // fmtp in an answer describes what *we* receive; for opus that is our own policy,
    // for anything else echoing the offer (e.g. G729 annexb=no) is the safe choice.
    let answer_fmtp = if chosen.encoding_name.eq_ignore_ascii_case("opus") {
        Some(OPUS_FMTP.to_string())
    } else {
        chosen.fmtp.clone()
    };
    if let Some(params) = answer_fmtp {
        m.fmtps.push((chosen.payload_type, params));
    }
    if let Some(ev) = &te {
        let params = ev.fmtp.as_deref().unwrap_or(TELEPHONE_EVENT_FMTP);
        push_telephone_event(&mut m, ev.payload_type, ev.clock_rate, params);
    }
    m.ptime = Some(caps.ptime_or_default());
    m.rtcp_mux = rtcp_mux;
    m.direction = Some(our_dir);

    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, om)| if i == idx { m.clone() } else { om.rejected() })
        .collect();
    let sdp = SessionDescription {
        origin: caps.origin(),
        session_name: "-".to_string(),
        connection: Some(caps.address),
        bandwidths: Vec::new(),
        // RFC 3264 §6: the answer's t= must equal the offer's.
        timing: offer.timing,
        direction: None,
        attributes: Vec::new(),
        media,
    };
    let remote_addr = SocketAddr::new(remote_ip, offered.port);
    let negotiated = NegotiatedMedia {
        remote_addr,
        remote_rtcp: rtcp_target(offered, remote_addr, rtcp_mux),
        codec: chosen,
        telephone_event_pt: te.map(|c| c.payload_type),
        // The offerer's ptime is what it wants to receive, so it governs what we send.
        ptime: offered
            .ptime
            .filter(|p| *p > 0)
            .unwrap_or(caps.ptime_or_default()),
        direction: our_dir,
        rtcp_mux,
        protocol: offered.protocol.clone(),
        remote_crypto: offered.crypto.clone(),
    };
    Ok(Answer {
        sdp,
        media: negotiated,
    })
}

impl NegotiatedMedia {
    /// UAC side: derives media parameters from the answer to an offer we sent.
    pub fn from_answer(
        offer: &SessionDescription,
        answer: &SessionDescription,
        caps: &LocalMediaCapabilities,
    ) -> Result<Self, SdpError> {
        let idx = first_active_audio(offer, true).ok_or(SdpError::NoAudioStream)?;
        let ours = offer.media.get(idx).ok_or(SdpError::NoAudioStream)?;
        if answer.media.len() != offer.media.len() {
            return Err(SdpError::InvalidAnswer(format!(
                "answer has {} m-lines, offer had {}",
                answer.media.len(),
                offer.media.len()
            )));
        }
        let theirs = answer
            .media
            .get(idx)
            .ok_or_else(|| SdpError::InvalidAnswer("audio m-line missing".to_string()))?;
        if theirs.kind != MediaKind::Audio {
            return Err(SdpError::InvalidAnswer(format!(
                "m-line {} changed type to {}",
                idx + 1,
                theirs.kind.as_str()
            )));
        }
        if theirs.port == 0 {
            return Err(SdpError::NoCommonCodec);
        }
        let offered_codecs = ours.codecs();
        // Resolve via the answer's rtpmap, else ours: some answerers omit rtpmap for
        // dynamic types they echo back unchanged.
        let answered: Vec<Codec> = theirs
            .payload_types
            .iter()
            .filter_map(|&pt| theirs.codec(pt).or_else(|| ours.codec(pt)))
            .collect();
        let main: Vec<&Codec> = answered.iter().filter(|c| !c.is_auxiliary()).collect();
        if main.is_empty() {
            return Err(SdpError::InvalidAnswer(
                "answer has no recognizable audio codec".to_string(),
            ));
        }
        let codec = main
            .iter()
            .find(|c| offered_codecs.iter().any(|o| o.same_format(c)))
            .map(|c| (*c).clone())
            .ok_or_else(|| {
                let names: Vec<&str> = main.iter().map(|c| c.encoding_name.as_str()).collect();
                SdpError::InvalidAnswer(format!(
                    "answer codec(s) {} not in our offer",
                    names.join(",")
                ))
            })?;
        let offered_te = offered_codecs.iter().any(Codec::is_telephone_event);
        let te = if caps.telephone_event && offered_te {
            pick_telephone_event(&answered, codec.clock_rate).map(|c| c.payload_type)
        } else {
            None
        };
        let remote_ip = answer
            .media_connection(idx)
            .ok_or(SdpError::MissingConnection)?;
        let their_dir = effective_remote_direction(answer.media_direction(idx), remote_ip);
        let our_offered = offer.media_direction(idx);
        let rtcp_mux = ours.rtcp_mux && theirs.rtcp_mux;
        let remote_addr = SocketAddr::new(remote_ip, theirs.port);
        Ok(NegotiatedMedia {
            remote_addr,
            remote_rtcp: rtcp_target(theirs, remote_addr, rtcp_mux),
            codec,
            telephone_event_pt: te,
            ptime: theirs
                .ptime
                .filter(|p| *p > 0)
                .unwrap_or(caps.ptime_or_default()),
            // Never exceed what we offered, even if the answer is too generous.
            direction: their_dir.reverse().intersect(our_offered),
            rtcp_mux,
            protocol: theirs.protocol.clone(),
            remote_crypto: theirs.crypto.clone(),
        })
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn is_rtp_protocol(proto: &str) -> bool {
    proto.split('/').any(|p| p == "RTP")
}

// RTP, and SDES-keyed SRTP when allowed; DTLS-SRTP (UDP/TLS/...) is not spoken here.
fn is_usable_rtp(proto: &str, srtp: bool) -> bool {
    match proto {
        "RTP/AVP" | "RTP/AVPF" => true,
        "RTP/SAVP" | "RTP/SAVPF" => srtp,
        _ => false,
    }
}

fn first_active_audio(sdp: &SessionDescription, srtp: bool) -> Option<usize> {
    sdp.media
        .iter()
        .position(|m| m.kind == MediaKind::Audio && m.port != 0 && is_usable_rtp(&m.protocol, srtp))
}

// RFC 2543-style hold (c=0.0.0.0) means the peer will not receive, whatever the attribute says.
fn effective_remote_direction(dir: Direction, remote_ip: IpAddr) -> Direction {
    if remote_ip.is_unspecified() {
        Direction::from_flags(dir.sends(), false)
    } else {
        dir
    }
}

fn pick_telephone_event(codecs: &[Codec], clock_rate: u32) -> Option<Codec> {
    // RFC 4733 §2.1: prefer the event clock matching the audio codec, else 8000 Hz.
    let te = || codecs.iter().filter(|c| c.is_telephone_event());
    te().find(|c| c.clock_rate == clock_rate)
        .or_else(|| te().find(|c| c.clock_rate == 8000))
        .cloned()
}

fn push_telephone_event(m: &mut MediaDescription, pt: u8, clock_rate: u32, fmtp: &str) {
    m.payload_types.push(pt);
    m.rtpmaps.push(RtpMap {
        payload_type: pt,
        encoding_name: "telephone-event".to_string(),
        clock_rate,
        channels: None,
    });
    m.fmtps.push((pt, fmtp.to_string()));
}

fn rtcp_target(m: &MediaDescription, rtp: SocketAddr, mux: bool) -> SocketAddr {
    if mux {
        return rtp;
    }
    match m.rtcp {
        Some(r) => SocketAddr::new(r.address.unwrap_or(rtp.ip()), r.port),
        None => SocketAddr::new(rtp.ip(), rtp.port().saturating_add(1)),
    }
}

fn token_or_dash(s: &str) -> &str {
    if s.is_empty() || s.contains(char::is_whitespace) {
        "-"
    } else {
        s
    }
}

fn write_connection(f: &mut fmt::Formatter<'_>, ip: IpAddr) -> fmt::Result {
    write!(f, "c=IN {} {ip}\r\n", AddrType::of(ip).as_str())
}

fn write_attributes(f: &mut fmt::Formatter<'_>, attrs: &[(String, Option<String>)]) -> fmt::Result {
    for (name, value) in attrs {
        match value {
            Some(v) => write!(f, "a={name}:{v}\r\n")?,
            None => write!(f, "a={name}\r\n")?,
        }
    }
    Ok(())
}

fn split_line(line: &str) -> Option<(char, &str)> {
    let (key, value) = line.split_once('=')?;
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => Some((c, value)),
        _ => None,
    }
}

fn split_attr(value: &str) -> (&str, Option<&str>) {
    match value.split_once(':') {
        Some((name, v)) => (name, Some(v)),
        None => (value, None),
    }
}

fn split_first_token(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.split_once(char::is_whitespace) {
        Some((a, b)) => (a, b.trim()),
        None => (s, ""),
    }
}

fn parse_pt(s: &str) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(pt) if pt <= 127 => Ok(pt),
        Ok(pt) => Err(format!("payload type {pt} out of range 0..=127")),
        Err(_) => Err(format!("payload type {s:?} is not a number in 0..=127")),
    }
}

fn parse_origin(value: &str) -> Result<Origin, String> {
    let t: Vec<&str> = value.split_whitespace().collect();
    let [username, id, version, net, addr_type, address] = t.as_slice() else {
        return Err(format!("o= needs 6 fields, found {}", t.len()));
    };
    let session_id = id
        .parse()
        .map_err(|_| format!("o= session id {id:?} is not numeric"))?;
    let session_version = version
        .parse()
        .map_err(|_| format!("o= session version {version:?} is not numeric"))?;
    if *net != "IN" {
        return Err(format!("o= network type {net:?} is not IN"));
    }
    Ok(Origin {
        username: username.to_string(),
        session_id,
        session_version,
        addr_type: parse_addr_type(addr_type)?,
        address: address.to_string(),
    })
}

fn parse_addr_type(s: &str) -> Result<AddrType, String> {
    match s {
        "IP4" => Ok(AddrType::Ip4),
        "IP6" => Ok(AddrType::Ip6),
        other => Err(format!("address type {other:?} is not IP4 or IP6")),
    }
}

fn parse_connection(value: &str) -> Result<IpAddr, String> {
    let t: Vec<&str> = value.split_whitespace().collect();
    let [net, addr_type, address] = t.as_slice() else {
        return Err(format!("c= needs 3 fields, found {}", t.len()));
    };
    if *net != "IN" {
        return Err(format!("c= network type {net:?} is not IN"));
    }
    parse_addr_type(addr_type)?;
    // Multicast addresses may carry /ttl[/count]; the base address is what we need.
    let base = address.split('/').next().unwrap_or(address);
    base.parse()
        .map_err(|_| format!("c= address {address:?} is not an IP address"))
}

fn parse_timing(value: &str) -> Result<Timing, String> {
    let mut t = value.split_whitespace().map(str::parse::<u64>);
    match (t.next(), t.next(), t.next()) {
        (Some(Ok(start)), Some(Ok(stop)), None) => Ok(Timing { start, stop }),
        _ => Err("t= must be two numbers".to_string()),
    }
}

fn parse_media_line(value: &str) -> Result<MediaDescription, String> {
    let mut t = value.split_whitespace();
    let (Some(kind), Some(port_field), Some(proto)) = (t.next(), t.next(), t.next()) else {
        return Err("m= needs <media> <port> <proto> <fmt>...".to_string());
    };
    let (port_str, count_str) = match port_field.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (port_field, None),
    };
    let port = port_str
        .parse::<u16>()
        .map_err(|_| format!("m= port {port_field:?} is not a number in 0..=65535"))?;
    let port_count = count_str
        .map(str::parse::<u16>)
        .transpose()
        .map_err(|_| format!("m= port count in {port_field:?} is not numeric"))?;
    let mut m = MediaDescription::new(MediaKind::parse(kind), port, proto);
    m.port_count = port_count;
    if m.is_rtp() {
        m.payload_types = t.map(parse_pt).collect::<Result<_, _>>()?;
    } else {
        m.formats = t.map(str::to_string).collect();
    }
    Ok(m)
}

fn parse_rtpmap(value: &str) -> Result<RtpMap, String> {
    let (pt, encoding) = split_first_token(value);
    let payload_type = parse_pt(pt)?;
    let mut parts = encoding.split('/');
    let name = parts.next().unwrap_or("").trim();
    if name.is_empty() {
        return Err(format!("rtpmap {value:?} has no encoding name"));
    }
    let clock_rate = parts
        .next()
        .and_then(|r| r.trim().parse::<u32>().ok())
        .ok_or_else(|| format!("rtpmap {value:?} has no numeric clock rate"))?;
    let channels = parts
        .next()
        .map(|c| c.trim().parse::<u16>())
        .transpose()
        .map_err(|_| format!("rtpmap {value:?} has non-numeric channels"))?;
    if parts.next().is_some() {
        return Err(format!("rtpmap {value:?} has too many fields"));
    }
    Ok(RtpMap {
        payload_type,
        encoding_name: name.to_string(),
        clock_rate,
        channels,
    })
}

fn parse_rtcp(value: &str) -> Option<RtcpAttr> {
    let t: Vec<&str> = value.split_whitespace().collect();
    match t.as_slice() {
        [port] => Some(RtcpAttr {
            port: port.parse().ok()?,
            address: None,
        }),
        [port, "IN", addr_type, addr] => {
            parse_addr_type(addr_type).ok()?;
            Some(RtcpAttr {
                port: port.parse().ok()?,
                address: Some(addr.parse().ok()?),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    // Twilio Elastic SIP Trunking INVITE offer (Asterisk-derived media gateway).
    const TWILIO: &str = "v=0\r\n\
o=root 1693478238 1693478238 IN IP4 54.172.60.3\r\n\
s=Twilio Media Gateway\r\n\
c=IN IP4 54.172.60.3\r\n\
t=0 0\r\n\
m=audio 17346 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

    // Telnyx (FreeSWITCH-based) offer with G722 and an explicit a=rtcp.
    const TELNYX: &str = "v=0\r\n\
o=FreeSWITCH 1712340000 1712340001 IN IP4 192.76.120.10\r\n\
s=FreeSWITCH\r\n\
c=IN IP4 192.76.120.10\r\n\
t=0 0\r\n\
m=audio 30552 RTP/AVP 9 0 8 102\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:102 telephone-event/8000\r\n\
a=fmtp:102 0-16\r\n\
a=ptime:20\r\n\
a=rtcp:30553 IN IP4 192.76.120.10\r\n";

    // baresip with opus at PT 96, rtcp-mux, LF-only line ends and a tool attribute.
    const BARESIP: &str = "v=0\n\
o=- 1286597219 3174513437 IN IP4 192.168.1.100\n\
s=-\n\
c=IN IP4 192.168.1.100\n\
t=0 0\n\
a=tool:baresip 3.10.1\n\
m=audio 10052 RTP/AVP 96 0 8 101\n\
b=AS:96\n\
a=rtpmap:96 opus/48000/2\n\
a=fmtp:96 stereo=1;sprop-stereo=1\n\
a=rtpmap:0 PCMU/8000\n\
a=rtpmap:8 PCMA/8000\n\
a=rtpmap:101 telephone-event/8000\n\
a=fmtp:101 0-15\n\
a=rtcp-mux\n\
a=ptime:20\n\
a=sendrecv\n\
a=label:1\n";

    // sipp's built-in uac scenario: PCMU only, no rtpmap needed for a static type.
    const SIPP_UAC: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
s=-\r\n\
c=IN IP4 127.0.0.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

    // sipp uac_pcap: PCMA + telephone-event with a partial event range.
    const SIPP_PCAP: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 10.0.0.5\r\n\
s=-\r\n\
c=IN IP4 10.0.0.5\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 8 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-11,16\r\n";

    // Linphone-style IPv6 offer.
    const IPV6: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP6 2001:db8::10\r\n\
s=Talk\r\n\
c=IN IP6 2001:db8::10\r\n\
t=0 0\r\n\
m=audio 7078 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

    // Offer with audio + video + T.38 and no session-level c=.
    const MULTI: &str = "v=0\r\n\
o=- 42 42 IN IP4 198.51.100.7\r\n\
s=-\r\n\
t=0 0\r\n\
m=video 9000 RTP/AVP 96\r\n\
c=IN IP4 198.51.100.7\r\n\
a=rtpmap:96 H264/90000\r\n\
m=audio 9002 RTP/AVP 18 0\r\n\
c=IN IP4 198.51.100.8\r\n\
a=fmtp:18 annexb=no\r\n\
m=image 9004 udptl t38\r\n\
c=IN IP4 198.51.100.7\r\n\
a=T38FaxVersion:0\r\n";

    // SRTP-only offer (SDES): we do not speak SRTP, so this must be refused.
    const SAVP: &str = "v=0\r\n\
o=- 1 1 IN IP4 203.0.113.9\r\n\
s=-\r\n\
c=IN IP4 203.0.113.9\r\n\
t=0 0\r\n\
m=audio 4000 RTP/SAVP 0\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:32\r\n";

    const FIXTURES: &[&str] = &[
        TWILIO, TELNYX, BARESIP, SIPP_UAC, SIPP_PCAP, IPV6, MULTI, SAVP,
    ];

    fn caps(codecs: Vec<CodecPref>) -> LocalMediaCapabilities {
        LocalMediaCapabilities {
            codecs,
            telephone_event: true,
            ptime: 20,
            address: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            rtp_port: 40000,
            session_id: 777,
            session_version: 1,
            username: "leadscaller".to_string(),
            rtcp_mux: true,
            srtp: false,
        }
    }

    fn default_caps() -> LocalMediaCapabilities {
        caps(vec![CodecPref::pcmu(), CodecPref::pcma()])
    }

    fn parse(s: &str) -> SessionDescription {
        SessionDescription::parse(s).expect("fixture parses")
    }

    fn with_direction(dir: &str) -> String {
        TWILIO.replace("a=sendrecv", dir)
    }

    #[test]
    fn parses_twilio_offer() {
        let sdp = parse(TWILIO);
        assert_eq!(sdp.origin.username, "root");
        assert_eq!(sdp.origin.session_id, 1693478238);
        assert_eq!(sdp.origin.addr_type, AddrType::Ip4);
        assert_eq!(sdp.session_name, "Twilio Media Gateway");
        assert_eq!(
            sdp.connection,
            Some(IpAddr::V4(Ipv4Addr::new(54, 172, 60, 3)))
        );
        let m = &sdp.media[0];
        assert_eq!(m.kind, MediaKind::Audio);
        assert_eq!((m.port, m.protocol.as_str()), (17346, "RTP/AVP"));
        assert_eq!(m.payload_types, vec![0, 8, 101]);
        assert_eq!((m.ptime, m.maxptime), (Some(20), Some(150)));
        assert_eq!(m.direction, Some(Direction::SendRecv));
        assert_eq!(m.fmtp(101), Some("0-16"));
        let names: Vec<String> = m.codecs().into_iter().map(|c| c.encoding_name).collect();
        assert_eq!(names, ["PCMU", "PCMA", "telephone-event"]);
    }

    #[test]
    fn parses_other_attributes_rtcp_and_crypto() {
        let b = parse(BARESIP);
        assert_eq!(
            b.attributes,
            vec![("tool".to_string(), Some("baresip 3.10.1".to_string()))]
        );
        let m = &b.media[0];
        assert!(m.rtcp_mux);
        assert_eq!(m.bandwidths, ["AS:96"]);
        assert_eq!(
            m.attributes,
            vec![("label".to_string(), Some("1".to_string()))]
        );
        assert_eq!(m.codec(96).and_then(|c| c.channels), Some(2));
        let t = parse(TELNYX);
        let rtcp = t.media[0].rtcp.expect("a=rtcp parsed");
        assert_eq!(rtcp.port, 30553);
        assert_eq!(
            rtcp.address,
            Some(IpAddr::V4(Ipv4Addr::new(192, 76, 120, 10)))
        );
        let s = parse(SAVP);
        assert_eq!(s.media[0].crypto.len(), 1);
        assert!(s.media[0].crypto[0].starts_with("1 AES_CM_128_HMAC_SHA1_80 inline:"));
    }

    #[test]
    fn static_payload_types_resolve_without_rtpmap() {
        let sdp = parse(MULTI);
        let audio = &sdp.media[1];
        let g729 = audio.codec(18).expect("static 18");
        assert_eq!(
            (g729.encoding_name.as_str(), g729.clock_rate),
            ("G729", 8000)
        );
        assert_eq!(g729.fmtp.as_deref(), Some("annexb=no"));
        assert_eq!(
            audio.codec(0).map(|c| c.encoding_name),
            Some("PCMU".to_string())
        );
        for (pt, name) in [(8, "PCMA"), (9, "G722")] {
            assert_eq!(
                Codec::from_static(pt).map(|c| c.encoding_name),
                Some(name.to_string())
            );
        }
        // A dynamic type without rtpmap cannot be resolved.
        let mut m = MediaDescription::new(MediaKind::Audio, 1, "RTP/AVP");
        m.payload_types = vec![97];
        assert!(m.codecs().is_empty());
    }

    #[test]
    fn non_rtp_formats_are_kept_as_tokens() {
        let sdp = parse(MULTI);
        let image = &sdp.media[2];
        assert_eq!(image.kind, MediaKind::Image);
        assert_eq!(image.protocol, "udptl");
        assert_eq!(image.formats, ["t38"]);
        assert!(image.payload_types.is_empty());
        assert_eq!(image.attributes[0].0, "T38FaxVersion");
    }

    #[test]
    fn round_trip_is_stable_and_crlf() {
        for fixture in FIXTURES {
            let first = parse(fixture);
            let text = first.to_string();
            assert!(text.ends_with("\r\n"));
            assert!(
                !text.replace("\r\n", "").contains('\n'),
                "bare LF in {text}"
            );
            let second = parse(&text);
            assert_eq!(first, second, "structural round trip of {fixture}");
            assert_eq!(text, second.to_string(), "serialization is idempotent");
        }
        // A canonically ordered CRLF input comes back byte for byte.
        assert_eq!(parse(TWILIO).to_string(), TWILIO);
        assert_eq!(parse(SIPP_PCAP).to_string(), SIPP_PCAP);
    }

    #[test]
    fn lf_and_crlf_parse_identically() {
        assert_eq!(parse(TWILIO), parse(&TWILIO.replace("\r\n", "\n")));
        assert_eq!(parse(BARESIP), parse(&BARESIP.replace('\n', "\r\n")));
        // Trailing whitespace and blank lines are tolerated.
        let sloppy = TWILIO.replace("\r\n", "  \n") + "\n\n";
        assert_eq!(parse(TWILIO), parse(&sloppy));
    }

    #[test]
    fn serializes_offer_in_canonical_order() {
        let c = caps(vec![
            CodecPref::opus(),
            CodecPref::pcmu(),
            CodecPref::pcma(),
            CodecPref::g722(),
            CodecPref::new("L16", 8000, None),
        ]);
        let offer = create_offer(&c, Direction::SendRecv);
        let expected = "v=0\r\n\
o=leadscaller 777 1 IN IP4 10.1.2.3\r\n\
s=-\r\n\
c=IN IP4 10.1.2.3\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 111 0 8 9 96 101\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:9 G722/8000\r\n\
a=rtpmap:96 L16/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=rtcp-mux\r\n\
a=sendrecv\r\n";
        assert_eq!(offer.to_string(), expected);
        assert_eq!(parse(expected), offer);
    }

    #[test]
    fn answer_uses_offer_payload_type_for_opus() {
        let c = caps(vec![CodecPref::opus(), CodecPref::pcmu()]);
        let ans = negotiate_answer(&parse(BARESIP), &c).expect("answer");
        assert_eq!(ans.media.codec.payload_type, 96);
        assert_eq!(ans.media.codec.encoding_name, "opus");
        assert_eq!(ans.media.telephone_event_pt, Some(101));
        assert!(ans.media.rtcp_mux);
        assert_eq!(
            ans.media.remote_addr,
            "192.168.1.100:10052".parse().expect("addr")
        );
        assert_eq!(ans.media.remote_rtcp, ans.media.remote_addr);
        let m = &ans.sdp.media[0];
        assert_eq!(m.payload_types, vec![96, 101]);
        assert_eq!(m.fmtp(96), Some(OPUS_FMTP));
        assert_eq!(m.fmtp(101), Some("0-15"), "echo the offer's event range");
        let text = ans.sdp.to_string();
        assert!(text.contains("m=audio 40000 RTP/AVP 96 101\r\n"), "{text}");
        assert!(text.contains("a=rtpmap:96 opus/48000/2\r\n"));
        assert!(!text.contains(" 111"));
    }

    #[test]
    fn answer_follows_our_preference_order() {
        let offer = parse(TWILIO);
        let a = negotiate_answer(&offer, &caps(vec![CodecPref::pcma(), CodecPref::pcmu()]))
            .expect("answer");
        assert_eq!(a.media.codec.payload_type, 8);
        let b = negotiate_answer(&offer, &default_caps()).expect("answer");
        assert_eq!(b.media.codec.payload_type, 0);
        assert_eq!(b.media.ptime, 20);
        assert!(!b.media.rtcp_mux, "Twilio did not offer rtcp-mux");
        assert_eq!(
            b.media.remote_rtcp,
            "54.172.60.3:17347".parse().expect("addr")
        );
        // Telnyx lists G722 first, but we prefer PCMU; their telephone-event PT is 102.
        let t = negotiate_answer(&parse(TELNYX), &default_caps()).expect("answer");
        assert_eq!(t.media.codec.payload_type, 0);
        assert_eq!(t.media.telephone_event_pt, Some(102));
        assert_eq!(
            t.media.remote_rtcp,
            "192.76.120.10:30553".parse().expect("addr")
        );
        let g = negotiate_answer(&parse(TELNYX), &caps(vec![CodecPref::g722()])).expect("g722");
        assert_eq!(g.media.codec.encoding_name, "G722");
        assert_eq!(g.sdp.media[0].payload_types, vec![9, 102]);
    }

    #[test]
    fn matching_is_case_insensitive_and_checks_clock_rate() {
        let offer = parse(&BARESIP.replace("opus/48000/2", "OPUS/48000/2"));
        let a = negotiate_answer(&offer, &caps(vec![CodecPref::opus()])).expect("answer");
        assert_eq!(a.media.codec.payload_type, 96);
        let wrong_rate = caps(vec![CodecPref::new("opus", 16000, Some(2))]);
        assert_eq!(
            negotiate_answer(&parse(BARESIP), &wrong_rate).err(),
            Some(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn no_common_codec_is_488() {
        let offer = parse(MULTI); // audio offers only G729 and PCMU
        let err = negotiate_answer(&offer, &caps(vec![CodecPref::pcma(), CodecPref::opus()]))
            .expect_err("no codec");
        assert_eq!(err, SdpError::NoCommonCodec);
        assert_eq!(err.sip_status(), 488);
        let no_te_only = caps(vec![CodecPref::new("telephone-event", 8000, None)]);
        assert_eq!(
            negotiate_answer(&parse(TWILIO), &no_te_only).err(),
            Some(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn srtp_only_offer_is_refused() {
        let err = negotiate_answer(&parse(SAVP), &default_caps()).expect_err("no srtp");
        assert_eq!(err, SdpError::NoAudioStream);
        assert_eq!(err.sip_status(), 488);
    }

    #[test]
    fn direction_is_reversed() {
        let cases = [
            ("a=sendrecv", Direction::SendRecv),
            ("a=sendonly", Direction::RecvOnly),
            ("a=recvonly", Direction::SendOnly),
            ("a=inactive", Direction::Inactive),
            ("a=x-none", Direction::SendRecv), // absent means sendrecv
        ];
        for (attr, ours) in cases {
            let a =
                negotiate_answer(&parse(&with_direction(attr)), &default_caps()).expect("answer");
            assert_eq!(a.media.direction, ours, "{attr}");
            assert_eq!(a.sdp.media[0].direction, Some(ours));
        }
        // Session-level direction applies when the media has none.
        let session_level = TWILIO
            .replace("a=sendrecv\r\n", "")
            .replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
        let offer = parse(&session_level);
        assert_eq!(offer.direction, Some(Direction::SendOnly));
        let a = negotiate_answer(&offer, &default_caps()).expect("answer");
        assert_eq!(a.media.direction, Direction::RecvOnly);
        // ...and media-level overrides session-level.
        let both = session_level.replace("a=maxptime:150\r\n", "a=maxptime:150\r\na=inactive\r\n");
        let a = negotiate_answer(&parse(&both), &default_caps()).expect("answer");
        assert_eq!(a.media.direction, Direction::Inactive);
    }

    #[test]
    fn direction_helpers() {
        use Direction::*;
        for (d, r) in [
            (SendRecv, SendRecv),
            (SendOnly, RecvOnly),
            (RecvOnly, SendOnly),
            (Inactive, Inactive),
        ] {
            assert_eq!(d.reverse(), r);
            assert_eq!(Direction::from_attr(d.as_str()), Some(d));
        }
        assert_eq!(SendRecv.intersect(SendOnly), SendOnly);
        assert_eq!(SendOnly.intersect(RecvOnly), Inactive);
        assert_eq!(Direction::default(), SendRecv);
    }

    #[test]
    fn hold_detection() {
        assert!(!parse(TWILIO).is_hold());
        assert!(parse(&with_direction("a=sendonly")).is_hold());
        assert!(parse(&with_direction("a=inactive")).is_hold());
        assert!(!parse(&with_direction("a=recvonly")).is_hold());
        let old_style = TWILIO.replace("c=IN IP4 54.172.60.3", "c=IN IP4 0.0.0.0");
        let offer = parse(&old_style);
        assert!(offer.is_hold());
        assert!(
            !offer.media[0].is_hold(),
            "media-level view has no c= of its own"
        );
        // RFC 2543 hold: the peer will not receive, so we only receive.
        let a = negotiate_answer(&offer, &default_caps()).expect("answer");
        assert_eq!(a.media.direction, Direction::RecvOnly);
        let mut m = MediaDescription::new(MediaKind::Audio, 5, "RTP/AVP");
        m.connection = Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert!(m.is_hold());
        // Our own hold re-offer is recognised as such.
        assert!(create_offer(&default_caps(), Direction::SendOnly).is_hold());
    }

    #[test]
    fn other_media_lines_are_rejected_in_order() {
        let offer = parse(MULTI);
        let a = negotiate_answer(&offer, &default_caps()).expect("answer");
        let kinds: Vec<&str> = a.sdp.media.iter().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, ["video", "audio", "image"]);
        let ports: Vec<u16> = a.sdp.media.iter().map(|m| m.port).collect();
        assert_eq!(ports, [0, 40000, 0]);
        assert_eq!(a.sdp.media[0].payload_types, vec![96]);
        assert_eq!(a.sdp.media[2].formats, ["t38"]);
        assert_eq!(a.media.codec.payload_type, 0);
        // Media-level c= is used because there is no session-level one.
        assert_eq!(
            a.media.remote_addr,
            "198.51.100.8:9002".parse().expect("addr")
        );
        let text = a.sdp.to_string();
        assert!(
            text.contains("m=video 0 RTP/AVP 96\r\n") && text.contains("m=image 0 udptl t38\r\n")
        );
        assert_eq!(parse(&text), a.sdp);
    }

    #[test]
    fn port_zero_audio_stays_rejected() {
        let two_audio = TWILIO.replace(
            "m=audio 17346 RTP/AVP 0 8 101\r\n",
            "m=audio 0 RTP/AVP 0\r\nm=audio 17346 RTP/AVP 0 8 101\r\n",
        );
        let a = negotiate_answer(&parse(&two_audio), &default_caps()).expect("answer");
        assert_eq!(a.sdp.media.len(), 2);
        assert_eq!(a.sdp.media[0].port, 0);
        assert_eq!(a.sdp.media[1].port, 40000);
        let all_zero = TWILIO.replace("m=audio 17346", "m=audio 0");
        assert_eq!(
            negotiate_answer(&parse(&all_zero), &default_caps()).err(),
            Some(SdpError::NoAudioStream)
        );
    }

    #[test]
    fn ipv6_connection() {
        let offer = parse(IPV6);
        assert_eq!(offer.origin.addr_type, AddrType::Ip6);
        let v6: Ipv6Addr = "2001:db8::10".parse().expect("v6");
        assert_eq!(offer.connection, Some(IpAddr::V6(v6)));
        let mut c = default_caps();
        c.address = "2001:db8::99".parse().expect("v6");
        let a = negotiate_answer(&offer, &c).expect("answer");
        assert_eq!(a.media.remote_addr, SocketAddr::new(IpAddr::V6(v6), 7078));
        assert_eq!(a.media.remote_rtcp.port(), 7079);
        let text = a.sdp.to_string();
        assert!(
            text.contains("o=leadscaller 777 1 IN IP6 2001:db8::99\r\n"),
            "{text}"
        );
        assert!(text.contains("c=IN IP6 2001:db8::99\r\n"));
        assert!(text.contains("t=0 0\r\n"));
    }

    #[test]
    fn missing_connection_is_an_error() {
        let no_c = SIPP_UAC.replace("c=IN IP4 127.0.0.1\r\n", "");
        assert_eq!(
            negotiate_answer(&parse(&no_c), &default_caps()).err(),
            Some(SdpError::MissingConnection)
        );
    }

    #[test]
    fn telephone_event_only_when_both_support_it() {
        let a = negotiate_answer(&parse(SIPP_PCAP), &default_caps()).expect("answer");
        assert_eq!(a.media.codec.encoding_name, "PCMA");
        assert_eq!(a.media.telephone_event_pt, Some(101));
        assert_eq!(a.sdp.media[0].fmtp(101), Some("0-11,16"));
        let mut c = default_caps();
        c.telephone_event = false;
        let a = negotiate_answer(&parse(SIPP_PCAP), &c).expect("answer");
        assert_eq!(a.media.telephone_event_pt, None);
        assert_eq!(a.sdp.media[0].payload_types, vec![8]);
        let a = negotiate_answer(&parse(SIPP_UAC), &default_caps()).expect("answer");
        assert_eq!(a.media.telephone_event_pt, None);
    }

    #[test]
    fn offerer_ptime_governs_what_we_send() {
        let offer = TWILIO.replace("a=ptime:20", "a=ptime:30");
        let a = negotiate_answer(&parse(&offer), &default_caps()).expect("answer");
        assert_eq!(a.media.ptime, 30);
        assert_eq!(
            a.sdp.media[0].ptime,
            Some(20),
            "we still ask for our own ptime"
        );
    }

    #[test]
    fn loopback_offer_answer() {
        let c = caps(vec![CodecPref::opus(), CodecPref::pcmu()]);
        let offer = parse(&create_offer(&c, Direction::SendRecv).to_string());
        let a = negotiate_answer(&offer, &caps(vec![CodecPref::pcmu(), CodecPref::opus()]))
            .expect("answer");
        assert_eq!(a.media.codec.payload_type, 0);
        let back =
            NegotiatedMedia::from_answer(&offer, &parse(&a.sdp.to_string()), &c).expect("uac");
        assert_eq!(back.codec.encoding_name, "PCMU");
        assert_eq!(back.telephone_event_pt, Some(101));
        assert!(back.rtcp_mux);
        assert_eq!(back.remote_addr, "10.1.2.3:40000".parse().expect("addr"));
    }

    #[test]
    fn uac_from_answer() {
        let c = caps(vec![CodecPref::pcmu(), CodecPref::pcma()]);
        let offer = create_offer(&c, Direction::SendRecv);
        let answer = TWILIO
            .replace("RTP/AVP 0 8 101", "RTP/AVP 8 101")
            .replace("a=sendrecv", "a=recvonly");
        let n = NegotiatedMedia::from_answer(&offer, &parse(&answer), &c).expect("negotiated");
        assert_eq!(n.codec.payload_type, 8);
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.direction, Direction::SendOnly);
        assert!(!n.rtcp_mux);
        assert_eq!(n.remote_addr, "54.172.60.3:17346".parse().expect("addr"));
        assert_eq!(n.remote_rtcp, "54.172.60.3:17347".parse().expect("addr"));
        assert_eq!(n.ptime, 20);

        // An over-generous answer never widens our hold offer.
        let hold = create_offer(&c, Direction::SendOnly);
        let n = NegotiatedMedia::from_answer(&hold, &parse(TWILIO), &c).expect("negotiated");
        assert_eq!(n.direction, Direction::SendOnly);

        // A codec we never offered is a protocol violation.
        let g722 = TWILIO.replace("RTP/AVP 0 8 101", "RTP/AVP 9");
        assert!(matches!(
            NegotiatedMedia::from_answer(&offer, &parse(&g722), &c),
            Err(SdpError::InvalidAnswer(_))
        ));
        // A rejected audio stream means no usable media.
        let rejected = TWILIO.replace("m=audio 17346", "m=audio 0");
        assert_eq!(
            NegotiatedMedia::from_answer(&offer, &parse(&rejected), &c).err(),
            Some(SdpError::NoCommonCodec)
        );
        // The answer must mirror the number of m-lines.
        let extra = format!("{TWILIO}m=video 0 RTP/AVP 31\r\n");
        assert!(matches!(
            NegotiatedMedia::from_answer(&offer, &parse(&extra), &c),
            Err(SdpError::InvalidAnswer(_))
        ));
    }

    #[test]
    fn uac_answer_may_omit_rtpmap_for_offered_dynamic_pt() {
        let c = caps(vec![CodecPref::opus()]);
        let offer = create_offer(&c, Direction::SendRecv);
        let answer = SIPP_UAC
            .replace("RTP/AVP 0", "RTP/AVP 111")
            .replace("a=rtpmap:0 PCMU/8000\r\n", "");
        let n = NegotiatedMedia::from_answer(&offer, &parse(&answer), &c).expect("negotiated");
        assert_eq!(
            (n.codec.payload_type, n.codec.encoding_name.as_str()),
            (111, "opus")
        );
        assert_eq!(n.telephone_event_pt, None);
    }

    #[test]
    fn parse_errors_name_line_and_reason() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "v=0"),
            ("v=1\r\n", 1, "v=0"),
            ("\r\n\r\nx=0\r\n", 3, "v=0"),
            ("v=0\r\n", 2, "o="),
            ("v=0\r\ns=-\r\n", 2, "o="),
            ("v=0\r\no=- 1 1 IN IP4\r\n", 2, "6 fields"),
            ("v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n", 2, "session id"),
            ("v=0\r\no=- 1 1 ATM IP4 1.2.3.4\r\n", 2, "network type"),
            ("v=0\r\no=- 1 1 IN IPX 1.2.3.4\r\n", 2, "address type"),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nc=IN IP4 host.example\r\n",
                3,
                "not an IP",
            ),
            ("v=0\r\no=- 1 1 IN IP4 a\r\nt=0\r\n", 3, "t="),
            ("v=0\r\no=- 1 1 IN IP4 a\r\nm=audio\r\n", 3, "m= needs"),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 70000 RTP/AVP 0\r\n",
                3,
                "port",
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nm=audio x RTP/AVP 0\r\n",
                3,
                "port",
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 128\r\n",
                3,
                "out of range",
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP pcmu\r\n",
                3,
                "not a number",
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
                4,
                "clock rate",
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 0\r\na=rtpmap:200 X/8000\r\n",
                4,
                "out of range",
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 0\r\na=fmtp:x y\r\n",
                4,
                "payload type",
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5 RTP/AVP 0\r\ns=late\r\n",
                4,
                "media section",
            ),
            ("v=0\r\no=- 1 1 IN IP4 a\r\nv=0\r\n", 3, "duplicate"),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\nnonsense\r\n",
                3,
                "<type>=<value>",
            ),
            ("v=0\r\no=- 1 1 IN IP4 a\r\nab=c\r\n", 3, "<type>=<value>"),
        ];
        for (input, line, needle) in cases {
            match SessionDescription::parse(input) {
                Err(SdpError::Parse { line: l, reason }) => {
                    assert_eq!(l, *line, "line for {input:?}: {reason}");
                    assert!(reason.contains(needle), "reason {reason:?} for {input:?}");
                }
                other => panic!("expected parse error for {input:?}, got {other:?}"),
            }
        }
        let err = SessionDescription::parse("v=1").expect_err("bad");
        assert_eq!(err.sip_status(), 400);
        assert!(err.to_string().contains("line 1"));
    }

    #[test]
    fn lenient_on_non_critical_attributes() {
        let odd = TWILIO
            .replace("a=ptime:20", "a=ptime:20.5")
            .replace("a=maxptime:150", "a=rtcp:bogus");
        let sdp = parse(&odd);
        let m = &sdp.media[0];
        assert_eq!(m.ptime, None);
        assert_eq!(m.rtcp, None);
        assert_eq!(m.attributes.len(), 2, "kept raw: {:?}", m.attributes);
        assert_eq!(parse(&sdp.to_string()), sdp);
        // Missing s= and t= get defaults; unknown line types are ignored.
        let minimal =
            parse("v=0\no=- 1 2 IN IP4 h.example\nq=whatever\nm=audio 5 RTP/AVP 0\ni=info\n");
        assert_eq!(minimal.session_name, "-");
        assert_eq!(minimal.timing, Timing::default());
        assert_eq!(minimal.origin.address, "h.example");
        // Multicast TTL suffix and port counts are accepted.
        let mc = parse("v=0\no=- 1 2 IN IP4 a\nc=IN IP4 224.2.1.1/127\nm=audio 5/2 RTP/AVP 0\n");
        assert_eq!(mc.connection, Some(IpAddr::V4(Ipv4Addr::new(224, 2, 1, 1))));
        assert_eq!(mc.media[0].port_count, Some(2));
        assert!(mc.to_string().contains("m=audio 5/2 RTP/AVP 0\r\n"));
    }

    #[test]
    fn local_caps_defaults() {
        let c = LocalMediaCapabilities::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5000);
        let offer = create_offer(&c, Direction::SendRecv);
        assert_eq!(offer.media[0].payload_types, vec![0, 8, 101]);
        assert!(!offer.media[0].rtcp_mux);
        // Duplicate preferences and an empty username do not leak into the SDP.
        let mut d = caps(vec![CodecPref::pcmu(), CodecPref::new("pcmu", 8000, None)]);
        d.username = String::new();
        d.ptime = 0;
        let offer = create_offer(&d, Direction::Inactive);
        assert_eq!(offer.media[0].payload_types, vec![0, 101]);
        assert_eq!(offer.media[0].ptime, Some(20));
        assert!(
            offer
                .to_string()
                .starts_with("v=0\r\no=- 777 1 IN IP4 10.1.2.3\r\n")
        );
        assert_eq!(parse(&offer.to_string()), offer);
    }

    // Tiny deterministic PRNG so the fuzz-style test needs no extra crates.
    fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *state >> 33
    }

    fn exercise(input: &str) {
        if let Ok(sdp) = SessionDescription::parse(input) {
            let text = sdp.to_string();
            // Anything we accept must re-parse to the same thing.
            assert_eq!(
                SessionDescription::parse(&text).as_ref(),
                Ok(&sdp),
                "{input:?}"
            );
            let _ = sdp.is_hold();
            let c = default_caps();
            if let Ok(answer) = negotiate_answer(&sdp, &c) {
                let _ = NegotiatedMedia::from_answer(&sdp, &answer.sdp, &c);
            }
            let offer = create_offer(&c, Direction::SendRecv);
            let _ = NegotiatedMedia::from_answer(&offer, &sdp, &c);
        }
    }

    #[test]
    fn garbage_never_panics() {
        for fixture in FIXTURES {
            for end in 0..=fixture.len() {
                if let Some(prefix) = fixture.get(..end) {
                    exercise(prefix);
                }
            }
            // Single-character mutations at every position.
            for (i, _) in fixture.char_indices() {
                for repl in [
                    " ",
                    ":",
                    "/",
                    "0",
                    "\n",
                    "=",
                    "x",
                    "é",
                    "999999999999999999999",
                ] {
                    let mut s = fixture.to_string();
                    s.replace_range(i..i + 1, repl);
                    exercise(&s);
                }
            }
        }
        let alphabet = b"v=0o-m audioRTP/AVP 0 8 101c=IN IP4IP6 ::1.2.3.4\r\na=rtpmap:/8000fmtp:rtcp-muxsendonly\xff\x00";
        let mut state = 0x5eed_u64;
        for _ in 0..3000 {
            let len = (lcg(&mut state) % 200) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = lcg(&mut state) as usize;
                    if r.is_multiple_of(8) {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 3) % alphabet.len()]
                    }
                })
                .collect();
            let text = String::from_utf8_lossy(&bytes);
            exercise(&text);
            exercise(&format!("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n{text}"));
            exercise(&format!("{TWILIO}{text}"));
        }
        for junk in [
            "=",
            "v=",
            "v=0\r\no=",
            "v=0\no=\u{0}",
            "\u{feff}v=0",
            "v=0\r\no=- 1 1 IN IP4 a\r\nm=audio 5/ RTP/AVP\r\n",
        ] {
            exercise(junk);
        }
    }
}
