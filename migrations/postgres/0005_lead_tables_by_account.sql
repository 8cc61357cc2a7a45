-- The unique index on leads is ordered (account, phone, campaign) so that it also serves
-- look-ups by number across campaigns (erasure, DNC, events): `leads_phone` is dropped, one
-- index less to maintain per imported lead. (SQLite also clusters leads and consent events
-- by account; PostgreSQL tables are heaps, so their indexes stay.)
ALTER TABLE leads DROP CONSTRAINT leads_account_id_campaign_id_phone_key;
ALTER TABLE leads ADD CONSTRAINT leads_account_phone_campaign UNIQUE (account_id, phone, campaign_id);
DROP INDEX leads_phone;
