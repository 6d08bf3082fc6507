-- Conversations and everything that happens to them: state events, routing decisions,
-- assignments, offers, messages and attachments (R1-R16, D6, D8, C3, C9, K4).

CREATE TABLE classifications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    -- NULL: usable in every service.
    service_id  uuid REFERENCES services (id) ON DELETE CASCADE,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX classifications_name_key
    ON classifications (name, coalesce(service_id, '00000000-0000-0000-0000-000000000000'::uuid));

-- "tipo de atendimento": the form an agent fills for a case (K5).
CREATE TABLE service_types (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE,
    service_id  uuid REFERENCES services (id) ON DELETE CASCADE,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- "ocorrência": a customer matter spanning many conversations (K4).
CREATE TABLE cases (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    customer_id     uuid NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    service_type_id uuid REFERENCES service_types (id),
    title           text NOT NULL,
    description     text,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    due_at          timestamptz,
    created_by      uuid REFERENCES agents (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    closed_at       timestamptz,
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX cases_customer_open_idx ON cases (customer_id) WHERE status = 'open';

CREATE TABLE conversations (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    service_id              uuid NOT NULL REFERENCES services (id),
    -- Denormalised from the service (R1: a service belongs to one channel) for queue reads.
    channel                 text NOT NULL CHECK (channel IN
                            ('email', 'webchat', 'whatsapp', 'messenger', 'instagram', 'telegram', 'sms', 'voice')),
    direction               text NOT NULL DEFAULT 'inbound' CHECK (direction IN ('inbound', 'outbound')),
    customer_id             uuid REFERENCES customers (id) ON DELETE SET NULL,
    -- The customer's address on the channel: wa_id, PSID, Telegram chat id, phone, email.
    customer_address        text NOT NULL,
    customer_name           text,
    subject                 text,
    state                   text NOT NULL CHECK (state IN
                            ('pre_opening', 'queued', 'offered', 'in_service', 'inactive_in_queue',
                             'concluded', 'cancelled', 'abandoned', 'rejected')),
    -- Only in_service has a sub-state (R2, R10).
    sub_state               text CHECK (sub_state IN ('active', 'inactive_at_agent')),
    -- Why a pre_opening conversation is not routable yet.
    hold_reason             text CHECK (hold_reason IN ('approval', 'out_of_hours', 'automation')),
    priority                integer NOT NULL DEFAULT 0,
    -- Original arrival: the queue order key, kept when a conversation is put back (R1).
    arrived_at              timestamptz NOT NULL DEFAULT now(),
    -- When it last entered a queue (wait time shown to agents).
    enqueued_at             timestamptz,
    first_agent_id          uuid REFERENCES agents (id),
    current_agent_id        uuid REFERENCES agents (id),
    concluded_by_id         uuid REFERENCES agents (id),
    classification_id       uuid REFERENCES classifications (id),
    service_type_id         uuid REFERENCES service_types (id),
    case_id                 uuid REFERENCES cases (id) ON DELETE SET NULL,
    due_at                  timestamptz,
    out_of_hours            boolean NOT NULL DEFAULT false,
    last_customer_message_at timestamptz,
    last_agent_message_at   timestamptz,
    -- When it was handed to its current agent (handling time, R10 timers).
    assigned_at             timestamptz,
    ended_at                timestamptz,
    -- Last conversation-event sequence number (the desk resumes from it, D11).
    last_seq                bigint NOT NULL DEFAULT 0,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'in_service') = (sub_state IS NOT NULL)),
    -- Only a conversation in service has an owner; an offered one is held by its pending offer.
    CHECK ((state = 'in_service') = (current_agent_id IS NOT NULL)),
    CHECK ((state IN ('concluded', 'cancelled', 'abandoned', 'rejected')) = (ended_at IS NOT NULL))
);
-- One open conversation per service and customer address.
CREATE UNIQUE INDEX conversations_one_open_per_address
    ON conversations (service_id, customer_address)
    WHERE state IN ('pre_opening', 'queued', 'offered', 'in_service', 'inactive_in_queue');
-- Queue order (R1): priority first, then original arrival.
CREATE INDEX conversations_queue_idx
    ON conversations (service_id, priority DESC, arrived_at)
    WHERE state IN ('queued', 'inactive_in_queue');
CREATE INDEX conversations_open_idx
    ON conversations (state)
    WHERE state IN ('pre_opening', 'queued', 'offered', 'in_service', 'inactive_in_queue');
CREATE INDEX conversations_agent_idx ON conversations (current_agent_id) WHERE current_agent_id IS NOT NULL;
CREATE INDEX conversations_customer_idx ON conversations (customer_id);
CREATE INDEX conversations_first_agent_day_idx ON conversations (first_agent_id, arrived_at);
CREATE INDEX conversations_concluded_by_idx ON conversations (concluded_by_id, ended_at);

-- Every transition, with time, actor and reason (R2). seq is per conversation.
CREATE TABLE conversation_events (
    id              bigserial PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint NOT NULL,
    at              timestamptz NOT NULL DEFAULT now(),
    kind            text NOT NULL,
    from_state      text,
    to_state        text,
    actor           text NOT NULL CHECK (actor IN ('system', 'agent', 'supervisor', 'customer', 'provider')),
    actor_agent_id  uuid REFERENCES agents (id),
    -- The agent the event is about (assigned to, transferred to, ...).
    agent_id        uuid REFERENCES agents (id),
    reason          text,
    data            jsonb NOT NULL DEFAULT '{}'::jsonb,
    UNIQUE (conversation_id, seq)
);
CREATE INDEX conversation_events_at_idx ON conversation_events (at);

-- Ownership intervals. At most one open assignment per conversation (R3), enforced here too.
CREATE TABLE assignments (
    id              bigserial PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    agent_id        uuid NOT NULL REFERENCES agents (id),
    channel         text NOT NULL,
    via             text NOT NULL CHECK (via IN ('auto', 'pull', 'offer', 'transfer', 'voice', 'outbound', 'restore')),
    assigned_at     timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    end_reason      text,
    CHECK (ended_at IS NULL OR ended_at >= assigned_at)
);
CREATE UNIQUE INDEX assignments_one_open_per_conversation
    ON assignments (conversation_id) WHERE ended_at IS NULL;
CREATE INDEX assignments_agent_open_idx ON assignments (agent_id) WHERE ended_at IS NULL;

-- Offers with a timeout (R7). One pending offer per conversation; a lapsed offer is never
-- repeated to the same agent for the same conversation.
CREATE TABLE offers (
    id              bigserial PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    agent_id        uuid NOT NULL REFERENCES agents (id),
    offered_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    resolved_at     timestamptz,
    outcome         text CHECK (outcome IN ('accepted', 'rejected', 'lapsed', 'withdrawn')),
    CHECK ((resolved_at IS NULL) = (outcome IS NULL))
);
CREATE UNIQUE INDEX offers_one_pending_per_conversation
    ON offers (conversation_id) WHERE resolved_at IS NULL;

-- Why this agent got this conversation (R16).
CREATE TABLE routing_decisions (
    id              bigserial PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    decided_at      timestamptz NOT NULL DEFAULT now(),
    mode            text NOT NULL CHECK (mode IN ('auto', 'offer', 'pull', 'pull_chosen', 'transfer', 'voice', 'portfolio')),
    agent_id        uuid REFERENCES agents (id),
    reason          text NOT NULL,
    -- [{agent_id, active, capacity, idle_since, eligible, why_not}]
    candidates      jsonb NOT NULL DEFAULT '[]'::jsonb
);
CREATE INDEX routing_decisions_conversation_idx ON routing_decisions (conversation_id);

CREATE TABLE messages (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id     uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    -- Denormalised for the idempotency key below (C3).
    service_id          uuid NOT NULL REFERENCES services (id),
    direction           text NOT NULL CHECK (direction IN ('in', 'out', 'internal')),
    kind                text NOT NULL CHECK (kind IN
                        ('text', 'image', 'audio', 'video', 'document', 'sticker', 'location', 'contacts',
                         'interactive', 'template', 'email', 'call', 'system')),
    body                text,
    -- Kind-specific content: location {latitude, longitude, name, address}, contacts [...], ...
    payload             jsonb NOT NULL DEFAULT '{}'::jsonb,
    sender_agent_id     uuid REFERENCES agents (id),
    -- Email headers (C5, D5).
    email_from          text,
    email_to            text[] NOT NULL DEFAULT '{}',
    email_cc            text[] NOT NULL DEFAULT '{}',
    email_subject       text,
    email_message_id    text,
    email_in_reply_to   text,
    email_references    text[] NOT NULL DEFAULT '{}',
    email_html          text,
    provider_message_id text,
    -- Delivery (C2, D8): received for inbound; pending -> sent -> delivered -> read, or failed.
    status              text NOT NULL CHECK (status IN ('received', 'pending', 'sent', 'delivered', 'read', 'failed')),
    error_code          text,
    error_message       text,
    -- Client-supplied Idempotency-Key of an agent send.
    idempotency_key     text,
    attempts            integer NOT NULL DEFAULT 0,
    next_attempt_at     timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    sent_at             timestamptz,
    delivered_at        timestamptz,
    read_at             timestamptz,
    failed_at           timestamptz,
    CHECK ((status = 'failed') = (failed_at IS NOT NULL))
);
-- One provider message id per service (C3).
CREATE UNIQUE INDEX messages_provider_id_key
    ON messages (service_id, provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE UNIQUE INDEX messages_idempotency_key
    ON messages (conversation_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_conversation_idx ON messages (conversation_id, created_at);
CREATE INDEX messages_outbox_idx ON messages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX messages_email_message_id_idx ON messages (email_message_id) WHERE email_message_id IS NOT NULL;

-- Files sent and received (C9). Uploaded first (message_id NULL), linked when sent.
CREATE TABLE attachments (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    message_id          uuid REFERENCES messages (id) ON DELETE CASCADE,
    conversation_id     uuid REFERENCES conversations (id) ON DELETE CASCADE,
    uploaded_by         uuid REFERENCES agents (id),
    name                text NOT NULL,
    content_type        text NOT NULL,
    size_bytes          bigint NOT NULL CHECK (size_bytes >= 0),
    sha256              bytea NOT NULL,
    provider_media_id   text,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX attachments_message_idx ON attachments (message_id);
-- Content kept apart so listing attachments never reads the bytes.
CREATE TABLE attachment_contents (
    attachment_id   uuid PRIMARY KEY REFERENCES attachments (id) ON DELETE CASCADE,
    data            bytea NOT NULL
);
