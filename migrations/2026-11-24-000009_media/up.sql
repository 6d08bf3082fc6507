-- Media a customer sent (C1, C9): the message is stored when its webhook arrives (C4); its file
-- is fetched from the provider afterwards by the media fetcher, one leased row per file, retried
-- with backoff, then stored as an attachment of the message.
CREATE TABLE media_fetches (
    id              bigserial PRIMARY KEY,
    message_id      uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    service_id      uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    -- What the provider gave to fetch the file: a WhatsApp media id, a Telegram file_id, a
    -- Twilio media URL.
    source          text NOT NULL,
    -- As the webhook announced it (the download's own type wins when it has one).
    content_type    text,
    name            text,
    -- pending: to fetch; done: stored as attachment_id; refused: too large or of a type not
    -- accepted (C9); failed: the provider never gave it.
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'refused', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    -- A due pending row; claiming it moves this forward by the lease.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    error           text,
    attachment_id   uuid REFERENCES attachments (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- A replayed webhook asks for the same file again: one row.
    UNIQUE (message_id, source)
);
CREATE INDEX media_fetches_due_idx ON media_fetches (next_attempt_at) WHERE status = 'pending';

-- The reply window (C7) is read from a customer's conversations in a service on every send.
CREATE INDEX conversations_address_idx ON conversations (service_id, customer_address);
