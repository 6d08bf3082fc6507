-- The raw RFC 5322 bytes of each stored inbound email, so a mail a parser fix would read
-- differently (an undecoded charset, a lost part) can be parsed again. Kept apart from messages,
-- like attachment_contents, so reading messages never reads these bytes. The copy holds the
-- attachments again (base64, which TOAST compresses): stripping them would no longer be the
-- message as received, and the webhook's 25 MiB limit bounds each row.
CREATE TABLE raw_emails (
    message_id  uuid PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    data        bytea NOT NULL
);
