//! Privacy jobs on real SQLite and PostgreSQL with a fake clock: retention purge, closure purge,
//! data-subject export (zip contents, decrypted recordings) and erasure (suppression), over the
//! API too (tenancy, audit).

mod db;

use std::io::Read;
use std::sync::Arc;

use leadscaller::control::api::{ApiState, router};
use leadscaller::media::storage::{FsStorage, RecordingStorage, StorageError};
use leadscaller::privacy::{self, PrivacyError, Subject};
use leadscaller::store::accounts::{AccountSettings, AccountStatus};
use leadscaller::store::api_keys::Scope;
use leadscaller::store::at_rest::MasterKeyRing;
use leadscaller::store::campaigns::{Campaign, CampaignSettings, CampaignStatus};
use leadscaller::store::leads::{ConsentStatus, LeadFields};
use leadscaller::store::suppression::SuppressionSalt;
use leadscaller::store::{AccountId, PageRequest, Store, StoreError};
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};

/// The fake "now" every job runs at (2027-01-15).
const NOW: i64 = 1_800_000_000_000;
const DAY: i64 = 86_400_000;
/// The data subject's number, and someone else's.
const PHONE: &str = "+14155552671";
const OTHER: &str = "+14155550199";

struct World {
    store: Store,
    pool: AnyPool,
    storage: Arc<dyn RecordingStorage>,
    salt: SuppressionSalt,
    _dir: tempfile::TempDir,
}

async fn world(db: &db::TestDb) -> World {
    let dir = tempfile::tempdir().unwrap();
    let keys =
        MasterKeyRing::parse("t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "test").unwrap();
    let storage: Arc<dyn RecordingStorage> =
        Arc::new(FsStorage::encrypted(dir.path(), Arc::new(keys)));
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    World {
        store: db.store.clone(),
        pool,
        storage,
        salt: SuppressionSalt::new(b"privacy-test-salt-0123456789abcdef"),
        _dir: dir,
    }
}

impl World {
    async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn count(&self, sql: &str) -> i64 {
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.try_get::<i64, _>(0).unwrap()
    }

    async fn account(&self, name: &str, settings: AccountSettings) -> AccountId {
        let acc = self.store.create_account(name).await.unwrap();
        self.store
            .update_account_settings(&acc.id, &settings)
            .await
            .unwrap();
        acc.id
    }

    async fn campaign(&self, account: &AccountId, name: &str) -> String {
        self.store
            .create_campaign(
                account,
                &Campaign {
                    id: String::new(),
                    name: name.into(),
                    agent_id: None,
                    trunk: None,
                    caller_id: None,
                    status: CampaignStatus::Draft,
                    settings: CampaignSettings::default(),
                    created_at: 0,
                    updated_at: 0,
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn lead(&self, account: &AccountId, campaign: &str, phone: &str, name: &str) -> String {
        self.store
            .create_lead(
                account,
                &LeadFields {
                    campaign_id: Some(campaign.into()),
                    phone: phone.into(),
                    first_name: Some(name.into()),
                    consent_status: Some(ConsentStatus::ExpressWritten),
                    consent_source: Some("web form".into()),
                    ..LeadFields::default()
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn call(&self, account: &AccountId, id: &str, from: &str, to: &str, lead: Option<&str>) {
        let lead = lead.map_or("NULL".to_owned(), |l| format!("'{l}'"));
        self.exec(&format!(
            "INSERT INTO calls (id, account_id, direction, from_number, to_number, lead_id, status, \
             setup_at, notes, media_stats, latency, tool_calls, created_at) VALUES ('{id}', '{account}', \
             'outbound', '{from}', '{to}', {lead}, 'completed', {NOW}, 'said she is {from}', '{{}}', '{{}}', \
             '[{{\"name\":\"end_call\"}}]', {NOW})"
        ))
        .await;
    }

    async fn turn(&self, account: &AccountId, id: &str, call: &str, seq: i64, created_at: i64) {
        self.exec(&format!(
            "INSERT INTO transcript_turns (id, account_id, call_id, seq, speaker, text, start_ms, \
             end_ms, interrupted, created_at) VALUES ('{id}', '{account}', '{call}', {seq}, 'lead', \
             'my number is 415 555 2671', 0, 900, FALSE, {created_at})"
        ))
        .await;
    }

    /// An encrypted recording file plus its row; returns the plaintext stored.
    async fn recording(
        &self,
        account: &AccountId,
        id: &str,
        call: &str,
        created_at: i64,
    ) -> Vec<u8> {
        let key = format!("{account}/{id}.wav");
        let header = b"RIFF-final-header".to_vec();
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut sink = self.storage.create(&key, &[0u8; 17]).unwrap();
        sink.write(&body).unwrap();
        sink.finish(&header).unwrap();
        self.exec(&format!(
            "INSERT INTO recordings (id, account_id, call_id, storage_key, format, bytes, \
             duration_ms, key_id, created_at) VALUES ('{id}', '{account}', '{call}', '{key}', 'wav', \
             {}, 6000, 't1', {created_at})",
            header.len() + body.len()
        ))
        .await;
        [header, body].concat()
    }

    async fn event(&self, account: &AccountId, id: &str, call: Option<&str>, lead: Option<&str>) {
        let q = |v: Option<&str>| v.map_or("NULL".to_owned(), |v| format!("'{v}'"));
        self.exec(&format!(
            "INSERT INTO events (id, account_id, type, call_id, lead_id, payload, created_at) VALUES \
             ('{id}', '{account}', 'call.ended', {}, {}, '{{\"to\":\"{PHONE}\"}}', {NOW})",
            q(call),
            q(lead)
        ))
        .await;
        self.exec(&format!(
            "INSERT INTO webhook_deliveries (id, account_id, webhook_id, event_id, status, attempts, \
             next_attempt_at, created_at, updated_at) VALUES ('d_{id}', '{account}', 'wh_1', '{id}', \
             'delivered', 1, 0, {NOW}, {NOW})"
        ))
        .await;
    }

    fn has_file(&self, account: &AccountId, id: &str) -> bool {
        match self.storage.open(&format!("{account}/{id}.wav")) {
            Ok(_) => true,
            Err(StorageError::NotFound { .. }) => false,
            Err(e) => panic!("{e}"),
        }
    }

    async fn audit(&self, account: &AccountId) -> Vec<(String, String)> {
        let page = self
            .store
            .list_audit(
                account,
                &PageRequest {
                    limit: Some(500),
                    ..PageRequest::default()
                },
            )
            .await
            .unwrap();
        page.data
            .into_iter()
            .map(|e| (e.action, e.target))
            .collect()
    }
}

fn settings(rec_days: u32, turn_days: u32) -> AccountSettings {
    AccountSettings {
        recording_retention_days: rec_days,
        transcript_retention_days: turn_days,
        closure_purge_days: 30,
        ..AccountSettings::default()
    }
}

both_engines!(retention_deletes_exactly_the_expired_rows_and_files, |db| {
    let w = world(&db).await;
    let a = w.account("a", settings(30, 10)).await;
    let b = w.account("b", settings(90, 90)).await;
    w.call(&a, "call_a", OTHER, PHONE, None).await;
    w.call(&b, "call_b", OTHER, PHONE, None).await;
    w.recording(&a, "rec_old", "call_a", NOW - 31 * DAY).await;
    w.recording(&a, "rec_edge", "call_a", NOW - 30 * DAY).await;
    w.recording(&a, "rec_new", "call_a", NOW - 29 * DAY).await;
    w.recording(&b, "rec_b", "call_b", NOW - 31 * DAY).await;
    w.turn(&a, "t_old", "call_a", 1, NOW - 11 * DAY).await;
    w.turn(&a, "t_new", "call_a", 2, NOW - 9 * DAY).await;
    w.turn(&b, "t_b", "call_b", 1, NOW - 11 * DAY).await;

    let r = privacy::purge_expired(&w.store, &w.storage, NOW)
        .await
        .unwrap();
    assert_eq!((r.recordings, r.transcript_turns, r.failed), (1, 1, 0));
    assert!(!w.has_file(&a, "rec_old"));
    for (acc, id) in [(&a, "rec_edge"), (&a, "rec_new"), (&b, "rec_b")] {
        assert!(w.has_file(acc, id), "{id} must stay");
    }
    let left =
        |t: &'static str| format!("SELECT COUNT(*) FROM {t} WHERE id IN ('rec_old', 't_old')");
    assert_eq!(w.count(&left("recordings")).await, 0);
    assert_eq!(w.count(&left("transcript_turns")).await, 0);
    assert_eq!(w.count("SELECT COUNT(*) FROM recordings").await, 3);
    assert_eq!(w.count("SELECT COUNT(*) FROM transcript_turns").await, 2);

    // Idempotent: a second run at the same time removes nothing and audits nothing.
    let again = privacy::purge_expired(&w.store, &w.storage, NOW)
        .await
        .unwrap();
    assert!(!again.removed_anything());
    let audit = w.audit(&a).await;
    let purges: Vec<_> = audit
        .iter()
        .filter(|(action, _)| action == "privacy.retention_purge")
        .collect();
    assert_eq!(purges.len(), 1, "{audit:?}");
    assert_eq!(purges[0].1, "recordings=1 transcript_turns=1");
    assert!(w.audit(&b).await.is_empty());

    // A day later the edge recording has expired too.
    let later = privacy::purge_expired(&w.store, &w.storage, NOW + DAY)
        .await
        .unwrap();
    assert_eq!(later.recordings, 1);
    assert!(!w.has_file(&a, "rec_edge"));
    assert!(w.has_file(&a, "rec_new"));
});

/// Tables that hold an account's data (all must be empty after the closure purge).
const TABLES: &[&str] = &[
    "leads",
    "consent_events",
    "dnc",
    "calls",
    "transcript_turns",
    "recordings",
    "events",
    "webhooks",
    "webhook_deliveries",
    "agents",
    "campaigns",
    "api_keys",
    "suppression",
];

async fn fill_account(w: &World, acc: &AccountId, tag: &str) {
    let campaign = w.campaign(acc, "spring").await;
    let lead = w.lead(acc, &campaign, PHONE, "Ada").await;
    w.store
        .add_dnc(acc, OTHER, None, "api", None)
        .await
        .unwrap();
    w.store
        .create_agent(acc, "bot", &json!({}), &Default::default())
        .await
        .unwrap();
    w.store
        .create_api_key(acc, "k", Scope::Admin)
        .await
        .unwrap();
    let call = format!("call_{tag}");
    w.call(acc, &call, OTHER, PHONE, Some(&lead)).await;
    w.turn(acc, &format!("t_{tag}"), &call, 1, NOW).await;
    w.recording(acc, &format!("rec_{tag}"), &call, NOW).await;
    w.event(acc, &format!("ev_{tag}"), Some(&call), Some(&lead))
        .await;
    w.exec(&format!(
        "INSERT INTO webhooks (id, account_id, url, event_types, secret, enabled, created_at, \
         updated_at) VALUES ('wh_{tag}', '{acc}', 'https://example.com/h', '[]', 'sealed', TRUE, 0, 0)"
    ))
    .await;
    w.store
        .suppress(acc, &w.salt, "+15550001111", NOW)
        .await
        .unwrap();
}

both_engines!(
    closed_accounts_are_purged_after_the_period_not_before,
    |db| {
        let w = world(&db).await;
        let a = w.account("closing", settings(90, 90)).await;
        let b = w.account("staying", settings(90, 90)).await;
        fill_account(&w, &a, "a").await;
        fill_account(&w, &b, "b").await;
        let closed_at = NOW - 40 * DAY;
        w.store.close_account(&a, closed_at).await.unwrap();

        // 29 days after closing (closure_purge_days = 30): nothing happens.
        let r = privacy::purge_closed(&w.store, &w.storage, closed_at + 29 * DAY)
            .await
            .unwrap();
        assert!(r.accounts.is_empty());
        assert_eq!(
            w.store.account(&a).await.unwrap().status,
            AccountStatus::Closed
        );
        assert!(w.has_file(&a, "rec_a"));

        let r = privacy::purge_closed(&w.store, &w.storage, closed_at + 30 * DAY)
            .await
            .unwrap();
        assert_eq!(r.accounts, vec![a.clone()]);
        assert_eq!(r.files, 1);
        for t in TABLES {
            let sql = format!("SELECT COUNT(*) FROM {t} WHERE account_id = '{}'", a);
            assert_eq!(w.count(&sql).await, 0, "{t} of the purged account");
            let sql = format!("SELECT COUNT(*) FROM {t} WHERE account_id = '{}'", b);
            assert!(w.count(&sql).await > 0, "{t} of the other account");
        }
        assert!(!w.has_file(&a, "rec_a"));
        assert!(w.has_file(&b, "rec_b"));
        let purged = w.store.account(&a).await.unwrap();
        assert_eq!(purged.status, AccountStatus::Purged);
        assert!(matches!(
            w.store.create_account("closing").await,
            Err(StoreError::Conflict(_))
        ));
        let audit = w.audit(&a).await;
        assert!(
            audit
                .iter()
                .any(|(action, target)| action == "privacy.closure_purge"
                    && target.contains("rows=")),
            "{audit:?}"
        );
        // Idempotent.
        let again = privacy::purge_closed(&w.store, &w.storage, NOW)
            .await
            .unwrap();
        assert!(again.accounts.is_empty());
    }
);

/// Account A: the subject has two leads (two campaigns) and two calls (one linked to a lead,
/// one inbound with no lead); someone else has a lead and a call. Account B has a lead with the
/// same number.
struct Scene {
    a: AccountId,
    b: AccountId,
    lead1: String,
    lead2: String,
    other_lead: String,
    b_lead: String,
    recording: Vec<u8>,
}

async fn scene(w: &World) -> Scene {
    let a = w.account("a", settings(90, 90)).await;
    let b = w.account("b", settings(90, 90)).await;
    let c1 = w.campaign(&a, "one").await;
    let c2 = w.campaign(&a, "two").await;
    let lead1 = w.lead(&a, &c1, PHONE, "Ada").await;
    let lead2 = w.lead(&a, &c2, PHONE, "Ada L.").await;
    let other_lead = w.lead(&a, &c1, OTHER, "Bob").await;
    let cb = w.campaign(&b, "b").await;
    let b_lead = w.lead(&b, &cb, PHONE, "Ada at B").await;
    w.call(&a, "call_1", "+12125550000", PHONE, Some(&lead1))
        .await;
    w.call(&a, "call_2", PHONE, "+12125550000", None).await;
    w.call(&a, "call_3", "+12125550000", OTHER, Some(&other_lead))
        .await;
    w.call(&b, "call_b", "+12125550000", PHONE, Some(&b_lead))
        .await;
    w.turn(&a, "t_1a", "call_1", 1, NOW).await;
    w.turn(&a, "t_1b", "call_1", 2, NOW).await;
    w.turn(&a, "t_3", "call_3", 1, NOW).await;
    let recording = w.recording(&a, "rec_1", "call_1", NOW).await;
    w.recording(&a, "rec_3", "call_3", NOW).await;
    w.event(&a, "ev_lead", None, Some(&lead2)).await;
    w.event(&a, "ev_call2", Some("call_2"), None).await;
    w.event(&a, "ev_call3", Some("call_3"), Some(&other_lead))
        .await;
    w.store
        .add_dnc(&a, PHONE, None, "call", None)
        .await
        .unwrap();
    w.store.add_dnc(&a, OTHER, None, "api", None).await.unwrap();
    for (call, phone) in [("call_1", PHONE), ("call_3", OTHER)] {
        w.store
            .add_callback(
                &a,
                &leadscaller::store::callbacks::NewCallback {
                    call_id: call.into(),
                    lead_id: None,
                    phone: Some(phone.into()),
                    requested: format!("tomorrow morning ({call})"),
                    note: None,
                },
            )
            .await
            .unwrap();
    }
    Scene {
        a,
        b,
        lead1,
        lead2,
        other_lead,
        b_lead,
        recording,
    }
}

fn zip_json(zip: &mut zip::ZipArchive<std::io::Cursor<Vec<u8>>>, name: &str) -> Value {
    let mut text = String::new();
    zip.by_name(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .read_to_string(&mut text)
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

both_engines!(
    export_holds_everything_about_the_subject_and_nothing_else,
    |db| {
        let w = world(&db).await;
        let s = scene(&w).await;
        let mut export = privacy::export(
            &w.store,
            Some(&w.storage),
            &s.a,
            &Subject::LeadId(s.lead1.clone()),
            NOW,
        )
        .await
        .unwrap();
        assert_eq!((export.leads, export.calls, export.recordings), (2, 2, 1));
        let mut bytes = Vec::new();
        export.file.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, export.bytes);
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();

        let leads = zip_json(&mut zip, "lead.json");
        let mut want = vec![s.lead1.clone(), s.lead2.clone()];
        want.sort();
        assert_eq!(ids(&leads), want);
        assert_eq!(leads[0]["phone"], PHONE);
        let consent = zip_json(&mut zip, "consent_history.json");
        assert_eq!(consent.as_array().unwrap().len(), 2);
        assert!(
            consent
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["status"] == "express_written")
        );
        let calls = zip_json(&mut zip, "calls.json");
        assert_eq!(ids(&calls), ["call_1", "call_2"]);
        assert_eq!(calls[0]["tool_calls"][0]["name"], "end_call");
        let turns = zip_json(&mut zip, "transcripts.json");
        assert_eq!(ids(&turns), ["t_1a", "t_1b"]);
        assert_eq!(turns[0]["interrupted"], false);
        assert_eq!(turns[1]["seq"], 2);
        let events = zip_json(&mut zip, "events.json");
        // The opt-out captured in a call (the DNC entry with source `call`) is an event about
        // the subject too.
        let ev_ids = ids(&events);
        assert_eq!(ev_ids.len(), 3, "{ev_ids:?}");
        assert!(
            ev_ids.iter().any(|i| i == "ev_call2") && ev_ids.iter().any(|i| i == "ev_lead"),
            "{ev_ids:?}"
        );
        assert_eq!(
            events
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["type"] == "lead.opted_out")
                .count(),
            1
        );
        assert_eq!(events[0]["payload"]["to"], PHONE);
        let recs = zip_json(&mut zip, "recordings.json");
        assert_eq!(ids(&recs), ["rec_1"]);
        assert_eq!(recs[0]["file"], "recordings/rec_1.wav");
        assert!(recs[0].get("storage_key").is_none());
        let mut audio = Vec::new();
        zip.by_name("recordings/rec_1.wav")
            .unwrap()
            .read_to_end(&mut audio)
            .unwrap();
        assert!(audio == s.recording, "the recording is exported decrypted");
        let callbacks = zip_json(&mut zip, "callbacks.json");
        assert_eq!(callbacks.as_array().unwrap().len(), 1, "{callbacks}");
        assert_eq!(callbacks[0]["requested"], "tomorrow morning (call_1)");
        assert_eq!(zip.len(), 8);

        // By number (national format, the account's default region), the same subject.
        let by_phone = privacy::export(
            &w.store,
            Some(&w.storage),
            &s.a,
            &Subject::Phone("(415) 555-2671".into()),
            NOW,
        )
        .await
        .unwrap();
        assert_eq!((by_phone.leads, by_phone.calls), (2, 2));
        // Other tenants' and unknown subjects are not found.
        for (acc, subject) in [
            (&s.b, Subject::LeadId(s.lead1.clone())),
            (&s.a, Subject::LeadId(s.b_lead.clone())),
            (&s.a, Subject::Phone("+14155550000".into())),
        ] {
            let got = privacy::export(&w.store, Some(&w.storage), acc, &subject, NOW).await;
            assert!(matches!(got, Err(PrivacyError::NotFound)), "{subject:?}");
        }
        let audit = w.audit(&s.a).await;
        let exports: Vec<_> = audit
            .iter()
            .filter(|(a, _)| a == "privacy.export")
            .collect();
        assert_eq!(exports.len(), 2);
        assert_eq!(exports[1].1, "leads=2 calls=2 recordings=1");
        assert!(!format!("{audit:?}").contains("555"));
    }
);

both_engines!(
    erasure_removes_the_subject_and_suppresses_the_number,
    |db| {
        let w = world(&db).await;
        let s = scene(&w).await;
        let report = privacy::erase(
            &w.store,
            Some(&w.storage),
            &w.salt,
            &s.a,
            &Subject::Phone("415-555-2671".into()),
            NOW,
        )
        .await
        .unwrap();
        assert_eq!(
            (
                report.leads,
                report.consent_events,
                report.calls,
                report.transcript_turns,
                report.recordings,
                report.events,
                report.dnc,
                report.callbacks,
                report.suppressed
            ),
            (2, 2, 2, 2, 1, 3, 1, 1, true),
            "events: two seeded plus the lead.opted_out of the call's opt-out"
        );
        let w = &w;
        let count = |sql: String| async move { w.count(&sql).await };
        let a = &s.a;
        assert_eq!(
            count(format!(
                "SELECT COUNT(*) FROM leads WHERE account_id = '{a}' AND phone = '{PHONE}'"
            ))
            .await,
            0
        );
        assert_eq!(
            count(format!(
                "SELECT COUNT(*) FROM consent_events WHERE lead_id IN ('{}', '{}')",
                s.lead1, s.lead2
            ))
            .await,
            0
        );
        assert_eq!(
            count(format!(
                "SELECT COUNT(*) FROM calls WHERE account_id = '{a}' AND from_number = 'erased' \
             AND to_number = 'erased' AND notes IS NULL AND tool_calls = '[]'"
            ))
            .await,
            2
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM transcript_turns WHERE call_id = 'call_1'".into()).await,
            0
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM recordings WHERE id = 'rec_1'".into()).await,
            0
        );
        assert!(!w.has_file(a, "rec_1"));
        assert_eq!(
            count("SELECT COUNT(*) FROM events WHERE id IN ('ev_lead', 'ev_call2')".into()).await,
            0
        );
        assert_eq!(
            count(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE event_id IN ('ev_lead', 'ev_call2')"
                    .into()
            )
            .await,
            0
        );
        assert_eq!(
            count(format!(
                "SELECT COUNT(*) FROM dnc WHERE account_id = '{a}' AND phone = '{PHONE}'"
            ))
            .await,
            0
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM callbacks WHERE call_id = 'call_1'".into()).await,
            0
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM callbacks WHERE call_id = 'call_3'".into()).await,
            1
        );
        // Everyone else is untouched.
        w.store.lead(a, &s.other_lead).await.unwrap();
        w.store.lead(&s.b, &s.b_lead).await.unwrap();
        assert!(w.has_file(a, "rec_3"));
        assert_eq!(
            count("SELECT COUNT(*) FROM transcript_turns WHERE call_id = 'call_3'".into()).await,
            1
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM events WHERE id = 'ev_call3'".into()).await,
            1
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM webhook_deliveries WHERE event_id = 'ev_call3'".into())
                .await,
            1
        );
        assert_eq!(
            count(format!(
                "SELECT COUNT(*) FROM calls WHERE to_number = '{PHONE}'"
            ))
            .await,
            1,
            "B's call keeps its number"
        );
        assert!(w.store.is_dnc(a, OTHER).await.unwrap());

        // The number is suppressed in A only, and the table holds no number.
        assert!(w.store.is_suppressed(a, &w.salt, PHONE).await.unwrap());
        assert!(!w.store.is_suppressed(a, &w.salt, OTHER).await.unwrap());
        assert!(!w.store.is_suppressed(&s.b, &w.salt, PHONE).await.unwrap());
        assert_eq!(
            count("SELECT COUNT(*) FROM suppression WHERE phone_hash LIKE '%4155552671%'".into())
                .await,
            0
        );

        // Nothing is left to find; the audit entry has counts, never the number.
        let again = privacy::erase(
            &w.store,
            Some(&w.storage),
            &w.salt,
            a,
            &Subject::Phone(PHONE.into()),
            NOW,
        )
        .await;
        assert!(matches!(again, Err(PrivacyError::NotFound)));
        let audit = w.audit(a).await;
        let erase: Vec<_> = audit.iter().filter(|(x, _)| x == "privacy.erase").collect();
        assert_eq!(erase.len(), 1);
        assert_eq!(
            erase[0].1,
            "leads=2 calls=2 recordings=1 transcript_turns=2 events=3"
        );
    }
);

async fn serve(w: &World) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(ApiState {
        storage: Some(w.storage.clone()),
        suppression_salt: Some(Arc::new(w.salt.clone())),
        ..ApiState::new(w.store.clone())
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

both_engines!(
    the_api_exports_and_erases_only_in_the_callers_account,
    |db| {
        let w = world(&db).await;
        let s = scene(&w).await;
        let base = serve(&w).await;
        let token = |acc: AccountId| {
            let store = w.store.clone();
            async move {
                store
                    .create_api_key(&acc, "t", Scope::Admin)
                    .await
                    .unwrap()
                    .1
                    .0
            }
        };
        let (ta, tb) = (token(s.a.clone()).await, token(s.b.clone()).await);
        let http = reqwest::Client::new();
        let post = |tok: &str, path: &str, body: Value| {
            http.post(format!("{base}{path}"))
                .bearer_auth(tok)
                .json(&body)
                .send()
        };

        // B cannot reach A's subject by A's lead id; by number B finds only its own lead.
        for path in ["/v1/privacy/export", "/v1/privacy/erase"] {
            let r = post(&tb, path, json!({"lead_id": s.lead1})).await.unwrap();
            assert_eq!(r.status(), 404, "{path}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "not_found");
        }
        let r = post(&tb, "/v1/privacy/export", json!({"phone": "+14155550199"}))
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let r = post(
            &ta,
            "/v1/privacy/export",
            json!({"lead_id": "x", "phone": PHONE}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 422);
        let r = post(&ta, "/v1/privacy/export", json!({"phone": "not a number"}))
            .await
            .unwrap();
        assert_eq!(r.status(), 422);

        let r = post(&ta, "/v1/privacy/export", json!({"phone": PHONE}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/zip");
        let bytes = r.bytes().await.unwrap().to_vec();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(zip_json(&mut zip, "lead.json").as_array().unwrap().len(), 2);

        let r = post(&ta, "/v1/privacy/erase", json!({"lead_id": s.lead2}))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["erased"]["leads"], 2);
        assert_eq!(body["erased"]["suppressed"], true);
        assert!(w.store.is_suppressed(&s.a, &w.salt, PHONE).await.unwrap());
        // B's lead with the same number is untouched.
        w.store.lead(&s.b, &s.b_lead).await.unwrap();

        let audit = w.audit(&s.a).await;
        let actions: Vec<&str> = audit.iter().map(|(a, _)| a.as_str()).collect();
        for want in [
            "POST /v1/privacy/export",
            "POST /v1/privacy/erase",
            "privacy.export",
            "privacy.erase",
        ] {
            assert!(actions.contains(&want), "{want} in {actions:?}");
        }
        assert!(!format!("{audit:?}").contains("4155552671"));
        let b_audit = w.audit(&s.b).await;
        assert!(!b_audit.iter().any(|(a, _)| a.starts_with("privacy.")));
    }
);

both_engines!(
    the_scheduled_purge_runs_at_start_and_stops_on_shutdown,
    |db| {
        let w = world(&db).await;
        let a = w.account("a", settings(90, 90)).await;
        let now = leadscaller::store::now_ms();
        w.call(&a, "call_a", OTHER, PHONE, None).await;
        w.recording(&a, "rec_old", "call_a", now - 91 * DAY).await;
        w.recording(&a, "rec_new", "call_a", now - DAY).await;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = privacy::spawn_purges(
            w.store.clone(),
            w.storage.clone(),
            std::time::Duration::from_secs(3600),
            stopped,
        );
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while w.count("SELECT COUNT(*) FROM recordings").await != 1 {
            assert!(tokio::time::Instant::now() < deadline, "purge did not run");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(!w.has_file(&a, "rec_old"));
        assert!(w.has_file(&a, "rec_new"));
        stop.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the purge task stops on shutdown")
            .unwrap();
    }
);
