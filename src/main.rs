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
    /// One call on loopback with a built-in caller (no config, no accounts, no network): the
    /// scripted agent books a callback; `--echo` checks the echo app instead.
    Demo {
        /// Call the echo app with a tone instead of talking with the agent.
        #[arg(long)]
        echo: bool,
        /// How many 20 ms RTP packets the caller streams (with --echo).
        #[arg(long, default_value_t = 100, requires = "echo")]
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
    /// API keys (operator bootstrap: the first key of an account is made here).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Leads of an account.
    Leads {
        #[command(subcommand)]
        command: LeadsCommand,
    },
    /// The control-plane database.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Stored recordings (encrypted at rest).
    Recordings {
        #[command(subcommand)]
        command: RecordingsCommand,
    },
}

#[derive(Subcommand)]
enum RecordingsCommand {
    /// Decrypt a recording (`*.enc`) to plain audio with the configured key ring, verifying
    /// every chunk; fails on any tampering or truncation.
    Decrypt {
        /// The encrypted file, e.g. recordings/call-XYZ.wav.enc.
        file: PathBuf,
        /// Write the audio to this new file (mode 0600) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value = "sip-config/leadscaller.toml")]
        config: PathBuf,
    },
    /// Rotate: append a new random master key to the key file; it becomes current for new
    /// recordings (restart the server), older keys still open older recordings.
    AddKey {
        #[arg(long, default_value = "sip-config/leadscaller.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key for an account (creating the account if it does not exist) and print
    /// the token once.
    Create {
        /// The account's name.
        #[arg(long)]
        account: String,
        /// `admin` (everything in the account) or `read` (GET only).
        #[arg(long, default_value = "admin")]
        scope: String,
        /// A label for the key.
        #[arg(long, default_value = "bootstrap")]
        name: String,
        #[arg(long, default_value = "sip-config/leadscaller.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum LeadsCommand {
    /// Import a leads CSV into an account (and campaign), streaming it with a progress bar;
    /// bad rows are reported by line and column, every good row is imported.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The account's name.
        #[arg(long)]
        account: String,
        /// Campaign id to import into.
        #[arg(long)]
        campaign: Option<String>,
        /// Column mapping, `field=Header` (repeat): phone (required), first_name, last_name,
        /// email, timezone, consent_status, consent_source, consent_at, consent_text, external_id.
        #[arg(long = "map", value_name = "FIELD=HEADER", required = true)]
        map: Vec<String>,
        #[arg(long, default_value = "sip-config/leadscaller.toml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Apply pending schema migrations (the server also does this at start).
    Migrate {
        #[arg(long, default_value = "sip-config/leadscaller.toml")]
        config: PathBuf,
    },
}

async fn open_store(config: &std::path::Path) -> Result<leadscaller::store::Store> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let url = &cfg.server.database_url;
    leadscaller::store::Store::connect(url)
        .await
        .with_context(|| format!("database {}", leadscaller::store::redact_url(url)))
}

async fn create_key(config: PathBuf, account: String, scope: String, name: String) -> Result<()> {
    use leadscaller::store::StoreError;
    use leadscaller::store::api_keys::Scope;
    let scope = match scope.as_str() {
        "admin" => Scope::Admin,
        "read" => Scope::Read,
        other => bail!("--scope {other:?}: expected admin or read"),
    };
    let store = open_store(&config).await?;
    store.migrate().await?;
    let acc = match store.account_by_name(&account).await {
        Ok(a) => a,
        Err(StoreError::NotFound) => {
            let a = store.create_account(&account).await?;
            eprintln!("created account {} ({})", a.name, a.id);
            a
        }
        Err(e) => return Err(e.into()),
    };
    let (key, token) = store.create_api_key(&acc.id, &name, scope).await?;
    eprintln!(
        "created {} key {} for account {}; the token is shown only now:",
        scope.as_str(),
        key.id,
        acc.name
    );
    println!("{}", token.0);
    store.close().await;
    Ok(())
}

async fn import_leads(
    config: PathBuf,
    file: PathBuf,
    account: String,
    campaign: Option<String>,
    map: Vec<String>,
) -> Result<()> {
    use futures_util::StreamExt;
    let mut fields = serde_json::Map::new();
    for m in &map {
        let Some((field, header)) = m.split_once('=') else {
            bail!("--map {m:?}: expected FIELD=HEADER");
        };
        fields.insert(field.trim().to_owned(), header.into());
    }
    let mapping: leadscaller::leads::csv_import::ColumnMapping =
        serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|e| anyhow::anyhow!("--map: {e}"))?;
    let store = open_store(&config).await?;
    store.migrate().await?;
    let acc = store
        .account_by_name(&account)
        .await
        .with_context(|| format!("account {account:?}"))?;
    if let Some(c) = &campaign {
        store
            .campaign(&acc.id, c)
            .await
            .with_context(|| format!("campaign {c:?} of account {account:?}"))?;
    }
    let f = tokio::fs::File::open(&file)
        .await
        .with_context(|| format!("{}", file.display()))?;
    let size = f.metadata().await.map(|m| m.len()).unwrap_or(0);
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let chunks = file_chunks(f).boxed();
    let report = leadscaller::control::lead_import::import_leads(
        &store,
        &acc,
        campaign.as_deref(),
        mapping,
        chunks,
        |r| {
            bar.set_position(r.bytes_read);
            bar.set_message(format!(
                "imported {} skipped {} failed {}",
                r.imported, r.skipped, r.failed
            ));
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    bar.finish();
    for e in &report.errors {
        eprintln!(
            "{}:{}: {}{}",
            file.display(),
            e.line,
            e.column
                .as_deref()
                .map(|c| format!("column {c:?}: "))
                .unwrap_or_default(),
            e.reason
        );
    }
    for s in &report.skipped_rows {
        eprintln!("{}:{}: skipped: {}", file.display(), s.line, s.reason);
    }
    println!(
        "imported {} skipped {} failed {}",
        report.imported, report.skipped, report.failed
    );
    store.close().await;
    Ok(())
}

/// A file as a stream of 64 KiB chunks.
fn file_chunks(
    f: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::unfold(f, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    })
}

async fn db_migrate(config: PathBuf) -> Result<()> {
    let store = open_store(&config).await?;
    let ran = store.migrate().await?;
    println!("{} database: {ran} migration(s) applied", store.engine());
    store.close().await;
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    match cli.command {
        Command::Serve { config, sip_port } => rt.block_on(serve(config, sip_port)),
        Command::Demo {
            echo: true,
            packets,
        } => rt.block_on(demo_echo(packets)),
        Command::Demo { echo: false, .. } => rt.block_on(demo_agent()),
        Command::Dial {
            destination,
            trunk,
            duration,
            config,
        } => rt.block_on(dial(config, trunk, destination, duration)),
        Command::Keys {
            command:
                KeysCommand::Create {
                    account,
                    scope,
                    name,
                    config,
                },
        } => rt.block_on(create_key(config, account, scope, name)),
        Command::Leads {
            command:
                LeadsCommand::Import {
                    file,
                    account,
                    campaign,
                    map,
                    config,
                },
        } => rt.block_on(import_leads(config, file, account, campaign, map)),
        Command::Db {
            command: DbCommand::Migrate { config },
        } => rt.block_on(db_migrate(config)),
        Command::Recordings { command } => match command {
            RecordingsCommand::Decrypt { file, out, config } => {
                decrypt_recording(&config, &file, out.as_deref())
            }
            RecordingsCommand::AddKey { config } => add_recording_key(&config),
        },
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

/// The recording key ring from `[recording]` of the config at `path` (never created here).
fn recording_key_ring(
    path: &std::path::Path,
) -> Result<std::sync::Arc<leadscaller::store::at_rest::MasterKeyRing>> {
    let cfg = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rec = &cfg.server.recording;
    match leadscaller::call::recording::recording_keys(rec, false)? {
        Some((keys, _)) => Ok(keys),
        None => bail!(
            "{}: no recording master key: [recording] master_keys_env and master_key_file are \
             not set and {} does not exist",
            path.display(),
            rec.default_key_file().display()
        ),
    }
}

fn decrypt_recording(
    config: &std::path::Path,
    file: &std::path::Path,
    out: Option<&std::path::Path>,
) -> Result<()> {
    use leadscaller::store::at_rest::{DecryptingReader, unwrap_io};
    use std::io::Write as _;
    let keys = recording_key_ring(config)?;
    let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut reader = DecryptingReader::new(std::io::BufReader::new(input), &keys)
        .with_context(|| format!("{}", file.display()))?;
    match out {
        Some(out_path) => {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                opts.mode(0o600);
            }
            let mut dst = opts
                .open(out_path)
                .with_context(|| format!("creating {}", out_path.display()))?;
            let copied =
                std::io::copy(&mut reader, &mut dst).and_then(|n| dst.sync_all().map(|()| n));
            match copied {
                Ok(n) => {
                    eprintln!(
                        "{}: {n} bytes written to {}",
                        file.display(),
                        out_path.display()
                    );
                    Ok(())
                }
                Err(e) => {
                    // Never leave a partial output that looks like a whole recording.
                    let _ = std::fs::remove_file(out_path);
                    Err(anyhow::Error::new(unwrap_io(e)).context(format!("{}", file.display())))
                }
            }
        }
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            std::io::copy(&mut reader, &mut lock)
                .and_then(|_| lock.flush())
                .map_err(|e| {
                    anyhow::Error::new(unwrap_io(e)).context(format!("{}", file.display()))
                })?;
            Ok(())
        }
    }
}

fn add_recording_key(config: &std::path::Path) -> Result<()> {
    use std::io::Write as _;
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rec = &cfg.server.recording;
    if let Some(var) = &rec.master_keys_env {
        bail!(
            "the key ring comes from the environment variable {var}: append a new \
             `,id:BASE64` entry to it yourself (32 random bytes, base64)"
        );
    }
    let path = rec
        .master_key_file
        .clone()
        .unwrap_or_else(|| rec.default_key_file());
    // Parse first: never append to a file that is not a valid ring.
    leadscaller::store::at_rest::MasterKeyRing::from_file(&path)?;
    let entry = leadscaller::store::at_rest::generate_key_entry()?;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{entry}")
        .and_then(|()| f.sync_all())
        .with_context(|| format!("appending to {}", path.display()))?;
    let ring = leadscaller::store::at_rest::MasterKeyRing::from_file(&path)?;
    println!(
        "{}: new current key id {} (restart the server to use it)",
        path.display(),
        ring.current_id()
    );
    Ok(())
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
    refuse_if_barred(&path, &cfg, &destination).await?;
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

/// Fails when the account the server calls for (`account`) must not call `destination`: its
/// do-not-call list, or erased numbers' suppression list.
async fn refuse_if_barred(path: &std::path::Path, cfg: &Config, destination: &str) -> Result<()> {
    if !destination.starts_with('+') {
        return Ok(()); // a sip: URI, not a lead's number
    }
    let store = open_store(path).await?;
    store.migrate().await?;
    let account = match store.account_by_name(&cfg.server.account).await {
        Ok(a) => a,
        Err(leadscaller::store::StoreError::NotFound) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let salt = leadscaller::dialer::gate::suppression_salt(&cfg.server)
        .context("[privacy] suppression salt")?;
    if let Some(why) =
        leadscaller::dialer::gate::refusal(&store, &account.id, &salt, destination).await?
    {
        bail!(
            "refusing to dial {destination} for account {:?}: {why}",
            cfg.server.account
        );
    }
    Ok(())
}

async fn demo_agent() -> Result<()> {
    let events = leadscaller::demo::live::install("error");
    let r = leadscaller::demo::agent::run(events)
        .await
        .context("demo failed")?;
    let callback = r
        .agent
        .callback
        .as_ref()
        .map_or_else(String::new, |c| format!(" (callback {})", c.when));
    let latency = r
        .median_turn_latency_ms()
        .map_or_else(|| "no".to_owned(), |ms| format!("{ms} ms"));
    println!(
        "demo: ok — outcome {}{callback} after {:.1} s, {} turns timed, median turn latency {latency} \
         (end of caller speech → first reply frame), files kept in {}",
        r.agent.disposition.as_deref().unwrap_or("none"),
        r.call_time.as_secs_f64(),
        r.agent.latency.len(),
        r.dir.display()
    );
    Ok(())
}

async fn demo_echo(packets: u32) -> Result<()> {
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
