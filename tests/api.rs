//! The control-plane API over real HTTP on real SQLite and PostgreSQL: auth, scopes, tenancy
//! on every route, validation errors, CSV import, audit log.

mod api_client;
mod db;

use api_client::Api;
use leadscaller::control::api::{ApiState, ROUTES, router};
use leadscaller::store::Store;
use leadscaller::store::api_keys::Scope;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

/// The API served on a loopback port over `store`.
async fn serve(store: Store) -> String {
    serve_with(store, None).await
}

async fn serve_with(store: Store, stream_secret: Option<&str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(ApiState {
        stream_auth: stream_secret
            .map(|s| std::sync::Arc::new(leadscaller::leg::stream_auth::StreamAuth::new(s))),
        suppression_salt: Some(std::sync::Arc::new(
            leadscaller::store::suppression::SuppressionSalt::new(
                b"api-test-salt-api-test-salt-0123",
            ),
        )),
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

fn sample_call(from: &str) -> leadscaller::store::calls::CallRecordRow {
    let now = leadscaller::store::now_ms();
    leadscaller::store::calls::CallRecordRow {
        id: String::new(),
        direction: leadscaller::store::calls::Direction::Inbound,
        from: from.into(),
        to: "sip:agent@us".into(),
        trunk: None,
        campaign_id: None,
        lead_id: None,
        sip_call_id: Some("abc@host".into()),
        status: "ended".into(),
        setup_at: now,
        ring_at: None,
        answer_at: Some(now),
        end_at: Some(now + 1000),
        duration_ms: Some(1000),
        outcome: Some("completed".into()),
        disposition: None,
        notes: None,
        hangup_cause: None,
        sip_code: None,
        media_stats: json!({}),
        latency: json!([]),
        tool_calls: json!([]),
    }
}

async fn tenant(store: &Store, name: &str) -> String {
    let acc = store.create_account(name).await.unwrap();
    store
        .create_api_key(&acc.id, "test", Scope::Admin)
        .await
        .unwrap()
        .1
        .0
}

both_engines!(requests_without_a_valid_key_are_refused, |db| {
    let base = serve(db.store.clone()).await;
    let http = Client::new();
    for (method, path) in ROUTES {
        let path = path.replace("{id}", "x");
        let url = format!("{base}{path}");
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let none = http.request(m.clone(), &url).send().await.unwrap();
        assert_eq!(none.status(), 401, "{method} {path} without a key");
        let body: Value = none.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        let bad = http
            .request(m, &url)
            .bearer_auth("lc_000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 401, "{method} {path} with an unknown key");
    }
});

both_engines!(read_keys_cannot_write_and_revoked_keys_stop_working, |db| {
    let api = Api {
        base: serve(db.store.clone()).await,
        http: Client::new(),
    };
    let admin = tenant(&db.store, "acme").await;
    let created = api
        .ok(
            &admin,
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "dash", "scope": "read"})),
        )
        .await;
    let read = created["token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.ok(&read, Method::GET, "/v1/account", None).await["name"],
        "acme"
    );
    let (status, body) = api
        .call(
            &read,
            Method::POST,
            "/v1/dnc",
            Some(json!({"phone": "+14155552671"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    // The token is never shown again.
    let listed = api.ok(&admin, Method::GET, "/v1/api-keys", None).await;
    assert!(!listed.to_string().contains(&read));
    let id = created["id"].as_str().unwrap();
    api.ok(&admin, Method::DELETE, &format!("/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(
        api.call(&read, Method::GET, "/v1/account", None).await.0,
        401
    );
});

both_engines!(every_route_hides_another_tenants_rows, |db| {
    let api = Api {
        base: serve(db.store.clone()).await,
        http: Client::new(),
    };
    let a = tenant(&db.store, "a").await;
    let b = tenant(&db.store, "b").await;

    // Tenant A owns one of everything.
    let agent = api
        .ok(
            &a,
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "bot", "config": {"llm": {"name": "echo"}}})),
        )
        .await;
    let campaign = api
        .ok(
            &a,
            Method::POST,
            "/v1/campaigns",
            Some(json!({"name": "spring", "agent_id": agent["id"]})),
        )
        .await;
    let lead = api
        .ok(
            &a,
            Method::POST,
            "/v1/leads",
            Some(json!({"phone": "+14155552671", "first_name": "Ada",
            "campaign_id": campaign["id"], "consent_status": "express_written"})),
        )
        .await;
    let dnc = api
        .ok(
            &a,
            Method::POST,
            "/v1/dnc",
            Some(json!({"phone": "+442079460958"})),
        )
        .await;
    let keys = api.ok(&a, Method::GET, "/v1/api-keys", None).await;
    let key_id = keys["data"][0]["id"].as_str().unwrap().to_owned();
    // A call with a transcript and a recording, as the call layer stores them.
    let a_id = leadscaller::store::AccountId(
        api.ok(&a, Method::GET, "/v1/account", None).await["id"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let call_id = db
        .store
        .insert_call(&a_id, &sample_call("sip:+14155552671@carrier"))
        .await
        .unwrap();
    db.store
        .add_transcript(
            &a_id,
            &call_id,
            &[leadscaller::store::calls::TranscriptTurn {
                seq: 0,
                speaker: "caller".into(),
                text: "Ada speaking".into(),
                start_ms: 0,
                end_ms: 900,
                interrupted: false,
            }],
        )
        .await
        .unwrap();
    let rec_id = db
        .store
        .insert_recording(
            &a_id,
            &leadscaller::store::calls::RecordingRow {
                id: String::new(),
                call_id: call_id.clone(),
                storage_key: "call-a".into(),
                format: "wav".into(),
                bytes: 44,
                duration_ms: 1000,
                key_id: "k1".into(),
                created_at: leadscaller::store::now_ms(),
            },
        )
        .await
        .unwrap();
    let callback = db
        .store
        .add_callback(
            &a_id,
            &leadscaller::store::callbacks::NewCallback {
                call_id: call_id.clone(),
                lead_id: None,
                phone: Some("+14155552671".into()),
                requested: "tomorrow morning".into(),
                note: Some("Ada prefers mornings".into()),
            },
        )
        .await
        .unwrap();
    // This server has no key ring, so A's webhook is made in the store (secret sealed elsewhere).
    let a_account = api.ok(&a, Method::GET, "/v1/account", None).await;
    let a_account = leadscaller::store::AccountId(a_account["id"].as_str().unwrap().to_owned());
    let hook = db
        .store
        .create_webhook(
            &a_account,
            &leadscaller::store::webhooks::new_webhook_id(),
            "https://a.example.com/hook",
            &[leadscaller::store::events::EventType::CallEnded],
            "lcs1:k:sealed",
            true,
        )
        .await
        .unwrap();
    let event = db
        .store
        .emit_event(
            &a_account,
            leadscaller::store::events::EventType::CallEnded,
            None,
            None,
            json!({"secret_of_a": "Ada"}),
        )
        .await
        .unwrap();
    let secrets_of_a = [
        agent["id"].as_str().unwrap().to_owned(),
        campaign["id"].as_str().unwrap().to_owned(),
        lead["id"].as_str().unwrap().to_owned(),
        dnc["id"].as_str().unwrap().to_owned(),
        call_id.clone(),
        rec_id.clone(),
        key_id.clone(),
        hook.id.clone(),
        event.id.clone(),
        callback.id.clone(),
        "Ada prefers mornings".to_owned(),
        "a.example.com".to_owned(),
        "4155552671".to_owned(),
        "2079460958".to_owned(),
        "Ada".to_owned(),
    ];
    let id_for = |path: &str| -> String {
        let v = if path.starts_with("/v1/agents") {
            &agent["id"]
        } else if path.starts_with("/v1/campaigns") {
            &campaign["id"]
        } else if path.starts_with("/v1/leads") {
            &lead["id"]
        } else if path.starts_with("/v1/dnc") {
            &dnc["id"]
        } else if path.starts_with("/v1/calls") {
            return call_id.clone();
        } else if path.starts_with("/v1/recordings") {
            return rec_id.clone();
        } else if path.starts_with("/v1/webhooks") {
            return hook.id.clone();
        } else if path.starts_with("/v1/callbacks") {
            return callback.id.clone();
        } else {
            return key_id.clone();
        };
        v.as_str().unwrap().to_owned()
    };

    let mut walked = 0;
    for (method, template) in ROUTES {
        if *template == "/v1/account/close" {
            continue; // walked last: it ends B's access
        }
        let mut path = template.replace("{id}", &id_for(template));
        if *template == "/v1/streams/twiml" {
            path.push_str("?base_url=wss://media.example");
        }
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let body = match (*method, *template) {
            ("POST", "/v1/agents") | ("PATCH", "/v1/agents/{id}") => Some(json!({"name": "x"})),
            ("POST", "/v1/campaigns") => Some(json!({"name": "x", "agent_id": agent["id"]})),
            ("PATCH", "/v1/campaigns/{id}") => Some(json!({"name": "x"})),
            ("POST", "/v1/leads") => {
                Some(json!({"phone": "+14155550100", "campaign_id": campaign["id"]}))
            }
            ("PATCH", "/v1/leads/{id}") => Some(json!({"first_name": "Eve"})),
            ("POST", "/v1/dnc") => Some(json!({"phone": "+14155550101"})),
            ("POST", "/v1/api-keys") => Some(json!({"name": "x", "scope": "read"})),
            ("PATCH", "/v1/account") => Some(json!({"settings": {"recording_enabled": true}})),
            ("POST", "/v1/webhooks") | ("PATCH", "/v1/webhooks/{id}") => {
                Some(json!({"url": "https://b.example.com/hook", "event_types": ["call.ended"]}))
            }
            ("POST", "/v1/privacy/export") | ("POST", "/v1/privacy/erase") => {
                Some(json!({"lead_id": lead["id"]}))
            }
            _ => None,
        };
        let (status, v) = if template.ends_with("/import") {
            let url = format!(
                "{}{path}?phone=phone&campaign_id={}",
                api.base,
                campaign["id"].as_str().unwrap()
            );
            let r = api
                .http
                .post(url)
                .bearer_auth(&b)
                .body("phone\n+14155550102\n")
                .send()
                .await
                .unwrap();
            let st = r.status();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        } else {
            api.call(&b, m, &path, body).await
        };
        let text = v.to_string();
        // B's own audit log names the paths B typed (A's ids among them), nothing else of A's.
        let checked = if *template == "/v1/audit-log" {
            &secrets_of_a[8..]
        } else {
            &secrets_of_a[..]
        };
        for s in checked {
            assert!(
                !text.contains(s.as_str()),
                "{method} {template} leaked {s}: {text}"
            );
        }
        if template.contains("{id}") || template.starts_with("/v1/privacy/") {
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {template}: {text}");
        } else if *method == "GET" {
            assert!(status.is_success(), "{method} {template}: {status}");
            if let Some(rows) = v["data"]
                .as_array()
                .filter(|_| *template != "/v1/audit-log")
            {
                // B sees only what B made (its own key, audit entries, rows created above).
                for row in rows {
                    assert!(
                        !secrets_of_a
                            .iter()
                            .any(|s| row.to_string().contains(s.as_str()))
                    );
                }
            }
        } else {
            // Creating in B with A's agent or campaign is refused as a bad reference.
            assert!(
                status == StatusCode::UNPROCESSABLE_ENTITY || status.is_success(),
                "{method} {template}: {status} {text}"
            );
        }
        walked += 1;
    }
    assert_eq!(walked, ROUTES.len() - 1);

    // A's rows are intact after B's attempts.
    let lead_now = api
        .ok(
            &a,
            Method::GET,
            &format!("/v1/leads/{}", lead["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(lead_now["first_name"], "Ada");
    api.ok(
        &a,
        Method::GET,
        &format!("/v1/agents/{}", agent["id"].as_str().unwrap()),
        None,
    )
    .await;
    api.ok(
        &a,
        Method::GET,
        &format!("/v1/dnc/{}", dnc["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        api.ok(&a, Method::GET, "/v1/account", None).await["settings"]["recording_enabled"],
        false
    );

    let t = api
        .ok(
            &a,
            Method::GET,
            &format!("/v1/calls/{call_id}/transcript"),
            None,
        )
        .await;
    assert_eq!(t["turns"][0]["text"], "Ada speaking");
    let r = api
        .ok(&a, Method::GET, &format!("/v1/recordings/{rec_id}"), None)
        .await;
    assert_eq!(r["call_id"], call_id.as_str());

    // Closing B leaves A working.
    api.ok(
        &b,
        Method::POST,
        "/v1/account/close",
        Some(json!({"confirm": "close"})),
    )
    .await;
    assert_eq!(api.call(&b, Method::GET, "/v1/account", None).await.0, 401);
    api.ok(&a, Method::GET, "/v1/account", None).await;
});

both_engines!(bad_input_gets_the_error_body_with_the_field, |db| {
    let api = Api {
        base: serve(db.store.clone()).await,
        http: Client::new(),
    };
    let a = tenant(&db.store, "a").await;
    let cases = [
        (Method::POST, "/v1/leads", json!({"phone": "12"}), "phone"),
        (
            Method::POST,
            "/v1/leads",
            json!({"phone": "+14155552671", "timezone": "Mars/Base"}),
            "timezone",
        ),
        (
            Method::POST,
            "/v1/leads",
            json!({"phone": "+14155552671", "consent_status": "maybe"}),
            "consent_status",
        ),
        (
            Method::POST,
            "/v1/leads",
            json!({"phone": "+14155552671", "campaign_id": "cmp_nope"}),
            "campaign_id",
        ),
        (
            Method::POST,
            "/v1/agents",
            json!({"name": "x", "config": {"stt": {"name": "nope"}}}),
            "config.stt.name",
        ),
        (
            Method::POST,
            "/v1/campaigns",
            json!({"name": "x", "settings": {"max_attempts": 0}}),
            "settings.max_attempts",
        ),
        (
            Method::PATCH,
            "/v1/account",
            json!({"settings": {"closure_purge_days": 365}}),
            "settings.closure_purge_days",
        ),
        (
            Method::PATCH,
            "/v1/account",
            json!({"settings": {"colour": "red"}}),
            "settings.colour",
        ),
    ];
    for (m, path, body, field) in cases {
        let (status, v) = api.call(&a, m.clone(), path, Some(body.clone())).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{m} {path} {body}: {v}"
        );
        assert_eq!(v["error"]["field"], field, "{v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    let malformed = api
        .http
        .post(format!("{}/v1/leads", api.base))
        .bearer_auth(&a)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let v: Value = malformed.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bad_request");
    // Nothing was created by any of it.
    assert_eq!(
        api.ok(&a, Method::GET, "/v1/leads", None).await["data"],
        json!([])
    );
});

both_engines!(csv_import_reports_bad_rows_and_keeps_good_ones, |db| {
    let api = Api {
        base: serve(db.store.clone()).await,
        http: Client::new(),
    };
    let a = tenant(&db.store, "a").await;
    let campaign = api
        .ok(
            &a,
            Method::POST,
            "/v1/campaigns",
            Some(json!({"name": "c"})),
        )
        .await;
    let cid = campaign["id"].as_str().unwrap();
    let mut csv = String::from("Phone Number,First,Consent,TZ,Plan\n");
    csv.push_str("(415) 555-2671,Ada,express_written,,gold\n"); // line 2
    csv.push_str("not a number,Bob,verbal,,\n"); // line 3: bad phone
    csv.push_str("+44 20 7946 0958,Cy,written,,\n"); // line 4: bad consent
    csv.push_str("415-555-2671,Dup,none,,\n"); // line 5: duplicate of line 2
    csv.push_str("+1 212 555 0100,Eve,verbal,America/Chicago,silver\n"); // line 6
    for i in 0..1200 {
        csv.push_str(&format!("+1 646 555 {:04},Row{i},none,,\n", i));
    }
    let url = format!(
        "{}/v1/leads/import?campaign_id={cid}&phone=Phone%20Number&first_name=First&consent_status=Consent&timezone=TZ",
        api.base
    );
    let r = api
        .http
        .post(url.clone())
        .bearer_auth(&a)
        .body(csv.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (
            v["imported"].as_u64(),
            v["skipped"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(1202), Some(1), Some(2)),
        "{v}"
    );
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors[0]["line"], 3);
    assert_eq!(errors[0]["column"], "Phone Number");
    assert_eq!(errors[1]["line"], 4);
    assert_eq!(errors[1]["column"], "Consent");
    assert_eq!(v["skipped_rows"][0]["line"], 5);

    let mut all: Vec<Value> = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = api
            .ok(
                &a,
                Method::GET,
                &format!("/v1/leads?campaign_id={cid}&limit=500{cursor}"),
                None,
            )
            .await;
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(all.len(), 1202);
    let ada = all
        .iter()
        .find(|l| l["first_name"] == "Ada")
        .unwrap()
        .clone();
    assert_eq!(ada["phone"], "+14155552671");
    assert_eq!(ada["timezone"], "America/Los_Angeles");
    assert_eq!(ada["timezone_source"], "inferred");
    assert_eq!(ada["custom"]["Plan"], "gold");
    assert!(all.iter().any(|l| l["first_name"] == "Eve"
        && l["timezone"] == "America/Chicago"
        && l["timezone_source"] == "explicit"));

    // Importing the same file again imports nothing new: every number is already in the campaign.
    let again: Value = api
        .http
        .post(url)
        .bearer_auth(&a)
        .body(csv)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (again["imported"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(1203))
    );

    // The consent history of Ada says where it came from.
    let history = api
        .ok(
            &a,
            Method::GET,
            &format!("/v1/leads/{}/consent", ada["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(history["data"][0]["status"], "express_written");
    assert_eq!(history["data"][0]["source"], "import");
});

both_engines!(mutations_are_audited_with_key_and_source, |db| {
    let api = Api {
        base: serve(db.store.clone()).await,
        http: Client::new(),
    };
    let a = tenant(&db.store, "a").await;
    let d = api
        .ok(
            &a,
            Method::POST,
            "/v1/dnc",
            Some(json!({"phone": "+14155552671", "reason": "asked"})),
        )
        .await;
    api.ok(
        &a,
        Method::DELETE,
        &format!("/v1/dnc/{}", d["id"].as_str().unwrap()),
        None,
    )
    .await;
    let (status, _) = api
        .call(&a, Method::POST, "/v1/dnc", Some(json!({"phone": "x"})))
        .await;
    assert_eq!(status, 422);
    api.ok(&a, Method::GET, "/v1/leads", None).await;
    let log = api.ok(&a, Method::GET, "/v1/audit-log", None).await;
    let rows = log["data"].as_array().unwrap();
    let actions: Vec<(&str, i64)> = rows
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["status"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("POST /v1/dnc", 422),
            ("DELETE /v1/dnc/{id}", 204),
            ("POST /v1/dnc", 201)
        ],
        "reads are not audited"
    );
    assert_eq!(
        rows[1]["target"],
        format!("/v1/dnc/{}", d["id"].as_str().unwrap())
    );
    assert_eq!(rows[0]["source_ip"], "127.0.0.1");
    assert!(rows[0]["key_id"].as_str().unwrap().starts_with("key_"));
});

both_engines!(twiml_connects_to_our_stream_with_a_valid_token, |db| {
    let secret = "0123456789abcdef-stream";
    let api = Api {
        base: serve_with(db.store.clone(), Some(secret)).await,
        http: Client::new(),
    };
    let a = tenant(&db.store, "a").await;
    let r = api
        .http
        .get(format!(
            "{}/v1/streams/twiml?base_url=wss://media.example/&ttl_s=600",
            api.base
        ))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/xml; charset=utf-8");
    let doc = r.text().await.unwrap();
    assert!(
        doc.contains("<Stream url=\"wss://media.example/media-stream\">"),
        "{doc}"
    );
    let token = doc
        .split("name=\"token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let auth = leadscaller::leg::stream_auth::StreamAuth::new(secret);
    let now = leadscaller::leg::stream_auth::unix_now();
    assert_eq!(auth.verify(Some(token), now), Ok(()));
    assert!(
        auth.verify(Some(token), now + 601).is_err(),
        "expires after ttl_s"
    );
    let (status, v) = api
        .call(
            &a,
            Method::GET,
            "/v1/streams/twiml?base_url=https://x?y=1",
            None,
        )
        .await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("base_url"))
    );
    let (status, v) = api.call(&a, Method::GET, "/v1/streams/twiml", None).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
});

// Found by schemathesis (tests/schemathesis.rs): PostgreSQL cannot hold a NUL in text, so each
// of these was a 500 there; now both engines refuse them the same way.
both_engines!(nul_characters_are_refused_not_a_server_error, |db| {
    let api = Api {
        base: serve(db.store.clone()).await,
        http: Client::new(),
    };
    let a = tenant(&db.store, "a").await;
    let bodies = [
        ("/v1/agents", json!({"name": "a\u{0}b"}), "name"),
        (
            "/v1/dnc",
            json!({"phone": "+14155550111", "reason": "x\u{0}"}),
            "reason",
        ),
        (
            "/v1/leads",
            json!({"phone": "+14155552671", "custom": {"k": ["ok", "\u{0}"]}}),
            "custom.k[1]",
        ),
    ];
    for (path, body, field) in bodies {
        let (status, v) = api.call(&a, Method::POST, path, Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    for path in [
        "/v1/leads?cursor=a%00b",
        "/v1/leads/a%00b",
        "/v1/calls?status=%00",
        "/v1/events?cursor=%00",
    ] {
        let (status, v) = api.call(&a, Method::GET, path, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert_eq!(v["error"]["code"], "bad_request", "{v}");
    }
    let r = api
        .http
        .post(format!("{}/v1/dnc/import?phone=Phone&reason=Why", api.base))
        .bearer_auth(&a)
        .body("Phone,Why\n+14155550122,a\u{0}b\n+14155550123,ok\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["imported"].as_u64(), v["failed"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(v["errors"][0]["line"], 2, "{v}");
    assert_eq!(v["errors"][0]["column"], "Why", "{v}");
    // Nothing but the good DNC row was stored.
    assert_eq!(
        api.ok(&a, Method::GET, "/v1/agents", None).await["data"],
        json!([])
    );
    assert_eq!(
        api.ok(&a, Method::GET, "/v1/leads", None).await["data"],
        json!([])
    );
    assert_eq!(
        api.ok(&a, Method::GET, "/v1/dnc", None).await["data"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
});

// Oversize JSON bodies get 413 with the error body; unknown routes 404 with it; the server
// keeps serving.
both_engines!(oversize_bodies_get_413_and_unknown_routes_404, |db| {
    let api = Api {
        base: serve(db.store.clone()).await,
        http: Client::new(),
    };
    let a = tenant(&db.store, "a").await;
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(3 * 1024 * 1024));
    let r = api
        .http
        .post(format!("{}/v1/agents", api.base))
        .bearer_auth(&a)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "payload_too_large", "{v}");
    let (status, v) = api.call(&a, Method::GET, "/v1/no-such-thing", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    assert_eq!(
        api.ok(&a, Method::GET, "/v1/agents", None).await["data"],
        json!([])
    );
});

// A NUL in a leads CSV field fails that row (line and column), never the import: PostgreSQL
// cannot store a NUL in text.
both_engines!(a_nul_in_a_leads_csv_field_fails_only_that_row, |db| {
    let api = Api {
        base: serve(db.store.clone()).await,
        http: Client::new(),
    };
    let a = tenant(&db.store, "a").await;
    let r = api
        .http
        .post(format!(
            "{}/v1/leads/import?phone=Phone&first_name=First",
            api.base
        ))
        .bearer_auth(&a)
        .body("Phone,First\n+14155552671,A\u{0}da\n+14155552672,Grace\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["imported"].as_u64(), v["failed"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(v["errors"][0]["line"], 2, "{v}");
    assert_eq!(v["errors"][0]["column"], "First", "{v}");
});
