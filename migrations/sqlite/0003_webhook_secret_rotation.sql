-- Webhook signing-secret rotation: the previous secret keeps signing (beside the new one)
-- until it expires, so receivers can switch without dropping events.
ALTER TABLE webhooks ADD COLUMN previous_secret TEXT;
ALTER TABLE webhooks ADD COLUMN previous_secret_expires_at BIGINT;
