// The peer's tables, in schema `peer` (pg-boss keeps its own in `peer_boss`); created at start.
'use strict'

exports.SCHEMA_SQL = `
CREATE SCHEMA IF NOT EXISTS peer;

CREATE TABLE IF NOT EXISTS peer.services (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  channel text NOT NULL,
  provider jsonb NOT NULL DEFAULT '{}',
  offer_timeout_s integer,
  auto_distribution boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- An agent's load per channel (active conversations plus pending offers) lives on its row, so
-- reserving a slot is one UPDATE of a locked row.
CREATE TABLE IF NOT EXISTS peer.agents (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  login text NOT NULL UNIQUE,
  name text NOT NULL,
  role text NOT NULL DEFAULT 'agent',
  password_hash text NOT NULL,
  status text NOT NULL DEFAULT 'offline',
  pause_reason_id uuid,
  status_since timestamptz NOT NULL DEFAULT now(),
  connections integer NOT NULL DEFAULT 0,
  cap_whatsapp integer NOT NULL DEFAULT 1,
  cap_telegram integer NOT NULL DEFAULT 1,
  load_whatsapp integer NOT NULL DEFAULT 0,
  load_telegram integer NOT NULL DEFAULT 0,
  last_routed_at timestamptz
);

CREATE TABLE IF NOT EXISTS peer.agent_services (
  agent_id uuid NOT NULL REFERENCES peer.agents (id),
  service_id uuid NOT NULL REFERENCES peer.services (id),
  PRIMARY KEY (agent_id, service_id)
);
CREATE INDEX IF NOT EXISTS agent_services_service ON peer.agent_services (service_id);

CREATE TABLE IF NOT EXISTS peer.sessions (
  token_hash text PRIMARY KEY,
  agent_id uuid NOT NULL REFERENCES peer.agents (id),
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS peer.pause_reasons (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL
);

CREATE TABLE IF NOT EXISTS peer.conversations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  service_id uuid NOT NULL REFERENCES peer.services (id),
  channel text NOT NULL,
  external_id text NOT NULL,
  state text NOT NULL,
  agent_id uuid REFERENCES peer.agents (id),
  offer_agent_id uuid REFERENCES peer.agents (id),
  offer_expires_at timestamptz,
  arrived_at timestamptz NOT NULL,
  concluded_at timestamptz,
  last_seq integer NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS conversations_open ON peer.conversations (service_id, external_id)
  WHERE state <> 'concluded';
CREATE INDEX IF NOT EXISTS conversations_queued ON peer.conversations (service_id, arrived_at)
  WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS conversations_agent ON peer.conversations (agent_id) WHERE state = 'in_service';
CREATE INDEX IF NOT EXISTS conversations_offer ON peer.conversations (offer_agent_id) WHERE state = 'offered';

CREATE TABLE IF NOT EXISTS peer.events (
  conversation_id uuid NOT NULL REFERENCES peer.conversations (id),
  seq integer NOT NULL,
  kind text NOT NULL,
  agent_id uuid,
  at timestamptz NOT NULL,
  PRIMARY KEY (conversation_id, seq)
);

CREATE TABLE IF NOT EXISTS peer.messages (
  id bigserial PRIMARY KEY,
  conversation_id uuid NOT NULL REFERENCES peer.conversations (id),
  service_id uuid NOT NULL,
  direction text NOT NULL,
  body text NOT NULL,
  status text NOT NULL,
  provider_message_id text,
  idempotency_key text,
  agent_id uuid,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS messages_conversation ON peer.messages (conversation_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS messages_provider ON peer.messages (service_id, provider_message_id)
  WHERE direction = 'in';
CREATE UNIQUE INDEX IF NOT EXISTS messages_idempotency ON peer.messages (agent_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
`
