-- Control plane: accounts, API keys, audit log, agents, campaigns, leads, consent, DNC.
-- Times are integer milliseconds since the Unix epoch (UTC); JSON is stored as TEXT.
-- Every tenant-owned table carries account_id and is only ever queried with it.
CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL,
    settings    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    closed_at   BIGINT
);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id),
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL UNIQUE,
    token_hash    TEXT NOT NULL,
    scope         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_keys_account ON api_keys(account_id, id);

CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    key_id      TEXT,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    source_ip   TEXT,
    status      INTEGER NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX audit_log_account ON audit_log(account_id, id);

CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    name        TEXT NOT NULL,
    config      TEXT NOT NULL,
    secrets     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX agents_account ON agents(account_id, id);

CREATE TABLE campaigns (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    name        TEXT NOT NULL,
    agent_id    TEXT REFERENCES agents(id),
    trunk       TEXT,
    caller_id   TEXT,
    status      TEXT NOT NULL,
    settings    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX campaigns_account ON campaigns(account_id, id);

CREATE TABLE leads (
    id               TEXT PRIMARY KEY,
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
    UNIQUE (account_id, campaign_id, phone)
);
CREATE INDEX leads_account ON leads(account_id, id);
CREATE INDEX leads_phone ON leads(account_id, phone);

CREATE TABLE consent_events (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    lead_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    source      TEXT,
    text        TEXT,
    call_id     TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX consent_events_lead ON consent_events(account_id, lead_id, id);

CREATE TABLE dnc (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id),
    phone       TEXT NOT NULL,
    reason      TEXT,
    source      TEXT NOT NULL,
    call_id     TEXT,
    created_at  BIGINT NOT NULL,
    UNIQUE (account_id, phone)
);
CREATE INDEX dnc_account ON dnc(account_id, id);
