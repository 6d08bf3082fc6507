//! R15: stop the engine, start a new one on the same database, and nothing has moved: the same
//! queues in the same order, the same owners and offers, the same presences, and every timer
//! fires at its original deadline, not one counted from the restart.
//!
//! One thing does start at the restart, by design (docs/architecture.md): nobody is connected to
//! a new engine, so every agent that was logged in gets its disconnect grace (R9) from the restart
//! and keeps its conversations only if a desk connects in time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use engine::distributor::AgentSnapshot;
use engine::{By, ConversationFacts, Engine, EngineEvent, NewConversation, Presence, PresenceRequest};
use schema::models::PauseReason;
use schema::{AgentId, Channel, ConversationId, ConversationState, OfferOutcome, PauseReasonId, ServiceId, SubState};

use crate::support::*;

const SECOND: Duration = Duration::from_secs(1);

/// A desk that counts what it is told.
struct Desk(Arc<AtomicUsize>);

impl Actor for Desk {
    type Context = Context<Self>;
}

impl Handler<EngineEvent> for Desk {
    type Result = ();

    fn handle(&mut self, _: EngineEvent, _: &mut Context<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn pause_reason(w: &World, name: &str) -> PauseReasonId {
    PauseReason { id: PauseReasonId::new(), name: name.into(), active: true, created_at: t0() }
        .insert(&mut w.db.conn())
        .unwrap()
        .id
}

/// Everything an agent or a supervisor could see of the routing state.
#[derive(Debug, PartialEq)]
struct Picture {
    queues: Vec<engine::feed::QueueCounts>,
    waiting: BTreeMap<ServiceId, Vec<ConversationFacts>>,
    agents: BTreeMap<AgentId, AgentView>,
    conversations: BTreeMap<ConversationId, ConversationFacts>,
}

/// An agent snapshot without its desk connections (none survive a restart).
#[derive(Debug, PartialEq)]
struct AgentView {
    presence: Presence,
    presence_since: DateTime<Utc>,
    services: Vec<ServiceId>,
    capacity: Vec<u32>,
    conversations: Vec<ConversationFacts>,
    offers: Vec<ConversationFacts>,
}

impl From<AgentSnapshot> for AgentView {
    fn from(s: AgentSnapshot) -> Self {
        let mut services = s.profile.services;
        services.sort();
        let mut conversations = s.conversations;
        conversations.sort_by_key(|f| f.id);
        let mut offers = s.offers;
        offers.sort_by_key(|f| f.id);
        Self {
            presence: s.presence,
            presence_since: s.presence_since,
            services,
            capacity: s.profile.capacity.to_vec(),
            conversations,
            offers,
        }
    }
}

async fn picture(engine: &Engine, services: &[ServiceId], agents: &[AgentId], open: &[ConversationId]) -> Picture {
    let mut queues = engine.queues().await;
    queues.sort_by_key(|q| q.service_id);
    let mut waiting = BTreeMap::new();
    for s in services {
        waiting.insert(*s, engine.waiting(*s).await);
    }
    let mut agent_views = BTreeMap::new();
    for a in agents {
        agent_views.insert(*a, AgentView::from(engine.agent(*a).await.unwrap()));
    }
    let mut conversations = BTreeMap::new();
    for c in open {
        conversations.insert(*c, engine.conversation(*c).await.unwrap());
    }
    Picture { queues, waiting, agents: agent_views, conversations }
}

fn stored_events(w: &World) -> i64 {
    schema::schema::conversation_events::table.count().get_result(&mut w.db.conn()).unwrap()
}

#[actix_rt::test]
async fn a_restarted_engine_has_the_same_queues_owners_offers_presences_and_deadlines() {
    let w = World::new();
    let lunch = pause_reason(&w, "Lunch");
    // Defaults: automatic, inactivity 30 min, abandonment 48 h, disconnect grace 60 s.
    let whatsapp = w.service("WhatsApp", Channel::Whatsapp, |_| {});
    let telegram = w.service("Telegram", Channel::Telegram, |s| s.offer_timeout_s = Some(30));
    let webchat = w.service("Webchat", Channel::Webchat, |s| s.auto_distribution = false);
    let services = [whatsapp, telegram, webchat];
    let ana = w.agent("ana", &services, Some(2));
    let bia = w.agent("bia", &services, Some(2));
    let caio = w.agent("caio", &[telegram], Some(2));
    let duda = w.agent("duda", &[whatsapp], Some(2));
    let agents = [ana, bia, caio, duda];

    let engine = w.engine().await;
    for a in [ana, bia, caio] {
        engine.set_presence(a, PresenceRequest::Available).await.unwrap();
    }
    assert_eq!(
        engine.set_presence(duda, PresenceRequest::Paused(lunch)).await.unwrap(),
        Presence::Paused { reason: lunch }
    );
    let mut n = 0;
    let mut open = |service: ServiceId, channel: Channel, priority: i32| {
        n += 1;
        let mut new = NewConversation::new(service, channel, format!("55119000000{n:02}"));
        new.priority = priority;
        new
    };
    let owner = async |engine: &Engine, c: ConversationId| engine.conversation(c).await.unwrap().owner;

    // WhatsApp: ana and bia full (two each), three waiting, one of them urgent.
    engine.advance_clock(SECOND).await;
    let c1 = engine.open_conversation(open(whatsapp, Channel::Whatsapp, 0)).await.unwrap();
    let c2 = engine.open_conversation(open(whatsapp, Channel::Whatsapp, 0)).await.unwrap();
    engine.advance_clock(MINUTE).await;
    let c3 = engine.open_conversation(open(whatsapp, Channel::Whatsapp, 0)).await.unwrap();
    let c4 = engine.open_conversation(open(whatsapp, Channel::Whatsapp, 0)).await.unwrap();
    // The agent of c1 reconnects after the restart; the other one does not.
    let keeper = owner(&engine, c1).await.unwrap();
    let leaver = if keeper == ana { bia } else { ana };
    assert_eq!(owner(&engine, c2).await, Some(leaver));
    let mut queued = Vec::new();
    for priority in [0, 5, 0] {
        engine.advance_clock(SECOND).await;
        queued.push(engine.open_conversation(open(whatsapp, Channel::Whatsapp, priority)).await.unwrap());
    }
    let (c5, c6, c7) = (queued[0], queued[1], queued[2]);
    let ids = |fs: Vec<ConversationFacts>| fs.into_iter().map(|f| f.id).collect::<Vec<_>>();
    assert_eq!(ids(engine.waiting(whatsapp).await), [c6, c5, c7], "priority first, then arrival");

    // Webchat (pull only): the keeper takes the urgent one; three wait.
    let mut chats = Vec::new();
    for priority in [0, 3, 0, 0] {
        engine.advance_clock(SECOND).await;
        chats.push(engine.open_conversation(open(webchat, Channel::Webchat, priority)).await.unwrap());
    }
    assert_eq!(engine.pull_next(keeper, Channel::Webchat).await.unwrap(), Some(chats[1]));
    assert_eq!(ids(engine.waiting(webchat).await), [chats[0], chats[2], chats[3]]);

    // Twenty minutes later, Telegram (offers): one accepted, one declined and offered again.
    engine.advance_clock(20 * MINUTE).await;
    let t1 = engine.open_conversation(open(telegram, Channel::Telegram, 0)).await.unwrap();
    let accepted_by = engine.conversation(t1).await.unwrap().offer.unwrap().0;
    engine.accept(accepted_by, t1).await.unwrap();
    let t2 = engine.open_conversation(open(telegram, Channel::Telegram, 0)).await.unwrap();
    let declined_by = engine.conversation(t2).await.unwrap().offer.unwrap().0;
    engine.decline(declined_by, t2).await.unwrap();
    let offered = engine.conversation(t2).await.unwrap();
    assert_eq!(offered.state, ConversationState::Offered);
    let (offered_to, offer_expires) = offered.offer.unwrap();
    assert_ne!(offered_to, declined_by);
    assert_eq!(offered.declined_by, [declined_by]);
    engine.advance_clock(10 * SECOND).await;

    let open_ids = [c1, c2, c3, c4, c5, c6, c7, chats[0], chats[1], chats[2], chats[3], t1, t2];
    engine.flush().await;
    let before = picture(&engine, &services, &agents, &open_ids).await;
    let timers_before = engine.armed_timers().await;
    let events_before = stored_events(&w);
    let c1_assigned = before.conversations[&c1].assigned_at.unwrap();
    assert_eq!(before.conversations[&c1].sub_state, Some(SubState::Active));
    engine.stop();

    // The same database, the same clock: no time passes.
    let engine = Engine::start(w.db.pool(), w.clock.clone()).await.unwrap();
    let restarted_at = w.clock.now();
    let after = picture(&engine, &services, &agents, &open_ids).await;
    assert_eq!(after.queues, before.queues);
    assert_eq!(after.waiting, before.waiting, "queues differ (content or order)");
    for a in agents {
        assert_eq!(after.agents[&a], before.agents[&a], "agent {a} differs after the restart");
    }
    assert_eq!(after.conversations, before.conversations);
    assert_eq!(stored_events(&w), events_before, "a restart alone must not route anything");
    // Every conversation timer again, plus one disconnect grace per logged-in agent.
    assert_eq!(engine.armed_timers().await, timers_before + agents.len());

    // Desks reconnect, except the leaver's.
    let told = Arc::new(AtomicUsize::new(0));
    for a in [keeper, caio, duda] {
        engine.connect(a, Desk(told.clone()).start().recipient()).await.unwrap();
    }

    // The pending offer lapses at its original deadline (offered 10 s before the restart, 30 s
    // timeout) and goes to the one member who has not turned it down.
    engine.advance_clock(19 * SECOND).await;
    assert_eq!(engine.conversation(t2).await.unwrap().offer, Some((offered_to, offer_expires)));
    engine.advance_clock(2 * SECOND).await;
    assert!(w.clock.now() > offer_expires && w.clock.now() < restarted_at + chrono::Duration::seconds(30));
    let reoffered = engine.conversation(t2).await.unwrap();
    let third = [ana, bia, caio].into_iter().find(|a| *a != declined_by && *a != offered_to).unwrap();
    assert_eq!(reoffered.offer.map(|(a, _)| a), Some(third), "offered again to the one who let it lapse?");
    let mut conn = w.db.conn();
    let lapsed: Vec<_> = schema::schema::offers::table
        .filter(schema::schema::offers::conversation_id.eq(t2))
        .filter(schema::schema::offers::agent_id.eq(offered_to))
        .select(schema::models::Offer::as_select())
        .load(&mut conn)
        .unwrap();
    assert_eq!(lapsed.len(), 1);
    assert_eq!(lapsed[0].outcome, Some(OfferOutcome::Lapsed));
    assert_eq!(lapsed[0].expires_at, offer_expires);

    // The grace runs from the restart: a second before it ends the leaver is still logged in…
    engine.advance_clock(38 * SECOND).await;
    assert_eq!(engine.agent(leaver).await.unwrap().presence, Presence::Available);
    let leavers: Vec<ConversationId> = before.agents[&leaver].conversations.iter().map(|f| f.id).collect();
    assert!(leavers.contains(&c2));
    // …and after it, logged off, its conversations back in their queues.
    engine.advance_clock(2 * SECOND).await;
    assert_eq!(engine.agent(leaver).await.unwrap().presence, Presence::Offline);
    assert_eq!(
        schema::store::open_presence(&mut conn, leaver).unwrap().unwrap().status,
        schema::PresenceStatus::Offline
    );
    for c in &leavers {
        let f = engine.conversation(*c).await.unwrap();
        assert_eq!((f.state, f.owner), (ConversationState::InactiveInQueue, None));
        let last = schema::store::events_after(&mut conn, *c, 0).unwrap().pop().unwrap();
        assert_eq!((last.kind.as_str(), last.reason.as_deref()), ("requeued", Some("agent_disconnected")));
    }
    // They keep their age: after the urgent one, before the later arrivals.
    let mut leaver_wa: Vec<&ConversationFacts> =
        before.agents[&leaver].conversations.iter().filter(|f| f.service == whatsapp).collect();
    leaver_wa.sort_by_key(|f| (f.arrived_at, f.id));
    let mut expected = vec![c6];
    expected.extend(leaver_wa.iter().map(|f| f.id));
    expected.extend([c5, c7]);
    assert_eq!(ids(engine.waiting(whatsapp).await), expected);
    // Those who connected in time keep everything.
    for a in [keeper, caio, duda] {
        let now = AgentView::from(engine.agent(a).await.unwrap());
        assert_eq!((now.presence, now.presence_since), (before.agents[&a].presence, before.agents[&a].presence_since));
        assert_eq!(
            ids(now.conversations),
            ids(before.agents[&a].conversations.clone()),
            "agent {a} lost conversations"
        );
    }
    assert_eq!(engine.agent(duda).await.unwrap().presence, Presence::Paused { reason: lunch });

    // Inactivity fires 30 minutes after c1 was assigned, before the restart — not 30 minutes after
    // the restart.
    let deadline = c1_assigned + chrono::Duration::minutes(30);
    let until = (deadline - w.clock.now() - chrono::Duration::seconds(1)).to_std().unwrap();
    engine.advance_clock(until).await;
    assert_eq!(engine.conversation(c1).await.unwrap().sub_state, Some(SubState::Active));
    engine.advance_clock(2 * SECOND).await;
    let f = engine.conversation(c1).await.unwrap();
    assert_eq!(
        (f.state, f.sub_state, f.owner),
        (ConversationState::InService, Some(SubState::InactiveAtAgent), Some(keeper))
    );
    let became_inactive = schema::store::events_after(&mut conn, c1, 0)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "became_inactive")
        .expect("a became_inactive event");
    assert!(
        became_inactive.at > deadline - chrono::Duration::seconds(1)
            && became_inactive.at <= deadline + chrono::Duration::seconds(1)
    );
    assert!(became_inactive.at < restarted_at + chrono::Duration::minutes(30));
    // The capacity it freed went to the head of the queue at once (R6).
    assert_eq!(owner(&engine, c6).await, Some(keeper));
    assert!(told.load(Ordering::Relaxed) > 0, "connected desks were told nothing");
    engine.stop();
}

/// docs/architecture.md: "a declined or lapsed offer, or a conversation its agent returned, is
/// never offered again to that agent". Offers are stored and restored; returns are only in
/// memory, so after a restart the returned conversation goes straight back to its agent.
#[actix_rt::test]

async fn a_conversation_its_agent_returned_does_not_go_back_to_it_after_a_restart() {
    let w = World::new();
    let s = w.service("WhatsApp", Channel::Whatsapp, |_| {});
    let ana = w.agent("ana", &[s], Some(2));
    let engine = w.engine().await;
    engine.set_presence(ana, PresenceRequest::Available).await.unwrap();
    let c = engine.open_conversation(NewConversation::new(s, Channel::Whatsapp, "5511900000001")).await.unwrap();
    assert_eq!(engine.conversation(c).await.unwrap().owner, Some(ana));
    engine.return_to_queue(By::Agent(ana), c).await.unwrap();
    let f = engine.conversation(c).await.unwrap();
    assert_eq!((f.state, f.declined_by.as_slice()), (ConversationState::Queued, [ana].as_slice()));
    engine.flush().await;
    engine.stop();

    let engine = Engine::start(w.db.pool(), w.clock.clone()).await.unwrap();
    let f = engine.conversation(c).await.unwrap();
    assert_eq!(
        (f.state, f.owner, f.declined_by.as_slice()),
        (ConversationState::Queued, None, [ana].as_slice()),
        "after the restart the returned conversation went back to the agent who returned it"
    );
    engine.stop();
}
