//! Messages an agent sends (D6) and attachments (C9). A message is stored as `pending` in the
//! same transaction that makes it visible, answered 201, and pushed to the conversation's desks;
//! the channel adapter delivers it and moves its status on (C2, D8). An `Idempotency-Key` makes a
//! retried send store one message.

use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::Utc;
use schema::models::{Attachment, AttachmentContent, Message};
use schema::{AttachmentId, Channel, Connection, ConversationId, MessageDirection, MessageKind, MessageStatus, store};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::core::access::{conversation_not_found, may_write, visible_conversation};
use crate::core::db::{db, idempotency_key, parse_id};
use crate::core::dto::{AttachmentDto, message_value};
use crate::core::error::{ApiError, Code, ErrorBody};
use crate::core::files::{MAX_ATTACHMENTS, MAX_TEXT, MAX_UPLOAD, channel_limit, read_file_field};
use crate::core::session::CurrentAgent;
use crate::core::state::AppState;

/// What the agent sends.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    pub text: Option<String>,
    #[serde(default)]
    pub attachment_ids: Vec<String>,
    /// A WhatsApp template, sent alone (C7): the only message allowed outside the 24-hour window.
    pub template: Option<crate::channels::templates::TemplateRef>,
}

fn kind_of(content_type: &str) -> MessageKind {
    match content_type.split('/').next() {
        Some("image") => MessageKind::Image,
        Some("audio") => MessageKind::Audio,
        Some("video") => MessageKind::Video,
        _ => MessageKind::Document,
    }
}

/// Sends a message in my conversation: 201 with it as `pending`.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "agent", request_body = SendBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "the same key stores one message")),
    responses((status = 201, description = "the message, status pending"), (status = 400, body = ErrorBody),
              (status = 403, description = "not_owner", body = ErrorBody), (status = 422, body = ErrorBody)))]
#[post("/conversations/{id}/messages")]
pub async fn send_message(
    req: HttpRequest,
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
    body: web::Json<SendBody>,
) -> Result<HttpResponse, ApiError> {
    let id: ConversationId = parse_id(&id, "conversation id")?;
    let key = idempotency_key(&req)?;
    let b = body.into_inner();
    let text = b.text.map(|t| t.trim_end().to_owned()).filter(|t| !t.trim().is_empty());
    if text.as_ref().is_some_and(|t| t.chars().count() > MAX_TEXT) {
        return Err(ApiError::bad_request(Code::TextTooLong, format!("a message has at most {MAX_TEXT} characters")));
    }
    if b.attachment_ids.len() > MAX_ATTACHMENTS {
        return Err(ApiError::bad_request(Code::TooManyAttachments, format!("at most {MAX_ATTACHMENTS} attachments")));
    }
    let attachment_ids: Vec<AttachmentId> =
        b.attachment_ids.iter().map(|a| parse_id(a, "attachment_ids[]")).collect::<Result<_, _>>()?;
    let template = b.template;
    if let Some(t) = &template {
        if text.is_some() || !attachment_ids.is_empty() {
            return Err(ApiError::bad_request(
                Code::InvalidTemplate,
                "a template is sent alone, without text or files",
            ));
        }
        crate::channels::templates::check_ref(t)?;
    }
    if text.is_none() && attachment_ids.is_empty() && template.is_none() {
        return Err(ApiError::bad_request(Code::EmptyMessage, "send text, attachments or both"));
    }
    // Text alone, the common send: the conversation is read and the reply stored in one trip.
    let (conversation, sent) = if attachment_ids.is_empty() && template.is_none() {
        send_text(&state, &me, id, text.clone(), key.clone()).await?
    } else {
        (visible_conversation(&state, &me, id).await?, None)
    };
    if let Some(response) = sent {
        return Ok(response);
    }
    may_write(&me, &conversation)?;
    if template.is_some() && conversation.channel != Channel::Whatsapp {
        return Err(ApiError::unprocessable(Code::TemplatesWhatsappOnly, "templates are sent on WhatsApp only"));
    }
    if conversation.channel == Channel::Sms && !attachment_ids.is_empty() {
        return Err(ApiError::unprocessable(
            Code::MediaNotSupported,
            "SMS carries text only: MMS needs the file at a public URL, which this installation does not publish",
        ));
    }
    let address = conversation.customer_address.clone();
    let agent = me.agent.id;
    let channel = conversation.channel;
    let service = conversation.service_id;
    let stored = db(&state, move |c| {
        c.transaction(|c| {
            if let Some(k) = &key
                && let Some(existing) = store::message_by_idempotency_key(c, id, k)?
            {
                let files = store::attachments_of(c, existing.id)?;
                return Ok(Ok((existing, files)));
            }
            let mut files = Vec::new();
            for a in &attachment_ids {
                let f = Attachment::find(c, *a)?;
                if f.uploaded_by != Some(agent) || f.message_id.is_some() {
                    return Ok(Err(ApiError::unprocessable(
                        Code::InvalidAttachment,
                        "attach files you uploaded and have not sent yet",
                    )));
                }
                if usize::try_from(f.size_bytes).unwrap_or(usize::MAX) > channel_limit(channel, &f.content_type) {
                    return Ok(Err(ApiError::unprocessable(
                        Code::AttachmentNotAllowed,
                        format!("{} is too large or not accepted on {channel}", f.name),
                    )));
                }
                files.push(f);
            }
            let now = Utc::now();
            let kind = match (&text, files.first()) {
                _ if template.is_some() => MessageKind::Template,
                (None, Some(f)) if files.len() == 1 => kind_of(&f.content_type),
                (None, Some(_)) => MessageKind::Document,
                _ => MessageKind::Text,
            };
            // C7: the provider's reply window, checked here and again just before sending.
            let last = store::last_customer_message_at(c, service, &address)?;
            if let Err(refused) = reply_window(channel, last, kind, now) {
                return Ok(Err(refused));
            }
            let filled = match &template {
                Some(t) => match crate::channels::templates::fill(c, service, t)? {
                    Ok(filled) => Some(filled),
                    Err(refused) => return Ok(Err(refused)),
                },
                None => None,
            };
            let mut m = Message::new(id, service, MessageDirection::Out, kind, MessageStatus::Pending, now);
            m.body = text.clone();
            if let Some(f) = filled {
                m.body = Some(f.body);
                m.payload = f.payload;
            }
            m.sender_agent_id = Some(agent);
            m.idempotency_key = key.clone();
            m.next_attempt_at = Some(now);
            let m = m.insert(c)?;
            for f in &mut files {
                store::link_attachment(c, f.id, m.id, id)?;
                (f.message_id, f.conversation_id) = (Some(m.id), Some(id));
            }
            // The conversation's last agent message follows by the messages' trigger.
            Ok(Ok((m, files)))
        })
    })
    .await?;
    let (message, files) = stored?;
    let json = message_value(&message, &files);
    let message_id = message.id;
    state.engine.publish_message(id, service, engine::PublishedMessage::new(message, files)).await;
    state.outbox.ready(message_id);
    Ok(HttpResponse::Created().json(json))
}

/// The common send, text alone, in one trip to the database: the conversation is read and, when
/// it is visible to me, mine, in service, on a channel with messages, its service known and its
/// own last customer message keeps the window open, the reply is inserted — the `INSERT` alone
/// is atomic, and its unique index tells a retried `Idempotency-Key`. The message is stored
/// claimed and handed to the sender with what sending needs, so no statement comes between the
/// insert and the send. Without a response, the conversation as read: the general path decides
/// (every refusal, a replayed key, a window the conversation alone does not settle).
async fn send_text(
    state: &AppState,
    me: &CurrentAgent,
    id: ConversationId,
    text: Option<String>,
    key: Option<String>,
) -> Result<(schema::models::Conversation, Option<HttpResponse>), ApiError> {
    let (conversation, quick) = match store_text(state, me, id, text.clone(), key.clone()).await? {
        // The service's copy had expired: read it again (the directory keeps it), then once more.
        (c, QuickText::ServiceNotKept) if crate::core::directory::service(state, c.service_id).await?.is_some() => {
            store_text(state, me, id, text, key).await?
        }
        stored => stored,
    };
    let QuickText::Stored(stored) = quick else { return Ok((conversation, None)) };
    let (message, service) = *stored;
    let json = message_value(&message, &[]);
    state.engine.publish_message(conversation.id, service.id, message.clone()).await;
    let last_customer_at = conversation.last_customer_message_at;
    state.outbox.hand(crate::core::outbox::Handed {
        message,
        conversation: conversation.clone(),
        service,
        last_customer_at,
    });
    Ok((conversation, Some(HttpResponse::Created().json(json))))
}

/// What [`store_text`] did.
enum QuickText {
    Stored(Box<(Message, schema::models::Service)>),
    /// Everything allowed the quick path but the directory's copy of the service.
    ServiceNotKept,
    /// The general path decides.
    General,
}

/// [`send_text`]'s trip to the database.
async fn store_text(
    state: &AppState,
    me: &CurrentAgent,
    id: ConversationId,
    text: Option<String>,
    key: Option<String>,
) -> Result<(schema::models::Conversation, QuickText), ApiError> {
    let (agent, directory, me) = (me.agent.id, state.services.clone(), me.clone());
    db(state, move |c| {
        let conversation = schema::models::Conversation::find(c, id)?;
        let now = Utc::now();
        // The general path's rules, on the conversation alone: anything else is its to decide.
        let quick = may_write(&me, &conversation).is_ok()
            && reply_window(conversation.channel, conversation.last_customer_message_at, MessageKind::Text, now)
                .is_ok();
        if !quick {
            return Ok((conversation, QuickText::General));
        }
        let Some(service) = directory.by_id(conversation.service_id) else {
            return Ok((conversation, QuickText::ServiceNotKept));
        };
        let mut m = Message::new(
            conversation.id,
            service.id,
            MessageDirection::Out,
            MessageKind::Text,
            MessageStatus::Pending,
            now,
        );
        m.body = text;
        m.sender_agent_id = Some(agent);
        m.idempotency_key = key;
        // Stored claimed: the sender is handed it and sends it without a statement (see `Handed`).
        m.attempts = 1;
        m.next_attempt_at = Some(now + crate::channels::outbound::LEASE);
        match m.insert(c) {
            Ok(message) => Ok((conversation, QuickText::Stored(Box::new((message, service))))),
            Err(e) if e.constraint() == Some("messages_idempotency_key") => Ok((conversation, QuickText::General)),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(conversation_not_found)
}

/// The provider's reply window (C7) for a message of `kind` on `channel`, the customer's last
/// message at `last`: checked when the message is stored, by both paths, and again just before
/// it is sent.
fn reply_window(
    channel: Channel,
    last: Option<chrono::DateTime<Utc>>,
    kind: MessageKind,
    now: chrono::DateTime<Utc>,
) -> Result<(), ApiError> {
    let window = crate::channels::window::window(channel, last, now);
    match crate::channels::window::window_refusal(window, kind) {
        Some(why) => Err(ApiError::unprocessable(Code::OutsideWindow, why)),
        None => Ok(()),
    }
}

/// Uploads one file (multipart field `file`) to attach to a message: 201 with its id.
#[utoipa::path(post, path = "/api/v1/attachments", tag = "agent",
    responses((status = 201, body = AttachmentDto), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody)))]
#[post("/attachments")]
pub async fn upload(
    state: web::Data<AppState>,
    me: CurrentAgent,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let (name, content_type, data) = read_file_field(&mut form, |_| MAX_UPLOAD, "").await?;
    let row = Attachment {
        id: AttachmentId::new(),
        message_id: None,
        conversation_id: None,
        uploaded_by: Some(me.agent.id),
        name,
        content_type,
        size_bytes: data.len() as i64,
        sha256: Sha256::digest(&data).to_vec(),
        provider_media_id: None,
        created_at: Utc::now(),
    };
    let stored = db(&state, move |c| {
        c.transaction(|c| {
            let a = row.insert(c)?;
            AttachmentContent { attachment_id: a.id, data }.insert(c)?;
            Ok(a)
        })
    })
    .await?;
    Ok(HttpResponse::Created().json(AttachmentDto::from_row(&stored)))
}

/// Downloads a file: its uploader, or anyone who may see its conversation (C9).
#[utoipa::path(get, path = "/api/v1/attachments/{id}", tag = "agent",
    responses((status = 200, description = "the file"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[get("/attachments/{id}")]
pub async fn download(
    state: web::Data<AppState>,
    me: CurrentAgent,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id: AttachmentId = parse_id(&id, "attachment id")?;
    let a = db(&state, move |c| Attachment::find(c, id)).await.map_err(|_| ApiError::not_found("attachment"))?;
    let allowed = match a.conversation_id {
        Some(conversation) => visible_conversation(&state, &me, conversation).await.is_ok(),
        None => a.uploaded_by == Some(me.agent.id),
    };
    if !allowed {
        // As for a missing one: the answer does not tell which ids exist.
        return Err(ApiError::not_found("attachment"));
    }
    let content = db(&state, move |c| AttachmentContent::find(c, id)).await?;
    let disposition = format!("attachment; filename=\"{}\"", a.name.replace(['"', '\\'], "_"));
    Ok(HttpResponse::Ok()
        .content_type(a.content_type)
        .insert_header(("Content-Disposition", disposition))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(content.data))
}
