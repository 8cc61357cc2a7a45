//! Request and response acceptance rules of a UAS (RFC 3261 §8.2, RFC 4475 semantics):
//! typed parsing of the headers a UA relies on, and the status a bad request earns.

use super::headers::{CSeq, NameAddr, Via, parse_number};
use super::message::{Method, Request, Response};
use super::uri::{Uri, UriError};

/// A refusal: the status code, a reason phrase naming the problem, and extra headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Rejection {
    fn bad(reason: impl Into<String>) -> Rejection {
        Rejection {
            status: 400,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }
}

/// The typed core of a request that passed validation.
#[derive(Debug, Clone)]
pub struct RequestCore {
    pub uri: Uri,
    pub vias: Vec<Via>,
    pub from: NameAddr,
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: CSeq,
    pub max_forwards: Option<u8>,
    pub contacts: Vec<NameAddr>,
}

/// The typed core of a response used for transaction matching.
#[derive(Debug, Clone)]
pub struct ResponseCore {
    pub via: Via,
    pub from: NameAddr,
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: CSeq,
    pub contacts: Vec<NameAddr>,
}

/// SIP option tags this UA implements (anything else in Require earns a 420).
pub const SUPPORTED_OPTIONS: &[&str] = &["timer", "replaces", "norefersub"];

/// Body types accepted per method, as listed in the Accept header of a 415.
fn accepted_types(method: &Method) -> &'static [&'static str] {
    match method {
        Method::Info => &[
            "application/dtmf-relay",
            "application/dtmf",
            "application/sdp",
        ],
        Method::Notify => &["message/sipfrag"],
        _ => &["application/sdp", "multipart/mixed"],
    }
}

/// True when a body of `content_type` is acceptable in a `method` request.
fn accepted_content(method: &Method, content_type: &str) -> bool {
    let base = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    *method == Method::Message || accepted_types(method).contains(&base.as_str())
}

fn single<'a>(
    req_headers: &'a super::message::Headers,
    name: &'static str,
) -> Result<&'a str, Rejection> {
    match req_headers.count(name) {
        0 => Err(Rejection::bad(format!("Missing {name} header"))),
        1 => Ok(req_headers.get(name).unwrap_or("")),
        _ => Err(Rejection::bad(format!("Multiple {name} headers"))),
    }
}

/// The headers every request and response must carry, parsed.
struct CoreHeaders {
    vias: Vec<Via>,
    from: NameAddr,
    to: NameAddr,
    call_id: String,
    cseq: CSeq,
    contacts: Vec<NameAddr>,
}

fn parse_headers_core(h: &super::message::Headers) -> Result<CoreHeaders, Rejection> {
    let from = single(h, "From")?;
    let to = single(h, "To")?;
    let call_id = single(h, "Call-ID")?;
    let cseq = single(h, "CSeq")?;
    let via_values = h.values("Via");
    if via_values.is_empty() {
        return Err(Rejection::bad("Missing Via header"));
    }
    let bad = |e: super::headers::HeaderError| Rejection::bad(capitalize(&e.to_string()));
    let vias = via_values
        .iter()
        .map(|v| Via::parse(v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    let from = NameAddr::parse(from, "From").map_err(bad)?;
    let to = NameAddr::parse(to, "To").map_err(bad)?;
    if call_id.is_empty() || call_id.contains(char::is_whitespace) {
        return Err(Rejection::bad("Malformed Call-ID header"));
    }
    let cseq = CSeq::parse(cseq).map_err(bad)?;
    let mut contacts = Vec::new();
    for c in h.values("Contact") {
        if c == "*" {
            continue;
        }
        contacts.push(NameAddr::parse(c, "Contact").map_err(bad)?);
    }
    for name in ["Route", "Record-Route"] {
        for r in h.values(name) {
            let header = if name == "Route" {
                "Route"
            } else {
                "Record-Route"
            };
            NameAddr::parse(r, header).map_err(bad)?;
        }
    }
    Ok(CoreHeaders {
        vias,
        from,
        to,
        call_id: call_id.to_string(),
        cseq,
        contacts,
    })
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Validates a request as a UAS would before handing it to a transaction.
pub fn validate_request(req: &Request) -> Result<RequestCore, Rejection> {
    let h = &req.headers;
    let CoreHeaders {
        vias,
        from,
        to,
        call_id,
        cseq,
        contacts,
    } = parse_headers_core(h)?;
    if cseq.method != req.method {
        return Err(Rejection::bad(
            "CSeq method does not match the request method",
        ));
    }
    let uri = match Uri::parse(&req.uri) {
        Ok(u) => u,
        Err(UriError::UnsupportedScheme(s)) => {
            return Err(Rejection {
                status: 416,
                reason: format!("Unsupported URI Scheme {s}"),
                headers: Vec::new(),
            });
        }
        Err(e) => return Err(Rejection::bad(format!("Bad Request-URI: {e}"))),
    };
    if !uri.headers.is_empty() {
        return Err(Rejection::bad("Request-URI must not carry headers"));
    }
    let max_forwards = match h.count("Max-Forwards") {
        0 => None,
        1 => Some(
            parse_number(h.get("Max-Forwards").unwrap_or(""), 255, "Max-Forwards")
                .map_err(|_| Rejection::bad("Malformed Max-Forwards header"))? as u8,
        ),
        _ => return Err(Rejection::bad("Multiple Max-Forwards headers")),
    };
    if let Some(e) = h.get("Expires") {
        parse_number(e, u32::MAX as u64, "Expires")
            .map_err(|_| Rejection::bad("Malformed Expires header"))?;
    }
    for c in h.values("Contact") {
        if let Ok(na) = NameAddr::parse(c, "Contact")
            && let Some(Some(e)) = na.params.get("expires")
        {
            parse_number(e, u32::MAX as u64, "Contact")
                .map_err(|_| Rejection::bad("Malformed Contact expires parameter"))?;
        }
    }
    if let Some(date) = h.get("Date")
        && !date.trim_end().ends_with("GMT")
    {
        return Err(Rejection::bad(
            "Malformed Date header (time zone must be GMT)",
        ));
    }
    // Max-Forwards 0 is not refused: 483 is a proxy's answer (RFC 3261 §16.3); a UAS
    // processes the request as if the value were still positive (RFC 4475 §3.3.11).
    if req.method != Method::Ack && req.method != Method::Cancel {
        let unsupported: Vec<&str> = h
            .values("Require")
            .into_iter()
            .filter(|o| {
                !o.is_empty() && !SUPPORTED_OPTIONS.iter().any(|s| s.eq_ignore_ascii_case(o))
            })
            .collect();
        if !unsupported.is_empty() {
            return Err(Rejection {
                status: 420,
                reason: "Bad Extension".into(),
                headers: vec![("Unsupported", unsupported.join(", "))],
            });
        }
    }
    if !req.body.is_empty() {
        let ct = h.get("Content-Type").unwrap_or("");
        if !accepted_content(&req.method, ct) {
            return Err(Rejection {
                status: 415,
                reason: "Unsupported Media Type".into(),
                headers: vec![("Accept", accepted_types(&req.method).join(", "))],
            });
        }
    }
    if req.method == Method::Invite && h.count("Accept") > 0 {
        let accepts_sdp = h.values("Accept").iter().any(|a| {
            let t = a
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            t == "application/sdp" || t == "application/*" || t == "*/*" || t.is_empty()
        });
        if !accepts_sdp {
            return Err(Rejection {
                status: 406,
                reason: "Not Acceptable".into(),
                headers: vec![("Accept", "application/sdp".into())],
            });
        }
    }
    Ok(RequestCore {
        uri,
        vias,
        from,
        to,
        call_id,
        cseq,
        max_forwards,
        contacts,
    })
}

/// Validates a response enough to match it to a client transaction; `None` means drop it.
pub fn validate_response(resp: &Response) -> Option<ResponseCore> {
    let CoreHeaders {
        mut vias,
        from,
        to,
        call_id,
        cseq,
        contacts,
    } = parse_headers_core(&resp.headers).ok()?;
    if vias.is_empty() {
        return None;
    }
    Some(ResponseCore {
        via: vias.swap_remove(0),
        from,
        to,
        call_id,
        cseq,
        contacts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Message;
    use crate::sip::parse::{ParseLimits, parse_datagram};

    fn request(method: &str, extra: &str, body: &str) -> Request {
        let raw = format!(
            "{method} sip:bob@example.com SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n\
             From: <sip:alice@example.org>;tag=1\r\n\
             To: <sip:bob@example.com>\r\n\
             Call-ID: c1@example.org\r\n\
             CSeq: 1 {method}\r\n\
             {extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match parse_datagram(raw.as_bytes(), &ParseLimits::default()) {
            Ok(Message::Request(r)) => r,
            other => panic!("test request did not parse: {other:?}"),
        }
    }

    #[test]
    fn zero_max_forwards_is_processed_by_a_uas() {
        let core = validate_request(&request("INVITE", "Max-Forwards: 0\r\n", "")).unwrap();
        assert_eq!(core.max_forwards, Some(0));
    }

    #[test]
    fn unknown_require_earns_420_listing_only_those_tags() {
        let req = request(
            "OPTIONS",
            "Require: timer, foo\r\nProxy-Require: bar\r\n",
            "",
        );
        let rej = validate_request(&req).unwrap_err();
        assert_eq!(rej.status, 420);
        assert_eq!(rej.headers, vec![("Unsupported", "foo".to_string())]);
        // ACK cannot be rejected, so Require is not checked on it.
        assert!(validate_request(&request("ACK", "Require: foo\r\n", "")).is_ok());
    }

    #[test]
    fn unsupported_body_earns_415_with_the_method_s_types() {
        let rej =
            validate_request(&request("INFO", "Content-Type: text/plain\r\n", "x")).unwrap_err();
        assert_eq!(rej.status, 415);
        assert!(
            rej.headers[0].1.contains("application/dtmf-relay"),
            "{rej:?}"
        );
        let ok = request(
            "INFO",
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=1\r\n",
        );
        assert!(validate_request(&ok).is_ok());
    }

    #[test]
    fn reasons_name_the_offending_header() {
        let rej =
            validate_request(&request("OPTIONS", "Via: SIP/2.0/UDP h;;\r\n", "")).unwrap_err();
        assert_eq!(
            (rej.status, rej.reason.as_str()),
            (400, "Malformed Via header")
        );
        let rej = validate_request(&request("OPTIONS", "To: <sip:x@y>\r\n", "")).unwrap_err();
        assert_eq!(rej.reason, "Multiple To headers");
        let rej = validate_request(&request("INVITE", "Accept: text/x\r\n", "")).unwrap_err();
        assert_eq!(rej.status, 406);
    }

    #[test]
    fn lws_before_addr_spec_parameters_is_allowed() {
        let raw = "OPTIONS sip:bob@example.com SIP/2.0\r\n\
                   Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
                   From: sip:alice@example.org ;  tag = 7\r\n\
                   To: sip:bob@example.com ; tag=9\r\n\
                   Call-ID: c2\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n";
        let Ok(Message::Request(req)) = parse_datagram(raw.as_bytes(), &ParseLimits::default())
        else {
            panic!("did not parse")
        };
        let core = validate_request(&req).unwrap();
        assert_eq!((core.from.tag(), core.to.tag()), (Some("7"), Some("9")));
    }
}
