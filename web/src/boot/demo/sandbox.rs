//! The demo's provider sandbox: the outbound APIs the senders call, answered in each provider's
//! own format (ECOSYSTEM.md §3), and an SMTP sink. Every acknowledged send is passed to the
//! simulated customers (`Sent`), who report it delivered and read and may answer it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use actix_web::{HttpRequest, HttpResponse, web};
use schema::Channel;
use schema::models::Service;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::Sent;

/// The largest request or mail the sandbox reads (the senders' files are small in a demo).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// What the sandbox's handlers share: the demo services (to check credentials and name the
/// service of a send) and where acknowledged sends go.
#[derive(Clone)]
pub struct Sandbox {
    services: Arc<Vec<Service>>,
    sent: mpsc::Sender<Sent>,
    /// Telegram's message ids, increasing like a chat's.
    telegram_ids: Arc<AtomicI64>,
}

impl Sandbox {
    pub fn new(services: Vec<Service>, sent: mpsc::Sender<Sent>) -> Self {
        Self { services: Arc::new(services), sent, telegram_ids: Arc::new(AtomicI64::new(1000)) }
    }

    fn by_key(&self, channels: &[Channel], key: &str) -> Option<&Service> {
        self.services.iter().find(|s| channels.contains(&s.channel) && s.provider_key.as_deref() == Some(key))
    }

    fn field<'a>(service: &'a Service, name: &str) -> &'a str {
        service.provider.get(name).and_then(Value::as_str).unwrap_or("")
    }

    /// Hands an acknowledged send on; a full queue (customers far behind) drops the report only.
    fn acknowledged(&self, sent: Sent) {
        debug!(channel = %sent.channel, to = %sent.to, id = %sent.provider_id, "demo sandbox acknowledged a send");
        if self.sent.try_send(sent).is_err() {
            warn!("demo sandbox: the simulated customers are behind; a send goes unreported");
        }
    }
}

/// The sandbox's routes, under the `api_base_url`s the demo seed writes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_BODY))
        .route("/graph/{version}/{id}/messages", web::post().to(graph_messages))
        .route("/graph/{version}/{id}/media", web::post().to(graph_media))
        .route("/telegram/{bot}/{method}", web::post().to(telegram))
        .route("/twilio/2010-04-01/Accounts/{sid}/Messages.json", web::post().to(twilio))
        .default_service(web::to(|| async {
            HttpResponse::NotFound()
                .json(json!({"error": {"message": "Unknown path in the demo sandbox", "code": 404}}))
        }));
}

fn graph_error(status: actix_web::http::StatusCode, code: u32, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({"error": {"message": message, "type": "OAuthException", "code": code}}))
}

fn bearer(req: &HttpRequest) -> &str {
    req.headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
}

/// The text of a multipart part named `name` (the senders write small text fields first).
fn multipart_field(body: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let start = text.find(&format!("name=\"{name}\""))?;
    let rest = &text[start..];
    let value = &rest[rest.find("\r\n\r\n")? + 4..];
    Some(value[..value.find("\r\n")?].to_owned())
}

/// WhatsApp Cloud API `POST /{version}/{phone_number_id}/messages` and Messenger/Instagram Send
/// API `POST /{version}/{page_id | account_id}/messages`.
async fn graph_messages(
    req: HttpRequest,
    sandbox: web::Data<Sandbox>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> HttpResponse {
    let (_, id) = path.into_inner();
    let Some(service) = sandbox.by_key(&[Channel::Whatsapp, Channel::Messenger, Channel::Instagram], &id) else {
        return graph_error(actix_web::http::StatusCode::BAD_REQUEST, 100, "Unsupported post request: unknown id");
    };
    if bearer(&req) != Sandbox::field(service, "access_token") {
        return graph_error(actix_web::http::StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token.");
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if service.channel == Channel::Whatsapp {
        let Some(to) = json.get("to").and_then(Value::as_str).map(str::to_owned) else {
            return graph_error(actix_web::http::StatusCode::BAD_REQUEST, 100, "The parameter to is required.");
        };
        let wamid = format!("wamid.DEMO{}", super::sandbox_hex().to_uppercase());
        sandbox.acknowledged(Sent {
            service: service.id,
            channel: service.channel,
            to: to.clone(),
            provider_id: wamid.clone(),
            subject: None,
        });
        return HttpResponse::Ok().json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid}],
        }));
    }
    // The Send API takes JSON, or a multipart form whose `recipient` field is JSON.
    let recipient = json.pointer("/recipient/id").and_then(Value::as_str).map(str::to_owned).or_else(|| {
        multipart_field(&body, "recipient")
            .and_then(|r| serde_json::from_str::<Value>(&r).ok())
            .and_then(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
    });
    let Some(to) = recipient else {
        return graph_error(actix_web::http::StatusCode::BAD_REQUEST, 100, "The parameter recipient is required.");
    };
    let mid = format!("m_DEMO{}", super::sandbox_hex());
    sandbox.acknowledged(Sent {
        service: service.id,
        channel: service.channel,
        to: to.clone(),
        provider_id: mid.clone(),
        subject: None,
    });
    HttpResponse::Ok().json(json!({"recipient_id": to, "message_id": mid}))
}

/// WhatsApp's media upload: `{"id": "<media id>"}`.
async fn graph_media(req: HttpRequest, sandbox: web::Data<Sandbox>, path: web::Path<(String, String)>) -> HttpResponse {
    let (_, id) = path.into_inner();
    match sandbox.by_key(&[Channel::Whatsapp], &id) {
        Some(s) if bearer(&req) == Sandbox::field(s, "access_token") => {
            HttpResponse::Ok().json(json!({"id": format!("{}", rand::random::<u64>() % 1_000_000_000_000_000)}))
        }
        Some(_) => graph_error(actix_web::http::StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token."),
        None => graph_error(actix_web::http::StatusCode::BAD_REQUEST, 100, "Unsupported post request: unknown id"),
    }
}

/// Telegram Bot API `POST /bot{token}/sendMessage` (JSON) and `sendPhoto`/`sendVoice`/
/// `sendDocument` (multipart): `{"ok": true, "result": {message_id, chat, date, …}}`.
async fn telegram(sandbox: web::Data<Sandbox>, path: web::Path<(String, String)>, body: web::Bytes) -> HttpResponse {
    let (bot, method) = path.into_inner();
    let token = bot.strip_prefix("bot").unwrap_or("");
    let Some(service) =
        sandbox.services.iter().find(|s| s.channel == Channel::Telegram && Sandbox::field(s, "bot_token") == token)
    else {
        return HttpResponse::Unauthorized()
            .json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"}));
    };
    if !["sendMessage", "sendPhoto", "sendVoice", "sendDocument"].contains(&method.as_str()) {
        return HttpResponse::NotFound().json(json!({"ok": false, "error_code": 404, "description": "Not Found"}));
    }
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let chat = match json.get("chat_id") {
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        _ => multipart_field(&body, "chat_id"),
    };
    let Some(chat) = chat else {
        return HttpResponse::BadRequest()
            .json(json!({"ok": false, "error_code": 400, "description": "Bad Request: chat_id is empty"}));
    };
    let message_id = sandbox.telegram_ids.fetch_add(1, Ordering::Relaxed);
    sandbox.acknowledged(Sent {
        service: service.id,
        channel: Channel::Telegram,
        to: chat.clone(),
        provider_id: format!("{chat}:{message_id}"),
        subject: None,
    });
    let chat_id: Value = chat.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::from(chat));
    let mut result = json!({"message_id": message_id, "date": chrono::Utc::now().timestamp(),
        "chat": {"id": chat_id, "type": "private"}, "from": {"id": 1, "is_bot": true, "first_name": "Omniroute demo"}});
    if let Some(text) = json.get("text") {
        result["text"] = text.clone();
    }
    HttpResponse::Ok().json(json!({"ok": true, "result": result}))
}

/// Twilio `POST /2010-04-01/Accounts/{sid}/Messages.json` (form, basic auth): `201` with the
/// Message resource, `sid` `SM…`.
async fn twilio(
    req: HttpRequest,
    sandbox: web::Data<Sandbox>,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    use base64::Engine as _;
    let sid = path.into_inner();
    let Some(service) =
        sandbox.services.iter().find(|s| s.channel == Channel::Sms && Sandbox::field(s, "account_sid") == sid)
    else {
        return HttpResponse::NotFound()
            .json(json!({"code": 20404, "message": "The requested resource was not found", "status": 404}));
    };
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{}", Sandbox::field(service, "auth_token")))
    );
    if req.headers().get("Authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return HttpResponse::Unauthorized().json(json!({"code": 20003, "message": "Authenticate", "status": 401}));
    }
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(to) = get("To") else {
        return HttpResponse::BadRequest()
            .json(json!({"code": 21604, "message": "A 'To' phone number is required.", "status": 400}));
    };
    let message_sid = format!("SM{}", super::sandbox_hex());
    sandbox.acknowledged(Sent {
        service: service.id,
        channel: Channel::Sms,
        to: to.clone(),
        provider_id: message_sid.clone(),
        subject: None,
    });
    HttpResponse::Created().json(json!({
        "sid": message_sid, "account_sid": sid, "to": to, "from": get("From"), "body": get("Body"),
        "status": "queued", "direction": "outbound-api", "api_version": "2010-04-01",
    }))
}

/// Binds the SMTP sink and serves it: it accepts every mail from the demo email service and
/// reports it as a [`Sent`] to its first recipient.
pub async fn smtp_sink(
    bind: SocketAddr,
    services: Vec<Service>,
    sent: mpsc::Sender<Sent>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let Some(service) = services.into_iter().find(|s| s.channel == Channel::Email) else { return Ok(addr) };
    actix_web::rt::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let (service, sent) = (service.id, sent.clone());
                    actix_web::rt::spawn(async move {
                        if let Err(e) = smtp_session(stream, service, sent).await {
                            debug!(error = %e, "demo SMTP session ended");
                        }
                    });
                }
                Err(e) => warn!(error = %e, "demo SMTP sink: accept failed"),
            }
        }
    });
    Ok(addr)
}

/// One SMTP conversation (RFC 5321's minimum: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT).
async fn smtp_session(
    stream: tokio::net::TcpStream,
    service: schema::ServiceId,
    sent: mpsc::Sender<Sent>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 omniroute-demo-sandbox ESMTP (demo: nothing is delivered)\r\n").await?;
    let mut recipients: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" => b"250-omniroute-demo-sandbox\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" | "MAIL" | "NOOP" => b"250 OK\r\n",
            "RSET" => {
                recipients.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                let address = line.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(a, _)| a.to_owned());
                recipients.extend(address);
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
                let mail = read_data(&mut lines).await?;
                if let Some(to) = recipients.first() {
                    let header = |name: &str| {
                        mail.lines().take_while(|l| !l.is_empty()).find_map(|l| {
                            let (n, v) = l.split_once(':')?;
                            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                        })
                    };
                    let provider_id = header("Message-ID").unwrap_or_default();
                    let sent_mail = Sent {
                        service,
                        channel: Channel::Email,
                        to: to.clone(),
                        provider_id,
                        subject: header("Subject"),
                    };
                    if sent.try_send(sent_mail).is_err() {
                        warn!("demo sandbox: the simulated customers are behind; a mail goes unreported");
                    }
                }
                recipients.clear();
                b"250 OK queued by the demo sandbox\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(answer).await?;
    }
}

/// The mail after DATA, up to the lone dot, without dot-stuffing; at most [`MAX_BODY`] kept.
async fn read_data(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> std::io::Result<String> {
    let mut mail = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(mail);
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text == "." {
            return Ok(mail);
        }
        if mail.len() < MAX_BODY {
            mail.push_str(text.strip_prefix('.').unwrap_or(text));
            mail.push('\n');
        }
    }
}
