// @generated automatically by Diesel CLI.

diesel::table! {
    agent_capacities (agent_id, channel) {
        agent_id -> Uuid,
        channel -> Text,
        capacity -> Int4,
    }
}

diesel::table! {
    agents (id) {
        id -> Uuid,
        login -> Text,
        name -> Text,
        role -> Text,
        password_hash -> Text,
        active -> Bool,
        extension -> Nullable<Text>,
        auto_distribution -> Nullable<Bool>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    assignments (id) {
        id -> Int8,
        conversation_id -> Uuid,
        agent_id -> Uuid,
        channel -> Text,
        via -> Text,
        assigned_at -> Timestamptz,
        ended_at -> Nullable<Timestamptz>,
        end_reason -> Nullable<Text>,
    }
}

diesel::table! {
    attachment_contents (attachment_id) {
        attachment_id -> Uuid,
        data -> Bytea,
    }
}

diesel::table! {
    attachments (id) {
        id -> Uuid,
        message_id -> Nullable<Uuid>,
        conversation_id -> Nullable<Uuid>,
        uploaded_by -> Nullable<Uuid>,
        name -> Text,
        content_type -> Text,
        size_bytes -> Int8,
        sha256 -> Bytea,
        provider_media_id -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    canned_messages (id) {
        id -> Uuid,
        title -> Text,
        text -> Text,
        service_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    cases (id) {
        id -> Uuid,
        customer_id -> Uuid,
        service_type_id -> Nullable<Uuid>,
        title -> Text,
        description -> Nullable<Text>,
        status -> Text,
        due_at -> Nullable<Timestamptz>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    channel_identities (id) {
        id -> Uuid,
        channel -> Text,
        address -> Text,
        customer_id -> Uuid,
        display_name -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    classifications (id) {
        id -> Uuid,
        name -> Text,
        service_id -> Nullable<Uuid>,
        active -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    conversation_events (id) {
        id -> Int8,
        conversation_id -> Uuid,
        seq -> Int8,
        at -> Timestamptz,
        kind -> Text,
        from_state -> Nullable<Text>,
        to_state -> Nullable<Text>,
        actor -> Text,
        actor_agent_id -> Nullable<Uuid>,
        agent_id -> Nullable<Uuid>,
        reason -> Nullable<Text>,
        data -> Jsonb,
    }
}

diesel::table! {
    conversations (id) {
        id -> Uuid,
        service_id -> Uuid,
        channel -> Text,
        direction -> Text,
        customer_id -> Nullable<Uuid>,
        customer_address -> Text,
        customer_name -> Nullable<Text>,
        subject -> Nullable<Text>,
        state -> Text,
        sub_state -> Nullable<Text>,
        hold_reason -> Nullable<Text>,
        priority -> Int4,
        arrived_at -> Timestamptz,
        enqueued_at -> Nullable<Timestamptz>,
        first_agent_id -> Nullable<Uuid>,
        current_agent_id -> Nullable<Uuid>,
        concluded_by_id -> Nullable<Uuid>,
        classification_id -> Nullable<Uuid>,
        service_type_id -> Nullable<Uuid>,
        case_id -> Nullable<Uuid>,
        due_at -> Nullable<Timestamptz>,
        out_of_hours -> Bool,
        last_customer_message_at -> Nullable<Timestamptz>,
        last_agent_message_at -> Nullable<Timestamptz>,
        assigned_at -> Nullable<Timestamptz>,
        ended_at -> Nullable<Timestamptz>,
        last_seq -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    customers (id) {
        id -> Uuid,
        name -> Text,
        trade_name -> Nullable<Text>,
        cpf -> Nullable<Text>,
        cnpj -> Nullable<Text>,
        emails -> Array<Text>,
        phones -> Array<Text>,
        notes -> Nullable<Text>,
        portfolio_agent_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    email_templates (id) {
        id -> Uuid,
        name -> Text,
        service_id -> Nullable<Uuid>,
        subject -> Text,
        body_text -> Text,
        body_html -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    form_answers (id) {
        id -> Uuid,
        conversation_id -> Uuid,
        field_id -> Uuid,
        value -> Jsonb,
        answered_by -> Nullable<Uuid>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    form_fields (id) {
        id -> Uuid,
        service_type_id -> Uuid,
        key -> Text,
        label -> Text,
        field_type -> Text,
        required -> Bool,
        options -> Jsonb,
        position -> Int4,
    }
}

diesel::table! {
    mailbox_cursors (service_id) {
        service_id -> Uuid,
        uid_validity -> Int8,
        last_uid -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    media_fetches (id) {
        id -> Int8,
        message_id -> Uuid,
        service_id -> Uuid,
        source -> Text,
        content_type -> Nullable<Text>,
        name -> Nullable<Text>,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        error -> Nullable<Text>,
        attachment_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    memberships (agent_id, service_id) {
        agent_id -> Uuid,
        service_id -> Uuid,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    messages (id) {
        id -> Uuid,
        conversation_id -> Uuid,
        service_id -> Uuid,
        direction -> Text,
        kind -> Text,
        body -> Nullable<Text>,
        payload -> Jsonb,
        sender_agent_id -> Nullable<Uuid>,
        email_from -> Nullable<Text>,
        email_to -> Array<Text>,
        email_cc -> Array<Text>,
        email_subject -> Nullable<Text>,
        email_message_id -> Nullable<Text>,
        email_in_reply_to -> Nullable<Text>,
        email_references -> Array<Text>,
        email_html -> Nullable<Text>,
        provider_message_id -> Nullable<Text>,
        status -> Text,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        attempts -> Int4,
        next_attempt_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        delivered_at -> Nullable<Timestamptz>,
        read_at -> Nullable<Timestamptz>,
        failed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    offers (id) {
        id -> Int8,
        conversation_id -> Uuid,
        agent_id -> Uuid,
        offered_at -> Timestamptz,
        expires_at -> Timestamptz,
        resolved_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Text>,
    }
}

diesel::table! {
    pause_reasons (id) {
        id -> Uuid,
        name -> Text,
        active -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    presence_history (id) {
        id -> Int8,
        agent_id -> Uuid,
        status -> Text,
        pause_reason_id -> Nullable<Uuid>,
        started_at -> Timestamptz,
        ended_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    raw_emails (message_id) {
        message_id -> Uuid,
        data -> Bytea,
    }
}

diesel::table! {
    routing_decisions (id) {
        id -> Int8,
        conversation_id -> Uuid,
        decided_at -> Timestamptz,
        mode -> Text,
        agent_id -> Nullable<Uuid>,
        reason -> Text,
        candidates -> Jsonb,
    }
}

diesel::table! {
    service_types (id) {
        id -> Uuid,
        name -> Text,
        service_id -> Nullable<Uuid>,
        active -> Bool,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    services (id) {
        id -> Uuid,
        name -> Text,
        channel -> Text,
        active -> Bool,
        auto_distribution -> Bool,
        offer_timeout_s -> Nullable<Int4>,
        inactivity_minutes -> Int4,
        abandon_hours -> Int4,
        agent_alert_minutes -> Nullable<Int4>,
        customer_reminder_minutes -> Nullable<Int4>,
        customer_reminder_text -> Nullable<Text>,
        disconnect_grace_s -> Int4,
        allow_cancel -> Bool,
        email_approval -> Bool,
        business_hours -> Nullable<Jsonb>,
        time_zone -> Text,
        out_of_hours_hold -> Bool,
        out_of_hours_message -> Nullable<Text>,
        automation_url -> Nullable<Text>,
        automation_timeout_ms -> Int4,
        portfolio_wait_s -> Nullable<Int4>,
        provider -> Jsonb,
        provider_key -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        agent_id -> Uuid,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        user_agent -> Nullable<Text>,
        remote_addr -> Nullable<Text>,
    }
}

diesel::table! {
    webchat_uploads (attachment_id) {
        attachment_id -> Uuid,
        visitor_id -> Uuid,
    }
}

diesel::table! {
    webchat_visitors (id) {
        id -> Uuid,
        service_id -> Uuid,
        name -> Text,
        email -> Text,
        customer_id -> Nullable<Uuid>,
        token_hash -> Bytea,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
    }
}

diesel::table! {
    whatsapp_contacts (id) {
        id -> Uuid,
        phone -> Text,
        wa_id -> Nullable<Text>,
        name -> Nullable<Text>,
        customer_id -> Nullable<Uuid>,
        opted_in -> Bool,
        opted_in_at -> Nullable<Timestamptz>,
        opt_in_source -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    whatsapp_templates (id) {
        id -> Uuid,
        service_id -> Uuid,
        name -> Text,
        language -> Text,
        category -> Text,
        body -> Text,
        components -> Jsonb,
        status -> Text,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(agent_capacities -> agents (agent_id));
diesel::joinable!(assignments -> agents (agent_id));
diesel::joinable!(assignments -> conversations (conversation_id));
diesel::joinable!(attachment_contents -> attachments (attachment_id));
diesel::joinable!(attachments -> agents (uploaded_by));
diesel::joinable!(attachments -> conversations (conversation_id));
diesel::joinable!(attachments -> messages (message_id));
diesel::joinable!(canned_messages -> services (service_id));
diesel::joinable!(cases -> agents (created_by));
diesel::joinable!(cases -> customers (customer_id));
diesel::joinable!(cases -> service_types (service_type_id));
diesel::joinable!(channel_identities -> customers (customer_id));
diesel::joinable!(classifications -> services (service_id));
diesel::joinable!(conversation_events -> conversations (conversation_id));
diesel::joinable!(conversations -> cases (case_id));
diesel::joinable!(conversations -> classifications (classification_id));
diesel::joinable!(conversations -> customers (customer_id));
diesel::joinable!(conversations -> service_types (service_type_id));
diesel::joinable!(conversations -> services (service_id));
diesel::joinable!(customers -> agents (portfolio_agent_id));
diesel::joinable!(email_templates -> services (service_id));
diesel::joinable!(form_answers -> agents (answered_by));
diesel::joinable!(form_answers -> conversations (conversation_id));
diesel::joinable!(form_answers -> form_fields (field_id));
diesel::joinable!(form_fields -> service_types (service_type_id));
diesel::joinable!(mailbox_cursors -> services (service_id));
diesel::joinable!(media_fetches -> attachments (attachment_id));
diesel::joinable!(media_fetches -> messages (message_id));
diesel::joinable!(media_fetches -> services (service_id));
diesel::joinable!(memberships -> agents (agent_id));
diesel::joinable!(memberships -> services (service_id));
diesel::joinable!(messages -> agents (sender_agent_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(messages -> services (service_id));
diesel::joinable!(offers -> agents (agent_id));
diesel::joinable!(offers -> conversations (conversation_id));
diesel::joinable!(presence_history -> agents (agent_id));
diesel::joinable!(presence_history -> pause_reasons (pause_reason_id));
diesel::joinable!(raw_emails -> messages (message_id));
diesel::joinable!(routing_decisions -> agents (agent_id));
diesel::joinable!(routing_decisions -> conversations (conversation_id));
diesel::joinable!(service_types -> services (service_id));
diesel::joinable!(sessions -> agents (agent_id));
diesel::joinable!(webchat_uploads -> attachments (attachment_id));
diesel::joinable!(webchat_uploads -> webchat_visitors (visitor_id));
diesel::joinable!(webchat_visitors -> customers (customer_id));
diesel::joinable!(webchat_visitors -> services (service_id));
diesel::joinable!(whatsapp_contacts -> customers (customer_id));
diesel::joinable!(whatsapp_templates -> services (service_id));

diesel::allow_tables_to_appear_in_same_query!(
    agent_capacities,
    agents,
    assignments,
    attachment_contents,
    attachments,
    canned_messages,
    cases,
    channel_identities,
    classifications,
    conversation_events,
    conversations,
    customers,
    email_templates,
    form_answers,
    form_fields,
    mailbox_cursors,
    media_fetches,
    memberships,
    messages,
    offers,
    pause_reasons,
    presence_history,
    raw_emails,
    routing_decisions,
    service_types,
    services,
    sessions,
    webchat_uploads,
    webchat_visitors,
    whatsapp_contacts,
    whatsapp_templates,
);
