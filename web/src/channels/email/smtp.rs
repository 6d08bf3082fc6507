//! Replies over SMTP (C5) with lettre. An agent's message in an email conversation becomes a mail
//! from the service's `address` to the customer, with the customer's Cc kept, the subject
//! `RES: <their subject>` (added once), `In-Reply-To` their Message-ID and `References` their
//! references plus it, the agent's text placed in the service's email template, and the
//! message's attachments. Our Message-ID is derived from the message id, so a repeated attempt
//! carries the same one, and it is recorded as the provider id.
//!
//! `smtp_url`: `smtp://host:port` (plain, e.g. a local relay), `smtp://user:pass@host:587?tls=required`
//! or `smtp+starttls://…` (STARTTLS), `smtps://user:pass@host:465` (TLS from the start).

use crate::core::error::Code;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment as MailAttachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use schema::models::{Agent, Attachment, Conversation, EmailTemplate, Message, Service};
use schema::store::{self, OutgoingEmail};
use serde_json::Value;

use super::parse::{reply_subject, valid_address};
use crate::core::outbox::SendResult;
use crate::core::state::AppState;

/// How long one SMTP conversation may take before it is retried later.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a reply is made of, read in one go.
struct Context {
    conversation: Conversation,
    answered: Option<Message>,
    template: Option<EmailTemplate>,
    agent: Option<Agent>,
    files: Vec<(Attachment, Vec<u8>)>,
}

/// Sends one agent message of an email conversation.
/// Email's [`crate::core::outbox::Sender`]: SMTP.
pub struct EmailSender;

impl crate::core::outbox::Sender for EmailSender {
    fn send<'a>(
        &'a self,
        call: crate::core::outbox::SendCall<'a>,
    ) -> futures_util::future::LocalBoxFuture<'a, SendResult> {
        Box::pin(send(call.state, call.service, call.address, call.message))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

pub async fn send(state: &AppState, service: &Service, to: &str, m: &Message) -> SendResult {
    let field = |k: &str| service.provider.get(k).and_then(Value::as_str).unwrap_or("").trim().to_owned();
    let (from, url) = (field("address").to_lowercase(), field("smtp_url"));
    if from.is_empty() || url.is_empty() {
        return SendResult::refused(Code::NotConfigured, "the email service has no address or smtp_url");
    }
    let (pool, conversation, message, service_id, agent) =
        (state.pool.clone(), m.conversation_id, m.id, service.id, m.sender_agent_id);
    let context = actix_web::web::block(move || -> Result<Context, schema::StoreError> {
        let mut c = pool.get()?;
        let templates = store::email_templates_for(&mut c, service_id)?;
        let template =
            templates.iter().find(|t| t.service_id == Some(service_id)).or_else(|| templates.first()).cloned();
        Ok(Context {
            conversation: Conversation::find(&mut c, conversation)?,
            answered: store::latest_inbound_email(&mut c, conversation)?,
            template,
            agent: agent.map(|a| Agent::find(&mut c, a)).transpose()?,
            files: store::attachments_with_content(&mut c, message)?,
        })
    })
    .await;
    let context = match context {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return SendResult::Retry(format!("reading the conversation: {e}")),
        Err(e) => return SendResult::Retry(e.to_string()),
    };
    let email = compose(service, &from, to, m, &context);
    let mail = match build(service, &email, m, &context) {
        Ok(mail) => mail,
        Err(refused) => return refused,
    };
    // The desk shows the headers while the mail is on its way (D5).
    let (pool, id, headers) = (state.pool.clone(), m.id, email.clone());
    let _ = actix_web::web::block(move || {
        let mut c = pool.get()?;
        store::set_outgoing_email(&mut c, id, &headers)
    })
    .await;
    let transport = match transport(&url) {
        Ok(t) => t,
        Err(e) => return SendResult::refused(Code::InvalidSmtpUrl, e),
    };
    match transport.send(mail).await {
        Ok(_) => SendResult::Sent(email.message_id),
        Err(e) => refusal_or_retry(&e),
    }
}

/// The headers of the reply to `context`'s latest customer mail.
fn compose(service: &Service, from: &str, to: &str, m: &Message, context: &Context) -> OutgoingEmail {
    let answered = context.answered.as_ref();
    let customer = to.trim().to_lowercase();
    let cc: Vec<String> = answered
        .map(|a| a.email_cc.iter().filter(|c| **c != from && **c != customer).cloned().collect())
        .unwrap_or_default();
    let original = answered
        .and_then(|a| a.email_subject.clone())
        .or_else(|| context.conversation.subject.clone())
        .filter(|s| !s.trim().is_empty())
        .or_else(|| context.template.as_ref().map(|t| t.subject.clone()).filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| service.name.clone());
    let in_reply_to = answered.and_then(|a| a.email_message_id.clone());
    let mut references = answered.map(|a| a.email_references.clone()).unwrap_or_default();
    if let Some(id) = &in_reply_to
        && !references.contains(id)
    {
        references.push(id.clone());
    }
    let domain = from.rsplit_once('@').map(|(_, d)| d).unwrap_or("omniroute.invalid");
    // A new email the agent wrote (from another conversation) goes with its own subject and
    // text, not as a reply in the service's template.
    if let Some(subject) = new_email_subject(m) {
        return OutgoingEmail {
            from: from.to_owned(),
            to: vec![customer],
            cc,
            subject,
            message_id: format!("{}@{domain}", m.id),
            in_reply_to,
            references,
            html: None,
        };
    }
    OutgoingEmail {
        from: from.to_owned(),
        to: vec![customer],
        cc,
        subject: reply_subject(&original),
        message_id: format!("{}@{domain}", m.id),
        in_reply_to,
        references,
        html: context.template.as_ref().and_then(|t| t.body_html.as_ref()).map(|h| fill_html(h, m, context)),
    }
}

/// The subject of a new email the agent composed (`payload.new_email`), sent as it is.
fn new_email_subject(m: &Message) -> Option<String> {
    (m.payload.get("new_email") == Some(&Value::Bool(true))).then(|| m.email_subject.clone()).flatten()
}

/// The agent's text in the template's `body_text`: `{{body}}` (or, without it, the text then the
/// template), `{{customer_name}}`, `{{agent_name}}`, `{{subject}}`.
pub fn fill_text(template: &str, body: &str, customer: &str, agent: &str, subject: &str) -> String {
    let filled = template
        .replace("{{customer_name}}", customer)
        .replace("{{agent_name}}", agent)
        .replace("{{subject}}", subject);
    if filled.contains("{{body}}") { filled.replace("{{body}}", body) } else { format!("{body}\n\n{filled}") }
}

fn names(m: &Message, context: &Context) -> (String, String, String) {
    (
        context.conversation.customer_name.clone().unwrap_or_default(),
        context.agent.as_ref().map(|a| a.name.clone()).unwrap_or_default(),
        m.body.clone().unwrap_or_default(),
    )
}

fn fill_html(template: &str, m: &Message, context: &Context) -> String {
    let (customer, agent, body) = names(m, context);
    let subject = context.conversation.subject.clone().unwrap_or_default();
    let escaped = escape(&body).replace('\n', "<br>\n");
    fill_text(template, &escaped, &escape(&customer), &escape(&agent), &escape(&subject))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The mail itself.
fn build(
    service: &Service,
    email: &OutgoingEmail,
    m: &Message,
    context: &Context,
) -> Result<lettre::Message, SendResult> {
    let mailbox = |name: Option<String>, address: &str| -> Result<Mailbox, SendResult> {
        if !valid_address(address) {
            return Err(SendResult::refused(Code::InvalidAddress, format!("{address:?} is not an email address")));
        }
        address
            .parse()
            .map(|a| Mailbox::new(name, a))
            .map_err(|e| SendResult::refused(Code::InvalidAddress, format!("{address}: {e}")))
    };
    let to = email.to.first().map(String::as_str).unwrap_or("");
    let mut builder = lettre::Message::builder()
        .from(mailbox(Some(service.name.clone()), &email.from)?)
        .to(mailbox(context.conversation.customer_name.clone(), to)?)
        .subject(email.subject.clone())
        .message_id(Some(format!("<{}>", email.message_id)));
    for cc in &email.cc {
        // A Cc we cannot write is left out rather than the whole reply refused.
        if let Ok(mb) = mailbox(None, cc) {
            builder = builder.cc(mb);
        }
    }
    if let Some(id) = &email.in_reply_to {
        builder = builder.in_reply_to(format!("<{id}>"));
    }
    if !email.references.is_empty() {
        let refs: Vec<String> = email.references.iter().map(|r| format!("<{r}>")).collect();
        builder = builder.references(refs.join(" "));
    }
    let (customer, agent, body) = names(m, context);
    let text = match &context.template {
        _ if new_email_subject(m).is_some() => body,
        Some(t) => fill_text(&t.body_text, &body, &customer, &agent, &email.subject),
        None => body,
    };
    let invalid = |e: lettre::error::Error| SendResult::refused(Code::InvalidEmail, e.to_string());
    if context.files.is_empty() {
        return match &email.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html.clone())),
            None => builder.singlepart(SinglePart::plain(text)),
        }
        .map_err(invalid);
    }
    let mut mixed = match &email.html {
        Some(html) => MultiPart::mixed().multipart(MultiPart::alternative_plain_html(text, html.clone())),
        None => MultiPart::mixed().singlepart(SinglePart::plain(text)),
    };
    for (a, data) in &context.files {
        let ct = ContentType::parse(&a.content_type)
            .or_else(|_| ContentType::parse("application/octet-stream"))
            .map_err(|e| SendResult::refused(Code::InvalidAttachment, e.to_string()))?;
        mixed = mixed.singlepart(MailAttachment::new(a.name.clone()).body(data.clone(), ct));
    }
    builder.multipart(mixed).map_err(invalid)
}

/// An SMTP transport for the service's `smtp_url`.
fn transport(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let url = match url.strip_prefix("smtp+starttls://") {
        Some(rest) if rest.contains('?') => format!("smtp://{rest}&tls=required"),
        Some(rest) => format!("smtp://{rest}?tls=required"),
        None => url.to_owned(),
    };
    Ok(AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
        .map_err(|e| format!("smtp_url is not usable: {e}"))?
        .timeout(Some(SMTP_TIMEOUT))
        .build())
}

/// A permanent SMTP refusal (5xx) is final, with the server's code and text; a temporary one
/// (4xx), a dropped connection or a timeout is tried again later.
fn refusal_or_retry(e: &lettre::transport::smtp::Error) -> SendResult {
    let text = std::error::Error::source(e).map(|s| s.to_string()).unwrap_or_else(|| e.to_string());
    match e.status() {
        Some(code) if e.is_permanent() => SendResult::Refused(code.to_string(), text),
        _ => SendResult::Retry(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::fill_text;

    #[test]
    fn the_agents_text_goes_where_the_template_says() {
        let t = "Olá {{customer_name}},\n\n{{body}}\n\n{{agent_name}} — {{subject}}";
        assert_eq!(fill_text(t, "Pronto.", "Maria", "Ana", "RES: X"), "Olá Maria,\n\nPronto.\n\nAna — RES: X");
        // Without {{body}}, the template follows the text, as a signature.
        assert_eq!(fill_text("--\n{{agent_name}}", "Pronto.", "Maria", "Ana", "S"), "Pronto.\n\n--\nAna");
        // Text that looks like a placeholder is not expanded again.
        assert_eq!(fill_text("{{body}}", "{{agent_name}}", "M", "Ana", "S"), "{{agent_name}}");
    }
}
