//! The `leadscaller` command line.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use leadscaller::config::{Config, LogFormat};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "leadscaller",
    version,
    about = "Open telephony core for AI voice agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SIP server: answer inbound calls with the app their route names.
    Serve {
        /// Server configuration file.
        #[arg(long, default_value = "sip-config/leadscaller.toml")]
        config: PathBuf,
        /// Override the port of every SIP listener (UDP and TCP).
        #[arg(long)]
        sip_port: Option<u16>,
    },
    /// Place one call on loopback to the echo app with a built-in caller (no config, no network).
    Demo {
        /// How many 20 ms RTP packets the caller streams.
        #[arg(long, default_value_t = 100)]
        packets: u32,
    },
    /// Place one outbound call through a trunk, echo its media, hang up after --duration.
    Dial {
        /// E.164 number (+15550100) or a sip: URI.
        destination: String,
        /// Trunk name (file stem under sip-config/trunks).
        #[arg(long)]
        trunk: String,
        /// Seconds to stay connected after answer.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        #[arg(long, default_value = "sip-config/leadscaller.toml")]
        config: PathBuf,
    },
    /// Load and validate a configuration, print a summary, and exit.
    CheckConfig {
        #[arg(long, default_value = "sip-config/leadscaller.toml")]
        config: PathBuf,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.command {
        Command::Serve { config, sip_port } => rt.block_on(serve(config, sip_port)),
        Command::Demo { packets } => rt.block_on(demo(packets)),
        Command::Dial {
            destination,
            trunk,
            duration,
            config,
        } => rt.block_on(dial(config, trunk, destination, duration)),
        Command::CheckConfig { config } => {
            let cfg = Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
            for w in &cfg.warnings {
                println!("warning: {w}");
            }
            println!(
                "{}: ok ({} listeners, {} routes, {} trunks: {})",
                config.display(),
                cfg.server.sip.listen.len(),
                cfg.server.routes.len(),
                cfg.trunks.len(),
                cfg.trunks.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            Ok(())
        }
    }
}

async fn serve(path: PathBuf, sip_port: Option<u16>) -> Result<()> {
    let mut cfg = Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(p) = sip_port {
        cfg.server.override_sip_port(p);
    }
    leadscaller::telemetry::init(
        &cfg.server.log.level,
        cfg.server.log.format == LogFormat::Json,
    );
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let srv = leadscaller::server::start(&cfg, None).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    srv.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn dial(path: PathBuf, trunk: String, destination: String, duration: u64) -> Result<()> {
    let cfg = Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    leadscaller::telemetry::init(
        &cfg.server.log.level,
        cfg.server.log.format == LogFormat::Json,
    );
    let report = leadscaller::dial::dial(
        &cfg,
        &trunk,
        &destination,
        std::time::Duration::from_secs(duration),
    )
    .await?;
    println!(
        "dial: ok — answered after {:.0} ms, {} frames echoed, ended {:?}",
        report.answered_after.as_secs_f64() * 1e3,
        report.packets_echoed,
        report.end
    );
    Ok(())
}

async fn demo(packets: u32) -> Result<()> {
    leadscaller::telemetry::init("warn", false);
    let report = leadscaller::demo::run(packets).await?;
    println!(
        "demo: ok — call set up in {:.1} ms, {}/{} packets echoed, median RTP round trip {:.2} ms",
        report.setup_time.as_secs_f64() * 1e3,
        report.packets_echoed,
        report.packets_sent,
        report.median_rtt.as_secs_f64() * 1e3
    );
    if report.packets_echoed < report.packets_sent * 9 / 10 {
        bail!("too few packets echoed");
    }
    Ok(())
}
