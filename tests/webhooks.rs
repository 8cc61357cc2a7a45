//! Webhooks end to end on SQLite and PostgreSQL: endpoints created through the API, events
//! emitted in the store, the dispatcher POSTing to a real local receiver that checks the
//! documented signature, retries on a manual clock, permanent failure, tenancy, secrets.

mod api_client;
mod db;

use api_client::Api;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::routing::post;
use leadscaller::control::api::{ApiState, router};
use leadscaller::control::webhooks::retry::RetryPolicy;
use leadscaller::control::webhooks::signature;
use leadscaller::control::webhooks::{Clock, Dispatcher, DispatcherConfig};
use leadscaller::store::api_keys::Scope;
use leadscaller::store::at_rest::MasterKeyRing;
use leadscaller::store::events::EventType;
use leadscaller::store::{AccountId, PageRequest, Store};
use reqwest::{Client, Method, StatusCode};
use ring::hmac;
use serde_json::{Value, json};

const KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn ring() -> Arc<MasterKeyRing> {
    Arc::new(MasterKeyRing::parse(KEY, "test").unwrap())
}

async fn serve_api(store: Store, keys: Option<Arc<MasterKeyRing>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(ApiState {
        keys,
        ..ApiState::new(store)
    });
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A local webhook receiver: records requests, answers from a script (then `default`).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    default: Arc<AtomicI64>,
}

impl Receiver {
    async fn start(default_status: u16, script: &[u16]) -> (Self, String) {
        let r = Receiver::default();
        r.default.store(i64::from(default_status), Ordering::SeqCst);
        r.script.lock().unwrap().extend(script);
        async fn hook(
            State(r): State<Receiver>,
            uri: axum::http::Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> AxStatus {
            if uri.path() == "/slow" {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            r.got.lock().unwrap().push(Received {
                path: uri.path().to_owned(),
                headers,
                body,
            });
            let code = r
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(r.default.load(Ordering::SeqCst) as u16);
            AxStatus::from_u16(code).unwrap()
        }
        let app = axum::Router::new()
            .route("/{*path}", post(hook))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, format!("http://{addr}"))
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// A clock the test moves by hand.
struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(leadscaller::store::now_ms())))
    }
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

fn dispatcher(store: &Store, clock: &Arc<ManualClock>, max_attempts: u32) -> Dispatcher {
    let config = DispatcherConfig {
        poll_interval: Duration::from_millis(10),
        batch: 32,
        timeout: Duration::from_millis(700),
        retry: RetryPolicy {
            delays: vec![Duration::from_secs(1), Duration::from_secs(2)],
            max_attempts,
        },
    };
    Dispatcher::new(store.clone(), Some(ring()), config)
        .unwrap()
        .with_clock(clock.clone())
}

/// A new account and an admin token for it.
async fn tenant(store: &Store, name: &str) -> (AccountId, String) {
    let acc = store.create_account(name).await.unwrap();
    let token = store
        .create_api_key(&acc.id, "test", Scope::Admin)
        .await
        .unwrap()
        .1
        .0;
    (acc.id, token)
}

async fn setup(store: &Store) -> (Api, AccountId, String) {
    let api = Api {
        base: serve_api(store.clone(), Some(ring())).await,
        http: Client::new(),
    };
    let (account, token) = tenant(store, "acme").await;
    (api, account, token)
}

async fn create_hook(api: &Api, token: &str, url: String, types: &[&str]) -> Value {
    api.ok(
        token,
        Method::POST,
        "/v1/webhooks",
        Some(json!({"url": url, "event_types": types})),
    )
    .await
}

/// The receiver side exactly as docs/webhooks.md describes it, without our helper.
fn documented_check(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = "";
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v,
            Some(("v1", v)) => v1.push(v),
            _ => {}
        }
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = format!("{t}.").into_bytes();
    msg.extend_from_slice(body);
    let expected: String = hmac::sign(&key, &msg)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let age = leadscaller::store::now_ms() / 1000 - t.parse::<i64>().unwrap();
    age.abs() <= 300 && v1.contains(&expected.as_str())
}

async fn deliveries(api: &Api, token: &str, hook: &Value) -> Vec<Value> {
    let id = hook["id"].as_str().unwrap();
    api.ok(
        token,
        Method::GET,
        &format!("/v1/webhooks/{id}/deliveries"),
        None,
    )
    .await["data"]
        .as_array()
        .unwrap()
        .clone()
}

both_engines!(a_signed_event_reaches_a_real_receiver, |db| {
    let (api, account, token) = setup(&db.store).await;
    let (rx, base) = Receiver::start(200, &[]).await;
    let hook = create_hook(
        &api,
        &token,
        format!("{base}/hook"),
        &["call.ended", "lead.opted_out"],
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let event = db
        .store
        .emit_event(
            &account,
            EventType::CallEnded,
            Some("call_1"),
            None,
            json!({"duration_ms": 61000, "outcome": "completed"}),
        )
        .await
        .unwrap();
    // Not subscribed: recorded as an event, never sent.
    db.store
        .emit_event(
            &account,
            EventType::TranscriptReady,
            Some("call_1"),
            None,
            json!({}),
        )
        .await
        .unwrap();

    let clock = ManualClock::new();
    let d = dispatcher(&db.store, &clock, 8);
    assert_eq!(d.run_once().await.unwrap(), 1);
    assert_eq!(d.run_once().await.unwrap(), 0);
    let got = rx.got();
    assert_eq!(got.len(), 1);
    let req = &got[0];
    let header = req.headers[signature::SIGNATURE_HEADER].to_str().unwrap();
    assert!(documented_check(&secret, header, &req.body), "{header}");
    assert!(!documented_check("whsec_wrong", header, &req.body));
    let now_s = leadscaller::store::now_ms() / 1000;
    assert_eq!(
        signature::verify(secret.as_bytes(), header, &req.body, now_s, 300),
        Ok(())
    );
    assert_eq!(req.headers[signature::EVENT_ID_HEADER], event.id.as_str());
    assert_eq!(req.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["id"], event.id.as_str());
    assert_eq!(body["type"], "call.ended");
    assert_eq!(body["account_id"], account.as_str());
    assert_eq!(body["data"]["outcome"], "completed");
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));

    let log = deliveries(&api, &token, &hook).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"], 1);
    assert_eq!(log[0]["last_status"], 200);
    assert_eq!(log[0]["event_id"], event.id.as_str());
    assert_eq!(log[0]["next_attempt_at"], Value::Null);

    // The event log, filtered by type; unknown types are refused.
    let all = api.ok(&token, Method::GET, "/v1/events", None).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    let ended = api
        .ok(&token, Method::GET, "/v1/events?type=call.ended", None)
        .await;
    assert_eq!(ended["data"].as_array().unwrap().len(), 1);
    assert_eq!(ended["data"][0]["id"], event.id.as_str());
    assert_eq!(ended["data"][0]["call_id"], "call_1");
    let (status, err) = api
        .call(&token, Method::GET, "/v1/events?type=call.exploded", None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let later = api
        .ok(&token, Method::GET, "/v1/events?since=2999-01-01", None)
        .await;
    assert!(later["data"].as_array().unwrap().is_empty());
});

both_engines!(failed_attempts_back_off_then_deliver, |db| {
    let (api, account, token) = setup(&db.store).await;
    let (rx, base) = Receiver::start(200, &[500, 500]).await;
    let hook = create_hook(&api, &token, format!("{base}/hook"), &["call.started"]).await;
    db.store
        .emit_event(&account, EventType::CallStarted, None, None, json!({}))
        .await
        .unwrap();
    let clock = ManualClock::new();
    let d = dispatcher(&db.store, &clock, 8);
    assert_eq!(d.run_once().await.unwrap(), 1); // 500
    let log = deliveries(&api, &token, &hook).await;
    assert_eq!(
        (
            &log[0]["status"],
            &log[0]["attempts"],
            &log[0]["last_status"]
        ),
        (&json!("pending"), &json!(1), &json!(500))
    );
    assert_eq!(log[0]["last_error"], "HTTP 500");
    assert_eq!(d.run_once().await.unwrap(), 0, "not due before its backoff");
    clock.advance(1_000);
    assert_eq!(d.run_once().await.unwrap(), 1); // 500 again; next wait is 2 s
    clock.advance(1_000);
    assert_eq!(d.run_once().await.unwrap(), 0);
    clock.advance(1_000);
    assert_eq!(d.run_once().await.unwrap(), 1); // 200
    let log = deliveries(&api, &token, &hook).await;
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["last_status"], 200);
    assert_eq!(log[0]["last_error"], Value::Null);
    let got = rx.got();
    assert_eq!(got.len(), 3);
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.headers[signature::EVENT_ID_HEADER].clone())
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one event id on every retry"
    );
    // Filter the log by status.
    let id = hook["id"].as_str().unwrap();
    let failed = api
        .ok(
            &token,
            Method::GET,
            &format!("/v1/webhooks/{id}/deliveries?status=failed"),
            None,
        )
        .await;
    assert!(failed["data"].as_array().unwrap().is_empty());
});

both_engines!(a_delivery_fails_for_good_after_max_attempts, |db| {
    let (api, account, token) = setup(&db.store).await;
    let (rx, base) = Receiver::start(503, &[]).await;
    let hook = create_hook(&api, &token, format!("{base}/hook"), &["call.ended"]).await;
    db.store
        .emit_event(&account, EventType::CallEnded, None, None, json!({}))
        .await
        .unwrap();
    let clock = ManualClock::new();
    let d = dispatcher(&db.store, &clock, 3);
    for _ in 0..3 {
        assert_eq!(d.run_once().await.unwrap(), 1);
        clock.advance(10_000);
    }
    assert_eq!(d.run_once().await.unwrap(), 0);
    clock.advance(86_400_000);
    assert_eq!(
        d.run_once().await.unwrap(),
        0,
        "a failed delivery is never retried"
    );
    assert_eq!(rx.got().len(), 3);
    let log = deliveries(&api, &token, &hook).await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["last_status"], 503);
    assert_eq!(log[0]["last_error"], "HTTP 503");
});

both_engines!(slow_and_unreachable_endpoints_are_failed_attempts, |db| {
    let (api, account, token) = setup(&db.store).await;
    let (_rx, base) = Receiver::start(200, &[]).await;
    let slow = create_hook(&api, &token, format!("{base}/slow"), &["call.ended"]).await;
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gone = create_hook(&api, &token, format!("http://{closed}/x"), &["call.ended"]).await;
    db.store
        .emit_event(&account, EventType::CallEnded, None, None, json!({}))
        .await
        .unwrap();
    let clock = ManualClock::new();
    let d = dispatcher(&db.store, &clock, 8);
    let started = std::time::Instant::now();
    assert_eq!(d.run_once().await.unwrap(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the timeout bounds a round"
    );
    let log = deliveries(&api, &token, &slow).await;
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(log[0]["last_status"], Value::Null);
    assert!(
        log[0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("timeout"),
        "{}",
        log[0]
    );
    let log = deliveries(&api, &token, &gone).await;
    assert_eq!(log[0]["status"], "pending");
    assert!(
        log[0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("connection failed"),
        "{}",
        log[0]
    );
});

both_engines!(another_tenant_cannot_see_or_trigger_webhooks, |db| {
    let (api, a_account, a) = setup(&db.store).await;
    let (_b_account, b) = tenant(&db.store, "other").await;
    let (rx, base) = Receiver::start(200, &[]).await;
    let hook = create_hook(&api, &a, format!("{base}/one"), &["call.ended"]).await;
    let other = create_hook(&api, &a, format!("{base}/two"), &["call.ended"]).await;
    db.store
        .emit_event(&a_account, EventType::CallEnded, None, None, json!({}))
        .await
        .unwrap();
    let id = hook["id"].as_str().unwrap();
    for (m, path, body) in [
        (Method::GET, format!("/v1/webhooks/{id}"), None),
        (
            Method::PATCH,
            format!("/v1/webhooks/{id}"),
            Some(json!({"enabled": false})),
        ),
        (Method::DELETE, format!("/v1/webhooks/{id}"), None),
        (Method::GET, format!("/v1/webhooks/{id}/deliveries"), None),
        (Method::POST, format!("/v1/webhooks/{id}/test"), None),
    ] {
        let (status, v) = api.call(&b, m.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{m} {path}: {v}");
    }
    let listed = api.ok(&b, Method::GET, "/v1/webhooks", None).await;
    assert!(listed["data"].as_array().unwrap().is_empty());
    let events = api.ok(&b, Method::GET, "/v1/events", None).await;
    assert!(events["data"].as_array().unwrap().is_empty());

    // A's own test goes to that one endpoint only.
    let clock = ManualClock::new();
    let d = dispatcher(&db.store, &clock, 8);
    assert_eq!(d.run_once().await.unwrap(), 2); // the call.ended to both
    let (status, test) = api
        .call(&a, Method::POST, &format!("/v1/webhooks/{id}/test"), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{test}");
    clock.advance(1_000); // the manual clock lags the store's real one
    assert_eq!(d.run_once().await.unwrap(), 1);
    let got = rx.got();
    let tests: Vec<_> = got
        .iter()
        .filter(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["type"] == "webhook.test")
        .collect();
    assert_eq!(tests.len(), 1);
    assert_eq!(tests[0].path, "/one");
    assert_eq!(
        tests[0].headers[signature::EVENT_ID_HEADER],
        test["event_id"].as_str().unwrap()
    );
    assert_eq!(deliveries(&api, &a, &other).await.len(), 1);
    // Disabled endpoints get nothing, and cannot be tested.
    api.ok(
        &a,
        Method::PATCH,
        &format!("/v1/webhooks/{id}"),
        Some(json!({"enabled": false})),
    )
    .await;
    let (status, _) = api
        .call(&a, Method::POST, &format!("/v1/webhooks/{id}/test"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    db.store
        .emit_event(&a_account, EventType::CallEnded, None, None, json!({}))
        .await
        .unwrap();
    clock.advance(1_000); // the manual clock lags the store's real one
    assert_eq!(d.run_once().await.unwrap(), 1, "only the enabled endpoint");
    assert_eq!(deliveries(&api, &a, &hook).await.len(), 2);
    // Deleting removes the endpoint and its log.
    api.ok(&a, Method::DELETE, &format!("/v1/webhooks/{id}"), None)
        .await;
    let (status, _) = api
        .call(&a, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
});

both_engines!(the_secret_is_shown_once_and_stored_sealed, |db| {
    let (api, _account, token) = setup(&db.store).await;
    let hook = create_hook(
        &api,
        &token,
        "https://example.com/hooks/lc?x=1".to_owned(),
        &["call.ended", "call.ended", "call.started"],
    )
    .await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 64,
        "{secret}"
    );
    assert_eq!(hook["event_types"], json!(["call.started", "call.ended"]));
    assert_eq!(hook["enabled"], true);
    let id = hook["id"].as_str().unwrap();
    let one = api
        .ok(&token, Method::GET, &format!("/v1/webhooks/{id}"), None)
        .await;
    let list = api.ok(&token, Method::GET, "/v1/webhooks", None).await;
    let audit = api.ok(&token, Method::GET, "/v1/audit-log", None).await;
    for v in [&one, &list, &audit] {
        assert!(!v.to_string().contains(&secret[6..]), "{v}");
        assert!(!v.to_string().contains("lcs1:"), "{v}");
    }
    assert_eq!(one["url"], "https://example.com/hooks/lc?x=1");
    let stored: String = sqlx_free_secret(&db.store, &token, &api, id).await;
    assert!(stored.starts_with("lcs1:"), "sealed at rest");
    assert!(!stored.contains(&secret[6..]));

    // Validation.
    for (body, field) in [
        (
            json!({"url": "ftp://x.example/", "event_types": ["call.ended"]}),
            "url",
        ),
        (
            json!({"url": "not a url", "event_types": ["call.ended"]}),
            "url",
        ),
        (json!({"url": "https://x.example/"}), "event_types"),
        (
            json!({"url": "https://x.example/", "event_types": []}),
            "event_types",
        ),
        (
            json!({"url": "https://x.example/", "event_types": ["call.exploded"]}),
            "event_types[0]",
        ),
        (
            json!({"url": "https://x.example/", "event_types": ["call.ended", "webhook.test"]}),
            "event_types[1]",
        ),
    ] {
        let (status, v) = api
            .call(&token, Method::POST, "/v1/webhooks", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    // A PATCH changes url, types, enabled, never the secret.
    let patched = api
        .ok(
            &token,
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            Some(json!({"url": "http://example.org/h", "event_types": ["lead.opted_out"], "enabled": false})),
        )
        .await;
    assert_eq!(patched["url"], "http://example.org/h");
    assert_eq!(patched["event_types"], json!(["lead.opted_out"]));
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched.get("secret"), None);

    // Without a key ring the secret cannot be stored, so no endpoint is created.
    let bare = Api {
        base: serve_api(db.store.clone(), None).await,
        http: Client::new(),
    };
    let (status, v) = bare
        .call(
            &token,
            Method::POST,
            "/v1/webhooks",
            Some(json!({"url": "https://x.example/", "event_types": ["call.ended"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["field"], "secret");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("master key")
    );
});

/// The stored (sealed) secret column of webhook `id`, read through the store API.
async fn sqlx_free_secret(store: &Store, token: &str, api: &Api, id: &str) -> String {
    let account = api.ok(token, Method::GET, "/v1/account", None).await;
    let account = AccountId(account["id"].as_str().unwrap().to_owned());
    store.webhook(&account, id).await.unwrap().sealed_secret
}

both_engines!(an_opt_out_during_a_call_emits_lead_opted_out, |db| {
    let (api, account, token) = setup(&db.store).await;
    let (rx, base) = Receiver::start(200, &[]).await;
    create_hook(&api, &token, format!("{base}/hook"), &["lead.opted_out"]).await;
    db.store
        .add_dnc(
            &account,
            "+14155550100",
            Some("asked"),
            "call",
            Some("call_9"),
        )
        .await
        .unwrap();
    // Already listed: no second event. Other sources: none at all.
    db.store
        .add_dnc(&account, "+14155550100", None, "call", Some("call_10"))
        .await
        .unwrap();
    db.store
        .add_dnc(&account, "+14155550101", None, "api", None)
        .await
        .unwrap();
    let page = db
        .store
        .list_events(
            &account,
            &PageRequest::default(),
            Some(EventType::LeadOptedOut),
        )
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1);
    let e = &page.data[0];
    assert_eq!(e.call_id.as_deref(), Some("call_9"));
    assert_eq!(e.payload["phone"], "+14155550100");
    assert_eq!(e.payload["reason"], "asked");
    let clock = ManualClock::new();
    let d = dispatcher(&db.store, &clock, 8);
    assert_eq!(d.run_once().await.unwrap(), 1);
    let body: Value = serde_json::from_slice(&rx.got()[0].body).unwrap();
    assert_eq!(body["type"], "lead.opted_out");
    assert_eq!(body["data"]["call_id"], "call_9");
});

both_engines!(two_dispatchers_deliver_each_event_once, |db| {
    let (api, account, token) = setup(&db.store).await;
    let (rx, base) = Receiver::start(200, &[]).await;
    create_hook(&api, &token, format!("{base}/hook"), &["call.ended"]).await;
    for i in 0..20 {
        db.store
            .emit_event(&account, EventType::CallEnded, None, None, json!({"i": i}))
            .await
            .unwrap();
    }
    let clock = ManualClock::new();
    // Two nodes: two pools on one database.
    let other_node = Store::connect(&db.url).await.unwrap();
    let d1 = dispatcher(&db.store, &clock, 8);
    let d2 = dispatcher(&other_node, &clock, 8);
    let (n1, n2) = tokio::join!(d1.run_once(), d2.run_once());
    let (n1, n2) = (n1.unwrap(), n2.unwrap());
    assert_eq!(n1 + n2, 20, "{n1} + {n2}");
    let mut ids: Vec<String> = rx
        .got()
        .iter()
        .map(|r| {
            r.headers[signature::EVENT_ID_HEADER]
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    assert_eq!(rx.got().len(), 20);
});

both_engines!(
    the_spawned_dispatcher_delivers_and_stops_on_shutdown,
    |db| {
        let (api, account, token) = setup(&db.store).await;
        let (rx, base) = Receiver::start(200, &[]).await;
        create_hook(&api, &token, format!("{base}/hook"), &["recording.ready"]).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let config = DispatcherConfig {
            poll_interval: Duration::from_millis(20),
            ..DispatcherConfig::default()
        };
        let task =
            leadscaller::control::webhooks::spawn(db.store.clone(), Some(ring()), config, stopped)
                .unwrap();
        db.store
            .emit_event(
                &account,
                EventType::RecordingReady,
                Some("call_1"),
                None,
                json!({}),
            )
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while rx.got().is_empty() {
            assert!(std::time::Instant::now() < deadline, "not delivered in 5 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("the dispatcher stops on shutdown")
            .unwrap();
        assert_eq!(rx.got().len(), 1);
    }
);

both_engines!(a_delivery_whose_event_was_purged_is_closed, |db| {
    let (api, account, token) = setup(&db.store).await;
    let (rx, base) = Receiver::start(200, &[]).await;
    let hook = create_hook(&api, &token, format!("{base}/hook"), &["call.ended"]).await;
    let event = db
        .store
        .emit_event(&account, EventType::CallEnded, None, None, json!({}))
        .await
        .unwrap();
    // What a retention purge does to the event log.
    db.store
        .execute_raw(&format!("DELETE FROM events WHERE id = '{}'", event.id))
        .await
        .unwrap();
    let clock = ManualClock::new();
    let d = dispatcher(&db.store, &clock, 8);
    assert_eq!(d.run_once().await.unwrap(), 0);
    clock.advance(3_600_000);
    assert_eq!(d.run_once().await.unwrap(), 0, "not claimed again");
    assert!(rx.got().is_empty());
    let log = deliveries(&api, &token, &hook).await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(
        log[0]["last_error"],
        "the event or endpoint no longer exists"
    );
});

// Rotation: the new secret is shown once; for `grace_s` both secrets sign each delivery (two
// `v1=` entries, any one verifies), then only the new one; `grace_s: 0` drops the old at once.
both_engines!(
    a_rotated_secret_signs_beside_the_old_one_for_the_grace,
    |db| {
        let (api, account, token) = setup(&db.store).await;
        let (rx, base) = Receiver::start(200, &[]).await;
        let hook = create_hook(&api, &token, format!("{base}/hook"), &["call.ended"]).await;
        let id = hook["id"].as_str().unwrap().to_owned();
        let old = hook["secret"].as_str().unwrap().to_owned();
        let rotate = |body: Value| {
            let api = &api;
            let token = &token;
            let path = format!("/v1/webhooks/{id}/rotate-secret");
            async move { api.call(token, Method::POST, &path, Some(body)).await }
        };
        let (status, v) = rotate(json!({"grace_s": 60})).await;
        assert_eq!(status, 200, "{v}");
        let new = v["secret"].as_str().unwrap().to_owned();
        assert!(new.starts_with("whsec_") && new != old, "{v}");
        assert!(v["previous_secret_expires_at"].is_string(), "{v}");
        let (_, shown) = api
            .call(&token, Method::GET, &format!("/v1/webhooks/{id}"), None)
            .await;
        assert!(
            !shown.to_string().contains(&new),
            "the secret is shown only once"
        );

        let clock = ManualClock::new();
        clock.advance(1000); // events emitted from now on are due
        let d = dispatcher(&db.store, &clock, 8);
        let send = |n: usize| {
            let hook_id = id.clone();
            let store = db.store.clone();
            let account = account.clone();
            let d = &d;
            let rx = &rx;
            async move {
                store
                    .emit_event(
                        &account,
                        EventType::CallEnded,
                        Some("call_1"),
                        None,
                        json!({}),
                    )
                    .await
                    .unwrap();
                let ran = d.run_once().await.unwrap();
                let log = store
                    .list_deliveries(
                        &account,
                        &hook_id,
                        &leadscaller::store::PageRequest::default(),
                    )
                    .await
                    .map(|p| format!("{:?}", p.data))
                    .unwrap_or_default();
                assert_eq!(ran, 1, "send {n}: {log}");
                let got = rx.got();
                assert_eq!(got.len(), n);
                let r = &got[n - 1];
                (
                    r.headers[signature::SIGNATURE_HEADER]
                        .to_str()
                        .unwrap()
                        .to_owned(),
                    r.body.clone(),
                )
            }
        };
        // During the grace both verify, each with the documented check.
        let (header, body) = send(1).await;
        assert_eq!(header.matches("v1=").count(), 2, "{header}");
        assert!(documented_check(&old, &header, &body), "{header}");
        assert!(documented_check(&new, &header, &body), "{header}");
        // After it, only the new one.
        clock.advance(61_000);
        let (header, body) = send(2).await;
        assert_eq!(header.matches("v1=").count(), 1, "{header}");
        assert!(documented_check(&new, &header, &body), "{header}");
        assert!(!documented_check(&old, &header, &body), "{header}");
        // No grace: the replaced secret stops at once.
        let (status, v) = rotate(json!({"grace_s": 0})).await;
        assert_eq!(status, 200, "{v}");
        let newest = v["secret"].as_str().unwrap().to_owned();
        let (header, body) = send(3).await;
        assert_eq!(header.matches("v1=").count(), 1, "{header}");
        assert!(documented_check(&newest, &header, &body), "{header}");
        assert!(!documented_check(&new, &header, &body), "{header}");
        // Bounds and tenancy.
        let (status, v) = rotate(json!({"grace_s": 700000})).await;
        assert_eq!(status, 422, "{v}");
        assert_eq!(v["error"]["field"], "grace_s");
        let (_, other) = tenant(&db.store, "other").await;
        let (status, v) = api
            .call(
                &other,
                Method::POST,
                &format!("/v1/webhooks/{id}/rotate-secret"),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, 404, "{v}");
        assert!(!v.to_string().contains("whsec_"), "{v}");
    }
);
