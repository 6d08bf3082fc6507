//! The switchboard of one voice service with ARI: a task that holds the events WebSocket of the
//! service's Stasis application (reconnecting with backoff) and the engine's voice events, and
//! steers the calls through ARI REST:
//!
//! - an incoming call (`StasisStart`) becomes a queued voice conversation (idempotent by the
//!   channel id, the customer identified by phone, K2) and hears ringing while it waits;
//! - when the engine offers or assigns it to an agent, the agent's extension is dialled
//!   (`POST /channels?endpoint=PJSIP/<extension>&app=…`); when that leg answers, the offer is
//!   accepted, the caller answered and both channels put in a mixing bridge; a leg that fails or
//!   is not answered gives the call back (offer declined, or returned to the queue), so the
//!   engine routes it to someone else;
//! - a caller who hangs up while waiting leaves an `abandoned` conversation; a hang-up once
//!   connected (either side) concludes it, as CTI's `call_ended` does;
//! - transfers (R11): to an agent, the old leg is hung up and the new agent dialled into the
//!   same bridge; to a service or back to the queue, the leg is hung up and the caller waits
//!   for the next agent; to an external extension, the caller's channel is redirected to
//!   `PJSIP/<extension>`; a conversation ended in the desk hangs the call up.
//!
//! One task handles one service's events in order, so its call table needs no locks. The table
//! lives in memory; at start it is rebuilt from the open voice conversations and their stored
//! calls, and on every (re)connection checked against `GET /channels` for hang-ups that happened
//! while no events could arrive.

use std::collections::HashMap;
use std::time::Duration;

use engine::By;
use engine::book::{ConversationEvent, EventKind};
use engine::ingest::{InboundMessage, Ingest, Ingested};
use futures_util::{SinkExt, StreamExt};
use schema::models::Agent;
use schema::{AgentId, Channel, ConversationId, ConversationState, CustomerId, MessageKind, ServiceId, store};
use serde_json::json;
use tokio::sync::{broadcast, oneshot};
use tracing::{debug, info, warn};

use super::VoiceEvent;
use super::ari::{AriClient, AriError, AriEvent, AriSettings, ChannelInfo, segment};
use crate::core::state::AppState;

/// The first wait before reconnecting the events socket; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long an agent's extension rings when the service has no offer timeout.
const RING_TIMEOUT_S: u64 = 30;
/// The first `appArgs` word of the legs we originate to agents.
const AGENT_LEG: &str = "omniroute-agent";
/// The first `appArgs` word of the legs we originate to customers (C8).
const CUSTOMER_LEG: &str = "omniroute-customer";
/// Where the legs of calls picked up again after a restart are numbered from (see `rebuild`).
const REBUILT_LEGS: u32 = 100;
/// Dial results that mean the agent's phone will not answer.
const FAILED_DIAL: &[&str] = &["BUSY", "NOANSWER", "CHANUNAVAIL", "CONGESTION", "CANCEL", "DONTCALL", "TORTURE"];

/// Runs a service's switchboard until `stop` fires (or its sender is dropped).
pub fn spawn(
    state: AppState,
    service: ServiceId,
    settings: AriSettings,
    feed: broadcast::Receiver<VoiceEvent>,
    stop: oneshot::Receiver<()>,
) {
    actix_web::rt::spawn(async move {
        let mut board = Switchboard::new(state, service, settings);
        board.run(feed, stop).await;
        info!(service.id = %service, "ARI switchboard stopped");
    });
}

/// Which side of a call a channel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    Caller,
    Agent,
}

/// The channel we dialled to an agent's extension.
#[derive(Debug, Clone)]
struct AgentLeg {
    agent: AgentId,
    channel: String,
    /// The agent picked up.
    up: bool,
}

/// One call in progress.
#[derive(Debug, Clone)]
struct Call {
    /// The caller's channel id.
    caller: String,
    caller_number: String,
    /// The caller's channel was answered (it is, from the first agent on).
    answered: bool,
    /// The mixing bridge (id = the conversation id) exists.
    bridged: bool,
    agent: Option<AgentLeg>,
    /// Legs dialled so far (names the next one).
    legs: u32,
    /// An agent dialled the customer (C8): the caller's channel is ours, made once the agent
    /// picked up; it is "answered" when the customer picks up.
    dialed_out: bool,
}

struct Switchboard {
    state: AppState,
    service: ServiceId,
    ari: AriClient,
    calls: HashMap<ConversationId, Call>,
    channels: HashMap<String, (ConversationId, Leg)>,
}

impl Switchboard {
    fn new(state: AppState, service: ServiceId, settings: AriSettings) -> Switchboard {
        Switchboard { state, service, ari: AriClient::new(settings), calls: HashMap::new(), channels: HashMap::new() }
    }

    async fn run(&mut self, mut feed: broadcast::Receiver<VoiceEvent>, mut stop: oneshot::Receiver<()>) {
        let ws_client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
        let url = self.ari.settings().events_url();
        let mut backoff = FIRST_BACKOFF;
        self.rebuild().await;
        loop {
            let connecting = ws_client.ws(url.as_str()).max_frame_size(4 << 20).connect();
            let socket = tokio::select! {
                _ = &mut stop => return,
                connected = connecting => connected,
            };
            match socket {
                Ok((_, mut socket)) => {
                    info!(service.id = %self.service, "ARI events connected");
                    backoff = FIRST_BACKOFF;
                    self.reconcile().await;
                    loop {
                        tokio::select! {
                            _ = &mut stop => return,
                            frame = socket.next() => match frame {
                                Some(Ok(awc::ws::Frame::Text(text))) => {
                                    let event = AriEvent::parse(&text, &self.ari.settings().app);
                                    self.on_ari(event).await;
                                }
                                Some(Ok(awc::ws::Frame::Ping(p))) => {
                                    let _ = socket.send(awc::ws::Message::Pong(p)).await;
                                }
                                Some(Ok(awc::ws::Frame::Close(_))) | None => break,
                                Some(Ok(_)) => {}
                                Some(Err(e)) => {
                                    warn!(service.id = %self.service, error = %e, "ARI events socket error");
                                    break;
                                }
                            },
                            event = feed.recv() => self.on_feed(event).await,
                        }
                    }
                    warn!(service.id = %self.service, "ARI events socket closed; reconnecting");
                }
                Err(e) => {
                    warn!(service.id = %self.service, error = %e, retry_ms = backoff.as_millis() as u64,
                          "cannot connect to the ARI events socket");
                }
            }
            // Engine events keep being served while the socket is down (REST may still work).
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = &mut wait => break,
                    event = feed.recv() => self.on_feed(event).await,
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn on_feed(&mut self, event: Result<VoiceEvent, broadcast::error::RecvError>) {
        match event {
            Ok(VoiceEvent::Conversation(event)) => self.on_engine(&event).await,
            Ok(VoiceEvent::DialOut { conversation, service, agent, number }) if service == self.service => {
                self.dial_out(conversation, agent, number).await;
            }
            Ok(VoiceEvent::DialOut { .. }) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(service.id = %self.service, missed = n, "the switchboard fell behind the engine's events");
            }
            // The engine is gone: nothing more will come; wait to be stopped.
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }

    // ----- after a restart or a lost connection -----

    /// The calls of the service's open voice conversations, as stored (after a restart): waiting
    /// ones are routed again like any, connected ones can still be hung up. Their agent legs are
    /// not known, so new legs are numbered from [`REBUILT_LEGS`] to keep channel ids unique.
    async fn rebuild(&mut self) {
        let service = self.service;
        let stored = self
            .db(move |c| {
                let mut calls = Vec::new();
                for conv in store::open_conversations(c)? {
                    if conv.service_id != service || conv.channel != Channel::Voice {
                        continue;
                    }
                    let call = store::messages_of(c, conv.id)?.into_iter().find(|m| {
                        m.kind == MessageKind::Call
                            && m.direction == schema::MessageDirection::In
                            && m.provider_message_id.is_some()
                    });
                    if let Some(m) = call {
                        calls.push((conv, m));
                    }
                }
                Ok(calls)
            })
            .await
            .unwrap_or_default();
        for (conv, m) in stored {
            let Some(channel) = m.provider_message_id else { continue };
            let connected = conv.state == ConversationState::InService;
            let number = m.payload.get("caller").and_then(serde_json::Value::as_str).unwrap_or("").to_owned();
            self.channels.insert(channel.clone(), (conv.id, Leg::Caller));
            self.calls.insert(
                conv.id,
                Call {
                    caller: channel,
                    caller_number: number,
                    answered: connected,
                    bridged: connected,
                    agent: None,
                    legs: REBUILT_LEGS,
                    dialed_out: false,
                },
            );
        }
        if !self.calls.is_empty() {
            info!(service.id = %self.service, calls = self.calls.len(), "calls picked up again");
        }
    }

    /// After (re)connecting: channels that ended while no events could arrive end their calls.
    async fn reconcile(&mut self) {
        if self.channels.is_empty() {
            return;
        }
        let alive: std::collections::HashSet<String> = match self.ari.get("/channels").await {
            Ok(serde_json::Value::Array(list)) => {
                list.iter().filter_map(|c| c.get("id").and_then(serde_json::Value::as_str)).map(str::to_owned).collect()
            }
            Ok(_) => return,
            Err(e) => {
                warn!(service.id = %self.service, error = %e, "cannot list ARI channels");
                return;
            }
        };
        let gone: Vec<String> = self.channels.keys().filter(|c| !alive.contains(*c)).cloned().collect();
        for channel in gone {
            info!(service.id = %self.service, channel.id = %channel, "channel ended while disconnected");
            self.channel_gone(&channel).await;
        }
    }

    // ----- the phone system's events -----

    async fn on_ari(&mut self, event: AriEvent) {
        debug!(service.id = %self.service, ?event, "ARI event");
        match event {
            AriEvent::StasisStart { channel, args } => match self.channels.get(&channel.id).copied() {
                Some((conversation, Leg::Agent)) => self.agent_answered(conversation, &channel.id).await,
                Some((conversation, Leg::Caller)) => self.customer_answered(conversation).await,
                None if matches!(args.first().map(String::as_str), Some(AGENT_LEG | CUSTOMER_LEG)) => {
                    // A leg of ours we no longer track (its call ended meanwhile): hang it up.
                    self.hang_up(&channel.id).await;
                }
                None => self.incoming(channel).await,
            },
            AriEvent::ChannelStateChange { channel } if channel.state == "Up" => {
                match self.channels.get(&channel.id).copied() {
                    Some((conversation, Leg::Agent)) => self.agent_answered(conversation, &channel.id).await,
                    Some((conversation, Leg::Caller)) => self.customer_answered(conversation).await,
                    None => {}
                }
            }
            AriEvent::StasisEnd { channel }
            | AriEvent::ChannelHangupRequest { channel }
            | AriEvent::ChannelDestroyed { channel, .. } => self.channel_gone(&channel.id).await,
            AriEvent::Dial { peer, dialstatus }
                if FAILED_DIAL.contains(&dialstatus.as_str()) && self.channels.contains_key(&peer.id) =>
            {
                self.channel_gone(&peer.id).await;
            }
            _ => {}
        }
    }

    /// A call entered the application: a queued voice conversation, once per channel id.
    async fn incoming(&mut self, channel: ChannelInfo) {
        let service = self.service;
        let address = if channel.caller_number.is_empty() {
            format!("anonymous:{}", channel.id)
        } else {
            channel.caller_number.clone()
        };
        let (id, addr) = (channel.id.clone(), address.clone());
        let known = self
            .db(move |c| {
                let replayed = store::message_by_provider_id(c, service, &id)?.is_some();
                let busy = store::open_conversation_for(c, service, &addr)?.is_some();
                let customer = identify(c, &addr)?;
                Ok((replayed, busy, customer))
            })
            .await;
        let (replayed, busy, customer) = match known {
            Ok(k) => k,
            Err(()) => return self.give_back(&channel.id).await,
        };
        if replayed {
            return;
        }
        if busy {
            // The same number already has a call open here: one conversation per address.
            info!(service.id = %service, channel.id = %channel.id, "caller already in a call; refused as busy");
            let _ = self.ari.delete(&format!("/channels/{}", segment(&channel.id)), &[("reason", "busy")]).await;
            return;
        }
        let inbound = InboundMessage {
            service,
            channel: Channel::Voice,
            address,
            customer_name: Some(channel.caller_name.clone()).filter(|n| !n.is_empty()),
            customer_id: customer,
            provider_message_id: Some(channel.id.clone()),
            kind: MessageKind::Call,
            body: None,
            payload: json!({"caller": channel.caller_number, "channel": channel.id, "dialed": channel.exten}),
            sent_at: None,
            subject: None,
        };
        let conversation = match crate::channels::ingest(&self.state, inbound, Ingest::published()).await {
            Ok((Ingested::Stored { conversation, opened: true, .. }, _)) => conversation,
            Ok((Ingested::Duplicate, _)) => return,
            Ok((Ingested::Stored { conversation, .. }, _)) => {
                // The number opened a conversation meanwhile (a CTI event racing this one): as busy.
                warn!(service.id = %service, conversation.id = %conversation, "a call joined an open conversation");
                let _ = self.ari.delete(&format!("/channels/{}", segment(&channel.id)), &[("reason", "busy")]).await;
                return;
            }
            Err(e) => {
                warn!(service.id = %service, channel.id = %channel.id, error = %e.message, "cannot open the call's conversation");
                return self.give_back(&channel.id).await;
            }
        };
        info!(service.id = %service, conversation.id = %conversation, channel.id = %channel.id, "call queued");
        self.channels.insert(channel.id.clone(), (conversation, Leg::Caller));
        self.calls.insert(
            conversation,
            Call {
                caller: channel.id.clone(),
                caller_number: channel.caller_number.clone(),
                answered: false,
                bridged: false,
                agent: None,
                legs: 0,
                dialed_out: false,
            },
        );
        // The caller hears ringing while waiting for an agent.
        self.log(self.ari.post(&format!("/channels/{}/ring", segment(&channel.id)), &[]).await, "ring");
    }

    /// The database is down: the call goes back to the dialplan, which may send it elsewhere.
    async fn give_back(&self, channel: &str) {
        self.log(self.ari.post(&format!("/channels/{}/continue", segment(channel)), &[]).await, "continue");
    }

    /// The agent picked up: the offer is accepted, the caller answered, both bridged.
    async fn agent_answered(&mut self, conversation: ConversationId, channel: &str) {
        let Some(call) = self.calls.get_mut(&conversation) else { return };
        let Some(leg) = call.agent.as_mut().filter(|l| l.channel == channel && !l.up) else { return };
        leg.up = true;
        let agent = leg.agent;
        let facts = self.state.engine.conversation(conversation).await;
        let taken = match facts {
            Some(f) if f.state == ConversationState::Offered && f.offer.map(|(a, _)| a) == Some(agent) => {
                self.state.engine.accept(agent, conversation).await.is_ok()
            }
            Some(f) => f.state == ConversationState::InService && f.owner == Some(agent),
            None => false,
        };
        if !taken {
            // The offer went elsewhere meanwhile: this leg has nothing to connect to.
            self.drop_agent_leg(conversation).await;
            return;
        }
        let Some(call) = self.calls.get_mut(&conversation) else { return };
        if call.dialed_out && !call.answered {
            // The agent is on the line: now the customer's phone rings (once the customer picks
            // up, both are bridged; a dialled call transferred later joins like any other).
            if call.caller.is_empty() {
                self.ring_customer(conversation).await;
            }
            return;
        }
        let caller = call.caller.clone();
        let first_answer = !call.answered;
        let bridge_exists = call.bridged;
        call.answered = true;
        call.bridged = true;
        if first_answer {
            self.log(self.ari.post(&format!("/channels/{}/answer", segment(&caller)), &[]).await, "answer");
        }
        let bridge = conversation.to_string();
        if !bridge_exists {
            self.log(self.ari.post("/bridges", &[("type", "mixing"), ("bridgeId", &bridge)]).await, "create bridge");
            let both = format!("{caller},{channel}");
            let path = format!("/bridges/{}/addChannel", segment(&bridge));
            self.log(self.ari.post(&path, &[("channel", &both)]).await, "bridge");
        } else {
            let path = format!("/bridges/{}/addChannel", segment(&bridge));
            self.log(self.ari.post(&path, &[("channel", channel)]).await, "bridge");
        }
        info!(conversation.id = %conversation, agent.id = %agent, "call connected");
    }

    /// A channel of a call ended (hang-up, failed dial, redirect).
    async fn channel_gone(&mut self, channel: &str) {
        let Some((conversation, leg)) = self.channels.remove(channel) else { return };
        match leg {
            Leg::Caller => {
                let Some(call) = self.calls.remove(&conversation) else { return };
                if let Some(leg) = &call.agent {
                    self.channels.remove(&leg.channel);
                    self.hang_up(&leg.channel).await;
                }
                if call.bridged {
                    self.destroy_bridge(conversation).await;
                }
                self.end_conversation(conversation, "caller_hung_up").await;
            }
            Leg::Agent => {
                let Some(call) = self.calls.get_mut(&conversation) else { return };
                let Some(leg) = call.agent.take_if(|l| l.channel == channel) else { return };
                if leg.up {
                    // The agent hung up a connected call: the caller goes too.
                    let call = self.calls.remove(&conversation);
                    if let Some(call) = call {
                        self.channels.remove(&call.caller);
                        self.hang_up(&call.caller).await;
                        if call.bridged {
                            self.destroy_bridge(conversation).await;
                        }
                    }
                    self.end_conversation(conversation, "agent_hung_up").await;
                } else if call.dialed_out {
                    // The agent did not pick up their own call: nothing to connect.
                    if let Some(call) = self.calls.remove(&conversation) {
                        self.channels.remove(&call.caller);
                        if !call.caller.is_empty() {
                            self.hang_up(&call.caller).await;
                        }
                    }
                    self.end_conversation(conversation, "agent_did_not_answer").await;
                } else {
                    self.give_back_to_queue(conversation, leg.agent).await;
                }
            }
        }
    }

    /// The call is over: a waiting conversation is abandoned, a served one concluded.
    async fn end_conversation(&self, conversation: ConversationId, reason: &str) {
        let Some(facts) = self.state.engine.conversation(conversation).await else { return };
        let done = match facts.state {
            ConversationState::InService => self.state.engine.conclude(By::System, conversation, None).await,
            ConversationState::PreOpening
            | ConversationState::Queued
            | ConversationState::Offered
            | ConversationState::InactiveInQueue => self.state.engine.customer_left(conversation, reason).await,
            _ => Ok(()),
        };
        match done {
            Ok(()) => info!(conversation.id = %conversation, reason, "call ended"),
            Err(e) => warn!(conversation.id = %conversation, error = %e, "cannot end the call's conversation"),
        }
    }

    /// The agent's phone did not answer: the offer is declined, or the assignment returned, so
    /// the engine routes the call to someone else (not to this agent again, R7).
    async fn give_back_to_queue(&self, conversation: ConversationId, agent: AgentId) {
        let Some(facts) = self.state.engine.conversation(conversation).await else { return };
        let done = match facts.state {
            ConversationState::Offered if facts.offer.map(|(a, _)| a) == Some(agent) => {
                self.state.engine.decline(agent, conversation).await
            }
            ConversationState::InService if facts.owner == Some(agent) => {
                self.state.engine.return_to_queue(By::System, conversation).await
            }
            _ => Ok(()),
        };
        match done {
            Ok(()) => info!(conversation.id = %conversation, agent.id = %agent, "agent did not answer; call requeued"),
            Err(e) => warn!(conversation.id = %conversation, error = %e, "cannot requeue the call"),
        }
    }

    // ----- calls dialled from the desk (C8) -----

    /// An agent dialled a customer: the agent's extension rings first.
    async fn dial_out(&mut self, conversation: ConversationId, agent: AgentId, number: String) {
        if self.calls.contains_key(&conversation) {
            return;
        }
        info!(conversation.id = %conversation, agent.id = %agent, "dialling out");
        self.calls.insert(
            conversation,
            Call {
                caller: String::new(),
                caller_number: number,
                answered: false,
                bridged: false,
                agent: None,
                legs: 0,
                dialed_out: true,
            },
        );
        self.dial(conversation, agent).await;
        if self.calls.get(&conversation).is_some_and(|c| c.agent.is_none()) {
            // The agent's phone could not be rung: the call is over before it started.
            self.calls.remove(&conversation);
            self.end_conversation(conversation, "agent_not_reachable").await;
        }
    }

    /// Rings the customer of a dialled-out call (the agent is on the line).
    async fn ring_customer(&mut self, conversation: ConversationId) {
        let Some(call) = self.calls.get_mut(&conversation) else { return };
        let channel = format!("{conversation}-customer");
        call.caller = channel.clone();
        let number = call.caller_number.clone();
        self.channels.insert(channel.clone(), (conversation, Leg::Caller));
        let settings = self.ari.settings();
        let endpoint = settings.dial_endpoint.replace("{number}", &number);
        let args = format!("{CUSTOMER_LEG},{conversation}");
        let (app, timeout) = (settings.app.clone(), RING_TIMEOUT_S.to_string());
        let query = [
            ("endpoint", endpoint.as_str()),
            ("app", &app),
            ("appArgs", &args),
            ("channelId", &channel),
            ("timeout", &timeout),
        ];
        if let Err(e) = self.ari.post("/channels", &query).await {
            warn!(conversation.id = %conversation, error = %e, "cannot call the customer");
            self.channel_gone(&channel).await;
        }
    }

    /// The customer of a dialled-out call picked up: both are bridged.
    async fn customer_answered(&mut self, conversation: ConversationId) {
        let Some(call) = self.calls.get_mut(&conversation) else { return };
        let Some(leg) = call.agent.as_ref().filter(|l| l.up) else { return };
        if !call.dialed_out || call.answered {
            return;
        }
        call.answered = true;
        call.bridged = true;
        let both = format!("{},{}", call.caller, leg.channel);
        let bridge = conversation.to_string();
        self.log(self.ari.post("/bridges", &[("type", "mixing"), ("bridgeId", &bridge)]).await, "create bridge");
        let path = format!("/bridges/{}/addChannel", segment(&bridge));
        self.log(self.ari.post(&path, &[("channel", &both)]).await, "bridge");
        info!(conversation.id = %conversation, "dialled call connected");
    }

    // ----- the engine's events -----

    async fn on_engine(&mut self, event: &ConversationEvent) {
        let conversation = event.facts.id;
        if !self.calls.contains_key(&conversation) {
            return;
        }
        match event.kind {
            EventKind::Offered | EventKind::Assigned | EventKind::Transferred => {
                if let Some(agent) = event.agent.or(event.facts.owner) {
                    self.dial(conversation, agent).await;
                }
            }
            EventKind::OfferDeclined | EventKind::OfferLapsed | EventKind::OfferWithdrawn => {
                let ringing = self.calls.get(&conversation).and_then(|c| c.agent.as_ref()).is_some_and(|l| !l.up);
                if ringing {
                    self.drop_agent_leg(conversation).await;
                }
            }
            EventKind::TransferredToService | EventKind::Returned | EventKind::Requeued => {
                self.drop_agent_leg(conversation).await;
            }
            EventKind::TransferredOut => {
                self.drop_agent_leg(conversation).await;
                let Some(call) = self.calls.remove(&conversation).filter(|c| !c.caller.is_empty()) else { return };
                self.channels.remove(&call.caller);
                let endpoint = format!("PJSIP/{}", event.extension.as_deref().unwrap_or_default());
                let path = format!("/channels/{}/redirect", segment(&call.caller));
                self.log(self.ari.post(&path, &[("endpoint", &endpoint)]).await, "redirect");
                if call.bridged {
                    self.destroy_bridge(conversation).await;
                }
            }
            EventKind::Concluded | EventKind::Cancelled | EventKind::Abandoned | EventKind::Rejected => {
                // Ended in the desk (or by a timer) while the call is up: hang it up.
                self.drop_agent_leg(conversation).await;
                let Some(call) = self.calls.remove(&conversation) else { return };
                self.channels.remove(&call.caller);
                self.hang_up(&call.caller).await;
                if call.bridged {
                    self.destroy_bridge(conversation).await;
                }
            }
            _ => {}
        }
    }

    /// Rings the agent's extension for this call (once per offer or assignment).
    async fn dial(&mut self, conversation: ConversationId, agent: AgentId) {
        let Some(call) = self.calls.get(&conversation) else { return };
        if call.agent.as_ref().is_some_and(|l| l.agent == agent) {
            return;
        }
        self.drop_agent_leg(conversation).await;
        let extension = self.db(move |c| Agent::find(c, agent).map(|a| a.extension)).await.ok().flatten();
        let Some(extension) = extension.filter(|x| !x.trim().is_empty()) else {
            warn!(conversation.id = %conversation, agent.id = %agent, "the agent has no extension to ring");
            return self.give_back_to_queue(conversation, agent).await;
        };
        let Some(call) = self.calls.get_mut(&conversation) else { return };
        call.legs += 1;
        let channel = format!("{conversation}-{}", call.legs);
        let caller_number = call.caller_number.clone();
        call.agent = Some(AgentLeg { agent, channel: channel.clone(), up: false });
        self.channels.insert(channel.clone(), (conversation, Leg::Agent));
        let endpoint = format!("PJSIP/{}", extension.trim());
        let args = format!("{AGENT_LEG},{conversation}");
        let timeout = self.ring_timeout(conversation).await.to_string();
        let app = self.ari.settings().app.clone();
        let mut query: Vec<(&str, &str)> =
            vec![("endpoint", &endpoint), ("app", &app), ("appArgs", &args), ("channelId", &channel)];
        if !caller_number.is_empty() {
            query.push(("callerId", &caller_number));
        }
        query.push(("timeout", &timeout));
        let sent = self.ari.post("/channels", &query).await;
        if let Err(e) = sent {
            warn!(conversation.id = %conversation, agent.id = %agent, error = %e, "cannot ring the agent");
            self.channels.remove(&channel);
            if let Some(call) = self.calls.get_mut(&conversation) {
                call.agent = None;
            }
            self.give_back_to_queue(conversation, agent).await;
        } else {
            info!(conversation.id = %conversation, agent.id = %agent, endpoint, "ringing the agent");
        }
    }

    /// The service's offer timeout, or [`RING_TIMEOUT_S`].
    async fn ring_timeout(&self, conversation: ConversationId) -> u64 {
        let Some(facts) = self.state.engine.conversation(conversation).await else { return RING_TIMEOUT_S };
        match facts.offer {
            Some((_, until)) => (until - chrono::Utc::now()).num_seconds().clamp(1, 600) as u64,
            None => RING_TIMEOUT_S,
        }
    }

    /// Hangs up the call's agent leg, if any, without it counting as a hang-up of the call.
    async fn drop_agent_leg(&mut self, conversation: ConversationId) {
        let Some(leg) = self.calls.get_mut(&conversation).and_then(|c| c.agent.take()) else { return };
        self.channels.remove(&leg.channel);
        self.hang_up(&leg.channel).await;
    }

    async fn hang_up(&self, channel: &str) {
        if channel.is_empty() {
            return;
        }
        match self.ari.delete(&format!("/channels/{}", segment(channel)), &[("reason", "normal")]).await {
            Ok(_) | Err(AriError::Refused { status: 404, .. }) => {}
            Err(e) => warn!(channel.id = channel, error = %e, "ARI hang-up failed"),
        }
    }

    async fn destroy_bridge(&self, conversation: ConversationId) {
        match self.ari.delete(&format!("/bridges/{conversation}"), &[]).await {
            Ok(_) | Err(AriError::Refused { status: 404, .. }) => {}
            Err(e) => warn!(conversation.id = %conversation, error = %e, "ARI bridge removal failed"),
        }
    }

    fn log(&self, result: Result<serde_json::Value, AriError>, what: &str) {
        if let Err(e) = result {
            warn!(service.id = %self.service, error = %e, "ARI {what} failed");
        }
    }

    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut schema::PgConnection) -> Result<T, schema::StoreError> + Send + 'static,
    ) -> Result<T, ()> {
        let pool = self.state.pool.clone();
        actix_web::web::block(move || f(&mut *pool.get()?))
            .await
            .map_err(|_| ())?
            .map_err(|e| warn!(service.id = %self.service, error = %e, "voice: database call failed"))
    }
}

/// K2: the customer a phone number identifies — the one linked to it on the voice channel, else
/// the only customer having that phone.
fn identify(c: &mut schema::PgConnection, phone: &str) -> Result<Option<CustomerId>, schema::StoreError> {
    if let Some(linked) = store::customer_by_identity(c, Channel::Voice, phone)? {
        return Ok(Some(linked.id));
    }
    let found = store::customers_by_phone(c, phone)?;
    Ok(if found.len() == 1 { Some(found[0].id) } else { None })
}
