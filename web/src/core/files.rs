//! Files (C9): what is accepted, how large per channel, and reading one from a multipart form.

use actix_multipart::Multipart;
use futures_util::StreamExt;
use schema::Channel;

use crate::core::error::{ApiError, Code};

/// Longest text an agent can send (WhatsApp's limit; the strictest of the chat channels).
pub const MAX_TEXT: usize = 4096;

/// Most attachments in one message.
pub const MAX_ATTACHMENTS: usize = 10;

/// Largest upload.
pub const MAX_UPLOAD: usize = 25 * 1024 * 1024;

/// Content types accepted for upload.
pub const ALLOWED_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "audio/ogg",
    "audio/mpeg",
    "audio/mp4",
    "audio/aac",
    "audio/webm",
    "audio/wav",
    "video/mp4",
    "video/3gpp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/zip",
];

/// Whether files of this content type are accepted (C9), sent or received.
pub fn accepted_type(content_type: &str) -> bool {
    ALLOWED_TYPES.contains(&essence(content_type).as_str())
}

/// The largest file of a kind a channel accepts (C9), from the providers' published limits.
pub fn channel_limit(channel: Channel, content_type: &str) -> usize {
    const MB: usize = 1024 * 1024;
    let major = content_type.split('/').next().unwrap_or("");
    match (channel, major) {
        (Channel::Whatsapp, "image") => 5 * MB,
        (Channel::Whatsapp, "audio" | "video") => 16 * MB,
        (Channel::Whatsapp, _) => 100 * MB,
        (Channel::Messenger | Channel::Instagram, _) => 25 * MB,
        (Channel::Telegram, "image") => 10 * MB,
        (Channel::Telegram, _) => 50 * MB,
        (Channel::Sms, _) => 5 * MB,
        (Channel::Email, _) => 20 * MB,
        (Channel::Webchat, _) => 20 * MB,
        (Channel::Voice, _) => 0,
    }
}

/// A file name without its path or control characters, at most 200 characters.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if cleaned.trim().is_empty() { "file".into() } else { cleaned }
}

/// Reads the multipart field `file` (other fields drained): its cleaned name, its content type
/// (one of [`ALLOWED_TYPES`]) and its bytes, at most `limit(content_type)`; `scope` ends the 413
/// message (" in the chat"). Refusals are 400 / 413 / 415 JSON errors.
pub async fn read_file_field(
    form: &mut Multipart,
    limit: impl Fn(&str) -> usize,
    scope: &str,
) -> Result<(String, String, Vec<u8>), ApiError> {
    let mut file: Option<(String, String, Vec<u8>)> = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| ApiError::bad_request(Code::InvalidMultipart, e.to_string()))?;
        if field.name() != Some("file") || file.is_some() {
            // Drain other fields without keeping them.
            while let Some(chunk) = field.next().await {
                chunk.map_err(|e| ApiError::bad_request(Code::InvalidMultipart, e.to_string()))?;
            }
            continue;
        }
        let name = clean_name(field.content_disposition().and_then(|d| d.get_filename()).unwrap_or("file"));
        let content_type = field.content_type().map(|m| m.essence_str().to_owned()).unwrap_or_default();
        if !ALLOWED_TYPES.contains(&content_type.as_str()) {
            return Err(ApiError::new(
                actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::UnsupportedFileType,
                format!("files of type {content_type:?} are not accepted"),
            ));
        }
        let limit = limit(&content_type);
        let mut data = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request(Code::InvalidMultipart, e.to_string()))?;
            if data.len() + chunk.len() > limit {
                return Err(ApiError::new(
                    actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                    Code::FileTooLarge,
                    format!("files are at most {} MiB{scope}", limit / 1024 / 1024),
                ));
            }
            data.extend_from_slice(&chunk);
        }
        file = Some((name, content_type, data));
    }
    let (name, content_type, data) =
        file.ok_or_else(|| ApiError::bad_request(Code::MissingFile, "send the file in the field `file`"))?;
    if data.is_empty() {
        return Err(ApiError::bad_request(Code::EmptyFile, "the file is empty"));
    }
    Ok((name, content_type, data))
}

/// The media type of a content type, lowercased, without parameters (`audio/ogg; codecs=opus`
/// is `audio/ogg`).
pub fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_lose_their_parameters() {
        assert_eq!(essence("Audio/OGG; codecs=opus"), "audio/ogg");
        assert_eq!(essence(""), "");
    }
}
