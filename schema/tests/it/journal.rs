//! `engine_apply_batch`, the journal's one round trip, works set-based: a few statements per
//! batch. Its result must be exactly that of applying the elements one by one in array order.
//! The element-by-element function it replaced is kept here as the reference
//! (`engine_apply_batch_reference`): every batch runs through both, on two databases seeded
//! alike, and the sequence numbers, the refusals and every row written must agree.

use chrono::{DateTime, TimeDelta, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Jsonb};
use schema::testing::TestDb;
use schema::{Connection, PgConnection, StoreError, store};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::fixtures::at;

/// The element-by-element `engine_apply_batch` the set-based one replaced.
const REFERENCE: &str = r#"
CREATE FUNCTION engine_apply_batch_reference(batch jsonb) RETURNS bigint[]
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
"#;

/// Every table the function writes, compared row by row (in insertion order, without the serial
/// ids; a conversation is its own key).
const WRITTEN: [(&str, &str); 6] = [
    ("conversations", "to_jsonb(t) ORDER BY t.id"),
    ("conversation_events", "to_jsonb(t) - 'id' ORDER BY t.id"),
    ("assignments", "to_jsonb(t) - 'id' ORDER BY t.id"),
    ("offers", "to_jsonb(t) - 'id' ORDER BY t.id"),
    ("routing_decisions", "to_jsonb(t) - 'id' ORDER BY t.id"),
    ("presence_history", "to_jsonb(t) - 'id' ORDER BY t.id"),
];

#[derive(QueryableByName)]
struct Seqs {
    #[diesel(sql_type = Array<BigInt>)]
    seqs: Vec<i64>,
}

#[derive(QueryableByName)]
struct Rows {
    #[diesel(sql_type = Jsonb)]
    rows: Value,
}

fn reference(conn: &mut PgConnection, batch: &Value) -> Result<Vec<i64>, StoreError> {
    Ok(diesel::sql_query("SELECT engine_apply_batch_reference($1) AS seqs")
        .bind::<Jsonb, _>(batch)
        .get_result::<Seqs>(conn)?
        .seqs)
}

/// The rows of a query as a JSON array of objects.
fn query(conn: &mut PgConnection, sql: &str) -> Value {
    diesel::sql_query(format!("SELECT coalesce(jsonb_agg(to_jsonb(q)), '[]') AS rows FROM ({sql}) q"))
        .get_result::<Rows>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows
}

/// A service, a pause reason, agents `a0`, `a1`, … and queued conversations `c0`, `c1`, …, with
/// the same ids in every database seeded from it.
struct World {
    service: Uuid,
    reason: Uuid,
    agents: Vec<Uuid>,
    conversations: Vec<Uuid>,
}

impl World {
    fn new(agents: usize, conversations: usize) -> World {
        World {
            service: Uuid::new_v4(),
            reason: Uuid::new_v4(),
            agents: (0..agents).map(|_| Uuid::new_v4()).collect(),
            conversations: (0..conversations).map(|_| Uuid::new_v4()).collect(),
        }
    }

    fn seed(&self, conn: &mut PgConnection) {
        let t0 = at(0).to_rfc3339();
        let agents: Vec<String> =
            self.agents.iter().enumerate().map(|(i, id)| format!("('{id}', 'a{i}', 'Agent {i}', 'x')")).collect();
        let conversations: Vec<String> = self
            .conversations
            .iter()
            .enumerate()
            .map(|(i, id)| {
                format!("('{id}', '{}', 'whatsapp', 'c{i}', 'queued', '{t0}', '{t0}', '{t0}', '{t0}')", self.service)
            })
            .collect();
        conn.batch_execute(&format!(
            "INSERT INTO services (id, name, channel) VALUES ('{service}', 'journal', 'whatsapp');
             INSERT INTO pause_reasons (id, name) VALUES ('{reason}', 'lunch');
             INSERT INTO agents (id, login, name, password_hash) VALUES {agents};
             INSERT INTO conversations
                 (id, service_id, channel, customer_address, state, arrived_at, enqueued_at, created_at, updated_at)
             VALUES {conversations};
             -- Readable expectations: agents by login, instants in seconds after fixtures::at(0).
             CREATE FUNCTION login(agent uuid) RETURNS text LANGUAGE sql
                 AS $$ SELECT login FROM agents WHERE id = agent $$;
             CREATE FUNCTION s(t timestamptz) RETURNS int LANGUAGE sql
                 AS $$ SELECT round(extract(epoch FROM t - '{t0}'::timestamptz))::int $$;",
            service = self.service,
            reason = self.reason,
            agents = agents.join(", "),
            conversations = conversations.join(", "),
        ))
        .expect("seed the world");
    }

    fn conversations(&self) -> Vec<Conv> {
        self.conversations.iter().map(|&id| Conv::new(id, self.service)).collect()
    }
}

/// Two databases seeded alike: one writes through `engine_apply_batch`, the other through the
/// reference.
struct Pair {
    set_based: PgConnection,
    reference: PgConnection,
    _dbs: [TestDb; 2],
}

impl Pair {
    fn new(world: &World) -> Pair {
        let dbs = [TestDb::new(), TestDb::new()];
        let mut set_based = dbs[0].conn();
        let mut reference = dbs[1].conn();
        world.seed(&mut set_based);
        world.seed(&mut reference);
        reference.batch_execute(REFERENCE).expect("create the reference function");
        Pair { set_based, reference, _dbs: dbs }
    }

    /// Writes `batch` through both functions, each in a transaction of its own as the journal
    /// does; both must give the same sequence numbers or the same refusal.
    #[track_caller]
    fn apply(&mut self, batch: &Value) -> Result<Vec<i64>, StoreError> {
        let got = self.set_based.transaction::<_, StoreError, _>(|c| store::apply_engine_batch(c, batch));
        let want = self.reference.transaction::<_, StoreError, _>(|c| reference(c, batch));
        match (&got, &want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "sequence numbers of {batch:#}"),
            (Err(g), Err(w)) => assert_eq!(format!("{g:?}"), format!("{w:?}"), "refusal of {batch:#}"),
            _ => panic!("set-based: {got:?}; element by element: {want:?}; batch {batch:#}"),
        }
        got
    }

    /// Every row of every table the journal writes is the same in both databases.
    #[track_caller]
    fn assert_same_rows(&mut self) {
        for (table, agg) in WRITTEN {
            let sql = format!("SELECT coalesce(jsonb_agg({agg}), '[]') AS rows FROM {table} t");
            let got = diesel::sql_query(&sql).get_result::<Rows>(&mut self.set_based).expect("read").rows;
            let want = diesel::sql_query(&sql).get_result::<Rows>(&mut self.reference).expect("read").rows;
            let (got, want) = (got.as_array().unwrap(), want.as_array().unwrap());
            if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
                panic!(
                    "{table}: {} rows set-based, {} by the reference; row {i} differs:\n {:?}\n {:?}",
                    got.len(),
                    want.len(),
                    got.get(i),
                    want.get(i)
                );
            }
        }
    }

    /// A query on the set-based database.
    fn query(&mut self, sql: &str) -> Value {
        query(&mut self.set_based, sql)
    }
}

/// A conversation as the engine sees it; each change returns the journal element that writes
/// it, encoded like `engine::journal::encode`.
#[derive(Debug, Clone)]
struct Conv {
    id: Uuid,
    service: Uuid,
    state: &'static str,
    sub: Option<&'static str>,
    priority: i32,
    owner: Option<Uuid>,
    first: Option<Uuid>,
    concluded_by: Option<Uuid>,
    offered_to: Option<Uuid>,
    due_at: Option<DateTime<Utc>>,
    enqueued_at: Option<DateTime<Utc>>,
    assigned_at: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
}

impl Conv {
    fn new(id: Uuid, service: Uuid) -> Conv {
        Conv {
            id,
            service,
            state: "queued",
            sub: None,
            priority: 0,
            owner: None,
            first: None,
            concluded_by: None,
            offered_to: None,
            due_at: None,
            enqueued_at: Some(at(0)),
            assigned_at: None,
            ended_at: None,
        }
    }

    /// The element of a change already made to `self`.
    fn element(&self, kind: &str, from: &str, at: DateTime<Utc>, agent: Option<Uuid>) -> Value {
        let data =
            if kind == "assigned" { json!({"ineligible": [{"why": "at_capacity", "count": 2}]}) } else { json!({}) };
        json!({
            "t": "conv",
            "id": self.id,
            "kind": kind,
            "at": at,
            "from": from,
            "to": self.state,
            "sub": self.sub,
            "hold": null,
            "service": self.service,
            "priority": self.priority,
            "owner": self.owner,
            "first": self.first,
            "concluded_by": self.concluded_by,
            "classification": null,
            "due_at": self.due_at,
            "enqueued_at": self.enqueued_at,
            "assigned_at": self.assigned_at,
            "ended_at": self.ended_at,
            "actor": if agent.is_some() && kind != "assigned" { "agent" } else { "system" },
            "actor_agent": if kind == "concluded" { self.concluded_by } else { None },
            "agent": agent,
            "reason": null,
            "data": data,
        })
    }

    fn put_in_service(&mut self, agent: Uuid, at: DateTime<Utc>) {
        self.state = "in_service";
        self.sub = Some("active");
        self.owner = Some(agent);
        self.first.get_or_insert(agent);
        self.assigned_at = Some(at);
        self.due_at = Some(at + TimeDelta::minutes(10));
    }

    fn back_to_queue(&mut self, at: DateTime<Utc>) {
        self.state = "queued";
        self.sub = None;
        self.owner = None;
        self.assigned_at = None;
        self.due_at = None;
        self.enqueued_at = Some(at);
    }

    fn assign(&mut self, agent: Uuid, at: DateTime<Utc>) -> Value {
        let from = self.state;
        self.put_in_service(agent, at);
        let mut e = self.element("assigned", from, at, Some(agent));
        e["asg_open"] = json!({"agent": agent, "via": "auto", "channel": "whatsapp"});
        e["decision"] = json!({
            "mode": "auto",
            "agent": agent,
            "reason": "fewest active conversations",
            "candidates": [{"agent_id": agent, "active": 0, "capacity": 3}],
        });
        e
    }

    fn transfer(&mut self, to: Uuid, at: DateTime<Utc>) -> Value {
        let from = self.state;
        self.put_in_service(to, at);
        let mut e = self.element("transferred", from, at, Some(to));
        e["asg_close"] = json!({"reason": "transferred"});
        e["asg_open"] = json!({"agent": to, "via": "transfer", "channel": "whatsapp"});
        e["decision"] = json!({"mode": "transfer", "agent": to, "reason": "transferred by a supervisor"});
        e
    }

    fn conclude(&mut self, at: DateTime<Utc>) -> Value {
        let from = self.state;
        self.concluded_by = self.owner;
        self.state = "concluded";
        self.sub = None;
        self.owner = None;
        self.due_at = None;
        self.ended_at = Some(at);
        let mut e = self.element("concluded", from, at, self.concluded_by);
        e["asg_close"] = json!({"reason": "concluded"});
        e
    }

    fn requeue(&mut self, at: DateTime<Utc>) -> Value {
        let from = self.state;
        self.back_to_queue(at);
        let mut e = self.element("requeued", from, at, None);
        e["asg_close"] = json!({"reason": "requeued"});
        e
    }

    fn offer(&mut self, agent: Uuid, at: DateTime<Utc>) -> Value {
        let from = self.state;
        self.state = "offered";
        self.offered_to = Some(agent);
        let mut e = self.element("offered", from, at, Some(agent));
        e["offer_make"] = json!({"agent": agent, "expires_at": at + TimeDelta::seconds(30)});
        e["decision"] = json!({"mode": "offer", "agent": agent, "reason": "longest idle", "candidates": []});
        e
    }

    /// The pending offer answered with `outcome` ("accepted" puts the conversation in service).
    fn answer(&mut self, outcome: &str, at: DateTime<Utc>) -> Value {
        let from = self.state;
        let agent = self.offered_to.take().expect("an offer is pending");
        let kind = format!("offer_{outcome}");
        let mut e = if outcome == "accepted" {
            self.put_in_service(agent, at);
            let mut e = self.element(&kind, from, at, Some(agent));
            e["asg_open"] = json!({"agent": agent, "via": "offer", "channel": "whatsapp"});
            e
        } else {
            self.state = "queued";
            self.element(&kind, from, at, Some(agent))
        };
        e["offer_resolve"] = json!({"outcome": outcome});
        e
    }

    fn toggle_inactive(&mut self, at: DateTime<Utc>) -> Value {
        let from = self.state;
        self.sub = Some(if self.sub == Some("active") { "inactive_at_agent" } else { "active" });
        self.element("inactivity", from, at, None)
    }

    fn reprioritize(&mut self, at: DateTime<Utc>) -> Value {
        self.priority += 1;
        self.element("priority_changed", self.state, at, None)
    }

    /// Closes with nothing open: no assignment or offer changes.
    fn stray_closes(&mut self, at: DateTime<Utc>) -> Value {
        let mut e = self.element("noted", self.state, at, None);
        e["asg_close"] = json!({"reason": "nothing open"});
        e["offer_resolve"] = json!({"outcome": "withdrawn"});
        e
    }

    fn cancel(&mut self, at: DateTime<Utc>) -> Value {
        let from = self.state;
        self.state = "cancelled";
        self.ended_at = Some(at);
        self.element("cancelled", from, at, None)
    }

    fn reopen(&mut self, at: DateTime<Utc>) -> Value {
        let from = self.state;
        self.back_to_queue(at);
        self.concluded_by = None;
        self.ended_at = None;
        self.element("reopened", from, at, None)
    }
}

fn presence(agent: Uuid, status: &str, reason: Option<Uuid>, at: DateTime<Utc>) -> Value {
    json!({"t": "presence", "agent": agent, "status": status, "reason": reason, "at": at})
}

#[test]
fn several_changes_of_one_conversation_in_one_batch() {
    let world = World::new(3, 2);
    let mut pair = Pair::new(&world);
    let [a0, a1, a2] = [world.agents[0], world.agents[1], world.agents[2]];
    let [mut c0, mut c1]: [Conv; 2] = world.conversations().try_into().unwrap();

    let batch = json!([c0.assign(a0, at(1)), c1.assign(a0, at(1)), c0.transfer(a1, at(2)), c0.conclude(at(3))]);
    assert_eq!(pair.apply(&batch).expect("apply"), vec![1, 1, 2, 3]);
    pair.assert_same_rows();
    assert_eq!(
        pair.query(
            "SELECT customer_address AS c, state, login(current_agent_id) AS owner, login(first_agent_id) AS first,
                    login(concluded_by_id) AS by, s(ended_at) AS ended, last_seq, s(updated_at) AS updated
             FROM conversations ORDER BY customer_address"
        ),
        json!([
            {"c": "c0", "state": "concluded", "owner": null, "first": "a0", "by": "a1", "ended": 3,
             "last_seq": 3, "updated": 3},
            {"c": "c1", "state": "in_service", "owner": "a0", "first": "a0", "by": null, "ended": null,
             "last_seq": 1, "updated": 1},
        ])
    );
    let c0_assignments = format!(
        "SELECT login(agent_id) AS agent, via, s(assigned_at) AS assigned, s(ended_at) AS ended, end_reason
         FROM assignments WHERE conversation_id = '{}' ORDER BY id",
        c0.id
    );
    assert_eq!(
        pair.query(&c0_assignments),
        json!([
            {"agent": "a0", "via": "auto", "assigned": 1, "ended": 2, "end_reason": "transferred"},
            {"agent": "a1", "via": "transfer", "assigned": 2, "ended": 3, "end_reason": "concluded"},
        ])
    );
    assert_eq!(
        pair.query(&format!(
            "SELECT seq, kind, from_state, to_state FROM conversation_events WHERE conversation_id = '{}' ORDER BY id",
            c0.id
        )),
        json!([
            {"seq": 1, "kind": "assigned", "from_state": "queued", "to_state": "in_service"},
            {"seq": 2, "kind": "transferred", "from_state": "in_service", "to_state": "in_service"},
            {"seq": 3, "kind": "concluded", "from_state": "in_service", "to_state": "concluded"},
        ])
    );
    assert_eq!(
        pair.query("SELECT mode, login(agent_id) AS agent, s(decided_at) AS at FROM routing_decisions ORDER BY id"),
        json!([
            {"mode": "auto", "agent": "a0", "at": 1},
            {"mode": "auto", "agent": "a0", "at": 1},
            {"mode": "transfer", "agent": "a1", "at": 2},
        ])
    );

    // The assignment open before the batch is closed by the batch's first change, the next ones
    // by the changes after them.
    let batch = json!([c1.transfer(a1, at(4)), c1.requeue(at(5)), c1.assign(a2, at(6)), c0.reopen(at(6))]);
    assert_eq!(pair.apply(&batch).expect("apply"), vec![2, 3, 4, 4]);
    pair.assert_same_rows();
    assert_eq!(
        pair.query(&format!(
            "SELECT login(agent_id) AS agent, s(assigned_at) AS assigned, s(ended_at) AS ended, end_reason
             FROM assignments WHERE conversation_id = '{}' ORDER BY id",
            c1.id
        )),
        json!([
            {"agent": "a0", "assigned": 1, "ended": 4, "end_reason": "transferred"},
            {"agent": "a1", "assigned": 4, "ended": 5, "end_reason": "requeued"},
            {"agent": "a2", "assigned": 6, "ended": null, "end_reason": null},
        ])
    );
}

#[test]
fn offers_made_and_resolved_in_one_batch() {
    let world = World::new(2, 2);
    let mut pair = Pair::new(&world);
    let [a0, a1] = [world.agents[0], world.agents[1]];
    let [mut c0, mut c1]: [Conv; 2] = world.conversations().try_into().unwrap();

    let batch = json!([
        c0.offer(a0, at(1)),
        c1.offer(a1, at(1)),
        c0.answer("lapsed", at(2)),
        c0.offer(a1, at(3)),
        c0.answer("accepted", at(4)),
    ]);
    assert_eq!(pair.apply(&batch).expect("apply"), vec![1, 1, 2, 3, 4]);
    pair.assert_same_rows();
    let offers = "SELECT customer_address AS c, login(agent_id) AS agent, s(offered_at) AS offered,
                         s(expires_at) AS expires, s(resolved_at) AS resolved, outcome
                  FROM offers JOIN conversations ON conversations.id = conversation_id ORDER BY offers.id";
    assert_eq!(
        pair.query(offers),
        json!([
            {"c": "c0", "agent": "a0", "offered": 1, "expires": 31, "resolved": 2, "outcome": "lapsed"},
            {"c": "c1", "agent": "a1", "offered": 1, "expires": 31, "resolved": null, "outcome": null},
            {"c": "c0", "agent": "a1", "offered": 3, "expires": 33, "resolved": 4, "outcome": "accepted"},
        ])
    );
    assert_eq!(
        pair.query("SELECT login(agent_id) AS agent, via, s(assigned_at) AS assigned, ended_at FROM assignments"),
        json!([{"agent": "a1", "via": "offer", "assigned": 4, "ended_at": null}])
    );

    // The offer pending before the batch is resolved by its first change.
    let batch = json!([c1.answer("rejected", at(5)), c1.offer(a0, at(6)), c1.answer("accepted", at(7))]);
    assert_eq!(pair.apply(&batch).expect("apply"), vec![2, 3, 4]);
    pair.assert_same_rows();
    assert_eq!(
        pair.query(&format!(
            "SELECT login(agent_id) AS agent, s(resolved_at) AS resolved, outcome FROM offers
             WHERE conversation_id = '{}' ORDER BY id",
            c1.id
        )),
        json!([
            {"agent": "a1", "resolved": 5, "outcome": "rejected"},
            {"agent": "a0", "resolved": 7, "outcome": "accepted"},
        ])
    );
}

#[test]
fn presence_changes_of_one_agent_in_one_batch() {
    let world = World::new(2, 1);
    let mut pair = Pair::new(&world);
    let [a0, a1] = [world.agents[0], world.agents[1]];
    let mut c0 = world.conversations().remove(0);
    let lunch = Some(world.reason);

    assert_eq!(pair.apply(&json!([presence(a0, "available", None, at(10))])).expect("apply"), vec![0]);
    // Each change closes the one before; an interval never ends before it started.
    let batch = json!([
        presence(a0, "paused", lunch, at(20)),
        c0.assign(a0, at(20)),
        presence(a0, "available", None, at(15)),
        presence(a1, "offline", None, at(21)),
        presence(a0, "pause_pending", lunch, at(30)),
        presence(a0, "offline", None, at(31)),
    ]);
    assert_eq!(pair.apply(&batch).expect("apply"), vec![0, 1, 0, 0, 0, 0]);
    pair.assert_same_rows();
    assert_eq!(
        pair.query(
            "SELECT login(agent_id) AS agent, status, pause_reason_id IS NOT NULL AS reason,
                    s(started_at) AS started, s(ended_at) AS ended
             FROM presence_history ORDER BY id"
        ),
        json!([
            {"agent": "a0", "status": "available", "reason": false, "started": 10, "ended": 20},
            {"agent": "a0", "status": "paused", "reason": true, "started": 20, "ended": 20},
            {"agent": "a0", "status": "available", "reason": false, "started": 15, "ended": 30},
            {"agent": "a1", "status": "offline", "reason": false, "started": 21, "ended": null},
            {"agent": "a0", "status": "pause_pending", "reason": true, "started": 30, "ended": 31},
            {"agent": "a0", "status": "offline", "reason": false, "started": 31, "ended": null},
        ])
    );
}

#[test]
fn a_missing_conversation_refuses_the_whole_batch() {
    let world = World::new(1, 1);
    let mut pair = Pair::new(&world);
    let a0 = world.agents[0];
    let mut c0 = world.conversations().remove(0);
    let mut ghost = Conv::new(Uuid::new_v4(), world.service);

    let batch = json!([presence(a0, "available", None, at(1)), c0.assign(a0, at(2)), ghost.assign(a0, at(3))]);
    match pair.apply(&batch) {
        Err(StoreError::Reference { .. }) => {}
        other => panic!("expected a refused reference, got {other:?}"),
    }
    pair.assert_same_rows();
    assert_eq!(
        pair.query(
            "SELECT (SELECT count(*) FROM presence_history) AS presence, (SELECT count(*) FROM assignments) AS asg,
                    (SELECT count(*) FROM conversation_events) AS events,
                    (SELECT max(last_seq) FROM conversations) AS seq"
        ),
        json!([{"presence": 0, "asg": 0, "events": 0, "seq": 0}]),
        "nothing of the batch is written"
    );
}

#[test]
fn a_second_open_assignment_or_offer_is_refused_as_element_by_element() {
    let world = World::new(2, 4);
    let mut pair = Pair::new(&world);
    let [a0, a1] = [world.agents[0], world.agents[1]];
    let [mut c0, mut c1, mut c2, mut c3]: [Conv; 4] = world.conversations().try_into().unwrap();
    let refused = |result: Result<Vec<i64>, StoreError>, constraint: &str| match result {
        Err(StoreError::Conflict { constraint: c }) => assert_eq!(c, constraint),
        other => panic!("expected a conflict on {constraint}, got {other:?}"),
    };
    let assignment = "assignments_one_open_per_conversation";
    let offer = "offers_one_pending_per_conversation";

    // Within the batch, even when a later change closes the second one.
    let mut x = c0.clone();
    refused(pair.apply(&json!([x.assign(a0, at(1)), x.assign(a1, at(2)), x.conclude(at(3))])), assignment);
    let mut x = c0.clone();
    refused(pair.apply(&json!([x.offer(a0, at(1)), x.offer(a1, at(2)), x.answer("lapsed", at(3))])), offer);

    // Against the one open before the batch.
    pair.apply(&json!([c1.assign(a0, at(1)), c2.offer(a0, at(1))])).expect("apply");
    refused(pair.apply(&json!([c1.clone().assign(a1, at(2))])), assignment);
    let mut x = c1.clone();
    refused(pair.apply(&json!([x.assign(a1, at(2)), x.conclude(at(3))])), assignment);
    refused(pair.apply(&json!([c2.clone().offer(a1, at(2))])), offer);
    let mut x = c2.clone();
    refused(pair.apply(&json!([x.offer(a1, at(2)), x.answer("lapsed", at(3))])), offer);

    // What stays allowed: closes with nothing open, and an open after a close.
    let batch = json!([c3.stray_closes(at(2)), c1.transfer(a1, at(2)), c1.requeue(at(3)), c1.assign(a0, at(4))]);
    assert_eq!(pair.apply(&batch).expect("apply"), vec![1, 2, 3, 4]);
    let batch = json!([c2.answer("rejected", at(5)), c2.offer(a1, at(5)), c0.offer(a0, at(5))]);
    assert_eq!(pair.apply(&batch).expect("apply"), vec![2, 3, 1]);
    pair.assert_same_rows();
}

/// A seeded generator (splitmix64): the same batches on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// A valid next change of `conv`, as the engine could make it.
fn random_change(conv: &mut Conv, agents: &[Uuid], rng: &mut Rng, at: DateTime<Utc>) -> Value {
    let agent = rng.pick(agents);
    match conv.state {
        "queued" => match rng.below(10) {
            0..=3 => conv.assign(agent, at),
            4..=6 => conv.offer(agent, at),
            7 => conv.reprioritize(at),
            8 => conv.stray_closes(at),
            _ => conv.cancel(at),
        },
        "offered" => conv.answer(rng.pick(&["accepted", "accepted", "rejected", "lapsed"]), at),
        "in_service" => match rng.below(10) {
            0..=2 => {
                let others: Vec<Uuid> = agents.iter().copied().filter(|a| Some(*a) != conv.owner).collect();
                conv.transfer(rng.pick(&others), at)
            }
            3..=5 => conv.conclude(at),
            6 => conv.requeue(at),
            7 | 8 => conv.toggle_inactive(at),
            _ => conv.reprioritize(at),
        },
        _ => conv.reopen(at),
    }
}

/// Random batches (1 to 30 elements over 8 conversations and 4 agents, so most conversations
/// and agents change several times in a batch; 1 in 10 elements a presence change, 1 batch in
/// 25 refused for a missing conversation) give the same results and rows as element by element.
fn random_batches(seed: u64, batches: usize) {
    let world = World::new(4, 8);
    let mut pair = Pair::new(&world);
    let mut rng = Rng(seed);
    let mut convs = world.conversations();
    let statuses = ["offline", "available", "pause_pending", "paused"];
    let mut clock = 0;
    let mut refusals = 0;
    for round in 0..batches {
        let before = convs.clone();
        let mut batch = Vec::new();
        for _ in 0..1 + rng.below(30) {
            clock += rng.below(2) as i64;
            if rng.below(10) == 0 {
                let status = rng.pick(&statuses);
                let reason = status.starts_with("pause").then_some(world.reason);
                // Sometimes before the agent's current interval started.
                batch.push(presence(rng.pick(&world.agents), status, reason, at(clock - rng.below(5) as i64)));
            } else {
                let i = rng.below(convs.len());
                batch.push(random_change(&mut convs[i], &world.agents, &mut rng, at(clock)));
            }
        }
        let missing = rng.below(25) == 0;
        if missing {
            let mut ghost = Conv::new(Uuid::new_v4(), world.service);
            let position = rng.below(batch.len() + 1);
            batch.insert(position, ghost.reprioritize(at(clock)));
        }
        let result = pair.apply(&Value::Array(batch));
        if missing {
            assert!(matches!(result, Err(StoreError::Reference { .. })), "round {round}: {result:?}");
            convs = before;
            refusals += 1;
        } else {
            result.unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        if round % 20 == 19 {
            pair.assert_same_rows();
        }
    }
    pair.assert_same_rows();
    assert!(refusals > 0, "seed {seed} never refused a batch");
    let events = pair.query("SELECT count(*) AS n FROM conversation_events")[0]["n"].as_i64().unwrap();
    assert!(events > 1000, "seed {seed}: only {events} events");
}

#[test]
fn random_batches_match_the_element_by_element_function() {
    for seed in [1, 2, 3] {
        random_batches(seed, 150);
    }
}
