-- Back to one UPDATE per conversation (000014).
ALTER FUNCTION messages_touch_conversations() RESET ALL;
CREATE OR REPLACE FUNCTION messages_touch_conversations() RETURNS trigger
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

