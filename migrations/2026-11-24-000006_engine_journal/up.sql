-- The engine's journal writes a batch of routing events in one round trip: this function takes
-- them as a JSON array and returns the sequence number given to each element (0 for presence
-- changes). It runs inside the caller's transaction, so a batch commits whole or not at all.
--
-- The outcome is that of applying the elements one by one in array order (conversation row, event
-- row with the next sequence number, assignment, offer, routing decision; or a presence interval),
-- but the work is set-based: a few statements per batch, not several per element
-- (docs/performance.md, "What limits the figures").
--
-- 1. Each conversation is updated once, to the values of its last element, with last_seq + its
--    number of elements; its elements get the numbers after the old last_seq in array order. A
--    missing conversation refuses the batch (foreign_key_violation).
-- 2. Events and routing decisions are inserted with those numbers.
-- 3. Assignments, offers and presence intervals, of which one at a time is open per conversation
--    or agent (partial unique indexes): the one open before the batch is closed by the first
--    change of the batch if that change closes (an element closes before it opens); every
--    interval the batch opens is inserted already closed by the next change when that one
--    closes, else open. Opening a second assignment or offer while one is open is refused with
--    the unique violation the element-by-element order would have met.
CREATE FUNCTION engine_apply_batch(batch jsonb) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    seqs bigint[];
    missing bigint;
    missing_id uuid;
    has_presence boolean;
    has_assignments boolean;
    has_offers boolean;
    conflicting uuid;
BEGIN
    -- 1. Each conversation once, to its last element's values; the sequence number of every
    -- element (its conversation's last_seq before the batch + its rank there), 0 for presence.
    WITH el AS (
        SELECT x.ord, x.e, (x.e->>'at')::timestamptz AS at, x.e->>'t' IS DISTINCT FROM 'presence' AS is_conv
        FROM jsonb_array_elements(batch) WITH ORDINALITY AS x(e, ord)
    ),
    cv AS (
        SELECT c.*,
               row_number() OVER (PARTITION BY c.conv ORDER BY c.ord) AS k,
               count(*) OVER (PARTITION BY c.conv) AS n
        FROM (SELECT el.ord, el.e, el.at, (el.e->>'id')::uuid AS conv FROM el WHERE el.is_conv) c
    ),
    upd AS (
        UPDATE conversations c SET
            state = f.e->>'to',
            sub_state = f.e->>'sub',
            hold_reason = f.e->>'hold',
            service_id = (f.e->>'service')::uuid,
            priority = (f.e->>'priority')::int,
            current_agent_id = (f.e->>'owner')::uuid,
            first_agent_id = (f.e->>'first')::uuid,
            concluded_by_id = (f.e->>'concluded_by')::uuid,
            classification_id = (f.e->>'classification')::uuid,
            due_at = (f.e->>'due_at')::timestamptz,
            enqueued_at = (f.e->>'enqueued_at')::timestamptz,
            assigned_at = (f.e->>'assigned_at')::timestamptz,
            ended_at = (f.e->>'ended_at')::timestamptz,
            last_seq = c.last_seq + f.n,
            updated_at = f.at
        FROM cv f
        WHERE f.k = f.n AND c.id = f.conv
        RETURNING c.id, c.last_seq - f.n AS base
    ),
    -- The bases spread over the elements by a window rather than a join (the planner cannot
    -- know how many elements a batch has, and would choose a nested loop).
    numbered AS (
        SELECT u.ord, u.conv, u.is_conv, u.asg, u.offer,
               CASE WHEN u.is_conv THEN u.k + max(u.base) OVER (PARTITION BY u.is_conv, u.conv) ELSE 0 END AS seq
        FROM (SELECT cv.ord, true AS is_conv, cv.conv, cv.k, NULL::bigint AS base,
                     cv.e ? 'asg_close' OR cv.e ? 'asg_open' AS asg,
                     cv.e ? 'offer_resolve' OR cv.e ? 'offer_make' AS offer
              FROM cv
              UNION ALL
              SELECT el.ord, false, NULL, NULL, NULL, false, false FROM el WHERE NOT el.is_conv
              UNION ALL
              SELECT NULL, true, upd.id, NULL, upd.base, false, false FROM upd) u
    )
    SELECT coalesce(array_agg(n.seq ORDER BY n.ord) FILTER (WHERE n.ord IS NOT NULL), '{}'),
           count(*) FILTER (WHERE n.ord IS NOT NULL AND n.seq IS NULL),
           (array_agg(n.conv ORDER BY n.ord) FILTER (WHERE n.ord IS NOT NULL AND n.seq IS NULL))[1],
           coalesce(bool_or(NOT n.is_conv), false), coalesce(bool_or(n.asg), false), coalesce(bool_or(n.offer), false)
      INTO seqs, missing, missing_id, has_presence, has_assignments, has_offers
    FROM numbered n;

    IF missing > 0 THEN
        RAISE EXCEPTION 'engine_apply_batch: conversation % does not exist', missing_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;

    -- 2. The events and routing decisions, each element zipped with its sequence number.
    WITH z AS (
        SELECT x.ord, x.e, x.seq, (x.e->>'id')::uuid AS conv, (x.e->>'at')::timestamptz AS at
        FROM ROWS FROM (jsonb_array_elements(batch), unnest(seqs)) WITH ORDINALITY AS x(e, seq, ord)
        WHERE x.e->>'t' IS DISTINCT FROM 'presence'
    ),
    decisions AS (
        INSERT INTO routing_decisions (conversation_id, decided_at, mode, agent_id, reason, candidates)
        SELECT z.conv, z.at, z.e->'decision'->>'mode', (z.e->'decision'->>'agent')::uuid,
               z.e->'decision'->>'reason', coalesce(z.e->'decision'->'candidates', '[]'::jsonb)
        FROM z
        WHERE z.e ? 'decision'
        ORDER BY z.ord
    )
    INSERT INTO conversation_events
        (conversation_id, seq, at, kind, from_state, to_state, actor, actor_agent_id, agent_id, reason, data)
    SELECT z.conv, z.seq, z.at, z.e->>'kind', z.e->>'from', z.e->>'to', z.e->>'actor',
           (z.e->>'actor_agent')::uuid, (z.e->>'agent')::uuid, z.e->>'reason', coalesce(z.e->'data', '{}'::jsonb)
    FROM z
    ORDER BY z.ord;

    -- 3a. Assignments.
    IF has_assignments THEN
        -- The assignment open before the batch, closed by the conversation's first assignment
        -- change if that one closes.
        UPDATE assignments g SET ended_at = f.at, end_reason = f.e->'asg_close'->>'reason'
        FROM (SELECT DISTINCT ON (conv) conv, at, e
              FROM (SELECT x.ord, x.e, (x.e->>'id')::uuid AS conv, (x.e->>'at')::timestamptz AS at
                    FROM jsonb_array_elements(batch) WITH ORDINALITY AS x(e, ord)
                    WHERE x.e->>'t' IS DISTINCT FROM 'presence' AND (x.e ? 'asg_open' OR x.e ? 'asg_close')) s
              ORDER BY conv, ord) f
        WHERE f.e ? 'asg_close' AND g.conversation_id = f.conv AND g.ended_at IS NULL;

        -- Every assignment the batch opens, closed by the next closing change (if any).
        WITH a AS (
            SELECT s.*,
                   lag(s.opens) OVER w AS prev_opens,
                   lead(s.closes) OVER w AS next_closes,
                   lead(s.at) OVER w AS next_at,
                   lead(s.e->'asg_close'->>'reason') OVER w AS next_end
            FROM (SELECT x.ord, x.e, (x.e->>'id')::uuid AS conv, (x.e->>'at')::timestamptz AS at,
                         x.e ? 'asg_open' AS opens, x.e ? 'asg_close' AS closes
                  FROM jsonb_array_elements(batch) WITH ORDINALITY AS x(e, ord)
                  WHERE x.e->>'t' IS DISTINCT FROM 'presence' AND (x.e ? 'asg_open' OR x.e ? 'asg_close')) s
            WINDOW w AS (PARTITION BY s.conv ORDER BY s.ord)
        ),
        opened AS (
            INSERT INTO assignments (conversation_id, agent_id, channel, via, assigned_at, ended_at, end_reason)
            SELECT o.conv, (o.e->'asg_open'->>'agent')::uuid, o.e->'asg_open'->>'channel', o.e->'asg_open'->>'via',
                   o.at, CASE WHEN o.next_closes THEN o.next_at END, CASE WHEN o.next_closes THEN o.next_end END
            FROM a o
            WHERE o.opens
            ORDER BY o.ord
        )
        -- An element that opens without closing while one is open: after an earlier opening
        -- change of the batch, or as the first change when one was open before the batch (when
        -- the new one stays open, the unique index itself refuses it).
        SELECT a.conv INTO conflicting FROM a
        WHERE a.opens AND NOT a.closes
          AND CASE WHEN a.prev_opens IS NOT NULL THEN a.prev_opens
                   -- A scalar subquery, not EXISTS, which the planner may turn into a hash of
                   -- every open one.
                   WHEN a.next_closes THEN (SELECT true FROM assignments g
                                            WHERE g.conversation_id = a.conv AND g.ended_at IS NULL
                                            LIMIT 1) IS NOT NULL
                   ELSE false END
        ORDER BY a.ord
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'duplicate key value violates unique constraint "assignments_one_open_per_conversation"'
                USING ERRCODE = 'unique_violation', CONSTRAINT = 'assignments_one_open_per_conversation',
                      TABLE = 'assignments', DETAIL = format('Key (conversation_id)=(%s) already exists.', conflicting);
        END IF;
    END IF;

    -- 3b. Offers, the same way.
    IF has_offers THEN
        UPDATE offers g SET resolved_at = f.at, outcome = f.e->'offer_resolve'->>'outcome'
        FROM (SELECT DISTINCT ON (conv) conv, at, e
              FROM (SELECT x.ord, x.e, (x.e->>'id')::uuid AS conv, (x.e->>'at')::timestamptz AS at
                    FROM jsonb_array_elements(batch) WITH ORDINALITY AS x(e, ord)
                    WHERE x.e->>'t' IS DISTINCT FROM 'presence'
                      AND (x.e ? 'offer_make' OR x.e ? 'offer_resolve')) s
              ORDER BY conv, ord) f
        WHERE f.e ? 'offer_resolve' AND g.conversation_id = f.conv AND g.resolved_at IS NULL;

        WITH a AS (
            SELECT s.*,
                   lag(s.opens) OVER w AS prev_opens,
                   lead(s.closes) OVER w AS next_closes,
                   lead(s.at) OVER w AS next_at,
                   lead(s.e->'offer_resolve'->>'outcome') OVER w AS next_end
            FROM (SELECT x.ord, x.e, (x.e->>'id')::uuid AS conv, (x.e->>'at')::timestamptz AS at,
                         x.e ? 'offer_make' AS opens, x.e ? 'offer_resolve' AS closes
                  FROM jsonb_array_elements(batch) WITH ORDINALITY AS x(e, ord)
                  WHERE x.e->>'t' IS DISTINCT FROM 'presence'
                    AND (x.e ? 'offer_make' OR x.e ? 'offer_resolve')) s
            WINDOW w AS (PARTITION BY s.conv ORDER BY s.ord)
        ),
        made AS (
            INSERT INTO offers (conversation_id, agent_id, offered_at, expires_at, resolved_at, outcome)
            SELECT o.conv, (o.e->'offer_make'->>'agent')::uuid, o.at, (o.e->'offer_make'->>'expires_at')::timestamptz,
                   CASE WHEN o.next_closes THEN o.next_at END, CASE WHEN o.next_closes THEN o.next_end END
            FROM a o
            WHERE o.opens
            ORDER BY o.ord
        )
        SELECT a.conv INTO conflicting FROM a
        WHERE a.opens AND NOT a.closes
          AND CASE WHEN a.prev_opens IS NOT NULL THEN a.prev_opens
                   -- A scalar subquery, not EXISTS, which the planner may turn into a hash of
                   -- every open one.
                   WHEN a.next_closes THEN (SELECT true FROM offers g
                                            WHERE g.conversation_id = a.conv AND g.resolved_at IS NULL
                                            LIMIT 1) IS NOT NULL
                   ELSE false END
        ORDER BY a.ord
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'duplicate key value violates unique constraint "offers_one_pending_per_conversation"'
                USING ERRCODE = 'unique_violation', CONSTRAINT = 'offers_one_pending_per_conversation',
                      TABLE = 'offers', DETAIL = format('Key (conversation_id)=(%s) already exists.', conflicting);
        END IF;
    END IF;

    -- 3c. Presence intervals: every change closes the agent's previous one.
    IF has_presence THEN
        UPDATE presence_history h SET ended_at = greatest(f.at, h.started_at)
        FROM (SELECT DISTINCT ON (agent) agent, at
              FROM (SELECT x.ord, (x.e->>'agent')::uuid AS agent, (x.e->>'at')::timestamptz AS at
                    FROM jsonb_array_elements(batch) WITH ORDINALITY AS x(e, ord)
                    WHERE x.e->>'t' = 'presence') s
              ORDER BY agent, ord) f
        WHERE h.agent_id = f.agent AND h.ended_at IS NULL;

        INSERT INTO presence_history (agent_id, status, pause_reason_id, started_at, ended_at)
        SELECT p.agent, p.status, p.reason, p.at, CASE WHEN p.next_ord IS NOT NULL THEN greatest(p.next_at, p.at) END
        FROM (SELECT s.*, lead(s.ord) OVER w AS next_ord, lead(s.at) OVER w AS next_at
              FROM (SELECT x.ord, (x.e->>'agent')::uuid AS agent, x.e->>'status' AS status,
                           (x.e->>'reason')::uuid AS reason, (x.e->>'at')::timestamptz AS at
                    FROM jsonb_array_elements(batch) WITH ORDINALITY AS x(e, ord)
                    WHERE x.e->>'t' = 'presence') s
              WINDOW w AS (PARTITION BY s.agent ORDER BY s.ord)) p
        ORDER BY p.ord;
    END IF;

    RETURN seqs;
END;
$$;
