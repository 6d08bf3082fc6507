-- Every webhook request as received, before interpretation: for audit, replay and debugging
-- of provider formats. Written in the same transaction as what it produced (C4).
CREATE TABLE webhook_receipts (
    id              bigserial PRIMARY KEY,
    channel         text NOT NULL,
    service_id      uuid REFERENCES services (id) ON DELETE SET NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    headers         jsonb NOT NULL DEFAULT '{}'::jsonb,
    body            bytea NOT NULL,
    signature_valid boolean NOT NULL,
    -- stored | duplicate | ignored | rejected
    outcome         text NOT NULL CHECK (outcome IN ('stored', 'duplicate', 'ignored', 'rejected')),
    detail          text
);
CREATE INDEX webhook_receipts_received_idx ON webhook_receipts (received_at);

-- IMAP polling position per email service, so a mail is fetched once across restarts.
CREATE TABLE mailbox_cursors (
    service_id      uuid PRIMARY KEY REFERENCES services (id) ON DELETE CASCADE,
    uid_validity    bigint NOT NULL,
    last_uid        bigint NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
