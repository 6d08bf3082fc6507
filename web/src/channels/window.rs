//! Reply windows (C7): how long after the customer's last message a provider takes which
//! message. Each provider states its own window ([`super::Provider::window`]); the API refuses a
//! message outside it with 422 `outside_window` (`Code::OutsideWindow`), and the sender refuses it again just before
//! sending, since the window may have closed while the message waited.

use chrono::{DateTime, Utc};
use schema::{Channel, MessageKind};

/// The standard customer-service window of WhatsApp, Messenger and Instagram.
pub const STANDARD_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// Where a conversation stands in its channel's reply window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Any message may be sent (and no window applies to the channel).
    Open,
    /// Messenger/Instagram after 24 hours: only a human agent's reply, tagged `HUMAN_AGENT`.
    HumanAgent,
    /// WhatsApp after 24 hours: only a template.
    TemplateOnly,
    /// Messenger/Instagram after 7 days: nothing may be sent.
    Closed,
}

/// Whether `last` (never: `None`) is less than `span` before `now`.
pub fn within(last: Option<DateTime<Utc>>, now: DateTime<Utc>, span: chrono::Duration) -> bool {
    last.is_some_and(|t| now - t < span)
}

/// The window of `channel` at `now`, the customer having last written at `last` (never: `None`).
pub fn window(channel: Channel, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Window {
    super::provider(channel).map_or(Window::Open, |p| p.window(last, now))
}

/// Why a message may not go out now, or `None` when it may.
pub fn window_refusal(window: Window, kind: MessageKind) -> Option<&'static str> {
    match window {
        Window::TemplateOnly if kind != MessageKind::Template => {
            Some("outside the 24-hour window: only a template can be sent")
        }
        Window::Closed => Some(
            "more than 7 days since the customer's last message: Messenger and Instagram accept no message until the customer writes again",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_open_narrow_and_close_at_their_edges() {
        let now = Utc::now();
        let ago = |h: i64| Some(now - chrono::Duration::hours(h));
        assert_eq!(window(Channel::Whatsapp, ago(23), now), Window::Open);
        assert_eq!(window(Channel::Whatsapp, ago(24), now), Window::TemplateOnly);
        assert_eq!(window(Channel::Whatsapp, None, now), Window::TemplateOnly, "a customer who never wrote");
        assert_eq!(window(Channel::Instagram, ago(23), now), Window::Open);
        assert_eq!(window(Channel::Messenger, ago(24), now), Window::HumanAgent);
        assert_eq!(window(Channel::Messenger, ago(7 * 24 - 1), now), Window::HumanAgent);
        assert_eq!(window(Channel::Messenger, ago(7 * 24), now), Window::Closed);
        assert_eq!(window(Channel::Telegram, ago(1000), now), Window::Open);
        assert_eq!(window(Channel::Webchat, None, now), Window::Open);
        assert_eq!(window_refusal(Window::TemplateOnly, MessageKind::Template), None);
        assert!(window_refusal(Window::TemplateOnly, MessageKind::Image).is_some());
        assert_eq!(window_refusal(Window::HumanAgent, MessageKind::Text), None);
    }
}
