//! A minimal Asterisk REST Interface client: the few REST calls the switchboard makes (basic auth,
//! parameters in the query string as ARI documents them) and the events of the application's
//! WebSocket (`/ari/events?app=<app>&api_key=<user>:<password>`), parsed leniently: whatever is
//! not understood is `AriEvent::Other` and ignored, never an error.

use std::time::Duration;

use serde_json::Value;
use tracing::warn;

/// How many times a REST call is tried when Asterisk answers 5xx or not at all.
const ATTEMPTS: u32 = 3;
/// The wait before the first retry; it doubles each time.
const FIRST_RETRY: Duration = Duration::from_millis(200);

/// A voice service's ARI settings (flat keys of `services.provider`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AriSettings {
    /// Asterisk's HTTP server, e.g. `http://pbx:8088` (a trailing `/ari` is accepted).
    pub url: String,
    pub username: String,
    pub password: String,
    /// The Stasis application the dialplan sends this service's calls to.
    pub app: String,
    /// How a customer's number is dialled (C8), `{number}` replaced: `ari_dial_endpoint`,
    /// default `PJSIP/{number}` (e.g. `PJSIP/{number}@trunk` through a trunk).
    pub dial_endpoint: String,
}

impl AriSettings {
    /// The settings of a provider object: `ari_url`, `ari_username`, `ari_password`, `ari_app`
    /// (default `omniroute`); `None` when `ari_url` is not set.
    pub fn from_provider(provider: &Value) -> Option<AriSettings> {
        let field = |k: &str| provider.get(k).and_then(Value::as_str).map(str::trim).unwrap_or("").to_owned();
        let url = field("ari_url");
        if url.is_empty() {
            return None;
        }
        let url = url.trim_end_matches('/');
        let url = url.strip_suffix("/ari").unwrap_or(url).to_owned();
        let app = Some(field("ari_app")).filter(|a| !a.is_empty()).unwrap_or_else(|| "omniroute".to_owned());
        let dial_endpoint = Some(field("ari_dial_endpoint"))
            .filter(|d| d.contains("{number}"))
            .unwrap_or_else(|| "PJSIP/{number}".into());
        Some(AriSettings { url, username: field("ari_username"), password: field("ari_password"), app, dial_endpoint })
    }

    /// The events WebSocket's URL.
    pub fn events_url(&self) -> String {
        let base = if let Some(rest) = self.url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.url.clone()
        };
        let query = serde_urlencoded::to_string([
            ("app", self.app.as_str()),
            ("api_key", &format!("{}:{}", self.username, self.password)),
        ])
        .unwrap_or_default();
        format!("{base}/ari/events?{query}")
    }
}

/// A path segment with everything but unreserved characters percent-encoded (channel ids come
/// from the phone system).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a REST call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AriError {
    /// Asterisk refused it (4xx: the channel is gone, a bad parameter…); not retried.
    #[error("ARI answered {status}: {body}")]
    Refused { status: u16, body: String },
    /// No answer or 5xx after every attempt.
    #[error("ARI did not answer after {ATTEMPTS} attempts: {0}")]
    Unreachable(String),
}

/// The REST side of one Asterisk.
pub struct AriClient {
    http: awc::Client,
    settings: AriSettings,
}

impl AriClient {
    /// A client for these settings (10-second timeout per request).
    pub fn new(settings: AriSettings) -> AriClient {
        let http = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
        AriClient { http, settings }
    }

    /// The settings it talks with.
    pub fn settings(&self) -> &AriSettings {
        &self.settings
    }

    /// `POST /ari{path}?{query}`.
    pub async fn post(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, AriError> {
        self.request(awc::http::Method::POST, path, query).await
    }

    /// `GET /ari{path}`.
    pub async fn get(&self, path: &str) -> Result<Value, AriError> {
        self.request(awc::http::Method::GET, path, &[]).await
    }

    /// `DELETE /ari{path}?{query}`.
    pub async fn delete(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, AriError> {
        self.request(awc::http::Method::DELETE, path, query).await
    }

    /// One call, retried with backoff on 5xx and on no answer.
    async fn request(&self, method: awc::http::Method, path: &str, query: &[(&str, &str)]) -> Result<Value, AriError> {
        let mut url = format!("{}/ari{path}", self.settings.url);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&serde_urlencoded::to_string(query).unwrap_or_default());
        }
        let mut wait = FIRST_RETRY;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let sent = self
                .http
                .request(method.clone(), &url)
                .basic_auth(&self.settings.username, &self.settings.password)
                .send()
                .await;
            match sent {
                Ok(mut res) => {
                    let status = res.status();
                    let body = res.body().limit(1 << 20).await.unwrap_or_default();
                    if status.is_success() {
                        return Ok(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    }
                    let text = String::from_utf8_lossy(&body).chars().take(300).collect::<String>();
                    if !status.is_server_error() {
                        return Err(AriError::Refused { status: status.as_u16(), body: text });
                    }
                    last = format!("{status} {text}");
                }
                Err(e) => last = e.to_string(),
            }
            if attempt < ATTEMPTS {
                warn!(ari.method = %method, ari.path = path, attempt, error = %last, "ARI request failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        Err(AriError::Unreachable(last))
    }
}

/// The parts of an ARI `Channel` the switchboard reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelInfo {
    pub id: String,
    /// `Down`, `Ring`, `Ringing`, `Up`, …
    pub state: String,
    pub caller_number: String,
    pub caller_name: String,
    /// The number dialled (`dialplan.exten`).
    pub exten: String,
}

impl ChannelInfo {
    fn parse(v: Option<&Value>) -> Option<ChannelInfo> {
        let v = v?;
        let text = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("").trim().to_owned();
        let id = text("/id");
        if id.is_empty() || id.len() > 128 {
            return None;
        }
        Some(ChannelInfo {
            id,
            state: text("/state"),
            caller_number: text("/caller/number").chars().take(64).collect(),
            caller_name: text("/caller/name").chars().take(128).collect(),
            exten: text("/dialplan/exten").chars().take(64).collect(),
        })
    }
}

/// One event of the application's WebSocket, as far as the switchboard cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AriEvent {
    /// A channel entered the application: an incoming call, or an agent leg we originated that
    /// answered. `args` are the dialplan's `Stasis(app,args…)` or our `appArgs`.
    StasisStart { channel: ChannelInfo, args: Vec<String> },
    /// A channel left the application (hang-up, redirect, continue).
    StasisEnd { channel: ChannelInfo },
    /// A channel's state changed (`Up` when answered).
    ChannelStateChange { channel: ChannelInfo },
    /// A hang-up was asked for.
    ChannelHangupRequest { channel: ChannelInfo },
    /// A channel is gone.
    ChannelDestroyed { channel: ChannelInfo, cause: i64 },
    /// Dialling progress of `peer` (`dialstatus` empty while it starts, then `ANSWER`, `BUSY`,
    /// `NOANSWER`, `CHANUNAVAIL`, `CONGESTION`, `CANCEL`…).
    Dial { peer: ChannelInfo, dialstatus: String },
    /// Anything else, or an event of another application.
    Other,
}

impl AriEvent {
    /// Parses one text frame of the events socket for application `app`; never fails.
    pub fn parse(frame: &[u8], app: &str) -> AriEvent {
        let Ok(v) = serde_json::from_slice::<Value>(frame) else { return AriEvent::Other };
        if v.get("application").and_then(Value::as_str).is_some_and(|a| a != app) {
            return AriEvent::Other;
        }
        let channel = || ChannelInfo::parse(v.get("channel"));
        let parsed = match v.get("type").and_then(Value::as_str).unwrap_or("") {
            "StasisStart" => channel().map(|channel| {
                let args = v
                    .get("args")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                AriEvent::StasisStart { channel, args }
            }),
            "StasisEnd" => channel().map(|channel| AriEvent::StasisEnd { channel }),
            "ChannelStateChange" => channel().map(|channel| AriEvent::ChannelStateChange { channel }),
            "ChannelHangupRequest" => channel().map(|channel| AriEvent::ChannelHangupRequest { channel }),
            "ChannelDestroyed" => channel().map(|channel| AriEvent::ChannelDestroyed {
                channel,
                cause: v.get("cause").and_then(Value::as_i64).unwrap_or(0),
            }),
            "Dial" => ChannelInfo::parse(v.get("peer")).map(|peer| AriEvent::Dial {
                peer,
                dialstatus: v.get("dialstatus").and_then(Value::as_str).unwrap_or("").to_owned(),
            }),
            _ => None,
        };
        parsed.unwrap_or(AriEvent::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_come_from_flat_provider_keys() {
        let s = AriSettings::from_provider(&json!({"cti_token": "t", "ari_url": "http://pbx:8088/ari/",
            "ari_username": "omni", "ari_password": "p@ss word"}))
        .unwrap();
        assert_eq!((s.url.as_str(), s.app.as_str()), ("http://pbx:8088", "omniroute"));
        assert_eq!(s.events_url(), "ws://pbx:8088/ari/events?app=omniroute&api_key=omni%3Ap%40ss+word");
        assert_eq!(AriSettings::from_provider(&json!({"cti_token": "t"})), None);
    }

    #[test]
    fn channel_ids_are_escaped_in_paths() {
        assert_eq!(segment("1700000000.42"), "1700000000.42");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
    }

    #[test]
    fn events_of_other_applications_are_ignored() {
        let start = json!({"type": "StasisStart", "application": "other", "args": [],
                           "channel": {"id": "1.1", "state": "Ring", "caller": {"number": "1"}}});
        assert_eq!(AriEvent::parse(start.to_string().as_bytes(), "omniroute"), AriEvent::Other);
        let mine = json!({"type": "StasisStart", "application": "omniroute", "args": ["inbound"],
                          "channel": {"id": "1.1", "state": "Ring", "caller": {"name": "Ana", "number": "+5511"},
                                      "dialplan": {"exten": "4000"}}});
        let AriEvent::StasisStart { channel, args } = AriEvent::parse(mine.to_string().as_bytes(), "omniroute") else {
            panic!("a StasisStart")
        };
        assert_eq!(
            (channel.caller_number.as_str(), channel.exten.as_str(), args),
            ("+5511", "4000", vec!["inbound".to_owned()])
        );
    }
}
