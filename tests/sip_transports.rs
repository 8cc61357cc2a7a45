//! SIP over TLS (a real rustls client, and our own UAC), TCP outbound, and IPv6, against
//! the server started in-process with real sockets on loopback.

use bytes::Bytes;
use leadscaller::config::{Config, ServerConfig};
use leadscaller::sip::endpoint::{EndReason, EndpointConfig, Event, OutboundCall, Peer, Transport};
use leadscaller::sip::headers::NameAddr;
use leadscaller::sip::parse::{ParseLimits, StreamEvent, StreamFramer};
use leadscaller::sip::transaction::TimerConfig;
use leadscaller::sip::transport::{self, Command, DriverOptions};
use leadscaller::sip::uri::Uri;
use rustls_pki_types::CertificateDer;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

/// A self-signed certificate for 127.0.0.1 and ::1, written as PEM files into `dir`.
fn make_cert(dir: &Path) -> CertificateDer<'static> {
    make_cert_for(dir, &["127.0.0.1", "::1", "localhost"])
}

/// A self-signed certificate for exactly `names`, written as PEM files into `dir`.
fn make_cert_for(dir: &Path, names: &[&str]) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let params = rcgen::CertificateParams::new(names).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    cert.der().clone()
}

async fn start_server(dir: &Path, ip: &str, rtp: u16) -> leadscaller::server::RunningServer {
    // Each server its own data dir and database (not the crate's ./data).
    let data = dir.join("data");
    let toml = format!(
        r#"
data_dir = "{data}"
database_url = "sqlite://{data}/leadscaller.db"
[sip]
listen = [
  {{ transport = "udp", addr = "{ip}:0" }},
  {{ transport = "tcp", addr = "{ip}:0" }},
  {{ transport = "tls", addr = "{ip}:0" }},
]
tls_cert = "cert.pem"
tls_key = "key.pem"
[http]
listen = "127.0.0.1:0"
[rtp]
port_min = {rtp}
port_max = {}
[[routes]]
match_user = "*"
app = "echo"
"#,
        rtp + 40,
        data = data.display()
    );
    let server = ServerConfig::from_toml_str(&toml, "test.toml", dir, &|_| None).unwrap();
    let cfg = Config {
        server,
        trunks: BTreeMap::new(),
        warnings: Vec::new(),
    };
    leadscaller::server::start(&cfg, None).await.unwrap()
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

async fn read_message<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    framer: &mut StreamFramer,
) -> String {
    let mut buf = [0u8; 8192];
    loop {
        if let Some(StreamEvent::Message(m)) = framer.next_event() {
            return String::from_utf8_lossy(&m.to_bytes()).to_string();
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answer within 5 s")
            .unwrap();
        assert!(n > 0, "connection closed");
        framer.push(&buf[..n]);
    }
}

#[tokio::test]
async fn rustls_client_gets_options_answer_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let der = make_cert(dir.path());
    let srv = start_server(dir.path(), "127.0.0.1", 43500).await;
    let addr = srv.addr(Transport::Tls).expect("TLS listener bound");
    let client = leadscaller::sip::tls::client_config(&[der]).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .unwrap();
    let local = "127.0.0.1:5999";
    let options = format!(
        "OPTIONS sips:{addr} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKtls1\r\nMax-Forwards: 70\r\n\
From: <sips:probe@127.0.0.1>;tag=t1\r\nTo: <sips:{addr}>\r\nCall-ID: tls-options@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(options.as_bytes()).await.unwrap();
    let mut framer = StreamFramer::new(ParseLimits::default());
    let answer = read_message(&mut tls, &mut framer).await;
    assert!(answer.starts_with("SIP/2.0 200 OK"), "{answer}");
    assert!(answer.contains("Allow: INVITE"), "{answer}");
    // A keep-alive ping gets a pong on the same connection (RFC 5626 §3.5.1).
    tls.write_all(b"\r\n\r\n").await.unwrap();
    let mut pong = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), tls.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"\r\n");
    srv.stop();
}

/// Our own UAC (driver with outbound connections) calls the server over `transport`.
async fn uac_call(
    server: SocketAddr,
    transport: Transport,
    roots: Vec<CertificateDer<'static>>,
    bind: &str,
) {
    uac_call_named(server, transport, roots, bind, None).await
}

/// Like [`uac_call`]; `tls_name` is the DNS name the driver is told for the server address.
async fn uac_call_named(
    server: SocketAddr,
    transport: Transport,
    roots: Vec<CertificateDer<'static>>,
    bind: &str,
    tls_name: Option<&str>,
) {
    let (ev_tx, mut events) = mpsc::channel(64);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let opts = DriverOptions {
        tls_client: Some(leadscaller::sip::tls::client_config(&roots).unwrap()),
        ..DriverOptions::default()
    };
    let cfg = EndpointConfig {
        advertised_host: bind
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .map(|ip| {
                if ip.is_ipv6() {
                    format!("[{ip}]")
                } else {
                    ip.to_string()
                }
            })
            .unwrap(),
        advertised_ports: HashMap::new(),
        user_agent: "uac-test".into(),
        timers: TimerConfig::default(),
        limits: ParseLimits::default(),
    };
    let ip: std::net::IpAddr = bind
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .unwrap();
    let listeners = [
        (Transport::Udp, SocketAddr::new(ip, 0)),
        (Transport::Tcp, SocketAddr::new(ip, 0)),
    ];
    let sip = transport::start_with(&listeners, cfg, opts, ev_tx, stop_rx)
        .await
        .unwrap();
    let scheme = if transport == Transport::Tls {
        "sips"
    } else {
        "sip"
    };
    let host = if server.is_ipv6() {
        format!("[{}]", server.ip())
    } else {
        server.ip().to_string()
    };
    let target = Uri::parse(&format!("{scheme}:echo@{host}:{}", server.port())).unwrap();
    let call = OutboundCall {
        to: NameAddr::parse(&format!("<{target}>"), "To").unwrap(),
        from: NameAddr::parse(&format!("<{scheme}:tester@{host}>"), "From").unwrap(),
        target,
        peer: Peer {
            transport,
            addr: server,
            conn: None,
        },
        sdp: Bytes::from_static(SDP.as_bytes()),
        credentials: None,
        headers: Vec::new(),
    };
    if let Some(name) = tls_name {
        let cmd = Command::NameHost {
            addr: server,
            name: name.to_string(),
        };
        sip.commands.send(cmd).await.unwrap();
    }
    let (reply_tx, reply_rx) = oneshot::channel();
    sip.commands
        .send(Command::Invite {
            call: Box::new(call),
            reply: reply_tx,
        })
        .await
        .unwrap();
    let id = reply_rx.await.unwrap();
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await.unwrap() {
                Event::CallAnswered { call, body } if call == id => return body,
                Event::CallEnded { reason, .. } => panic!("call ended: {reason:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("answered within 5 s");
    assert!(
        String::from_utf8_lossy(&answered).contains("m=audio"),
        "SDP answer"
    );
    sip.commands
        .send(Command::Hangup { call: id })
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Event::CallEnded { call, reason } = events.recv().await.unwrap()
                && call == id
            {
                return reason;
            }
        }
    })
    .await
    .expect("BYE answered within 5 s");
    assert_eq!(ended, EndReason::LocalBye);
}

#[tokio::test]
async fn our_uac_calls_over_tls_with_outbound_connection() {
    let dir = tempfile::tempdir().unwrap();
    let der = make_cert(dir.path());
    let srv = start_server(dir.path(), "127.0.0.1", 43600).await;
    uac_call(
        srv.addr(Transport::Tls).unwrap(),
        Transport::Tls,
        vec![der],
        "127.0.0.1",
    )
    .await;
    srv.stop();
}

#[tokio::test]
async fn our_uac_calls_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    make_cert(dir.path());
    let srv = start_server(dir.path(), "127.0.0.1", 43700).await;
    uac_call(
        srv.addr(Transport::Tcp).unwrap(),
        Transport::Tcp,
        vec![],
        "127.0.0.1",
    )
    .await;
    srv.stop();
}

#[tokio::test]
async fn ipv6_calls_over_udp_and_tcp() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        panic!("IPv6 loopback is not available on this machine");
    }
    let dir = tempfile::tempdir().unwrap();
    make_cert(dir.path());
    let srv = start_server(dir.path(), "[::1]", 43800).await;
    uac_call(
        srv.addr(Transport::Udp).unwrap(),
        Transport::Udp,
        vec![],
        "[::1]",
    )
    .await;
    uac_call(
        srv.addr(Transport::Tcp).unwrap(),
        Transport::Tcp,
        vec![],
        "[::1]",
    )
    .await;
    srv.stop();
}

#[test]
fn bad_certificate_files_fail_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "not a pem").unwrap();
    std::fs::write(dir.path().join("key.pem"), "nope").unwrap();
    let err = leadscaller::sip::tls::server_config_from_files(
        &dir.path().join("cert.pem"),
        &dir.path().join("key.pem"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("cert.pem"), "{err}");
}

#[tokio::test]
async fn outbound_tls_verifies_the_trunk_host_name_not_its_ip() {
    let dir = tempfile::tempdir().unwrap();
    // A certificate that names only the host, as carriers' certificates do.
    let der = make_cert_for(dir.path(), &["localhost"]);
    let srv = start_server(dir.path(), "127.0.0.1", 43900).await;
    let addr = srv.addr(Transport::Tls).unwrap();
    uac_call_named(
        addr,
        Transport::Tls,
        vec![der],
        "127.0.0.1",
        Some("localhost"),
    )
    .await;
    srv.stop();
}

#[tokio::test]
async fn http_health_reports_the_bound_sip_listeners() {
    let dir = tempfile::tempdir().unwrap();
    make_cert(dir.path());
    let srv = start_server(dir.path(), "127.0.0.1", 44000).await;
    let mut s = tokio::net::TcpStream::connect(srv.http).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    let udp = srv.addr(Transport::Udp).unwrap();
    assert!(body.contains(&format!("UDP {udp}")), "{body}");
    srv.stop();
}
