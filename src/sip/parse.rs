//! Wire parsing of SIP messages (RFC 3261 §7, §18.3 framing), sans-IO.
//!
//! `parse_datagram` reads one UDP datagram; `StreamFramer` cuts a TCP/TLS byte stream into
//! messages by Content-Length. Parsing is strict where a wrong guess would be dangerous
//! (start line, Content-Length, header names) and keeps header values raw; typed checks of
//! the headers a UA relies on happen in `validate.rs`.

use super::message::{Headers, Message, Method, Request, Response};
use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Why a message could not be parsed; `status()` is the response a request earns.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("message has no blank line after the headers")]
    NoHeaderEnd,
    #[error("headers are not valid UTF-8")]
    NotUtf8,
    #[error("malformed start line")]
    BadStartLine,
    #[error("malformed Request-URI")]
    BadRequestUri,
    #[error("unsupported SIP version {0}")]
    BadVersion(String),
    #[error("malformed status code")]
    BadStatusCode,
    #[error("invalid method token")]
    BadMethod,
    #[error("malformed header line {0}")]
    BadHeaderLine(usize),
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("multiple Content-Length values")]
    DuplicateContentLength,
    #[error("Content-Length larger than the message")]
    TruncatedBody,
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
}

impl ParseError {
    /// The status code a request that fails this way should be answered with.
    pub fn status(&self) -> u16 {
        match self {
            ParseError::BadVersion(_) => 505,
            ParseError::TooLarge(_) => 513,
            _ => 400,
        }
    }
}

/// A parse failure plus, when the message was a request whose header section could be
/// read, its headers — enough to build the 400 (Via, From, To, Call-ID, CSeq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    pub error: ParseError,
    pub request_headers: Option<Headers>,
}

impl From<ParseError> for ParseFailure {
    fn from(error: ParseError) -> Self {
        ParseFailure {
            error,
            request_headers: None,
        }
    }
}

/// Limits that protect the parser from hostile input.
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    /// Largest whole message accepted (header section plus body).
    pub max_message: usize,
    /// Most header lines accepted.
    pub max_headers: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_message: 65_535,
            max_headers: 256,
        }
    }
}

/// True for RFC 3261 `token` characters.
pub fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// True when `s` is a non-empty RFC 3261 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Finds the end of the header section: returns (index of the blank line start, length of
/// the terminator). Accepts CRLFCRLF and, leniently, LFLF.
fn find_header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(c), Some(l)) if l < c => Some((l, 2)),
        (Some(c), _) => Some((c, 4)),
        (None, Some(l)) => Some((l, 2)),
        (None, None) => None,
    }
}

enum StartLine {
    Request(Method, String),
    Response(u16, String),
}

fn parse_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    let looks_like_version = v.len() > 4
        && v.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/")
        && v[4..].split('.').count() == 2
        && v[4..]
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()));
    if looks_like_version {
        Err(ParseError::BadVersion(v.to_string()))
    } else {
        Err(ParseError::BadStartLine)
    }
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    // Compare bytes: slicing the str at 4 panics when byte 4 is inside a UTF-8 character.
    if line.len() >= 4 && line.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        parse_version(version)?;
        let code = parts.next().ok_or(ParseError::BadStatusCode)?;
        if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::BadStatusCode);
        }
        let status: u16 = code.parse().map_err(|_| ParseError::BadStatusCode)?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::BadStatusCode);
        }
        let reason = parts.next().unwrap_or("").to_string();
        return Ok(StartLine::Response(status, reason));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly single spaces.
    let parts: Vec<&str> = line.split(' ').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        // Single spaces inside the URI (`sip:a@b; lr`) make extra parts; doubled spaces
        // between elements make empty ones and are a start-line error (RFC 4475 §3.1.2.9).
        if parts.len() > 3
            && !parts.iter().any(|p| p.is_empty())
            && parts
                .last()
                .is_some_and(|v| v.eq_ignore_ascii_case("SIP/2.0"))
        {
            return Err(ParseError::BadRequestUri);
        }
        return Err(ParseError::BadStartLine);
    }
    if !is_token(parts[0]) {
        return Err(ParseError::BadMethod);
    }
    parse_version(parts[2])?;
    let uri = parts[1];
    if uri.starts_with('<') || uri.bytes().any(|c| c.is_ascii_control() || c == b'\t') {
        return Err(ParseError::BadRequestUri);
    }
    Ok(StartLine::Request(
        Method::from_token(parts[0]),
        uri.to_string(),
    ))
}

/// Parses the header lines (after the start line), unfolding continuation lines.
fn parse_header_lines(text: &str, limits: &ParseLimits) -> Result<Headers, ParseError> {
    let mut headers = Headers::new();
    let mut current: Option<(String, String)> = None;
    for (n, raw_line) in text.split('\n').enumerate() {
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        if line.starts_with([' ', '\t']) {
            match current.as_mut() {
                Some((_, value)) => {
                    let cont = line.trim();
                    if !cont.is_empty() {
                        if !value.is_empty() {
                            value.push(' ');
                        }
                        value.push_str(cont);
                    }
                    continue;
                }
                None => return Err(ParseError::BadHeaderLine(n + 2)),
            }
        }
        if let Some((name, value)) = current.take() {
            headers.push(&name, value);
        }
        if line.is_empty() {
            continue;
        }
        let colon = line.find(':').ok_or(ParseError::BadHeaderLine(n + 2))?;
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if !is_token(name) {
            return Err(ParseError::BadHeaderLine(n + 2));
        }
        current = Some((name.to_string(), line[colon + 1..].trim().to_string()));
        if headers.len() >= limits.max_headers {
            return Err(ParseError::TooLarge(limits.max_headers));
        }
    }
    if let Some((name, value)) = current.take() {
        headers.push(&name, value);
    }
    Ok(headers)
}

/// Reads Content-Length: `Ok(None)` when absent; refuses negatives, junk and conflicting copies.
fn content_length(headers: &Headers) -> Result<Option<usize>, ParseError> {
    let mut found: Option<usize> = None;
    for v in headers.get_all("Content-Length") {
        if v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::BadContentLength);
        }
        let n: usize = v.parse().map_err(|_| ParseError::BadContentLength)?;
        if found.is_some() {
            return Err(ParseError::DuplicateContentLength);
        }
        found = Some(n);
    }
    Ok(found)
}

/// Parses a header section (start line + headers, without the blank line).
fn parse_head(head: &[u8], limits: &ParseLimits) -> Result<(StartLine, Headers), ParseFailure> {
    let text = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
    let (first, rest) = match text.find('\n') {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    };
    let first = first.strip_suffix('\r').unwrap_or(first);
    let start = parse_start_line(first);
    let headers = parse_header_lines(rest, limits);
    match (start, headers) {
        (Ok(s), Ok(h)) => Ok((s, h)),
        (Err(e), Ok(h)) => {
            let is_response =
                first.len() >= 4 && first.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/");
            Err(ParseFailure {
                error: e,
                request_headers: (!is_response).then_some(h),
            })
        }
        (_, Err(e)) => Err(e.into()),
    }
}

fn assemble(start: StartLine, headers: Headers, body: Bytes) -> Message {
    match start {
        StartLine::Request(method, uri) => Message::Request(Request {
            method,
            uri,
            headers,
            body,
        }),
        StartLine::Response(status, reason) => Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }),
    }
}

/// Parses one SIP message from a datagram. Without Content-Length the body is the rest of
/// the datagram; octets beyond Content-Length are ignored (RFC 3261 §18.3).
pub fn parse_datagram(buf: &[u8], limits: &ParseLimits) -> Result<Message, ParseFailure> {
    if buf.len() > limits.max_message {
        return Err(ParseError::TooLarge(limits.max_message).into());
    }
    // A datagram is complete: if it ends right after a header line without the blank line,
    // its headers end with it (RFC 4475 baddn.dat as archived). Streams must still wait.
    let (end, term) = match find_header_end(buf) {
        Some(found) => found,
        None if buf.ends_with(b"\n") => (buf.len(), 0),
        None => return Err(ParseError::NoHeaderEnd.into()),
    };
    let (start, headers) = parse_head(&buf[..end], limits)?;
    let is_request = matches!(start, StartLine::Request(..));
    let with_headers = |error: ParseError, headers: &Headers| ParseFailure {
        error,
        request_headers: is_request.then(|| headers.clone()),
    };
    let available = &buf[end + term..];
    let body = match content_length(&headers) {
        Ok(None) => available,
        Ok(Some(n)) if n <= available.len() => &available[..n],
        Ok(Some(_)) => return Err(with_headers(ParseError::TruncatedBody, &headers)),
        Err(e) => return Err(with_headers(e, &headers)),
    };
    Ok(assemble(start, headers, Bytes::copy_from_slice(body)))
}

/// What a stream transport should do after feeding bytes to the framer.
#[derive(Debug)]
pub enum StreamEvent {
    /// A complete message.
    Message(Message),
    /// A CRLFCRLF keep-alive ping (RFC 5626 §3.5.1); answer with a single CRLF.
    KeepAlivePing,
    /// The stream cannot be resynchronised; the connection must be closed after answering.
    Fatal(ParseFailure),
    /// One message was malformed but its extent was known, so the stream continues.
    Malformed(ParseFailure),
}

/// Cuts a byte stream (TCP/TLS) into SIP messages using Content-Length framing.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: ParseLimits,
    failed: bool,
}

impl StreamFramer {
    /// A framer enforcing `limits`.
    pub fn new(limits: ParseLimits) -> StreamFramer {
        StreamFramer {
            buf: BytesMut::new(),
            limits,
            failed: false,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Returns the next event, or `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Option<StreamEvent> {
        if self.failed {
            return None;
        }
        // Leading CRLFs between messages are keep-alives (a double CRLF) or padding.
        let mut leading = 0;
        while leading < self.buf.len() && matches!(self.buf[leading], b'\r' | b'\n') {
            leading += 1;
        }
        if leading > 0 {
            let ping = self.buf[..leading].windows(4).any(|w| w == b"\r\n\r\n");
            if leading == self.buf.len() && !ping {
                return None;
            }
            self.buf.advance(leading);
            if ping {
                return Some(StreamEvent::KeepAlivePing);
            }
        }
        let Some((end, term)) = find_header_end(&self.buf) else {
            if self.buf.len() > self.limits.max_message {
                return Some(self.fatal(ParseError::TooLarge(self.limits.max_message).into()));
            }
            return None;
        };
        let head = parse_head(&self.buf[..end], &self.limits);
        let (start, headers) = match head {
            Ok(v) => v,
            Err(failure) => {
                // We know where the header section ends; find the body length to skip it.
                let skip = self.body_len_hint(end).unwrap_or(0);
                // Saturate: a hinted length near usize::MAX must not overflow, and a body
                // beyond the size limit must not make us buffer without bound.
                let total = (end + term).saturating_add(skip);
                if skip == usize::MAX || total > self.limits.max_message {
                    return Some(self.fatal(failure));
                }
                if self.buf.len() < total {
                    return None;
                }
                self.buf.advance(total);
                return Some(StreamEvent::Malformed(failure));
            }
        };
        let len = match content_length(&headers) {
            // Content-Length is mandatory on streams; treat its absence as an empty body.
            Ok(n) => n.unwrap_or(0),
            Err(e) => {
                let failure = ParseFailure {
                    error: e,
                    request_headers: matches!(start, StartLine::Request(..)).then_some(headers),
                };
                return Some(self.fatal(failure));
            }
        };
        // Content-Length may be as large as usize::MAX: saturate rather than overflow.
        let total = (end + term).saturating_add(len);
        if total > self.limits.max_message {
            return Some(self.fatal(ParseError::TooLarge(self.limits.max_message).into()));
        }
        if self.buf.len() < total {
            return None;
        }
        let mut msg = self.buf.split_to(total);
        msg.advance(end + term);
        Some(StreamEvent::Message(assemble(start, headers, msg.freeze())))
    }

    /// Best-effort Content-Length of a message whose head failed to parse; `usize::MAX`
    /// when the stream can no longer be framed.
    fn body_len_hint(&self, end: usize) -> Option<usize> {
        let text = std::str::from_utf8(&self.buf[..end]).ok()?;
        let mut len = None;
        for line in text.lines().skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
                match value.trim().parse::<usize>() {
                    Ok(n) if len.is_none() || len == Some(n) => len = Some(n),
                    _ => return Some(usize::MAX),
                }
            }
        }
        len
    }

    fn fatal(&mut self, failure: ParseFailure) -> StreamEvent {
        self.failed = true;
        self.buf.clear();
        StreamEvent::Fatal(failure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@example.com>\r\n\
From: Alice <sip:alice@example.org>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.org\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.example.org>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

    fn limits() -> ParseLimits {
        ParseLimits::default()
    }

    #[test]
    fn parses_request() {
        let Message::Request(r) = parse_datagram(INVITE.as_bytes(), &limits()).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri, "sip:bob@example.com");
        assert_eq!(
            r.headers.get("call-id"),
            Some("a84b4c76e66710@pc33.example.org")
        );
        assert_eq!(&r.body[..], b"v=0\n");
    }

    #[test]
    fn round_trip_is_stable() {
        let m = parse_datagram(INVITE.as_bytes(), &limits()).unwrap();
        let again = parse_datagram(&m.to_bytes(), &limits()).unwrap();
        assert_eq!(m, again);
    }

    #[test]
    fn folding_and_compact_forms() {
        let raw = "OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nSubject: one\r\n  two\r\n\tthree\r\nl: 0\r\n\r\n";
        let m = parse_datagram(raw.as_bytes(), &limits()).unwrap();
        assert_eq!(m.headers().get("Subject"), Some("one two three"));
        assert_eq!(
            m.headers().get("Via"),
            Some("SIP/2.0/UDP h;branch=z9hG4bK1")
        );
    }

    #[test]
    fn response_with_empty_reason() {
        let raw = "SIP/2.0 100 \r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n";
        let Message::Response(r) = parse_datagram(raw.as_bytes(), &limits()).unwrap() else {
            panic!()
        };
        assert_eq!((r.status, r.reason.as_str()), (100, ""));
    }

    #[test]
    fn bad_start_lines() {
        for (line, err) in [
            ("INVITE  sip:a@b SIP/2.0", ParseError::BadStartLine),
            ("INVITE sip:a@b SIP/2.0 ", ParseError::BadStartLine),
            ("INVITE <sip:a@b> SIP/2.0", ParseError::BadRequestUri),
            (
                "INVITE sip:a@b SIP/7.0",
                ParseError::BadVersion("SIP/7.0".into()),
            ),
            ("SIP/2.0 4294967301 OK", ParseError::BadStatusCode),
        ] {
            let raw = format!("{line}\r\nCall-ID: x\r\nl: 0\r\n\r\n");
            let e = parse_datagram(raw.as_bytes(), &limits()).unwrap_err();
            assert_eq!(e.error, err, "{line}");
        }
    }

    #[test]
    fn bad_request_keeps_headers_for_the_400() {
        let raw = "INVITE  sip:a@b SIP/2.0\r\nCall-ID: x\r\nl: 0\r\n\r\n";
        let e = parse_datagram(raw.as_bytes(), &limits()).unwrap_err();
        assert_eq!(e.request_headers.unwrap().get("Call-ID"), Some("x"));
    }

    #[test]
    fn content_length_rules() {
        let mk = |cl: &str, body: &str| {
            format!("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n{cl}\r\n\r\n{body}")
        };
        let e = |s: String| parse_datagram(s.as_bytes(), &limits()).unwrap_err().error;
        assert_eq!(
            e(mk("Content-Length: 10", "abc")),
            ParseError::TruncatedBody
        );
        assert_eq!(
            e(mk("Content-Length: -3", "abc")),
            ParseError::BadContentLength
        );
        assert_eq!(
            e(mk("Content-Length: 1\r\nl: 2", "abc")),
            ParseError::DuplicateContentLength
        );
        let m = parse_datagram(mk("Content-Length: 2", "abcdef").as_bytes(), &limits()).unwrap();
        let Message::Request(r) = m else { panic!() };
        assert_eq!(&r.body[..], b"ab");
    }

    #[test]
    fn framer_splits_stream_and_pings() {
        let mut f = StreamFramer::new(limits());
        let two = format!("{INVITE}\r\n\r\n{INVITE}");
        let bytes = two.as_bytes();
        // Feed byte by byte to exercise partial reads.
        let mut got = Vec::new();
        for b in bytes {
            f.push(std::slice::from_ref(b));
            while let Some(ev) = f.next_event() {
                got.push(ev);
            }
        }
        assert!(matches!(got[0], StreamEvent::Message(_)));
        assert!(matches!(got[1], StreamEvent::KeepAlivePing));
        assert!(matches!(got[2], StreamEvent::Message(_)));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn framer_survives_malformed_message() {
        let mut f = StreamFramer::new(limits());
        f.push(b"INVITE  sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 3\r\n\r\nabc");
        f.push(INVITE.as_bytes());
        assert!(matches!(f.next_event(), Some(StreamEvent::Malformed(_))));
        assert!(matches!(f.next_event(), Some(StreamEvent::Message(_))));
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678u32;
        for len in 0..400 {
            let mut v = INVITE.as_bytes()[..len.min(INVITE.len())].to_vec();
            for _ in 0..8 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                if !v.is_empty() {
                    let i = (seed as usize >> 8) % v.len();
                    v[i] = (seed >> 16) as u8;
                }
            }
            let _ = parse_datagram(&v, &limits());
            let mut f = StreamFramer::new(limits());
            f.push(&v);
            while f.next_event().is_some() {}
        }
    }
}
