-- An email or SMS sent from a conversation is found again by its sender and Idempotency-Key:
-- its conversation is the one the first request opened, which a retry does not know.
CREATE INDEX messages_sender_idempotency_idx
    ON messages (sender_agent_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
