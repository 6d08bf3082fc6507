use diesel::prelude::*;

use crate::StoreResult;
use crate::ids::{ConversationId, ServiceId, ServiceTypeId};
use crate::models::{
    CannedMessage, Classification, EmailTemplate, FormAnswer, FormField, ServiceType, WhatsappTemplate,
};
use crate::schema::{
    canned_messages, classifications, email_templates, form_answers, form_fields, service_types, whatsapp_templates,
};

/// Classifications usable in a service (its own and the global ones), by name.
pub fn classifications_for(conn: &mut PgConnection, service: Option<ServiceId>) -> StoreResult<Vec<Classification>> {
    let mut q = classifications::table.filter(classifications::active.eq(true)).into_boxed();
    q = match service {
        Some(s) => q.filter(classifications::service_id.is_null().or(classifications::service_id.eq(s))),
        None => q,
    };
    Ok(q.order(classifications::name.asc()).select(Classification::as_select()).load(conn)?)
}

/// Canned messages usable in a service (its own and the global ones), by title.
pub fn canned_messages_for(conn: &mut PgConnection, service: Option<ServiceId>) -> StoreResult<Vec<CannedMessage>> {
    let mut q = canned_messages::table.into_boxed();
    if let Some(s) = service {
        q = q.filter(canned_messages::service_id.is_null().or(canned_messages::service_id.eq(s)));
    }
    Ok(q.order(canned_messages::title.asc()).select(CannedMessage::as_select()).load(conn)?)
}

/// Email templates usable in a service, by name.
pub fn email_templates_for(conn: &mut PgConnection, service: ServiceId) -> StoreResult<Vec<EmailTemplate>> {
    Ok(email_templates::table
        .filter(email_templates::service_id.is_null().or(email_templates::service_id.eq(service)))
        .order(email_templates::name.asc())
        .select(EmailTemplate::as_select())
        .load(conn)?)
}

/// Every email template, by name (the desk's picker filters them by the agent's services).
pub fn list_email_templates(conn: &mut PgConnection) -> StoreResult<Vec<EmailTemplate>> {
    Ok(email_templates::table.order(email_templates::name.asc()).select(EmailTemplate::as_select()).load(conn)?)
}

/// A WhatsApp service's templates, by name.
pub fn whatsapp_templates_for(conn: &mut PgConnection, service: ServiceId) -> StoreResult<Vec<WhatsappTemplate>> {
    Ok(whatsapp_templates::table
        .filter(whatsapp_templates::service_id.eq(service))
        .order(whatsapp_templates::name.asc())
        .select(WhatsappTemplate::as_select())
        .load(conn)?)
}

/// Every service type, by name.
pub fn list_service_types(conn: &mut PgConnection) -> StoreResult<Vec<ServiceType>> {
    Ok(service_types::table.order(service_types::name.asc()).select(ServiceType::as_select()).load(conn)?)
}

/// A service type's form, in display order.
pub fn form_of(conn: &mut PgConnection, service_type: ServiceTypeId) -> StoreResult<Vec<FormField>> {
    Ok(form_fields::table
        .filter(form_fields::service_type_id.eq(service_type))
        .order((form_fields::position.asc(), form_fields::key.asc()))
        .select(FormField::as_select())
        .load(conn)?)
}

/// Saves one answer of a conversation's form, replacing an earlier one (K5: editable).
pub fn save_form_answer(conn: &mut PgConnection, answer: &FormAnswer) -> StoreResult<FormAnswer> {
    Ok(diesel::insert_into(form_answers::table)
        .values(answer)
        .on_conflict((form_answers::conversation_id, form_answers::field_id))
        .do_update()
        .set((
            form_answers::value.eq(&answer.value),
            form_answers::answered_by.eq(answer.answered_by),
            form_answers::updated_at.eq(answer.updated_at),
        ))
        .returning(FormAnswer::as_returning())
        .get_result(conn)?)
}

/// A conversation's form answers.
pub fn form_answers_of(conn: &mut PgConnection, conversation: ConversationId) -> StoreResult<Vec<FormAnswer>> {
    Ok(form_answers::table
        .filter(form_answers::conversation_id.eq(conversation))
        .select(FormAnswer::as_select())
        .load(conn)?)
}
