-- A conversation's last customer message (the reply windows of C7, the inactivity clock of R10)
-- and last agent message follow its messages in the statement that inserts them: the ingest's
-- group commit stores a batch of customer messages with one INSERT and nothing else, an agent's
-- message is one INSERT too, and this keeps the conversations in step without a statement of
-- their own. Neither ever moves backwards.
CREATE FUNCTION messages_touch_conversations() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conversations c
       SET last_customer_message_at = CASE
               WHEN n.customer_at IS NOT NULL
                AND (c.last_customer_message_at IS NULL OR c.last_customer_message_at < n.customer_at)
               THEN n.customer_at ELSE c.last_customer_message_at END,
           last_agent_message_at = CASE
               WHEN n.agent_at IS NOT NULL
                AND (c.last_agent_message_at IS NULL OR c.last_agent_message_at < n.agent_at)
               THEN n.agent_at ELSE c.last_agent_message_at END
      FROM (SELECT conversation_id,
                   max(created_at) FILTER (WHERE direction = 'in') AS customer_at,
                   max(created_at) FILTER (WHERE direction = 'out' AND sender_agent_id IS NOT NULL) AS agent_at
              FROM inserted
             WHERE direction = 'in' OR (direction = 'out' AND sender_agent_id IS NOT NULL)
             GROUP BY conversation_id) n
     WHERE c.id = n.conversation_id
       AND ((n.customer_at IS NOT NULL
             AND (c.last_customer_message_at IS NULL OR c.last_customer_message_at < n.customer_at))
         OR (n.agent_at IS NOT NULL
             AND (c.last_agent_message_at IS NULL OR c.last_agent_message_at < n.agent_at)));
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_touch_conversations
    AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT
    EXECUTE FUNCTION messages_touch_conversations();
