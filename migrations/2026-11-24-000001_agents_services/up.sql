-- People who work in the contact center, the services (entry points) they serve,
-- and their presence over time.

CREATE TABLE agents (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    login           text NOT NULL,
    name            text NOT NULL,
    role            text NOT NULL DEFAULT 'agent'
                    CHECK (role IN ('agent', 'supervisor', 'admin')),
    -- argon2id PHC string; never the password itself.
    password_hash   text NOT NULL,
    active          boolean NOT NULL DEFAULT true,
    -- CTI extension the phone system rings for this agent (R13).
    extension       text,
    -- Per-agent override of the service's automatic distribution (R6); NULL follows the service.
    auto_distribution boolean,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agents_login_not_blank CHECK (length(btrim(login)) > 0)
);
CREATE UNIQUE INDEX agents_login_key ON agents (lower(login));
CREATE UNIQUE INDEX agents_extension_key ON agents (extension) WHERE extension IS NOT NULL;

-- Server-side sessions: revocable; the token itself is never stored, only its SHA-256.
CREATE TABLE sessions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_id        uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    token_hash      bytea NOT NULL UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_seen_at    timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    user_agent      text,
    remote_addr     text
);
CREATE INDEX sessions_agent_idx ON sessions (agent_id) WHERE revoked_at IS NULL;

CREATE TABLE services (
    id                          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                        text NOT NULL UNIQUE,
    channel                     text NOT NULL CHECK (channel IN
                                ('email', 'webchat', 'whatsapp', 'messenger', 'instagram', 'telegram', 'sms', 'voice')),
    active                      boolean NOT NULL DEFAULT true,
    -- R6: automatic distribution (an agent's own setting may override it).
    auto_distribution           boolean NOT NULL DEFAULT true,
    -- R7: offer/accept; NULL means assign directly without an offer.
    offer_timeout_s             integer CHECK (offer_timeout_s > 0),
    -- R10: inactivity, abandonment and alerts.
    inactivity_minutes          integer NOT NULL DEFAULT 30 CHECK (inactivity_minutes > 0),
    abandon_hours               integer NOT NULL DEFAULT 48 CHECK (abandon_hours > 0),
    agent_alert_minutes         integer CHECK (agent_alert_minutes > 0),
    customer_reminder_minutes   integer CHECK (customer_reminder_minutes > 0),
    customer_reminder_text      text,
    -- R9: grace after an agent's last connection drops.
    disconnect_grace_s          integer NOT NULL DEFAULT 60 CHECK (disconnect_grace_s >= 0),
    -- R12: cancel may be disabled per service.
    allow_cancel                boolean NOT NULL DEFAULT true,
    -- C6: new emails wait for a supervisor.
    email_approval              boolean NOT NULL DEFAULT false,
    -- R14: {"mon": [["08:00","18:00"]], ...}; NULL = always open.
    business_hours              jsonb,
    time_zone                   text NOT NULL DEFAULT 'America/Sao_Paulo',
    out_of_hours_hold           boolean NOT NULL DEFAULT false,
    out_of_hours_message        text,
    -- R17: pre-routing automation hook.
    automation_url              text,
    automation_timeout_ms       integer NOT NULL DEFAULT 2000 CHECK (automation_timeout_ms > 0),
    -- R18: how long a portfolio customer waits for their agent before going to anyone.
    portfolio_wait_s            integer CHECK (portfolio_wait_s >= 0),
    -- Channel credentials (SPEC A: services.provider); secrets are masked by the API.
    provider                    jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The provider-side id a webhook is routed by: phone_number_id, page id, account id,
    -- the Twilio "To" number, the mailbox address.
    provider_key                text,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, provider_key)
);

CREATE TABLE memberships (
    agent_id    uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    service_id  uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, service_id)
);
CREATE INDEX memberships_service_idx ON memberships (service_id);

-- R4: capacity per agent and channel; a missing row means the channel default.
CREATE TABLE agent_capacities (
    agent_id    uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    channel     text NOT NULL CHECK (channel IN
                ('email', 'webchat', 'whatsapp', 'messenger', 'instagram', 'telegram', 'sms', 'voice')),
    capacity    integer NOT NULL CHECK (capacity >= 0),
    PRIMARY KEY (agent_id, channel)
);

CREATE TABLE pause_reasons (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL UNIQUE,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Every presence interval of every agent (R8, R9, S1). The open interval has ended_at NULL.
CREATE TABLE presence_history (
    id              bigserial PRIMARY KEY,
    agent_id        uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('offline', 'available', 'pause_pending', 'paused')),
    pause_reason_id uuid REFERENCES pause_reasons (id),
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    CHECK (ended_at IS NULL OR ended_at >= started_at),
    CHECK ((status IN ('pause_pending', 'paused')) = (pause_reason_id IS NOT NULL))
);
CREATE UNIQUE INDEX presence_history_one_open ON presence_history (agent_id) WHERE ended_at IS NULL;
CREATE INDEX presence_history_agent_time ON presence_history (agent_id, started_at);
