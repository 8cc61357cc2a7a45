//! How a call is transferred when the agent's `transfer` tool (or a `transfer` route) asks:
//! by SIP REFER (the caller's side places the new call) or by a new outbound leg we place and
//! bridge the caller to (we stay in the media path, so recording and the call record go on).
//! Read from an agent file's `[transfer]` table and a route's `transfer_method`.

use std::time::Duration;

/// Ring time of the bridged leg before the transfer counts as failed, by default.
pub const DEFAULT_RING_TIMEOUT: Duration = Duration::from_secs(30);

/// How the caller is handed over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransferMethod {
    /// SIP REFER (RFC 3515) to the caller's side; we leave once it reports success.
    #[default]
    Refer,
    /// We call the target on a new outbound leg and bridge the caller's audio to it.
    Bridge,
}

impl TransferMethod {
    /// The method named `name` in config (`refer`, `bridge`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "refer" => Some(Self::Refer),
            "bridge" => Some(Self::Bridge),
            _ => None,
        }
    }
}

/// The transfer settings of an agent or a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferSettings {
    /// REFER or bridge.
    pub method: TransferMethod,
    /// (Bridge) how long the target may ring before the transfer fails.
    pub ring_timeout: Duration,
    /// (Bridge) the user part of our From on the new leg; `None`: the caller's number.
    pub caller_id: Option<String>,
    /// (Bridge) SDES-SRTP on the new leg; `None`: the trunk's setting when it leaves through
    /// one, else off.
    pub srtp: Option<crate::config::SrtpMode>,
}

impl Default for TransferSettings {
    fn default() -> Self {
        Self {
            method: TransferMethod::Refer,
            ring_timeout: DEFAULT_RING_TIMEOUT,
            caller_id: None,
            srtp: None,
        }
    }
}

impl TransferSettings {
    /// Reads the `[transfer]` table of an agent file (absent: REFER); errors name the key.
    pub fn from_table(table: &toml::Table) -> Result<Self, (String, String)> {
        let mut s = Self::default();
        let Some(v) = table.get("transfer") else {
            return Ok(s);
        };
        let err = |k: &str, r: &str| (format!("transfer.{k}"), r.to_owned());
        let t = v.as_table().ok_or_else(|| {
            (
                "transfer".to_owned(),
                "expected a table ([transfer] with method = \"refer\" or \"bridge\")".to_owned(),
            )
        })?;
        for (k, v) in t {
            match k.as_str() {
                "method" => {
                    s.method = v
                        .as_str()
                        .and_then(TransferMethod::from_name)
                        .ok_or_else(|| err(k, "expected \"refer\" or \"bridge\""))?;
                }
                "ring_timeout_s" => {
                    let n = v
                        .as_integer()
                        .filter(|n| (5..=300).contains(n))
                        .ok_or_else(|| err(k, "expected whole seconds from 5 to 300"))?;
                    s.ring_timeout = Duration::from_secs(n as u64);
                }
                "caller_id" => {
                    let id = v.as_str().filter(|id| is_caller_id(id)).ok_or_else(|| {
                        err(
                            k,
                            "expected a phone number (+14155550100) or a SIP user name",
                        )
                    })?;
                    s.caller_id = Some(id.to_owned());
                }
                "srtp" => {
                    s.srtp = Some(
                        v.as_str()
                            .and_then(crate::config::SrtpMode::parse)
                            .ok_or_else(|| {
                                err(k, "expected \"off\", \"optional\" or \"mandatory\"")
                            })?,
                    );
                }
                _ => {
                    return Err(err(
                        k,
                        "unknown key (expected method, ring_timeout_s, caller_id, srtp)",
                    ));
                }
            }
        }
        if s.method == TransferMethod::Refer && t.len() > usize::from(t.contains_key("method")) {
            return Err((
                "transfer.method".to_owned(),
                "ring_timeout_s, caller_id and srtp only apply with method = \"bridge\"".to_owned(),
            ));
        }
        Ok(s)
    }
}

/// A SIP user part we put in From: `+` and digits, or letters, digits and `._-`.
pub fn is_caller_id(id: &str) -> bool {
    let body = id.strip_prefix('+').unwrap_or(id);
    !body.is_empty()
        && body.len() <= 32
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<TransferSettings, (String, String)> {
        TransferSettings::from_table(&src.parse().unwrap())
    }

    #[test]
    fn defaults_to_refer() {
        assert_eq!(parse("").unwrap(), TransferSettings::default());
        assert_eq!(
            parse("[transfer]\nmethod = \"refer\"").unwrap().method,
            TransferMethod::Refer
        );
    }

    #[test]
    fn bridge_with_its_settings() {
        let s = parse(
            "[transfer]\nmethod = \"bridge\"\nring_timeout_s = 20\ncaller_id = \"+14155550100\"\nsrtp = \"mandatory\"",
        )
        .unwrap();
        assert_eq!(s.srtp, Some(crate::config::SrtpMode::Mandatory));
        assert_eq!(s.method, TransferMethod::Bridge);
        assert_eq!(s.ring_timeout, Duration::from_secs(20));
        assert_eq!(s.caller_id.as_deref(), Some("+14155550100"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let key = |src: &str| parse(src).unwrap_err().0;
        assert_eq!(key("transfer = 1"), "transfer");
        assert_eq!(key("[transfer]\nmethod = \"blind\""), "transfer.method");
        assert_eq!(
            key("[transfer]\nmethod = \"bridge\"\nring_timeout_s = 2"),
            "transfer.ring_timeout_s"
        );
        assert_eq!(
            key("[transfer]\nmethod = \"bridge\"\ncaller_id = \"a b\""),
            "transfer.caller_id"
        );
        assert_eq!(key("[transfer]\nmethod = \"bridge\"\nx = 1"), "transfer.x");
        assert_eq!(
            key("[transfer]\nmethod = \"bridge\"\nsrtp = \"always\""),
            "transfer.srtp"
        );
        assert_eq!(key("[transfer]\nring_timeout_s = 20"), "transfer.method");
    }
}
