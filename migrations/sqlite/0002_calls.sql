-- Calls (CDR), their transcripts and recordings, and the erasure suppression list.
CREATE TABLE calls (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL REFERENCES accounts(id),
    direction      TEXT NOT NULL,
    from_number    TEXT NOT NULL,
    to_number      TEXT NOT NULL,
    trunk          TEXT,
    campaign_id    TEXT,
    lead_id        TEXT,
    sip_call_id    TEXT,
    status         TEXT NOT NULL,
    setup_at       BIGINT NOT NULL,
    ring_at        BIGINT,
    answer_at      BIGINT,
    end_at         BIGINT,
    duration_ms    BIGINT,
    outcome        TEXT,
    disposition    TEXT,
    notes          TEXT,
    hangup_cause   TEXT,
    sip_code       INTEGER,
    media_stats    TEXT NOT NULL,
    latency        TEXT NOT NULL,
    tool_calls     TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX calls_account ON calls(account_id, id);
CREATE INDEX calls_lead ON calls(account_id, lead_id);
CREATE INDEX calls_sip ON calls(sip_call_id);

CREATE TABLE transcript_turns (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    call_id      TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    speaker      TEXT NOT NULL,
    text         TEXT NOT NULL,
    start_ms     BIGINT NOT NULL,
    end_ms       BIGINT NOT NULL,
    interrupted  BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX transcript_turns_call ON transcript_turns(account_id, call_id, seq);

CREATE TABLE recordings (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    call_id      TEXT NOT NULL,
    storage_key  TEXT NOT NULL,
    format       TEXT NOT NULL,
    bytes        BIGINT NOT NULL,
    duration_ms  BIGINT NOT NULL,
    key_id       TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX recordings_account ON recordings(account_id, id);
CREATE INDEX recordings_call ON recordings(account_id, call_id);

-- An erased number leaves only a salted hash so it is never dialled again.
CREATE TABLE suppression (
    account_id   TEXT NOT NULL,
    phone_hash   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (account_id, phone_hash)
);

-- Events (call.started, call.answered, call.ended, transcript.ready, recording.ready,
-- lead.opted_out) and their webhook deliveries.
CREATE TABLE events (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    type         TEXT NOT NULL,
    call_id      TEXT,
    lead_id      TEXT,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX events_account ON events(account_id, id);
CREATE INDEX events_lead ON events(account_id, lead_id);

CREATE TABLE webhooks (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    url          TEXT NOT NULL,
    event_types  TEXT NOT NULL,
    secret       TEXT NOT NULL,
    enabled      BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX webhooks_account ON webhooks(account_id, id);

CREATE TABLE webhook_deliveries (
    id             TEXT PRIMARY KEY,
    account_id     TEXT NOT NULL,
    webhook_id     TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_status    INTEGER,
    last_error     TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_account ON webhook_deliveries(account_id, webhook_id, id);
