//! Whether a call is recorded. The server's `[recording] enabled` is the ceiling for
//! whole-call recording; the account's `recording_enabled` setting (API: `PATCH /v1/account`)
//! is the decision. The setting is re-read from the store in the background, so call setup
//! never waits on the database and a change takes effect within one refresh interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::store::{AccountId, Store};

/// The recording switches one call layer consults.
#[derive(Debug)]
pub struct RecordingPolicy {
    server_enabled: bool,
    account_enabled: AtomicBool,
}

impl RecordingPolicy {
    /// A policy with the server's switch and the account's current setting.
    pub fn new(server_enabled: bool, account_enabled: bool) -> Arc<Self> {
        Arc::new(Self {
            server_enabled,
            account_enabled: AtomicBool::new(account_enabled),
        })
    }

    /// Whether every answered call gets a whole-call recording.
    pub fn records_calls(&self) -> bool {
        self.server_enabled && self.account_enabled()
    }

    /// Whether the account allows recording at all (the `record` app needs it).
    pub fn account_enabled(&self) -> bool {
        self.account_enabled.load(Ordering::Relaxed)
    }

    /// Takes a newly read account setting; returns whether it changed.
    pub fn set_account_enabled(&self, enabled: bool) -> bool {
        self.account_enabled.swap(enabled, Ordering::Relaxed) != enabled
    }
}

/// Re-reads the account's `recording_enabled` every `interval` until shutdown. A failed read
/// keeps the last known value (logged), so a database outage never turns recording on.
pub fn spawn_refresh(
    policy: Arc<RecordingPolicy>,
    store: Store,
    account: AccountId,
    interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            match store.account(&account).await {
                Ok(a) => {
                    let on = a.settings.recording_enabled;
                    if policy.set_account_enabled(on) {
                        tracing::info!(account = %account, recording = on, "account recording setting changed");
                    }
                }
                Err(e) => {
                    tracing::warn!(account = %account, error = %e, "cannot read the account's recording setting")
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_switch_is_a_ceiling_and_the_account_decides() {
        let p = RecordingPolicy::new(true, false);
        assert!(!p.records_calls());
        assert!(p.set_account_enabled(true));
        assert!(p.records_calls());
        assert!(!p.set_account_enabled(true), "no change reported twice");
        let off = RecordingPolicy::new(false, true);
        assert!(!off.records_calls());
        assert!(off.account_enabled());
    }
}
