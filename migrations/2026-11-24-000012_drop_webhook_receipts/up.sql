-- Raw webhook receipts were never written: every webhook's message is stored with its provider
-- id (idempotency, C4), and keeping every body again would double the write per message on the
-- hot path the load harness measures. Dropped rather than kept empty.
DROP TABLE webhook_receipts;
