//! The HTTP side of the server: the unauthenticated health check that load balancers poll,
//! the authenticated control-plane API ([`api`]) and the media-stream WebSocket routes.

pub mod api;
pub mod lead_import;
pub mod metrics;
pub mod webhooks;

pub mod listener;

use axum::extract::State;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde::Serialize;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls;

/// What `/health` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
    /// The SIP listeners actually bound, as `transport addr`.
    pub sip: Vec<String>,
}

async fn health(State(h): State<Health>) -> Json<Health> {
    Json(h)
}

/// Binds `addr` and serves the HTTP routes (over TLS with `tls`: `https://`, `wss://`) until
/// `shutdown` becomes true. Returns the bound address (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    health_info: Health,
    extra: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot bind HTTP listener on {addr}: {e}"),
        )
    })?;
    let bound = listener.local_addr()?;
    // Media streams are small urgent messages: no Nagle delay.
    let listener = listener::HttpListener::new(listener, tls)?.tap_io(|io| {
        let _ = io.tcp().set_nodelay(true);
    });
    let app = Router::new()
        .route("/health", get(health))
        .with_state(health_info)
        .merge(extra)
        .layer(axum::middleware::from_fn(metrics::count_requests));
    tokio::spawn(async move {
        let stop = async move {
            while shutdown.changed().await.is_ok() {
                if *shutdown.borrow() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop)
        .await
        {
            tracing::warn!(error = %e, "HTTP server stopped");
        }
    });
    Ok(bound)
}
