-- A conversation's last customer message (the reply windows of C7, the inactivity clock of R10)
-- follows its inbound messages in the statement that inserts them: the ingest's group commit
-- stores a batch of messages with one INSERT and nothing else, and this keeps the conversations
-- in step without a statement of its own. Never moves backwards.
CREATE FUNCTION messages_touch_last_customer_message() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c
       SET last_customer_message_at = n.at
      FROM (SELECT conversation_id, max(created_at) AS at
              FROM inserted
             WHERE direction = 'in'
             GROUP BY conversation_id) n
     WHERE c.id = n.conversation_id
       AND (c.last_customer_message_at IS NULL OR c.last_customer_message_at < n.at);
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_touch_last_customer_message
    AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT
    EXECUTE FUNCTION messages_touch_last_customer_message();
