//! The control-plane API over real HTTP on real SQLite and PostgreSQL: auth, scopes, tenancy
//! on every route, validation errors, CSV import, audit log.

mod db;

use leadscaller::control::api::{ApiState, ROUTES, router};
use leadscaller::store::Store;
use leadscaller::store::api_keys::Scope;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

/// The API served on a loopback port over `store`.
async fn serve(store: Store) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(ApiState {
        store,
        keys: None,
        storage: None,
        suppression_salt: Some(std::sync::Arc::new(
            leadscaller::store::suppression::SuppressionSalt::new(
                b"api-test-salt-api-test-salt-0123",
            ),
        )),
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

struct Api {
    base: String,
    http: Client,
}

impl Api {
    async fn call(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn ok(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(token, method.clone(), path, body).await;
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
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
    let secrets_of_a = [
        agent["id"].as_str().unwrap().to_owned(),
        campaign["id"].as_str().unwrap().to_owned(),
        lead["id"].as_str().unwrap().to_owned(),
        dnc["id"].as_str().unwrap().to_owned(),
        key_id.clone(),
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
        let path = template.replace("{id}", &id_for(template));
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
            &secrets_of_a[5..]
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
