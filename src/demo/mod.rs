//! `leadscaller demo`: a whole call on loopback with no configuration, no accounts and no
//! network. The server runs in-process with embedded defaults; a built-in simulated caller
//! places a SIP call to it. By default the caller talks with the scripted agent
//! (`agent.rs`); `--echo` streams a tone to the echo app instead (`echo.rs`).

pub mod agent;
pub mod echo;
pub mod live;
pub mod script;
pub mod sip_caller;
pub mod wav;

pub use echo::{DemoReport, run};

use crate::call::CallRecord;
use crate::config::{Config, ServerConfig};
use crate::server::{self, RunningServer};
use crate::sip::endpoint::Transport;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// Why a demo failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// A socket, file or server start failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The embedded configuration did not load (a bug in the demo).
    #[error("demo configuration: {0}")]
    Config(String),
    /// The call did not go as scripted.
    #[error("the call failed: {0}")]
    Call(String),
    /// The call ended with another outcome than the script leads to.
    #[error("the agent's outcome was {got:?}, expected {want:?}")]
    Outcome {
        /// The disposition the script leads to.
        want: &'static str,
        /// The disposition the agent set.
        got: Option<String>,
    },
}

/// Prints one line of the demo's story.
fn say(line: &str) {
    println!("{line}");
}

/// The in-process server a demo calls, and the records of its finished calls.
struct DemoServer {
    srv: RunningServer,
    addr: SocketAddr,
    finished: mpsc::UnboundedReceiver<CallRecord>,
}

impl DemoServer {
    /// Starts a server from `toml` (paths resolved against `dir`), keeping its database and
    /// data under `dir`, not in the working directory.
    async fn start(toml: &str, file: &str, dir: &Path) -> Result<DemoServer, DemoError> {
        let mut server_cfg = ServerConfig::from_toml_str(toml, file, dir, &|_| None)
            .map_err(|e| DemoError::Config(e.to_string()))?;
        server_cfg.database_url = format!("sqlite://{}", dir.join("demo.db").display());
        server_cfg.data_dir = dir.to_path_buf();
        let cfg = Config {
            server: server_cfg,
            trunks: BTreeMap::new(),
            warnings: Vec::new(),
        };
        let (done_tx, finished) = mpsc::unbounded_channel();
        let srv = server::start(&cfg, Some(done_tx)).await?;
        let addr = srv
            .addr(Transport::Udp)
            .ok_or_else(|| io::Error::other("no UDP listener"))?;
        Ok(DemoServer {
            srv,
            addr,
            finished,
        })
    }

    /// The record of the next finished call, waiting at most `wait`.
    async fn record(&mut self, wait: Duration) -> Option<CallRecord> {
        tokio::time::timeout(wait, self.finished.recv())
            .await
            .ok()
            .flatten()
    }
}
