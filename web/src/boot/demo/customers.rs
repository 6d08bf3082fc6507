//! The demo's simulated customers. Now and then one writes on the next channel in turn, through
//! the channel's real webhook signed with the demo service's secret; when an agent's reply reaches
//! the sandbox, the customer answers once or twice a few seconds later, then goes quiet. The
//! sandbox's acknowledged sends are also reported delivered and read through the providers'
//! signed status webhooks.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use rand::seq::IndexedRandom;
use schema::models::Service;
use schema::{Channel, store};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Sent, Settings};
use crate::core::db::db;
use crate::core::state::AppState;

/// The channels customers write on, in turn (the webchat needs a browser, voice a phone).
const CHANNELS: &[Channel] =
    &[Channel::Whatsapp, Channel::Messenger, Channel::Telegram, Channel::Sms, Channel::Instagram, Channel::Email];

/// Demo customers' names; "(demo)" says on every desk that nobody real is waiting.
const NAMES: &[&str] = &[
    "Mariana Souza",
    "João Pereira",
    "Fernanda Oliveira",
    "Lucas Almeida",
    "Beatriz Santos",
    "Rafael Costa",
    "Camila Rodrigues",
    "Gustavo Ferreira",
    "Juliana Carvalho",
    "Pedro Henrique Lima",
];

/// A first message: the email's subject and the text.
const OPENERS: &[(&str, &str)] = &[
    ("Pedido não chegou", "Olá, meu pedido ainda não chegou. Podem verificar, por favor?"),
    ("Troca de produto", "Bom dia! Recebi um produto com defeito e gostaria de trocar."),
    ("Cobrança em dobro", "Oi, fui cobrada duas vezes no cartão pela mesma compra."),
    ("Endereço de entrega", "Boa tarde, como faço para alterar o endereço de entrega do meu pedido?"),
    ("Disponibilidade", "Olá! Vocês têm o tênis de corrida no tamanho 42?"),
    ("Segunda via do boleto", "Preciso da segunda via do boleto, por favor."),
    ("Cancelamento", "Oi, quero cancelar minha assinatura. Como faço?"),
];

/// An answer to the agent's first reply.
const FOLLOW_UPS: &[&str] = &[
    "O número do pedido é 48213.",
    "Certo, pode ser sim. Quanto tempo demora?",
    "Entendi. Meu CPF é 123.456.789-09, se precisar.",
    "Comprei pelo site na semana passada.",
    "Pode ser pelo e-mail mesmo, tudo bem.",
];

/// The last thing a customer says.
const THANKS: &[&str] =
    &["Perfeito, muito obrigada pela ajuda!", "Ótimo, obrigado! Fico no aguardo.", "Valeu, resolvido então. Bom dia!"];

/// A demo customer the simulator knows.
struct Customer {
    name: String,
    /// Answers still to give to the agent's replies.
    replies_left: u8,
    arrived: Instant,
}

/// Where and as whom a simulated message is posted.
#[derive(Clone)]
struct Hooks {
    client: awc::Client,
    /// `http://host:port` of the server's webhooks.
    server: String,
}

/// The simulated customers: arrivals on a timer, answers and status reports on the sandbox's sends.
pub struct Simulator {
    state: AppState,
    services: Vec<Service>,
    settings: Settings,
    hooks: Hooks,
    customers: HashMap<(Channel, String), Customer>,
    turn: usize,
}

impl Simulator {
    pub fn new(state: AppState, services: Vec<Service>, settings: Settings, server: String) -> Self {
        let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
        Self { state, services, settings, hooks: Hooks { client, server }, customers: HashMap::new(), turn: 0 }
    }

    fn service(&self, channel: Channel) -> Option<&Service> {
        self.services.iter().find(|s| s.channel == channel)
    }

    /// Runs until the sandbox is gone.
    pub async fn run(mut self, mut sent: mpsc::Receiver<Sent>) {
        let mut next = Instant::now() + self.settings.first;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {
                    self.arrive().await;
                    next = Instant::now() + self.gap();
                }
                s = sent.recv() => match s {
                    Some(s) => self.on_sent(s),
                    None => return,
                },
            }
        }
    }

    /// A gap between half and one and a half of `every`.
    fn gap(&self) -> Duration {
        let every = self.settings.every.as_millis() as u64;
        Duration::from_millis(rand::rng().random_range(every / 2..=every + every / 2))
    }

    /// A new customer writes, unless the demo services already have `max_open` open conversations.
    async fn arrive(&mut self) {
        let ids: Vec<_> = self.services.iter().map(|s| s.id).collect();
        let open = match db(&self.state, store::open_conversations).await {
            Ok(all) => all.iter().filter(|c| ids.contains(&c.service_id)).count(),
            Err(e) => {
                warn!(error = %e.message, "demo: counting open conversations");
                return;
            }
        };
        if open >= self.settings.max_open {
            debug!(open, max = self.settings.max_open, "demo: enough open conversations; nobody new writes");
            return;
        }
        let Some(service) = (0..CHANNELS.len())
            .map(|i| CHANNELS[(self.turn + i) % CHANNELS.len()])
            .find_map(|c| self.service(c))
            .cloned()
        else {
            return;
        };
        self.turn = CHANNELS.iter().position(|c| *c == service.channel).unwrap_or(0) + 1;
        let (name, address, (subject, text)) = {
            let mut rng = rand::rng();
            let name = format!("{} (demo)", NAMES.choose(&mut rng).copied().unwrap_or("Mariana Souza"));
            let opener = *OPENERS.choose(&mut rng).unwrap_or(&OPENERS[0]);
            (name.clone(), address(service.channel, &name, &mut rng), opener)
        };
        match self.hooks.message(&service, &address, &name, text, Thread::New(subject)).await {
            Ok(()) => {
                info!(channel = %service.channel, customer = %name, "demo: a simulated customer wrote");
                // Bounded: the oldest customers are forgotten (their conversations stay).
                if self.customers.len() >= 8 * self.settings.max_open.max(1)
                    && let Some(oldest) = self.customers.iter().min_by_key(|(_, c)| c.arrived).map(|(k, _)| k.clone())
                {
                    self.customers.remove(&oldest);
                }
                let replies = rand::rng().random_range(1..=2);
                self.customers.insert(
                    (service.channel, address),
                    Customer { name, replies_left: replies, arrived: Instant::now() },
                );
            }
            Err(e) => warn!(channel = %service.channel, error = %e, "demo: a simulated customer's message was refused"),
        }
    }

    /// An agent's send reached the sandbox: its statuses follow, and its customer may answer.
    fn on_sent(&mut self, sent: Sent) {
        let Some(service) = self.services.iter().find(|s| s.id == sent.service).cloned() else { return };
        let (hooks, after) = (self.hooks.clone(), self.settings.status_after);
        let report = sent.clone();
        let status_service = service.clone();
        actix_web::rt::spawn(async move {
            for step in [Step::Delivered, Step::Read] {
                tokio::time::sleep(after).await;
                if let Err(e) = hooks.status(&status_service, &report, step).await {
                    warn!(channel = %report.channel, error = %e, "demo: a status report was refused");
                }
            }
        });
        let Some(customer) = self.customers.get_mut(&(sent.channel, sent.to.clone())) else { return };
        if customer.replies_left == 0 {
            return;
        }
        customer.replies_left -= 1;
        let (text, delay) = {
            let mut rng = rand::rng();
            let lines = if customer.replies_left == 0 { THANKS } else { FOLLOW_UPS };
            let text = lines.choose(&mut rng).copied().unwrap_or("Obrigada!");
            let base = self.settings.reply_after.as_millis() as u64;
            (text, Duration::from_millis(rng.random_range(base..=2 * base)))
        };
        let (hooks, name) = (self.hooks.clone(), customer.name.clone());
        actix_web::rt::spawn(async move {
            tokio::time::sleep(delay).await;
            let thread = match (&sent.subject, sent.channel) {
                (Some(subject), Channel::Email) => {
                    Thread::Reply { subject: subject.clone(), to: sent.provider_id.clone() }
                }
                _ => Thread::New(""),
            };
            match hooks.message(&service, &sent.to, &name, text, thread).await {
                Ok(()) => info!(channel = %sent.channel, customer = %name, "demo: a simulated customer answered"),
                Err(e) => warn!(channel = %sent.channel, error = %e, "demo: a simulated customer's answer was refused"),
            }
        });
    }
}

/// A status a provider reports after acknowledging a send.
#[derive(Clone, Copy)]
enum Step {
    Delivered,
    Read,
}

/// An email's place in a thread: a new subject, or an answer to our mail.
enum Thread {
    New(&'static str),
    Reply { subject: String, to: String },
}

/// A customer's address in the channel's own form.
fn address(channel: Channel, name: &str, rng: &mut impl Rng) -> String {
    let digits = |rng: &mut dyn rand::RngCore, n: usize| -> String {
        (0..n).map(|_| char::from(b'0' + (rng.next_u32() % 10) as u8)).collect()
    };
    match channel {
        Channel::Whatsapp => format!("55119{}", digits(rng, 8)),
        Channel::Sms => format!("+55119{}", digits(rng, 8)),
        Channel::Telegram => format!("7{}", digits(rng, 9)),
        Channel::Email => {
            let local: String = name
                .trim_end_matches(" (demo)")
                .to_lowercase()
                .split_whitespace()
                .map(ascii)
                .collect::<Vec<_>>()
                .join(".");
            format!("{local}.{}@demo.omniroute.example", digits(rng, 4))
        }
        _ => format!("9{}", digits(rng, 15)),
    }
}

/// A name's letters without their accents, for an email address.
fn ascii(word: &str) -> String {
    word.chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ã' => 'a',
            'é' | 'ê' => 'e',
            'í' => 'i',
            'ó' | 'ô' | 'õ' => 'o',
            'ú' | 'ü' => 'u',
            'ç' => 'c',
            c => c,
        })
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

fn secret<'a>(service: &'a Service, name: &str) -> &'a str {
    service.provider.get(name).and_then(Value::as_str).unwrap_or("")
}

impl Hooks {
    /// POSTs `body` to the server's `path`, with these headers; an error names what refused it.
    async fn post(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<(), String> {
        let mut request =
            self.client.post(format!("{}{path}", self.server)).insert_header(("Content-Type", content_type));
        for (name, value) in headers {
            request = request.insert_header((*name, value.as_str()));
        }
        let mut response = request.send_body(body).await.map_err(|e| format!("{path}: {e}"))?;
        if response.status().is_success() {
            return Ok(());
        }
        let text = response.body().await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        Err(format!("{path} answered {}: {text}", response.status()))
    }

    /// A Meta-signed JSON webhook (WhatsApp, Messenger, Instagram).
    async fn meta(&self, service: &Service, path: &str, payload: &Value) -> Result<(), String> {
        let body = payload.to_string().into_bytes();
        let signature = crate::channels::whatsapp::sign(secret(service, "app_secret"), &body);
        self.post(path, "application/json", &[("X-Hub-Signature-256", signature)], body).await
    }

    /// A Twilio-signed form to the service's webhook URL (signed as that URL, posted to ours).
    async fn twilio(&self, service: &Service, params: Vec<(String, String)>) -> Result<(), String> {
        let url = secret(service, "webhook_url");
        let signature = crate::channels::sms::signature(secret(service, "auth_token"), url, &params);
        let body = serde_urlencoded::to_string(&params).map_err(|e| e.to_string())?.into_bytes();
        self.post(
            "/webhooks/twilio/sms",
            "application/x-www-form-urlencoded",
            &[("X-Twilio-Signature", signature)],
            body,
        )
        .await
    }

    /// The customer `address` (named `name`) writes `text` on `service`'s channel.
    async fn message(
        &self,
        service: &Service,
        address: &str,
        name: &str,
        text: &str,
        thread: Thread,
    ) -> Result<(), String> {
        let now = Utc::now();
        let key = service.provider_key.clone().unwrap_or_default();
        match service.channel {
            Channel::Whatsapp => {
                let payload = json!({"object": "whatsapp_business_account", "entry": [{"id": "demo-waba", "changes": [{
                    "field": "messages",
                    "value": {"messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "5511900000000", "phone_number_id": key},
                        "contacts": [{"profile": {"name": name}, "wa_id": address}],
                        "messages": [{"from": address, "id": format!("wamid.DEMOIN{}", super::sandbox_hex()),
                            "timestamp": now.timestamp().to_string(), "type": "text", "text": {"body": text}}]}}]}]});
                self.meta(service, "/webhooks/whatsapp", &payload).await
            }
            Channel::Messenger | Channel::Instagram => {
                let (object, path) = if service.channel == Channel::Messenger {
                    ("page", "/webhooks/messenger")
                } else {
                    ("instagram", "/webhooks/instagram")
                };
                let payload = json!({"object": object, "entry": [{"id": key, "time": now.timestamp_millis(), "messaging": [{
                    "sender": {"id": address}, "recipient": {"id": key}, "timestamp": now.timestamp_millis(),
                    "message": {"mid": format!("m_DEMOIN{}", super::sandbox_hex()), "text": text}}]}]});
                self.meta(service, path, &payload).await
            }
            Channel::Telegram => {
                let chat: i64 = address.parse().map_err(|_| format!("{address} is no Telegram chat id"))?;
                let (first, last) = name.split_once(' ').unwrap_or((name, ""));
                let person = json!({"id": chat, "first_name": first, "last_name": last});
                let update = json!({"update_id": now.timestamp_millis(), "message": {
                    "message_id": now.timestamp_millis() % 1_000_000_000,
                    "from": {"id": chat, "is_bot": false, "first_name": first, "last_name": last, "language_code": "pt-br"},
                    "chat": {"type": "private", "id": person["id"], "first_name": first, "last_name": last},
                    "date": now.timestamp(), "text": text}});
                self.post(
                    &format!("/webhooks/telegram/{}", service.id),
                    "application/json",
                    &[("X-Telegram-Bot-Api-Secret-Token", secret(service, "secret_token").to_owned())],
                    update.to_string().into_bytes(),
                )
                .await
            }
            Channel::Sms => {
                let sid = format!("SM{}", super::sandbox_hex());
                let params = [
                    ("AccountSid", secret(service, "account_sid")),
                    ("ApiVersion", "2010-04-01"),
                    ("Body", text),
                    ("From", address),
                    ("MessageSid", &sid),
                    ("NumMedia", "0"),
                    ("SmsSid", &sid),
                    ("SmsStatus", "received"),
                    ("To", &key),
                ];
                self.twilio(service, params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()).await
            }
            Channel::Email => {
                let (subject, threading) = match thread {
                    Thread::New(subject) => (subject.to_owned(), String::new()),
                    Thread::Reply { subject, to } => {
                        let subject = subject.strip_prefix("RES: ").unwrap_or(&subject).to_owned();
                        (format!("Re: {subject}"), format!("In-Reply-To: {to}\r\nReferences: {to}\r\n"))
                    }
                };
                let mail = format!(
                    "From: \"{name}\" <{address}>\r\nTo: {key}\r\nSubject: {subject}\r\nDate: {}\r\n\
                     Message-ID: <demo-{}@demo.omniroute.example>\r\n{threading}MIME-Version: 1.0\r\n\
                     Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n",
                    now.to_rfc2822(),
                    super::sandbox_hex(),
                );
                self.post(
                    &format!("/webhooks/email/{}", service.id),
                    "message/rfc822",
                    &[(crate::channels::email::SECRET_HEADER, secret(service, "webhook_secret").to_owned())],
                    mail.into_bytes(),
                )
                .await
            }
            Channel::Webchat | Channel::Voice => Ok(()),
        }
    }

    /// The provider reports `sent` delivered or read, as it would: WhatsApp statuses, Meta's
    /// delivery and read events, Twilio's status callback (`delivered`; SMS has no read receipt).
    /// Telegram and email report nothing.
    async fn status(&self, service: &Service, sent: &Sent, step: Step) -> Result<(), String> {
        let now = Utc::now();
        let key = service.provider_key.clone().unwrap_or_default();
        match service.channel {
            Channel::Whatsapp => {
                let word = match step {
                    Step::Delivered => "delivered",
                    Step::Read => "read",
                };
                let payload = json!({"object": "whatsapp_business_account", "entry": [{"id": "demo-waba", "changes": [{
                    "field": "messages",
                    "value": {"messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "5511900000000", "phone_number_id": key},
                        "statuses": [{"id": sent.provider_id, "status": word, "timestamp": now.timestamp().to_string(),
                            "recipient_id": sent.to}]}}]}]});
                self.meta(service, "/webhooks/whatsapp", &payload).await
            }
            Channel::Messenger | Channel::Instagram => {
                let (object, path) = if service.channel == Channel::Messenger {
                    ("page", "/webhooks/messenger")
                } else {
                    ("instagram", "/webhooks/instagram")
                };
                let mut event =
                    json!({"sender": {"id": sent.to}, "recipient": {"id": key}, "timestamp": now.timestamp_millis()});
                match step {
                    Step::Delivered => {
                        event["delivery"] = json!({"mids": [sent.provider_id], "watermark": now.timestamp_millis()})
                    }
                    Step::Read => event["read"] = json!({"watermark": now.timestamp_millis()}),
                }
                let payload = json!({"object": object, "entry": [{"id": key, "time": now.timestamp_millis(), "messaging": [event]}]});
                self.meta(service, path, &payload).await
            }
            Channel::Sms => {
                let word = match step {
                    Step::Delivered => "sent",
                    Step::Read => "delivered",
                };
                // As Twilio writes a status callback: our number is `From`, the customer `To`.
                let params = [
                    ("AccountSid", secret(service, "account_sid")),
                    ("ApiVersion", "2010-04-01"),
                    ("From", &key),
                    ("MessageSid", &sent.provider_id),
                    ("MessageStatus", word),
                    ("SmsSid", &sent.provider_id),
                    ("SmsStatus", word),
                    ("To", sent.to.as_str()),
                ];
                self.twilio(service, params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()).await
            }
            _ => Ok(()),
        }
    }
}
