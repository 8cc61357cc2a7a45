//! Wires configuration to the running parts: SIP driver, call layer, shutdown.

use crate::call::{self, AppChoice, CallRecord, CallServerConfig, Ringing};
use crate::config::{self, App, Config, ServerConfig, TrunkConfig};
use crate::sip::digest::Credentials;
use crate::sip::endpoint::{EndpointConfig, Transport};
use crate::sip::endpoint::{InboundPolicy, Peer, Registration};
use crate::sip::parse::ParseLimits;
use crate::sip::transaction::TimerConfig;
use crate::sip::transport::Command;
use crate::sip::transport::{self, SipHandle};
use crate::sip::uri::Uri;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// A running server: its bound addresses and the switch that stops it.
pub struct RunningServer {
    pub sip: SipHandle,
    /// The bound HTTP address (health check now, the control API later).
    pub http: SocketAddr,
    pub shutdown: watch::Sender<bool>,
    /// The media workers: stopping them finalizes every call's recording.
    pub media: Arc<crate::leg::worker::MediaEngine>,
    /// Writes recordings; stopped after the media workers.
    pub recordings: Arc<crate::call::recording::RecordingWriter>,
    /// Turns true once the call-record writer has stored every finished call.
    pub cdr_done: crate::call::cdr::WriterDone,
}

/// How long shutdown waits for the call records of the calls it ended to be stored.
const CDR_DRAIN: Duration = Duration::from_secs(5);

impl RunningServer {
    /// The first bound address of a transport.
    pub fn addr(&self, t: Transport) -> Option<SocketAddr> {
        self.sip
            .bound
            .iter()
            .find(|(bt, _)| *bt == t)
            .map(|(_, a)| *a)
    }

    /// Stops every task of the server.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Stops signalling, then every media leg (recordings are finalized, not truncated),
    /// and waits for the media workers to end.
    pub async fn shutdown(&self) {
        self.stop();
        self.media.shutdown().await;
        self.recordings.shutdown().await;
        // The calls just ended report their records; store them before the process exits.
        let mut done = self.cdr_done.clone();
        if tokio::time::timeout(CDR_DRAIN, done.wait_for(|d| *d))
            .await
            .is_err()
        {
            tracing::warn!("call records still queued after {CDR_DRAIN:?}; exiting without them");
        }
    }
}

pub(crate) fn map_transport(t: config::Transport) -> Transport {
    match t {
        config::Transport::Udp => Transport::Udp,
        config::Transport::Tcp => Transport::Tcp,
        config::Transport::Tls => Transport::Tls,
    }
}

/// The address to advertise when the config gives none: the bind address if specific,
/// else the interface the OS would route outward from (a UDP `connect` sends nothing),
/// else loopback.
fn guess_advertised_ip(bind: IpAddr) -> IpAddr {
    if !bind.is_unspecified() {
        return bind;
    }
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.connect("192.0.2.1:9")?;
        s.local_addr()
    });
    match probe {
        Ok(a) if !a.ip().is_unspecified() => a.ip(),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// The SIP listeners of a server config (TLS only when a certificate is configured).
pub fn sip_listeners(s: &ServerConfig) -> Vec<(Transport, SocketAddr)> {
    s.sip
        .listen
        .iter()
        .filter(|l| {
            l.transport != config::Transport::Tls
                || (s.sip.tls_cert.is_some() && s.sip.tls_key.is_some())
        })
        .map(|l| (map_transport(l.transport), l.addr))
        .collect()
}

/// The host advertised in Via/Contact and the IP advertised in SDP.
pub fn advertised_address(s: &ServerConfig, bind: IpAddr) -> (String, IpAddr) {
    let advertised = match s.sip.public_addr.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => a.to_string(),
        None => guess_advertised_ip(bind).to_string(),
    };
    let media_ip = advertised
        .parse()
        .unwrap_or_else(|_| guess_advertised_ip(bind));
    (advertised, media_ip)
}

/// The endpoint settings derived from a server config.
pub fn endpoint_config(s: &ServerConfig, advertised: &str) -> EndpointConfig {
    EndpointConfig {
        advertised_host: if advertised.contains(':') && !advertised.starts_with('[') {
            format!("[{advertised}]")
        } else {
            advertised.to_string()
        },
        advertised_ports: HashMap::new(),
        user_agent: s.sip.user_agent.clone(),
        timers: TimerConfig {
            t1: s.sip.t1(),
            t2: s.sip.t2(),
            t4: s.sip.t4(),
        },
        limits: ParseLimits {
            max_message: s.sip.max_message_bytes,
            ..ParseLimits::default()
        },
    }
}

/// Starts the SIP driver and the call layer for `cfg`. Finished calls are reported on
/// `finished` when given.
pub async fn start(
    cfg: &Config,
    finished: Option<mpsc::UnboundedSender<CallRecord>>,
) -> io::Result<RunningServer> {
    let s = &cfg.server;
    let listeners = sip_listeners(s);
    let first_bind = listeners
        .first()
        .map(|(_, a)| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let (advertised, media_ip) = advertised_address(s, first_bind);
    let ep_cfg = endpoint_config(s, &advertised);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ev_tx, ev_rx) = mpsc::channel(4096);
    let tls_server = match (&s.sip.tls_cert, &s.sip.tls_key) {
        (Some(c), Some(k)) => Some(crate::sip::tls::server_config_from_files(c, k)?),
        _ => None,
    };
    let opts = transport::DriverOptions {
        policy: inbound_policy(cfg, &advertised),
        tls_server,
        tls_client: None,
    };
    let sip = transport::start_with(&listeners, ep_cfg, opts, ev_tx, shutdown_rx.clone()).await?;
    for (t, a) in &sip.bound {
        tracing::info!(transport = t.as_str(), addr = %a, advertised = %advertised, "SIP listening");
    }
    let health = crate::control::Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        sip: sip
            .bound
            .iter()
            .map(|(t, a)| format!("{} {a}", t.as_str()))
            .collect(),
    };
    // Recordings are always encrypted at rest; the key ring is needed when any call may record.
    let records =
        s.recording.enabled || s.routes.iter().any(|r| matches!(r.app, App::Record { .. }));
    let recordings = crate::call::recording::recording_storage(&s.recording, records)
        .map_err(|e| io::Error::other(format!("[recording] master keys: {e}")))?;
    let media = crate::leg::worker::MediaEngine::start_default();
    if s.stream_secret.is_none() {
        tracing::warn!("[streams] secret is not set: media streams are accepted without a token");
    }
    let routes = s.routes.clone();
    // Agent files are validated at config load; load each once and share it between calls.
    let agent_files: std::collections::HashMap<std::path::PathBuf, Arc<crate::agent::AgentConfig>> =
        s.routes
            .iter()
            .filter_map(|r| match &r.app {
                App::Agent { flow, .. } => Some(flow),
                _ => None,
            })
            .chain(s.stream_flow.as_ref())
            .filter_map(|file| match crate::agent::AgentConfig::load(file) {
                Ok(a) => Some((file.clone(), Arc::new(a))),
                Err(e) => {
                    tracing::error!(error = %e, "agent file failed to load");
                    None
                }
            })
            .collect();
    let agent_services = (!agent_files.is_empty()).then(crate::call::agent::AgentServices::start);
    let stream_app: crate::leg::stream_server::StreamAppFactory = match (
        s.stream_flow.as_ref().and_then(|f| agent_files.get(f)),
        &agent_services,
    ) {
        (Some(agent), Some(services)) => {
            let (agent, services) = (agent.clone(), services.clone());
            let barge_in = Duration::from_millis(s.stream_barge_in_ms.into());
            Arc::new(move |_rate| {
                call::agent_select::build_agent_app(services.clone(), &agent, barge_in)
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "cannot start the agent");
                        Box::new(call::agent_select::FailedApp(e))
                    })
            })
        }
        _ => Arc::new(|_rate| Box::new(call::echo::EchoApp)),
    };
    let streams =
        crate::leg::stream_server::routes(Arc::new(crate::leg::stream_server::StreamContext {
            engine: media.clone(),
            auth: s
                .stream_secret
                .as_ref()
                .map(|k| crate::leg::stream_auth::StreamAuth::new(k.expose())),
            app: stream_app,
            ping_interval: s.stream_ping_interval,
            max_buffered: s.stream_max_buffered,
        }));
    let store = crate::store::Store::open(&s.database_url)
        .await
        .map_err(|e| {
            io::Error::other(format!(
                "database {}: {e}",
                crate::store::redact_url(&s.database_url)
            ))
        })?;
    tracing::info!(engine = %store.engine(), "store open");
    // Provider secrets stored through the API are sealed with the same master key ring.
    let secret_keys = crate::call::recording::recording_keys(&s.recording, false)
        .map_err(|e| io::Error::other(format!("[recording] master keys: {e}")))?
        .map(|(keys, _)| keys);
    // An account the server creates starts with recording as `[recording] enabled` (or a
    // `record` route) says; after that the account's own setting (the API) decides.
    let account = match store.account_by_name(&s.account).await {
        Ok(a) => a,
        Err(crate::store::StoreError::NotFound) => {
            match store.create_account(&s.account).await {
                Ok(created) => {
                    let settings = crate::store::accounts::AccountSettings {
                        recording_enabled: records,
                        ..created.settings.clone()
                    };
                    store
                        .update_account_settings(&created.id, &settings)
                        .await
                        .map_err(|e| io::Error::other(format!("account {:?}: {e}", s.account)))?
                }
                // Another server on the same database created it first: use theirs.
                Err(crate::store::StoreError::Conflict(_)) => store
                    .account_by_name(&s.account)
                    .await
                    .map_err(|e| io::Error::other(format!("account {:?}: {e}", s.account)))?,
                Err(e) => return Err(io::Error::other(format!("account {:?}: {e}", s.account))),
            }
        }
        Err(e) => return Err(io::Error::other(format!("account {:?}: {e}", s.account))),
    };
    if s.recording.enabled && !account.settings.recording_enabled {
        tracing::warn!(
            account = %s.account,
            "[recording] enabled, but the account has recording off: calls are not recorded \
             until its recording_enabled setting is on (PATCH /v1/account)"
        );
    }
    let call_account = account.id.clone();
    let recording_policy = crate::call::recording_policy::RecordingPolicy::new(
        s.recording.enabled,
        account.settings.recording_enabled,
    );
    crate::call::recording_policy::spawn_refresh(
        recording_policy.clone(),
        store.clone(),
        call_account.clone(),
        Duration::from_secs(1),
        shutdown_rx.clone(),
    );
    let (finished, cdr_done) = crate::call::cdr::spawn_writer(
        store.clone(),
        call_account,
        recordings.clone(),
        secret_keys.as_ref().map(|k| k.current_id().to_owned()),
        finished,
    );
    crate::control::webhooks::spawn(
        store.clone(),
        secret_keys.clone(),
        crate::control::webhooks::DispatcherConfig::default(),
        shutdown_rx.clone(),
    )
    .map_err(|e| io::Error::other(format!("webhooks: {e}")))?;
    let suppression_salt = crate::dialer::gate::suppression_salt(s)
        .map_err(|e| io::Error::other(format!("[privacy] suppression salt: {e}")))?;
    crate::privacy::spawn_purges(
        store.clone(),
        recordings.clone(),
        Duration::from_secs(s.privacy.purge_interval_s.into()),
        shutdown_rx.clone(),
    );
    let api = crate::control::api::router(crate::control::api::ApiState {
        store,
        keys: secret_keys,
        storage: Some(recordings.clone()),
        suppression_salt: Some(Arc::new(suppression_salt)),
        stream_auth: s
            .stream_secret
            .as_ref()
            .map(|k| Arc::new(crate::leg::stream_auth::StreamAuth::new(k.expose()))),
        trunks: Some(Arc::new(
            cfg.trunks
                .values()
                .map(crate::control::api::trunks::TrunkInfo::of)
                .collect(),
        )),
    });
    let http_tls = match (&s.http.tls_cert, &s.http.tls_key) {
        (Some(c), Some(k)) => Some(crate::sip::tls::server_config_from_files(c, k)?),
        _ => None,
    };
    let scheme = if http_tls.is_some() { "HTTPS" } else { "HTTP" };
    let mut extra = streams.merge(api);
    if let Some(token) = &s.http.metrics_token {
        extra = extra.merge(crate::control::metrics::routes(token.clone()));
    }
    let http = crate::control::serve(s.http.listen, health, extra, http_tls, shutdown_rx).await?;
    tracing::info!(addr = %http, "{scheme} listening (GET /health, /v1 API, WebSocket /media-stream)");
    let wss_fork = s
        .routes
        .iter()
        .any(|r| matches!(&r.app, App::Fork { url, .. } if url.starts_with("wss://")));
    let fork = crate::leg::stream_client::ForkSettings {
        ping_interval: s.stream_ping_interval,
        max_buffered: s.stream_max_buffered,
        tls: if wss_fork || s.fork_ca_file.is_some() {
            Some(crate::leg::stream_client::tls_client(
                s.fork_ca_file.as_deref(),
            )?)
        } else {
            None
        },
    };
    let router: call::Router = Arc::new(move |user: &str, trunk: Option<&str>| {
        let Some(route) = routes.iter().find(|r| r.matches(user, trunk)) else {
            return (AppChoice::Reject(404), Ringing::default());
        };
        let ringing = Ringing {
            after: Duration::from_millis(route.answer_after_ms.into()),
            early_media: route.early_media,
        };
        let choice = match &route.app {
            App::Echo => AppChoice::Echo,
            App::Play { file, repeat } => AppChoice::Play {
                file: file.clone(),
                repeat: *repeat,
            },
            App::Record {
                max_duration_s,
                silence_ms,
            } => AppChoice::Record {
                max: Duration::from_secs((*max_duration_s).into()),
                silence: Duration::from_millis((*silence_ms).into()),
            },
            App::Reject { code } => AppChoice::Reject(*code),
            App::Transfer {
                target,
                after_ms,
                method,
                srtp,
            } => match Uri::parse(target) {
                Ok(uri) => AppChoice::Transfer {
                    target: uri,
                    after: Duration::from_millis((*after_ms).into()),
                    settings: crate::agent::transfer::TransferSettings {
                        method: *method,
                        srtp: *srtp,
                        ..Default::default()
                    },
                },
                Err(_) => AppChoice::Reject(500),
            },
            App::Fork {
                url,
                reconnect_window_s,
            } => AppChoice::Fork {
                url: url.clone(),
                reconnect_window: Duration::from_secs((*reconnect_window_s).into()),
            },
            App::Agent { flow, barge_in_ms } => match agent_files.get(flow) {
                Some(f) => AppChoice::Agent {
                    agent: crate::call::agent_select::SharedAgent(f.clone()),
                    barge_in: Duration::from_millis((*barge_in_ms).into()),
                },
                None => AppChoice::Reject(500),
            },
        };
        (choice, ringing)
    });
    let recording_writer = crate::call::recording::RecordingWriter::start();
    let call_cfg = CallServerConfig {
        fork,
        bind_ip: if first_bind.is_unspecified() {
            first_bind
        } else {
            media_ip
        },
        media_ip,
        rtp_port_min: s.rtp.port_min,
        rtp_port_max: s.rtp.port_max,
        codecs: s.rtp.codecs.clone(),
        media_timeout: s
            .rtp
            .media_timeout()
            .unwrap_or(Duration::from_secs(3600 * 24)),
        media: call::MediaSettings {
            jitter_min_ms: s.rtp.jitter_min_ms,
            jitter_max_ms: s.rtp.jitter_max_ms,
            silence: if s.rtp.comfort_silence {
                crate::media::playout::SilenceMode::Zeros
            } else {
                crate::media::playout::SilenceMode::Nothing
            },
            inband_dtmf: s.rtp.inband_dtmf,
        },
        engine: media.clone(),
        prompts: Arc::new(crate::media::prompt::PromptCache::new()),
        srtp_by_trunk: cfg
            .trunks
            .iter()
            .map(|(name, t)| (name.clone(), t.srtp))
            .collect(),
        srtp_default: s.rtp.srtp,
        recordings,
        recording_policy,
        recording_writer: recording_writer.clone(),
        agent_services,
        recording_format: match s.recording.format {
            crate::config::RecordingFileFormat::Wav => crate::media::recorder::RecordingFormat::Wav,
            crate::config::RecordingFileFormat::OggOpus => {
                crate::media::recorder::RecordingFormat::OggOpus
            }
        },
        router,
        trunks: Arc::new(cfg.trunks.clone()),
    };
    tokio::spawn(call::run(
        call_cfg,
        ev_rx,
        sip.commands.clone(),
        Some(finished),
    ));
    for trunk in cfg.trunks.values() {
        tokio::spawn(trunk_upkeep(trunk.clone(), sip.commands.clone()));
    }
    Ok(RunningServer {
        sip,
        http,
        shutdown: shutdown_tx,
        media,
        recordings: recording_writer,
        cdr_done,
    })
}

/// Who may call in: trunks by allow-listed source IP, `[[users]]` by digest. With neither
/// configured the server is open (lab setup); with allow-lists but no users, anyone else
/// gets 403.
pub fn inbound_policy(cfg: &Config, realm: &str) -> InboundPolicy {
    let trunks: Vec<TrunkConfig> = cfg.trunks.values().cloned().collect();
    let require_trusted = trunks.iter().any(|t| !t.allow_ips.is_empty());
    InboundPolicy {
        users: cfg
            .server
            .users
            .iter()
            .map(|u| (u.username.clone(), u.password.expose().to_string()))
            .collect(),
        realm: realm.to_string(),
        trusted: Arc::new(move |ip| {
            trunks
                .iter()
                .find(|t| t.allows_ip(ip))
                .map(|t| t.name.clone())
        }),
        require_trusted,
    }
}

/// The digest credentials of a trunk's `[auth]` section.
pub fn trunk_credentials(trunk: &TrunkConfig) -> Option<Credentials> {
    trunk.auth.as_ref().map(|a| {
        let c = Credentials::new(a.username.clone(), a.password.expose().to_string());
        match &a.realm {
            Some(r) => c.with_realm(r.clone()),
            None => c,
        }
    })
}

/// Resolves a trunk's next hop (outbound proxy or host) to a peer on the trunk's transport,
/// and tells the driver the host name to verify when it opens a TLS connection there.
pub async fn trunk_peer(trunk: &TrunkConfig, commands: &mpsc::Sender<Command>) -> io::Result<Peer> {
    let hop = trunk
        .outbound_proxy
        .clone()
        .unwrap_or_else(|| trunk.host_port());
    let hop = hop.trim_start_matches("sip:").to_string();
    let addr = tokio::net::lookup_host(&hop)
        .await?
        .next()
        .ok_or_else(|| io::Error::other(format!("{hop}: no address")))?;
    let name = hop.rsplit_once(':').map_or(hop.as_str(), |(h, _)| h);
    let name = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let _ = commands.send(Command::NameHost { addr, name }).await;
    Ok(Peer {
        transport: map_transport(trunk.transport),
        addr,
        conn: None,
    })
}

/// Keeps a trunk registered (when `register.enabled`) and pings it with OPTIONS every
/// `options_keepalive_s` seconds (when non-zero).
async fn trunk_upkeep(trunk: TrunkConfig, commands: mpsc::Sender<Command>) {
    let peer = match trunk_peer(&trunk, &commands).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(trunk = %trunk.name, error = %e, "cannot resolve trunk");
            return;
        }
    };
    let domain_uri = Uri::parse(&format!("sip:{}", trunk.domain));
    if trunk.register.enabled {
        let user = trunk
            .auth
            .as_ref()
            .map(|a| a.username.clone())
            .unwrap_or_else(|| trunk.register.contact_user.clone());
        let aor = Uri::parse(&format!("sip:{user}@{}", trunk.domain));
        if let (Ok(registrar), Ok(aor)) = (domain_uri.clone(), aor) {
            let registration = Registration {
                registrar,
                aor,
                contact_user: trunk.register.contact_user.clone(),
                expires: trunk.register.expires_s,
                credentials: trunk_credentials(&trunk),
                peer,
            };
            let (tx, rx) = oneshot::channel();
            let _ = commands
                .send(Command::Register {
                    registration: Box::new(registration),
                    reply: tx,
                })
                .await;
            if let Ok(reg) = rx.await {
                tracing::info!(trunk = %trunk.name, reg = reg.0, "registering");
            }
        }
    }
    if trunk.options_keepalive_s > 0
        && let Ok(target) = domain_uri
    {
        let mut tick = tokio::time::interval(Duration::from_secs(trunk.options_keepalive_s.into()));
        loop {
            tick.tick().await;
            let cmd = Command::Ping {
                target: Box::new(target.clone()),
                peer,
            };
            if commands.send(cmd).await.is_err() {
                return;
            }
        }
    }
}
