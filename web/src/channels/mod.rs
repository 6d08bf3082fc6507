//! Channel adapters: each speaks its provider's real format, checks its real signature over the
//! raw body, stores what arrived through `Engine::ingest` (idempotent, committed before the
//! answer, C3/C4), and answers 503 while the database is down so the provider retries.

pub mod audio;
pub mod cti;
pub mod email;
pub mod media;
pub mod meta;
pub mod outbound;
pub mod send;
pub mod sms;
pub mod telegram;
pub mod templates;
pub mod voice;
pub mod whatsapp;
pub mod window;

use actix_web::web;

use crate::core::error::{ApiError, Code};

/// The providers' senders, one per channel (the webchat registers its own).
pub fn senders() -> Vec<(schema::Channel, std::sync::Arc<dyn crate::core::outbox::Sender>)> {
    use schema::Channel;
    let meta: std::sync::Arc<dyn crate::core::outbox::Sender> = std::sync::Arc::new(meta::sender::MetaSender);
    vec![
        (Channel::Whatsapp, std::sync::Arc::new(whatsapp::sender::WhatsappSender)),
        (Channel::Telegram, std::sync::Arc::new(telegram::sender::TelegramSender)),
        (Channel::Sms, std::sync::Arc::new(sms::sender::TwilioSender)),
        (Channel::Messenger, meta.clone()),
        (Channel::Instagram, meta),
        (Channel::Email, std::sync::Arc::new(email::smtp::EmailSender)),
    ]
}

/// What a provider's folder tells the rest of the server besides its webhook and its sender: its
/// reply window (C7) and its media (C1, C9).
pub trait Provider: Sync {
    /// Where a conversation stands in the provider's reply window, the customer having last
    /// written at `last` (never: `None`).
    fn window(
        &self,
        _last: Option<chrono::DateTime<chrono::Utc>>,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> window::Window {
        window::Window::Open
    }

    /// The files an inbound message carries, read from its stored payload.
    fn media(&self, _m: &schema::models::Message) -> Vec<media::Source> {
        Vec::new()
    }

    /// Fetches one of those files.
    fn fetch<'a>(
        &'a self,
        client: &'a awc::Client,
        service: &'a schema::models::Service,
        f: &'a schema::models::MediaFetch,
        announced: Option<&'a str>,
    ) -> futures_util::future::LocalBoxFuture<'a, media::Fetched>;
}

/// [`Provider::media`] and [`Provider::fetch`] of a provider whose folder has a `media` module with
/// `sources` and `fetch`.
macro_rules! media_in_folder {
    () => {
        fn media(&self, m: &schema::models::Message) -> Vec<crate::channels::media::Source> {
            media::sources(m)
        }

        fn fetch<'a>(
            &'a self,
            client: &'a awc::Client,
            service: &'a schema::models::Service,
            f: &'a schema::models::MediaFetch,
            announced: Option<&'a str>,
        ) -> futures_util::future::LocalBoxFuture<'a, crate::channels::media::Fetched> {
            Box::pin(media::fetch(client, service, f, announced))
        }
    };
}
use media_in_folder;

/// The provider of a channel with a window or media (the others have neither).
pub fn provider(channel: schema::Channel) -> Option<&'static dyn Provider> {
    use schema::Channel;
    match channel {
        Channel::Whatsapp => Some(&whatsapp::Whatsapp),
        Channel::Telegram => Some(&telegram::Telegram),
        Channel::Sms => Some(&sms::Twilio),
        Channel::Messenger | Channel::Instagram => Some(&meta::Meta),
        _ => None,
    }
}

/// Registers the webhooks.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(whatsapp::verify)
        .service(whatsapp::receive)
        .service(telegram::receive)
        .service(sms::receive)
        .service(meta::verify)
        .service(meta::receive)
        .service(email::receive);
}

/// A webhook's signature header, or 401 `missing_signature`: checked before the body is read, so
/// an unsigned request costs nothing.
pub fn signature_header(req: &actix_web::HttpRequest, name: &'static str) -> Result<String, ApiError> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned).ok_or_else(|| {
        ApiError::new(actix_web::http::StatusCode::UNAUTHORIZED, Code::MissingSignature, format!("{name} is required"))
    })
}

/// Reads a webhook's raw body (signatures are over these exact bytes). Bounded for a caller who
/// has proven nothing yet: a body announced over `limit` is refused (413) before a byte is read; a
/// body reserves its bytes in the budget shared by every webhook (503 when spent, so a provider
/// retries); and it must arrive within the body timeout (408).
pub async fn read_body(
    state: &crate::core::state::AppState,
    req: &actix_web::HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    use actix_web::http::{StatusCode, header};
    use futures_util::StreamExt;

    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::PayloadTooLarge,
            format!("webhook bodies are at most {} KiB", limit / 1024),
        )
    };
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let _reserved = state.limits.bodies.reserve(announced.map_or(limit, |n| n as usize))?;
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request(Code::InvalidBody, e.to_string()))?;
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    match tokio::time::timeout(state.limits.body_timeout, read).await {
        Ok(read) => read,
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            Code::BodyTimeout,
            format!("the body did not arrive within {} s", state.limits.body_timeout.as_secs_f32()),
        )),
    }
}

/// Stores a customer's message from a channel, `how` the channel says (what it stores beside the
/// message, whether the desks are told): the one inbound path of every channel.
pub async fn ingest(
    state: &crate::core::state::AppState,
    inbound: engine::ingest::InboundMessage,
    how: engine::ingest::Ingest,
) -> Result<(engine::ingest::Ingested, Option<schema::models::Message>), crate::core::error::ApiError> {
    state.engine.ingest(inbound, how).await.map_err(engine_unavailable)
}

/// Stores a customer's message from a webhook and shows it on its conversation's desks (routed
/// and published in one trip to the engine's distributor when the conversation is open); true
/// when it was stored, false for a replay.
pub async fn ingest_webhook(
    state: &crate::core::state::AppState,
    inbound: engine::ingest::InboundMessage,
) -> Result<bool, crate::core::error::ApiError> {
    let (outcome, _) = ingest(state, inbound, engine::ingest::Ingest::published()).await?;
    Ok(matches!(outcome, engine::ingest::Ingested::Stored { .. }))
}

/// An engine error as a webhook answer: 503 while the database is down, so the provider retries.
pub fn engine_unavailable(e: engine::EngineError) -> ApiError {
    use engine::EngineError;
    match e {
        EngineError::Unavailable(_) | EngineError::Stopped => {
            ApiError::unavailable("the database is unavailable; retry")
        }
        EngineError::Storage(s) => ApiError::from(s),
        other => ApiError::from(other),
    }
}
