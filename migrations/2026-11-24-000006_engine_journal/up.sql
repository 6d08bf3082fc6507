-- The engine's journal writes a batch of routing events in one round trip: this function takes
-- them as a JSON array, applies each in order (conversation row, event row with the next sequence
-- number, assignment, offer, routing decision; or a presence interval) and returns the sequence
-- number given to each element (0 for presence changes). It runs inside the caller's transaction,
-- so a batch commits whole or not at all.
CREATE FUNCTION engine_apply_batch(batch jsonb) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
    seqs bigint[] := '{}';
    next_seq bigint;
    at timestamptz;
    conv uuid;
BEGIN
    FOR e IN SELECT value FROM jsonb_array_elements(batch) LOOP
        at := (e->>'at')::timestamptz;
        IF e->>'t' = 'presence' THEN
            UPDATE presence_history SET ended_at = greatest(at, started_at)
             WHERE agent_id = (e->>'agent')::uuid AND ended_at IS NULL;
            INSERT INTO presence_history (agent_id, status, pause_reason_id, started_at)
            VALUES ((e->>'agent')::uuid, e->>'status', (e->>'reason')::uuid, at);
            seqs := seqs || 0::bigint;
            CONTINUE;
        END IF;

        conv := (e->>'id')::uuid;
        -- Close what ends before opening what starts, so the partial unique indexes hold.
        IF e ? 'asg_close' THEN
            UPDATE assignments SET ended_at = at, end_reason = e->'asg_close'->>'reason'
             WHERE conversation_id = conv AND ended_at IS NULL;
        END IF;
        IF e ? 'offer_resolve' THEN
            UPDATE offers SET resolved_at = at, outcome = e->'offer_resolve'->>'outcome'
             WHERE conversation_id = conv AND resolved_at IS NULL;
        END IF;

        UPDATE conversations SET
            state = e->>'to',
            sub_state = e->>'sub',
            hold_reason = e->>'hold',
            service_id = (e->>'service')::uuid,
            priority = (e->>'priority')::int,
            current_agent_id = (e->>'owner')::uuid,
            first_agent_id = (e->>'first')::uuid,
            concluded_by_id = (e->>'concluded_by')::uuid,
            classification_id = (e->>'classification')::uuid,
            due_at = (e->>'due_at')::timestamptz,
            enqueued_at = (e->>'enqueued_at')::timestamptz,
            assigned_at = (e->>'assigned_at')::timestamptz,
            ended_at = (e->>'ended_at')::timestamptz,
            last_seq = last_seq + 1,
            updated_at = at
        WHERE id = conv
        RETURNING last_seq INTO next_seq;
        IF next_seq IS NULL THEN
            RAISE EXCEPTION 'engine_apply_batch: conversation % does not exist', conv
                USING ERRCODE = 'foreign_key_violation';
        END IF;

        INSERT INTO conversation_events
            (conversation_id, seq, at, kind, from_state, to_state, actor, actor_agent_id, agent_id, reason, data)
        VALUES (conv, next_seq, at, e->>'kind', e->>'from', e->>'to', e->>'actor',
                (e->>'actor_agent')::uuid, (e->>'agent')::uuid, e->>'reason', coalesce(e->'data', '{}'::jsonb));

        IF e ? 'asg_open' THEN
            INSERT INTO assignments (conversation_id, agent_id, channel, via, assigned_at)
            VALUES (conv, (e->'asg_open'->>'agent')::uuid, e->'asg_open'->>'channel', e->'asg_open'->>'via', at);
        END IF;
        IF e ? 'offer_make' THEN
            INSERT INTO offers (conversation_id, agent_id, offered_at, expires_at)
            VALUES (conv, (e->'offer_make'->>'agent')::uuid, at, (e->'offer_make'->>'expires_at')::timestamptz);
        END IF;
        IF e ? 'decision' THEN
            INSERT INTO routing_decisions (conversation_id, decided_at, mode, agent_id, reason, candidates)
            VALUES (conv, at, e->'decision'->>'mode', (e->'decision'->>'agent')::uuid,
                    e->'decision'->>'reason', coalesce(e->'decision'->'candidates', '[]'::jsonb));
        END IF;
        seqs := seqs || next_seq;
    END LOOP;
    RETURN seqs;
END;
$$;
