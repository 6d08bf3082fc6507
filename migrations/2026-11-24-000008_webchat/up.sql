-- Webchat (C1): the visitors of the customer widget and the files they upload.
--
-- A visitor is one person who filled the start form of one webchat service. The widget keeps a
-- random token (only its SHA-256 is stored) to resume after a reload; the visitor's id is the
-- customer address of its conversations, so a new conversation after a conclusion keeps it.
CREATE TABLE webchat_visitors (
    id              uuid PRIMARY KEY,
    service_id      uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    email           text NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    -- K2: the one customer having this email when the visitor started (NULL: none or several).
    customer_id     uuid REFERENCES customers (id) ON DELETE SET NULL,
    token_hash      bytea NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webchat_visitors_service_idx ON webchat_visitors (service_id);

-- Which visitor uploaded an attachment (attachments.uploaded_by names agents only): a visitor
-- may attach and download only its own uploads and the files of its conversations (C9).
CREATE TABLE webchat_uploads (
    attachment_id   uuid PRIMARY KEY REFERENCES attachments (id) ON DELETE CASCADE,
    visitor_id      uuid NOT NULL REFERENCES webchat_visitors (id) ON DELETE CASCADE
);
CREATE INDEX webchat_uploads_visitor_idx ON webchat_uploads (visitor_id);
