-- A conversation's last customer message (the reply windows of C7, the inactivity clock of R10)
-- and last agent message follow its messages in the statement that inserts them: the ingest's
-- group commit stores a batch of customer messages with one INSERT and nothing else, an agent's
-- message is one INSERT too, and this keeps the conversations in step without a statement of
-- their own. Neither ever moves backwards.
--
-- One UPDATE by primary key per conversation touched, in id order (two batches lock rows in the
-- same order), and never a sequential scan: a PL/pgSQL plan is made once per connection, and a
-- join planned while the table was small stayed a scan of every conversation once it had grown.
CREATE FUNCTION messages_touch_conversations() RETURNS trigger
LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT conversation_id,
               max(created_at) FILTER (WHERE direction = 'in') AS customer_at,
               max(created_at) FILTER (WHERE direction = 'out' AND sender_agent_id IS NOT NULL) AS agent_at
          FROM inserted
         WHERE direction = 'in' OR (direction = 'out' AND sender_agent_id IS NOT NULL)
         GROUP BY conversation_id
         ORDER BY conversation_id
    LOOP
        UPDATE conversations
           SET last_customer_message_at = greatest(last_customer_message_at, r.customer_at),
               last_agent_message_at = greatest(last_agent_message_at, r.agent_at)
         WHERE id = r.conversation_id
           AND (r.customer_at > coalesce(last_customer_message_at, '-infinity')
             OR r.agent_at > coalesce(last_agent_message_at, '-infinity'));
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_touch_conversations
    AFTER INSERT ON messages
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT
    EXECUTE FUNCTION messages_touch_conversations();
