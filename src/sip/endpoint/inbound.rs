//! Who may place calls to us: trunks by source IP (allow-lists) and configured users by
//! digest (RFC 3261 §22.4 as the UAS). Nonces are stateless (see `digest::DigestServer`).

use super::{Endpoint, Peer};
use crate::sip::digest::{Algorithm, DigestServer, Verification};
use crate::sip::message::Request;
use crate::sip::uri::Uri;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Maps a source IP to the trunk whose allow-list contains it.
pub type TrustedSources = Arc<dyn Fn(IpAddr) -> Option<String> + Send + Sync>;

/// The admission policy for new inbound calls.
#[derive(Clone)]
pub struct InboundPolicy {
    /// Digest users (username → password); empty means no digest accounts.
    pub users: HashMap<String, String>,
    /// Realm of our challenges.
    pub realm: String,
    /// Source IPs that are trusted trunks (no digest needed).
    pub trusted: TrustedSources,
    /// Refuse (403) calls that neither come from a trusted source nor can authenticate.
    /// When false and no users exist, anyone may call (the default for a lab setup).
    pub require_trusted: bool,
}

impl fmt::Debug for InboundPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Passwords are never printed.
        f.debug_struct("InboundPolicy")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("realm", &self.realm)
            .field("require_trusted", &self.require_trusted)
            .finish()
    }
}

impl InboundPolicy {
    /// Anyone may call: no users, no allow-lists.
    pub fn open() -> InboundPolicy {
        InboundPolicy {
            users: HashMap::new(),
            realm: "leadscaller".into(),
            trusted: Arc::new(|_| None),
            require_trusted: false,
        }
    }
}

/// The outcome of admission for one INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Admission {
    /// From a trusted trunk (its name), an authenticated user, or an open server.
    Accept {
        trunk: Option<String>,
        user: Option<String>,
    },
    /// Send 401 with this WWW-Authenticate value.
    Challenge(String),
    Forbidden,
}

/// Per-endpoint admission state.
pub(super) struct Gate {
    pub policy: InboundPolicy,
    digest: DigestServer,
    /// The first instant admission ran; nonce timestamps count seconds from it.
    epoch: Option<Instant>,
}

impl Gate {
    pub fn new(policy: InboundPolicy) -> Gate {
        Gate {
            digest: DigestServer::with_random_key(policy.realm.clone()),
            policy,
            epoch: None,
        }
    }

    /// Decides whether `req` from `peer` may start a call.
    pub fn admit(&mut self, now: Instant, peer: Peer, req: &Request) -> Admission {
        if let Some(trunk) = (self.policy.trusted)(peer.addr.ip()) {
            return Admission::Accept {
                trunk: Some(trunk),
                user: None,
            };
        }
        if self.policy.users.is_empty() {
            return if self.policy.require_trusted {
                Admission::Forbidden
            } else {
                Admission::Accept {
                    trunk: None,
                    user: None,
                }
            };
        }
        // Seconds since the endpoint started: nonces only need a monotonic clock.
        let epoch = *self.epoch.get_or_insert(now);
        let secs = now.saturating_duration_since(epoch).as_secs() + 1;
        let Some(auth) = req.headers.get("Authorization") else {
            return Admission::Challenge(self.digest.challenge(secs, false, Algorithm::Md5));
        };
        let uri = digest_uri_for(auth, &req.uri);
        let verdict = self
            .digest
            .verify(auth, req.method.as_str(), &uri, secs, |u| {
                self.policy.users.get(u).cloned()
            });
        match verdict {
            Verification::Ok { username } => Admission::Accept {
                trunk: None,
                user: Some(username),
            },
            Verification::Stale => {
                Admission::Challenge(self.digest.challenge(secs, true, Algorithm::Md5))
            }
            Verification::Rejected(reason) => {
                tracing::info!(peer = %peer.addr, %reason, "digest authentication rejected");
                Admission::Forbidden
            }
        }
    }
}

/// The digest-uri to verify against. RFC 3261 §22.4 wants the Request-URI, but common UAs
/// (sipp among them) put our host without the user part there; we accept a digest-uri that
/// names the same scheme, host and port as the Request-URI, since the response still binds
/// the credentials to this server, and check the hash over what the client really used.
fn digest_uri_for(authorization: &str, request_uri: &str) -> String {
    let params = authorization
        .trim_start()
        .get(6..)
        .filter(|_| authorization.trim_start()[..6].eq_ignore_ascii_case("digest"))
        .unwrap_or("");
    let given = crate::sip::message::split_list(params)
        .into_iter()
        .find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("uri")
                .then(|| v.trim().trim_matches('"').to_string())
        });
    let Some(given) = given else {
        return request_uri.to_string();
    };
    let same_target = match (Uri::parse(&given), Uri::parse(request_uri)) {
        (Ok(a), Ok(b)) => {
            a.scheme == b.scheme
                && a.host.eq_ignore_ascii_case(&b.host)
                && a.port.unwrap_or(5060) == b.port.unwrap_or(5060)
        }
        _ => false,
    };
    if same_target {
        given
    } else {
        request_uri.to_string()
    }
}

impl Endpoint {
    /// Replaces the admission policy for new inbound calls.
    pub fn set_inbound_policy(&mut self, policy: InboundPolicy) {
        self.gate = Gate::new(policy);
    }
}

#[cfg(test)]
mod tests {
    use super::digest_uri_for;

    #[test]
    fn digest_uri_may_omit_the_user_but_not_change_the_host() {
        let req = "sip:echo@127.0.0.1:5060";
        let auth = |uri: &str| {
            format!(
                "Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"{uri}\", response=\"x\""
            )
        };
        assert_eq!(
            digest_uri_for(&auth("sip:127.0.0.1:5060"), req),
            "sip:127.0.0.1:5060"
        );
        assert_eq!(digest_uri_for(&auth("sip:127.0.0.1"), req), "sip:127.0.0.1");
        assert_eq!(digest_uri_for(&auth("sip:evil.example.com"), req), req);
        assert_eq!(digest_uri_for(&auth("sip:127.0.0.1:5070"), req), req);
        assert_eq!(digest_uri_for("Basic abc", req), req);
    }
}
