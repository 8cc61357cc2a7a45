//! `trunks/<name>.toml`: one SIP carrier or PBX per file.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use super::env::{Ctx, EnvLookup, Secret};
use super::error::ConfigError;
use super::net::{IpNet, Transport, is_valid_host, split_host_port, uri_host};
use super::parse::parse_document;

/// A SIP trunk loaded from `trunks/<name>.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkConfig {
    /// Trunk name: the file stem.
    pub name: String,
    /// Whether the trunk is used; disabled trunks are skipped by [`super::Config::load`].
    pub enabled: bool,
    /// Carrier host name or IP (IPv6 without brackets).
    pub host: String,
    /// Carrier port.
    pub port: u16,
    /// Transport used towards the carrier.
    pub transport: Transport,
    /// Proxy every request is sent through instead of `host`, as written (`sip:` URI or host[:port]).
    pub outbound_proxy: Option<String>,
    /// Digest credentials the carrier challenges us for.
    pub auth: Option<TrunkAuth>,
    /// Registration towards the carrier.
    pub register: RegisterConfig,
    /// Networks the carrier signals from; used to recognise inbound calls from this trunk.
    pub allow_ips: Vec<IpNet>,
    /// Default caller ID for outbound calls, in E.164.
    pub from_number: Option<String>,
    /// How dialed numbers are written in the Request-URI.
    pub number_format: NumberFormat,
    /// Country calling code (digits, no `+`) stripped for `number_format = "national"`.
    pub country_code: Option<String>,
    /// Offered codecs, most preferred first.
    pub codecs: Vec<Codec>,
    /// SRTP (SDES) policy.
    pub srtp: SrtpMode,
    /// Seconds between OPTIONS pings to the carrier; 0 disables.
    pub options_keepalive_s: u32,
    /// Domain used in From/To/Request-URI (IPv6 in brackets); defaults to `host`.
    pub domain: String,
    warnings: Vec<String>,
}

/// `[auth]`: digest credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkAuth {
    /// Digest username.
    pub username: String,
    /// Digest password.
    pub password: Secret,
    /// Realm to answer; `None` accepts whatever realm the carrier challenges with.
    pub realm: Option<String>,
}

/// `[register]`: outbound REGISTER settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterConfig {
    /// Whether to register with the carrier.
    pub enabled: bool,
    /// Requested registration lifetime in seconds.
    pub expires_s: u32,
    /// User part of the registered Contact (defaults to the auth username, else the trunk name).
    pub contact_user: String,
}

/// How a dialed E.164 number is written in the Request-URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberFormat {
    /// `+14155550100`.
    E164,
    /// `4155550100`: the country code of `country_code` removed.
    National,
    /// `14155550100`.
    NoPlus,
}

/// A codec name allowed in `codecs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// Opus.
    Opus,
    /// G.722.
    G722,
    /// RFC 4733 DTMF events.
    TelephoneEvent,
}

/// SRTP policy for a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpMode {
    /// Plain RTP only.
    Off,
    /// Offer SRTP, accept RTP.
    Optional,
    /// Require SRTP; calls without it fail.
    Mandatory,
}

impl SrtpMode {
    /// `off`, `optional` or `mandatory`.
    pub fn parse(s: &str) -> Option<SrtpMode> {
        match s {
            "off" => Some(SrtpMode::Off),
            "optional" => Some(SrtpMode::Optional),
            "mandatory" => Some(SrtpMode::Mandatory),
            _ => None,
        }
    }
}

impl TrunkConfig {
    /// Loads `path`, expanding `${VAR}` from the process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// Loads `path` (disabled or not), expanding `${VAR}` through `env`.
    pub fn load_with_env(path: impl AsRef<Path>, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let (src, file, name) = read(path.as_ref())?;
        Self::from_toml_str(&src, &file, &name, env)
    }

    /// Parses TOML text for trunk `name`; `file` names it in errors.
    pub fn from_toml_str(
        src: &str,
        file: &str,
        name: &str,
        env: EnvLookup<'_>,
    ) -> Result<Self, ConfigError> {
        let raw: RawTrunk = parse_document(src, file)?;
        build(raw, &mut Ctx::new(file, env), name)
    }

    /// Non-fatal problems found while loading, each as `file:key: message`.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    /// Whether `ip` is in `allow_ips` (an empty list allows nothing).
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.allow_ips.iter().any(|net| net.contains(ip))
    }

    /// `host:port` as used in a SIP URI (IPv6 in brackets).
    pub fn host_port(&self) -> String {
        format!("{}:{}", uri_host(&self.host), self.port)
    }

    /// Writes an E.164 number (`+...`) in this trunk's `number_format`; other input is returned as is.
    ///
    /// For `national`, numbers outside `country_code` fall back to digits without `+`,
    /// since the international dialing prefix differs per carrier.
    pub fn format_number(&self, number: &str) -> String {
        let Some(digits) = number.strip_prefix('+') else {
            return number.to_owned();
        };
        match self.number_format {
            NumberFormat::E164 => number.to_owned(),
            NumberFormat::NoPlus => digits.to_owned(),
            NumberFormat::National => {
                let cc = self.country_code.as_deref().unwrap_or_default();
                match digits.strip_prefix(cc) {
                    Some(national) if !cc.is_empty() => national.to_owned(),
                    _ => digits.to_owned(),
                }
            }
        }
    }
}

impl Codec {
    /// All codecs, in the order listed in error messages.
    pub const ALL: [Codec; 5] = [
        Codec::Pcmu,
        Codec::Pcma,
        Codec::Opus,
        Codec::G722,
        Codec::TelephoneEvent,
    ];

    /// SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
            Self::Opus => "opus",
            Self::G722 => "G722",
            Self::TelephoneEvent => "telephone-event",
        }
    }

    /// Parses an SDP encoding name, case-insensitively as RFC 4566 requires.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
    }

    /// Whether this carries audio (everything but `telephone-event`).
    pub fn is_audio(self) -> bool {
        self != Self::TelephoneEvent
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Reads a trunk file; the name is the file stem.
fn read(path: &Path) -> Result<(String, String, String), ConfigError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        file: file.clone(),
        source,
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((src, file, name))
}

/// Loads a trunk for [`super::Config`]: `Ok(None)` for `enabled = false`.
///
/// A disabled trunk is still checked for syntax and unknown keys, but its
/// `${VAR}`s are not expanded, so shipped templates need no environment.
pub(super) fn load_if_enabled(
    path: &Path,
    env: EnvLookup<'_>,
) -> Result<Option<TrunkConfig>, ConfigError> {
    let (src, file, name) = read(path)?;
    let raw: RawTrunk = parse_document(&src, &file)?;
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    build(raw, &mut Ctx::new(file, env), &name).map(Some)
}

// ---------------------------------------------------------------------------
// Raw file shape; all optional so validation can name missing keys.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrunk {
    enabled: Option<bool>,
    host: Option<String>,
    port: Option<i64>,
    transport: Option<String>,
    outbound_proxy: Option<String>,
    auth: Option<RawAuth>,
    register: Option<RawRegister>,
    allow_ips: Option<Vec<String>>,
    from_number: Option<String>,
    number_format: Option<String>,
    country_code: Option<String>,
    codecs: Option<Vec<String>>,
    srtp: Option<String>,
    options_keepalive_s: Option<i64>,
    domain: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    username: Option<String>,
    password: Option<String>,
    realm: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRegister {
    enabled: Option<bool>,
    expires_s: Option<i64>,
    contact_user: Option<String>,
}

// ---------------------------------------------------------------------------
// Validation.

const DEFAULT_CODECS: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::TelephoneEvent];

fn build(raw: RawTrunk, ctx: &mut Ctx<'_>, name: &str) -> Result<TrunkConfig, ConfigError> {
    let transport = match ctx.opt_str("transport", raw.transport.as_deref())? {
        None => Transport::Udp,
        Some(t) => Transport::parse(&t).ok_or_else(|| {
            ctx.err(
                "transport",
                format!("unknown transport {t:?} (expected one of: udp, tcp, tls)"),
            )
        })?,
    };

    let host_raw = ctx.req_str("host", raw.host.as_deref())?;
    if host_raw.starts_with("sip:") || host_raw.starts_with("sips:") {
        return Err(ctx.err(
            "host",
            format!("must be a host name or IP, not a URI (drop the scheme), got {host_raw:?}"),
        ));
    }
    let (host, host_port) = split_host_port(&host_raw).map_err(|r| ctx.err("host", r))?;
    let port = match (raw.port, host_port) {
        (None, Some(p)) => p,
        (None, None) => transport.default_port(),
        (Some(_), hp) => {
            let p: u16 = ctx.int("port", raw.port, 0, 1, 65535)?;
            if hp.is_some_and(|hp| hp != p) {
                return Err(ctx.err(
                    "port",
                    format!("{p} conflicts with the port in host = {host_raw:?}"),
                ));
            }
            p
        }
    };

    let outbound_proxy = match ctx.opt_str("outbound_proxy", raw.outbound_proxy.as_deref())? {
        None => None,
        Some(p) => {
            check_proxy(&p).map_err(|r| ctx.err("outbound_proxy", r))?;
            Some(p)
        }
    };

    let auth = match &raw.auth {
        None => None,
        Some(a) => Some(TrunkAuth {
            username: ctx.req_str("auth.username", a.username.as_deref())?,
            password: Secret::new(ctx.req_str("auth.password", a.password.as_deref())?),
            realm: ctx.opt_str("auth.realm", a.realm.as_deref())?,
        }),
    };

    let reg = raw.register.unwrap_or_default();
    let register_enabled = reg.enabled.unwrap_or(false);
    let expires_s: u32 = ctx.int("register.expires_s", reg.expires_s, 3600, 60, 86_400)?;
    let contact_user = match ctx.opt_str("register.contact_user", reg.contact_user.as_deref())? {
        Some(u) => u,
        None => auth
            .as_ref()
            .map_or_else(|| name.to_owned(), |a| a.username.clone()),
    };
    if contact_user
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '@' || c == ':')
    {
        return Err(ctx.err(
            "register.contact_user",
            "must not contain whitespace, '@' or ':'",
        ));
    }
    if register_enabled && auth.is_none() {
        ctx.warn(
            "register.enabled",
            "registering without [auth]: the registrar must accept unauthenticated REGISTER",
        );
    }
    let register = RegisterConfig {
        enabled: register_enabled,
        expires_s,
        contact_user,
    };

    let mut allow_ips = Vec::new();
    for (i, s) in raw.allow_ips.iter().flatten().enumerate() {
        let key = format!("allow_ips[{i}]");
        let s = ctx.req_str(&key, Some(s))?;
        allow_ips.push(
            s.trim()
                .parse::<IpNet>()
                .map_err(|e| ctx.err(&key, e.to_string()))?,
        );
    }

    let from_number = ctx.opt_str("from_number", raw.from_number.as_deref())?;
    if let Some(n) = &from_number
        && !is_e164(n)
    {
        return Err(ctx.err(
            "from_number",
            format!("must be E.164 (+ followed by 8-15 digits), got {n:?}"),
        ));
    }

    let number_format = match ctx
        .opt_str("number_format", raw.number_format.as_deref())?
        .as_deref()
    {
        None | Some("e164") => NumberFormat::E164,
        Some("national") => NumberFormat::National,
        Some("no_plus") => NumberFormat::NoPlus,
        Some(other) => {
            return Err(ctx.err(
                "number_format",
                format!(
                    "unknown number format {other:?} (expected one of: e164, national, no_plus)"
                ),
            ));
        }
    };
    let country_code = match ctx.opt_str("country_code", raw.country_code.as_deref())? {
        None => None,
        Some(cc) => {
            let digits = cc.strip_prefix('+').unwrap_or(&cc);
            if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ctx.err(
                    "country_code",
                    format!("must be 1-3 digits (e.g. \"1\" or \"44\"), got {cc:?}"),
                ));
            }
            Some(digits.to_owned())
        }
    };
    if number_format == NumberFormat::National && country_code.is_none() {
        return Err(ctx.err(
            "country_code",
            "is required when number_format = \"national\"",
        ));
    }

    let codecs = build_codecs(raw.codecs.as_deref(), ctx)?;

    let srtp = match ctx.opt_str("srtp", raw.srtp.as_deref())?.as_deref() {
        None | Some("off") => SrtpMode::Off,
        Some("optional") => SrtpMode::Optional,
        Some("mandatory") => SrtpMode::Mandatory,
        Some(other) => {
            return Err(ctx.err(
                "srtp",
                format!("unknown srtp mode {other:?} (expected one of: off, optional, mandatory)"),
            ));
        }
    };
    if srtp != SrtpMode::Off && transport != Transport::Tls {
        // SDES puts the SRTP keys in the SDP, readable by anyone on the path without TLS.
        ctx.warn(
            "srtp",
            format!("SRTP keys travel in clear text over {transport}; use transport = \"tls\""),
        );
    }

    let options_keepalive_s: u32 =
        ctx.int("options_keepalive_s", raw.options_keepalive_s, 0, 0, 86_400)?;
    if (1..5).contains(&options_keepalive_s) {
        return Err(ctx.err(
            "options_keepalive_s",
            format!("must be 0 (off) or >= 5, got {options_keepalive_s}"),
        ));
    }

    let domain = match ctx.opt_str("domain", raw.domain.as_deref())? {
        None => uri_host(&host),
        Some(d) => {
            if !is_valid_host(&d) {
                return Err(ctx.err(
                    "domain",
                    format!("must be a host name or IP address without port, got {d:?}"),
                ));
            }
            uri_host(&d)
        }
    };

    Ok(TrunkConfig {
        name: name.to_owned(),
        enabled: raw.enabled.unwrap_or(true),
        host,
        port,
        transport,
        outbound_proxy,
        auth,
        register,
        allow_ips,
        from_number,
        number_format,
        country_code,
        codecs,
        srtp,
        options_keepalive_s,
        domain,
        warnings: std::mem::take(&mut ctx.warnings),
    })
}

fn build_codecs(raw: Option<&[String]>, ctx: &Ctx<'_>) -> Result<Vec<Codec>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_CODECS.to_vec());
    };
    let mut codecs = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let key = format!("codecs[{i}]");
        let s = ctx.req_str(&key, Some(s))?;
        let codec = Codec::parse(&s).ok_or_else(|| {
            let names: Vec<_> = Codec::ALL.iter().map(|c| c.name()).collect();
            ctx.err(
                &key,
                format!(
                    "unknown codec {s:?} (expected one of: {})",
                    names.join(", ")
                ),
            )
        })?;
        if codecs.contains(&codec) {
            return Err(ctx.err(&key, format!("duplicate codec {:?}", codec.name())));
        }
        codecs.push(codec);
    }
    if !codecs.iter().any(|c| c.is_audio()) {
        return Err(ctx.err("codecs", "must include at least one audio codec"));
    }
    Ok(codecs)
}

/// Accepts `sip:`/`sips:` URIs (with optional `;params`) or plain `host[:port]`.
fn check_proxy(p: &str) -> Result<(), String> {
    let rest = p
        .strip_prefix("sips:")
        .or_else(|| p.strip_prefix("sip:"))
        .unwrap_or(p);
    let hostport = rest.split(';').next().unwrap_or_default();
    split_host_port(hostport).map(|_| ()).map_err(|_| {
        format!(
            "must be a SIP URI or host[:port], e.g. \"sip:proxy.example.com:5060;lr\", got {p:?}"
        )
    })
}

fn is_e164(n: &str) -> bool {
    n.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "sip-config/trunks/acme.toml";

    fn env(name: &str) -> Option<String> {
        match name {
            "ACME_PW" => Some("acme-top-secret".into()),
            "ACME_USER" => Some("acme-user".into()),
            _ => None,
        }
    }

    fn parse(src: &str) -> Result<TrunkConfig, ConfigError> {
        TrunkConfig::from_toml_str(src, FILE, "acme", &env)
    }

    fn err(src: &str) -> String {
        parse(src).unwrap_err().to_string()
    }

    #[test]
    fn minimal_trunk_defaults() {
        let t = parse("host = 'sip.acme.example'\n").unwrap();
        assert_eq!(t.name, "acme");
        assert!(t.enabled);
        assert_eq!(
            (t.host.as_str(), t.port, t.transport),
            ("sip.acme.example", 5060, Transport::Udp)
        );
        assert_eq!(t.domain, "sip.acme.example");
        assert_eq!(t.host_port(), "sip.acme.example:5060");
        assert_eq!(t.outbound_proxy, None);
        assert_eq!(t.auth, None);
        assert_eq!(
            t.register,
            RegisterConfig {
                enabled: false,
                expires_s: 3600,
                contact_user: "acme".into()
            }
        );
        assert!(t.allow_ips.is_empty());
        assert_eq!(t.number_format, NumberFormat::E164);
        assert_eq!(t.codecs, DEFAULT_CODECS.to_vec());
        assert_eq!(t.srtp, SrtpMode::Off);
        assert_eq!(t.options_keepalive_s, 0);
        assert!(t.warnings().is_empty());
    }

    #[test]
    fn full_trunk() {
        let t = parse(
            r#"
            host = "[2001:db8::10]:5070"
            transport = "tls"
            outbound_proxy = "sip:edge.acme.example:5061;lr"
            allow_ips = ["192.0.2.0/24", "2001:db8::/48", "198.51.100.7"]
            from_number = "+14155550100"
            number_format = "national"
            country_code = "+1"
            codecs = ["opus", "pcmu", "telephone-event"]
            srtp = "mandatory"
            options_keepalive_s = 30
            domain = "acme.example"

            [auth]
            username = "${ACME_USER}"
            password = "${ACME_PW}"
            realm = "acme.example"

            [register]
            enabled = true
            expires_s = 600
            "#,
        )
        .unwrap();
        assert_eq!((t.host.as_str(), t.port), ("2001:db8::10", 5070));
        assert_eq!(t.host_port(), "[2001:db8::10]:5070");
        assert_eq!(t.transport, Transport::Tls);
        assert_eq!(t.domain, "acme.example");
        let auth = t.auth.as_ref().unwrap();
        assert_eq!(auth.username, "acme-user");
        assert_eq!(auth.password.expose(), "acme-top-secret");
        assert_eq!(auth.realm.as_deref(), Some("acme.example"));
        assert_eq!(t.register.contact_user, "acme-user");
        assert_eq!((t.register.enabled, t.register.expires_s), (true, 600));
        assert_eq!(
            t.codecs,
            vec![Codec::Opus, Codec::Pcmu, Codec::TelephoneEvent]
        );
        assert_eq!(t.country_code.as_deref(), Some("1"));
        assert!(t.allows_ip("192.0.2.200".parse().unwrap()));
        assert!(t.allows_ip("2001:db8:0:1::1".parse().unwrap()));
        assert!(t.allows_ip("198.51.100.7".parse().unwrap()));
        assert!(!t.allows_ip("198.51.100.8".parse().unwrap()));
        assert!(t.warnings().is_empty());
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("acme-top-secret"), "{dbg}");
    }

    #[test]
    fn tls_default_port_and_domain_for_ipv6() {
        let t = parse("host = '2001:db8::1'\ntransport = 'tls'\n").unwrap();
        assert_eq!(t.port, 5061);
        assert_eq!(t.domain, "[2001:db8::1]");
    }

    #[test]
    fn number_formats() {
        let mk = |fmt: &str| {
            parse(&format!(
                "host='h'\nnumber_format='{fmt}'\ncountry_code='44'\n"
            ))
            .unwrap()
        };
        assert_eq!(mk("e164").format_number("+442071234567"), "+442071234567");
        assert_eq!(mk("no_plus").format_number("+442071234567"), "442071234567");
        assert_eq!(mk("national").format_number("+442071234567"), "2071234567");
        assert_eq!(mk("national").format_number("+14155550100"), "14155550100");
        assert_eq!(mk("no_plus").format_number("100"), "100");
    }

    #[test]
    fn register_expires_min() {
        assert_eq!(
            TrunkConfig::from_toml_str(
                "host='h'\n[register]\nenabled=true\nexpires_s=10\n",
                "sip-config/trunks/twilio.toml",
                "twilio",
                &env
            )
            .unwrap_err()
            .to_string(),
            "sip-config/trunks/twilio.toml:register.expires_s: must be >= 60, got 10"
        );
    }

    #[test]
    fn validation_errors() {
        let cases: &[(&str, &str)] = &[
            ("port = 5060\n", "host: is required"),
            (
                "host = 'sip:x.pstn.twilio.com'\n",
                "host: must be a host name or IP, not a URI (drop the scheme), got \"sip:x.pstn.twilio.com\"",
            ),
            (
                "host = 'bad host'\n",
                "host: invalid host \"bad host\" (expected a host name or IP, optionally with :port)",
            ),
            (
                "host = 'h:5080'\nport = 5090\n",
                "port: 5090 conflicts with the port in host = \"h:5080\"",
            ),
            ("host = 'h'\nport = 0\n", "port: must be >= 1, got 0"),
            (
                "host = 'h'\ntransport = 'ws'\n",
                "transport: unknown transport \"ws\" (expected one of: udp, tcp, tls)",
            ),
            (
                "host = 'h'\noutbound_proxy = 'sip:'\n",
                "outbound_proxy: must be a SIP URI or host[:port], e.g. \"sip:proxy.example.com:5060;lr\", got \"sip:\"",
            ),
            (
                "host = 'h'\n[auth]\nusername = 'u'\n",
                "auth.password: is required",
            ),
            (
                "host = 'h'\n[auth]\npassword = 'p'\n",
                "auth.username: is required",
            ),
            (
                "host = 'h'\n[auth]\nusername = 'u'\npassword = '${NOPE_PW}'\n",
                "auth.password: environment variable NOPE_PW is not set",
            ),
            (
                "host = 'h'\nallow_ips = ['10.0.0.0/8', '10.0.0.0/33']\n",
                "allow_ips[1]: invalid CIDR \"10.0.0.0/33\": prefix length /33 is longer than 32 bits",
            ),
            (
                "host = 'h'\nallow_ips = ['twilio.com']\n",
                "allow_ips[0]: invalid IP address or CIDR \"twilio.com\"",
            ),
            (
                "host = 'h'\nfrom_number = '4155550100'\n",
                "from_number: must be E.164 (+ followed by 8-15 digits), got \"4155550100\"",
            ),
            (
                "host = 'h'\nfrom_number = '+1234567'\n",
                "from_number: must be E.164 (+ followed by 8-15 digits), got \"+1234567\"",
            ),
            (
                "host = 'h'\nnumber_format = 'intl'\n",
                "number_format: unknown number format \"intl\" (expected one of: e164, national, no_plus)",
            ),
            (
                "host = 'h'\nnumber_format = 'national'\n",
                "country_code: is required when number_format = \"national\"",
            ),
            (
                "host = 'h'\ncountry_code = '1234'\n",
                "country_code: must be 1-3 digits (e.g. \"1\" or \"44\"), got \"1234\"",
            ),
            (
                "host = 'h'\ncodecs = ['PCMU', 'G729']\n",
                "codecs[1]: unknown codec \"G729\" (expected one of: PCMU, PCMA, opus, G722, telephone-event)",
            ),
            (
                "host = 'h'\ncodecs = ['PCMU', 'pcmu']\n",
                "codecs[1]: duplicate codec \"PCMU\"",
            ),
            (
                "host = 'h'\ncodecs = ['telephone-event']\n",
                "codecs: must include at least one audio codec",
            ),
            (
                "host = 'h'\ncodecs = []\n",
                "codecs: must include at least one audio codec",
            ),
            (
                "host = 'h'\nsrtp = 'yes'\n",
                "srtp: unknown srtp mode \"yes\" (expected one of: off, optional, mandatory)",
            ),
            (
                "host = 'h'\noptions_keepalive_s = 2\n",
                "options_keepalive_s: must be 0 (off) or >= 5, got 2",
            ),
            (
                "host = 'h'\ndomain = 'a b'\n",
                "domain: must be a host name or IP address without port, got \"a b\"",
            ),
            (
                "host = 'h'\n[register]\ncontact_user = 'a@b'\n",
                "register.contact_user: must not contain whitespace, '@' or ':'",
            ),
            (
                "host = 'h'\n[register]\nexpire_s = 60\n",
                "register.expire_s: unknown key `expire_s`, expected one of `enabled`, `expires_s`, `contact_user`",
            ),
            (
                "host = 'h'\n[auth]\nusername = 'u'\npassword = 42\n",
                "auth.password: must be a string",
            ),
            (
                "host = 'h'\nenabled = 'yes'\n",
                "enabled: invalid type: string \"yes\", expected a boolean",
            ),
        ];
        for (src, want) in cases {
            assert_eq!(err(src), format!("{FILE}:{want}"), "for {src:?}");
        }
    }

    #[test]
    fn warnings_for_risky_setups() {
        let t = parse("host='h'\nsrtp='optional'\n[register]\nenabled=true\n").unwrap();
        assert_eq!(
            t.warnings(),
            vec![
                format!(
                    "{FILE}:register.enabled: registering without [auth]: the registrar must accept unauthenticated REGISTER"
                ),
                format!(
                    "{FILE}:srtp: SRTP keys travel in clear text over udp; use transport = \"tls\""
                ),
            ]
        );
    }

    #[test]
    fn proxy_forms() {
        for ok in [
            "sip:p.example.com",
            "sips:p.example.com:5061;transport=tls",
            "p.example.com:5070",
            "10.0.0.1",
            "sip:[2001:db8::1]:5060;lr",
        ] {
            assert!(check_proxy(ok).is_ok(), "{ok}");
        }
        assert!(check_proxy("http://x").is_err());
    }

    #[test]
    fn codec_names() {
        assert_eq!(Codec::parse("OPUS"), Some(Codec::Opus));
        assert_eq!(Codec::parse("Telephone-Event"), Some(Codec::TelephoneEvent));
        assert_eq!(Codec::G722.to_string(), "G722");
        assert!(!Codec::TelephoneEvent.is_audio());
    }

    #[test]
    fn disabled_trunk_skips_env_expansion() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("off.toml");
        std::fs::write(
            &path,
            "enabled = false\nhost = 'h'\n[auth]\nusername = 'u'\npassword = '${UNSET_PW}'\n",
        )
        .unwrap();
        assert!(load_if_enabled(&path, &env).unwrap().is_none());
        // Loading it directly validates everything, including the env reference.
        let e = TrunkConfig::load_with_env(&path, &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("off.toml:auth.password: environment variable UNSET_PW is not set"),
            "{e}"
        );
        // Unknown keys are still reported for disabled trunks.
        std::fs::write(&path, "enabled = false\nhots = 'h'\n").unwrap();
        let e = load_if_enabled(&path, &env).unwrap_err().to_string();
        assert!(e.contains("off.toml:hots: unknown key `hots`"), "{e}");
    }
}
