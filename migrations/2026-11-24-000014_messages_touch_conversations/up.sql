-- A conversation's last customer message (the reply windows of C7, the inactivity clock of R10)
-- and last agent message follow its messages in the statement that inserts them: the ingest's
-- group commit stores a batch of customer messages with one INSERT and nothing else, an agent's
-- message is one INSERT too, and this keeps the conversations in step without a statement of
-- their own. Neither ever moves backwards. (Two simple UPDATEs: one UPDATE of both columns with
-- an OR in its condition was planned as a scan of every conversation.)
CREATE FUNCTION messages_touch_conversations() RETURNS trigger
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
    UPDATE conversations c
       SET last_agent_message_at = n.at
      FROM (SELECT conversation_id, max(created_at) AS at
              FROM inserted
             WHERE direction = 'out' AND sender_agent_id IS NOT NULL
             GROUP BY conversation_id) n
     WHERE c.id = n.conversation_id
       AND (c.last_agent_message_at IS NULL OR c.last_agent_message_at < n.at);
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_touch_conversations
    AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT
    EXECUTE FUNCTION messages_touch_conversations();
