-- Leads and consent events clustered by account (WITHOUT ROWID, primary key led by
-- account_id): every query names its account, so the table itself is the index those
-- queries use, and an imported lead costs two B-tree inserts (the table and the
-- (account, phone, campaign) unique index) instead of five, its consent event one instead
-- of three. The unique index is ordered (account, phone, campaign) so that it also serves
-- look-ups by number across campaigns (erasure, DNC, events): `leads_phone` is dropped.
CREATE TABLE leads_by_account (
    id               TEXT NOT NULL,
    account_id       TEXT NOT NULL REFERENCES accounts(id),
    campaign_id      TEXT NOT NULL,
    phone            TEXT NOT NULL,
    first_name       TEXT,
    last_name        TEXT,
    email            TEXT,
    timezone         TEXT,
    timezone_source  TEXT NOT NULL,
    consent_status   TEXT NOT NULL,
    consent_source   TEXT,
    consent_at       BIGINT,
    consent_text     TEXT,
    external_id      TEXT,
    custom           TEXT NOT NULL,
    status           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (account_id, id),
    UNIQUE (account_id, phone, campaign_id)
) WITHOUT ROWID;
INSERT INTO leads_by_account (id, account_id, campaign_id, phone, first_name, last_name, email,
    timezone, timezone_source, consent_status, consent_source, consent_at, consent_text,
    external_id, custom, status, created_at, updated_at)
SELECT id, account_id, campaign_id, phone, first_name, last_name, email,
    timezone, timezone_source, consent_status, consent_source, consent_at, consent_text,
    external_id, custom, status, created_at, updated_at
FROM leads;
DROP TABLE leads;
ALTER TABLE leads_by_account RENAME TO leads;

CREATE TABLE consent_events_by_lead (
    id          TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    lead_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    source      TEXT,
    text        TEXT,
    call_id     TEXT,
    at          BIGINT NOT NULL,
    PRIMARY KEY (account_id, lead_id, id)
) WITHOUT ROWID;
INSERT INTO consent_events_by_lead (id, account_id, lead_id, status, source, text, call_id, at)
SELECT id, account_id, lead_id, status, source, text, call_id, at FROM consent_events;
DROP TABLE consent_events;
ALTER TABLE consent_events_by_lead RENAME TO consent_events;
