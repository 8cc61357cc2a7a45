//! Typed views of the headers a UA relies on: Via, name-addr (From/To/Contact/Route), CSeq,
//! and generic `;name=value` parameter lists (RFC 3261 §20, §25.1).

use super::message::Method;
use super::parse::is_token;
use super::uri::{Uri, UriError};
use std::fmt;
use thiserror::Error;

/// Why a header value was refused; the string names the header.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HeaderError {
    #[error("malformed {0} header")]
    Malformed(&'static str),
    #[error("{0} header: {1}")]
    BadUri(&'static str, UriError),
}

/// The `;name[=value]` parameters that follow a header value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// The value of `name` (case-insensitive); `Some(None)` for a flag parameter.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// Sets (or adds) a parameter.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let value = value.map(str::to_string);
        match self
            .0
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{k}={v}")?,
                None => write!(f, ";{k}")?,
            }
        }
        Ok(())
    }
}

/// Length of a quoted string starting at `s[0] == '"'`, including both quotes.
fn quoted_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Parses `;a=b;c;d="q"` (leading `;` required unless `s` is empty).
pub fn parse_params(s: &str, header: &'static str) -> Result<Params, HeaderError> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        rest = rest
            .strip_prefix(';')
            .ok_or(HeaderError::Malformed(header))?
            .trim_start();
        let name_end = rest
            .find(|c: char| c == '=' || c == ';' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if !is_token(name) {
            return Err(HeaderError::Malformed(header));
        }
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            if after.starts_with('"') {
                let n = quoted_len(after).ok_or(HeaderError::Malformed(header))?;
                rest = after[n..].trim_start();
                Some(after[..n].to_string())
            } else {
                let end = after.find([';', ' ', '\t']).unwrap_or(after.len());
                let v = &after[..end];
                // gen-value = token / host / quoted-string; allow IPv6 references and ':'.
                if v.is_empty()
                    || !v
                        .bytes()
                        .all(|c| super::parse::is_token_char(c) || matches!(c, b'[' | b']' | b':'))
                {
                    return Err(HeaderError::Malformed(header));
                }
                rest = after[end..].trim_start();
                Some(v.to_string())
            }
        } else {
            None
        };
        out.push((name.to_string(), value));
    }
    Ok(Params(out))
}

/// One Via header element: `SIP/2.0/UDP host:port;branch=...;rport`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token, upper-cased (UDP, TCP, TLS, SCTP, WS, ...).
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    /// Parses one Via element (after list splitting).
    pub fn parse(s: &str) -> Result<Via, HeaderError> {
        const H: &str = "Via";
        // sent-protocol = name SLASH version SLASH transport, with optional LWS around '/'.
        let mut parts = s.splitn(3, '/');
        let name = parts.next().unwrap_or("").trim();
        let version = parts.next().ok_or(HeaderError::Malformed(H))?.trim();
        let rest = parts.next().ok_or(HeaderError::Malformed(H))?.trim_start();
        if !name.eq_ignore_ascii_case("SIP") || !is_token(version) {
            return Err(HeaderError::Malformed(H));
        }
        let t_end = rest
            .find(|c: char| c.is_whitespace())
            .ok_or(HeaderError::Malformed(H))?;
        let transport = &rest[..t_end];
        if !is_token(transport) {
            return Err(HeaderError::Malformed(H));
        }
        let rest = rest[t_end..].trim_start();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (rest[..i].trim(), &rest[i..]),
            None => (rest.trim(), ""),
        };
        let (host, port) =
            super::uri::split_host_port(sent_by).map_err(|_| HeaderError::Malformed(H))?;
        let host_ok = !host.is_empty()
            && (host.starts_with('[')
                || host
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_'));
        if !host_ok {
            return Err(HeaderError::Malformed(H));
        }
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host: host.to_string(),
            port,
            params: parse_params(params, H)?,
        })
    }

    /// The branch parameter, if any.
    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").flatten()
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route, Refer-To.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name as written (quoted form keeps its quotes).
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    /// Parses one name-addr / addr-spec element for header `header`.
    pub fn parse(s: &str, header: &'static str) -> Result<NameAddr, HeaderError> {
        let s = s.trim();
        let bad = || HeaderError::Malformed(header);
        let (display, uri_str, after) = if s.starts_with('"') {
            let n = quoted_len(s).ok_or_else(bad)?;
            let rest = s[n..].trim_start();
            let rest = rest.strip_prefix('<').ok_or_else(bad)?;
            let close = rest.find('>').ok_or_else(bad)?;
            (Some(s[..n].to_string()), &rest[..close], &rest[close + 1..])
        } else if let Some(open) = s.find('<') {
            let display = s[..open].trim();
            // A bare display name is a sequence of tokens separated by LWS.
            if !display.is_empty() && !display.split_whitespace().all(is_token) {
                return Err(bad());
            }
            let rest = &s[open + 1..];
            let close = rest.find('>').ok_or_else(bad)?;
            (
                (!display.is_empty()).then(|| display.to_string()),
                &rest[..close],
                &rest[close + 1..],
            )
        } else {
            // addr-spec without <>: the URI ends at the first ';' and may not carry '?' or ','.
            let (u, p) = match s.find(';') {
                // SEMI = SWS ";" SWS: LWS may precede the first parameter (RFC 4475 wsinv).
                Some(i) => (s[..i].trim_end(), &s[i..]),
                None => (s, ""),
            };
            if u.contains('?') || u.contains(',') || u.contains(char::is_whitespace) {
                return Err(bad());
            }
            (None, u, p)
        };
        if uri_str.is_empty() || uri_str.trim() != uri_str {
            return Err(bad());
        }
        let uri = Uri::parse(uri_str).map_err(|e| HeaderError::BadUri(header, e))?;
        Ok(NameAddr {
            display,
            uri,
            params: parse_params(after, header)?,
        })
    }

    /// The `tag` parameter (dialog identification).
    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag").flatten()
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{d} ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    /// Parses `1 INVITE`; the number must fit in 31 bits (RFC 3261 §8.1.1.5).
    pub fn parse(s: &str) -> Result<CSeq, HeaderError> {
        const H: &str = "CSeq";
        let mut it = s.split_whitespace();
        let num = it.next().ok_or(HeaderError::Malformed(H))?;
        let method = it.next().ok_or(HeaderError::Malformed(H))?;
        if it.next().is_some() || !num.bytes().all(|c| c.is_ascii_digit()) || !is_token(method) {
            return Err(HeaderError::Malformed(H));
        }
        let seq: u32 = num.parse().map_err(|_| HeaderError::Malformed(H))?;
        if seq > 0x7fff_ffff {
            return Err(HeaderError::Malformed(H));
        }
        Ok(CSeq {
            seq,
            method: Method::from_token(method),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Parses a delta-seconds value (Expires, Max-Forwards, Session-Expires) bounded by `max`.
pub fn parse_number(s: &str, max: u64, header: &'static str) -> Result<u64, HeaderError> {
    let s = s.trim();
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(HeaderError::Malformed(header));
    }
    match s.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(HeaderError::Malformed(header)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_rport_and_ipv6() {
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bK1;rport").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "[2001:db8::9]");
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        assert_eq!(v.params.get("rport"), Some(None));
        let spaced = Via::parse("SIP / 2.0 / TCP h.example.com ; branch = z9hG4bK2").unwrap();
        assert_eq!(spaced.branch(), Some("z9hG4bK2"));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse("\"Bob \\\"B\\\"\" <sip:bob@example.com>;tag=abc", "To").unwrap();
        assert_eq!(a.tag(), Some("abc"));
        let b = NameAddr::parse("sip:alice@example.com;tag=x", "From").unwrap();
        assert_eq!(b.uri.user.as_deref(), Some("alice"));
        assert_eq!(b.tag(), Some("x"));
        let c = NameAddr::parse("caller<sip:caller@example.com>;tag=323", "From").unwrap();
        assert_eq!(c.display.as_deref(), Some("caller"));
        for bad in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "Bell, Alexander <sip:a@b>",
            "< sip:t.watson@example.org >",
            "sip:user@example.com?Route=%3Csip:x%3E",
            "<sip:joe@example.org>;;;",
        ] {
            assert!(NameAddr::parse(bad, "X").is_err(), "{bad}");
        }
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(CSeq::parse("314159 INVITE").unwrap().seq, 314_159);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
    }
}
