-- Customers (people or companies) and how we recognise them on each channel (K1, K2, K6).

CREATE TABLE customers (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                text NOT NULL,
    trade_name          text,
    -- Digits (CPF) or the alphanumeric-capable CNPJ, normalised without punctuation.
    cpf                 text UNIQUE CHECK (cpf ~ '^[0-9]{11}$'),
    cnpj                text UNIQUE CHECK (cnpj ~ '^[0-9A-Z]{12}[0-9]{2}$'),
    emails              text[] NOT NULL DEFAULT '{}',
    phones              text[] NOT NULL DEFAULT '{}',
    notes               text,
    -- R18: the agent whose portfolio ("carteira") this customer belongs to.
    portfolio_agent_id  uuid REFERENCES agents (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_name_idx ON customers (lower(name));
CREATE INDEX customers_emails_idx ON customers USING gin (emails);
CREATE INDEX customers_phones_idx ON customers USING gin (phones);

-- channel + address (wa_id, PSID, Telegram user id, phone, email) -> customer.
CREATE TABLE channel_identities (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel         text NOT NULL CHECK (channel IN
                    ('email', 'webchat', 'whatsapp', 'messenger', 'instagram', 'telegram', 'sms', 'voice')),
    address         text NOT NULL,
    customer_id     uuid NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    display_name    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, address)
);
CREATE INDEX channel_identities_customer_idx ON channel_identities (customer_id);

-- WhatsApp contacts for outbound ("ativo", C7, K6). The wa_id is kept as WhatsApp sends it
-- (Brazilian numbers may lack the ninth digit); phone is E.164.
CREATE TABLE whatsapp_contacts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone           text NOT NULL UNIQUE CHECK (phone ~ '^\+[1-9][0-9]{6,14}$'),
    wa_id           text,
    name            text,
    customer_id     uuid REFERENCES customers (id) ON DELETE SET NULL,
    opted_in        boolean NOT NULL DEFAULT false,
    opted_in_at     timestamptz,
    opt_in_source   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT opted_in OR opted_in_at IS NOT NULL)
);
CREATE INDEX whatsapp_contacts_wa_id_idx ON whatsapp_contacts (wa_id);
