//! Email (C1, C5, C6, D5): raw RFC 5322 messages come in two ways — the [`imap`] poller reading
//! each email service's mailbox, and `POST /webhooks/email/{service_id}` for a mail server's pipe
//! — and both end in [`ingest`]: one [`parse`], one idempotent store (the Message-ID is the
//! provider id, C3) with the headers, the sanitised HTML and the attachments in the same
//! transaction (C4). Replies go out over SMTP from [`smtp`].
//!
//! Threading: a mail whose `In-Reply-To` / `References` names a message of an open conversation
//! of the service joins that conversation, whoever sends it; otherwise the sender's open
//! conversation is used, or a new one opens (held for approval where the service asks, C6).
//! The customer is recognised by the sender's address (K2).

pub mod html;
pub mod imap;
pub mod parse;
pub mod parsing;
pub mod smtp;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::Utc;
use engine::ingest::{InboundMessage, Ingest, IngestExtras, Ingested};
use schema::models::{Attachment, AttachmentContent, Message, Service};
use schema::{AttachmentId, Channel, ConversationId, MessageKind, PgConnection, ServiceId, StoreError, store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::core::db::{db, parse_id};
use crate::core::error::{ApiError, Code};
use crate::core::state::AppState;
use parse::{ParsedAttachment, ParsedEmail};

/// The header carrying the service's `webhook_secret`.
pub const SECRET_HEADER: &str = "X-Omniroute-Email-Secret";
/// Largest raw message taken (webhook and IMAP alike); a larger one is refused (413).
pub const MAX_MESSAGE: usize = 25 * 1024 * 1024;
/// Most attachments kept from one mail; the rest are listed as skipped.
pub const MAX_ATTACHMENTS: usize = 20;
/// How much of a raw message the replay check reads for its Message-ID before the full parse;
/// a Message-ID further in (behind megabytes of headers) is still deduplicated when storing.
pub const MAX_HEADER_SCAN: usize = 256 * 1024;

/// Receives one raw message piped by a mail server (`Content-Type: message/rfc822`).
#[post("/webhooks/email/{service_id}")]
pub async fn receive(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let service_id: ServiceId = parse_id(&path, "service id")?;
    let secret = req.headers().get(SECRET_HEADER).map(|v| v.as_bytes().to_vec());
    let service = match db(&state, move |c| Service::find(c, service_id)).await {
        Ok(s) if s.channel == Channel::Email => s,
        Ok(_) => return Err(ApiError::not_found("email service")),
        Err(e) if e.status == StatusCode::NOT_FOUND => return Err(ApiError::not_found("email service")),
        Err(e) => return Err(e),
    };
    let Some(secret) = secret else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            Code::MissingSecret,
            format!("{SECRET_HEADER} is required"),
        ));
    };
    let expected = service.provider.get("webhook_secret").and_then(Value::as_str).unwrap_or("");
    if expected.is_empty() || !crate::core::secrets::ct_eq(&secret, expected.as_bytes()) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, Code::InvalidSecret, "the webhook secret does not match"));
    }
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if content_type.as_deref() != Some("message/rfc822") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            "send the raw message with Content-Type: message/rfc822",
        ));
    }
    let raw = super::read_body(&state, &req, payload, MAX_MESSAGE).await?;
    // A replay (the mail server retrying, C3) is answered before its body is parsed.
    if already_stored(&state, service.id, &raw).await? {
        return Ok(HttpResponse::Ok().json(json!({"status": "ok", "stored": false})));
    }
    // Parsing up to 25 MiB is CPU work: on the parser threads, off the request and database threads.
    let bytes = raw.clone();
    let mail = match parsing::pool().run(bytes.len(), move || parse::parse(&bytes)).await {
        Ok(parsed) => parsed.map_err(|r| ApiError::bad_request(r.code, r.message))?,
        Err(parsing::Unparsed::Busy) => {
            return Ok(HttpResponse::ServiceUnavailable()
                .insert_header((actix_web::http::header::RETRY_AFTER, parsing::RETRY_AFTER_S.to_string()))
                .json(json!({"error": Code::Busy, "message": "every email parser is busy; retry later"})));
        }
        Err(parsing::Unparsed::Crashed) => {
            return Err(ApiError::bad_request(Code::InvalidMessage, "the message could not be parsed"));
        }
    };
    let outcome = ingest(&state, &service, raw, mail).await?;
    Ok(HttpResponse::Ok().json(match outcome {
        Outcome::Stored { .. } => json!({"status": "ok", "stored": true}),
        Outcome::Duplicate => json!({"status": "ok", "stored": false}),
        Outcome::Ignored(reason) => json!({"status": "ignored", "reason": reason}),
    }))
}

/// Whether `service` already stored the mail with the Message-ID at the head of `raw`.
pub async fn already_stored(state: &AppState, service: ServiceId, raw: &[u8]) -> Result<bool, ApiError> {
    let Some(id) = parse::message_id_of(&raw[..raw.len().min(MAX_HEADER_SCAN)]) else {
        return Ok(false);
    };
    db(state, move |c| store::provider_message_exists(c, service, &id)).await
}

/// What taking one mail did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Stored in this conversation.
    Stored { conversation: ConversationId },
    /// Taken before (same Message-ID): nothing stored.
    Duplicate,
    /// A valid mail this desk does not handle: an automatic reply, or our own mail come back.
    Ignored(&'static str),
}

/// Stores one parsed mail of `service`, with its `raw` bytes, and routes it; answers once it is
/// committed.
pub async fn ingest(
    state: &AppState,
    service: &Service,
    raw: web::Bytes,
    mail: ParsedEmail,
) -> Result<Outcome, ApiError> {
    let own = service.provider.get("address").and_then(Value::as_str).unwrap_or("").trim().to_lowercase();
    if mail.auto_submitted {
        return Ok(Outcome::Ignored("auto_submitted"));
    }
    if !own.is_empty() && mail.from == own {
        return Ok(Outcome::Ignored("own_address"));
    }
    // A mail without a Message-ID is still taken once: its bytes are its identity.
    let provider_id =
        mail.message_id.clone().unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(&raw))));
    let (service_id, thread, from) = (service.id, mail.thread_ids(), mail.from.clone());
    let (joined, customer) = db(state, move |c| {
        let joined = store::open_conversation_by_message_ids(c, service_id, &thread)?;
        Ok((joined, identify(c, &from)?))
    })
    .await?;
    let (files, skipped) = accepted_attachments(&mail.attachments);
    let mut payload = json!({});
    if let Some(d) = mail.date {
        payload["date"] = json!(d.to_rfc3339());
    }
    if let Some(n) = &mail.from_name {
        payload["from_name"] = json!(n);
    }
    if !skipped.is_empty() {
        payload["attachments_skipped"] = json!(skipped);
    }
    let inbound = InboundMessage {
        service: service.id,
        channel: Channel::Email,
        // A reply naming one of the conversation's messages joins it, even from another address.
        address: joined.as_ref().map(|c| c.customer_address.clone()).unwrap_or_else(|| mail.from.clone()),
        customer_name: mail.from_name.clone(),
        customer_id: customer,
        provider_message_id: Some(provider_id.clone()),
        kind: MessageKind::Email,
        body: mail.text.clone(),
        payload,
        sent_at: mail.date,
        subject: mail.subject.clone(),
    };
    let extras = EmailExtras { mail, message_id: provider_id, files, raw };
    let (outcome, _) = super::ingest(state, inbound, Ingest::published().with_extras(extras)).await?;
    match outcome {
        Ingested::Stored { conversation, .. } => Ok(Outcome::Stored { conversation }),
        Ingested::Duplicate => Ok(Outcome::Duplicate),
    }
}

/// K2: the customer linked to this address, or the only customer having it as an email.
fn identify(c: &mut PgConnection, address: &str) -> Result<Option<schema::CustomerId>, StoreError> {
    if let Some(linked) = store::customer_by_identity(c, Channel::Email, address)? {
        return Ok(Some(linked.id));
    }
    let mut having = store::customers_by_email(c, address)?;
    Ok(if having.len() == 1 { having.pop().map(|c| c.id) } else { None })
}

/// The attachments kept (C9: accepted types, the email size limit, at most [`MAX_ATTACHMENTS`])
/// and a note for each one left out, so the agent knows it existed.
fn accepted_attachments(all: &[ParsedAttachment]) -> (Vec<ParsedAttachment>, Vec<Value>) {
    let (mut kept, mut skipped) = (Vec::new(), Vec::new());
    for a in all {
        let reason = if !crate::core::files::accepted_type(&a.content_type) {
            Some("type_not_accepted")
        } else if a.data.is_empty() {
            Some("empty")
        } else if a.data.len() > crate::core::files::channel_limit(Channel::Email, &a.content_type) {
            Some("too_large")
        } else if kept.len() >= MAX_ATTACHMENTS {
            Some("too_many_attachments")
        } else {
            None
        };
        match reason {
            Some(r) => skipped.push(json!({"name": a.name, "content_type": a.content_type, "size": a.data.len(),
                                           "reason": r})),
            None => kept.push(a.clone()),
        }
    }
    (kept, skipped)
}

/// The email columns, the attachments and the raw message, stored with the message in one
/// transaction.
struct EmailExtras {
    mail: ParsedEmail,
    message_id: String,
    files: Vec<ParsedAttachment>,
    /// The message as received, kept so a parser fix can read it again (`raw_emails`).
    raw: web::Bytes,
}

impl IngestExtras for EmailExtras {
    fn prepare(&self, m: &mut Message) {
        m.email_from = Some(self.mail.from.clone());
        m.email_to = self.mail.to.clone();
        m.email_cc = self.mail.cc.clone();
        m.email_message_id = Some(self.message_id.clone());
        m.email_in_reply_to = self.mail.in_reply_to.clone();
        m.email_references = self.mail.references.clone();
        m.email_html = self.mail.html.clone();
    }

    /// Always: the raw copy is written with every mail, so email takes the transaction path.
    fn stores_more(&self) -> bool {
        true
    }

    fn stored(&self, c: &mut PgConnection, m: &Message) -> Result<(), StoreError> {
        // As received, attachments included: they are stored decoded as well, but only the raw
        // bytes can be parsed again byte for byte; MAX_MESSAGE bounds the copy.
        store::keep_raw_email(c, m.id, &self.raw)?;
        let now = Utc::now();
        for f in &self.files {
            let a = Attachment {
                id: AttachmentId::new(),
                message_id: Some(m.id),
                conversation_id: Some(m.conversation_id),
                uploaded_by: None,
                name: f.name.clone(),
                content_type: f.content_type.clone(),
                size_bytes: i64::try_from(f.data.len()).unwrap_or(i64::MAX),
                sha256: Sha256::digest(&f.data).to_vec(),
                provider_media_id: None,
                created_at: now,
            }
            .insert(c)?;
            AttachmentContent { attachment_id: a.id, data: f.data.clone() }.insert(c)?;
        }
        Ok(())
    }
}
