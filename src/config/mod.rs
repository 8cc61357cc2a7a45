//! Configuration: `leadscaller.toml` plus one `trunks/<name>.toml` per SIP trunk.
//!
//! Every error names the file and key (`file:key: reason`), any string value may
//! reference `${VAR}` from the environment, and passwords are held in [`Secret`]
//! so that `Debug`/`Display` of a config never prints them. See `docs/config.md`.

mod env;
mod error;
mod net;
mod parse;
mod server;
mod trunk;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use env::{EnvLookup, Secret};
pub use error::ConfigError;
pub use net::{IpNet, ParseIpNetError, Transport};
pub use server::{
    App, DEFAULT_USER_AGENT, HttpConfig, Listener, LogConfig, LogFormat, RecordingConfig,
    RecordingFileFormat, Route, RtpConfig, ServerConfig, SipConfig, User, UserPattern,
};
pub use trunk::{Codec, NumberFormat, RegisterConfig, SrtpMode, TrunkAuth, TrunkConfig};

/// The whole configuration: server settings plus every enabled trunk.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings from `leadscaller.toml`.
    pub server: ServerConfig,
    /// Enabled trunks by name (file stem), from `server.trunks_dir`.
    pub trunks: BTreeMap<String, TrunkConfig>,
    /// Non-fatal problems from all files, each as `file:key: message`.
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads `path` and the trunks next to it, expanding `${VAR}` from the process environment.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// Loads `path` and the trunks next to it, expanding `${VAR}` through `env`.
    ///
    /// Trunk files with `enabled = false` are checked for syntax and unknown keys only.
    pub fn load_with_env(path: impl AsRef<Path>, env: EnvLookup<'_>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let server = ServerConfig::load_with_env(path, env)?;
        let mut warnings = server.warnings();

        let mut trunks = BTreeMap::new();
        let mut disabled = BTreeSet::new();
        for file in trunk_files(&server.trunks_dir)? {
            match trunk::load_if_enabled(&file, env)? {
                Some(t) => {
                    warnings.extend(t.warnings());
                    trunks.insert(t.name.clone(), t);
                }
                None => {
                    if let Some(stem) = file.file_stem() {
                        disabled.insert(stem.to_string_lossy().into_owned());
                    }
                }
            }
        }

        let file = path.display().to_string();
        for (i, route) in server.routes.iter().enumerate() {
            let Some(name) = &route.trunk else { continue };
            if trunks.contains_key(name) {
                continue;
            }
            let key = format!("routes[{i}].trunk");
            if disabled.contains(name) {
                warnings.push(format!(
                    "{file}:{key}: trunk {name:?} is disabled (enabled = false), so this route never matches"
                ));
                continue;
            }
            let known: Vec<&str> = trunks.keys().map(String::as_str).collect();
            let known = if known.is_empty() {
                format!(
                    "no trunks are configured in {}",
                    server.trunks_dir.display()
                )
            } else {
                format!("configured: {}", known.join(", "))
            };
            return Err(ConfigError::Invalid {
                file,
                key,
                reason: format!("unknown trunk {name:?} ({known})"),
            });
        }

        Ok(Self {
            server,
            trunks,
            warnings,
        })
    }

    /// The trunk whose `allow_ips` contain `ip` (first by name if several do).
    pub fn trunk_for_ip(&self, ip: IpAddr) -> Option<&TrunkConfig> {
        self.trunks.values().find(|t| t.allows_ip(ip))
    }
}

/// `*.toml` files in `dir`, sorted; a missing directory means no trunks.
fn trunk_files(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let io_err = |source| ConfigError::Io {
        file: dir.display().to_string(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_err)?.path();
        // Editors leave dotfiles (e.g. `.twilio.toml.swp`, `.#x.toml`); never load them.
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped `sip-config/` (a symlink in the scratch crate, the real dir in the main crate).
    fn shipped(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("sip-config")
            .join(rel)
    }

    fn fake_env(name: &str) -> Option<String> {
        match name {
            "TWILIO_SIP_USERNAME" | "TELNYX_SIP_USERNAME" | "SIP_USERNAME" => Some("user1".into()),
            "TWILIO_SIP_PASSWORD" | "TELNYX_SIP_PASSWORD" | "SIP_PASSWORD" => {
                Some("very-secret-password".into())
            }
            _ => None,
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn shipped_config_loads_without_any_env() {
        let c = Config::load_with_env(shipped("leadscaller.toml"), &no_env).unwrap();
        let s = &c.server;
        let listen: Vec<_> = s
            .sip
            .listen
            .iter()
            .map(|l| (l.transport, l.addr.port()))
            .collect();
        assert_eq!(listen, vec![(Transport::Udp, 5060), (Transport::Tcp, 5060)]);
        assert_eq!(s.http.listen.port(), 8080);
        assert_eq!(s.route_for("anything", None).unwrap().app, App::Echo);
        assert_eq!(s.trunks_dir, shipped("trunks"));
        // Templates ship disabled so a fresh checkout needs no credentials.
        assert!(c.trunks.is_empty(), "{:?}", c.trunks.keys());
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("TLS listener on 0.0.0.0:5061 skipped"));
    }

    #[test]
    fn shipped_twilio_template_loads() {
        let t = TrunkConfig::load_with_env(shipped("trunks/twilio.toml"), &fake_env).unwrap();
        assert_eq!(t.name, "twilio");
        assert!(t.host.ends_with(".pstn.twilio.com"));
        assert!(!t.register.enabled);
        assert_eq!(t.number_format, NumberFormat::E164);
        assert_eq!(
            t.auth.as_ref().unwrap().password.expose(),
            "very-secret-password"
        );
        // Twilio's North America Virginia signalling gateways.
        for ip in ["54.172.60.0", "54.172.60.3", "177.71.206.193"] {
            assert!(t.allows_ip(ip.parse().unwrap()), "{ip}");
        }
        assert!(!t.allows_ip("54.172.60.4".parse().unwrap()));
        assert!(!format!("{t:?}").contains("very-secret-password"));
    }

    #[test]
    fn shipped_telnyx_template_loads() {
        let t = TrunkConfig::load_with_env(shipped("trunks/telnyx.toml"), &fake_env).unwrap();
        assert_eq!(t.host, "sip.telnyx.com");
        assert!(t.register.enabled);
        assert_eq!(t.number_format, NumberFormat::E164);
        assert!(t.allows_ip("192.76.120.10".parse().unwrap()));
        assert!(t.allows_ip("64.16.250.10".parse().unwrap()));
    }

    #[test]
    fn shipped_generic_register_template_loads() {
        let t =
            TrunkConfig::load_with_env(shipped("trunks/generic-register.toml"), &fake_env).unwrap();
        assert_eq!(t.name, "generic-register");
        assert!(t.register.enabled);
        assert!(t.auth.is_some());
    }

    #[test]
    fn shipped_templates_enabled_need_their_env() {
        let e = TrunkConfig::load_with_env(shipped("trunks/twilio.toml"), &no_env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("trunks/twilio.toml:auth.") && e.contains("is not set"),
            "{e}"
        );
    }

    fn write(dir: &Path, rel: &str, body: &str) {
        std::fs::write(dir.join(rel), body).unwrap();
    }

    #[test]
    fn config_loads_trunks_dir() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("trunks")).unwrap();
        write(
            d,
            "leadscaller.toml",
            "[[routes]]\nmatch_user = '*'\napp = 'echo'\ntrunk = 'acme'\n",
        );
        write(
            d,
            "trunks/acme.toml",
            "host = 'sip.acme.example'\nallow_ips = ['192.0.2.0/24']\n[auth]\nusername = 'u'\npassword = '${SIP_PASSWORD}'\n",
        );
        write(
            d,
            "trunks/beta.toml",
            "host = '198.51.100.1'\nallow_ips = ['198.51.100.1']\n",
        );
        write(d, "trunks/off.toml", "enabled = false\nhost = 'x'\n");
        write(d, "trunks/README.md", "not a trunk");
        write(d, "trunks/.hidden.toml", "garbage = [");

        let c = Config::load_with_env(d.join("leadscaller.toml"), &fake_env).unwrap();
        assert_eq!(c.trunks.keys().collect::<Vec<_>>(), vec!["acme", "beta"]);
        assert_eq!(
            c.trunk_for_ip("192.0.2.10".parse().unwrap())
                .map(|t| t.name.as_str()),
            Some("acme")
        );
        assert_eq!(
            c.trunk_for_ip("198.51.100.1".parse().unwrap())
                .map(|t| t.name.as_str()),
            Some("beta")
        );
        assert!(c.trunk_for_ip("203.0.113.1".parse().unwrap()).is_none());
        assert!(c.warnings.iter().any(|w| w.contains("TLS listener")));

        let dbg = format!("{c:?}");
        assert!(!dbg.contains("very-secret-password"), "{dbg}");
    }

    #[test]
    fn config_errors_name_the_trunk_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("trunks")).unwrap();
        write(d, "leadscaller.toml", "");
        write(
            d,
            "trunks/bad.toml",
            "host = 'h'\n[register]\nexpires_s = 10\n",
        );
        let e = Config::load_with_env(d.join("leadscaller.toml"), &no_env).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:register.expires_s: must be >= 60, got 10",
                d.join("trunks/bad.toml").display()
            )
        );

        write(d, "trunks/bad.toml", "host = 'h'\n\n[auth\n");
        let e = Config::load_with_env(d.join("leadscaller.toml"), &no_env).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::Syntax {
                    line: 3,
                    col: 6,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn route_trunk_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("trunks")).unwrap();
        write(d, "trunks/acme.toml", "host = 'h'\n");
        write(d, "trunks/off.toml", "enabled = false\nhost = 'h'\n");
        let cfg = d.join("leadscaller.toml");

        write(
            d,
            "leadscaller.toml",
            "[[routes]]\nmatch_user='*'\napp='echo'\ntrunk='acmee'\n",
        );
        let e = Config::load_with_env(&cfg, &no_env)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{}:routes[0].trunk: unknown trunk \"acmee\" (configured: acme)",
                cfg.display()
            )
        );

        write(
            d,
            "leadscaller.toml",
            "[[routes]]\nmatch_user='*'\napp='echo'\ntrunk='off'\n",
        );
        let c = Config::load_with_env(&cfg, &no_env).unwrap();
        assert!(c.warnings.iter().any(|w| w.ends_with(
            "routes[0].trunk: trunk \"off\" is disabled (enabled = false), so this route never matches"
        )));
    }

    #[test]
    fn missing_trunks_dir_means_no_trunks() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "leadscaller.toml",
            "[[routes]]\nmatch_user='*'\napp='echo'\n",
        );
        let c = Config::load_with_env(dir.path().join("leadscaller.toml"), &no_env).unwrap();
        assert!(c.trunks.is_empty());
    }
}
