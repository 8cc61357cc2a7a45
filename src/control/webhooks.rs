//! The webhook dispatcher: a task that claims due deliveries from the store, POSTs each signed
//! event to its endpoint and records the outcome, retrying failures on a backoff schedule.
//!
//! Body: `{"id","type","created_at","account_id","data":{...}}`; headers
//! `LeadsCaller-Signature` ([`signature`]), `LeadsCaller-Event-Id`, `LeadsCaller-Delivery-Id`.
//! A 2xx answer is a delivery; anything else (3xx included: redirects are not followed), a
//! timeout or a connection error is a failed attempt, retried per [`retry::RetryPolicy`].
//! Claims are leases in the store, so several nodes may run dispatchers on one PostgreSQL.

pub mod retry;
pub mod signature;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::store::at_rest::{MasterKeyRing, open_secret, secret_aad};
use crate::store::events::Event;
use crate::store::webhooks::{AttemptOutcome, ClaimedDelivery};
use crate::store::{Store, StoreError, rfc3339};
use retry::RetryPolicy;

/// The time source of the dispatcher (tests substitute a manual one).
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::store::now_ms()
    }
}

/// How the dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// How often to look for due deliveries when the queue is idle.
    pub poll_interval: Duration,
    /// Deliveries claimed (and sent concurrently) per round.
    pub batch: u32,
    /// Limit on one request, connection included.
    pub timeout: Duration,
    /// When to retry and when to give up.
    pub retry: RetryPolicy,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            batch: 32,
            timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
        }
    }
}

/// Why the dispatcher could not run a round.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(String),
}

/// Sends due webhook deliveries (cheap to clone: shares its store, client and clock).
#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    /// Opens the sealed signing secrets; without it nothing can be signed.
    keys: Option<Arc<MasterKeyRing>>,
    http: reqwest::Client,
    config: DispatcherConfig,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The JSON body sent for `event`.
pub fn event_body(event: &Event) -> Vec<u8> {
    let body = json!({
        "id": event.id,
        "type": event.event_type.as_str(),
        "created_at": rfc3339(event.created_at),
        "account_id": event.account_id,
        "data": event.payload,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The AAD a webhook's signing secret is sealed with (bound to tenant and endpoint).
pub fn secret_binding(account: &str, webhook_id: &str) -> Vec<u8> {
    secret_aad(account, &format!("webhook.{webhook_id}"))
}

impl Dispatcher {
    /// A dispatcher on `store`, opening secrets with `keys`, on the system clock.
    pub fn new(
        store: Store,
        keys: Option<Arc<MasterKeyRing>>,
        config: DispatcherConfig,
    ) -> Result<Self, DispatchError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("LeadsCaller-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| DispatchError::Client(e.to_string()))?;
        Ok(Self {
            store,
            keys,
            http,
            config,
            clock: Arc::new(SystemClock),
        })
    }

    /// The same dispatcher on another clock.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Claims one batch of due deliveries, sends them concurrently and records each outcome;
    /// returns how many were attempted.
    pub async fn run_once(&self) -> Result<usize, DispatchError> {
        // The lease outlives the request, so a live sender never loses its claim.
        let lease = i64::try_from((self.config.timeout + Duration::from_secs(30)).as_millis())
            .unwrap_or(i64::MAX);
        let claimed = self
            .store
            .claim_deliveries(self.clock.now_ms(), lease, self.config.batch)
            .await?;
        let n = claimed.len();
        let mut sends = JoinSet::new();
        for d in claimed {
            let me = self.clone();
            sends.spawn(async move { me.deliver(d).await });
        }
        let mut first_error = None;
        while let Some(done) = sends.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => tracing::error!(error = %e, "webhooks: delivery task failed"),
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Runs rounds until `shutdown` becomes true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            let pause = match self.run_once().await {
                Ok(n) if n >= self.config.batch as usize => Duration::ZERO,
                Ok(_) => self.config.poll_interval,
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: dispatch round failed");
                    self.config.poll_interval
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                r = shutdown.changed() => if r.is_err() { return },
            }
        }
    }

    async fn deliver(&self, d: ClaimedDelivery) -> Result<(), DispatchError> {
        let (status, error) = match self.send(&d).await {
            Ok(code) if (200..300).contains(&code) => (Some(code), None),
            Ok(code) => (Some(code), Some(format!("HTTP {code}"))),
            Err(e) => (None, Some(e)),
        };
        let now = self.clock.now_ms();
        let outcome = match (error, status) {
            (None, Some(status)) => AttemptOutcome::Delivered { status },
            (error, status) => {
                let error = error.unwrap_or_default();
                match self.config.retry.next_attempt_at(d.attempt, now) {
                    Some(next_attempt_at) => AttemptOutcome::Retry {
                        status,
                        error,
                        next_attempt_at,
                    },
                    None => AttemptOutcome::Failed { status, error },
                }
            }
        };
        let result = match &outcome {
            AttemptOutcome::Delivered { .. } => "delivered",
            AttemptOutcome::Retry { .. } => "retry",
            AttemptOutcome::Failed { .. } => "failed",
        };
        metrics::counter!(crate::telemetry::metrics::WEBHOOK_DELIVERIES, "result" => result)
            .increment(1);
        match &outcome {
            AttemptOutcome::Delivered { status } => tracing::debug!(
                delivery = %d.id, webhook = %d.webhook_id, event = %d.event.event_type,
                attempt = d.attempt, status, "webhooks: delivered"),
            AttemptOutcome::Retry { error, .. } => tracing::info!(
                delivery = %d.id, webhook = %d.webhook_id, event = %d.event.event_type,
                attempt = d.attempt, %error, "webhooks: attempt failed, will retry"),
            AttemptOutcome::Failed { error, .. } => tracing::warn!(
                delivery = %d.id, webhook = %d.webhook_id, event = %d.event.event_type,
                attempt = d.attempt, %error, "webhooks: delivery failed for good"),
        }
        if !self
            .store
            .record_attempt(&d.id, d.attempt, &outcome, now)
            .await?
        {
            tracing::warn!(delivery = %d.id, "webhooks: claim expired before the result was recorded");
        }
        Ok(())
    }

    /// POSTs the signed event; the HTTP status, or why no status came back (never the secret).
    async fn send(&self, d: &ClaimedDelivery) -> Result<u16, String> {
        let ring = self
            .keys
            .as_deref()
            .ok_or_else(|| "no master key configured to open the signing secret".to_owned())?;
        let binding = secret_binding(d.event.account_id.as_str(), &d.webhook_id);
        let open = |sealed: &str| {
            open_secret(ring, &binding, sealed)
                .map_err(|_| "the signing secret cannot be opened with the master keys".to_owned())
        };
        let mut secrets = vec![open(&d.sealed_secret)?];
        if let Some(previous) = &d.sealed_previous_secret {
            secrets.push(open(previous)?);
        }
        let body = event_body(&d.event);
        let t = self.clock.now_ms().div_euclid(1000);
        let response = self
            .http
            .post(&d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                signature::SIGNATURE_HEADER,
                signature::sign_all(
                    &secrets.iter().map(|s| s.as_slice()).collect::<Vec<_>>(),
                    t,
                    &body,
                ),
            )
            .header(signature::EVENT_ID_HEADER, &d.event.id)
            .header(signature::DELIVERY_ID_HEADER, &d.id)
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e, self.config.timeout))?;
        Ok(response.status().as_u16())
    }
}

/// A short reason for a failed request, without the URL (it may carry the customer's tokens).
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timeout after {} ms", timeout.as_millis());
    }
    let kind = if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut cause = std::error::Error::source(e);
    let mut last = None;
    while let Some(c) = cause {
        last = Some(c.to_string());
        cause = c.source();
    }
    match last {
        Some(c) => format!("{kind}: {c}"),
        None => kind.to_owned(),
    }
}

/// Starts the dispatcher task; it stops when `shutdown` becomes true.
pub fn spawn(
    store: Store,
    keys: Option<Arc<MasterKeyRing>>,
    config: DispatcherConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, DispatchError> {
    let dispatcher = Dispatcher::new(store, keys, config)?;
    Ok(tokio::spawn(dispatcher.run(shutdown)))
}
