//! The store on real SQLite and real PostgreSQL: migrations, tenancy, keys, leads, consent, DNC.

mod db;

use leadscaller::store::api_keys::{AuthFailure, Scope};
use leadscaller::store::campaigns::{Campaign, CampaignSettings, CampaignStatus};
use leadscaller::store::leads::{ConsentStatus, LeadFields};
use leadscaller::store::{PageRequest, StoreError, now_ms};

fn lead(phone: &str) -> LeadFields {
    LeadFields {
        phone: phone.to_owned(),
        first_name: Some("Ada".to_owned()),
        consent_status: Some(ConsentStatus::ExpressWritten),
        consent_source: Some("https://example.com/form".to_owned()),
        ..LeadFields::default()
    }
}

both_engines!(migrations_are_idempotent, |db| {
    assert_eq!(
        db.store.migrate().await.unwrap(),
        0,
        "second run applies nothing"
    );
    // A second node opening the same database does not fail either.
    let again = leadscaller::store::Store::open(&db.url).await.unwrap();
    again.close().await;
});

both_engines!(
    api_keys_authenticate_revoke_and_stop_with_the_account,
    |db| {
        let s = &db.store;
        let acc = s.create_account("acme").await.unwrap();
        assert!(matches!(
            s.create_account("acme").await,
            Err(StoreError::Conflict(_))
        ));
        let (key, token) = s.create_api_key(&acc.id, "ci", Scope::Admin).await.unwrap();
        assert!(token.0.starts_with(&format!("lc_{}_", key.prefix)));
        let got = s.authenticate(&token.0).await.unwrap().unwrap();
        assert_eq!(
            (got.id.as_str(), got.scope),
            (key.id.as_str(), Scope::Admin)
        );
        assert!(got.last_used_at.is_none());
        let listed = s
            .list_api_keys(&acc.id, &PageRequest::default())
            .await
            .unwrap();
        assert!(listed.data[0].last_used_at.is_some(), "use is recorded");

        // One changed character of the secret is refused.
        let mut bad = token.0.clone();
        let last = bad.pop().unwrap();
        bad.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            s.authenticate(&bad).await.unwrap(),
            Err(AuthFailure::Unknown)
        );
        assert_eq!(
            s.authenticate("nonsense").await.unwrap(),
            Err(AuthFailure::Malformed)
        );

        s.revoke_api_key(&acc.id, &key.id).await.unwrap();
        assert_eq!(
            s.authenticate(&token.0).await.unwrap(),
            Err(AuthFailure::Revoked)
        );

        let (_, token2) = s
            .create_api_key(&acc.id, "second", Scope::Read)
            .await
            .unwrap();
        s.close_account(&acc.id, now_ms()).await.unwrap();
        assert_eq!(
            s.authenticate(&token2.0).await.unwrap(),
            Err(AuthFailure::AccountClosed)
        );
    }
);

both_engines!(rows_of_another_account_are_invisible, |db| {
    let s = &db.store;
    let a = s.create_account("a").await.unwrap().id;
    let b = s.create_account("b").await.unwrap().id;
    let la = s.create_lead(&a, &lead("+14155552671")).await.unwrap();
    let (ka, _) = s.create_api_key(&a, "k", Scope::Admin).await.unwrap();
    let agent = s
        .create_agent(&a, "bot", &serde_json::json!({}), &Default::default())
        .await
        .unwrap();
    assert!(matches!(
        s.lead(&b, &la.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.api_key(&b, &ka.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.revoke_api_key(&b, &ka.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.agent(&b, &agent.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.delete_lead(&b, &la.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        s.list_leads(&b, &PageRequest::default(), None)
            .await
            .unwrap()
            .data
            .is_empty()
    );
    // B cannot attach A's agent to its own campaign.
    let c = Campaign {
        id: String::new(),
        name: "steal".into(),
        agent_id: Some(agent.id.clone()),
        trunk: None,
        caller_id: None,
        status: CampaignStatus::Draft,
        settings: CampaignSettings::default(),
        created_at: 0,
        updated_at: 0,
    };
    assert!(matches!(
        s.create_campaign(&b, &c).await,
        Err(StoreError::NotFound)
    ));
    assert!(s.create_campaign(&a, &c).await.is_ok());
    // The same number may be a lead of both accounts.
    s.create_lead(&b, &lead("+14155552671")).await.unwrap();
    assert!(s.lead(&a, &la.id).await.is_ok(), "A's lead untouched");
});

both_engines!(leads_page_dedupe_and_keep_consent_history, |db| {
    let s = &db.store;
    let a = s.create_account("a").await.unwrap().id;
    let batch: Vec<_> = (0..7)
        .map(|i| lead(&format!("+1415555{:04}", 2600 + i % 5)))
        .collect();
    let out = s.insert_leads(&a, &batch).await.unwrap();
    assert_eq!(out.imported, 5);
    assert_eq!(out.duplicates, vec![5, 6]);

    let mut seen = Vec::new();
    let mut page = PageRequest {
        limit: Some(2),
        ..PageRequest::default()
    };
    loop {
        let p = s.list_leads(&a, &page, None).await.unwrap();
        assert!(p.data.len() <= 2);
        seen.extend(p.data.iter().map(|l| l.id.clone()));
        match p.next_cursor {
            Some(c) => page.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first, no repeats");

    let l = s.lead(&a, &seen[0]).await.unwrap();
    let mut f = l.fields.clone();
    f.consent_status = Some(ConsentStatus::Revoked);
    f.consent_source = None;
    s.update_lead(&a, &l.id, &f, "api").await.unwrap();
    let history = s.consent_history(&a, &l.id).await.unwrap();
    let statuses: Vec<_> = history.iter().map(|e| e.status).collect();
    assert_eq!(
        statuses,
        [ConsentStatus::ExpressWritten, ConsentStatus::Revoked]
    );
    assert_eq!(history[1].source.as_deref(), Some("api"));

    // An opt-out marks the lead so the dialler skips it.
    s.add_dnc(&a, &l.fields.phone, Some("asked"), "call", Some("call_x"))
        .await
        .unwrap();
    assert!(s.is_dnc(&a, &l.fields.phone).await.unwrap());
    assert_eq!(s.lead(&a, &l.id).await.unwrap().status, "dnc");
    let again = s
        .add_dnc(&a, &l.fields.phone, None, "api", None)
        .await
        .unwrap();
    assert_eq!(again.source, "call", "first entry kept");
    let filtered = s
        .list_leads(
            &a,
            &PageRequest {
                status: Some("dnc".into()),
                ..PageRequest::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(filtered.data.len(), 1);
});

#[tokio::test]
async fn servers_starting_together_on_one_sqlite_file_migrate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    let opens = (0..4).map(|_| leadscaller::store::Store::open(&url));
    let stores = futures_util::future::join_all(opens).await;
    for s in &stores {
        assert!(s.is_ok(), "{:?}", s.as_ref().err());
    }
    let store = stores.into_iter().next().unwrap().unwrap();
    assert_eq!(store.migrate().await.unwrap(), 0);
    store.create_account("after").await.unwrap();
}

both_engines!(
    lead_batches_span_statements_and_skip_existing_numbers,
    |db| {
        // 250 rows: several multi-row INSERT statements; rows 40..60 are already in the store,
        // rows 200.. repeat numbers of the same batch, odd rows have no consent.
        let s = &db.store;
        let a = s.create_account("a").await.unwrap().id;
        let phone = |i: usize| format!("+1415555{:04}", 3000 + i % 200);
        let before: Vec<_> = (40..60).map(|i| lead(&phone(i))).collect();
        assert_eq!(s.insert_leads(&a, &before).await.unwrap().imported, 20);
        let batch: Vec<_> = (0..250)
            .map(|i| {
                let mut l = lead(&phone(i));
                if i % 2 == 1 {
                    l.consent_status = None;
                }
                l
            })
            .collect();
        let out = s.insert_leads(&a, &batch).await.unwrap();
        assert_eq!(out.imported, 180);
        let expected: Vec<usize> = (40..60).chain(200..250).collect();
        assert_eq!(out.duplicates, expected);
        let page = PageRequest {
            limit: Some(200),
            ..PageRequest::default()
        };
        let leads = s.list_leads(&a, &page, None).await.unwrap().data;
        assert_eq!(leads.len(), 200);
        let no_consent = leads.iter().find(|l| l.fields.phone == phone(1)).unwrap();
        assert!(
            s.consent_history(&a, &no_consent.id)
                .await
                .unwrap()
                .is_empty()
        );
        let consented = leads.iter().find(|l| l.fields.phone == phone(2)).unwrap();
        let history = s.consent_history(&a, &consented.id).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].status, ConsentStatus::ExpressWritten);
        assert_eq!(
            history[0].source.as_deref(),
            Some("https://example.com/form")
        );
    }
);

// What the CDR writer does with an agent's report: a `schedule_callback` becomes a callback
// request with the caller's number, listed by status.
both_engines!(an_agents_callback_request_is_stored_with_the_call, |db| {
    use leadscaller::agent::report::AgentReport;
    use leadscaller::agent::tools::ToolCall;
    let account = db.store.create_account("acme").await.unwrap().id;
    let mut report = AgentReport::new("scripted");
    report.tool(
        &ToolCall::ScheduleCallback {
            when: "tomorrow morning".into(),
            note: Some("Booked by the automated assistant".into()),
        },
        43_700,
    );
    leadscaller::call::agent_record::store(
        &db.store,
        &account,
        "call_1",
        "sip:+14155552671@carrier.example",
        &report,
    )
    .await;
    let page = db
        .store
        .list_callbacks(&account, &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(page.data.len(), 1);
    let cb = &page.data[0];
    assert_eq!(
        (
            cb.call_id.as_str(),
            cb.phone.as_deref(),
            cb.requested.as_str()
        ),
        ("call_1", Some("+14155552671"), "tomorrow morning")
    );
    assert_eq!(cb.status, "requested");
    let other = db.store.create_account("other").await.unwrap().id;
    assert!(matches!(
        db.store.callback(&other, &cb.id).await,
        Err(StoreError::NotFound)
    ));
});
