//! One parse of a raw RFC 5322 message (mail-parser), shared by the IMAP poller and the webhook:
//! the sender, recipients, subject, date, text and HTML bodies (the HTML sanitised with ammonia
//! before anything stores it), threading headers and attachments. mail-parser decodes leniently
//! (charsets, broken encodings); what makes a message unusable is refused here with a reason.

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::{Address, HeaderValue, MessageParser, MimeHeaders, PartType};
use tracing::info;

use super::html;
use crate::core::error::Code;

/// Most nested multiparts; deeper is refused (real mail nests three or four).
pub const MAX_DEPTH: usize = 32;
/// Most MIME parts in one message.
pub const MAX_PARTS: usize = 500;
/// Most header fields in one message.
pub const MAX_HEADERS: usize = 1000;
/// Longest single header field.
pub const MAX_HEADER_LEN: usize = 64 * 1024;
/// Most To and Cc addresses together.
pub const MAX_RECIPIENTS: usize = 500;
/// Longest Message-ID kept (and used as the provider id).
pub const MAX_MESSAGE_ID: usize = 250;
/// Most `References` kept (the latest).
pub const MAX_REFERENCES: usize = 100;
/// Longest text body stored, in characters; the rest is cut with a note.
pub const MAX_TEXT_CHARS: usize = 1_000_000;
/// Longest HTML body stored, in bytes after sanitising; a longer one is dropped (the text stays).
pub const MAX_HTML: usize = 2 * 1024 * 1024;

/// Why a message cannot be taken; `code` is the API error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

impl Refusal {
    fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// A file carried by the message, with its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedAttachment {
    pub name: String,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// A parsed email, ready to store.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedEmail {
    /// The Message-ID without its angle brackets.
    pub message_id: Option<String>,
    /// The sender's address, lowercased: the customer's address (K2).
    pub from: String,
    pub from_name: Option<String>,
    /// To and Cc addresses, lowercased.
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: Option<String>,
    pub date: Option<DateTime<Utc>>,
    pub text: Option<String>,
    /// The HTML body, sanitised for display.
    pub html: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub attachments: Vec<ParsedAttachment>,
    /// `Auto-Submitted` other than `no` (RFC 3834): vacation replies, bounces. Never answered.
    pub auto_submitted: bool,
}

impl ParsedEmail {
    /// Every Message-ID this mail answers: `In-Reply-To` and `References`.
    pub fn thread_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.in_reply_to.iter().cloned().collect();
        ids.extend(self.references.iter().filter(|r| Some(*r) != self.in_reply_to.as_ref()).cloned());
        ids
    }
}

/// Parses raw RFC 5322 bytes; never panics (the parser is fuzzed).
pub fn parse(raw: &[u8]) -> Result<ParsedEmail, Refusal> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal::new(Code::EmptyBody, "the body is empty; send the raw RFC 5322 message"));
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| Refusal::new(Code::InvalidMessage, "not an RFC 5322 message: no header fields"))?;
    let root = message.root_part();
    let header_end = usize::try_from(root.raw_body_offset()).unwrap_or(raw.len()).min(raw.len());
    if raw[..header_end].contains(&0) {
        return Err(Refusal::new(Code::InvalidHeader, "a header field contains a NUL byte"));
    }
    if root.headers().len() > MAX_HEADERS {
        return Err(Refusal::new(Code::TooManyHeaders, format!("at most {MAX_HEADERS} header fields")));
    }
    if root.headers().iter().any(|h| h.offset_end().saturating_sub(h.offset_start()) as usize > MAX_HEADER_LEN) {
        return Err(Refusal::new(Code::HeaderTooLong, format!("a header field is longer than {MAX_HEADER_LEN} bytes")));
    }
    check_structure(&message)?;

    let (from, from_name) = sender(message.from())?;
    let to = addresses(message.to());
    let cc = addresses(message.cc());
    if to.len() + cc.len() > MAX_RECIPIENTS {
        return Err(Refusal::new(Code::TooManyRecipients, format!("at most {MAX_RECIPIENTS} To and Cc addresses")));
    }
    let message_id = match message.message_id().map(str::trim).filter(|m| !m.is_empty()) {
        None => None,
        Some(id) => Some(message_id(id).ok_or_else(|| {
            Refusal::new(
                Code::InvalidMessageId,
                format!("Message-ID is at most {MAX_MESSAGE_ID} visible characters without spaces"),
            )
        })?),
    };
    let in_reply_to = ids(message.in_reply_to()).into_iter().next_back();
    let mut references = ids(message.references());
    if references.len() > MAX_REFERENCES {
        references.drain(..references.len() - MAX_REFERENCES);
    }
    let subject = message.subject().map(clean_line).filter(|s| !s.is_empty());
    let date = message.date().and_then(|d| Utc.timestamp_opt(d.to_timestamp(), 0).single());
    // The text part, or the text of the HTML part when the mail has only HTML (our linear
    // converter: mail-parser's own has no time bound and no line breaks for blocks).
    let text = match message.text_body.first().and_then(|id| message.part(*id)).map(|p| &p.body) {
        Some(PartType::Text(t)) => Some(t.replace("\r\n", "\n")),
        Some(PartType::Html(h)) => Some(html::to_text(h, html::TEXT_BUDGET)),
        _ => None,
    }
    .map(|t| cut_text(t.trim_end()))
    .filter(|t| !t.trim().is_empty());
    let html = message
        .html_bodies()
        .find_map(|p| match &p.body {
            PartType::Html(h) => Some(h),
            _ => None,
        })
        // Too deep or too crowded for the sanitiser in linear time: only the text is kept.
        .filter(|h| {
            let fits = html::fits_the_sanitiser(h);
            if !fits {
                info!(html.bytes = h.len(), "HTML too deeply nested to sanitise: only its text is kept");
            }
            fits
        })
        .map(|h| ammonia::clean(h))
        .filter(|h| !h.trim().is_empty() && h.len() <= MAX_HTML);
    let attachments = message
        .attachments()
        .filter(|p| !matches!(p.body, PartType::Multipart(_)))
        .map(|p| ParsedAttachment {
            name: file_name(p.attachment_name()),
            content_type: p
                .content_type()
                .map(|c| match c.subtype() {
                    Some(sub) => format!("{}/{}", c.ctype(), sub),
                    None => c.ctype().to_owned(),
                })
                .map(|c| c.to_ascii_lowercase())
                .unwrap_or_else(|| "application/octet-stream".into()),
            data: p.contents().to_vec(),
        })
        .collect();
    let auto_submitted = message
        .header_raw("Auto-Submitted")
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no") && !v.trim().is_empty());
    Ok(ParsedEmail {
        message_id,
        from,
        from_name,
        to,
        cc,
        subject,
        date,
        text,
        html,
        in_reply_to,
        references,
        attachments,
        auto_submitted,
    })
}

/// The Message-ID of a raw message as [`parse`] would read it, from the header block alone: what
/// the replay check needs before the body is parsed. `None` when there is none or it is invalid.
pub fn message_id_of(raw: &[u8]) -> Option<String> {
    let headers = MessageParser::default().parse_headers(raw)?;
    headers.message_id().map(str::trim).filter(|m| !m.is_empty()).and_then(message_id)
}

/// Refuses multipart trees that are too deep or too wide, and multiparts without a boundary.
fn check_structure(message: &mail_parser::Message<'_>) -> Result<(), Refusal> {
    if message.parts.len() > MAX_PARTS {
        return Err(Refusal::new(Code::TooManyParts, format!("at most {MAX_PARTS} MIME parts")));
    }
    if let Some(ct) = message.root_part().content_type()
        && ct.ctype().eq_ignore_ascii_case("multipart")
        && ct.attribute("boundary").is_none_or(|b| b.trim().is_empty())
    {
        return Err(Refusal::new(Code::InvalidMime, "a multipart message needs a boundary parameter"));
    }
    // Iterative walk: a hostile message must not exhaust the stack here either.
    let mut stack = vec![(0u32, 1usize)];
    let mut seen = 0usize;
    while let Some((id, depth)) = stack.pop() {
        seen += 1;
        if depth > MAX_DEPTH {
            return Err(Refusal::new(Code::TooDeeplyNested, format!("multiparts nest at most {MAX_DEPTH} deep")));
        }
        if seen > MAX_PARTS {
            return Err(Refusal::new(Code::TooManyParts, format!("at most {MAX_PARTS} MIME parts")));
        }
        if let Some(children) = message.part(id).and_then(|p| p.sub_parts()) {
            stack.extend(children.iter().filter(|c| **c != id).map(|c| (*c, depth + 1)));
        }
    }
    Ok(())
}

fn sender(from: Option<&Address<'_>>) -> Result<(String, Option<String>), Refusal> {
    let addr = from
        .and_then(|a| a.first())
        .ok_or_else(|| Refusal::new(Code::MissingSender, "the message has no From address"))?;
    let address = addr.address().map(|a| a.trim().to_lowercase()).unwrap_or_default();
    if !valid_address(&address) {
        return Err(Refusal::new(Code::InvalidSender, "the From address is not a valid email address"));
    }
    let name = addr.name().map(clean_line).filter(|n| !n.is_empty()).map(|n| n.chars().take(200).collect());
    Ok((address, name))
}

fn addresses(list: Option<&Address<'_>>) -> Vec<String> {
    list.map(|l| {
        l.iter().filter_map(|a| a.address()).map(|a| a.trim().to_lowercase()).filter(|a| valid_address(a)).collect()
    })
    .unwrap_or_default()
}

/// One address: a local part and a domain, nothing invisible or undecodable, at most 254 bytes.
pub fn valid_address(a: &str) -> bool {
    let Some((local, domain)) = a.split_once('@') else { return false };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && a.len() <= 254
        && !a.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\u{FFFD}' || "<>()[],;:\"\\".contains(c))
}

fn message_id(id: &str) -> Option<String> {
    let id = id.trim().trim_start_matches('<').trim_end_matches('>');
    (!id.is_empty() && id.len() <= MAX_MESSAGE_ID && id.chars().all(|c| c.is_ascii_graphic() && c != '<' && c != '>'))
        .then(|| id.to_owned())
}

/// Message-IDs of `In-Reply-To` / `References`; malformed ones are skipped.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => t.split_whitespace().filter_map(message_id).collect(),
        HeaderValue::TextList(l) => l.iter().flat_map(|t| t.split_whitespace()).filter_map(message_id).collect(),
        _ => Vec::new(),
    }
}

/// A header text on one line, without control characters, at most 998 characters (RFC 5322).
fn clean_line(s: &str) -> String {
    let one: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).take(998).collect();
    one.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cut_text(t: &str) -> String {
    match t.char_indices().nth(MAX_TEXT_CHARS) {
        Some((i, _)) => format!("{}\n[…]", &t[..i]),
        None => t.to_owned(),
    }
}

/// A safe file name: the last path segment, without control characters, at most 200 characters.
fn file_name(name: Option<&str>) -> String {
    let base = name.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    if cleaned.trim().is_empty() { "attachment".into() } else { cleaned.trim().to_owned() }
}

/// `RES: ` before a subject, once (C5): not again when it already starts with `RES:` or `Re:`.
pub fn reply_subject(subject: &str) -> String {
    let s = subject.trim();
    let lower = s.to_lowercase();
    if lower.starts_with("res:") || lower.starts_with("re:") { s.to_owned() } else { format!("RES: {s}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &[u8] = b"From: \"Maria Souza\" <Maria.Souza@Example.COM>\r\n\
To: atendimento@omniroute.example\r\n\
Cc: Chefe <chefe@example.com>, outro@example.com\r\n\
Subject: =?UTF-8?Q?Pedido_n=C2=BA_123?=\r\n\
Date: Mon, 24 Nov 2026 09:30:00 -0300\r\n\
Message-ID: <abc.123@example.com>\r\n\
In-Reply-To: <ours.1@omniroute.example>\r\n\
References: <first@example.com> <ours.1@omniroute.example>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: multipart/alternative; boundary=\"b2\"\r\n\
\r\n\
--b2\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Ol\xc3\xa1, meu pedido atrasou.\r\n\
--b2\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p onclick=\"x()\">Ol\xc3\xa1</p><script>alert(1)</script>\r\n\
--b2--\r\n\
--b1\r\n\
Content-Type: application/pdf; name=\"nota.pdf\"\r\n\
Content-Disposition: attachment; filename=\"nota.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
JVBERi0xLjQK\r\n\
--b1--\r\n";

    #[test]
    fn a_mail_parses_into_every_field() {
        let m = parse(MAIL).unwrap();
        assert_eq!(m.from, "maria.souza@example.com");
        assert_eq!(m.from_name.as_deref(), Some("Maria Souza"));
        assert_eq!(m.to, vec!["atendimento@omniroute.example"]);
        assert_eq!(m.cc, vec!["chefe@example.com", "outro@example.com"]);
        assert_eq!(m.subject.as_deref(), Some("Pedido nº 123"));
        assert_eq!(m.date.unwrap().to_rfc3339(), "2026-11-24T12:30:00+00:00");
        assert_eq!(m.message_id.as_deref(), Some("abc.123@example.com"));
        assert_eq!(m.in_reply_to.as_deref(), Some("ours.1@omniroute.example"));
        assert_eq!(m.references, vec!["first@example.com", "ours.1@omniroute.example"]);
        assert_eq!(m.thread_ids(), vec!["ours.1@omniroute.example", "first@example.com"]);
        assert_eq!(m.text.as_deref(), Some("Olá, meu pedido atrasou."));
        let html = m.html.unwrap();
        assert!(html.contains("<p>Olá</p>") && !html.contains("script") && !html.contains("onclick"), "{html}");
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(
            (m.attachments[0].name.as_str(), m.attachments[0].content_type.as_str()),
            ("nota.pdf", "application/pdf")
        );
        assert_eq!(m.attachments[0].data, b"%PDF-1.4\n");
        assert!(!m.auto_submitted);
    }

    #[test]
    fn the_charsets_mail_uses_decode() {
        let cases: &[(&str, &[u8], &str)] = &[
            ("gb2312", b"\xc4\xe3\xba\xc3\xa3\xac\xca\xc0\xbd\xe7", "你好，世界"),
            ("gbk", b"\xc4\xe3\xba\xc3\xa3\xac\xca\xc0\xbd\xe7", "你好，世界"),
            ("gb18030", b"\xc4\xe3\xba\xc3\xa3\xac\xca\xc0\xbd\xe7", "你好，世界"),
            ("big5", b"\xa7A\xa6n\xa1A\xa5@\xac\xc9", "你好，世界"),
            ("koi8-r", b"\xf0\xd2\xc9\xd7\xc5\xd4", "Привет"),
            ("windows-1251", b"\xcf\xf0\xe8\xe2\xe5\xf2", "Привет"),
            ("windows-1252", b"Ol\xe1, a\xe7\xe3o", "Olá, ação"),
            ("euc-jp", b"\xa5\xcf\xa5\xed\xa1\xbc", "ハロー"),
            ("windows-949", b"\x8cc\xb9\xe6", "똠방"),
        ];
        for (charset, body, text) in cases {
            let mut raw = format!("From: a@b.c\r\nContent-Type: text/plain; charset={charset}\r\n\r\n").into_bytes();
            raw.extend_from_slice(body);
            assert_eq!(parse(&raw).unwrap().text.as_deref(), Some(*text), "{charset}");
        }
    }

    #[test]
    fn res_is_added_once() {
        assert_eq!(reply_subject("Pedido 123"), "RES: Pedido 123");
        assert_eq!(reply_subject("RES: Pedido 123"), "RES: Pedido 123");
        assert_eq!(reply_subject("Re: Pedido 123"), "Re: Pedido 123");
        assert_eq!(reply_subject("res:x"), "res:x");
        assert_eq!(reply_subject("Resposta"), "RES: Resposta");
    }

    #[test]
    fn unusable_messages_are_refused_with_a_reason() {
        assert_eq!(parse(b"").unwrap_err().code, Code::EmptyBody);
        assert_eq!(parse(b"Subject: x\r\n\r\nbody").unwrap_err().code, Code::MissingSender);
        assert_eq!(parse(b"From: Maria\r\n\r\nbody").unwrap_err().code, Code::InvalidSender);
        assert_eq!(parse(b"From: a@@b\r\n\r\nbody").unwrap_err().code, Code::InvalidSender);
        let deep: Vec<u8> = {
            let mut m = b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n".to_vec();
            for i in 0..60 {
                m.extend(format!("--b{i}\r\nContent-Type: multipart/mixed; boundary=\"b{}\"\r\n\r\n", i + 1).bytes());
            }
            m
        };
        assert_eq!(parse(&deep).unwrap_err().code, Code::TooDeeplyNested);
    }
}
