-- A conversation row is updated many times in its life: on every customer and agent message
-- (last_customer_message_at / last_agent_message_at, not indexed) besides its state changes. An
-- update of unindexed columns stays on the row's page (a HOT update: no new index entries, no
-- index bloat) when the page has room; leave that room.
ALTER TABLE conversations SET (fillfactor = 70);
