-- The ingest moves a conversation's `last_customer_message_at` at most once a second: only when
-- the new message is a second or more past the stored one. Every message used to update its
-- conversation's row, and under load a conversation's customer writes in bursts: in the load
-- harness's climb each open conversation gets several messages a second, and those updates were
-- a fifth of the ingest statement's time (measured with pgbench: 0.87 → 0.67 ms for a batch of
-- 20) and held the row's lock until the batch committed, so the journal's own update of the
-- same conversation (an assignment, a conclusion) waited behind whole batches (logged lock waits
-- of 50–120 ms at 10,000 messages/s, every routing commit stalled meanwhile).
--
-- The stored time can trail the true one by under a second. What reads it: the reply window of
-- 24 hours (a second's trail closes it a second early at worst), the API's conversation view,
-- and the engine's restore after a restart, which takes the exact time from `messages`
-- (`store::open_conversations`); while the engine runs it keeps the exact time in memory.
CREATE OR REPLACE FUNCTION ingest_into_open(batch json, addresses text[], open_states text[])
RETURNS TABLE (ord integer, conversation_id uuid, stored boolean)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET omniroute.touch_conversations = off AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH t AS (
        SELECT r.*, r.ordinality::integer AS pos, o.id AS conv
          FROM ROWS FROM (json_populate_recordset(NULL::messages, batch), unnest(addresses)) WITH ORDINALITY AS r
          LEFT JOIN LATERAL (
                SELECT c.id
                  FROM conversations c
                 WHERE c.service_id = r.service_id
                   AND c.customer_address = r.unnest
                   AND c.state = ANY(open_states)
                 LIMIT 1) o ON true
    ), ins AS (
        INSERT INTO messages AS x (
            id, conversation_id, service_id, direction, kind, body, payload, sender_agent_id,
            email_from, email_to, email_cc, email_subject, email_message_id, email_in_reply_to,
            email_references, email_html, provider_message_id, status, error_code, error_message,
            idempotency_key, attempts, next_attempt_at, created_at, sent_at, delivered_at, read_at,
            failed_at)
        SELECT t.id, t.conv, t.service_id, t.direction, t.kind, t.body, t.payload, t.sender_agent_id,
               t.email_from, t.email_to, t.email_cc, t.email_subject, t.email_message_id, t.email_in_reply_to,
               t.email_references, t.email_html, t.provider_message_id, t.status, t.error_code, t.error_message,
               t.idempotency_key, t.attempts, t.next_attempt_at, t.created_at, t.sent_at, t.delivered_at, t.read_at,
               t.failed_at
          FROM t
         WHERE t.conv IS NOT NULL
         ORDER BY t.service_id, t.provider_message_id
        ON CONFLICT (service_id, provider_message_id) WHERE provider_message_id IS NOT NULL DO NOTHING
        RETURNING x.id, x.conversation_id, x.created_at
    ), touched AS (
        -- What `messages_touch_conversations` does for other inserts (skipped here), in this
        -- statement; at most once a second per conversation (see the head of this file). Rows in
        -- id order, as there.
        UPDATE conversations c
           SET last_customer_message_at = r.at
          FROM (SELECT i.conversation_id, max(i.created_at) AS at
                  FROM ins i
                 GROUP BY i.conversation_id
                 ORDER BY i.conversation_id) r
         WHERE c.id = r.conversation_id
           AND r.at >= coalesce(c.last_customer_message_at, '-infinity') + interval '1 second'
        RETURNING c.id
    )
    SELECT t.pos, t.conv, t.id IN (SELECT i.id FROM ins i)
      FROM t
     ORDER BY t.pos;
END
$$;
