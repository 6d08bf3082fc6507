-- The journal's SQL alone (docs/performance.md): `engine_apply_batch` as migrated against a
-- minimal set-based writing of the same events (one statement per table per batch), in one
-- database session, without the engine. A sketch for measuring, not a replacement: it handles
-- the events of a routing decision only (`arrived`, `assigned` with its assignment and decision
-- record); closing assignments and offers, presence and the other kinds would follow the same
-- pattern.
--
-- Run it with benches/sql/journal_experiment.sh, which creates and migrates a scratch database.
-- psql variables: per = conversations per batch (two events each), rounds = batches per approach.
\set ON_ERROR_STOP 1
\set QUIET 1
\set svc '00000000-0000-0000-0000-0000000000a1'
\set agent '00000000-0000-0000-0000-0000000000b1'
INSERT INTO services (id, name, channel) VALUES (:'svc', 'S', 'whatsapp');
INSERT INTO agents (id, login, name, password_hash) VALUES (:'agent', 'a1', 'a1', 'x');
-- 2 x rounds x per queued conversations: alternate batches go to each approach.
CREATE TABLE ids AS SELECT gen_random_uuid() AS id, g, (g - 1) / :per AS setb FROM generate_series(1, 2 * :rounds * :per) g;
INSERT INTO conversations (id, service_id, channel, customer_address, state, enqueued_at, last_customer_message_at)
SELECT id, :'svc', 'whatsapp', 'c' || g, 'queued', now(), now() FROM ids;
VACUUM ANALYZE conversations;
CREATE FUNCTION batch_of(b int) RETURNS jsonb LANGUAGE sql AS $f$
SELECT jsonb_agg(e ORDER BY g, k) FROM (
  SELECT g, 1 AS k, jsonb_build_object('t','conv','id',id,'kind','arrived','at',now(),'from',null,'to','queued',
     'sub',null,'service','00000000-0000-0000-0000-0000000000a1','priority',0,'owner',null,'first',null,
     'enqueued_at',now(),'actor','system','data','{}'::jsonb) e FROM ids WHERE setb = b
  UNION ALL
  SELECT g, 2, jsonb_build_object('t','conv','id',id,'kind','assigned','at',now(),'from','queued','to','in_service',
     'sub','active','service','00000000-0000-0000-0000-0000000000a1','priority',0,
     'owner','00000000-0000-0000-0000-0000000000b1','first','00000000-0000-0000-0000-0000000000b1',
     'assigned_at',now(),'actor','system','agent','00000000-0000-0000-0000-0000000000b1',
     'data',jsonb_build_object('ineligible',jsonb_build_array(jsonb_build_object('why','at_capacity','count',900))),
     'asg_open',jsonb_build_object('agent','00000000-0000-0000-0000-0000000000b1','via','auto','channel','whatsapp'),
     'decision',jsonb_build_object('mode','auto','agent','00000000-0000-0000-0000-0000000000b1',
        'reason','fewest active conversations (2 of 3), then longest idle, among 1 eligible agents',
        'candidates',(SELECT jsonb_agg(jsonb_build_object('agent_id','00000000-0000-0000-0000-0000000000b1','active',2,'capacity',3,'idle_since',now())) FROM generate_series(1,5))))
  FROM ids WHERE setb = b) x
$f$;
CREATE TABLE batches AS SELECT s, batch_of(s) AS batch FROM generate_series(0, 2 * :rounds - 1) s;
CHECKPOINT;
-- The same writes set-based: the final state per conversation, sequence numbers by position.
CREATE FUNCTION set_based(batch jsonb) RETURNS bigint LANGUAGE sql AS $f$
WITH ev AS (
  SELECT ord, e, (e->>'id')::uuid AS conv, (e->>'at')::timestamptz AS at
  FROM jsonb_array_elements(batch) WITH ORDINALITY AS x(e, ord)),
nb AS (SELECT ev.*, row_number() OVER (PARTITION BY conv ORDER BY ord) AS k, count(*) OVER (PARTITION BY conv) AS n FROM ev),
fin AS (SELECT DISTINCT ON (conv) * FROM nb ORDER BY conv, ord DESC),
upd AS (
  UPDATE conversations c SET state = f.e->>'to', sub_state = f.e->>'sub', service_id = (f.e->>'service')::uuid,
    priority = (f.e->>'priority')::int, current_agent_id = (f.e->>'owner')::uuid, first_agent_id = (f.e->>'first')::uuid,
    concluded_by_id = (f.e->>'concluded_by')::uuid, classification_id = (f.e->>'classification')::uuid,
    due_at = (f.e->>'due_at')::timestamptz, enqueued_at = (f.e->>'enqueued_at')::timestamptz,
    assigned_at = (f.e->>'assigned_at')::timestamptz, ended_at = (f.e->>'ended_at')::timestamptz,
    last_seq = c.last_seq + f.n, updated_at = f.at
  FROM fin f WHERE c.id = f.conv
  RETURNING c.id, c.last_seq - f.n AS base),
ins AS (
  INSERT INTO conversation_events (conversation_id, seq, at, kind, from_state, to_state, actor, actor_agent_id, agent_id, reason, data)
  SELECT nb.conv, u.base + nb.k, nb.at, nb.e->>'kind', nb.e->>'from', nb.e->>'to', nb.e->>'actor',
         (nb.e->>'actor_agent')::uuid, (nb.e->>'agent')::uuid, nb.e->>'reason', coalesce(nb.e->'data', '{}'::jsonb)
  FROM nb JOIN upd u ON u.id = nb.conv RETURNING 1),
asg AS (
  INSERT INTO assignments (conversation_id, agent_id, channel, via, assigned_at)
  SELECT conv, (e->'asg_open'->>'agent')::uuid, e->'asg_open'->>'channel', e->'asg_open'->>'via', at FROM nb WHERE e ? 'asg_open' RETURNING 1),
dec AS (
  INSERT INTO routing_decisions (conversation_id, decided_at, mode, agent_id, reason, candidates)
  SELECT conv, at, e->'decision'->>'mode', (e->'decision'->>'agent')::uuid, e->'decision'->>'reason',
         coalesce(e->'decision'->'candidates', '[]'::jsonb) FROM nb WHERE e ? 'decision' RETURNING 1)
SELECT (SELECT count(*) FROM ins) + (SELECT count(*) FROM asg) + (SELECT count(*) FROM dec)
$f$;
SELECT set_config('exp.per', :'per', false) \g /dev/null
DO $$
DECLARE t0 timestamptz; r1 interval := '0'; r2 interval := '0'; n1 bigint := 0; n2 bigint := 0; b record;
BEGIN
  FOR b IN SELECT * FROM batches ORDER BY s LOOP
    t0 := clock_timestamp();
    IF b.s % 2 = 0 THEN
      n1 := n1 + cardinality(engine_apply_batch(b.batch)); r1 := r1 + (clock_timestamp() - t0);
    ELSE
      PERFORM set_based(b.batch); n2 := n2 + jsonb_array_length(b.batch); r2 := r2 + (clock_timestamp() - t0);
    END IF;
  END LOOP;
  RAISE NOTICE 'batches of % events; engine_apply_batch as migrated: % events, % us/event', 2 * current_setting('exp.per')::int, n1, round(extract(epoch from r1) * 1e6 / n1, 1);
  RAISE NOTICE 'set based:  % events, % us/event', n2, round(extract(epoch from r2) * 1e6 / n2, 1);
END $$;
