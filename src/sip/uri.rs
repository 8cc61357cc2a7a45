//! SIP and tel URIs (RFC 3261 §19.1, RFC 3966), kept in their escaped wire form.

use std::fmt;
use thiserror::Error;

/// Why a URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum UriError {
    #[error("unsupported URI scheme {0:?}")]
    UnsupportedScheme(String),
    #[error("malformed URI: {0}")]
    Malformed(&'static str),
}

/// The URI schemes a SIP UA handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

impl Scheme {
    /// The scheme as written before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
        }
    }
}

/// A parsed sip:, sips: or tel: URI. Strings stay %-escaped as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    /// User part (for tel: the number).
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host name, IPv4 address or bracketed IPv6 reference; empty for tel:.
    pub host: String,
    pub port: Option<u16>,
    /// URI parameters in order (`;transport=tcp`, `;lr`).
    pub params: Vec<(String, Option<String>)>,
    /// Embedded headers after `?` (`name=value`).
    pub headers: Vec<(String, String)>,
}

fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// Checks %-escapes and the allowed character set of a URI component.
fn check_escaped(s: &str, extra: &[u8]) -> Result<(), UriError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            // RFC 4475 §3.1.1.5: a '%' that is not an escape is tolerated in user parts
            // by lenient parsers; we require a valid escape only where it is followed by hex.
            if i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit() {
                i += 3;
                continue;
            }
            return Err(UriError::Malformed("bad %-escape"));
        }
        if !(is_unreserved(c) || extra.contains(&c)) {
            return Err(UriError::Malformed("character not allowed in URI"));
        }
        i += 1;
    }
    Ok(())
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_')
        && !host.starts_with('.')
        && !host.starts_with('-')
}

const USER_EXTRA: &[u8] = b"&=+$,;?/";
const PASSWORD_EXTRA: &[u8] = b"&=+$,";
const PARAM_EXTRA: &[u8] = b"[]/:&+$";
const HEADER_EXTRA: &[u8] = b"[]/?:+$";

impl Uri {
    /// Parses a URI; schemes other than sip/sips/tel yield `UnsupportedScheme` (→ 416).
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let (scheme, rest) = s.split_once(':').ok_or(UriError::Malformed("no scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "sip" => Scheme::Sip,
            "sips" => Scheme::Sips,
            "tel" => Scheme::Tel,
            other => {
                let ok = other
                    .bytes()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic())
                    && other
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
                return Err(if ok {
                    UriError::UnsupportedScheme(other.to_string())
                } else {
                    UriError::Malformed("bad scheme")
                });
            }
        };
        if s.bytes()
            .any(|c| c <= b' ' || c == b'<' || c == b'>' || c == b'"')
        {
            return Err(UriError::Malformed("whitespace or delimiter inside URI"));
        }
        if scheme == Scheme::Tel {
            let (number, params) = match rest.split_once(';') {
                Some((n, p)) => (n, Some(p)),
                None => (rest, None),
            };
            if number.is_empty() {
                return Err(UriError::Malformed("empty tel number"));
            }
            return Ok(Uri {
                scheme,
                user: Some(number.to_string()),
                password: None,
                host: String::new(),
                port: None,
                params: parse_params(params)?,
                headers: Vec::new(),
            });
        }
        let (main, headers) = match rest.split_once('?') {
            // '?' may legally appear in the user part; only a '?' after '@' starts headers.
            Some((m, h)) if !h.contains('@') => (m, Some(h)),
            _ => (rest, None),
        };
        let (userinfo, hostpart) = match main.rfind('@') {
            Some(i) => (Some(&main[..i]), &main[i + 1..]),
            None => (None, main),
        };
        let (user, password) = match userinfo {
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (ui, None),
                };
                if u.is_empty() {
                    return Err(UriError::Malformed("empty user"));
                }
                check_escaped(u, USER_EXTRA)?;
                if let Some(p) = p {
                    check_escaped(p, PASSWORD_EXTRA)?;
                }
                (Some(u.to_string()), p.map(str::to_string))
            }
            None => (None, None),
        };
        let (hostport, params) = match hostpart.split_once(';') {
            Some((h, p)) => (h, Some(p)),
            None => (hostpart, None),
        };
        let (host, port) = split_host_port(hostport)?;
        if !valid_host(host) {
            return Err(UriError::Malformed("bad host"));
        }
        let headers = match headers {
            Some(h) => h
                .split('&')
                .map(|kv| {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or(UriError::Malformed("bad URI header"))?;
                    check_escaped(k, HEADER_EXTRA)?;
                    check_escaped(v, HEADER_EXTRA)?;
                    if k.is_empty() {
                        return Err(UriError::Malformed("bad URI header"));
                    }
                    Ok((k.to_string(), v.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        Ok(Uri {
            scheme,
            user,
            password,
            host: host.to_string(),
            port,
            params: parse_params(params)?,
            headers,
        })
    }

    /// A plain `sip:user@host[:port]` URI.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(str::to_string),
            password: None,
            host: host.to_string(),
            port,
            params: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// The value of URI parameter `name` (case-insensitive); `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The host with IPv6 brackets removed, ready for address resolution.
    pub fn host_unbracketed(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }
}

/// Splits `host[:port]`, handling bracketed IPv6.
pub fn split_host_port(s: &str) -> Result<(&str, Option<u16>), UriError> {
    let (host, port) = if s.starts_with('[') {
        let close = s
            .find(']')
            .ok_or(UriError::Malformed("unterminated IPv6 reference"))?;
        let after = &s[close + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(UriError::Malformed("junk after IPv6 reference")),
        };
        (&s[..=close], port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|c| c.is_ascii_digit()) {
                return Err(UriError::Malformed("bad port"));
            }
            Some(
                p.parse::<u16>()
                    .map_err(|_| UriError::Malformed("port out of range"))?,
            )
        }
        None => None,
    };
    Ok((host, port))
}

fn parse_params(s: Option<&str>) -> Result<Vec<(String, Option<String>)>, UriError> {
    let Some(s) = s else { return Ok(Vec::new()) };
    s.split(';')
        .map(|p| {
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (p, None),
            };
            if k.is_empty() {
                return Err(UriError::Malformed("empty URI parameter"));
            }
            check_escaped(k, PARAM_EXTRA)?;
            if let Some(v) = v {
                check_escaped(v, PARAM_EXTRA)?;
            }
            Ok((k.to_string(), v.map(str::to_string)))
        })
        .collect()
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme.as_str())?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            if self.scheme != Scheme::Tel {
                f.write_str("@")?;
            }
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for (k, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{k}={v}")?,
                None => write!(f, ";{k}")?,
            }
        }
        for (i, (k, v)) in self.headers.iter().enumerate() {
            write!(f, "{}{k}={v}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_sip_uri() {
        let u =
            Uri::parse("sip:alice:secret@[2001:db8::1]:5070;transport=tcp;lr?Subject=hi").unwrap();
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host_unbracketed(), "2001:db8::1");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("TRANSPORT"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(
            u.to_string(),
            "sip:alice:secret@[2001:db8::1]:5070;transport=tcp;lr?Subject=hi"
        );
    }

    #[test]
    fn tel_and_unknown_schemes() {
        let t = Uri::parse("tel:+15551234567;phone-context=+1").unwrap();
        assert_eq!(t.user.as_deref(), Some("+15551234567"));
        assert_eq!(t.to_string(), "tel:+15551234567;phone-context=+1");
        assert_eq!(
            Uri::parse("http://www.example.com"),
            Err(UriError::UnsupportedScheme("http".into()))
        );
    }

    #[test]
    fn semicolons_and_escapes_in_user() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        assert!(Uri::parse("sip:%75se%72@example.com").is_ok());
        assert!(Uri::parse("sip:a b@example.com").is_err());
        assert!(Uri::parse("sip:a@example.com:99999").is_err());
        assert!(Uri::parse("sip:a@").is_err());
    }
}
