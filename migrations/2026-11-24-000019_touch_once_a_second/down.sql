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
        -- What `messages_touch_conversations` does for other inserts (skipped here: see the
        -- trigger below), in this statement: its PL/pgSQL call and its query over the transition
        -- table cost more than the rest of this function. Rows in id order, as there.
        UPDATE conversations c
           SET last_customer_message_at = r.at
          FROM (SELECT i.conversation_id, max(i.created_at) AS at
                  FROM ins i
                 GROUP BY i.conversation_id
                 ORDER BY i.conversation_id) r
         WHERE c.id = r.conversation_id
           AND r.at > coalesce(c.last_customer_message_at, '-infinity')
        RETURNING c.id
    )
    SELECT t.pos, t.conv, t.id IN (SELECT i.id FROM ins i)
      FROM t
     ORDER BY t.pos;
END
$$;
