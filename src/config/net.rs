//! Small network value types: SIP transport, CIDR network, host[:port] parsing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A SIP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
    /// SIP over TLS (TCP).
    Tls,
}

impl Transport {
    /// Lower-case name as written in the config (`udp`, `tcp`, `tls`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }

    /// Well-known SIP port: 5061 for TLS, 5060 otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Tls => 5061,
            Self::Udp | Self::Tcp => 5060,
        }
    }

    /// Parses `udp`/`tcp`/`tls`, case-insensitively (SIP transport tokens are case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Some(Self::Udp),
            "tcp" => Some(Self::Tcp),
            "tls" => Some(Self::Tls),
            _ => None,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error from parsing an [`IpNet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseIpNetError(String);

/// An IPv4 or IPv6 network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Builds a network, zeroing host bits; fails if `prefix` exceeds the address width.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, ParseIpNetError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(ParseIpNetError(format!(
                "prefix length /{prefix} is longer than {max} bits"
            )));
        }
        let addr = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix))),
        };
        Ok(Self { addr, prefix })
    }

    /// The network address (host bits zero).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this network; IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        // Dual-stack sockets report IPv4 peers as ::ffff:a.b.c.d; treat them as the IPv4 peer.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_v4(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_v6(self.prefix) == u128::from(net)
            }
            (IpAddr::V6(net), IpAddr::V4(ip)) => {
                u128::from(ip.to_ipv6_mapped()) & mask_v6(self.prefix) == u128::from(net)
            }
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        }
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for IpNet {
    type Err = ParseIpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseIpNetError(format!("invalid IP address or CIDR {s:?}"));
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => {
                let addr: IpAddr = addr.parse().map_err(|_| bad())?;
                // `u8::from_str` accepts a leading '+', which is not valid CIDR.
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let prefix: u8 = prefix.parse().map_err(|_| bad())?;
                (addr, prefix)
            }
            None => {
                let addr: IpAddr = s.parse().map_err(|_| bad())?;
                (addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        Self::new(addr, prefix).map_err(|e| ParseIpNetError(format!("invalid CIDR {s:?}: {e}")))
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Whether `s` is an IP address (IPv6 optionally in brackets) or a DNS host name.
pub(super) fn is_valid_host(s: &str) -> bool {
    let unbracketed = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    if unbracketed.parse::<Ipv6Addr>().is_ok() {
        return true;
    }
    if s.starts_with('[') {
        return false;
    }
    if s.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    // Underscores are not legal in host names but do occur in private DNS; accept them.
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Splits `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address.
///
/// Returns the host without brackets and the port if one was given.
pub(super) fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let bad_host =
        || format!("invalid host {s:?} (expected a host name or IP, optionally with :port)");
    if s.parse::<Ipv6Addr>().is_ok() {
        return Ok((s.to_owned(), None));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad_host)?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(bad_host());
        }
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or_else(bad_host)?)),
        }
    } else {
        match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        }
    };
    if !is_valid_host(host) {
        return Err(bad_host());
    }
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or_else(|| format!("invalid port {p:?} in {s:?}"))?),
    };
    Ok((host.to_owned(), port))
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse::<u16>().ok().filter(|&p| p != 0)
}

/// `host` as it must appear in a SIP URI: IPv6 literals get brackets.
pub(super) fn uri_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_v4_contains() {
        let n = net("54.172.60.0/30");
        assert!(n.contains(ip("54.172.60.0")));
        assert!(n.contains(ip("54.172.60.3")));
        assert!(!n.contains(ip("54.172.60.4")));
        assert!(!n.contains(ip("54.172.59.255")));
        assert_eq!(n.to_string(), "54.172.60.0/30");
    }

    #[test]
    fn cidr_v4_edges() {
        let all = net("0.0.0.0/0");
        assert!(all.contains(ip("1.2.3.4")));
        assert!(all.contains(ip("255.255.255.255")));
        assert!(!all.contains(ip("::1")));
        let one = net("10.1.2.3/32");
        assert!(one.contains(ip("10.1.2.3")));
        assert!(!one.contains(ip("10.1.2.4")));
        let bare = net("10.1.2.3");
        assert_eq!(bare, one);
    }

    #[test]
    fn cidr_host_bits_are_masked() {
        let n = net("10.1.2.3/8");
        assert_eq!(n.to_string(), "10.0.0.0/8");
        assert!(n.contains(ip("10.255.0.1")));
    }

    #[test]
    fn cidr_v6_contains() {
        let n = net("2001:db8::/32");
        assert!(n.contains(ip("2001:db8::1")));
        assert!(n.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!n.contains(ip("2001:db9::1")));
        assert!(!n.contains(ip("10.0.0.1")));
        let all = net("::/0");
        assert!(all.contains(ip("fe80::1")));
        let one = net("2001:db8::5/128");
        assert!(one.contains(ip("2001:db8::5")));
        assert!(!one.contains(ip("2001:db8::6")));
        assert_eq!(net("2001:db8::5"), one);
    }

    #[test]
    fn cidr_matches_ipv4_mapped_peers() {
        let n = net("192.0.2.0/24");
        assert!(n.contains(ip("::ffff:192.0.2.9")));
        assert!(!n.contains(ip("::ffff:198.51.100.1")));
    }

    #[test]
    fn bad_cidrs_are_rejected() {
        for s in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "example.com/24",
            "10.0.0.0/8/8",
            "1.2.3.4 ",
        ] {
            assert!(s.parse::<IpNet>().is_err(), "{s:?} should fail");
        }
        assert_eq!(
            "10.0.0.0/33".parse::<IpNet>().unwrap_err().to_string(),
            "invalid CIDR \"10.0.0.0/33\": prefix length /33 is longer than 32 bits"
        );
        assert_eq!(
            "nope".parse::<IpNet>().unwrap_err().to_string(),
            "invalid IP address or CIDR \"nope\""
        );
    }

    #[test]
    fn hosts() {
        for ok in [
            "sip.example.com",
            "1.2.3.4",
            "::1",
            "[::1]",
            "a_b.internal",
            "localhost",
        ] {
            assert!(is_valid_host(ok), "{ok}");
        }
        for bad in [
            "",
            "a..b",
            "-a.com",
            "a b",
            "[1.2.3.4]",
            "x:5060",
            "sip:host",
        ] {
            assert!(!is_valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn host_port_splitting() {
        assert_eq!(
            split_host_port("h.example.com").unwrap(),
            ("h.example.com".into(), None)
        );
        assert_eq!(
            split_host_port("h.example.com:5080").unwrap(),
            ("h.example.com".into(), Some(5080))
        );
        assert_eq!(
            split_host_port("2001:db8::1").unwrap(),
            ("2001:db8::1".into(), None)
        );
        assert_eq!(
            split_host_port("[2001:db8::1]:5061").unwrap(),
            ("2001:db8::1".into(), Some(5061))
        );
        assert_eq!(
            split_host_port("[2001:db8::1]").unwrap(),
            ("2001:db8::1".into(), None)
        );
        assert!(split_host_port("h:0").is_err());
        assert!(split_host_port("h:70000").is_err());
        assert!(split_host_port("h:").is_err());
        assert!(split_host_port("[h]:5060").is_err());
        assert!(split_host_port("[::1]x").is_err());
        assert!(split_host_port("sip:h").is_err());
    }

    #[test]
    fn transports() {
        assert_eq!(Transport::parse("UDP"), Some(Transport::Udp));
        assert_eq!(Transport::parse("tls"), Some(Transport::Tls));
        assert_eq!(Transport::parse("sctp"), None);
        assert_eq!(Transport::Tls.default_port(), 5061);
        assert_eq!(Transport::Tcp.to_string(), "tcp");
        assert_eq!(uri_host("::1"), "[::1]");
        assert_eq!(uri_host("h"), "h");
    }
}
