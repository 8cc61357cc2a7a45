//! SIP message model (RFC 3261 §7): requests, responses, and their header list.
//!
//! Headers are kept as an ordered list of raw values with canonical names; typed views
//! (Via, name-addr, CSeq, ...) live in `headers.rs` and are parsed on demand, so that a
//! proxy-like pass-through never loses or reorders what the peer sent.

use bytes::Bytes;
use std::fmt;

/// A SIP request method; unknown extension methods are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Prack,
    Refer,
    Notify,
    Subscribe,
    Message,
    /// An extension method token, case preserved (methods are case-sensitive).
    Other(String),
}

impl Method {
    /// Parses a method token (case-sensitive per RFC 3261 §7.1).
    pub fn from_token(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            other => Method::Other(other.to_string()),
        }
    }

    /// The method's token as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A header name in canonical long form (compact forms are expanded on parse).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderName(String);

impl HeaderName {
    /// Builds a header name, expanding compact forms and canonicalising known names.
    pub fn new(raw: &str) -> HeaderName {
        HeaderName(canonical_name(raw))
    }

    /// The canonical spelling used when serializing.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Case-insensitive comparison with a (long or compact) name.
    pub fn is(&self, other: &str) -> bool {
        // Stored names are already expanded, so only a compact query needs expanding; this
        // runs for every header lookup and must not allocate.
        let long = compact_long_form(other).unwrap_or(other);
        self.0.eq_ignore_ascii_case(long)
    }
}

/// Expands compact header forms (RFC 3261 §7.3.3 and extensions) and fixes the case of
/// well-known names so serialization is stable.
fn canonical_name(raw: &str) -> String {
    const KNOWN: &[&str] = &[
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Allow-Events",
        "Authorization",
        "Call-ID",
        "Call-Info",
        "Contact",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "Date",
        "Error-Info",
        "Event",
        "Expires",
        "From",
        "In-Reply-To",
        "Max-Forwards",
        "Min-Expires",
        "Min-SE",
        "MIME-Version",
        "Organization",
        "P-Asserted-Identity",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "RAck",
        "Reason",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "RSeq",
        "Server",
        "Session-Expires",
        "Subject",
        "Subscription-State",
        "Supported",
        "Timestamp",
        "To",
        "Unsupported",
        "User-Agent",
        "Via",
        "Warning",
        "WWW-Authenticate",
    ];
    if let Some(long) = compact_long_form(raw) {
        return long.to_string();
    }
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(raw))
        .map(|k| k.to_string())
        .unwrap_or_else(|| raw.to_string())
}

/// The long form of a one-letter compact header name (RFC 3261 §7.3.3 and extensions).
fn compact_long_form(raw: &str) -> Option<&'static str> {
    if raw.len() != 1 {
        return None;
    }
    {
        match raw.as_bytes()[0].to_ascii_lowercase() {
            b'a' => Some("Accept-Contact"),
            b'b' => Some("Referred-By"),
            b'c' => Some("Content-Type"),
            b'd' => Some("Request-Disposition"),
            b'e' => Some("Content-Encoding"),
            b'f' => Some("From"),
            b'i' => Some("Call-ID"),
            b'j' => Some("Reject-Contact"),
            b'k' => Some("Supported"),
            b'l' => Some("Content-Length"),
            b'm' => Some("Contact"),
            b'o' => Some("Event"),
            b'r' => Some("Refer-To"),
            b's' => Some("Subject"),
            b't' => Some("To"),
            b'u' => Some("Allow-Events"),
            b'v' => Some("Via"),
            b'x' => Some("Session-Expires"),
            b'y' => Some("Identity"),
            _ => None,
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One header field line: its name and its (unfolded, trimmed) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: String,
}

/// The ordered header list of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// An empty header list.
    pub fn new() -> Headers {
        Headers(Vec::new())
    }

    /// Appends a header at the end.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push(Header {
            name: HeaderName::new(name),
            value: value.into(),
        });
    }

    /// Inserts a header before all others (used for a new top Via).
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name: HeaderName::new(name),
                value: value.into(),
            },
        );
    }

    /// Replaces every instance of `name` with one header carrying `value`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let pos = self.0.iter().position(|h| h.name.is(name));
        self.remove(name);
        let header = Header {
            name: HeaderName::new(name),
            value: value.into(),
        };
        match pos {
            Some(p) if p <= self.0.len() => self.0.insert(p, header),
            _ => self.0.push(header),
        }
    }

    /// Replaces the value of the first instance of `name`; false when there is none.
    pub fn replace_first(&mut self, name: &str, value: impl Into<String>) -> bool {
        match self.0.iter_mut().find(|h| h.name.is(name)) {
            Some(h) => {
                h.value = value.into();
                true
            }
            None => false,
        }
    }

    /// Removes every instance of `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|h| !h.name.is(name));
    }

    /// The value of the first instance of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.is(name))
            .map(|h| h.value.as_str())
    }

    /// The raw values of every header line named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.is(name))
            .map(|h| h.value.as_str())
    }

    /// Every comma-separated element of every `name` line, in order (for list headers such
    /// as Via, Route, Contact, Supported). Commas inside quotes or `<>` do not split.
    pub fn values<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        self.get_all(name).flat_map(split_list).collect()
    }

    /// How many header lines named `name` the message carries.
    pub fn count(&self, name: &str) -> usize {
        self.0.iter().filter(|h| h.name.is(name)).count()
    }

    /// Iterates over all header lines in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the message has no header lines.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits a header value on top-level commas, honouring quoted strings (with escapes) and
/// angle brackets. Elements are trimmed; empty elements are kept so validation can refuse them.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = value.as_bytes();
    let (mut start, mut in_quote, mut in_angle, mut i) = (0usize, false, false, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quote => i += 1,
            b'"' => in_quote = !in_quote,
            b'<' if !in_quote => in_angle = true,
            b'>' if !in_quote => in_angle = false,
            b',' if !in_quote && !in_angle => {
                out.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(value[start.min(value.len())..].trim());
    out
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The Request-URI as sent; parse it with [`crate::sip::uri::Uri::parse`].
    pub uri: String,
    pub headers: Headers,
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

/// Either kind of SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    /// The message's headers.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// Serializes the message to wire bytes (Content-Length is always written).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

fn write_headers_and_body(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    for h in headers.iter() {
        if h.name.is("Content-Length") {
            continue;
        }
        out.extend_from_slice(h.name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

impl Request {
    /// A request with no headers and an empty body.
    pub fn new(method: Method, uri: impl Into<String>) -> Request {
        Request {
            method,
            uri: uri.into(),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Serializes the request; Content-Length is computed from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.uri.as_bytes());
        out.extend_from_slice(b" SIP/2.0\r\n");
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }
}

impl Response {
    /// A response with no headers and an empty body.
    pub fn new(status: u16, reason: impl Into<String>) -> Response {
        Response {
            status,
            reason: reason.into(),
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Serializes the response; Content-Length is computed from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(b"SIP/2.0 ");
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }
}

/// The default reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300..=399 => "Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_names_expand() {
        assert_eq!(HeaderName::new("v").as_str(), "Via");
        assert_eq!(HeaderName::new("I").as_str(), "Call-ID");
        assert_eq!(HeaderName::new("call-id").as_str(), "Call-ID");
        assert_eq!(HeaderName::new("X-Custom").as_str(), "X-Custom");
        assert!(HeaderName::new("l").is("content-length"));
    }

    #[test]
    fn split_list_honours_quotes_and_angles() {
        let v = split_list(r#""Doe, John" <sip:a@b;x=1,2>, <sip:c@d>"#);
        assert_eq!(v, vec![r#""Doe, John" <sip:a@b;x=1,2>"#, "<sip:c@d>"]);
        assert_eq!(split_list("a,,b"), vec!["a", "", "b"]);
    }

    #[test]
    fn set_replaces_in_place() {
        let mut h = Headers::new();
        h.push("Via", "a");
        h.push("To", "b");
        h.push("Via", "c");
        h.set("via", "d");
        assert_eq!(h.values("Via"), vec!["d"]);
        assert_eq!(h.iter().next().map(|h| h.value.as_str()), Some("d"));
    }

    #[test]
    fn serialize_writes_content_length() {
        let mut r = Response::new(200, "OK");
        r.headers.push("Content-Length", "999");
        r.body = Bytes::from_static(b"abc");
        let s = String::from_utf8(r.to_bytes()).unwrap();
        assert!(s.starts_with("SIP/2.0 200 OK\r\n"));
        assert!(s.ends_with("Content-Length: 3\r\n\r\nabc"));
        assert_eq!(s.matches("Content-Length").count(), 1);
    }
}
