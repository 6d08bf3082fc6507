-- The open conversations of many (service, customer address) pairs: what the ingest's group commit
-- reads first for every batch. As a PL/pgSQL function its plan is prepared once per connection;
-- sent as a query it was planned on every call, which cost five times its execution (the table
-- has many indexes for the planner to weigh). One index lookup per pair, whatever the batch and
-- the table size: a join planned while the table was small would stay a scan of the whole table
-- in the cached plan once it has grown.
CREATE FUNCTION open_conversations_of(services uuid[], addresses text[], open_states text[])
RETURNS SETOF conversations
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off AS $$
DECLARE
    i integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(services, 1), 0) LOOP
        RETURN QUERY
            SELECT c.*
              FROM conversations c
             WHERE c.service_id = services[i]
               AND c.customer_address = addresses[i]
               AND c.state = ANY(open_states);
    END LOOP;
END
$$;
