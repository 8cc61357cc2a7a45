//! `leadscaller.toml`: listeners, timers, RTP ports, HTTP, logging, routes and users.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::env::{Ctx, EnvLookup, Secret};
use super::error::ConfigError;
use super::net::{Transport, is_valid_host};
use super::parse::parse_document;

/// Default SIP `User-Agent`/`Server` header value.
pub const DEFAULT_USER_AGENT: &str = concat!("leadscaller/", env!("CARGO_PKG_VERSION"));

/// Server-wide settings loaded from `leadscaller.toml`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `[sip]`: signalling listeners, NAT address and protocol timers.
    pub sip: SipConfig,
    /// `[rtp]`: media port range and inactivity timeout.
    pub rtp: RtpConfig,
    /// `[http]`: control API listener.
    pub http: HttpConfig,
    /// `[log]`: log format and filter.
    pub log: LogConfig,
    /// Directory for recordings and other state (relative to the working directory).
    pub data_dir: PathBuf,
    /// `[recording]`: whether every call is recorded, where, and in which format.
    pub recording: RecordingConfig,
    /// `[streams]`: the secret that signs WebSocket media-stream tokens (none: streams
    /// are accepted without a token, for development).
    pub stream_secret: Option<Secret>,
    /// `[streams] flow`: streams run the scripted agent on this flow instead of `echo`.
    pub stream_flow: Option<PathBuf>,
    /// `[streams] barge_in_ms`: the agent's barge-in minimum on streams.
    pub stream_barge_in_ms: u32,
    /// `[streams] ping_interval_s`: WebSocket keep-alive ping period (server and fork client).
    pub stream_ping_interval: Duration,
    /// `[streams] max_buffered_s`: most outbound audio queued ahead of real time per stream.
    pub stream_max_buffered: Duration,
    /// `[streams] fork_ca_file`: extra PEM root(s) the fork client trusts for `wss://`.
    pub fork_ca_file: Option<PathBuf>,
    /// Database connection URL.
    pub database_url: String,
    /// The account that owns the records of calls taken by the SIP routes (created at start).
    pub account: String,
    /// `[privacy]`: how often retention and closure purges run, the erasure hash salt.
    pub privacy: PrivacyConfig,
    /// Inbound call routes, evaluated in order.
    pub routes: Vec<Route>,
    /// Users allowed to place calls to us with digest auth.
    pub users: Vec<User>,
    /// Directory holding one `<name>.toml` per trunk, resolved against the config file's directory.
    pub trunks_dir: PathBuf,
    warnings: Vec<String>,
}

/// `[sip]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipConfig {
    /// Sockets to listen on; TLS entries without a certificate are already removed.
    pub listen: Vec<Listener>,
    /// PEM certificate chain for TLS listeners (resolved against the config file's directory).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS listeners (resolved against the config file's directory).
    pub tls_key: Option<PathBuf>,
    /// Address advertised in Via/Contact/SDP instead of the socket address (NAT); IPv6 without brackets.
    pub public_addr: Option<String>,
    /// `User-Agent`/`Server` header value.
    pub user_agent: String,
    /// RFC 3261 T1 (RTT estimate) in milliseconds.
    pub t1_ms: u64,
    /// RFC 3261 T2 (maximum retransmit interval) in milliseconds.
    pub t2_ms: u64,
    /// RFC 3261 T4 (maximum time a message stays in the network) in milliseconds.
    pub t4_ms: u64,
    /// Largest SIP message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// RFC 4028 session refresh interval we request, in seconds.
    pub session_expires_s: u32,
    /// RFC 4028 smallest session interval we accept, in seconds.
    pub min_se_s: u32,
}

/// One SIP listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Listener {
    /// Transport protocol.
    pub transport: Transport,
    /// Local address and port to bind.
    pub addr: SocketAddr,
}

/// `[rtp]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpConfig {
    /// First RTP port (even; RTCP uses the next odd port).
    pub port_min: u16,
    /// Last port of the range (inclusive).
    pub port_max: u16,
    /// Hang up after this many seconds without inbound RTP; 0 disables.
    pub media_timeout_s: u32,
    /// Codecs we offer and accept, in preference order (`PCMU`, `PCMA`, `opus`).
    pub codecs: Vec<String>,
    /// Jitter buffer delay bounds in ms; the buffer adapts between them.
    pub jitter_min_ms: u32,
    pub jitter_max_ms: u32,
    /// Send zeros when nothing is queued (keeps NAT bindings and RTP timing); `false`
    /// sends nothing between talkspurts.
    pub comfort_silence: bool,
    /// Look for DTMF tones in the caller's audio (G.711 legs).
    pub inband_dtmf: bool,
    /// SDES-SRTP for calls that do not come from a trunk (trunks have their own `srtp`).
    pub srtp: super::trunk::SrtpMode,
}

/// `[privacy]` settings.
#[derive(Debug, Clone)]
pub struct PrivacyConfig {
    /// `purge_interval_s`: seconds between two runs of the retention and closure purges.
    pub purge_interval_s: u32,
    /// `suppression_salt`: the per-server secret that salts the hashes of erased numbers
    /// (none: a random salt in `<data_dir>/suppression.salt`, created on first start).
    pub suppression_salt: Option<Secret>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            purge_interval_s: 3600,
            suppression_salt: None,
        }
    }
}

/// `[recording]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingConfig {
    /// Record every answered call (caller left, our side right).
    pub enabled: bool,
    /// Where recordings are written (resolved against the config file's directory).
    pub dir: PathBuf,
    /// `wav` (PCM16) or `ogg` (Ogg/Opus).
    pub format: RecordingFileFormat,
    /// `master_keys_env`: the environment variable holding the master key ring.
    pub master_keys_env: Option<String>,
    /// `master_key_file`: the file holding the master key ring (resolved against the config
    /// file's directory).
    pub master_key_file: Option<PathBuf>,
}

impl RecordingConfig {
    /// The key file created on first start when neither `master_keys_env` nor
    /// `master_key_file` is set: `master.key` next to the recordings directory.
    pub fn default_key_file(&self) -> PathBuf {
        self.dir.parent().unwrap_or(&self.dir).join("master.key")
    }
}

/// The file format of recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingFileFormat {
    Wav,
    OggOpus,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            enabled: false,
            dir: PathBuf::from("recordings"),
            format: RecordingFileFormat::Wav,
            master_keys_env: None,
            master_key_file: None,
        }
    }
}

/// `[http]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Address of the HTTP control API.
    pub listen: SocketAddr,
    /// PEM certificate chain: with `tls_key`, the listener serves HTTPS and `wss://`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Bearer token for `GET /metrics` (Prometheus); none: `/metrics` is not served.
    pub metrics_token: Option<Secret>,
}

/// `[log]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// Level or `tracing` filter directives, e.g. `info` or `info,leadscaller::sip=debug`.
    pub level: String,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// One inbound route from `[[routes]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Which Request-URI user parts this route accepts.
    pub match_user: UserPattern,
    /// What to do with a matching call.
    pub app: App,
    /// Restricts the route to calls arriving from this trunk.
    pub trunk: Option<String>,
    /// Ring (180, or 183 with early media) this long before answering; 0 answers at once.
    pub answer_after_ms: u32,
    /// While ringing, send 183 Session Progress with SDP and run the app's media early.
    pub early_media: bool,
}

/// A Request-URI user pattern: `*`, `prefix*` or an exact (case-sensitive) user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserPattern {
    /// `*`: any user.
    Any,
    /// `abc*`: users starting with `abc`.
    Prefix(String),
    /// `abc`: exactly `abc`.
    Exact(String),
}

/// The application that handles a routed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum App {
    /// Answer and echo the caller's audio back.
    Echo,
    /// Answer and play a prompt file (WAV, FLAC, MP3, Ogg/Vorbis), then hang up or repeat.
    Play {
        /// The prompt, resolved against the config file's directory.
        file: PathBuf,
        /// Start again at the end instead of hanging up.
        repeat: bool,
    },
    /// Answer and record the caller until `#`, silence after speech, or the time limit.
    Record {
        /// Longest recording.
        max_duration_s: u32,
        /// Silence (after the caller spoke) that ends the recording.
        silence_ms: u32,
    },
    /// Reject with a final SIP status code.
    Reject {
        /// SIP status code (400-699).
        code: u16,
    },
    /// Answer, echo, then blind-transfer the caller with REFER (RFC 3515) after a delay.
    Transfer {
        /// The Refer-To target (sip:, sips: or tel: URI).
        target: String,
        /// Milliseconds after answer before the REFER is sent.
        after_ms: u32,
        /// REFER (default) or a bridged outbound leg.
        method: crate::agent::transfer::TransferMethod,
        /// SDES-SRTP on a bridged leg (`None`: the trunk's, else off).
        srtp: Option<crate::config::SrtpMode>,
    },
    /// Answer and fork the call to a customer's bot over a WebSocket speaking the Twilio
    /// Media Streams protocol (we are the Twilio side); the caller hears the bot.
    Fork {
        /// The bot's WebSocket URL (`ws://` or `wss://`).
        url: String,
        /// How long to keep reconnecting after the socket drops before hanging up.
        reconnect_window_s: u32,
    },
    /// Answer and let the agent talk with the caller: a scripted flow or an LLM conversation,
    /// as its agent file says (`docs/agent.md`).
    Agent {
        /// The agent file (resolved against the config file's directory; validated at start).
        flow: PathBuf,
        /// Caller speech over the agent's audio for this long interrupts it (0: at once).
        barge_in_ms: u32,
    },
}

/// A user allowed to call in with digest authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Digest username.
    pub username: String,
    /// Digest password.
    pub password: Secret,
}

impl ServerConfig {
    /// Loads `path`, expanding `${VAR}` from the process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// Loads `path`, expanding `${VAR}` through `env`.
    pub fn load_with_env(path: impl AsRef<Path>, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        let base_dir = path.parent().unwrap_or(Path::new(""));
        Self::from_toml_str(&src, &file, base_dir, env)
    }

    /// Parses TOML text; `file` names it in errors and relative paths resolve against `base_dir`.
    pub fn from_toml_str(
        src: &str,
        file: &str,
        base_dir: &Path,
        env: EnvLookup<'_>,
    ) -> Result<Self, ConfigError> {
        let raw: RawServer = parse_document(src, file)?;
        let mut ctx = Ctx::new(file, env);
        build(raw, &mut ctx, base_dir)
    }

    /// Non-fatal problems found while loading, each as `file:key: message`.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    /// The first route matching `user` (and `trunk`, for trunk-restricted routes).
    pub fn route_for(&self, user: &str, trunk: Option<&str>) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(user, trunk))
    }

    /// The configured user named `username`.
    pub fn user(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }

    /// Moves every UDP and TCP listener to `port` (TLS keeps its own port), e.g. from a CLI flag.
    pub fn override_sip_port(&mut self, port: u16) {
        for l in &mut self.sip.listen {
            if l.transport != Transport::Tls {
                l.addr.set_port(port);
            }
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            sip: SipConfig::default(),
            rtp: RtpConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            data_dir: PathBuf::from("./data"),
            recording: RecordingConfig::default(),
            stream_secret: None,
            stream_flow: None,
            stream_barge_in_ms: 0,
            stream_ping_interval: Duration::from_secs(20),
            stream_max_buffered: Duration::from_secs(600),
            fork_ca_file: None,
            database_url: "sqlite://./data/leadscaller.db".to_owned(),
            account: "default".to_owned(),
            privacy: PrivacyConfig::default(),
            routes: Vec::new(),
            users: Vec::new(),
            trunks_dir: PathBuf::from("trunks"),
            warnings: Vec::new(),
        }
    }
}

impl SipConfig {
    /// T1 as a duration.
    pub fn t1(&self) -> Duration {
        Duration::from_millis(self.t1_ms)
    }

    /// T2 as a duration.
    pub fn t2(&self) -> Duration {
        Duration::from_millis(self.t2_ms)
    }

    /// T4 as a duration.
    pub fn t4(&self) -> Duration {
        Duration::from_millis(self.t4_ms)
    }
}

impl Default for SipConfig {
    /// UDP and TCP on 0.0.0.0:5060; the default TLS listener needs a certificate, so it is absent.
    fn default() -> Self {
        Self {
            listen: default_listeners()
                .into_iter()
                .filter(|l| l.transport != Transport::Tls)
                .collect(),
            tls_cert: None,
            tls_key: None,
            public_addr: None,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            max_message_bytes: 65535,
            session_expires_s: 1800,
            min_se_s: 90,
        }
    }
}

impl RtpConfig {
    /// Inactivity timeout, or `None` when disabled.
    pub fn media_timeout(&self) -> Option<Duration> {
        (self.media_timeout_s > 0).then(|| Duration::from_secs(self.media_timeout_s.into()))
    }
}

impl Default for RtpConfig {
    fn default() -> Self {
        Self {
            port_min: 10000,
            port_max: 20000,
            media_timeout_s: 30,
            codecs: vec!["PCMU".into(), "PCMA".into()],
            jitter_min_ms: 20,
            jitter_max_ms: 200,
            comfort_silence: true,
            inband_dtmf: true,
            srtp: super::trunk::SrtpMode::Optional,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tls_cert: None,
            tls_key: None,
            metrics_token: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Route {
    /// Whether this route accepts `user` arriving from `trunk` (`None` = not from a trunk).
    pub fn matches(&self, user: &str, trunk: Option<&str>) -> bool {
        let trunk_ok = match &self.trunk {
            None => true,
            Some(t) => trunk == Some(t.as_str()),
        };
        trunk_ok && self.match_user.matches(user)
    }

    /// Whether every call this route could match is already taken by `earlier`.
    fn shadowed_by(&self, earlier: &Route) -> bool {
        let trunk_covered = earlier.trunk.is_none() || earlier.trunk == self.trunk;
        trunk_covered && earlier.match_user.covers(&self.match_user)
    }
}

impl UserPattern {
    /// Parses `*`, `prefix*` or an exact user.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("must not be empty (use \"*\" to match any user)".to_owned());
        }
        let (body, wildcard) = match s.strip_suffix('*') {
            Some(body) => (body, true),
            None => (s, false),
        };
        if body.contains('*') {
            return Err(format!(
                "invalid pattern {s:?}: '*' is only allowed alone or at the end"
            ));
        }
        Ok(match (body.is_empty(), wildcard) {
            (true, _) => Self::Any,
            (false, true) => Self::Prefix(body.to_owned()),
            (false, false) => Self::Exact(body.to_owned()),
        })
    }

    /// Whether `user` matches.
    pub fn matches(&self, user: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Prefix(p) => user.starts_with(p.as_str()),
            Self::Exact(e) => user == e,
        }
    }

    fn covers(&self, other: &UserPattern) -> bool {
        match (self, other) {
            (Self::Any, _) => true,
            (Self::Prefix(p), Self::Prefix(q) | Self::Exact(q)) => q.starts_with(p.as_str()),
            (Self::Exact(a), Self::Exact(b)) => a == b,
            _ => false,
        }
    }
}

impl fmt::Display for UserPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Prefix(p) => write!(f, "{p}*"),
            Self::Exact(e) => f.write_str(e),
        }
    }
}

impl fmt::Display for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Echo => f.write_str("echo"),
            Self::Play { file, .. } => write!(f, "play {}", file.display()),
            Self::Record { .. } => f.write_str("record"),
            Self::Reject { code } => write!(f, "reject {code}"),
            Self::Transfer { target, .. } => write!(f, "transfer to {target}"),
            Self::Fork { url, .. } => write!(f, "fork to {url}"),
            Self::Agent { flow, .. } => write!(f, "agent {}", flow.display()),
        }
    }
}

// ---------------------------------------------------------------------------
// Raw file shapes. Every field is optional so that defaults and "is required"
// messages come from validation, which knows the full key path.

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    sip: Option<RawSip>,
    rtp: Option<RawRtp>,
    http: Option<RawHttp>,
    log: Option<RawLog>,
    data_dir: Option<String>,
    database_url: Option<String>,
    account: Option<String>,
    recording: Option<RawRecording>,
    streams: Option<RawStreams>,
    privacy: Option<RawPrivacy>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    users: Vec<RawUser>,
    trunks_dir: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSip {
    listen: Option<Vec<RawListener>>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    public_addr: Option<String>,
    user_agent: Option<String>,
    t1_ms: Option<i64>,
    t2_ms: Option<i64>,
    t4_ms: Option<i64>,
    max_message_bytes: Option<i64>,
    session_expires_s: Option<i64>,
    min_se_s: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    transport: Option<String>,
    addr: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRtp {
    port_min: Option<i64>,
    port_max: Option<i64>,
    media_timeout_s: Option<i64>,
    codecs: Option<Vec<String>>,
    jitter_min_ms: Option<i64>,
    jitter_max_ms: Option<i64>,
    comfort_silence: Option<bool>,
    inband_dtmf: Option<bool>,
    srtp: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    metrics_token: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStreams {
    secret: Option<String>,
    flow: Option<String>,
    barge_in_ms: Option<i64>,
    ping_interval_s: Option<i64>,
    max_buffered_s: Option<i64>,
    fork_ca_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPrivacy {
    purge_interval_s: Option<i64>,
    suppression_salt: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRecording {
    enabled: Option<bool>,
    dir: Option<String>,
    format: Option<String>,
    master_keys_env: Option<String>,
    master_key_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    match_user: Option<String>,
    app: Option<String>,
    reject_code: Option<i64>,
    transfer_to: Option<String>,
    transfer_after_ms: Option<i64>,
    transfer_method: Option<String>,
    transfer_srtp: Option<String>,
    answer_after_ms: Option<i64>,
    early_media: Option<bool>,
    trunk: Option<String>,
    file: Option<String>,
    repeat: Option<bool>,
    max_duration_s: Option<i64>,
    silence_ms: Option<i64>,
    url: Option<String>,
    reconnect_window_s: Option<i64>,
    flow: Option<String>,
    barge_in_ms: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    username: Option<String>,
    password: Option<String>,
}

// ---------------------------------------------------------------------------
// Validation.

fn default_listeners() -> Vec<Listener> {
    let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
    vec![
        Listener {
            transport: Transport::Udp,
            addr: any(5060),
        },
        Listener {
            transport: Transport::Tcp,
            addr: any(5060),
        },
        Listener {
            transport: Transport::Tls,
            addr: any(5061),
        },
    ]
}

fn build(raw: RawServer, ctx: &mut Ctx<'_>, base_dir: &Path) -> Result<ServerConfig, ConfigError> {
    let sip = build_sip(raw.sip.unwrap_or_default(), ctx, base_dir)?;
    let rtp = build_rtp(raw.rtp.unwrap_or_default(), ctx)?;
    let http = build_http(raw.http.unwrap_or_default(), ctx, base_dir)?;
    let log = build_log(raw.log.unwrap_or_default(), ctx)?;

    let data_dir = ctx
        .opt_str("data_dir", raw.data_dir.as_deref())?
        .map_or_else(|| PathBuf::from("./data"), PathBuf::from);
    let database_url = ctx
        .opt_str("database_url", raw.database_url.as_deref())?
        .unwrap_or_else(|| "sqlite://./data/leadscaller.db".to_owned());
    if !has_url_scheme(&database_url) {
        return Err(ctx.err(
            "database_url",
            format!(
                "must be a URL such as \"sqlite://./data/leadscaller.db\", got {database_url:?}"
            ),
        ));
    }

    let account = ctx
        .opt_str("account", raw.account.as_deref())?
        .unwrap_or_else(|| "default".to_owned());
    if account.trim().is_empty() || account.len() > 100 {
        return Err(ctx.err("account", "must be 1 to 100 characters"));
    }

    let routes = build_routes(raw.routes, ctx, base_dir)?;
    let users = build_users(raw.users, ctx)?;
    let recording = build_recording(raw.recording.unwrap_or_default(), ctx, base_dir)?;
    let raw_streams = raw.streams.unwrap_or_default();
    let stream_flow = match ctx.opt_str("streams.flow", raw_streams.flow.as_deref())? {
        None => None,
        Some(f) => {
            let path = base_dir.join(f);
            if let Err(e) = crate::agent::AgentConfig::load(&path) {
                return Err(ctx.err("streams.flow", e.to_string()));
            }
            Some(path)
        }
    };
    let stream_barge_in_ms = ctx.int("streams.barge_in_ms", raw_streams.barge_in_ms, 0, 0, 5000)?;
    let stream_ping_interval = Duration::from_secs(ctx.int(
        "streams.ping_interval_s",
        raw_streams.ping_interval_s,
        20u64,
        1,
        3600,
    )?);
    let stream_max_buffered = Duration::from_secs(ctx.int(
        "streams.max_buffered_s",
        raw_streams.max_buffered_s,
        600u64,
        1,
        3600,
    )?);
    let fork_ca_file =
        match ctx.opt_str("streams.fork_ca_file", raw_streams.fork_ca_file.as_deref())? {
            None => None,
            Some(f) => {
                let path = base_dir.join(f);
                if let Err(e) = crate::leg::stream_client::load_ca_file(&path) {
                    return Err(ctx.err("streams.fork_ca_file", e.to_string()));
                }
                Some(path)
            }
        };
    let stream_secret = match ctx.opt_str("streams.secret", raw_streams.secret.as_deref())? {
        Some(s) if s.len() < 16 => {
            return Err(ctx.err("streams.secret", "must be at least 16 characters"));
        }
        other => other.map(Secret::new),
    };

    let privacy = build_privacy(raw.privacy.unwrap_or_default(), ctx)?;

    let trunks_dir = match ctx.opt_str("trunks_dir", raw.trunks_dir.as_deref())? {
        None => base_dir.join("trunks"),
        Some(dir) => {
            let dir = base_dir.join(dir);
            if !dir.is_dir() {
                return Err(ctx.err(
                    "trunks_dir",
                    format!("directory {:?} does not exist", dir.display().to_string()),
                ));
            }
            dir
        }
    };

    Ok(ServerConfig {
        sip,
        rtp,
        http,
        log,
        data_dir,
        recording,
        stream_secret,
        stream_flow,
        stream_barge_in_ms,
        stream_ping_interval,
        stream_max_buffered,
        fork_ca_file,
        database_url,
        account,
        privacy,
        routes,
        users,
        trunks_dir,
        warnings: std::mem::take(&mut ctx.warnings),
    })
}

fn build_sip(raw: RawSip, ctx: &mut Ctx<'_>, base_dir: &Path) -> Result<SipConfig, ConfigError> {
    let d = SipConfig::default();

    let tls_cert = ctx.opt_str("sip.tls_cert", raw.tls_cert.as_deref())?;
    let tls_key = ctx.opt_str("sip.tls_key", raw.tls_key.as_deref())?;
    let (tls_cert, tls_key) = match (tls_cert, tls_key) {
        (Some(c), Some(k)) => (Some(base_dir.join(c)), Some(base_dir.join(k))),
        (None, None) => (None, None),
        (Some(_), None) => {
            return Err(ctx.err("sip.tls_key", "is required when sip.tls_cert is set"));
        }
        (None, Some(_)) => {
            return Err(ctx.err("sip.tls_cert", "is required when sip.tls_key is set"));
        }
    };
    let have_tls = tls_cert.is_some();

    // (key used in messages, listener) for every configured entry, before TLS filtering.
    let entries: Vec<(String, Listener)> = match raw.listen {
        None => default_listeners()
            .into_iter()
            .map(|l| ("sip.listen".to_owned(), l))
            .collect(),
        Some(list) => {
            if list.is_empty() {
                return Err(ctx.err("sip.listen", "must list at least one listener"));
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, l) in list.iter().enumerate() {
                let key = format!("sip.listen[{i}]");
                out.push((key.clone(), build_listener(l, &key, ctx)?));
            }
            out
        }
    };

    let mut seen: HashSet<(bool, SocketAddr)> = HashSet::new();
    let mut listen = Vec::with_capacity(entries.len());
    for (key, l) in entries {
        // TCP and TLS both bind a TCP socket, so they cannot share an address.
        let stream = l.transport != Transport::Udp;
        // Port 0 asks the OS for a fresh port each time, so it never conflicts.
        if l.addr.port() != 0 && !seen.insert((stream, l.addr)) {
            return Err(ctx.err(
                &key,
                format!(
                    "{} listener on {} conflicts with an earlier listener",
                    l.transport, l.addr
                ),
            ));
        }
        if l.transport == Transport::Tls && !have_tls {
            ctx.warn(
                &key,
                format!(
                    "TLS listener on {} skipped: sip.tls_cert and sip.tls_key are not set",
                    l.addr
                ),
            );
            continue;
        }
        listen.push(l);
    }
    if listen.is_empty() {
        return Err(ctx.err(
            "sip.listen",
            "no usable listener (TLS listeners need sip.tls_cert and sip.tls_key)",
        ));
    }

    let public_addr = match ctx.opt_str("sip.public_addr", raw.public_addr.as_deref())? {
        None => None,
        Some(a) => {
            if !is_valid_host(&a) {
                return Err(ctx.err(
                    "sip.public_addr",
                    format!("must be an IP address or host name without port, got {a:?}"),
                ));
            }
            Some(a.trim_start_matches('[').trim_end_matches(']').to_owned())
        }
    };

    let user_agent = match raw.user_agent.as_deref() {
        None => d.user_agent,
        Some(raw) => ctx.req_str("sip.user_agent", Some(raw))?,
    };
    if user_agent.chars().any(char::is_control) {
        return Err(ctx.err("sip.user_agent", "must not contain control characters"));
    }

    let t1_ms: u64 = ctx.int("sip.t1_ms", raw.t1_ms, d.t1_ms, 1, 60_000)?;
    let t2_ms: u64 = ctx.int("sip.t2_ms", raw.t2_ms, d.t2_ms, 1, 600_000)?;
    if t2_ms < t1_ms {
        return Err(ctx.err(
            "sip.t2_ms",
            format!("must be >= sip.t1_ms ({t1_ms}), got {t2_ms}"),
        ));
    }
    let t4_ms: u64 = ctx.int("sip.t4_ms", raw.t4_ms, d.t4_ms, 1, 600_000)?;
    let max_message_bytes: usize = ctx.int(
        "sip.max_message_bytes",
        raw.max_message_bytes,
        d.max_message_bytes,
        1024,
        1 << 20,
    )?;
    let min_se_s: u32 = ctx.int("sip.min_se_s", raw.min_se_s, d.min_se_s, 90, 86_400)?;
    let session_expires_s: u32 = ctx.int(
        "sip.session_expires_s",
        raw.session_expires_s,
        d.session_expires_s,
        90,
        86_400,
    )?;
    if session_expires_s < min_se_s {
        return Err(ctx.err(
            "sip.session_expires_s",
            format!("must be >= sip.min_se_s ({min_se_s}), got {session_expires_s}"),
        ));
    }

    Ok(SipConfig {
        listen,
        tls_cert,
        tls_key,
        public_addr,
        user_agent,
        t1_ms,
        t2_ms,
        t4_ms,
        max_message_bytes,
        session_expires_s,
        min_se_s,
    })
}

fn build_listener(raw: &RawListener, key: &str, ctx: &Ctx<'_>) -> Result<Listener, ConfigError> {
    let tkey = format!("{key}.transport");
    let t = ctx.req_str(&tkey, raw.transport.as_deref())?;
    let transport = Transport::parse(&t).ok_or_else(|| {
        ctx.err(
            &tkey,
            format!("unknown transport {t:?} (expected one of: udp, tcp, tls)"),
        )
    })?;
    let akey = format!("{key}.addr");
    let addr = match ctx.opt_str(&akey, raw.addr.as_deref())? {
        None => SocketAddr::from(([0, 0, 0, 0], transport.default_port())),
        Some(a) => parse_socket_addr(&a, transport.default_port())
            .ok_or_else(|| ctx.err(&akey, bad_socket_addr(&a, "0.0.0.0:5060")))?,
    };
    Ok(Listener { transport, addr })
}

/// Parses `ip:port`, `[v6]:port`, or a bare IP (taking `default_port`).
fn parse_socket_addr(s: &str, default_port: u16) -> Option<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    let ip = match s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(v6) => IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?),
        None => s.parse::<IpAddr>().ok()?,
    };
    Some(SocketAddr::new(ip, default_port))
}

fn bad_socket_addr(got: &str, example: &str) -> String {
    format!(
        "invalid address {got:?} (expected IP:port, e.g. {example} or [::]:{})",
        example.rsplit(':').next().unwrap_or_default()
    )
}

fn build_rtp(raw: RawRtp, ctx: &Ctx<'_>) -> Result<RtpConfig, ConfigError> {
    let d = RtpConfig::default();
    let port_min: u16 = ctx.int("rtp.port_min", raw.port_min, d.port_min, 1024, 65535)?;
    if !port_min.is_multiple_of(2) {
        return Err(ctx.err("rtp.port_min", "must be even"));
    }
    let port_max: u16 = ctx.int("rtp.port_max", raw.port_max, d.port_max, 1024, 65535)?;
    if port_max <= port_min {
        return Err(ctx.err(
            "rtp.port_max",
            format!("must be greater than rtp.port_min ({port_min}), got {port_max}"),
        ));
    }
    let media_timeout_s: u32 = ctx.int(
        "rtp.media_timeout_s",
        raw.media_timeout_s,
        d.media_timeout_s,
        0,
        86_400,
    )?;
    let codecs = match raw.codecs {
        None => d.codecs,
        Some(list) => {
            for c in &list {
                if !["pcmu", "pcma", "opus"].contains(&c.to_ascii_lowercase().as_str()) {
                    return Err(ctx.err(
                        "rtp.codecs",
                        format!("unknown codec {c:?} (expected PCMU, PCMA or opus)"),
                    ));
                }
            }
            if list.is_empty() {
                return Err(ctx.err("rtp.codecs", "needs at least one codec"));
            }
            list
        }
    };
    let jitter_min_ms: u32 = ctx.int(
        "rtp.jitter_min_ms",
        raw.jitter_min_ms,
        d.jitter_min_ms,
        20,
        1000,
    )?;
    let jitter_max_ms: u32 = ctx.int(
        "rtp.jitter_max_ms",
        raw.jitter_max_ms,
        d.jitter_max_ms,
        20,
        2000,
    )?;
    if jitter_max_ms < jitter_min_ms {
        return Err(ctx.err(
            "rtp.jitter_max_ms",
            format!("must be at least rtp.jitter_min_ms ({jitter_min_ms}), got {jitter_max_ms}"),
        ));
    }
    Ok(RtpConfig {
        port_min,
        port_max,
        media_timeout_s,
        codecs,
        jitter_min_ms,
        jitter_max_ms,
        comfort_silence: raw.comfort_silence.unwrap_or(d.comfort_silence),
        inband_dtmf: raw.inband_dtmf.unwrap_or(d.inband_dtmf),
        srtp: match raw.srtp.as_deref() {
            None => d.srtp,
            Some(m) => super::trunk::SrtpMode::parse(m).ok_or_else(|| {
                ctx.err(
                    "rtp.srtp",
                    format!("unknown srtp mode {m:?} (expected one of: off, optional, mandatory)"),
                )
            })?,
        },
    })
}

fn build_http(raw: RawHttp, ctx: &Ctx<'_>, base_dir: &Path) -> Result<HttpConfig, ConfigError> {
    let listen = match ctx.opt_str("http.listen", raw.listen.as_deref())? {
        None => HttpConfig::default().listen,
        Some(a) => parse_socket_addr(&a, 8080)
            .ok_or_else(|| ctx.err("http.listen", bad_socket_addr(&a, "0.0.0.0:8080")))?,
    };
    let metrics_token = match ctx.opt_str("http.metrics_token", raw.metrics_token.as_deref())? {
        Some(t) if t.len() < 16 => {
            return Err(ctx.err("http.metrics_token", "must be at least 16 characters"));
        }
        other => other.map(Secret::new),
    };
    let tls_cert = ctx.opt_str("http.tls_cert", raw.tls_cert.as_deref())?;
    let tls_key = ctx.opt_str("http.tls_key", raw.tls_key.as_deref())?;
    let (tls_cert, tls_key) = match (tls_cert, tls_key) {
        (Some(c), Some(k)) => (base_dir.join(c), base_dir.join(k)),
        (None, None) => {
            return Ok(HttpConfig {
                listen,
                tls_cert: None,
                tls_key: None,
                metrics_token,
            });
        }
        (Some(_), None) => {
            return Err(ctx.err("http.tls_key", "is required when http.tls_cert is set"));
        }
        (None, Some(_)) => {
            return Err(ctx.err("http.tls_cert", "is required when http.tls_key is set"));
        }
    };
    // Loaded here so that a bad file fails at start naming the key, not at the first client.
    for (key, path) in [("http.tls_cert", &tls_cert), ("http.tls_key", &tls_key)] {
        if let Err(e) = std::fs::metadata(path) {
            return Err(ctx.err(
                key,
                format!("cannot read {:?}: {e}", path.display().to_string()),
            ));
        }
    }
    if let Err(e) = crate::sip::tls::server_config_from_files(&tls_cert, &tls_key) {
        return Err(ctx.err("http.tls_cert", e.to_string()));
    }
    Ok(HttpConfig {
        listen,
        tls_cert: Some(tls_cert),
        tls_key: Some(tls_key),
        metrics_token,
    })
}

const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

fn build_log(raw: RawLog, ctx: &Ctx<'_>) -> Result<LogConfig, ConfigError> {
    let format = match ctx.opt_str("log.format", raw.format.as_deref())?.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(ctx.err(
                "log.format",
                format!("unknown log format {other:?} (expected one of: text, json)"),
            ));
        }
    };
    let level = ctx
        .opt_str("log.level", raw.level.as_deref())?
        .unwrap_or_else(|| "info".to_owned());
    // Each directive is `level` or `target=level`, as tracing's EnvFilter reads them.
    for directive in level.split(',') {
        let lvl = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LOG_LEVELS.contains(&lvl.trim().to_ascii_lowercase().as_str()) {
            return Err(ctx.err(
                "log.level",
                format!(
                    "invalid level {directive:?} (expected one of: {}, optionally as target=level)",
                    LOG_LEVELS.join(", ")
                ),
            ));
        }
    }
    Ok(LogConfig { format, level })
}

fn has_url_scheme(url: &str) -> bool {
    match url.split_once(':') {
        Some((scheme, _)) => {
            let mut c = scheme.chars();
            c.next().is_some_and(|c| c.is_ascii_alphabetic())
                && c.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

fn build_privacy(raw: RawPrivacy, ctx: &mut Ctx<'_>) -> Result<PrivacyConfig, ConfigError> {
    let purge_interval_s = ctx.int(
        "privacy.purge_interval_s",
        raw.purge_interval_s,
        3600,
        60,
        86_400,
    )?;
    let suppression_salt =
        match ctx.opt_str("privacy.suppression_salt", raw.suppression_salt.as_deref())? {
            Some(s) if s.len() < 32 => {
                return Err(ctx.err("privacy.suppression_salt", "must be at least 32 characters"));
            }
            other => other.map(Secret::new),
        };
    Ok(PrivacyConfig {
        purge_interval_s,
        suppression_salt,
    })
}

fn build_recording(
    raw: RawRecording,
    ctx: &Ctx<'_>,
    base_dir: &Path,
) -> Result<RecordingConfig, ConfigError> {
    let d = RecordingConfig::default();
    let dir = ctx
        .opt_str("recording.dir", raw.dir.as_deref())?
        .map_or_else(|| base_dir.join(&d.dir), |p| base_dir.join(p));
    let format = match ctx
        .opt_str("recording.format", raw.format.as_deref())?
        .as_deref()
    {
        None | Some("wav") => RecordingFileFormat::Wav,
        Some("ogg") => RecordingFileFormat::OggOpus,
        Some(other) => {
            return Err(ctx.err(
                "recording.format",
                format!("unknown format {other:?} (expected \"wav\" or \"ogg\")"),
            ));
        }
    };
    let master_keys_env =
        ctx.opt_str("recording.master_keys_env", raw.master_keys_env.as_deref())?;
    if let Some(var) = &master_keys_env {
        let valid = !var.starts_with(|c: char| c.is_ascii_digit())
            && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(ctx.err(
                "recording.master_keys_env",
                // The value is not echoed: it may be the keys themselves.
                "must be the name of an environment variable (A-Z a-z 0-9 _), not the keys",
            ));
        }
    }
    let master_key_file = ctx
        .opt_str("recording.master_key_file", raw.master_key_file.as_deref())?
        .map(|p| base_dir.join(p));
    if master_keys_env.is_some() && master_key_file.is_some() {
        return Err(ctx.err(
            "recording.master_key_file",
            "set either recording.master_keys_env or recording.master_key_file, not both",
        ));
    }
    Ok(RecordingConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        dir,
        format,
        master_keys_env,
        master_key_file,
    })
}

fn build_routes(
    raw: Vec<RawRoute>,
    ctx: &mut Ctx<'_>,
    base_dir: &Path,
) -> Result<Vec<Route>, ConfigError> {
    let mut routes: Vec<Route> = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let key = |k: &str| format!("routes[{i}].{k}");

        let pattern = ctx.req_str(&key("match_user"), r.match_user.as_deref())?;
        let match_user =
            UserPattern::parse(&pattern).map_err(|reason| ctx.err(&key("match_user"), reason))?;

        let app_name = ctx.req_str(&key("app"), r.app.as_deref())?;
        if r.reject_code.is_some() && app_name != "reject" {
            return Err(ctx.err(&key("reject_code"), "only valid with app = \"reject\""));
        }
        if app_name != "transfer" {
            for (k, set) in [
                ("transfer_to", r.transfer_to.is_some()),
                ("transfer_after_ms", r.transfer_after_ms.is_some()),
                ("transfer_method", r.transfer_method.is_some()),
                ("transfer_srtp", r.transfer_srtp.is_some()),
            ] {
                if set {
                    return Err(ctx.err(&key(k), "only valid with app = \"transfer\""));
                }
            }
        }
        if app_name != "play" {
            for (k, set) in [("file", r.file.is_some()), ("repeat", r.repeat.is_some())] {
                if set {
                    return Err(ctx.err(&key(k), "only valid with app = \"play\""));
                }
            }
        }
        if app_name != "record" {
            for (k, set) in [
                ("max_duration_s", r.max_duration_s.is_some()),
                ("silence_ms", r.silence_ms.is_some()),
            ] {
                if set {
                    return Err(ctx.err(&key(k), "only valid with app = \"record\""));
                }
            }
        }
        if app_name != "agent" {
            for (k, set) in [
                ("flow", r.flow.is_some()),
                ("barge_in_ms", r.barge_in_ms.is_some()),
            ] {
                if set {
                    return Err(ctx.err(&key(k), "only valid with app = \"agent\""));
                }
            }
        }
        if app_name != "fork" {
            for (k, set) in [
                ("url", r.url.is_some()),
                ("reconnect_window_s", r.reconnect_window_s.is_some()),
            ] {
                if set {
                    return Err(ctx.err(&key(k), "only valid with app = \"fork\""));
                }
            }
        }
        let app = match app_name.as_str() {
            "echo" => App::Echo,
            "agent" => {
                let flow = base_dir.join(ctx.req_str(&key("flow"), r.flow.as_deref())?);
                if let Err(e) = crate::agent::AgentConfig::load(&flow) {
                    return Err(ctx.err(&key("flow"), e.to_string()));
                }
                App::Agent {
                    flow,
                    barge_in_ms: ctx.int(&key("barge_in_ms"), r.barge_in_ms, 0, 0, 5000)?,
                }
            }
            "fork" => {
                let url = ctx.req_str(&key("url"), r.url.as_deref())?;
                let host = url
                    .strip_prefix("ws://")
                    .or_else(|| url.strip_prefix("wss://"))
                    .unwrap_or("");
                if host.is_empty() || host.starts_with('/') || url.contains(char::is_whitespace) {
                    return Err(
                        ctx.err(&key("url"), format!("{url:?} is not a ws:// or wss:// URL"))
                    );
                }
                App::Fork {
                    url,
                    reconnect_window_s: ctx.int(
                        &key("reconnect_window_s"),
                        r.reconnect_window_s,
                        30,
                        0,
                        3600,
                    )?,
                }
            }
            "record" => App::Record {
                max_duration_s: ctx.int(&key("max_duration_s"), r.max_duration_s, 60, 1, 86_400)?,
                silence_ms: ctx.int(&key("silence_ms"), r.silence_ms, 3000, 100, 600_000)?,
            },
            "play" => {
                let file = base_dir.join(ctx.req_str(&key("file"), r.file.as_deref())?);
                if !file.is_file() {
                    return Err(ctx.err(
                        &key("file"),
                        format!("{} does not exist or is not a file", file.display()),
                    ));
                }
                App::Play {
                    file,
                    repeat: r.repeat.unwrap_or(false),
                }
            }
            "reject" => App::Reject {
                code: ctx.int(&key("reject_code"), r.reject_code, 603, 400, 699)?,
            },
            "transfer" => {
                let target = ctx.req_str(&key("transfer_to"), r.transfer_to.as_deref())?;
                let scheme_ok = ["sip:", "sips:", "tel:"]
                    .iter()
                    .any(|p| target.starts_with(p));
                if !scheme_ok || target.contains(char::is_whitespace) {
                    return Err(ctx.err(
                        &key("transfer_to"),
                        format!("{target:?} is not a sip:, sips: or tel: URI"),
                    ));
                }
                let method = match r.transfer_method.as_deref() {
                    None => crate::agent::transfer::TransferMethod::Refer,
                    Some(m) => {
                        crate::agent::transfer::TransferMethod::from_name(m).ok_or_else(|| {
                            ctx.err(
                                &key("transfer_method"),
                                format!("{m:?}: expected \"refer\" or \"bridge\""),
                            )
                        })?
                    }
                };
                let srtp = match r.transfer_srtp.as_deref() {
                    None => None,
                    Some(m) => Some(crate::config::SrtpMode::parse(m).ok_or_else(|| {
                        ctx.err(
                            &key("transfer_srtp"),
                            format!("{m:?}: expected \"off\", \"optional\" or \"mandatory\""),
                        )
                    })?),
                };
                App::Transfer {
                    target,
                    srtp,
                    after_ms: ctx.int(
                        &key("transfer_after_ms"),
                        r.transfer_after_ms,
                        1000,
                        0,
                        600_000,
                    )?,
                    method,
                }
            }
            other => {
                return Err(ctx.err(
                    &key("app"),
                    format!(
                        "unknown app {other:?} (expected one of: agent, echo, fork, play, record, reject, transfer)"
                    ),
                ));
            }
        };

        let trunk = ctx.opt_str(&key("trunk"), r.trunk.as_deref())?;
        let answer_after_ms = ctx.int(&key("answer_after_ms"), r.answer_after_ms, 0, 0, 120_000)?;
        let early_media = r.early_media.unwrap_or(false);
        if matches!(app, App::Reject { .. })
            && (r.answer_after_ms.is_some() || r.early_media.is_some())
        {
            let k = if r.early_media.is_some() {
                "early_media"
            } else {
                "answer_after_ms"
            };
            return Err(ctx.err(&key(k), "not valid with app = \"reject\""));
        }
        let route = Route {
            match_user,
            app,
            trunk,
            answer_after_ms,
            early_media,
        };
        if let Some(j) = routes.iter().position(|earlier| route.shadowed_by(earlier)) {
            ctx.warn(
                &format!("routes[{i}]"),
                format!("unreachable: routes[{j}] already matches every call this route matches"),
            );
        }
        routes.push(route);
    }
    if routes.is_empty() {
        ctx.warn(
            "routes",
            "no [[routes]] configured: every inbound call will be rejected",
        );
    }
    Ok(routes)
}

fn build_users(raw: Vec<RawUser>, ctx: &Ctx<'_>) -> Result<Vec<User>, ConfigError> {
    let mut users: Vec<User> = Vec::with_capacity(raw.len());
    for (i, u) in raw.iter().enumerate() {
        let ukey = format!("users[{i}].username");
        let username = ctx.req_str(&ukey, u.username.as_deref())?;
        if username
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '@' || c == ':')
        {
            return Err(ctx.err(&ukey, "must not contain whitespace, '@' or ':'"));
        }
        if users.iter().any(|u| u.username == username) {
            return Err(ctx.err(&ukey, format!("duplicate user {username:?}")));
        }
        let password = ctx.req_str(&format!("users[{i}].password"), u.password.as_deref())?;
        users.push(User {
            username,
            password: Secret::new(password),
        });
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "ALICE_PW" => Some("wonderland-secret".into()),
            "PUBLIC_IP" => Some("203.0.113.7".into()),
            _ => None,
        }
    }

    fn parse(src: &str) -> Result<ServerConfig, ConfigError> {
        ServerConfig::from_toml_str(src, "leadscaller.toml", Path::new("/etc/lc"), &env)
    }

    fn err(src: &str) -> String {
        parse(src).unwrap_err().to_string()
    }

    /// Warnings other than the default "TLS listener skipped" one.
    fn non_tls_warnings(c: &ServerConfig) -> Vec<String> {
        c.warnings()
            .into_iter()
            .filter(|w| !w.contains("TLS listener"))
            .collect()
    }

    fn l(transport: Transport, addr: &str) -> Listener {
        Listener {
            transport,
            addr: addr.parse().unwrap(),
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(
            c.sip.listen,
            vec![
                l(Transport::Udp, "0.0.0.0:5060"),
                l(Transport::Tcp, "0.0.0.0:5060")
            ]
        );
        assert_eq!(c.sip, SipConfig::default());
        assert_eq!(c.sip.t1(), Duration::from_millis(500));
        assert_eq!(c.sip.t2(), Duration::from_secs(4));
        assert_eq!(c.sip.t4(), Duration::from_secs(5));
        assert_eq!(c.sip.max_message_bytes, 65535);
        assert_eq!((c.sip.session_expires_s, c.sip.min_se_s), (1800, 90));
        assert!(c.sip.user_agent.starts_with("leadscaller/"));
        assert_eq!(c.rtp, RtpConfig::default());
        assert_eq!((c.rtp.port_min, c.rtp.port_max), (10000, 20000));
        assert_eq!(c.rtp.media_timeout(), Some(Duration::from_secs(30)));
        assert_eq!(c.http.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.log, LogConfig::default());
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.database_url, "sqlite://./data/leadscaller.db");
        assert_eq!(c.trunks_dir, PathBuf::from("/etc/lc/trunks"));
        assert!(c.routes.is_empty() && c.users.is_empty());
        assert_eq!(
            c.warnings(),
            vec![
                "leadscaller.toml:sip.listen: TLS listener on 0.0.0.0:5061 skipped: \
                 sip.tls_cert and sip.tls_key are not set",
                "leadscaller.toml:routes: no [[routes]] configured: every inbound call will be rejected",
            ]
        );
    }

    #[test]
    fn tls_listener_kept_with_cert_paths_resolved() {
        let c = parse("[sip]\ntls_cert = 'tls/cert.pem'\ntls_key = '/abs/key.pem'\n").unwrap();
        assert_eq!(c.sip.listen.len(), 3);
        assert_eq!(c.sip.listen[2], l(Transport::Tls, "0.0.0.0:5061"));
        assert_eq!(c.sip.tls_cert, Some(PathBuf::from("/etc/lc/tls/cert.pem")));
        assert_eq!(c.sip.tls_key, Some(PathBuf::from("/abs/key.pem")));
        assert!(c.warnings().iter().all(|w| !w.contains("TLS")));
    }

    #[test]
    fn explicit_listeners_ipv4_and_ipv6() {
        let c = parse(
            r#"
            [sip]
            listen = [
              { transport = "udp", addr = "[::]:5070" },
              { transport = "TCP", addr = "127.0.0.1:5070" },
              { transport = "udp", addr = "10.0.0.1" },
              { transport = "tcp" },
              { transport = "tls" },
            ]
            "#,
        )
        .unwrap();
        assert_eq!(
            c.sip.listen,
            vec![
                l(Transport::Udp, "[::]:5070"),
                l(Transport::Tcp, "127.0.0.1:5070"),
                l(Transport::Udp, "10.0.0.1:5060"),
                l(Transport::Tcp, "0.0.0.0:5060"),
            ]
        );
        assert_eq!(
            c.warnings()[0],
            "leadscaller.toml:sip.listen[4]: TLS listener on 0.0.0.0:5061 skipped: \
             sip.tls_cert and sip.tls_key are not set"
        );
    }

    #[test]
    fn privacy_settings() {
        let c = parse("").unwrap();
        assert_eq!(c.privacy.purge_interval_s, 3600);
        assert!(c.privacy.suppression_salt.is_none());
        let c = parse(
            "[privacy]\npurge_interval_s = 600\nsuppression_salt = '0123456789abcdef0123456789abcdef'\n",
        )
        .unwrap();
        assert_eq!(c.privacy.purge_interval_s, 600);
        assert_eq!(
            c.privacy
                .suppression_salt
                .as_ref()
                .map(|s| s.expose().len()),
            Some(32)
        );
        assert_eq!(
            err("[privacy]\npurge_interval_s = 5\n"),
            "leadscaller.toml:privacy.purge_interval_s: must be >= 60, got 5"
        );
        assert_eq!(
            err("[privacy]\nsuppression_salt = 'short'\n"),
            "leadscaller.toml:privacy.suppression_salt: must be at least 32 characters"
        );
    }

    #[test]
    fn recording_master_key_settings() {
        let c = parse("[recording]\nenabled = true\n").unwrap();
        assert_eq!(c.recording.master_keys_env, None);
        assert_eq!(c.recording.master_key_file, None);
        assert_eq!(
            c.recording.default_key_file(),
            Path::new("/etc/lc/master.key")
        );
        let c = parse("[recording]\nmaster_keys_env = 'LC_RECORDING_KEYS'\n").unwrap();
        assert_eq!(
            c.recording.master_keys_env.as_deref(),
            Some("LC_RECORDING_KEYS")
        );
        let c = parse("[recording]\nmaster_key_file = 'keys/rec.key'\n").unwrap();
        assert_eq!(
            c.recording.master_key_file.as_deref(),
            Some(Path::new("/etc/lc/keys/rec.key"))
        );
        assert_eq!(
            err("[recording]\nmaster_keys_env = 'k1:AAAA='\n"),
            "leadscaller.toml:recording.master_keys_env: must be the name of an environment \
             variable (A-Z a-z 0-9 _), not the keys"
        );
        assert_eq!(
            err("[recording]\nmaster_keys_env = 'K'\nmaster_key_file = 'f'\n"),
            "leadscaller.toml:recording.master_key_file: set either recording.master_keys_env \
             or recording.master_key_file, not both"
        );
    }

    #[test]
    fn override_sip_port_moves_udp_and_tcp_only() {
        let mut c = parse("[sip]\ntls_cert = 'c'\ntls_key = 'k'\n").unwrap();
        c.override_sip_port(5080);
        let ports: Vec<_> = c.sip.listen.iter().map(|l| l.addr.port()).collect();
        assert_eq!(ports, vec![5080, 5080, 5061]);
    }

    #[test]
    fn listener_errors() {
        assert_eq!(
            err("[[sip.listen]]\ntransport = 'sctp'\n"),
            "leadscaller.toml:sip.listen[0].transport: unknown transport \"sctp\" (expected one of: udp, tcp, tls)"
        );
        assert_eq!(
            err("[[sip.listen]]\naddr = '0.0.0.0:5060'\n"),
            "leadscaller.toml:sip.listen[0].transport: is required"
        );
        assert_eq!(
            err("[sip]\nlisten = [{ transport = 'udp', addr = 'nope:5060' }]\n"),
            "leadscaller.toml:sip.listen[0].addr: invalid address \"nope:5060\" \
             (expected IP:port, e.g. 0.0.0.0:5060 or [::]:5060)"
        );
        assert_eq!(
            err(
                "[sip]\nlisten = [{ transport = 'udp' }, { transport = 'udp', addr = '0.0.0.0:5060' }]\n"
            ),
            "leadscaller.toml:sip.listen[1]: udp listener on 0.0.0.0:5060 conflicts with an earlier listener"
        );
        assert_eq!(
            err(
                "[sip]\ntls_cert='c'\ntls_key='k'\nlisten = [{ transport = 'tcp', addr = '0.0.0.0:5061' }, { transport = 'tls' }]\n"
            ),
            "leadscaller.toml:sip.listen[1]: tls listener on 0.0.0.0:5061 conflicts with an earlier listener"
        );
        assert_eq!(
            err("[sip]\nlisten = []\n"),
            "leadscaller.toml:sip.listen: must list at least one listener"
        );
        assert_eq!(
            err("[sip]\nlisten = [{ transport = 'tls' }]\n"),
            "leadscaller.toml:sip.listen: no usable listener (TLS listeners need sip.tls_cert and sip.tls_key)"
        );
        assert_eq!(
            err("[sip]\ntls_cert = 'c.pem'\n"),
            "leadscaller.toml:sip.tls_key: is required when sip.tls_cert is set"
        );
        assert_eq!(
            err("[sip]\nlisten = [{ transport = 'udp', port = 5060 }]\n"),
            "leadscaller.toml:sip.listen[0].port: unknown key `port`, expected `transport` or `addr`"
        );
    }

    #[test]
    fn sip_value_errors() {
        assert_eq!(
            err("[sip]\nt1_ms = 0\n"),
            "leadscaller.toml:sip.t1_ms: must be >= 1, got 0"
        );
        assert_eq!(
            err("[sip]\nt1_ms = 1000\nt2_ms = 500\n"),
            "leadscaller.toml:sip.t2_ms: must be >= sip.t1_ms (1000), got 500"
        );
        assert_eq!(
            err("[sip]\nmax_message_bytes = 100\n"),
            "leadscaller.toml:sip.max_message_bytes: must be >= 1024, got 100"
        );
        assert_eq!(
            err("[sip]\nmin_se_s = 60\n"),
            "leadscaller.toml:sip.min_se_s: must be >= 90, got 60"
        );
        assert_eq!(
            err("[sip]\nmin_se_s = 600\nsession_expires_s = 300\n"),
            "leadscaller.toml:sip.session_expires_s: must be >= sip.min_se_s (600), got 300"
        );
        assert_eq!(
            err("[sip]\npublic_addr = '1.2.3.4:5060'\n"),
            "leadscaller.toml:sip.public_addr: must be an IP address or host name without port, got \"1.2.3.4:5060\""
        );
        assert_eq!(
            err("[sip]\nuser_agent = \"x\\r\\nEvil: 1\"\n"),
            "leadscaller.toml:sip.user_agent: must not contain control characters"
        );
        assert_eq!(
            err("[sip]\nt1_ms = '500'\n"),
            "leadscaller.toml:sip.t1_ms: invalid type: string \"500\", expected i64"
        );
    }

    #[test]
    fn public_addr_from_env_and_ipv6() {
        let c = parse("[sip]\npublic_addr = '${PUBLIC_IP}'\n").unwrap();
        assert_eq!(c.sip.public_addr.as_deref(), Some("203.0.113.7"));
        let c = parse("[sip]\npublic_addr = '[2001:db8::1]'\n").unwrap();
        assert_eq!(c.sip.public_addr.as_deref(), Some("2001:db8::1"));
        // An unset optional value with an empty default is treated as absent.
        let c = parse("[sip]\npublic_addr = '${NOT_SET:-}'\n").unwrap();
        assert_eq!(c.sip.public_addr, None);
    }

    #[test]
    fn rtp_errors() {
        assert_eq!(
            err("[rtp]\nport_min = 10001\n"),
            "leadscaller.toml:rtp.port_min: must be even"
        );
        assert_eq!(
            err("[rtp]\nport_min = 80\n"),
            "leadscaller.toml:rtp.port_min: must be >= 1024, got 80"
        );
        assert_eq!(
            err("[rtp]\nport_max = 1000\n"),
            "leadscaller.toml:rtp.port_max: must be >= 1024, got 1000"
        );
        assert_eq!(
            err("[rtp]\nport_min = 20000\nport_max = 20000\n"),
            "leadscaller.toml:rtp.port_max: must be greater than rtp.port_min (20000), got 20000"
        );
        assert_eq!(
            err("[rtp]\nport_max = 70000\n"),
            "leadscaller.toml:rtp.port_max: must be <= 65535, got 70000"
        );
        let c = parse("[rtp]\nmedia_timeout_s = 0\n").unwrap();
        assert_eq!(c.rtp.media_timeout(), None);
    }

    #[test]
    fn http_log_and_misc_errors() {
        assert_eq!(
            err("[http]\nlisten = 'localhost:8080'\n"),
            "leadscaller.toml:http.listen: invalid address \"localhost:8080\" \
             (expected IP:port, e.g. 0.0.0.0:8080 or [::]:8080)"
        );
        assert_eq!(
            err("[log]\nformat = 'xml'\n"),
            "leadscaller.toml:log.format: unknown log format \"xml\" (expected one of: text, json)"
        );
        assert_eq!(
            err("[log]\nlevel = 'loud'\n"),
            "leadscaller.toml:log.level: invalid level \"loud\" \
             (expected one of: trace, debug, info, warn, error, off, optionally as target=level)"
        );
        assert_eq!(
            err("database_url = 'data.db'\n"),
            "leadscaller.toml:database_url: must be a URL such as \"sqlite://./data/leadscaller.db\", got \"data.db\""
        );
        assert_eq!(
            err("trunks_dir = 'does-not-exist'\n"),
            "leadscaller.toml:trunks_dir: directory \"/etc/lc/does-not-exist\" does not exist"
        );
        assert!(
            err("[rtp]\nport_mn = 10000\n").starts_with(
                "leadscaller.toml:rtp.port_mn: unknown key `port_mn`, expected one of"
            )
        );
        assert!(err("bogus = true\n").starts_with("leadscaller.toml:bogus: unknown key `bogus`"));
    }

    #[test]
    fn http_log_values() {
        let c = parse(
            "[http]\nlisten = '[::1]:9000'\n[log]\nformat = 'json'\nlevel = 'info,leadscaller::sip=debug'\n",
        )
        .unwrap();
        assert_eq!(c.http.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level, "info,leadscaller::sip=debug");
    }

    #[test]
    fn routes_match_in_order() {
        let c = parse(
            r#"
            [[routes]]
            match_user = "+15550001"
            app = "reject"
            reject_code = 486

            [[routes]]
            match_user = "support*"
            app = "echo"
            trunk = "twilio"

            [[routes]]
            match_user = "support*"
            app = "reject"

            [[routes]]
            match_user = "*"
            app = "echo"
            "#,
        )
        .unwrap();
        assert!(non_tls_warnings(&c).is_empty(), "{:?}", c.warnings());
        assert_eq!(
            c.route_for("+15550001", None).unwrap().app,
            App::Reject { code: 486 }
        );
        assert_eq!(
            c.route_for("support-1", Some("twilio")).unwrap().app,
            App::Echo
        );
        assert_eq!(
            c.route_for("support-1", Some("telnyx")).unwrap().app,
            App::Reject { code: 603 }
        );
        assert_eq!(
            c.route_for("support-1", None).unwrap().app,
            App::Reject { code: 603 }
        );
        assert_eq!(
            c.route_for("anyone", None).unwrap().match_user,
            UserPattern::Any
        );
        // Exact user match is case-sensitive, as SIP user parts are.
        assert_eq!(
            c.route_for("SUPPORT", None).unwrap().match_user,
            UserPattern::Any
        );
    }

    #[test]
    fn no_route_matches() {
        let c = parse("[[routes]]\nmatch_user = '100'\napp = 'echo'\n").unwrap();
        assert!(c.route_for("100", None).is_some());
        assert!(c.route_for("1000", None).is_none());
        assert!(c.route_for("10", None).is_none());
    }

    #[test]
    fn unreachable_routes_warn() {
        let c = parse(
            "[[routes]]\nmatch_user='*'\napp='echo'\n[[routes]]\nmatch_user='42'\napp='echo'\n",
        )
        .unwrap();
        assert_eq!(
            non_tls_warnings(&c),
            vec![
                "leadscaller.toml:routes[1]: unreachable: routes[0] already matches every call this route matches"
            ]
        );
    }

    #[test]
    fn route_errors() {
        assert_eq!(
            err("[[routes]]\nmatch_user='*'\napp='echo'\n[[routes]]\napp='echo'\n"),
            "leadscaller.toml:routes[1].match_user: is required"
        );
        assert_eq!(
            err(
                "[[routes]]\nmatch_user='a'\napp='echo'\n[[routes]]\nmatch_user='b'\napp='echo'\n[[routes]]\nmatch_user='c'\napp='foo'\n"
            ),
            "leadscaller.toml:routes[2].app: unknown app \"foo\" (expected one of: agent, echo, fork, play, record, reject, transfer)"
        );
        assert_eq!(
            err("[[routes]]\nmatch_user='a'\n"),
            "leadscaller.toml:routes[0].app: is required"
        );
        assert_eq!(
            err("[[routes]]\nmatch_user='a*b'\napp='echo'\n"),
            "leadscaller.toml:routes[0].match_user: invalid pattern \"a*b\": '*' is only allowed alone or at the end"
        );
        assert_eq!(
            err("[[routes]]\nmatch_user=''\napp='echo'\n"),
            "leadscaller.toml:routes[0].match_user: must not be empty"
        );
        assert_eq!(
            err("[[routes]]\nmatch_user='a'\napp='reject'\nreject_code=200\n"),
            "leadscaller.toml:routes[0].reject_code: must be >= 400, got 200"
        );
        assert_eq!(
            err("[[routes]]\nmatch_user='a'\napp='echo'\nreject_code=486\n"),
            "leadscaller.toml:routes[0].reject_code: only valid with app = \"reject\""
        );
        assert_eq!(
            err("[[routes]]\nmatch_user='a'\napp='echo'\nmatch='b'\n"),
            "leadscaller.toml:routes[0].match: unknown key `match`, expected one of `match_user`, `app`, `reject_code`, `transfer_to`, `transfer_after_ms`, `transfer_method`, `transfer_srtp`, `answer_after_ms`, `early_media`, `trunk`, `file`, `repeat`, `max_duration_s`, `silence_ms`, `url`, `reconnect_window_s`, `flow`, `barge_in_ms`"
        );
    }

    #[test]
    fn user_patterns() {
        assert_eq!(UserPattern::parse("*").unwrap(), UserPattern::Any);
        assert_eq!(
            UserPattern::parse("+1*").unwrap(),
            UserPattern::Prefix("+1".into())
        );
        assert_eq!(
            UserPattern::parse("bob").unwrap(),
            UserPattern::Exact("bob".into())
        );
        assert!(UserPattern::parse("**").is_err());
        assert_eq!(UserPattern::parse("+1*").unwrap().to_string(), "+1*");
        assert!(UserPattern::Prefix("+1".into()).matches("+14155550100"));
        assert!(!UserPattern::Prefix("+1".into()).matches("+44"));
    }

    #[test]
    fn users_and_secret_redaction() {
        let c = parse("[[users]]\nusername = 'alice'\npassword = '${ALICE_PW}'\n").unwrap();
        let alice = c.user("alice").unwrap();
        assert_eq!(alice.password.expose(), "wonderland-secret");
        assert!(c.user("bob").is_none());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("wonderland-secret"), "{dbg}");
        assert!(dbg.contains("***"));
    }

    #[test]
    fn user_errors() {
        assert_eq!(
            err("[[users]]\nusername = 'alice'\npassword = '${BOB_PW}'\n"),
            "leadscaller.toml:users[0].password: environment variable BOB_PW is not set"
        );
        assert_eq!(
            err("[[users]]\nusername = 'alice'\n"),
            "leadscaller.toml:users[0].password: is required"
        );
        assert_eq!(
            err("[[users]]\nusername='a'\npassword='x'\n[[users]]\nusername='a'\npassword='y'\n"),
            "leadscaller.toml:users[1].username: duplicate user \"a\""
        );
        assert_eq!(
            err("[[users]]\nusername='a b'\npassword='x'\n"),
            "leadscaller.toml:users[0].username: must not contain whitespace, '@' or ':'"
        );
    }

    #[test]
    fn load_reads_file_and_resolves_trunks_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("carriers")).unwrap();
        let path = dir.path().join("leadscaller.toml");
        std::fs::write(&path, "trunks_dir = 'carriers'\n[rtp]\nport_min = 3\n").unwrap();
        let e = ServerConfig::load_with_env(&path, &env)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!("{}:rtp.port_min: must be >= 1024, got 3", path.display())
        );

        std::fs::write(&path, "trunks_dir = 'carriers'\n").unwrap();
        let c = ServerConfig::load_with_env(&path, &env).unwrap();
        assert_eq!(c.trunks_dir, dir.path().join("carriers"));

        let missing = dir.path().join("nope.toml");
        let e = ServerConfig::load(&missing).unwrap_err();
        assert!(matches!(e, ConfigError::Io { .. }));
        assert!(
            e.to_string()
                .starts_with(&format!("{}: ", missing.display()))
        );
    }

    #[test]
    fn http_tls_and_stream_keys() {
        let c = parse("").unwrap();
        assert_eq!(
            (c.http.tls_cert.as_ref(), c.http.tls_key.as_ref()),
            (None, None)
        );
        assert_eq!(c.stream_ping_interval, Duration::from_secs(20));
        assert_eq!(c.stream_max_buffered, Duration::from_secs(600));
        assert_eq!(c.fork_ca_file, None);
        assert_eq!(
            err("[http]\ntls_cert = 'c.pem'\n"),
            "leadscaller.toml:http.tls_key: is required when http.tls_cert is set"
        );
        assert_eq!(
            err("[http]\ntls_key = 'k.pem'\n"),
            "leadscaller.toml:http.tls_cert: is required when http.tls_key is set"
        );
        let e = err("[http]\ntls_cert = 'nope.pem'\ntls_key = 'nope.key'\n");
        assert!(
            e.starts_with("leadscaller.toml:http.tls_cert: cannot read \"/etc/lc/nope.pem\""),
            "{e}"
        );
        assert_eq!(
            err("[streams]\nping_interval_s = 0\n"),
            "leadscaller.toml:streams.ping_interval_s: must be >= 1, got 0"
        );
        assert_eq!(
            err("[streams]\nmax_buffered_s = 4000\n"),
            "leadscaller.toml:streams.max_buffered_s: must be <= 3600, got 4000"
        );
        let e = err("[streams]\nfork_ca_file = 'ca.pem'\n");
        assert!(
            e.starts_with("leadscaller.toml:streams.fork_ca_file: cannot read \"/etc/lc/ca.pem\""),
            "{e}"
        );
        let c = parse("[streams]\nping_interval_s = 1\nmax_buffered_s = 2\n").unwrap();
        assert_eq!(c.stream_ping_interval, Duration::from_secs(1));
        assert_eq!(c.stream_max_buffered, Duration::from_secs(2));
        let c =
            parse("[[routes]]\nmatch_user = '*'\napp = 'fork'\nurl = 'wss://bot.example.com/x'\n")
                .unwrap();
        assert!(
            matches!(&c.routes[0].app, App::Fork { url, .. } if url == "wss://bot.example.com/x")
        );
        assert_eq!(
            err("[[routes]]\nmatch_user = '*'\napp = 'fork'\nurl = 'http://bot'\n"),
            "leadscaller.toml:routes[0].url: \"http://bot\" is not a ws:// or wss:// URL"
        );
    }

    #[test]
    fn http_tls_files_are_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("junk.pem"), "not pem").unwrap();
        let load =
            |toml: &str| ServerConfig::from_toml_str(toml, "leadscaller.toml", dir.path(), &env);
        let c = load("[http]\ntls_cert = 'cert.pem'\ntls_key = 'key.pem'\n[streams]\nfork_ca_file = 'cert.pem'\n").unwrap();
        assert_eq!(c.http.tls_cert, Some(dir.path().join("cert.pem")));
        assert_eq!(c.fork_ca_file, Some(dir.path().join("cert.pem")));
        let e = load("[http]\ntls_cert = 'junk.pem'\ntls_key = 'key.pem'\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("leadscaller.toml:http.tls_cert: "), "{e}");
        assert!(e.contains("no certificate"), "{e}");
        let e = load("[streams]\nfork_ca_file = 'junk.pem'\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "leadscaller.toml:streams.fork_ca_file: no certificate in PEM"
        );
    }
}
