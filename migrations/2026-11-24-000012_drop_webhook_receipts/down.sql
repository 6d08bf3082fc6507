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
