-- What agents reuse: canned messages, email and WhatsApp templates, forms (D6, C5, C7, K5).

CREATE TABLE canned_messages (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title       text NOT NULL,
    text        text NOT NULL,
    -- NULL: available in every service.
    service_id  uuid REFERENCES services (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE email_templates (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    service_id  uuid REFERENCES services (id) ON DELETE CASCADE,
    subject     text NOT NULL DEFAULT '',
    -- {{body}} marks where the agent's text goes.
    body_text   text NOT NULL,
    body_html   text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE whatsapp_templates (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    service_id  uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    name        text NOT NULL,
    language    text NOT NULL DEFAULT 'pt_BR',
    category    text NOT NULL DEFAULT 'utility' CHECK (category IN ('marketing', 'utility', 'authentication')),
    -- Body with {{1}}, {{2}} placeholders, as approved by Meta.
    body        text NOT NULL,
    components  jsonb NOT NULL DEFAULT '[]'::jsonb,
    status      text NOT NULL DEFAULT 'approved' CHECK (status IN ('approved', 'pending', 'rejected', 'paused')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (service_id, name, language)
);

CREATE TABLE form_fields (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    service_type_id uuid NOT NULL REFERENCES service_types (id) ON DELETE CASCADE,
    key             text NOT NULL,
    label           text NOT NULL,
    field_type      text NOT NULL CHECK (field_type IN ('text', 'textarea', 'number', 'date', 'select', 'checkbox')),
    required        boolean NOT NULL DEFAULT false,
    -- Choices of a select field.
    options         jsonb NOT NULL DEFAULT '[]'::jsonb,
    position        integer NOT NULL DEFAULT 0,
    UNIQUE (service_type_id, key)
);

-- The form of one conversation; editable after conclusion (K5).
CREATE TABLE form_answers (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    field_id        uuid NOT NULL REFERENCES form_fields (id) ON DELETE CASCADE,
    value           jsonb NOT NULL,
    answered_by     uuid REFERENCES agents (id),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (conversation_id, field_id)
);
