-- The sender's record of what the providers accepted (`store::mark_many_sent`): each message gets
-- its provider id, and `sent` if it was still `pending` (a delivery receipt that overtook the
-- answer keeps its status). Sent as a query, it was parsed and planned on every call, and
-- planning cost about as much as running it (84 µs a call at 5,000 messages/s). As a PL/pgSQL
-- function its plan is prepared once per connection; with sequential scans and hash joins off,
-- a plan made while `messages` was small (a server started on an empty database) cannot stay a
-- scan of the whole table once it has grown: one primary-key lookup per message.
CREATE FUNCTION mark_messages_sent(sent_ids uuid[], provider_ids text[], sent_time timestamptz)
RETURNS SETOF messages
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off AS $$
BEGIN
    RETURN QUERY
    WITH moved AS (
        UPDATE messages m
           SET provider_message_id = v.provider_message_id,
               status = CASE WHEN m.status = 'pending' THEN 'sent' ELSE m.status END,
               sent_at = CASE WHEN m.status = 'pending' THEN sent_time ELSE m.sent_at END
          FROM unnest(sent_ids, provider_ids) AS v(id, provider_message_id)
         WHERE m.id = v.id
     RETURNING m.*
    )
    SELECT * FROM moved;
END
$$;
