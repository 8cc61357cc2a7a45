-- Callbacks a lead asked for during a call (the agent's `schedule_callback`): what they said,
-- for the dialer and for people. Erased with the lead's number; purged with the account.
CREATE TABLE callbacks (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts(id),
    call_id      TEXT NOT NULL,
    lead_id      TEXT,
    phone        TEXT,
    requested    TEXT NOT NULL,
    note         TEXT,
    status       TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX callbacks_account ON callbacks(account_id, id);
CREATE INDEX callbacks_call ON callbacks(account_id, call_id);
